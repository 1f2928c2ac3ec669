package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

const (
	claimers    = 8
	batch       = 25
	acceptLimit = 2 * time.Minute
)

var (
	envOnce sync.Once
	env     *testenv.Env
	cfg     *rest.Config
	scheme  *runtime.Scheme
	envErr  error
)

func controlPlane(b *testing.B) (*rest.Config, client.Client) {
	envOnce.Do(func() {
		logf.SetLogger(logr.Discard())
		// The claim and ingest benchmarks run the operator with the mirror
		// off, installed so.
		if env, envErr = testenv.StartWith(testenv.WithoutMirrorInstall); envErr == nil {
			cfg = env.Admin
		}
		atExit(func() {
			if env != nil {
				if err := env.Stop(); err != nil {
					fmt.Fprintln(os.Stderr, "failed to stop envtest:", err)
				}
			}
		})
		scheme = kube.NewScheme()
	})
	if envErr != nil {
		b.Fatal(envErr)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	return cfg, c
}

func newClient(b *testing.B) client.Client {
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func namespace(b *testing.B, c client.Client, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := c.Create(context.Background(), ns); err != nil {
		b.Fatal(err)
	}
	return ns.Name
}

func alert(ns string, i int) *v1.Alert {
	return &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "gateway-latency-", Namespace: ns},
		Spec: v1.AlertSpec{
			Service: "gateway", Kind: "latency", Title: "p95 above 300ms",
			Labels: map[string]string{"host": fmt.Sprintf("h%06d", i)},
		},
	}
}

// parallel runs work(i) for i in [0, n) on `claimers` goroutines, each with
// its own client.
func parallel(b *testing.B, n int, work func(c client.Client, i int) error) {
	jobs := make(chan int)
	errs := make(chan error, claimers)
	var wg sync.WaitGroup
	for range claimers {
		c := newClient(b)
		wg.Go(func() {
			for i := range jobs {
				if err := work(c, i); err != nil {
					errs <- err
					for range jobs {
					}
					return
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkClaimAck measures claim+ack throughput of 8 racing claimers with
// the operator running, next to the raw ceiling measured in the same run:
// a plain create plus two status writes of the same Alert with no
// controller running. One op is one Alert.
func BenchmarkClaimAck(b *testing.B) {
	_, c := controlPlane(b)
	ctx := context.Background()
	n := max(b.N, 2*batch)
	b.StopTimer()

	// The raw ceiling, before any controller exists.
	ceilingNS := namespace(b, c, "ceiling-")
	start := time.Now()
	parallel(b, n, func(c client.Client, i int) error {
		a := alert(ceilingNS, i)
		if err := c.Create(ctx, a); err != nil {
			return err
		}
		now := time.Now()
		alertstate.MarkCanonical(&a.Status, "fp", a.CreationTimestamp, a.Generation)
		a.Status.Claim = &v1.AlertClaim{HolderIdentity: "bench", AcquireTime: metav1.NewMicroTime(now), RenewTime: metav1.NewMicroTime(now), LeaseDurationSeconds: 600}
		if err := c.Status().Update(ctx, a); err != nil {
			return err
		}
		a.Status.Phase = v1.AlertAcked
		a.Status.Ack = &v1.AlertAck{By: "bench", Note: "handled", At: metav1.NewTime(now)}
		return c.Status().Update(ctx, a)
	})
	ceiling := float64(n) / time.Since(start).Seconds()

	// The operator accepts the Alerts (untimed), then 8 claimers drain them.
	mgr, err := ctrl.NewManager(env.Operator, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := controllers.SetupAll(mctx, mgr, controllers.Options{AlertConcurrency: 4}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(mctx) }()
	ns := namespace(b, c, "claims-")
	parallel(b, n, func(c client.Client, i int) error { return c.Create(ctx, alert(ns, i)) })
	waitAccepted(b, c, ns, n)

	b.StartTimer()
	start = time.Now()
	var mu sync.Mutex
	taken := 0
	parallel(b, claimers, func(c client.Client, i int) error {
		cl := &claim.Claimer{Client: c}
		owner := fmt.Sprintf("agent-%d", i)
		for {
			got, err := cl.Claim(ctx, claim.Request{Namespace: ns, Limit: batch, Owner: owner, LockTTL: 10 * time.Minute})
			if errors.Is(err, claim.ErrNothingToClaim) {
				return nil
			}
			if err != nil {
				return err
			}
			for j := range got {
				if _, err := cl.AckClaimed(ctx, &got[j], owner, "handled"); err != nil {
					return err
				}
			}
			mu.Lock()
			taken += len(got)
			mu.Unlock()
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if taken != n {
		b.Fatalf("claimed %d of %d Alerts", taken, n)
	}
	rate := float64(n) / elapsed.Seconds()
	b.ReportMetric(rate, "claimack-alerts/s")
	b.ReportMetric(2*rate, "claims+acks/s")
	b.ReportMetric(ceiling, "ceiling-alerts/s")
	b.ReportMetric(rate/ceiling, "claimack/ceiling")
	b.ReportMetric(0, "ns/op")
}

func waitAccepted(b *testing.B, c client.Client, ns string, n int) {
	deadline := time.Now().Add(acceptLimit)
	for time.Now().Before(deadline) {
		var list v1.AlertList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		ready := 0
		for i := range list.Items {
			if list.Items[i].Status.Phase == v1.AlertNew {
				ready++
			}
		}
		if ready == n {
			return
		}
		time.Sleep(100 * time.Millisecond) // setup polling, outside the timed section
	}
	b.Fatalf("the operator did not accept %d Alerts within %s", n, acceptLimit)
}
