// Package chaos runs alertbridge as shipped (two replicas with leader
// election, TLS, --mirror=required, a durable PostgreSQL) under a storm of
// HTTP ingest and Alertmanager webhooks, 8 claiming agents, conversions
// and an SLOPolicy's gate, injects faults on a seeded schedule (kill -9 of
// either replica, SIGTERM mid-request, PostgreSQL immediate stops,
// kube-apiserver and etcd stops), lets the system settle and then judges
// the journal of every request against the cluster and PostgreSQL (see
// Oracle). `make chaos` and `make chaos-many` run it; a 60-second variant
// runs in `make test`.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
)

// Config says how hard a run is.
type Config struct {
	Seed     int64
	Duration time.Duration
	// Monitors and Alertmanagers are the storm's senders; Agents claim.
	Monitors, Alertmanagers, Agents int
	// Fingerprints per sender kind (services web-NN and am-NN).
	Fingerprints int
	// Pause is a sender's mean pause between requests.
	Pause time.Duration
	// Settle bounds the wait for the oracle to hold after the storm.
	Settle time.Duration
	// Out receives progress and the report.
	Out io.Writer
	// KeepDir keeps the journal and logs of a clean run too.
	KeepDir bool
}

// CIConfig is the 60-second run of `make test`: a fixed seed, a small
// storm, and the leader's kill and a PostgreSQL outage among its faults.
func CIConfig() Config {
	return Config{Seed: 1, Duration: time.Minute, Monitors: 2, Alertmanagers: 1, Agents: 8, Fingerprints: 6,
		Pause: 300 * time.Millisecond, Settle: 3 * time.Minute, Out: os.Stdout}
}

// FullConfig is `make chaos`.
func FullConfig(seed int64, d time.Duration) Config {
	return Config{Seed: seed, Duration: d, Monitors: 6, Alertmanagers: 2, Agents: 8, Fingerprints: 12,
		Pause: 100 * time.Millisecond, Settle: 4 * time.Minute, Out: os.Stdout}
}

// Result is what a run did and found.
type Result struct {
	Seed     int64         `json:"seed"`
	Duration time.Duration `json:"duration"`
	Schedule []Fault       `json:"schedule"`
	Injected []*Injected   `json:"injected"`
	// Requests counts journalled requests by op; NoAnswer those that got
	// no answer at all.
	Requests map[string]int `json:"requests"`
	NoAnswer int            `json:"noAnswer"`
	// Occurrences the storm meant, confirmed by a 2xx, and left unknown.
	Occurrences, Confirmed, Unknown int
	Counted                         int64
	Refused                         map[int]int
	Claims, Actions, Conversions    int
	// Gate counts the gate's evaluations (seen in its answers) by decision.
	Gate           map[string]int
	Restarts       map[string]int
	RestartReasons []string
	Violations     []string
	// Dir keeps the journal, logs and kubeconfigs of a failed run.
	Dir string
}

type runner struct {
	cfg     Config
	env     *shipped.Env
	ns      string
	journal *Journal
	ledger  *ledger
	claims  *claimLog
	gates   *gateLog

	mu       sync.Mutex
	injected []*Injected
	// counted is the cluster's occurrences at the last oracle.
	counted int64
	// caller is the senders' user: the intake scopes their keys to it.
	caller string
	// prom scrapes exporter, the SLOPolicy's service; gateStats counts
	// the gate's evaluations by decision.
	prom      *promtest.Server
	exporter  *exporter
	gateStats map[string]int
}

const chaosNamespace = "chaos"

