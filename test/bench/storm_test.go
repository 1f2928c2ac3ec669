package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
)

// Retries of a storm sender that is told 503 (the intake's "busy").
const (
	stormRetries = 10
	stormBackoff = 100 * time.Millisecond
)

// storms sends each level's occurrences over the HTTP API, as that many
// monitors would: each sender its own connection to one replica (a
// Service spreads connections), every request one occurrence of one of 20
// fingerprints, with a token of a ServiceAccount bound to
// alertbridge-monitor.
func (r *run) storms() {
	for i, senders := range r.size.Senders {
		r.storm(fmt.Sprintf("4%c", 'a'+i), senders)
	}
}

// stormSetup is what a storm's senders share: a namespace of their own
// (GenerateName prefix), a monitor's token for it, both replicas' URLs,
// one client (one TLS connection) per sender and the 20 fingerprints'
// bodies. done closes the connections.
type stormSetup struct {
	ns, tok string
	urls    []string
	clients []*http.Client
	bodies  [][]byte
}

func (r *run) stormSetup(prefix string, senders int) stormSetup {
	s := stormSetup{ns: r.namespace(prefix), urls: r.env.APIURLs(), clients: make([]*http.Client, senders)}
	var err error
	s.tok, err = r.user(s.ns, "monitor", "alertbridge-monitor").APIToken(r.ctx)
	r.check(err)
	for i := range s.clients {
		s.clients[i], err = r.env.APIClient(r.ctx)
		r.check(err)
	}
	s.bodies = make([][]byte, stormFingerprints)
	for i := range s.bodies {
		s.bodies[i] = fmt.Appendf(nil, `{"service":"gateway","kind":"latency","title":"p95 above 300ms","labels":{"host":"h%02d"}}`, i)
	}
	return s
}

func (s stormSetup) done() {
	for _, c := range s.clients {
		c.CloseIdleConnections()
	}
}

func (r *run) storm(id string, senders int) {
	st := r.stormSetup(fmt.Sprintf("storm-%d-", senders), senders)
	defer st.done()
	ns, tok, urls, clients, bodies := st.ns, st.tok, st.urls, st.clients, st.bodies
	n := r.size.Storm
	lat := make([]time.Duration, n)
	var retries, unconfirmed atomic.Int64
	// A 503 saying the occurrence was not counted is retried, as a monitor
	// would. One saying it was not confirmed in time may have been counted:
	// without an Idempotency-Key (these requests carry none, as most
	// monitors send none) a retry could count it twice, so it is not
	// retried and the count may or may not hold it.
	send := func(w, i int) error {
		url := urls[w%len(urls)] + "/v1/alerts?namespace=" + ns
		t := time.Now()
		defer func() { lat[i] = time.Since(t) }()
		for attempt := 0; ; attempt++ {
			code, body, err := post(r.ctx, clients[w], url, tok, bodies[i%stormFingerprints])
			if err != nil {
				return err
			}
			switch {
			case code == http.StatusOK:
				return nil
			case code == http.StatusServiceUnavailable && strings.Contains(body, "not confirmed"):
				unconfirmed.Add(1)
				return nil
			case code != http.StatusServiceUnavailable || attempt == stormRetries:
				return fmt.Errorf("POST /v1/alerts: %d %s", code, body)
			}
			retries.Add(1)
			time.Sleep(stormBackoff) // a monitor's retry
		}
	}
	r.quiesce()
	before := r.requests()
	batchesBefore := r.intakeBatches()
	var by *bystander
	if senders == slices.Max(r.size.Senders) {
		by = r.startBystander()
	}
	r.profile(time.Second, fmt.Sprintf("storm%d", senders))
	start := time.Now()
	r.check(parallel(n, senders, send))
	elapsed := time.Since(start)
	bystanding := by.stop()
	lost := unconfirmed.Load()
	acked := int64(n) - lost
	rate := float64(acked) / elapsed.Seconds()
	// Every 200 answered a durable count, so the Alerts hold all of those
	// now, and perhaps some of the unconfirmed; an Alert the replicas'
	// intakes created twice for one fingerprint is folded, and its deletion
	// (--duplicate-gc-delay later) is part of the storm's cost too.
	var occ int64
	r.waitAlerts(ns, fmt.Sprintf("%d to %d occurrences counted and every duplicate deleted", acked, n), func(items []v1.Alert) bool {
		occ = 0
		for i := range items {
			if !items[i].Status.Phase.Absorbing() {
				return false
			}
			occ += items[i].Status.Occurrences
		}
		return occ >= acked && occ <= int64(n)
	})
	r.quiesce()
	batches := r.intakeBatches().sub(batchesBefore)
	cost, writes := perUnit(r.requests().Sub(before), float64(acked))
	slices.Sort(lat)
	result := fmt.Sprintf("%.0f occurrences/s, %.2f API writes/occurrence, latency p50 %s, p99 %s", rate, writes, ms(pct(lat, 50)), ms(pct(lat, 99)))
	result += ", " + batches.String()
	if bystanding != "" {
		result += ", " + bystanding
	}
	if k := retries.Load(); k > 0 {
		result += fmt.Sprintf(", %d retries after a 503 \"not counted\"", k)
	}
	if lost > 0 {
		result += fmt.Sprintf(", **%d answered 503 \"not confirmed in time\"** (%d of them counted all the same)", lost, occ-acked)
	}
	r.rep.addVs(id, fmt.Sprintf("HTTP storm, %d senders: %d occurrences of 20 fingerprints, POST /v1/alerts over TLS to both replicas", senders, n),
		result, comparison{value: rate, base: upsertKey(senders), label: fmt.Sprintf("of 2 at %d conns", senders), metric: fmt.Sprintf("storm%d/upsert", senders)})
	r.rep.path(fmt.Sprintf("an HTTP occurrence, storm of %d senders (per occurrence)", senders), cost)
}

