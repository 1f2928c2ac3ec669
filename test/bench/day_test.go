package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The "1M alerts a day" mix: of every occurrence 20% is a new alert and
// 80% repeats one that still fires (is not acked); agents claim what is
// New every second, work on each for dayWork and ack it; on-call takes
// about dayConvert of the new alerts, converts each into an Incident and
// acks it; the namespace's retention deletes an acked Alert dayRetention
// after its ack, once mirrored.
const (
	dayUnique    = 0.2
	dayConvert   = 0.1
	dayWork      = 20 * time.Second
	dayRetention = time.Minute
	dayAgents    = 2
	dayEvery     = 15 * time.Second
	dayInFlight  = 64
)

var (
	dayServices = []string{"gateway", "api", "db"}
	dayKinds    = []string{"latency", "error_rate", "saturation"}
)

// daySample is the cluster's state at one moment of the run.
type daySample struct {
	at                  time.Duration
	live, incidents     int
	stored              float64 // apiserver_storage_objects of Alerts
	etcdSize, etcdInUse float64
}

// openSet is the alerts that still fire: sent and not acked.
type openSet struct {
	mu    sync.Mutex
	hosts []string
}

func (o *openSet) add(h string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hosts = append(o.hosts, h)
}

func (o *openSet) remove(h string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i := slices.Index(o.hosts, h); i >= 0 {
		o.hosts = slices.Delete(o.hosts, i, i+1)
	}
}

func (o *openSet) pick() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.hosts) == 0 {
		return "", false
	}
	return o.hosts[rand.IntN(len(o.hosts))], true
}

func dayBody(host string, id int) []byte {
	return fmt.Appendf(nil, `{"service":%q,"kind":%q,"title":"synthetic alert %d","labels":{"host":%q}}`,
		dayServices[id%len(dayServices)], dayKinds[(id/len(dayServices))%len(dayKinds)], id, host)
}

