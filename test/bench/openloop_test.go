package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Open loop: occurrences offered at a fixed rate whatever the answers,
// as alerts arrive in a storm, at rising rates. A rate is sustained when
// every occurrence offered was sent (no more than openInFlight waiting),
// at most 1% were refused (429/503), the p99 latency measured from the
// moment each was due (so queueing counts) is at most a second, and the
// Alerts count every acknowledged one. The PostgreSQL upsert is offered the
// same schedule.
const (
	openInFlight  = 4096
	openMaxP99    = time.Second
	openMaxRefuse = 0.01
	// openConns is the HTTP connections per API replica.
	openConns = 128
)

// openRates are the offered rates, occurrences per second.
var openRates = []int{500, 1000, 2000, 4000, 8000, 16000}

// offered is what one rate's run saw.
type offered struct {
	rate                          int
	due, sent, ok, refused, other int64
	dropped                       int64
	lat                           []time.Duration
}

func (o *offered) p99() time.Duration { return pct(o.lat, 99) }

func (o *offered) sustained() bool {
	return o.dropped == 0 && o.other == 0 && float64(o.refused) <= openMaxRefuse*float64(o.sent) && o.p99() <= openMaxP99
}

func (o *offered) String() string {
	s := fmt.Sprintf("%d/s: %d sent, p50 %s, p99 %s", o.rate, o.sent, ms(pct(o.lat, 50)), ms(o.p99()))
	if o.refused > 0 {
		s += fmt.Sprintf(", %d refused", o.refused)
	}
	if o.other > 0 {
		s += fmt.Sprintf(", %d failed", o.other)
	}
	if o.dropped > 0 {
		s += fmt.Sprintf(", %d not sent (%d waiting)", o.dropped, openInFlight)
	}
	return s
}

// offer calls send for occurrence i at start + i/rate for d. send says
// whether the occurrence was acknowledged (ok), refused (asked to retry),
// or failed otherwise (err).
func offer(ctx context.Context, rate int, d time.Duration, send func(i int) (ok, refused bool, err error)) *offered {
	o := &offered{rate: rate}
	n := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, n)
	sentAt := make([]bool, n)
	sem := make(chan struct{}, openInFlight)
	var wg sync.WaitGroup
	var ok, refused, other, dropped atomic.Int64
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; {
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		for ; i < due; i++ {
			at := start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))
			select {
			case sem <- struct{}{}:
			default:
				dropped.Add(1)
				continue
			}
			sentAt[i] = true
			j := i // i moves on before the goroutine runs
			wg.Go(func() {
				defer func() { <-sem }()
				y, r, err := send(j)
				lat[j] = time.Since(at)
				switch {
				case err != nil:
					other.Add(1)
				case r:
					refused.Add(1)
				case y:
					ok.Add(1)
				}
			})
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	for i, s := range sentAt {
		if s {
			o.lat = append(o.lat, lat[i])
		}
	}
	slices.Sort(o.lat)
	o.due, o.sent = int64(n), int64(len(o.lat))
	o.ok, o.refused, o.other, o.dropped = ok.Load(), refused.Load(), other.Load(), dropped.Load()
	return o
}

// openLoop finds the highest sustained rate of the PostgreSQL upsert and of
// the HTTP intake (20 fingerprints, no new Alert), then of the intake with
// 10% of the occurrences starting a new Alert (against the create ceiling).
func (r *run) openLoop() {
	d := envDuration("BENCH_OPEN_FOR", time.Minute)
	pg := r.openUpsert(d)
	r.rep.baseline("2open", float64(pg))
	same := r.openIntake(d, 0)
	r.rep.addVs("4o", fmt.Sprintf("open-loop capacity: highest rate sustained for %s (p99 ≤ 1 s from the due time, ≤ 1%% refused, all counted), 20 fingerprints, POST /v1/alerts spread over both replicas", d),
		fmt.Sprintf("%d occurrences/s; PostgreSQL upsert, same schedule: %d/s", same, pg),
		comparison{value: float64(same), base: "2open", label: "of the upsert's", min: 1, metric: "open/upsert"})
	fresh := r.openIntake(d, 10)
	r.rep.addVs("4p", fmt.Sprintf("open-loop capacity, 10%% of occurrences start a new Alert (%s per rate)", d),
		fmt.Sprintf("%d occurrences/s = %d new Alerts/s", fresh, fresh/10),
		comparison{value: float64(fresh / 10), base: "1", label: "of 1 (new Alerts/s)"})
}

