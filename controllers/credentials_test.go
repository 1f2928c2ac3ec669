package controllers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// credentialsControllers are the controllers these specs test: the triage webhook's and the SLOPolicy's credentials, on Alerts converted by hand.
var credentialsControllers = []controllers.Controller{controllers.AlertController, controllers.IncidentController, controllers.SLOPolicyController}

// listener is an HTTP server that records everything it receives: the
// attacker's end of an exfiltration, or a source that must see credentials.
type listener struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // each request as text: method, URL, headers and body
}

func newListener(h http.HandlerFunc) *listener {
	GinkgoHelper()
	l := &listener{}
	l.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL)
		for k, vs := range r.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		b.Write(body)
		l.mu.Lock()
		l.seen = append(l.seen, b.String())
		l.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	DeferCleanup(l.Close)
	return l
}

func (l *listener) received() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

// promAnswer answers every query with p95 = 100ms, as Prometheus would.
func promAnswer(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.1"]}]}}`)
}

func credentialPolicy(ns, name, url, secret string) *v1.SLOPolicy {
	return testbuild.MakeSLOPolicy(name, ns).Service(name).Env("staging").PrometheusURL(url).SecretRef(secret).Obj()
}

func readyOf(g Gomega, p *v1.SLOPolicy) *metav1.Condition {
	var got v1.SLOPolicy
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
	c := meta.FindStatusCondition(got.Status.Conditions, v1.SLOConditionReady)
	g.Expect(c).NotTo(BeNil())
	return c
}

// everythingUsersRead is an object's status and the messages of its
// Events, as text.
func everythingUsersRead(g Gomega, obj client.Object) string {
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	status, err := json.Marshal(obj)
	g.Expect(err).NotTo(HaveOccurred())
	var events corev1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(obj.GetNamespace()))).To(Succeed())
	text := string(status)
	for _, e := range events.Items {
		if e.InvolvedObject.Name == obj.GetName() {
			text += "\n" + e.Reason + ": " + e.Message
		}
	}
	return text
}

