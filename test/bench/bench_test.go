// Package bench measures alertbridge as it ships (`make bench`): the binary
// built from this checkout, two replicas started with the Deployment's own
// arguments (test/e2e/shipped), a durable PostgreSQL, and users bound to the
// shipped roles. BenchmarkShipped prints one table and writes it, with the
// machine it ran on, to test/bench/results/. It asserts no time: the figures are
// compared with baselines measured in the same run (the raw API server, a
// plain PostgreSQL upsert), and the goals of the performance issue are
// shown met or not.
package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sizes of the run; each can be set in the environment (BENCH_*).
type sizes struct {
	Alerts     int           // raw ceiling and unique Alerts → New
	Storm      int           // occurrences per storm level
	Claims     int           // Alerts per claim+ack drain, Go client
	CLIClaims  int           // Alerts of the claim+ack drain through the CLI
	Long       bool          // also the 10,000-Alert footprint and the "1M a day" run
	Live       int           // live Alerts of the footprint run
	Day        time.Duration // length of the "1M a day" run
	DayRate    float64       // its occurrences per second
	Senders    []int         // storm levels
	Claimers   int
	Creators   int // concurrent creators of Alerts (monitors)
	Batch      int // claim --limit
	FoldAlerts int // canonicals of the fold measurement (×10 duplicates)
}

func sizesFromEnv() sizes {
	s := sizes{
		Alerts: envInt("BENCH_ALERTS", 1000), Storm: envInt("BENCH_STORM", 4000),
		Claims: envInt("BENCH_CLAIMS", 400), CLIClaims: envInt("BENCH_CLI_CLAIMS", 200),
		Long: os.Getenv("BENCH_LONG") == "1", Live: envInt("BENCH_LIVE", 10000),
		Day: envDuration("BENCH_DAY", 10*time.Minute), DayRate: 12,
		Senders: []int{16, 64, 256}, Claimers: 8, Creators: 16, Batch: 25, FoldAlerts: 10,
	}
	return s
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var once sync.Once

// BenchmarkShipped runs every measurement once, whatever b.N, and prints
// the table. Run it with -benchtime=1x (make bench does).
func BenchmarkShipped(b *testing.B) {
	ran := false
	once.Do(func() {
		ran = true
		benchmarkShipped(b)
	})
	if !ran {
		b.Skip("BenchmarkShipped measures once per process; run it with -benchtime=1x")
	}
}

func benchmarkShipped(b *testing.B) {
	ctx := context.Background()
	r := start(ctx, b, sizesFromEnv())

	type phase struct {
		key, name string
		run       func()
		long      bool
	}
	phases := []phase{
		{"ceiling", "raw ceilings (no operator running)", r.ceilings, false},
		{"upsert", "PostgreSQL upsert baseline", r.upsertBaseline, false},
		{"", "starting the operator (two replicas)", r.startOperators, false},
		{"new", "unique Alerts → New", r.uniqueToNew, false},
		{"fold", "folds", r.folds, false},
		{"storm", "HTTP storm", r.storms, false},
		{"replay", "HTTP storm of replays (nothing to write)", r.replayStorms, false},
		{"open", "open-loop capacity", r.openLoop, false},
		{"paths", "claim and ack, per path", r.claimAckPaths, false},
		{"claim", "claim+ack, Go client, the status policy on and off alternately", r.claimAckGo, false},
		{"cli", "claim+ack, CLI", r.claimAckCLI, false},
		{"http", "claim+ack, HTTP work queue", r.claimAckHTTP, false},
	}
	if r.size.Long {
		phases = append(phases,
			phase{"", "clearing the Alerts of the short run", r.clear, true},
			phase{"day", fmt.Sprintf("1M alerts a day for %s", r.size.Day), r.day, true},
			phase{"live", fmt.Sprintf("footprint with %d live Alerts", r.size.Live), r.footprint, true})
	} else {
		phases = append(phases, phase{"", "footprint", r.footprintNow, false})
	}
	phases = append(phases, phase{"again", "the baselines again, the replicas stopped", r.baselinesAgain, false})
	// BENCH_ONLY=day,live runs only those measurements (for working on
	// one); the report says it is partial and latest.md is left alone.
	only := map[string]bool{}
	for k := range strings.SplitSeq(os.Getenv("BENCH_ONLY"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			only[k] = true
		}
	}
	for _, p := range phases {
		if len(only) > 0 && p.key != "" && !only[p.key] {
			continue
		}
		r.phase(p.name, p.run)
	}
	if len(only) > 0 {
		r.rep.partial = os.Getenv("BENCH_ONLY")
	}
	r.finish()
}
