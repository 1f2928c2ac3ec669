package bench

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
)

// rssGoal is the operator's memory goal with 10,000 live Alerts.
const rssGoal = 150 << 20

// idleWindow is how long the footprint run watches CPU with nothing to do.
const idleWindow = 30 * time.Second

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// usages reads every replica's memory and CPU: the manager's leader
// first, its standby, then the HTTP API's replicas.
func (r *run) usages() (names []string, us []shipped.Usage) {
	leader := r.env.Leader()
	for _, rep := range r.env.All() {
		u, err := rep.Usage()
		r.check(err)
		name := "standby"
		switch {
		case rep == leader:
			name = "leader"
		case slices.Contains(r.env.APIReplicas, rep):
			name = "API"
		}
		name += " (" + rep.Name + ")"
		if rep == leader {
			names, us = append([]string{name}, names...), append([]shipped.Usage{u}, us...)
		} else {
			names, us = append(names, name), append(us, u)
		}
	}
	return names, us
}

func (r *run) liveAlerts() int {
	var l v1.AlertList
	r.check(r.cache.List(r.ctx, &l))
	return len(l.Items)
}

// footprintNow reports memory and CPU at the end of the short run.
func (r *run) footprintNow() {
	live := r.liveAlerts()
	names, us := r.usages()
	parts := make([]string, len(us))
	var most int64
	for i, u := range us {
		parts[i] = fmt.Sprintf("%s: RSS %s (peak %s), %.0f CPU-s over the run", names[i], mib(u.RSS), mib(u.PeakRSS), u.CPU.Seconds())
		most = max(most, u.PeakRSS)
	}
	r.rep.add("6", fmt.Sprintf("RSS and CPU of every replica at the end of the run, %d live Alerts (BENCH_LONG=1 measures 10,000)", live),
		strings.Join(parts, "; "), "", goal("≤ 150 MiB with 10,000 live Alerts: not measured; peak so far ≤ 150 MiB", most <= rssGoal))
}

// footprint creates BENCH_LIVE unique Alerts, waits until each is New and
// mirrored, then reads memory and watches CPU for idleWindow.
func (r *run) footprint() {
	ns := r.namespace("live-")
	n := r.size.Live
	_, before := r.usages()
	start := time.Now()
	r.createNew(ns, n)
	var mirrored int
	r.waitFor("every live Alert mirrored", func() bool {
		r.check(r.db.QueryRow(r.ctx, "SELECT count(*) FROM alerts WHERE namespace = $1 AND phase = 'New'", ns).Scan(&mirrored))
		return mirrored == n
	})
	took := time.Since(start)
	live := r.liveAlerts()
	names, loaded := r.usages()
	time.Sleep(idleWindow) // a measurement window, not synchronisation
	_, idle := r.usages()
	if dir := os.Getenv("BENCH_PROFILE"); dir != "" {
		files, err := r.env.HeapProfiles(r.ctx, dir, "live")
		r.say("heap profiles with %d live Alerts: %v %v", live, files, err)
	}
	parts := make([]string, len(loaded))
	var most int64
	for i, u := range loaded {
		parts[i] = fmt.Sprintf("%s: RSS %s (peak %s), %.1f CPU-s per 1,000 Alerts created, %.1f%% of a core idle",
			names[i], mib(idle[i].RSS), mib(idle[i].PeakRSS),
			(u.CPU-before[i].CPU).Seconds()*1000/float64(n), 100*(idle[i].CPU-u.CPU).Seconds()/idleWindow.Seconds())
		most = max(most, idle[i].RSS)
	}
	r.rep.add("6", fmt.Sprintf("RSS and CPU of every replica with %d live Alerts (%d created and mirrored in %s)", live, n, took.Round(time.Second)),
		strings.Join(parts, "; "), "", goal("≤ 150 MiB", most <= rssGoal))
}

// clear deletes the Alerts the short run left, so the long runs start
// from an empty cluster.
func (r *run) clear() {
	var l v1.AlertList
	r.check(r.cache.List(r.ctx, &l))
	nss := map[string]bool{}
	for i := range l.Items {
		nss[l.Items[i].Namespace] = true
	}
	for ns := range nss {
		r.check(r.admin.DeleteAllOf(r.ctx, &v1.Alert{}, client.InNamespace(ns)))
	}
	r.waitFor("every Alert deleted", func() bool { return r.liveAlerts() == 0 })
	r.quiesce()
}
