package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
)

// stormFingerprints is how many distinct alerts a storm repeats.
const stormFingerprints = 20

// ceilings measure the API server alone, before any replica runs: a plain
// create plus the one status write that makes an Alert New (at the
// creators' concurrency), then the two status writes of a claim and an ack
// (at the claimers' concurrency), both as the operator's ServiceAccount
// (the admission policies judge these writes as they judge the operator's)
// without a client-side rate limit.
func (r *run) ceilings() {
	ns := r.namespace("ceiling-")
	if r.rep.ceilingNS == "" {
		r.rep.ceilingNS = ns
	}
	n := r.size.Alerts
	clients := r.operatorClients(r.size.Creators)
	made := make([]*v1.Alert, n)
	first := r.rep.ceilingNS == ns
	before := r.requests()
	start := time.Now()
	r.check(parallel(n, len(clients), func(w, i int) error {
		a := uniqueAlert(ns, i)
		if err := clients[w].Create(r.ctx, a); err != nil {
			return err
		}
		orig := a.DeepCopy()
		fp := fingerprint.Compute(a.Spec.Service, a.Spec.Env, a.Spec.Kind, a.Spec.Labels)
		alertstate.MarkCanonical(&a.Status, fp, a.CreationTimestamp, a.Generation)
		made[i] = a
		// As the operator writes its decision: a merge patch with the
		// resourceVersion it read.
		return clients[w].Status().Patch(r.ctx, a, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	}))
	r.rep.baseline("1", float64(n)/time.Since(start).Seconds())
	if first {
		r.quiesce()
		cost, _ := perUnit(r.requests().Sub(before), float64(n))
		r.rep.path("the raw ceiling's create + status write (per Alert, no controller running; compare with create → New)", cost)
	}

	who := alertstate.Caller{Owner: "bench", User: r.env.Control.Install.Username()}
	claimers := r.operatorClients(r.size.Claimers)
	patch := func(c client.Client, a *v1.Alert, op func(*v1.AlertStatus) error) error {
		orig := a.DeepCopy()
		if err := op(&a.Status); err != nil {
			return err
		}
		return c.Status().Patch(r.ctx, a, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	}
	start = time.Now()
	r.check(parallel(n, len(claimers), func(w, i int) error {
		a := made[i]
		if err := patch(claimers[w], a, func(s *v1.AlertStatus) error { return alertstate.Claim(s, who, 10*time.Minute, time.Now()) }); err != nil {
			return err
		}
		return patch(claimers[w], a, func(s *v1.AlertStatus) error { return alertstate.Ack(s, who, "handled", time.Now()) })
	}))
	r.rep.baseline("1b", float64(n)/time.Since(start).Seconds())
}

// baselinesAgain stops the replicas (SIGTERM) and measures the baselines a
// second time: the machine is shared, and its load moves during a run, so
// each figure is compared with the mean of a measurement before and one
// after it.
func (r *run) baselinesAgain() {
	for _, rep := range r.env.Replicas {
		r.check(rep.Stop())
	}
	r.ceilings()
	r.upsertBaseline()
}

// baselineRows renders rows 1, 1b and 2.
func (r *run) baselineRows() {
	p := r.rep
	p.add("1", fmt.Sprintf("raw ceiling: plain create + status write as the operator's ServiceAccount, no controller running (%d writers)", r.size.Creators),
		p.both("1", "%.0f Alerts/s"), "", "")
	p.add("1b", fmt.Sprintf("raw 2-write ceiling: the claim and the ack status writes of an Alert, no controller running (%d writers)", r.size.Claimers),
		p.both("1b", "%.0f Alerts/s"), "", "")
	var parts []string
	for _, senders := range r.size.Senders {
		parts = append(parts, fmt.Sprintf("%d conns: %s", senders, p.both(upsertKey(senders), "%.0f/s")))
	}
	p.add("2", "PostgreSQL upsert baseline: `INSERT … ON CONFLICT DO UPDATE` of a counter, 20 fingerprints, fsync and synchronous_commit on",
		strings.Join(parts, "; "), "", "")
}

func upsertKey(senders int) string { return fmt.Sprintf("2@%d", senders) }

// upsert counts one occurrence of fingerprint $1 (labels $2) the way a
// PostgreSQL alert table does: INSERT … ON CONFLICT DO UPDATE of a
// counter. upsertBaseline runs it on the same durable PostgreSQL (fsync
// and synchronous_commit on), with the storm's occurrences over the same
// 20 fingerprints and as many connections as the storm has senders.
const upsert = `INSERT INTO occurrences VALUES ($1, 'gateway', 'latency', 'p95 above 300ms', $2, 1, now(), now())
	ON CONFLICT (fingerprint) DO UPDATE SET occurrences = occurrences.occurrences + 1, last_seen_at = excluded.last_seen_at`

// upsertDSN creates the upsert's database and table if need be and
// returns the database's URL.
func (r *run) upsertDSN() string {
	if _, err := r.db.Exec(r.ctx, "CREATE DATABASE bench"); err != nil && !strings.Contains(err.Error(), "already exists") {
		r.fatal(err)
	}
	dsn := r.env.PG.DSNFor("postgres", r.env.PG.Password, "bench")
	setup, err := pgx.Connect(r.ctx, dsn)
	r.check(err)
	defer func() { _ = setup.Close(r.ctx) }()
	_, err = setup.Exec(r.ctx, `CREATE TABLE IF NOT EXISTS occurrences (
		fingerprint text PRIMARY KEY, service text NOT NULL, kind text NOT NULL, title text NOT NULL,
		labels jsonb NOT NULL, occurrences bigint NOT NULL, first_seen_at timestamptz NOT NULL, last_seen_at timestamptz NOT NULL)`)
	r.check(err)
	return dsn
}

func (r *run) upsertBaseline() {
	dsn := r.upsertDSN()
	setup, err := pgx.Connect(r.ctx, dsn)
	r.check(err)
	defer func() { _ = setup.Close(r.ctx) }()
	for _, senders := range r.size.Senders {
		_, err := setup.Exec(r.ctx, "TRUNCATE occurrences")
		r.check(err)
		conns := make([]*pgx.Conn, senders)
		for i := range conns {
			conns[i], err = pgx.Connect(r.ctx, dsn)
			r.check(err)
		}
		n := r.size.Storm
		lat := make([]time.Duration, n)
		start := time.Now()
		r.check(parallel(n, senders, func(w, i int) error {
			fp := i % stormFingerprints
			t := time.Now()
			_, err := conns[w].Exec(r.ctx, upsert, fmt.Sprintf("fp-%02d", fp), fmt.Sprintf(`{"host":"h%02d"}`, fp))
			lat[i] = time.Since(t)
			return err
		}))
		rate := float64(n) / time.Since(start).Seconds()
		var total int
		r.check(setup.QueryRow(r.ctx, "SELECT sum(occurrences) FROM occurrences").Scan(&total))
		if total != n {
			r.fatal(fmt.Errorf("the upsert baseline counted %d of %d occurrences", total, n))
		}
		closeAll(r.ctx, conns)
		r.rep.baseline(upsertKey(senders), rate)
		slices.Sort(lat)
		r.say("upsert baseline, %d conns: %.0f/s (p50 %s, p99 %s)", senders, rate, ms(pct(lat, 50)), ms(pct(lat, 99)))
	}
}

func closeAll(ctx context.Context, conns []*pgx.Conn) {
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.Close(ctx) })
	}
	wg.Wait()
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// ms renders d in milliseconds, e.g. "12.3 ms".
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
