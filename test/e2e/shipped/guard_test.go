package shipped

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The guard's sizes. The floor is a tenth of the ceiling: the shipped
// binary reaches about a third of it on the shared 2-core machine
// (test/bench/results, row 3 over row 1), and client-go's default limits (5
// requests/s, the regression this guard exists for) less than a fiftieth.
const (
	guardAlerts   = 200
	guardWriters  = 16
	guardFloor    = 0.1
	guardSettle   = 3 * time.Minute
	guardPollStep = 100 * time.Millisecond
)

// TestShippedKeepsPace is the CI guard of the shipped configuration: the
// binary built from this checkout, run as the Deployment of config/default
// runs it (two replicas, its arguments, a durable PostgreSQL), must
//
//   - log the Kubernetes client settings the Deployment asks for, with
//     client-side limiting off (the API server's Priority and Fairness
//     limits the operator, under the shipped FlowSchema alertbridge, which
//     must see the operator's requests), and
//   - make 200 Alerts created by monitors New at no less than a tenth of
//     the rate at which the bare API server takes a create plus a status
//     write, measured in this test with the replicas stopped.
//
// Both rates come from the same run on the same machine, so the test holds
// whatever the machine's speed or load; no time is asserted.
func TestShippedKeepsPace(t *testing.T) {
	logf.SetLogger(logr.Discard()) // the control plane's setup logs; the replicas log to their files
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = e.Stop() }()

	for _, r := range e.All() {
		args := e.ManagerContainer().Args
		if slices.Contains(e.APIReplicas, r) {
			args = e.APIContainer().Args
		}
		wantQPS, wantBurst := shippedLimits(t, args)
		g.Expect(wantQPS).To(BeNumerically("<", 0), "%s turns client-side limiting on (--kube-api-qps=%v); docs/performance.md and this guard rely on Priority and Fairness", r.Name, wantQPS)
		qps, burst, err := loggedLimits(r.Log())
		g.Expect(err).NotTo(HaveOccurred(), "%s:\n%s", r.Name, r.Tail(20))
		g.Expect([]float64{qps, burst}).To(Equal([]float64{wantQPS, wantBurst}),
			"%s logged its Kubernetes client with qps %v, burst %v; the Deployment asks for %v, %v", r.Name, qps, burst, wantQPS, wantBurst)
	}
	g.Eventually(e.Leader).WithTimeout(time.Minute).WithPolling(guardPollStep).ShouldNot(BeNil(), func() string { return "no replica became leader:\n" + e.Logs(20) })

	// Monitors create Alerts of distinct fingerprints, as kubectl would,
	// each with its own connection and the command line's limits.
	ns := guardNamespace(ctx, g, e.Admin, "guard-")
	u, err := e.User(ctx, ns, "monitor", "alertbridge-monitor")
	g.Expect(err).NotTo(HaveOccurred())
	monitors := make([]client.Client, guardWriters)
	for i := range monitors {
		monitors[i], err = u.Client()
		g.Expect(err).NotTo(HaveOccurred())
	}
	// One Alert first: the clock starts once the leader's controllers run.
	g.Expect(retry.OnError(RetryBackoff, Transient, func() error { return monitors[0].Create(ctx, guardAlert(ns, -1)) })).To(Succeed())
	g.Eventually(countNew(ctx, e.Admin, ns)).WithTimeout(guardSettle).WithPolling(guardPollStep).Should(Equal(1), func() string { return "the first Alert never became New:\n" + e.Logs(20) })

	apfBefore := operatorDispatched(ctx, g, e)
	start := time.Now()
	g.Expect(inParallel(guardAlerts, guardWriters, func(w, i int) error {
		return retry.OnError(RetryBackoff, Transient, func() error { return monitors[w].Create(ctx, guardAlert(ns, i)) })
	})).To(Succeed())
	g.Eventually(countNew(ctx, e.Admin, ns)).WithTimeout(guardSettle).WithPolling(guardPollStep).Should(Equal(guardAlerts+1),
		func() string { return "the operator did not make every Alert New:\n" + e.Logs(20) })
	operator := guardAlerts / time.Since(start).Seconds()
	g.Expect(operatorDispatched(ctx, g, e)-apfBefore).To(BeNumerically(">", 0),
		"the API server dispatched none of the operator's requests under the shipped FlowSchema alertbridge")

	// The ceiling, with the replicas stopped (SIGTERM, as the kubelet
	// does): the operator's ServiceAccount, no client-side limit, a plain
	// create plus the status write that makes an Alert New.
	for _, r := range e.All() {
		g.Expect(r.Stop()).To(Succeed())
	}
	ceiling := ceilingRate(ctx, g, e, guardNamespace(ctx, g, e.Admin, "guard-ceiling-"))

	t.Logf("200 Alerts → New at %.0f/s through the shipped binary; the bare API server takes %.0f creates + status writes/s; ratio %.2f (floor %.2f)",
		operator, ceiling, operator/ceiling, guardFloor)
	g.Expect(operator/ceiling).To(BeNumerically(">=", guardFloor),
		"the shipped binary makes Alerts New at %.1f/s, %.3f× the API server's %.0f/s measured in this test; the floor is %.2f×. Are its client limits back to client-go's defaults?",
		operator, operator/ceiling, ceiling, guardFloor)
}

