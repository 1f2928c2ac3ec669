package chaos

import (
	"context"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// The SLOPolicy's service serves a latency histogram that a real
// Prometheus (test/integration/promtest) scrapes: healthy (every request under
// 100 ms) except during one seeded breach window, when half the requests
// take 100–500 ms, which puts the p95 above the 300 ms objective. The
// oracle asks the same Prometheus what the gate's query gave at each
// evaluation and compares the decision.
const (
	sloObjectiveMs = 300
	// requestsPerSecond of each bucket the exporter counts.
	requestsPerSecond = 10
	// decisionMargin: where Prometheus' value lies this close to the
	// objective (relative), a decision either way is consistent (the
	// controller queried at its evaluation time; a late scrape can move
	// the value a little).
	decisionMargin = 0.1
)

// exporter serves http_request_duration_seconds for one service, its
// counters a function of time.
type exporter struct {
	service, env       string
	start              time.Time
	breachAt, breachTo time.Duration
	srv                *http.Server
	addr               string
	once               sync.Once
}

func startExporter(service, env string, start time.Time, breachAt, breachTo time.Duration) (*exporter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &exporter{service: service, env: env, start: start, breachAt: breachAt, breachTo: breachTo, addr: l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", e.serve)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(l) }()
	return e, nil
}

func (e *exporter) stop() { e.once.Do(func() { _ = e.srv.Close() }) }

// counts are the requests so far under 100 ms and between 100 and 500 ms.
func (e *exporter) counts(now time.Time) (fast, slow int64) {
	t := now.Sub(e.start)
	fast = int64(t.Seconds() * requestsPerSecond)
	overlap := min(t, e.breachTo) - e.breachAt
	if overlap > 0 {
		slow = int64(overlap.Seconds() * requestsPerSecond)
	}
	return fast, slow
}

func (e *exporter) serve(w http.ResponseWriter, _ *http.Request) {
	fast, slow := e.counts(time.Now())
	l := fmt.Sprintf(`service=%q,env=%q`, e.service, e.env)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = fmt.Fprintf(w, "# TYPE http_request_duration_seconds histogram\n")
	_, _ = fmt.Fprintf(w, "http_request_duration_seconds_bucket{%s,le=\"0.1\"} %d\n", l, fast)
	_, _ = fmt.Fprintf(w, "http_request_duration_seconds_bucket{%s,le=\"0.5\"} %d\n", l, fast+slow)
	_, _ = fmt.Fprintf(w, "http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", l, fast+slow)
	_, _ = fmt.Fprintf(w, "http_request_duration_seconds_sum{%s} %.3f\n", l, float64(fast)*0.05+float64(slow)*0.3)
	_, _ = fmt.Fprintf(w, "http_request_duration_seconds_count{%s} %d\n", l, fast+slow)
}

// checkGateProm compares every evaluated gate answer with Prometheus.
func (rn *runner) checkGateProm(ctx context.Context) []string {
	rn.gates.mu.Lock()
	answers := append([]gateAnswer(nil), rn.gates.answers...)
	rn.gates.mu.Unlock()
	c, err := slo.NewClient(rn.prom.URL(), slo.Auth{}, 10*time.Second)
	if err != nil {
		return []string{"gate: " + err.Error()}
	}
	defer c.Close()
	query := slo.Render("", slo.DefaultLatencyP95Query, rn.exporter.service, rn.exporter.env)
	objective := big.NewRat(sloObjectiveMs, 1)
	seen := map[time.Time]bool{}
	var v []string
	rn.gateStats = map[string]int{}
	for _, a := range answers {
		g := a.gate
		if g.LastEvaluatedAt == nil || seen[g.LastEvaluatedAt.Time] {
			continue
		}
		seen[g.LastEvaluatedAt.Time] = true
		rn.gateStats[string(g.Decision)]++
		blocked := g.Decision == v1.DecisionBlock
		// The gate's own figures: blocked exactly when the observed p95
		// is above the objective (or there is none: noData Block).
		if g.Observed != nil && g.Observed.LatencyP95Ms != "" {
			obs, ok := new(big.Rat).SetString(g.Observed.LatencyP95Ms)
			if ok && blocked != (obs.Cmp(objective) > 0) {
				v = append(v, fmt.Sprintf("gate: decided %s with an observed p95 of %s ms against %d ms: %s", g.Decision, g.Observed.LatencyP95Ms, sloObjectiveMs, rn.record(a.seq)))
			}
		}
		m, err := c.Query(ctx, query, g.LastEvaluatedAt.Time)
		if err != nil {
			v = append(v, fmt.Sprintf("gate: cannot ask Prometheus what the gate saw at %s: %v", g.LastEvaluatedAt.UTC().Format(time.RFC3339), err))
			continue
		}
		if m.Value == nil && !m.Inf {
			if !blocked {
				v = append(v, fmt.Sprintf("gate: Prometheus had no data at %s and the gate (noData: Block) decided %s: %s", g.LastEvaluatedAt.UTC().Format(time.RFC3339), g.Decision, rn.record(a.seq)))
			}
			continue
		}
		if m.Inf {
			if !blocked {
				v = append(v, fmt.Sprintf("gate: Prometheus' p95 was +Inf at %s and the gate decided %s: %s", g.LastEvaluatedAt.UTC().Format(time.RFC3339), g.Decision, rn.record(a.seq)))
			}
			continue
		}
		ms, _ := new(big.Rat).Mul(m.Value, big.NewRat(1000, 1)).Float64()
		if near := ms > sloObjectiveMs*(1-decisionMargin) && ms < sloObjectiveMs*(1+decisionMargin); near {
			continue
		}
		if blocked != (ms > sloObjectiveMs) {
			v = append(v, fmt.Sprintf("gate: decided %s at %s while Prometheus' p95 was %s ms (objective %d ms): %s",
				g.Decision, g.LastEvaluatedAt.UTC().Format(time.RFC3339), strconv.FormatFloat(ms, 'f', 1, 64), sloObjectiveMs, rn.record(a.seq)))
		}
	}
	if len(seen) == 0 {
		v = append(v, "gate: no answer of the gate carried an evaluation")
	}
	return v
}
