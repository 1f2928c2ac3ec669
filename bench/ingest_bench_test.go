package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/operator"
)

// Shape of the storm: many monitors repeating a few alerts.
const (
	stormFingerprints = 20
	stormClients      = 200
	stormMin          = 4000
	settleLimit       = 2 * time.Minute
)

// writeCounter counts the writes (anything but GET) on Alerts that reach
// the API server through a wrapped rest.Config: the operator's and the
// clients' alike.
type writeCounter struct{ n atomic.Int64 }

func (w *writeCounter) wrap(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/alerts") {
				w.n.Add(1)
			}
			return next.RoundTrip(r)
		})
	})
	return c
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkIngestStorm measures a storm of n occurrences of 20 fingerprints
// from 200 concurrent clients two ways in one run: over the HTTP API (the
// intake group-commits each fingerprint's occurrences into one status write)
// and the plain baseline of one Alert create per occurrence, folded by the
// controller. It reports occurrences/s (acknowledged to the callers) and API
// writes on Alerts per occurrence (the operator's included, counted until the
// namespace settled), and both ratios.
func BenchmarkIngestStorm(b *testing.B) {
	_, c := controlPlane(b)
	ctx := context.Background()
	n := max(b.N, stormMin)
	b.StopTimer()
	writes := &writeCounter{}
	wcfg := writes.wrap(env.Operator)

	mgr, err := ctrl.NewManager(wcfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := operator.Setup(mctx, mgr, operator.Options{Controllers: controllers.Options{AlertConcurrency: 4, DuplicateGCDelay: time.Second}}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(mctx) }()
	if !mgr.GetCache().WaitForCacheSync(mctx) {
		b.Fatal("cache did not sync")
	}
	cs, err := kubernetes.NewForConfig(env.Operator)
	if err != nil {
		b.Fatal(err)
	}
	in := &intake.Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Intake: in}, mgr.GetClient(), &httpapi.Authenticator{Client: cs}, nil).Handler())
	defer srv.Close()

	// Baseline: one create per occurrence, the controller folds them.
	baseNS := namespace(b, c, "storm-base-")
	writes.n.Store(0)
	clients := make([]client.Client, stormClients)
	for i := range clients {
		if clients[i], err = client.New(wcfg, client.Options{Scheme: scheme}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	storm(b, n, func(w, i int) error {
		return clients[w].Create(ctx, stormAlert(baseNS, i%stormFingerprints))
	})
	baseRate := float64(n) / time.Since(start).Seconds()
	settled(b, c, baseNS, n)
	baseWrites := float64(writes.n.Load()) / float64(n)

	// The HTTP API.
	ns := namespace(b, c, "storm-http-")
	tok := monitorToken(b, c, cs, ns)
	bodies := make([][]byte, stormFingerprints)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, `{"service":"gateway","kind":"latency","title":"p95 above 300ms","labels":{"host":"h%02d"}}`, i)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: stormClients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	writes.n.Store(0)
	b.StartTimer()
	start = time.Now()
	storm(b, n, func(_, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/alerts?namespace="+ns, bytes.NewReader(bodies[i%stormFingerprints]))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ingest: status %d", resp.StatusCode)
		}
		return nil
	})
	rate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	settled(b, c, ns, n)
	perOcc := float64(writes.n.Load()) / float64(n)

	b.ReportMetric(rate, "http-occurrences/s")
	b.ReportMetric(perOcc, "http-writes/occurrence")
	b.ReportMetric(baseRate, "create-occurrences/s")
	b.ReportMetric(baseWrites, "create-writes/occurrence")
	b.ReportMetric(rate/baseRate, "http/create-rate")
	b.ReportMetric(perOcc/baseWrites, "http/create-writes")
	b.ReportMetric(0, "ns/op")
}

// storm runs work(worker, i) for i in [0, n) on stormClients goroutines.
func storm(b *testing.B, n int, work func(w, i int) error) {
	jobs := make(chan int)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range stormClients {
		wg.Go(func() {
			for i := range jobs {
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
		b.Fatal(*err)
	}
}

func stormAlert(ns string, fp int) *v1.Alert {
	return &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "gateway-latency-", Namespace: ns},
		Spec: v1.AlertSpec{Service: "gateway", Kind: "latency", Title: "p95 above 300ms",
			Labels: map[string]string{"host": fmt.Sprintf("h%02d", fp)}},
	}
}

// settled waits until ns holds exactly n occurrences in its canonical
// Alerts and no folded duplicate is left (their deletion is a write too).
func settled(b *testing.B, c client.Client, ns string, n int) {
	deadline := time.Now().Add(settleLimit)
	var got int64
	var left int
	for time.Now().Before(deadline) {
		var list v1.AlertList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		got, left = 0, 0
		for i := range list.Items {
			if list.Items[i].Status.Phase.Absorbing() {
				got += list.Items[i].Status.Occurrences
			} else {
				left++
			}
		}
		if got == int64(n) && left == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond) // outside the timed section
	}
	b.Fatalf("namespace %s: %d occurrences of %d, %d Alerts not settled after %s", ns, got, n, left, settleLimit)
}

// monitorToken binds the shipped alertbridge-monitor role in ns to a new
// ServiceAccount and mints its token.
func monitorToken(b *testing.B, c client.Client, cs kubernetes.Interface, ns string) string {
	ctx := context.Background()
	data, err := os.ReadFile("../config/rbac/monitor_role.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "monitor", Namespace: ns}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "monitor", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "monitor", Namespace: ns}},
		},
	} {
		if err := c.Create(ctx, obj); err != nil {
			b.Fatal(err)
		}
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "monitor", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{httpapi.DefaultAudience}, ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return tr.Status.Token
}