// shippedLimits are the client settings the Deployment's arguments ask
// for: --kube-api-qps and --kube-api-burst, or the binary's defaults.
func shippedLimits(t *testing.T, args []string) (qps, burst float64) {
	t.Helper()
	qps, burst = float64(kube.OperatorQPS), float64(kube.OperatorBurst)
	for flag, v := range map[string]*float64{"--kube-api-qps": &qps, "--kube-api-burst": &burst} {
		if s, ok := flagValue(args, flag); ok {
			if _, err := fmt.Sscan(s, v); err != nil {
				t.Fatalf("the Deployment's %s=%q: %v", flag, s, err)
			}
		}
	}
	return qps, burst
}

// loggedLimits reads qps and burst from the line `alertbridge run` logs
// when it builds its Kubernetes client.
func loggedLimits(log string) (qps, burst float64, err error) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg   string   `json:"msg"`
			QPS   *float64 `json:"qps"`
			Burst *float64 `json:"burst"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "Kubernetes API client" {
			continue
		}
		if line.QPS == nil || line.Burst == nil {
			return 0, 0, fmt.Errorf("the line %q lacks qps or burst", sc.Text())
		}
		return *line.QPS, *line.Burst, nil
	}
	return 0, 0, fmt.Errorf("no %q line in the log", "Kubernetes API client")
}

// operatorDispatched is how many requests the API server dispatched under
// the shipped FlowSchema.
func operatorDispatched(ctx context.Context, g Gomega, e *Env) float64 {
	fams, err := e.APIServerMetrics(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	n, _ := Gauge(fams, "apiserver_flowcontrol_dispatched_requests_total", map[string]string{"flow_schema": "alertbridge", "priority_level": "alertbridge"})
	return n
}

// ceilingRate creates guardAlerts Alerts in ns and writes each one's New
// status, as the operator's ServiceAccount with guardWriters unthrottled
// clients, and returns Alerts per second.
func ceilingRate(ctx context.Context, g Gomega, e *Env, ns string) float64 {
	writers := make([]client.Client, guardWriters)
	for i := range writers {
		cfg := rest.CopyConfig(e.Control.Operator)
		cfg.QPS, cfg.Burst = -1, 0
		c, err := client.New(cfg, client.Options{Scheme: kube.NewScheme()})
		g.Expect(err).NotTo(HaveOccurred())
		writers[i] = c
	}
	start := time.Now()
	g.Expect(inParallel(guardAlerts, guardWriters, func(w, i int) error {
		a := guardAlert(ns, i)
		if err := retry.OnError(RetryBackoff, Transient, func() error { return writers[w].Create(ctx, a) }); err != nil {
			return err
		}
		orig := a.DeepCopy()
		alertstate.MarkCanonical(&a.Status, fingerprint.Compute(a.Spec.Service, a.Spec.Env, a.Spec.Kind, a.Spec.Labels), a.CreationTimestamp, a.Generation)
		// As the operator writes its decision: a merge patch with the
		// resourceVersion it read; a retry after a refusal of the API
		// server's own sets the same status without it.
		patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
		return retry.OnError(RetryBackoff, Transient, func() error {
			err := writers[w].Status().Patch(ctx, a.DeepCopy(), patch)
			patch = client.MergeFrom(orig)
			return err
		})
	})).To(Succeed())
	return guardAlerts / time.Since(start).Seconds()
}

func guardNamespace(ctx context.Context, g Gomega, c client.Client, prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	g.Expect(c.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// guardAlert is Alert i of ns, each with its own fingerprint.
func guardAlert(ns string, i int) *v1.Alert {
	return testbuild.MakeAlert("", ns).Host(fmt.Sprintf("h%04d", i)).Obj()
}

// countNew counts the New Alerts of ns, for Eventually.
func countNew(ctx context.Context, c client.Client, ns string) func() (int, error) {
	return func() (int, error) {
		var l v1.AlertList
		if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return 0, err
		}
		n := 0
		for i := range l.Items {
			if l.Items[i].Status.Phase == v1.AlertNew {
				n++
			}
		}
		return n, nil
	}
}

// inParallel runs work(w, i) for i in [0, n) on workers goroutines and
// returns the first error.
func inParallel(n, workers int, work func(w, i int) error) error {
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range jobs {
				if err := work(w, i); err != nil {
					errs <- err
					for range jobs { // drain: the others stop too
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
	return <-errs
}
