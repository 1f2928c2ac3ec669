package controllers_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/slo"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// gateFlip bounds how long a gate may take to follow the exporter: a few
// scrapes, the 5s query window and the next evaluation (the CRD's minimum
// interval, 15s), with slack for 2 cores.
const gateFlip = 45 * time.Second

// Short-window queries so the gate follows the exporter within seconds.
const (
	shortLatencyQuery   = `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="${service}",env="${env}"}[5s])))`
	shortErrorRateQuery = `(sum(rate(http_requests_total{service="${service}",env="${env}",code=~"5.."}[5s])) or vector(0)) / sum(rate(http_requests_total{service="${service}",env="${env}"}[5s]))`
)

// exporter is a service's /metrics the test controls: every scrape records
// another 100 requests at the current latency and 5xx share, so rates over
// a short window follow the levels the test sets.
type exporter struct {
	mu       sync.Mutex
	levels   map[string]level // by service
	latency  *prometheus.HistogramVec
	requests *prometheus.CounterVec
}

type level struct {
	latencySeconds float64
	errorPercent   int
}

func newExporter() *exporter {
	return &exporter{
		levels: map[string]level{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"service", "env"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests by status code.",
		}, []string{"service", "env", "code"}),
	}
}

func (e *exporter) set(service string, l level) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.levels[service] = l
}

func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	e.latency.Describe(ch)
	e.requests.Describe(ch)
}

func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	for svc, l := range e.levels {
		for i := range 100 {
			e.latency.WithLabelValues(svc, "staging").Observe(l.latencySeconds)
			code := "200"
			if i < l.errorPercent {
				code = "500"
			}
			e.requests.WithLabelValues(svc, "staging", code).Inc()
		}
	}
	e.mu.Unlock()
	e.latency.Collect(ch)
	e.requests.Collect(ch)
}

func (e *exporter) serve() (addr string, stop func()) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), func() { _ = srv.Close() }
}

var (
	healthy   = level{latencySeconds: 0.02}
	slow      = level{latencySeconds: 0.8}
	erroneous = level{latencySeconds: 0.02, errorPercent: 50}
)

func newSLOPolicy(ns, service, url string, mode v1.GateMode) *v1.SLOPolicy {
	return testbuild.MakeSLOPolicy(service, ns).Service(service).Env("staging").ErrorRatePercent("1.0").
		PrometheusURL(url).Queries(shortLatencyQuery, shortErrorRateQuery).
		GateMode(mode).NoData(v1.NoDataBlock).MaxBypass(time.Hour).EvaluationInterval(slo.MinEvaluationInterval).Obj()
}

// gateOf returns a matcher-friendly view of the policy's gate.
func gateOf(g Gomega, p *v1.SLOPolicy) (v1.GateDecision, string) {
	var got v1.SLOPolicy
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
	g.Expect(got.Status.Gate).NotTo(BeNil())
	return got.Status.Gate.Decision, got.Status.Gate.Reason
}

func expectGate(p *v1.SLOPolicy, decision v1.GateDecision, reason string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		d, r := gateOf(g, p)
		g.Expect(d).To(Equal(decision))
		g.Expect(r).To(Equal(reason))
	}, gateFlip, poll).Should(Succeed())
}