// post sends one ingest request and returns the status code and, on
// failure, the body.
func post(ctx context.Context, c *http.Client, url, token string, body []byte) (int, string, error) {
	return postKeyed(ctx, c, url, token, "", body)
}

// postKeyed is post with an Idempotency-Key (none if key is empty).
func postKeyed(ctx context.Context, c *http.Client, url, token, key string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", nil
	}
	return resp.StatusCode, string(b), nil
}

// batchSizes is the intake's alertbridge_intake_batch_occurrences summed
// over the HTTP API's replicas: how many occurrences each count write held.
type batchSizes struct {
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

func (r *run) intakeBatches() batchSizes {
	out := batchSizes{buckets: map[float64]uint64{}}
	for _, rep := range r.env.APIReplicas {
		fams, err := r.env.ReplicaMetrics(r.ctx, rep)
		r.check(err)
		c, s, b := shipped.Histogram(fams, "alertbridge_intake_batch_occurrences")
		out.count += c
		out.sum += s
		for le, n := range b {
			out.buckets[le] += n
		}
	}
	return out
}

func (b batchSizes) sub(before batchSizes) batchSizes {
	out := batchSizes{count: b.count - before.count, sum: b.sum - before.sum, buckets: map[float64]uint64{}}
	for le, n := range b.buckets {
		out.buckets[le] = n - before.buckets[le]
	}
	return out
}

// quantile is the upper bound of the bucket holding the q-th batch.
func (b batchSizes) quantile(q float64) float64 {
	bounds := slices.Sorted(maps.Keys(b.buckets))
	for _, le := range bounds {
		if float64(b.buckets[le]) >= q*float64(b.count) {
			return le
		}
	}
	return math.Inf(1)
}

func (b batchSizes) String() string {
	if b.count == 0 {
		return "no intake writes"
	}
	return fmt.Sprintf("%.1f occurrences per intake write (%d writes; batch p50 ≤ %g, p90 ≤ %g, p99 ≤ %g)",
		b.sum/float64(b.count), b.count, b.quantile(0.5), b.quantile(0.9), b.quantile(0.99))
}

// bystander is another team's client during a storm: a ServiceAccount
// that may read and create ConfigMaps in a namespace of its own, getting
// and creating ConfigMaps ten times a second, as kubectl would. Priority
// and Fairness must keep its latency down while the storm fills the API
// server's queues.
type bystander struct {
	stopc chan struct{}
	done  chan struct{}
	lat   []time.Duration
	errs  int
}

func (r *run) startBystander() *bystander {
	ns := r.namespace("bystander-")
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-bystander"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create"}}},
	}
	if err := r.admin.Create(r.ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		r.check(err)
	}
	c, err := r.user(ns, "bystander", role.Name).Client()
	r.check(err)
	b := &bystander{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-b.stopc:
				return
			case <-tick.C:
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: ns}}
			for _, op := range []func() error{
				func() error { return c.Create(r.ctx, cm) },
				func() error { return c.Get(r.ctx, client.ObjectKeyFromObject(cm), cm) },
			} {
				t := time.Now()
				if err := op(); err != nil {
					b.errs++
				}
				b.lat = append(b.lat, time.Since(t))
			}
		}
	}()
	return b
}

// stop ends the bystander and tells its latency.
func (b *bystander) stop() string {
	if b == nil {
		return ""
	}
	close(b.stopc)
	<-b.done
	slices.Sort(b.lat)
	out := fmt.Sprintf("another client's ConfigMap get/create meanwhile: p50 %s, p99 %s (%d requests", ms(pct(b.lat, 50)), ms(pct(b.lat, 99)), len(b.lat))
	if b.errs > 0 {
		out += fmt.Sprintf(", **%d failed**", b.errs)
	}
	return out + ")"
}

// profile takes, with BENCH_PROFILE=DIR, CPU profiles of the API server
// and every replica for BENCH_PROFILE_SECONDS (default 5) after a delay,
// in the background, into DIR (read them with go tool pprof -top).
func (r *run) profile(after time.Duration, name string) {
	dir := os.Getenv("BENCH_PROFILE")
	if dir == "" {
		return
	}
	d := envDuration("BENCH_PROFILE_SECONDS", 5*time.Second)
	go func() {
		time.Sleep(after)
		before := sampleCPU()
		files, err := r.env.CPUProfiles(r.ctx, d, dir, name)
		r.say("CPU profiles of %s (%s): %v %v", name, d, files, err)
		// The profiled processes are not all there is on the machine:
		// etcd, PostgreSQL and the benchmark's own clients share it.
		machine := sampleCPU().since(before)
		r.check(os.WriteFile(filepath.Join(dir, name+"-machine.txt"), []byte(machine+"\n"), 0o600))
		r.say("%s: %s", name, machine)
	}()
}

// cpuSample is the machine's and this process's CPU time at one instant.
type cpuSample struct {
	at         time.Time
	busy, self time.Duration
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	// /proc/stat's first line: user nice system idle iowait irq softirq
	// steal ..., in clock ticks (100 a second).
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:min(len(f), 9)] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i != 3 && i != 4 { // idle, iowait
				s.busy += time.Duration(n) * 10 * time.Millisecond
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// since says how many cores were busy between before and s, and how many
// of them this process (the benchmark's clients) used.
func (s cpuSample) since(before cpuSample) string {
	wall := s.at.Sub(before.at).Seconds()
	return fmt.Sprintf("the machine: %.2f of %d cores busy over %.1f s, of which the benchmark's own clients %.2f",
		(s.busy-before.busy).Seconds()/wall, runtime.NumCPU(), wall, (s.self-before.self).Seconds()/wall)
}