// openUpsert is the PostgreSQL upsert's highest sustained rate.
func (r *run) openUpsert(d time.Duration) int {
	pool, err := pgxpool.New(r.ctx, r.upsertDSN()+"&pool_max_conns=64")
	r.check(err)
	defer pool.Close()
	best := 0
	for _, rate := range openRates {
		_, err := pool.Exec(r.ctx, "TRUNCATE occurrences")
		r.check(err)
		o := offer(r.ctx, rate, d, func(i int) (bool, bool, error) {
			fp := i % stormFingerprints
			_, err := pool.Exec(r.ctx, upsert, fmt.Sprintf("fp-%02d", fp), fmt.Sprintf(`{"host":"h%02d"}`, fp))
			return err == nil, false, err
		})
		var total int64
		r.check(pool.QueryRow(r.ctx, "SELECT coalesce(sum(occurrences), 0) FROM occurrences").Scan(&total))
		r.say("open loop, PostgreSQL upsert, %s, %d counted", o, total)
		if !o.sustained() || total != o.ok {
			break
		}
		best = rate
	}
	return best
}

// openIntake is the HTTP intake's highest sustained rate with newPct% of
// occurrences starting a new Alert. Each rate runs in a namespace of its
// own, whose Alerts are deleted before the next.
func (r *run) openIntake(d time.Duration, newPct int) int {
	urls := r.env.APIURLs()
	clients := make([]*http.Client, len(urls))
	for i := range clients {
		c, err := r.env.APIClient(r.ctx)
		r.check(err)
		// As many connections as the largest closed-loop storm has senders,
		// kept open: monitors and Alertmanager hold theirs, and a client
		// that dials a new TLS connection for every request in flight
		// measures handshakes, not the intake.
		t := c.Transport.(*http.Transport)
		t.MaxConnsPerHost, t.MaxIdleConnsPerHost = openConns, openConns
		clients[i] = c
	}
	best := 0
	for _, rate := range openRates {
		ns := r.namespace(fmt.Sprintf("open-%d-", rate))
		tok, err := r.user(ns, "monitor", "alertbridge-monitor").APIToken(r.ctx)
		r.check(err)
		r.profile(d/4, fmt.Sprintf("open%d-%dnew", rate, newPct))
		o := offer(r.ctx, rate, d, func(i int) (bool, bool, error) {
			host := fmt.Sprintf("h%02d", i%stormFingerprints)
			if newPct > 0 && i%100 < newPct {
				host = fmt.Sprintf("new-%d", i)
			}
			body := fmt.Appendf(nil, `{"service":"gateway","kind":"latency","title":"p95 above 300ms","labels":{"host":%q}}`, host)
			w := i % len(urls)
			code, _, err := post(r.ctx, clients[w], urls[w]+"/v1/alerts?namespace="+ns, tok, body)
			switch {
			case err != nil:
				return false, false, err
			case code == http.StatusOK:
				return true, false, nil
			case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
				return false, true, nil
			}
			return false, false, fmt.Errorf("POST /v1/alerts: %d", code)
		})
		counted := r.openCounted(ns, o.ok)
		r.say("open loop, HTTP intake, %d%% new, %s, %d of %d acknowledged counted", newPct, o, counted, o.ok)
		r.clearNamespace(ns)
		if !o.sustained() || counted < o.ok {
			break
		}
		best = rate
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return best
}

// openCounted waits (a bounded while) for the namespace's Alerts to count
// at least acked occurrences, and returns what they count.
func (r *run) openCounted(ns string, acked int64) int64 {
	var occ int64
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		occ = 0
		for _, a := range r.alerts(ns) {
			if a.Status.Phase != v1.AlertDeduplicated {
				occ += a.Status.Occurrences
			}
		}
		if occ >= acked {
			break
		}
		time.Sleep(pollEvery)
	}
	return occ
}

// clearNamespace deletes the namespace's Alerts (the operator lets them go
// once mirrored) and waits for them to be gone, so that a run stays below
// the footprint row's Alert count.
func (r *run) clearNamespace(ns string) {
	r.check(r.admin.DeleteAllOf(r.ctx, &v1.Alert{}, client.InNamespace(ns)))
	r.waitAlerts(ns, "every Alert deleted", func(items []v1.Alert) bool { return len(items) == 0 })
}
