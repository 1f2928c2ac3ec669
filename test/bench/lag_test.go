package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/apimachinery/pkg/util/wait"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// lagProbe records, in a schema of the benchmark's own, when each Alert's
// row first reached phase Acked: a trigger on the mirror's alerts table
// (the row's mirrored_at moves on with every later write, a deletion
// included). The time is the database's clock, the host's clock; the
// statement's commit follows it by one WAL flush.
const lagProbe = `
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.acked (uid text PRIMARY KEY, at timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION bench.record_ack() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.phase = 'Acked' AND (TG_OP = 'INSERT' OR OLD.phase IS DISTINCT FROM 'Acked') THEN
		INSERT INTO bench.acked VALUES (NEW.uid, clock_timestamp()) ON CONFLICT DO NOTHING;
	END IF;
	RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_record_ack ON public.alerts;
CREATE TRIGGER bench_record_ack AFTER INSERT OR UPDATE ON public.alerts FOR EACH ROW EXECUTE FUNCTION bench.record_ack();
`

func installLagProbe(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, lagProbe)
	return err
}

// mirrorLags waits until every ack in starts reached PostgreSQL and returns
// each one's lag, sorted: from just before the agent sent the ack to its
// row turning Acked.
func (r *run) mirrorLags(starts *ackStarts) []time.Duration {
	starts.mu.Lock()
	defer starts.mu.Unlock()
	uids := make([]string, 0, len(starts.at))
	sent := make(map[string]time.Time, len(starts.at))
	for uid, t := range starts.at {
		uids = append(uids, string(uid))
		sent[string(uid)] = t
	}
	if len(uids) == 0 {
		return nil
	}
	var got int
	err := wait.PollUntilContextTimeout(r.ctx, 100*time.Millisecond, settleLimit, true, func(ctx context.Context) (bool, error) {
		err := r.db.QueryRow(ctx, "SELECT count(*) FROM bench.acked WHERE uid = ANY($1)", uids).Scan(&got)
		return got == len(uids), err
	})
	if err != nil {
		r.fatal(fmt.Errorf("%d of %d acks reached PostgreSQL within %s: %w", got, len(uids), settleLimit, err))
	}
	rows, err := r.db.Query(r.ctx, "SELECT uid, at FROM bench.acked WHERE uid = ANY($1)", uids)
	r.check(err)
	defer rows.Close()
	lags := make([]time.Duration, 0, len(uids))
	for rows.Next() {
		var uid string
		var at time.Time
		r.check(rows.Scan(&uid, &at))
		lags = append(lags, at.Sub(sent[uid]))
	}
	r.check(rows.Err())
	slices.Sort(lags)
	return lags
}

// lagRow reports a mirror lag against the goal of the "1M a day" run and a
// bare guarded upsert measured now.
func lagRow(r *run, id, what string, lags []time.Duration) {
	if len(lags) == 0 {
		return
	}
	p99 := pct(lags, 99)
	bare := r.bareUpsert()
	r.rep.add(id, what, fmt.Sprintf("p50 %s, p99 %s, max %s (%d acks)", ms(pct(lags, 50)), ms(p99), ms(lags[len(lags)-1]), len(lags)),
		fmt.Sprintf("a bare guarded upsert (mirror.Store) takes %s", ms(bare)), goal("p99 ≤ 1 s", p99 <= time.Second))
}

// bareUpsert is the median of 100 guarded upserts of one Alert row,
// straight to the database: the floor of the mirror's lag.
func (r *run) bareUpsert() time.Duration {
	s, err := mirror.Open(r.ctx, r.env.PG.DSN())
	r.check(err)
	defer s.Close()
	a := testbuild.MakeAlert("a", "bench-baseline").UID("bench-baseline-uid").Created(time.Now()).
		Env("prod").Title("t").Severity(v1.SeverityP3).Source("").Obj()
	var base int
	_ = r.db.QueryRow(r.ctx, "SELECT coalesce(max(resource_version), 0)::bigint FROM alerts WHERE uid = $1", string(a.UID)).Scan(&base)
	d := make([]time.Duration, 100)
	for i := range d {
		a.ResourceVersion = fmt.Sprint(base + i + 1)
		t := time.Now()
		_, err := s.UpsertAlert(r.ctx, a)
		r.check(err)
		d[i] = time.Since(t)
	}
	slices.Sort(d)
	return pct(d, 50)
}
