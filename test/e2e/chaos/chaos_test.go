package chaos_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/alertbridge/alertbridge/test/e2e/chaos"
)

// TestChaos is the 60-second run of `make test` (seed 1, a small storm),
// or, with CHAOS_DURATION set, `make chaos` (CHAOS_SEED, default 1).
// CHAOS_KEEP keeps the journal and logs of a clean run; CHAOS_RESULT
// names a file for the figures as JSON.
func TestChaos(t *testing.T) {
	cfg := chaos.CIConfig()
	if d := os.Getenv("CHAOS_DURATION"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("CHAOS_DURATION: %v", err)
		}
		cfg = chaos.FullConfig(1, dur)
	}
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
		cfg.Seed = seed
	}
	cfg.KeepDir = os.Getenv("CHAOS_KEEP") != ""
	res, err := chaos.Run(context.Background(), cfg)
	if res != nil {
		t.Log("\n" + res.Report())
		if out := os.Getenv("CHAOS_RESULT"); out != "" {
			if werr := os.WriteFile(out, res.JSON(), 0o600); werr != nil {
				t.Error(werr)
			}
		}
	}
	if err != nil {
		t.Fatalf("the run could not be judged: %v", err)
	}
	if len(res.Violations) > 0 {
		t.Fatalf("seed %d: %d violations, the first: %s", res.Seed, len(res.Violations), res.Violations[0])
	}
}
