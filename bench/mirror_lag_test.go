package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/operator"
	"github.com/alertbridge/alertbridge/internal/pgcluster"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

// Bounds of the benchmark's waits.
const (
	setupTimeout = 2 * time.Minute
	drainTimeout = 2 * time.Minute
	waitPoll     = 20 * time.Millisecond
)

// rig is the operator under test, started once for every benchmark run.
type rig struct {
	env   *testenv.Env
	pg    *pgcluster.Cluster
	store *mirror.Store
	db    *pgxpool.Pool
	k8s   client.Client
	stop  context.CancelFunc
	done  chan struct{}
}

var (
	once   sync.Once
	shared *rig
	err0   error
)

func setup(b *testing.B) *rig {
	once.Do(func() {
		shared, err0 = start()
		atExit(func() {
			if shared != nil {
				shared.close()
			}
		})
	})
	if err0 != nil {
		b.Fatal(err0)
	}
	return shared
}

func start() (*rig, error) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	r := &rig{done: make(chan struct{})}
	env, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	cfg := env.Admin
	r.env = env
	if r.pg, err = pgcluster.Start(ctx); err != nil {
		r.close()
		return nil, err
	}
	if r.store, err = mirror.Open(context.Background(), r.pg.DSN()); err != nil {
		r.close()
		return nil, err
	}
	if _, err := r.store.Migrate(ctx, mirror.MigrateOptions{}); err != nil {
		r.close()
		return nil, err
	}
	if r.db, err = pgxpool.New(context.Background(), r.pg.DSN()); err != nil {
		r.close()
		return nil, err
	}
	scheme := kube.NewScheme()
	if r.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		r.close()
		return nil, err
	}
	mgr, err := ctrl.NewManager(env.Operator, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		r.close()
		return nil, err
	}
	mctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	if err := operator.Setup(mctx, mgr, operator.Options{Controllers: controllers.Options{AlertConcurrency: 4}, Mirror: mirrorctrl.Options{Store: r.store}}); err != nil {
		r.close()
		return nil, err
	}
	go func() {
		defer close(r.done)
		_ = mgr.Start(mctx)
	}()
	return r, nil
}

func (r *rig) close() {
	if r.stop != nil {
		r.stop()
		<-r.done
	}
	if r.db != nil {
		r.db.Close()
	}
	if r.store != nil {
		r.store.Close()
	}
	if r.pg != nil {
		r.pg.Stop()
	}
	if r.env != nil {
		_ = r.env.Stop()
	}
}

// BenchmarkMirrorLag measures the mirror lag, from an Alert's status change
// (an ack, timed just before the API write, so it includes that write) to
// its row in PostgreSQL (the row's mirrored_at, stamped by the database on
// the same host clock), while acks arrive at a sustained rate. One op is one
// acked Alert. It reports p50 and p99 in ms, and the lag as a ratio of a
// bare upsert measured in the same run.
func BenchmarkMirrorLag(b *testing.B) {
	const ratePerSecond = 50
	r := setup(b)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := r.k8s.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	alerts := make([]*v1.Alert, b.N)
	for i := range alerts {
		alerts[i] = &v1.Alert{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "lag-", Namespace: ns.Name},
			Spec:       v1.AlertSpec{Service: "gateway", Kind: "latency", Title: "p95 above 300ms", Labels: map[string]string{"i": fmt.Sprint(i)}},
		}
		if err := r.k8s.Create(ctx, alerts[i]); err != nil {
			b.Fatal(err)
		}
	}
	// Every Alert New (decided by the controller) and mirrored before the clock starts.
	waitFor(b, func() (bool, error) {
		var n int
		err := r.db.QueryRow(ctx, "SELECT count(*) FROM alerts WHERE namespace = $1 AND phase = 'New'", ns.Name).Scan(&n)
		return n == b.N, err
	})
	baseline := bareUpsert(b, r.store)

	started := make([]time.Time, b.N)
	tick := time.NewTicker(time.Second / ratePerSecond)
	defer tick.Stop()
	b.ResetTimer()
	for i, a := range alerts {
		<-tick.C
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := r.k8s.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
				return err
			}
			a.Status.Phase = v1.AlertAcked
			a.Status.Ack = &v1.AlertAck{By: "bench", At: metav1.Now()}
			started[i] = time.Now()
			return r.k8s.Status().Update(ctx, a)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, func() (bool, error) {
		var n int
		err := r.db.QueryRow(ctx, "SELECT count(*) FROM alerts WHERE namespace = $1 AND phase = 'Acked'", ns.Name).Scan(&n)
		return n == b.N, err
	})
	b.StopTimer()

	lags := make([]time.Duration, 0, b.N)
	for i, a := range alerts {
		var at time.Time
		if err := r.db.QueryRow(ctx, "SELECT mirrored_at FROM alerts WHERE uid = $1", string(a.UID)).Scan(&at); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, at.Sub(started[i]))
	}
	slices.Sort(lags)
	p50, p99 := pct(lags, 50), pct(lags, 99)
	b.ReportMetric(ms(p50), "p50-lag-ms")
	b.ReportMetric(ms(p99), "p99-lag-ms")
	b.ReportMetric(float64(p50)/float64(baseline), "p50-lag/bare-upsert")
	b.ReportMetric(float64(p99)/float64(p50), "p99/p50")
	b.ReportMetric(ratePerSecond, "acks/s")
}

// bareUpsert is the median time of one guarded upsert, straight to the
// database: the floor the mirror's lag is compared with.
func bareUpsert(b *testing.B, s *mirror.Store) time.Duration {
	const n = 200
	a := &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench-baseline", Name: "a", UID: "bench-baseline-uid", CreationTimestamp: metav1.Now()},
		Spec:       v1.AlertSpec{Service: "gateway", Env: "prod", Kind: "latency", Title: "t", Severity: v1.SeverityP3},
	}
	d := make([]time.Duration, n)
	for i := range d {
		a.ResourceVersion = fmt.Sprint(i + 1)
		t := time.Now()
		if _, err := s.UpsertAlert(context.Background(), a); err != nil {
			b.Fatal(err)
		}
		d[i] = time.Since(t)
	}
	slices.Sort(d)
	return pct(d, 50)
}

func waitFor(b *testing.B, cond func() (bool, error)) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), waitPoll, drainTimeout, true, func(context.Context) (bool, error) { return cond() })
	if err != nil {
		b.Fatal(err)
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