var _ = Describe("SLOPolicy gate against a real Prometheus", Ordered, func() {
	var (
		exp      *exporter
		prom     *promtest.Server
		stopOp   func()
		stopExp  func()
		promURL  string
		ns       string
		services = []string{"latency", "warned", "bypassed", "capped", "incident", "waited", "tenant", "outage"}
	)

	BeforeAll(func() {
		exp = newExporter()
		for _, s := range services {
			exp.set(s, healthy)
		}
		var addr string
		addr, stopExp = exp.serve()
		var err error
		prom, err = promtest.Start(ctx, addr)
		Expect(err).NotTo(HaveOccurred())
		promURL = prom.URL()
		stopOp = startOperator(controllers.Options{Only: []controllers.Controller{controllers.SLOPolicyController}})
		ns = testbuild.Namespace(Default, k8s, "ctl-")
	})

	AfterAll(func() {
		if stopOp != nil {
			stopOp()
		}
		if prom != nil {
			prom.Stop()
		}
		if stopExp != nil {
			stopExp()
		}
	})

	It("blocks while latency or errors breach the objectives and allows again when they recover", func() {
		p := newSLOPolicy(ns, "latency", promURL, v1.GateStrict)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)

		exp.set("latency", slow)
		expectGate(p, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded)
		var got v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(meta.IsStatusConditionFalse(got.Status.Conditions, v1.SLOConditionReleaseAllowed)).To(BeTrue())
		Expect(meta.IsStatusConditionFalse(got.Status.Conditions, v1.SLOConditionSLOMet)).To(BeTrue())
		Expect(got.Status.Observed).NotTo(BeNil())
		Expect(got.Status.Observed.LatencyP95Ms).NotTo(BeEmpty())

		exp.set("latency", healthy)
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)

		exp.set("latency", erroneous)
		expectGate(p, v1.DecisionBlock, v1.ReasonErrorRateExceeded)
		exp.set("latency", healthy)
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)
		Eventually(func(g Gomega) []string { return eventReasons(g, ns, p.Name) }, settle, poll).Should(
			ContainElements(controllers.EventReleaseBlocked, controllers.EventReleaseAllowed))
	})

	It("allows with the breach reason in Warn mode", func() {
		p := newSLOPolicy(ns, "warned", promURL, v1.GateWarn)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		exp.set("warned", slow)
		expectGate(p, v1.DecisionWarn, v1.ReasonLatencyP95Exceeded)
		var got v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1.SLOConditionReleaseAllowed)).To(BeTrue())
	})

	It("lets a bypass allow a breached release until it expires, leaving Events", func() {
		p := newSLOPolicy(ns, "bypassed", promURL, v1.GateStrict)
		exp.set("bypassed", slow)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded)

		until := time.Now().Add(5 * time.Second).UTC().Truncate(time.Second)
		patch := client.MergeFrom(p.DeepCopy())
		p.Annotations = map[string]string{
			v1.BypassUntilAnnotation:  until.Format(time.RFC3339),
			v1.BypassReasonAnnotation: "hotfix for INC-42",
			v1.BypassByAnnotation:     "alice",
		}
		// Set by on-call through the shipped role; the admission policy
		// requires bypass-by to be the requesting user.
		alice := userIn(ns, "alice", oncallGroup, "alertbridge-oncall")
		Expect(alice.Patch(ctx, p, patch)).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonBypassed)
		var got v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(got.Status.Bypass).NotTo(BeNil())
		Expect(got.Status.Bypass.Active).To(BeTrue())
		Expect(got.Status.Bypass.By).To(Equal("alice"))

		expectGate(p, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded)
		Expect(time.Now()).To(BeTemporally(">=", until))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(got.Status.Bypass.Active).To(BeFalse())
		Eventually(func(g Gomega) []string { return eventReasons(g, ns, p.Name) }, settle, poll).Should(
			ContainElements(controllers.EventBypassStarted, controllers.EventBypassEnded))
	})

	It("ignores a bypass without a reason and caps one at gate.maxBypass", func() {
		p := newSLOPolicy(ns, "capped", promURL, v1.GateStrict)
		exp.set("capped", slow)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded)

		bob := userIn(ns, "bob", oncallGroup, "alertbridge-oncall")
		annotate := func(ann map[string]string) {
			GinkgoHelper()
			patch := client.MergeFrom(p.DeepCopy())
			p.Annotations = ann
			Expect(bob.Patch(ctx, p, patch)).To(Succeed())
		}
		far := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
		annotate(map[string]string{v1.BypassUntilAnnotation: far, v1.BypassByAnnotation: "bob"})
		Eventually(func(g Gomega) {
			var got v1.SLOPolicy
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
			ready := meta.FindStatusCondition(got.Status.Conditions, v1.SLOConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Message).To(ContainSubstring(v1.BypassReasonAnnotation))
			g.Expect(got.Status.Gate.Decision).To(Equal(v1.DecisionBlock))
		}, gateFlip, poll).Should(Succeed())
		Eventually(func(g Gomega) []string { return eventReasons(g, ns, p.Name) }, settle, poll).Should(
			ContainElement(controllers.EventBypassInvalid))

		seen := time.Now()
		annotate(map[string]string{v1.BypassUntilAnnotation: far, v1.BypassReasonAnnotation: "INC-7", v1.BypassByAnnotation: "bob"})
		expectGate(p, v1.DecisionAllow, v1.ReasonBypassed)
		var got v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(got.Status.Bypass.Until.Time).To(BeTemporally("<=", time.Now().Add(time.Hour)))
		Expect(got.Status.Bypass.Until.Time).To(BeTemporally(">=", seen.Add(time.Hour-2*time.Second)))
		Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1.SLOConditionReady)).To(BeTrue())
	})

	It("blocks while the service has an open Incident at or above the threshold", func() {
		p := newSLOPolicy(ns, "incident", promURL, v1.GateStrict)
		p.Spec.Gate.BlockOnOpenIncidents = ptr.To(v1.SeverityP1)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)

		minor := testbuild.MakeIncident("minor", ns).Service("incident").Env("staging").Severity(v1.SeverityP3).Title("minor").State(v1.IncidentOpen).Obj()
		Expect(k8s.Create(ctx, minor)).To(Succeed())
		Consistently(func(g Gomega) v1.GateDecision { d, _ := gateOf(g, p); return d }, quietFor, poll).Should(Equal(v1.DecisionAllow))

		major := testbuild.MakeIncident("major", ns).Service("incident").Env("staging").Severity(v1.SeverityP1).Title("major").State(v1.IncidentOpen).Obj()
		Expect(k8s.Create(ctx, major)).To(Succeed())
		expectGate(p, v1.DecisionBlock, v1.ReasonOpenIncident)

		patch := client.MergeFrom(major.DeepCopy())
		major.Spec.State = v1.IncidentResolved
		Expect(k8s.Patch(ctx, major, patch)).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)
	})

	It("works with kubectl wait --for=condition=ReleaseAllowed", func() {
		assets, err := testenv.AssetsDir()
		Expect(err).NotTo(HaveOccurred())
		kubeconfig := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
		Expect(os.WriteFile(kubeconfig, env.KubeConfig, 0o600)).To(Succeed())

		p := newSLOPolicy(ns, "waited", promURL, v1.GateStrict)
		exp.set("waited", slow)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded)

		exp.set("waited", healthy)
		// #nosec G204 -- the test's own kubectl and arguments.
		out, err := exec.Command(filepath.Join(assets, "kubectl"), "--kubeconfig", kubeconfig, "-n", ns,
			"wait", "--for=condition=ReleaseAllowed", "slopolicy/waited", "--timeout="+gateFlip.String()).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("condition met"))
	})

	It("authenticates to the source with the secretRef's token and extra headers", func() {
		// A Mimir-like front: Prometheus behind a proxy that wants a bearer
		// token and a tenant header.
		target, err := url.Parse(promURL)
		Expect(err).NotTo(HaveOccurred())
		proxy := httputil.NewSingleHostReverseProxy(target)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("X-Scope-OrgID") != "tenant-a" {
				http.Error(w, `{"status":"error","errorType":"unauthorized","error":"no tenant"}`, http.StatusUnauthorized)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer front.Close()

		p := newSLOPolicy(ns, "tenant", front.URL, v1.GateStrict)
		p.Spec.Source.Prometheus.SecretRef = &v1.LocalObjectReference{Name: "prom-creds"}
		Expect(k8s.Create(ctx, p)).To(Succeed())
		// The namespace has not let the operator read its Secrets: the
		// gate blocks, and a condition says how to grant it.
		expectGate(p, v1.DecisionBlock, v1.ReasonSourceUnavailable)
		credentials := func(g Gomega) *metav1.Condition { return credentialsAvailable(g, p.DeepCopy()) }
		Eventually(func(g Gomega) {
			c := credentials(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonNotGranted))
			g.Expect(c.Message).To(ContainSubstring("kubectl create rolebinding alertbridge-credentials -n " + ns +
				" --clusterrole=alertbridge-credentials --serviceaccount=" + env.Install.Namespace + ":" + env.Install.ServiceAccount))
		}, settle, poll).Should(Succeed())
		grant(ns, controllers.CredentialsRole)
		// Granted, but the Secret is not there yet.
		Eventually(func(g Gomega) { g.Expect(credentials(g).Reason).To(Equal(v1.ReasonSecretMissing)) }, settle, poll).Should(Succeed())
		var got v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(got.Status.Gate.Message).To(ContainSubstring("secretRef"))

		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "prom-creds", Namespace: ns},
			Data:       map[string][]byte{"token": []byte("s3cret"), "header.X-Scope-OrgID": []byte("tenant-a")},
		})).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)
		Eventually(func(g Gomega) { g.Expect(credentials(g).Status).To(Equal(metav1.ConditionTrue)) }, settle, poll).Should(Succeed())
	})

	It("reports SourceUnavailable and blocks in Strict mode when Prometheus stops", func() {
		p := newSLOPolicy(ns, "outage", promURL, v1.GateStrict)
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)

		prom.Stop()
		expectGate(p, v1.DecisionBlock, v1.ReasonSourceUnavailable)
		var got v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
		Expect(meta.IsStatusConditionFalse(got.Status.Conditions, v1.SLOConditionReady)).To(BeTrue())
	})
})