// The attack as a cluster administrator found it: someone who may patch
// SLOPolicies (the shipped alertbridge-oncall role) points one at a URL of
// their own and a Secret of the namespace, and the operator sends that
// Secret's token there on every evaluation; the AlertRoutingPolicy's triage
// webhook does the same; redirects carry the headers along; the remote
// side's text lands in status. Each spec runs the real operator as its
// ServiceAccount against the shipped roles and admission policies.
var _ = Describe("Credentials reach only where they were meant to go", func() {
	const (
		promToken = "prom-token-4c1e"
		saToken   = "sa-token-9a0f"
		canary    = "CANARY-b41d"
	)
	var ns string

	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		// The namespace lets the operator use its credentials: what it may
		// then do with them is what these specs judge.
		grant(ns, controllers.CredentialsRole, controllers.TriageJobsRole)
		DeferCleanup(startOperator(controllers.Options{Only: credentialsControllers, TriageWebhookBackoff: poll}))
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "prom-creds", Namespace: ns},
			StringData: map[string]string{"token": promToken, "header.X-Scope-OrgID": "tenant-a"},
		})).To(Succeed())
		// What the token controller makes of a legacy ServiceAccount token
		// Secret (envtest runs no controller-manager, so the spec fills in
		// the token itself).
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: ns}})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "builder-token", Namespace: ns,
				Annotations: map[string]string{corev1.ServiceAccountNameKey: "builder"}},
			Type:       corev1.SecretTypeServiceAccountToken,
			StringData: map[string]string{"token": saToken},
		})).To(Succeed())
	})

	It("refuses the on-call user pointing a policy at their URL or another Secret", func() {
		source := newListener(promAnswer)
		attacker := newListener(nil)
		p := credentialPolicy(ns, "gateway", source.URL, "prom-creds")
		Expect(k8s.Create(ctx, p)).To(Succeed())
		expectGate(p, v1.DecisionAllow, v1.ReasonWithinObjectives)

		mallory := userIn(ns, "mallory@example.com", oncallGroup, "alertbridge-oncall")
		for _, patch := range []string{
			`{"spec":{"source":{"prometheus":{"url":"` + attacker.URL + `"}}}}`,
			`{"spec":{"source":{"prometheus":{"secretRef":{"name":"builder-token"}}}}}`,
			`{"spec":{"source":{"prometheus":{"url":"` + attacker.URL + `","secretRef":{"name":"builder-token"}}}}}`,
		} {
			Expect(mallory.Patch(ctx, p.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(patch)))).To(MatchError(Or(
				ContainSubstring("may change only the bypass annotations of SLOPolicy gateway"),
				ContainSubstring("needs get on that Secret, which mallory@example.com does not have"))), patch)
		}
		var stored v1.SLOPolicy
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &stored)).To(Succeed())
		Expect(stored.Spec.Source.Prometheus.URL).To(Equal(source.URL))
		Expect(stored.Spec.Source.Prometheus.SecretRef.Name).To(Equal("prom-creds"))
		Consistently(attacker.received, quietFor, poll).Should(BeEmpty())
		Expect(source.received()).To(ContainElement(ContainSubstring("Authorization: Bearer " + promToken)))
	})

	It("sends nothing from a ServiceAccount token Secret, even when an administrator names it", func() {
		attacker := newListener(nil)
		p := credentialPolicy(ns, "gateway", attacker.URL, "builder-token")
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Eventually(func(g Gomega) {
			ready := readyOf(g, p)
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(v1.ReasonSecretNotAllowed))
			g.Expect(ready.Message).To(ContainSubstring("spec.source.prometheus.secretRef: Secret builder-token holds a Kubernetes ServiceAccount token"))
			d, r := gateOf(g, p)
			g.Expect(d).To(Equal(v1.DecisionBlock))
			g.Expect(r).To(Equal(v1.ReasonSourceUnavailable))
			g.Expect(eventReasons(g, ns, p.Name)).To(ContainElement(controllers.EventSecretRefused))
		}, settle, poll).Should(Succeed())

		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).TriageWebhook(attacker.URL+"/triage", "builder-token"))
		res, err := incident.Convert(ctx, k8s, client.ObjectKeyFromObject(sigAlert(ns, "a", v1.SeverityP1)), incident.Options{Caller: adminUser})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(getIncident(g, ns, res.Incident.Name).Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(v1.ReasonSecretNotAllowed))
			g.Expect(c.Message).To(ContainSubstring("spec.triage.webhook.secretRef: Secret builder-token holds a Kubernetes ServiceAccount token"))
		}, settle, poll).Should(Succeed())
		Consistently(attacker.received, quietFor, poll).Should(BeEmpty(), "not the token, not even a call")
	})

	It("follows no redirect to another origin and keeps the remote side's words out of status and Events", func() {
		attacker := newListener(nil)
		var front *listener
		front = newListener(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/redirect/"):
				http.Redirect(w, r, attacker.URL+"/api/v1/query", http.StatusTemporaryRedirect)
			case strings.HasPrefix(r.URL.Path, "/moved/"):
				http.Redirect(w, r, front.URL+"/api/v1/query", http.StatusTemporaryRedirect)
			case strings.HasPrefix(r.URL.Path, "/chatty/"):
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"`+canary+`: parse error"}`)
			case r.URL.Path == "/hook-redirect":
				http.Redirect(w, r, attacker.URL+"/triage", http.StatusPermanentRedirect)
			default:
				promAnswer(w, r)
			}
		})

		redirected := credentialPolicy(ns, "redirected", front.URL+"/redirect", "prom-creds")
		moved := credentialPolicy(ns, "moved", front.URL+"/moved", "prom-creds")
		chatty := credentialPolicy(ns, "chatty", front.URL+"/chatty", "prom-creds")
		for _, p := range []*v1.SLOPolicy{redirected, moved, chatty} {
			Expect(k8s.Create(ctx, p)).To(Succeed())
		}
		expectGate(moved, v1.DecisionAllow, v1.ReasonWithinObjectives)
		Eventually(func(g Gomega) {
			ready := readyOf(g, redirected)
			g.Expect(ready.Reason).To(Equal(v1.ReasonSourceUnavailable))
			g.Expect(ready.Message).To(ContainSubstring("refused a redirect from " + front.URL + " to another origin"))
		}, settle, poll).Should(Succeed())
		Eventually(func(g Gomega) {
			ready := readyOf(g, chatty)
			g.Expect(ready.Reason).To(Equal(v1.ReasonSourceUnavailable))
			g.Expect(ready.Message).To(ContainSubstring("the source refused the query as invalid"))
			g.Expect(ready.Message).To(ContainSubstring("(HTTP 400)"))
			g.Expect(eventReasons(g, ns, chatty.Name)).To(ContainElement(controllers.EventReleaseBlocked))
		}, settle, poll).Should(Succeed())

		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).TriageWebhook(front.URL+"/hook-redirect", "prom-creds"))
		res, err := incident.Convert(ctx, k8s, client.ObjectKeyFromObject(sigAlert(ns, "a", v1.SeverityP1)), incident.Options{Caller: adminUser})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(getIncident(g, ns, res.Incident.Name).Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(v1.ReasonWebhookFailed))
			g.Expect(c.Message).To(ContainSubstring("refused a redirect from " + front.URL + " to another origin"))
		}, settle, poll).Should(Succeed())

		Consistently(attacker.received, quietFor, poll).Should(BeEmpty(), "no credential, no header, not even a call")
		for _, seen := range front.received() {
			Expect(seen).To(Or(
				And(ContainSubstring("Authorization: Bearer "+promToken), ContainSubstring("X-Scope-Orgid: tenant-a")),
				And(HavePrefix("POST /hook-redirect"), ContainSubstring("Authorization: Bearer "+promToken))),
				"every request at the configured origin carries its credentials")
		}
		for _, obj := range []client.Object{chatty, redirected, &v1.Incident{ObjectMeta: res.Incident.ObjectMeta}} {
			Expect(everythingUsersRead(Default, obj)).NotTo(ContainSubstring(canary))
		}
	})
})
