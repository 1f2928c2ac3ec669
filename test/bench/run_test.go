package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// Bounds of the waits between measurements.
const (
	settleLimit = 10 * time.Minute
	quietFor    = 2 * time.Second
	quietLimit  = time.Minute
	pollEvery   = 25 * time.Millisecond
)

// run is one `make bench`: the shipped install and what was measured.
type run struct {
	b    *testing.B
	ctx  context.Context
	env  *shipped.Env
	size sizes
	rep  *report
	// admin is a cluster administrator's client; cache watches Alerts and
	// Incidents for it, so waiting costs the API server no requests.
	admin client.Client
	cache cache.Cache
	// db is the operator's database, for the mirror lag.
	db        *pgxpool.Pool
	stopCache context.CancelFunc
	// refusals counts creates the API server refused for a reason of its
	// own, by message, which the monitors retried.
	refusals sync.Map
}

// create creates a as a monitor would, retrying what the API server
// refuses for reasons of its own: a server timeout or overload, or an
// admission policy that could not be evaluated (its failurePolicy is Fail,
// e.g. when looking up its parameter timed out). A refused create made
// nothing, so the retry cannot make a second Alert.
func (r *run) create(c client.Client, a *v1.Alert) error {
	backoff := shipped.RetryBackoff
	for {
		err := c.Create(r.ctx, a.DeepCopy())
		if err == nil || backoff.Steps <= 1 || !shipped.Transient(err) {
			return err
		}
		msg := err.Error()
		if _, reason, ok := strings.Cut(msg, "denied request: "); ok {
			msg = reason
		}
		if i := strings.Index(msg, ": Get "); i >= 0 {
			msg = msg[:i] + ": Get …"
		}
		n, _ := r.refusals.LoadOrStore(msg, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		time.Sleep(backoff.Step()) // a monitor's backoff
	}
}

// noteRefusals reports the retried creates.
func (r *run) noteRefusals() {
	r.refusals.Range(func(k, v any) bool {
		r.rep.note("%d Alert creates were refused by the API server and retried by the monitor: %s", v.(*atomic.Int64).Load(), k)
		return true
	})
}

func start(ctx context.Context, b *testing.B, s sizes) *run {
	logf.SetLogger(logr.Discard())
	r := &run{b: b, ctx: ctx, size: s, rep: newReport(s)}
	r.say("building bin/alertbridge, starting the control plane and PostgreSQL (durable), migrating")
	env, err := shipped.Start(ctx, shipped.Options{NoOperators: true, Profile: os.Getenv("BENCH_PROFILE") != ""})
	if err != nil {
		b.Fatal(err)
	}
	r.env, r.admin = env, env.Admin
	b.Cleanup(r.stop) // also after a Fatal below or in a measurement
	cctx, cancel := context.WithCancel(ctx)
	r.stopCache = cancel
	if r.cache, err = cache.New(env.Control.Admin, cache.Options{Scheme: kube.NewScheme()}); err != nil {
		r.fatal(err)
	}
	go func() { _ = r.cache.Start(cctx) }()
	for _, obj := range []client.Object{&v1.Alert{}, &v1.Incident{}} {
		if _, err := r.cache.GetInformer(ctx, obj); err != nil {
			r.fatal(err)
		}
	}
	if r.db, err = pgxpool.New(ctx, env.PG.DSN()); err != nil {
		r.fatal(err)
	}
	if err := installLagProbe(ctx, r.db); err != nil {
		r.fatal(err)
	}
	r.rep.describe(ctx, r)
	return r
}

func (r *run) stop() {
	r.say("stopping the replicas (SIGTERM), PostgreSQL and the control plane")
	if r.stopCache != nil {
		r.stopCache()
	}
	if r.db != nil {
		r.db.Close()
	}
	if err := r.env.Stop(); err != nil {
		r.b.Error(err)
	}
}

// phase runs one measurement, logging how long it took.
func (r *run) phase(name string, f func()) {
	r.say("%s …", name)
	t := time.Now()
	f()
	r.say("%s: done in %s", name, time.Since(t).Round(time.Second))
}

func (r *run) say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// fatal stops the run with err and the replicas' last log lines.
func (r *run) fatal(err error) {
	r.b.Helper()
	if r.env != nil && len(r.env.Replicas) > 0 {
		r.b.Log(r.env.Logs(40))
	}
	r.saveStopped(err)
	r.b.Fatal(err)
}

// saveStopped writes what the run measured before err stopped it, as a
// partial report, so a long run that fails late keeps its earlier rows.
func (r *run) saveStopped(err error) {
	if r.rep == nil || r.rep.stopped != "" || r.rep.finished {
		return
	}
	r.rep.stopped = err.Error()
	r.finish()
}

func (r *run) check(err error) {
	r.b.Helper()
	if err != nil {
		r.fatal(err)
	}
}

func (r *run) startOperators() {
	r.check(r.env.StartOperators(r.ctx))
	// The ceiling's Alerts carry the mirror finalizer: the operator mirrors
	// them, and their deletion, before they go.
	r.deleteAlerts(r.rep.ceilingNS)
	r.quiesce()
}

// namespace creates a namespace for one measurement.
func (r *run) namespace(prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	r.check(r.admin.Create(r.ctx, ns))
	return ns.Name
}

// user is a ServiceAccount in ns bound to a shipped role.
func (r *run) user(ns, name, role string) *shipped.User {
	u, err := r.env.User(r.ctx, ns, name, role)
	r.check(err)
	return u
}

// clients are n clients of u, each with its own connection and limiter:
// n processes of that user.
func (r *run) clients(u *shipped.User, n int) []client.Client {
	out := make([]client.Client, n)
	for i := range out {
		c, err := u.Client()
		r.check(err)
		out[i] = c
	}
	return out
}

// operatorClients are n clients of the operator's ServiceAccount without a
// client-side rate limit: what the API server itself sustains.
func (r *run) operatorClients(n int) []client.Client {
	out := make([]client.Client, n)
	for i := range out {
		cfg := rest.CopyConfig(r.env.Control.Operator)
		cfg.QPS, cfg.Burst = -1, 0
		c, err := client.New(cfg, client.Options{Scheme: kube.NewScheme()})
		r.check(err)
		out[i] = c
	}
	return out
}

// alerts lists the Alerts of ns from the cache.
func (r *run) alerts(ns string) []v1.Alert {
	var l v1.AlertList
	r.check(r.cache.List(r.ctx, &l, client.InNamespace(ns)))
	return l.Items
}

// waitAlerts waits until cond holds for the Alerts of ns.
func (r *run) waitAlerts(ns, what string, cond func([]v1.Alert) bool) {
	r.b.Helper()
	var last []v1.Alert
	err := wait.PollUntilContextTimeout(r.ctx, pollEvery, settleLimit, true, func(context.Context) (bool, error) {
		last = r.alerts(ns)
		return cond(last), nil
	})
	if err != nil {
		r.fatal(fmt.Errorf("namespace %s: %s did not happen within %s (%d Alerts: %s)", ns, what, settleLimit, len(last), phases(last)))
	}
}

// waitFor waits until cond holds.
func (r *run) waitFor(what string, cond func() bool) {
	r.b.Helper()
	err := wait.PollUntilContextTimeout(r.ctx, 100*time.Millisecond, settleLimit, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		r.fatal(fmt.Errorf("%s did not happen within %s", what, settleLimit))
	}
}

func phases(items []v1.Alert) string {
	n := map[v1.AlertPhase]int{}
	for i := range items {
		n[items[i].Status.Phase]++
	}
	return fmt.Sprint(n)
}

func countPhase(items []v1.Alert, p v1.AlertPhase) int {
	n := 0
	for i := range items {
		if items[i].Status.Phase == p {
			n++
		}
	}
	return n
}

// requests scrapes the API server's request counters.
func (r *run) requests() shipped.Requests {
	q, err := r.env.APIServerRequests(r.ctx)
	r.check(err)
	return q
}

// quiesce waits until the API server sees no more writes (the operator's
// trailing ones included).
func (r *run) quiesce() {
	ok, err := r.env.Quiesce(r.ctx, quietFor, quietLimit)
	r.check(err)
	if !ok {
		r.rep.note("The API server never went %s without a write within %s; a figure counted after it may include later work.", quietFor, quietLimit)
	}
}

// deleteAlerts deletes every Alert of ns and waits until they are gone
// (the operator mirrors each deletion and removes its finalizer).
func (r *run) deleteAlerts(ns string) {
	if ns == "" {
		return
	}
	r.check(r.admin.DeleteAllOf(r.ctx, &v1.Alert{}, client.InNamespace(ns)))
	r.waitAlerts(ns, "deletion of every Alert", func(items []v1.Alert) bool { return len(items) == 0 })
}

// parallel runs work(w, i) for i in [0, n) on workers goroutines and
// returns the first error.
func parallel(n, workers int, work func(w, i int) error) error {
	jobs := make(chan int)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range jobs {
				if failed.Load() != nil {
					continue
				}
				if err := work(w, i); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// uniqueAlert is Alert i of a namespace, each with its own fingerprint.
func uniqueAlert(ns string, i int) *v1.Alert {
	// Without a source, as the measurements so far were taken.
	return testbuild.MakeAlert("", ns).Source("").Host(fmt.Sprintf("h%06d", i)).Obj()
}

// createNew creates n unique Alerts in ns as monitors (creators clients of
// one monitor ServiceAccount) and waits until the operator made each New.
func (r *run) createNew(ns string, n int) {
	clients := r.clients(r.user(ns, "monitor", "alertbridge-monitor"), r.size.Creators)
	r.check(parallel(n, len(clients), func(w, i int) error { return r.create(clients[w], uniqueAlert(ns, i)) }))
	r.waitAlerts(ns, fmt.Sprintf("%d Alerts New", n), func(items []v1.Alert) bool { return countPhase(items, v1.AlertNew) == n })
}
