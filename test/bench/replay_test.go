package bench

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// replayStorms measures the intake with nothing to write. Each sender
// repeats the Idempotency-Key of an occurrence already counted, so every
// request travels as a storm's does (TLS, the token's review from cache,
// the access review, forwarding to the owning replica, the fingerprint's
// queue) and is answered from the Alert the owner already holds, with no
// API write. Its rate bounds any design that acknowledges an occurrence
// without writing the Alert first, a PostgreSQL occurrence journal
// included: that design adds a database write to this path.
func (r *run) replayStorms() {
	for i, senders := range r.size.Senders {
		r.replayStorm(fmt.Sprintf("4%c", 'r'+i), senders)
	}
}

func (r *run) replayStorm(id string, senders int) {
	st := r.stormSetup(fmt.Sprintf("replay-%d-", senders), senders)
	defer st.done()
	ns, tok, urls, clients, bodies := st.ns, st.tok, st.urls, st.clients, st.bodies
	key := func(i int) string { return fmt.Sprintf("replay-%02d", i%stormFingerprints) }
	// Count each key once, and let the owner see every Alert decided.
	for i := range bodies {
		code, body, err := postKeyed(r.ctx, clients[0], urls[0]+"/v1/alerts?namespace="+ns, tok, key(i), bodies[i])
		r.check(err)
		if code != http.StatusOK {
			r.fatal(fmt.Errorf("POST /v1/alerts: %d %s", code, body))
		}
	}
	r.waitAlerts(ns, "the first occurrences New", func(items []v1.Alert) bool {
		return countPhase(items, v1.AlertNew) == stormFingerprints
	})
	n := 4 * r.size.Storm
	lat := make([]time.Duration, n)
	r.quiesce()
	before := r.requests()
	r.profile(500*time.Millisecond, fmt.Sprintf("replay%d", senders))
	start := time.Now()
	r.check(parallel(n, senders, func(w, i int) error {
		t := time.Now()
		code, body, err := postKeyed(r.ctx, clients[w], urls[w%len(urls)]+"/v1/alerts?namespace="+ns, tok, key(i), bodies[i%stormFingerprints])
		lat[i] = time.Since(t)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("POST /v1/alerts (a replay): %d %s", code, body)
		}
		return err
	}))
	elapsed := time.Since(start)
	rate := float64(n) / elapsed.Seconds()
	// A replay counts nothing: the Alerts hold the first occurrences only.
	items := r.alerts(ns)
	var occ int64
	for i := range items {
		occ += items[i].Status.Occurrences
	}
	if len(items) != stormFingerprints || occ != stormFingerprints {
		r.fatal(fmt.Errorf("%d replays left %d Alerts holding %d occurrences; want %d holding one each", n, len(items), occ, stormFingerprints))
	}
	r.quiesce()
	cost, writes := perUnit(r.requests().Sub(before), float64(n))
	slices.Sort(lat)
	r.rep.addVs(id, fmt.Sprintf("HTTP storm of replays, %d senders: %d requests repeating an Idempotency-Key already counted (the intake's path with no API write)", senders, n),
		fmt.Sprintf("%.0f requests/s, %.2f API writes/request, latency p50 %s, p99 %s; the Alerts still hold one occurrence each", rate, writes, ms(pct(lat, 50)), ms(pct(lat, 99))),
		comparison{value: rate, base: upsertKey(senders), label: fmt.Sprintf("of 2 at %d conns", senders), metric: fmt.Sprintf("replay%d/upsert", senders)})
	r.rep.path(fmt.Sprintf("a replayed HTTP occurrence, %d senders (per request)", senders), cost)
}