// day is the compressed "1M alerts a day" run (12 occurrences/s is a
// million a day) with the mirror on and the in-cluster retention active.
func (r *run) day() {
	ctx, cancel := context.WithTimeout(r.ctx, r.size.Day)
	defer cancel()
	ns := r.namespace("day-")
	r.check(r.admin.Create(r.ctx, testbuild.MakeAlertRoutingPolicy(ns).Retention(dayRetention, 10*time.Minute).Obj()))
	tok, err := r.user(ns, "monitor", "alertbridge-monitor").APIToken(r.ctx)
	r.check(err)
	agents := r.agents(ns, dayAgents)
	var oncall struct {
		client client.Client
		user   string
	}
	ou := r.user(ns, "oncall", "alertbridge-oncall")
	oncall.client, err = ou.Client()
	r.check(err)
	oncall.user = ou.Username
	urls := r.env.APIURLs()
	senders := make([]*http.Client, len(urls))
	for i := range senders {
		senders[i], err = r.env.APIClient(r.ctx)
		r.check(err)
	}

	var (
		open                        openSet
		sent, failed, unique, dups  atomic.Int64
		acked, converted, ackErrors atomic.Int64
		firstErr                    atomic.Pointer[error]
		latMu                       sync.Mutex
		lat                         []time.Duration
		starts                      ackStarts
		inflight                    sync.WaitGroup
		samples                     []daySample
	)
	slots := make(chan struct{}, dayInFlight)
	before := r.requests()
	begin := time.Now()

	// Samples of what the cluster holds.
	sample := func() daySample {
		s := daySample{at: time.Since(begin), live: len(r.alerts(ns))}
		var incs v1.IncidentList
		if r.cache.List(r.ctx, &incs, client.InNamespace(ns)) == nil {
			s.incidents = len(incs.Items)
		}
		if m, err := r.env.APIServerMetrics(r.ctx); err == nil {
			var ok bool
			if s.stored, ok = shipped.Gauge(m, "apiserver_resource_objects", map[string]string{"group": v1.GroupVersion.Group, "resource": "alerts"}); !ok {
				s.stored, _ = shipped.Gauge(m, "apiserver_storage_objects", map[string]string{"resource": "alerts." + v1.GroupVersion.Group})
			}
		}
		if m, err := r.env.EtcdMetrics(r.ctx); err == nil {
			s.etcdSize, _ = shipped.Gauge(m, "etcd_mvcc_db_total_size_in_bytes", nil)
			s.etcdInUse, _ = shipped.Gauge(m, "etcd_mvcc_db_total_size_in_use_in_bytes", nil)
		}
		return s
	}
	samples = append(samples, sample())
	var bg sync.WaitGroup
	bg.Go(func() {
		t := time.NewTicker(dayEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				samples = append(samples, sample())
			}
		}
	})

	// The monitors: 12 occurrences a second, whatever the answers take.
	bg.Go(func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / r.size.DayRate))
		defer t.Stop()
		next := 0
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			host, ok := open.pick()
			id := 0
			if !ok || rand.Float64() < dayUnique {
				id, host = next, fmt.Sprintf("d%06d", next)
				next++
				open.add(host)
				unique.Add(1)
			} else {
				dups.Add(1)
				_, _ = fmt.Sscanf(host, "d%06d", &id)
			}
			slots <- struct{}{}
			inflight.Go(func() {
				defer func() { <-slots }()
				t0 := time.Now()
				code, _, err := post(r.ctx, senders[i%len(senders)], urls[i%len(urls)]+"/v1/alerts?namespace="+ns, tok, dayBody(host, id))
				d := time.Since(t0)
				if err != nil || code != http.StatusOK {
					failed.Add(1)
					return
				}
				sent.Add(1)
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			})
		}
	})

	// The agents claim every second, work, and ack; on-call claims one
	// Alert now and then (dayConvert of the new ones), converts it into an
	// Incident as its holder, works, and acks it.
	type held struct {
		alert v1.Alert
		due   time.Time
	}
	type worker struct {
		cl      *claim.Claimer
		owner   string
		limit   int
		every   time.Duration
		convert bool
	}
	workers := []worker{{
		cl: &claim.Claimer{Client: oncall.client, User: oncall.user}, owner: "oncall", limit: 1, convert: true,
		every: time.Duration(float64(time.Second) / (r.size.DayRate * dayUnique * dayConvert)),
	}}
	for i, cl := range agents {
		workers = append(workers, worker{cl: cl, owner: fmt.Sprintf("agent-%d", i), limit: 10, every: time.Second})
	}
	for _, w := range workers {
		cl, owner := w.cl, w.owner
		bg.Go(func() {
			var mine []held
			t := time.NewTicker(w.every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				now := time.Now()
				keep := mine[:0]
				for _, h := range mine {
					if now.Before(h.due) {
						keep = append(keep, h)
						continue
					}
					a := h.alert
					if w.convert {
						if _, err := incident.Convert(ctx, cl.Client, client.ObjectKeyFromObject(&a), incident.Options{Caller: cl.User}); err == nil {
							converted.Add(1)
						} else if ctx.Err() == nil {
							ackErrors.Add(1)
							firstErr.CompareAndSwap(nil, &err)
						}
					}
					t0 := time.Now()
					if _, err := cl.Ack(ctx, client.ObjectKeyFromObject(&a), owner, "handled"); err != nil {
						if ctx.Err() == nil {
							ackErrors.Add(1)
							firstErr.CompareAndSwap(nil, &err)
						}
						continue
					}
					starts.record(a.UID, t0)
					acked.Add(1)
					open.remove(a.Spec.Labels["host"])
				}
				mine = keep
				got, err := cl.Claim(ctx, claim.Request{Namespace: ns, Limit: w.limit, Owner: owner})
				if err != nil {
					continue // nothing to claim, or the run ended
				}
				for _, a := range got {
					mine = append(mine, held{alert: a, due: time.Now().Add(dayWork)})
				}
			}
		})
	}
	<-ctx.Done()
	bg.Wait()
	inflight.Wait()
	elapsed := time.Since(begin)
	samples = append(samples, sample())
	writes := r.requests().Sub(before).Filter(func(q shipped.Request) bool { return q.Write() && !q.Background() }).Total()
	lags := r.mirrorLags(&starts)

	n := sent.Load()
	slices.Sort(lat)
	rate := float64(n) / elapsed.Seconds()
	ing := fmt.Sprintf("%.1f occurrences/s sustained for %s (%d answered 200: %d new alerts, %d repeats; %d failed), latency p50 %s, p99 %s; %d acked (%d converted to Incidents first; %d errors); %.2f API writes per occurrence",
		rate, elapsed.Round(time.Second), n, unique.Load(), dups.Load(), failed.Load(), ms(pct(lat, 50)), ms(pct(lat, 99)),
		acked.Load(), converted.Load(), ackErrors.Load(), writes/float64(max(n, 1)))
	r.rep.add("7a", fmt.Sprintf("\"1M alerts a day\", compressed: %.0f occurrences/s over HTTP (%.0f%% new, the rest repeats of firing alerts), %d agents acking after %s of work, on-call converting %.0f%% to Incidents, mirror on, retention resolvedInCluster=%s",
		r.size.DayRate, 100*dayUnique, dayAgents, dayWork, 100*dayConvert, dayRetention),
		ing, ratio(rate, r.size.DayRate, "of the offered rate"), goal("sustained", failed.Load() == 0 && rate >= 0.95*r.size.DayRate))

	if err := firstErr.Load(); err != nil {
		r.rep.note("The first error of a conversion or an ack in the \"1M a day\" run: %v", *err)
	}
	// Live objects level off once the first acked Alerts pass their
	// retention: the middle third's peak against the last third's.
	third := r.size.Day / 3
	var peak1, peak2, storedMax float64
	for _, s := range samples {
		switch {
		case s.at >= 2*third:
			peak2 = max(peak2, float64(s.live))
		case s.at >= third:
			peak1 = max(peak1, float64(s.live))
		}
		storedMax = max(storedMax, s.stored)
	}
	first, last := samples[0], samples[len(samples)-1]
	objects := fmt.Sprintf("live Alerts in the namespace: peak %.0f in the middle third, %.0f in the last, %d at the end; Incidents %d; Alerts stored in etcd (apiserver_resource_objects, all namespaces) %.0f → peak %.0f → %.0f; etcd database %.1f MiB → %.1f MiB (%.1f MiB in use)",
		peak1, peak2, last.live, last.incidents, first.stored, storedMax, last.stored, first.etcdSize/(1<<20), last.etcdSize/(1<<20), last.etcdInUse/(1<<20))
	var rows int
	_ = r.db.QueryRow(r.ctx, "SELECT count(*) FROM alerts WHERE namespace = $1", ns).Scan(&rows)
	objects += fmt.Sprintf("; %d rows of the namespace in PostgreSQL", rows)
	r.rep.add("7b", "\"1M a day\": live objects in etcd and the etcd database", objects, "", goal("bounded: the last third's peak ≤ 1.25× the middle third's", peak2 <= 1.25*peak1))
	lagRow(r, "7c", "\"1M a day\": mirror lag of the acks, from sending the ack to its row in PostgreSQL", lags)
	r.rep.note("The \"1M a day\" run's database retention (10m) is not exercised: the shipped --mirror-prune-interval is 1h, longer than the run.")
}