// Run runs one seeded chaos run; an error is a run that could not be
// judged, Result.Violations what the oracle found.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("alertbridge-chaos-%d-", cfg.Seed))
	if err != nil {
		return nil, err
	}
	res = &Result{Seed: cfg.Seed, Duration: cfg.Duration, Schedule: Schedule(cfg.Seed, cfg.Duration), Dir: dir}
	keep := true
	defer func() {
		if !keep {
			_ = os.RemoveAll(dir)
			res.Dir = ""
		}
	}()
	logf := func(format string, args ...any) {
		_, _ = fmt.Fprintf(cfg.Out, "chaos seed=%d %s "+format+"\n", append([]any{cfg.Seed, time.Now().UTC().Format(time.TimeOnly)}, args...)...)
	}
	logf("schedule: %s", scheduleString(res.Schedule))
	env, err := shipped.Start(ctx, shipped.Options{Dir: dir})
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, env.Stop()) }()
	rn := &runner{cfg: cfg, env: env, ns: chaosNamespace, ledger: newLedger(), claims: &claimLog{}, gates: &gateLog{}}
	if rn.journal, err = newJournal(filepath.Join(dir, "journal.jsonl")); err != nil {
		return res, err
	}
	defer func() { _ = rn.journal.close() }()
	// The SLOPolicy's service breaches its objective in one seeded window
	// of the storm (the setup's minute or so included in the offsets).
	brng := seeded(cfg.Seed, 0x9a7e)
	breachAt := cfg.Duration/4 + time.Duration(brng.Int64N(int64(cfg.Duration/4)))
	if rn.exporter, err = startExporter(stormService("web", 0), "prod", time.Now(), breachAt, breachAt+cfg.Duration/3); err != nil {
		return res, err
	}
	defer rn.exporter.stop()
	if rn.prom, err = promtest.Start(ctx, rn.exporter.addr); err != nil {
		return res, err
	}
	defer rn.prom.Stop()
	senders, agents, err := rn.setup(ctx)
	if err != nil {
		return res, err
	}
	logf("ready: %d manager and %d API replicas, %d monitors, %d alertmanagers, %d agents; storm for %s",
		len(env.Replicas), len(env.APIReplicas), cfg.Monitors, cfg.Alertmanagers, len(agents), cfg.Duration)

	kctx, kstop := context.WithCancel(ctx)
	var kwg sync.WaitGroup
	kl := &kubelet{restarts: map[string]int{}}
	for _, r := range env.All() {
		kl.supervise(kctx, r, &kwg)
	}
	defer func() {
		kstop()
		kwg.Wait()
	}()

	sctx, sstop := context.WithTimeout(ctx, cfg.Duration)
	defer sstop()
	var swg, mwg sync.WaitGroup
	for _, s := range senders {
		if strings.HasPrefix(s.name, "am") {
			swg.Go(func() { s.alertmanager(sctx) })
		} else {
			swg.Go(func() { s.monitor(sctx) })
		}
	}
	for _, a := range agents {
		swg.Go(func() { a.loop(sctx) })
	}
	swg.Go(func() { agents[0].gate(sctx, sloPolicyName) })
	start := time.Now()
	for _, f := range res.Schedule {
		sleep(sctx, time.Until(start.Add(f.At)))
		if sctx.Err() != nil {
			break
		}
		in := rn.inject(sctx, f, &mwg)
		logf("fault %s on %s: ready after %s %s", f, in.Target, dur(in.Ready), in.Err)
	}
	swg.Wait()
	logf("storm over after %s: %d requests; settling", time.Since(start).Round(time.Second), rn.journal.Len())
	if d := rn.waitReady(ctx, time.Now()); d < 0 {
		logf("replicas not ready after the storm:\n%s", env.Logs(30))
	}
	res.Violations = rn.settle(ctx, logf)
	mwg.Wait()
	kl.mu.Lock()
	res.Restarts, res.RestartReasons = kl.restarts, kl.reasons
	kl.mu.Unlock()
	rn.summarize(res)
	keep = len(res.Violations) > 0 || cfg.KeepDir
	return res, nil
}

// settle re-runs the oracle until it holds or cfg.Settle passes, and
// returns the last violations.
func (rn *runner) settle(ctx context.Context, logf func(string, ...any)) []string {
	deadline := time.Now().Add(rn.cfg.Settle)
	var v []string
	for {
		v = rn.oracle(ctx)
		if len(v) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return v
		}
		logf("not settled yet (%d open findings), first: %s", len(v), v[0])
		sleep(ctx, 3*time.Second)
	}
}

const sloPolicyName = "web"

// setup creates the namespace, the users of the shipped roles, the
// SLOPolicy, and the senders and agents with their own connections.
func (rn *runner) setup(ctx context.Context) ([]*sender, []*agent, error) {
	e := rn.env
	if err := e.Admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rn.ns}}); err != nil {
		return nil, nil, err
	}
	// The gate reads the run's Prometheus, which scrapes the exporter.
	slo := &v1.SLOPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: sloPolicyName, Namespace: rn.ns},
		Spec: v1.SLOPolicySpec{
			Service: stormService("web", 0), Env: "prod",
			Objectives:         v1.SLOObjectives{LatencyP95Ms: ptrTo(int64(sloObjectiveMs))},
			Source:             v1.SLOSource{Prometheus: v1.PrometheusSource{URL: rn.prom.URL()}},
			Gate:               v1.GateSpec{Mode: v1.GateStrict, NoData: v1.NoDataBlock},
			EvaluationInterval: &metav1.Duration{Duration: 15 * time.Second},
		},
	}
	// Right after the install the API server's mutating admission policy
	// dispatcher may not map the kind yet ("Resource kind … not found.
	// There can be a delay …", seen on a loaded machine): ask again.
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		last = e.Admin.Create(ctx, slo.DeepCopy())
		return last == nil || apierrors.IsAlreadyExists(last), nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create the SLOPolicy: %w (last: %w)", err, last)
	}
	oncall, err := e.User(ctx, rn.ns, "oncall", "alertbridge-oncall")
	if err != nil {
		return nil, nil, err
	}
	oncallTok, err := oncall.APIToken(ctx)
	if err != nil {
		return nil, nil, err
	}
	newHC := func() (*http.Client, error) {
		hc, err := e.APIClient(ctx)
		if err != nil {
			return nil, err
		}
		hc.Timeout = requestTimeout
		return hc, nil
	}
	var senders []*sender
	mon, err := e.User(ctx, rn.ns, "monitor", "alertbridge-monitor")
	if err != nil {
		return nil, nil, err
	}
	monTok, err := mon.APIToken(ctx)
	if err != nil {
		return nil, nil, err
	}
	rn.caller = mon.Username
	for i := range rn.cfg.Monitors + rn.cfg.Alertmanagers {
		hc, err := newHC()
		if err != nil {
			return nil, nil, err
		}
		name := fmt.Sprintf("mon%d", i)
		if i >= rn.cfg.Monitors {
			name = fmt.Sprintf("am%d", i-rn.cfg.Monitors)
		}
		senders = append(senders, &sender{run: rn, name: name, hc: hc, token: monTok,
			rng: seeded(rn.cfg.Seed, uint64(100+i))})
	}
	var agents []*agent
	for i := range rn.cfg.Agents {
		u, err := e.User(ctx, rn.ns, fmt.Sprintf("agent-%d", i), "alertbridge-agent")
		if err != nil {
			return nil, nil, err
		}
		tok, err := u.APIToken(ctx)
		if err != nil {
			return nil, nil, err
		}
		hc, err := newHC()
		if err != nil {
			return nil, nil, err
		}
		agents = append(agents, &agent{run: rn, name: fmt.Sprintf("agent-%d", i), hc: hc, token: tok, oncall: oncallTok,
			rng: seeded(rn.cfg.Seed, uint64(200+i)), replica: i})
	}
	return senders, agents, nil
}

