package bench

import (
	"fmt"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// uniqueToNew measures how fast the operator decides new Alerts: monitors
// create Alerts of distinct fingerprints as kubectl would, at the raw
// ceiling's concurrency, and the clock stops when the last one is New. It
// also counts what one create → New costs the API server.
func (r *run) uniqueToNew() {
	ns := r.namespace("unique-")
	n := r.size.Alerts
	clients := r.clients(r.user(ns, "monitor", "alertbridge-monitor"), r.size.Creators)
	r.quiesce()
	before := r.requests()
	r.profile(time.Second, "new")
	start := time.Now()
	created := make(chan error, 1)
	go func() {
		created <- parallel(n, len(clients), func(w, i int) error { return r.create(clients[w], uniqueAlert(ns, i)) })
	}()
	r.waitAlerts(ns, fmt.Sprintf("%d Alerts New", n), func(items []v1.Alert) bool { return countPhase(items, v1.AlertNew) == n })
	elapsed := time.Since(start)
	r.check(<-created)
	rate := float64(n) / elapsed.Seconds()
	r.quiesce()
	cost, _ := perUnit(r.requests().Sub(before), float64(n))
	r.rep.addVs("3", fmt.Sprintf("unique Alerts → New: %d monitors create Alerts of distinct fingerprints (kubectl's path), until the last is New", r.size.Creators),
		fmt.Sprintf("%.0f Alerts/s", rate), comparison{value: rate, base: "1", label: "of 1", min: 0.8, metric: "new/ceiling"})
	r.rep.path("create → New (per Alert, the create included)", cost)
}

// folds counts what a duplicate created as kubectl would costs, until the
// operator counted it into its canonical and deleted it
// (--duplicate-gc-delay, 30s as shipped).
func (r *run) folds() {
	ns := r.namespace("fold-")
	k := r.size.FoldAlerts
	r.createNew(ns, k)
	clients := r.clients(r.user(ns, "monitor", "alertbridge-monitor"), r.size.Creators)
	dups := 10 * k
	r.quiesce()
	before := r.requests()
	r.check(parallel(dups, len(clients), func(w, i int) error { return r.create(clients[w], uniqueAlert(ns, i%k)) }))
	r.waitAlerts(ns, "every duplicate folded and deleted", func(items []v1.Alert) bool {
		var occ int64
		for i := range items {
			occ += items[i].Status.Occurrences
		}
		return len(items) == k && occ == int64(k+dups)
	})
	r.quiesce()
	cost, _ := perUnit(r.requests().Sub(before), float64(dups))
	r.rep.path("a fold (per duplicate created as kubectl would, until it is counted and deleted)", cost)
}
