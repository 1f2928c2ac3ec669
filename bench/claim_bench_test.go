package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
	"github.com/alertbridge/alertbridge/internal/operator"
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

// BenchmarkClaimAck measures claim+ack throughput of 8 racing agents (each
// its own user, bound to the shipped alertbridge-agent role) with the
// operator running, next to the raw ceiling measured in the same run: a
// plain create plus two status writes of the same Alert with no controller
// running. It drains with the admission policy alertbridge-alert-status in
// effect, then with its binding removed, then in effect again, and reports
// what the policy costs. One op is one Alert.
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

	mgr, err := ctrl.NewManager(env.Operator, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := operator.Setup(mctx, mgr, operator.Options{Controllers: controllers.Options{AlertConcurrency: 4}}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(mctx) }()

	binding, err := policyBinding(c, "alertbridge-alert-status")
	if err != nil {
		b.Fatal(err)
	}
	on1 := drain(b, c, n)
	if err := c.Delete(ctx, binding.DeepCopy()); err != nil {
		b.Fatal(err)
	}
	waitPolicy(b, c, false)
	off := drain(b, c, n)
	if err := testenv.Apply(ctx, c, binding); err != nil {
		b.Fatal(err)
	}
	waitPolicy(b, c, true)
	on2 := drain(b, c, n)
	on := (on1 + on2) / 2
	b.Logf("claim+ack Alerts/s: policy on %.1f, off %.1f, on again %.1f", on1, off, on2)

	b.ReportMetric(on, "claimack-alerts/s")
	b.ReportMetric(2*on, "claims+acks/s")
	b.ReportMetric(ceiling, "ceiling-alerts/s")
	b.ReportMetric(on/ceiling, "claimack/ceiling")
	b.ReportMetric(off, "policy-off-alerts/s")
	b.ReportMetric(on/off, "policy-on/off")
	b.ReportMetric(0, "ns/op")
}

// drain creates n Alerts in a new namespace, lets the operator accept them
// (untimed), then times 8 agents claiming and acking them all; it returns
// Alerts per second.
func drain(b *testing.B, c client.Client, n int) float64 {
	ctx := context.Background()
	ns := namespace(b, c, "claims-")
	parallel(b, n, func(c client.Client, i int) error { return c.Create(ctx, alert(ns, i)) })
	waitAccepted(b, c, ns, n)
	agents := agentClients(b, c, ns)

	b.StartTimer()
	start := time.Now()
	var mu sync.Mutex
	taken := 0
	errs := make(chan error, claimers)
	var wg sync.WaitGroup
	for i, ac := range agents {
		wg.Go(func() {
			cl := &claim.Claimer{Client: ac}
			owner := fmt.Sprintf("agent-%d", i)
			for {
				got, err := cl.Claim(ctx, claim.Request{Namespace: ns, Limit: batch, Owner: owner, LockTTL: 10 * time.Minute})
				if errors.Is(err, claim.ErrNothingToClaim) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				for j := range got {
					if _, err := cl.AckClaimed(ctx, &got[j], owner, "handled"); err != nil {
						errs <- err
						return
					}
				}
				mu.Lock()
				taken += len(got)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if taken != n {
		b.Fatalf("claimed %d of %d Alerts", taken, n)
	}
	return float64(n) / elapsed.Seconds()
}

const agentsGroup = "bench:agents"

// agentClients are one client per claimer, each a user of its own in a
// group bound to the shipped alertbridge-agent role in ns, each knowing
// its user name (as a long-running agent would after its first call).
func agentClients(b *testing.B, c client.Client, ns string) []client.Client {
	ctx := context.Background()
	if err := c.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "agents", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-agent"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: agentsGroup}},
	}); err != nil {
		b.Fatal(err)
	}
	out := make([]client.Client, claimers)
	for i := range out {
		ac, err := client.New(env.As(fmt.Sprintf("agent-%d", i), agentsGroup), client.Options{Scheme: scheme})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = ac
	}
	deadline := time.Now().Add(acceptLimit)
	for out[0].List(ctx, &v1.AlertList{}, client.InNamespace(ns)) != nil {
		if time.Now().After(deadline) {
			b.Fatal("the agents' RoleBinding never took effect")
		}
		time.Sleep(50 * time.Millisecond) // setup polling, outside the timed section
	}
	return out
}

func policyBinding(c client.Client, name string) (*unstructured.Unstructured, error) {
	objs, err := testenv.Build(filepath.Join(testenv.Root(), testenv.DefaultInstall))
	if err != nil {
		return nil, err
	}
	for _, u := range objs {
		if u.GetKind() == "ValidatingAdmissionPolicyBinding" && u.GetName() == name {
			return u, nil
		}
	}
	return nil, fmt.Errorf("config/default installs no binding %s", name)
}

// waitPolicy waits until the alert status policy is (or is not) in effect:
// an agent's write of occurrences is refused exactly while it is.
func waitPolicy(b *testing.B, c client.Client, on bool) {
	ctx := context.Background()
	ns := namespace(b, c, "probe-")
	a := alert(ns, 0)
	if err := c.Create(ctx, a); err != nil {
		b.Fatal(err)
	}
	waitAccepted(b, c, ns, 1)
	probe := agentClients(b, c, ns)[0]
	deadline := time.Now().Add(acceptLimit)
	for {
		err := probe.Status().Patch(ctx, a.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"status":{"occurrences":7}}`)),
			client.DryRunAll)
		if (err != nil) == on {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the alert status policy did not become on=%t: %v", on, err)
		}
		time.Sleep(50 * time.Millisecond) // setup polling, outside the timed section
	}
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