func ptrTo[T any](v T) *T { return &v }

func (rn *runner) summarize(res *Result) {
	res.Requests, res.NoAnswer = rn.journal.Count()
	res.Counted = rn.counted
	res.Gate = rn.gateStats
	res.Occurrences, res.Confirmed, res.Unknown = rn.ledger.totals()
	rn.ledger.mu.Lock()
	res.Refused = rn.ledger.refused
	rn.ledger.mu.Unlock()
	rn.claims.mu.Lock()
	res.Claims, res.Actions, res.Conversions = len(rn.claims.claims), len(rn.claims.actions), len(rn.claims.conversions)
	rn.claims.mu.Unlock()
	rn.mu.Lock()
	res.Injected = rn.injected
	rn.mu.Unlock()
	for _, in := range res.Injected {
		if in.url != "" {
			until := in.exited
			if until.Before(in.Started) {
				until = in.Started
			}
			in.InFlight = rn.journal.InFlight(in.url, in.Started, until)
		}
	}
}

func scheduleString(fs []Fault) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

func dur(d time.Duration) string {
	switch {
	case d < 0:
		return "timeout"
	case d == 0:
		return "-"
	}
	return d.Round(100 * time.Millisecond).String()
}

// Report is the run's figures as text.
func (res *Result) Report() string {
	var b strings.Builder
	total := 0
	ops := make([]string, 0, len(res.Requests))
	for op, n := range res.Requests {
		total += n
		ops = append(ops, fmt.Sprintf("%s %d", op, n))
	}
	sort.Strings(ops)
	fmt.Fprintf(&b, "seed %d, storm %s\n", res.Seed, res.Duration)
	fmt.Fprintf(&b, "requests: %d (%s), %d without an answer\n", total, strings.Join(ops, ", "), res.NoAnswer)
	fmt.Fprintf(&b, "occurrences: %d sent, %d confirmed by a 2xx, %d answer lost (may or may not count); %d counted in the cluster; 4xx refusals %v\n",
		res.Occurrences, res.Confirmed, res.Unknown, res.Counted, res.Refused)
	fmt.Fprintf(&b, "work queue: %d claims, %d acks/fails answered 200, %d conversions\n", res.Claims, res.Actions, res.Conversions)
	fmt.Fprintf(&b, "gate evaluations by decision: %v\n", res.Gate)
	fmt.Fprintf(&b, "replica restarts (the kubelet's, after any exit): %v\n", res.Restarts)
	for _, r := range res.RestartReasons {
		fmt.Fprintf(&b, "  restart %s\n", r)
	}
	for _, in := range res.Injected {
		target := in.Target
		if in.url != "" {
			target += fmt.Sprintf(", %d requests in flight or draining", in.InFlight)
		}
		fmt.Fprintf(&b, "  fault %-44s %-52s down %-7s failover %-7s mirror catch-up %-7s ready after %s %s\n",
			in.String(), target, dur(in.Down), dur(in.Failover), dur(in.CatchUp), dur(in.Ready), in.Err)
	}
	fmt.Fprintf(&b, "violations: %d\n", len(res.Violations))
	if len(res.Violations) > 0 {
		fmt.Fprintf(&b, "  seed %d, schedule: %s\n", res.Seed, scheduleString(res.Schedule))
	}
	for _, v := range res.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	if res.Dir != "" {
		fmt.Fprintf(&b, "kept: %s (journal.jsonl, replica logs)\n", res.Dir)
	}
	return b.String()
}

// JSON is the result as one JSON document.
func (res *Result) JSON() []byte {
	b, _ := json.MarshalIndent(res, "", "  ")
	return b
}
