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
	r.rep.ceilingNS = ns
	n := r.size.Alerts
	clients := r.operatorClients(r.size.Creators)
	made := make([]*v1.Alert, n)
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
	r.ceiling = float64(n) / time.Since(start).Seconds()
	r.rep.add("1", fmt.Sprintf("raw ceiling: plain create + status write, no controller (%d writers)", r.size.Creators),
		fmt.Sprintf("%.0f Alerts/s", r.ceiling), "", "")

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
	r.ceiling2 = float64(n) / time.Since(start).Seconds()
	r.rep.add("1b", fmt.Sprintf("raw 2-write ceiling: the claim and the ack status writes of an Alert, no controller (%d writers)", r.size.Claimers),
		fmt.Sprintf("%.0f Alerts/s", r.ceiling2), "", "")
}

// upsertBaseline is what the runbook's PostgreSQL design did per
// occurrence: INSERT … ON CONFLICT DO UPDATE of a counter, on the same
// durable PostgreSQL (fsync and synchronous_commit on), with the same
// occurrences over the same 20 fingerprints and as many connections as the
// storm has senders.
func (r *run) upsertBaseline() {
	if _, err := r.db.Exec(r.ctx, "CREATE DATABASE bench"); err != nil && !strings.Contains(err.Error(), "already exists") {
		r.fatal(err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/bench?sslmode=disable", r.env.PG.Port)
	setup, err := pgx.Connect(r.ctx, dsn)
	r.check(err)
	defer func() { _ = setup.Close(r.ctx) }()
	_, err = setup.Exec(r.ctx, `CREATE TABLE IF NOT EXISTS occurrences (
		fingerprint text PRIMARY KEY, service text NOT NULL, kind text NOT NULL, title text NOT NULL,
		labels jsonb NOT NULL, occurrences bigint NOT NULL, first_seen_at timestamptz NOT NULL, last_seen_at timestamptz NOT NULL)`)
	r.check(err)
	const upsert = `INSERT INTO occurrences VALUES ($1, 'gateway', 'latency', 'p95 above 300ms', $2, 1, now(), now())
		ON CONFLICT (fingerprint) DO UPDATE SET occurrences = occurrences.occurrences + 1, last_seen_at = excluded.last_seen_at`
	var results []string
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
		r.upsert[senders] = rate
		slices.Sort(lat)
		results = append(results, fmt.Sprintf("%d conns: %.0f/s (p50 %s, p99 %s)", senders, rate, ms(pct(lat, 50)), ms(pct(lat, 99))))
	}
	r.rep.add("2", "PostgreSQL upsert baseline: `INSERT … ON CONFLICT DO UPDATE` of a counter, 20 fingerprints, fsync and synchronous_commit on",
		strings.Join(results, "; "), "", "")
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
