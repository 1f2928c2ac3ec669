package controllers_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// notificationControllers are the controllers these specs test: what Receivers are told of Incidents and Alerts, silenced ones included.
var notificationControllers = []controllers.Controller{controllers.AlertController, controllers.IncidentController, controllers.NotificationController, controllers.SilenceController}

// notifyBackoff is the first wait between notification retries in these
// specs (--notification-backoff).
const notifyBackoff = 200 * time.Millisecond

const dashboardURL = "https://alertbridge.example"

// fakeRequest is one request a fake receiver got, and what it answered.
type fakeRequest struct {
	header http.Header
	body   []byte
	status int
}

func (r fakeRequest) json() map[string]any {
	GinkgoHelper()
	var m map[string]any
	Expect(json.Unmarshal(r.body, &m)).To(Succeed(), string(r.body))
	return m
}

// fakeReceiver stands for PagerDuty, Slack or a webhook: it records every
// request and answers ok, or 503 while down or for the next failures.
//
// With hold set, the next request is held (held says it arrived) until
// release is closed or the sender hangs up, and is then taken in: a
// receiver that acted on a message whose answer never reached the sender.
type fakeReceiver struct {
	*httptest.Server
	ok       int
	down     atomic.Bool
	failures atomic.Int32
	hold     atomic.Bool
	held     chan struct{}
	release  chan struct{}
	// hang, while set, holds every request until the sender gives up (or
	// release), and answers 504: a receiver that takes the POST and never
	// answers. hung counts those that ended.
	hang     atomic.Bool
	hung     atomic.Int32
	arrived  atomic.Int32
	mu       sync.Mutex
	requests []fakeRequest
}

func newFakeReceiver(ok int) *fakeReceiver {
	f := &fakeReceiver{ok: ok, held: make(chan struct{}, 1), release: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		f.arrived.Add(1)
		if f.hold.CompareAndSwap(true, false) {
			f.held <- struct{}{}
			select {
			case <-f.release:
			case <-r.Context().Done():
			}
		}
		status := f.ok
		if f.hang.Load() {
			select {
			case <-f.release:
			case <-r.Context().Done():
			}
			f.hung.Add(1)
			status = http.StatusGatewayTimeout
		} else if f.down.Load() || f.failures.Add(-1) >= 0 {
			status = http.StatusServiceUnavailable
		}
		f.mu.Lock()
		f.requests = append(f.requests, fakeRequest{header: r.Header.Clone(), body: body, status: status})
		f.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"status":"ok","message":"REMOTE-TEXT-never-in-status"}`))
	}))
	DeferCleanup(f.Close)
	return f
}

func (f *fakeReceiver) all() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// accepted are the requests it answered 2xx.
func (f *fakeReceiver) accepted() []fakeRequest {
	return slices.DeleteFunc(f.all(), func(r fakeRequest) bool { return r.status >= 300 })
}

// createSecret creates a credential's Secret in ns, which grants the
// operator the reading of its Secrets.
func createSecret(ns, name string, data map[string]string) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data})).To(Succeed())
	grant(ns, controllers.CredentialsRole)
}

// createReceiver creates the Receiver b builds, with a groupInterval of 1s
// unless b sets one.
func createReceiver(b *testbuild.ReceiverWrapper) *v1.Receiver {
	GinkgoHelper()
	r := b.Obj()
	if r.Spec.GroupInterval == nil {
		b.GroupInterval(time.Second)
	}
	Expect(k8s.Create(ctx, r)).To(Succeed())
	return r
}

func receiverReady(g Gomega, r *v1.Receiver) *metav1.Condition {
	var got v1.Receiver
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(r), &got)).To(Succeed())
	c := meta.FindStatusCondition(got.Status.Conditions, v1.ReceiverConditionReady)
	g.Expect(c).NotTo(BeNil())
	return c
}

func expectReady(r *v1.Receiver) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(receiverReady(g, r).Status).To(Equal(metav1.ConditionTrue))
	}, settle, poll).Should(Succeed())
}

// openIncident converts a new Alert of kind into a new Incident, as on-call
// would, once the Receivers exist.
func openIncident(ns, kind string, sev v1.Severity) *v1.Incident {
	GinkgoHelper()
	a := testbuild.MakeAlert("", ns).Host("h1").Kind(kind).Severity(sev).Obj()
	Expect(k8s.Create(ctx, a)).To(Succeed())
	res, err := incident.Convert(ctx, k8s, client.ObjectKeyFromObject(a), incident.Options{SeverityCap: v1.SeverityP0, Caller: adminUser})
	Expect(err).NotTo(HaveOccurred())
	return res.Incident
}

func notificationsOf(g Gomega, inc *v1.Incident) []v1.IncidentNotification {
	return getIncident(g, inc.Namespace, inc.Name).Status.Notifications
}

var _ = Describe("Notifications", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "ctl-") })

	It("pages PagerDuty: trigger, acknowledge on Mitigating, resolve, under one dedup_key, with Events v2's fields", func() {
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff, DashboardURL: dashboardURL}))
		pd := newFakeReceiver(http.StatusAccepted)
		createSecret(ns, "pagerduty", map[string]string{"routingKey": "R0UTING-KEY-1"})
		rcv := createReceiver(testbuild.MakeReceiver("pagerduty", ns).Type(v1.ReceiverPagerDuty).URL(pd.URL+"/v2/enqueue").Secret("pagerduty", ""))
		expectReady(rcv)
		inc := openIncident(ns, "latency", v1.SeverityP1)

		Eventually(pd.accepted, settle, poll).Should(HaveLen(1))
		inc = getIncident(Default, ns, inc.Name)
		link := dashboardURL + "/?namespace=" + ns + "&incident=" + inc.Name
		Expect(pd.accepted()[0].json()).To(Equal(map[string]any{
			"routing_key": "R0UTING-KEY-1", "event_action": "trigger", "dedup_key": "alertbridge-" + string(inc.UID),
			"payload": map[string]any{
				"summary": "[P1] gateway/prod: p95 above 300ms", "source": "gateway/prod", "severity": "critical",
				"timestamp": inc.Status.OpenedAt.UTC().Format(time.RFC3339), "component": "gateway", "group": "prod",
				"class": "gateway/prod/latency",
				"custom_details": map[string]any{
					"incident": ns + "/" + inc.Name, "event": "Opened", "state": "Open", "severity": "P1",
					"title": "p95 above 300ms", "alerts": float64(1), "signature": "gateway/prod/latency",
				},
			},
			"client": "alertbridge", "client_url": link,
			"links": []any{map[string]any{"href": link, "text": "Incident " + ns + "/" + inc.Name + " in alertbridge"}},
		}))
		Expect(pd.accepted()[0].header.Get("Content-Type")).To(Equal("application/json"))

		carol := userIn(ns, "carol@example.com", oncallGroup, "alertbridge-oncall")
		key := client.ObjectKeyFromObject(inc)
		short := func(action string) map[string]any {
			return map[string]any{"routing_key": "R0UTING-KEY-1", "event_action": action, "dedup_key": "alertbridge-" + string(inc.UID)}
		}
		_, err := incident.SetState(ctx, carol, key, v1.IncidentMitigating, "rolling back")
		Expect(err).NotTo(HaveOccurred())
		Eventually(pd.accepted, settle, poll).Should(HaveLen(2))
		Expect(pd.accepted()[1].json()).To(Equal(short("acknowledge")))

		_, err = incident.SetState(ctx, carol, key, v1.IncidentResolved, "")
		Expect(err).NotTo(HaveOccurred())
		Eventually(pd.accepted, settle, poll).Should(HaveLen(3))
		Expect(pd.accepted()[2].json()).To(Equal(short("resolve")))

		_, err = incident.Close(ctx, carol, key, "rolled back release 42")
		Expect(err).NotTo(HaveOccurred())
		Consistently(pd.all, quietFor, poll).Should(HaveLen(3), "PagerDuty resolved the alert already")

		Eventually(func(g Gomega) {
			got := notificationsOf(g, inc)
			g.Expect(got).To(HaveLen(3))
			for i, want := range []v1.NotificationEvent{v1.NotifyOpened, v1.NotifyStateChanged, v1.NotifyResolved} {
				g.Expect(got[i].Receiver).To(Equal("pagerduty"))
				g.Expect(got[i].Event).To(Equal(want))
				g.Expect(got[i].Seq).To(BeEquivalentTo(i + 1))
				g.Expect(got[i].Attempts).To(BeEquivalentTo(1))
				g.Expect(got[i].DeliveredAt).NotTo(BeNil())
				g.Expect(got[i].NextAttemptAt).To(BeNil())
			}
		}, settle, poll).Should(Succeed())
	})

	It("keeps one dedup_key across retries and an operator restart, and triggers once", func() {
		stop := startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff})
		pd := newFakeReceiver(http.StatusAccepted)
		pd.failures.Store(3)
		createSecret(ns, "pagerduty", map[string]string{"routingKey": "R0UTING-KEY-2"})
		createReceiver(testbuild.MakeReceiver("pagerduty", ns).Type(v1.ReceiverPagerDuty).URL(pd.URL+"/v2/enqueue").Secret("pagerduty", ""))
		inc := openIncident(ns, "latency", v1.SeverityP2)
		Eventually(func(g Gomega) {
			got := notificationsOf(g, inc)
			g.Expect(got).To(HaveLen(1))
			g.Expect(got[0].Attempts).To(BeNumerically(">=", 2))
			g.Expect(got[0].LastError).To(Equal("pagerduty answered HTTP 503 (Service Unavailable)"))
			g.Expect(got[0].NextAttemptAt).NotTo(BeNil())
			g.Expect(got[0].DeliveredAt).To(BeNil())
		}, settle, poll).Should(Succeed())
		stop()
		before := notificationsOf(Default, inc)[0]

		stop = startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff})
		Eventually(pd.accepted, settle, poll).Should(HaveLen(1))
		Eventually(func(g Gomega) {
			got := notificationsOf(g, inc)
			g.Expect(got).To(HaveLen(1))
			g.Expect(got[0].Key).To(Equal(before.Key), "the same notification, carried on")
			g.Expect(got[0].Attempts).To(BeNumerically(">", before.Attempts))
			g.Expect(got[0].DeliveredAt).NotTo(BeNil())
			g.Expect(got[0].LastError).To(BeEmpty())
		}, settle, poll).Should(Succeed())
		stop()

		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))
		Consistently(pd.all, quietFor, poll).Should(HaveLen(4), "a delivered trigger is not sent again after a restart")
		for _, r := range pd.all() {
			Expect(r.json()).To(HaveKeyWithValue("dedup_key", "alertbridge-"+string(inc.UID)))
			Expect(r.json()).To(HaveKeyWithValue("event_action", "trigger"))
		}
		Expect(everythingUsersRead(Default, inc)).NotTo(ContainSubstring("REMOTE-TEXT"))
	})

	It("re-sends under the same dedup_key and Idempotency-Key when the operator stops in the middle of a delivery", func() {
		stop := startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff})
		pd, hook := newFakeReceiver(http.StatusAccepted), newFakeReceiver(http.StatusOK)
		pd.hold.Store(true)
		hook.hold.Store(true)
		createSecret(ns, "pagerduty", map[string]string{"routingKey": "R0UTING-KEY-3"})
		createSecret(ns, "hook", map[string]string{"signingKey": "k"})
		createReceiver(testbuild.MakeReceiver("pagerduty", ns).Type(v1.ReceiverPagerDuty).URL(pd.URL+"/v2/enqueue").Secret("pagerduty", ""))
		createReceiver(testbuild.MakeReceiver("automation", ns).URL(hook.URL).Secret("hook", ""))
		inc := openIncident(ns, "latency", v1.SeverityP1)

		// Both POSTs are on the wire, unanswered, when the operator stops:
		// the receivers act on them, the operator never hears so.
		Eventually(pd.held, settle).Should(Receive())
		Eventually(hook.held, settle).Should(Receive())
		stop()
		close(pd.release)
		close(hook.release)
		Expect(notificationsOf(Default, inc)).To(BeEmpty(), "nothing was recorded as delivered")

		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))
		Eventually(pd.accepted, settle, poll).Should(HaveLen(2))
		Eventually(hook.accepted, settle, poll).Should(HaveLen(2))
		Eventually(func(g Gomega) {
			got := notificationsOf(g, inc)
			g.Expect(got).To(HaveLen(2))
			for _, n := range got {
				g.Expect(n.Seq).To(BeEquivalentTo(1), "%s: the same notification, not a second one", n.Receiver)
				g.Expect(n.Event).To(Equal(v1.NotifyOpened))
				g.Expect(n.DeliveredAt).NotTo(BeNil())
			}
		}, settle, poll).Should(Succeed())
		Consistently(func() int { return len(pd.all()) + len(hook.all()) }, quietFor, poll).Should(Equal(4))

		// At least once, and the receivers' own dedup makes it once: one
		// PagerDuty alert, one webhook event.
		for _, r := range pd.all() {
			Expect(r.json()).To(HaveKeyWithValue("dedup_key", "alertbridge-"+string(inc.UID)))
			Expect(r.json()).To(HaveKeyWithValue("event_action", "trigger"))
		}
		keys := map[string]bool{}
		for _, r := range hook.all() {
			keys[r.header.Get("Idempotency-Key")] = true
		}
		var recorded string
		for _, n := range notificationsOf(Default, inc) {
			if n.Receiver == "automation" {
				recorded = n.Key
			}
		}
		Expect(keys).To(Equal(map[string]bool{recorded: true}))
	})

	It("posts a readable Slack message and follows up on state changes", func() {
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff, DashboardURL: dashboardURL}))
		slack := newFakeReceiver(http.StatusOK)
		hook := slack.URL + "/services/T000/B000/XXXXSECRET"
		createSecret(ns, "slack", map[string]string{"webhookURL": hook})
		rcv := createReceiver(testbuild.MakeReceiver("team-channel", ns).Type(v1.ReceiverSlack).Secret("slack", ""))
		expectReady(rcv)
		inc := openIncident(ns, "error_rate", v1.SeverityP2)
		Eventually(slack.accepted, settle, poll).Should(HaveLen(1))
		link := dashboardURL + "/?namespace=" + ns + "&incident=" + inc.Name
		field := func(s string) any { return map[string]any{"type": "mrkdwn", "text": s} }
		Expect(slack.accepted()[0].json()).To(Equal(map[string]any{
			"text": "[P2] Incident opened: gateway/prod: p95 above 300ms",
			"blocks": []any{
				map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": ":red_circle: [P2] Incident opened", "emoji": true}},
				map[string]any{"type": "section", "text": field("*p95 above 300ms*")},
				map[string]any{"type": "section", "fields": []any{
					field("*Service*\ngateway"), field("*Env*\nprod"), field("*Severity*\nP2"), field("*State*\nOpen"),
					field("*Alerts*\n1"), field("*Incident*\n" + ns + "/" + inc.Name),
				}},
				map[string]any{"type": "context", "elements": []any{field("<" + link + "|Open in alertbridge>")}},
			},
		}))

		carol := userIn(ns, "carol@example.com", oncallGroup, "alertbridge-oncall")
		_, err := incident.SetState(ctx, carol, client.ObjectKeyFromObject(inc), v1.IncidentMitigating, "")
		Expect(err).NotTo(HaveOccurred())
		Eventually(slack.accepted, settle, poll).Should(HaveLen(2))
		Expect(slack.accepted()[1].json()["text"]).To(Equal("[P2] Incident mitigating: gateway/prod: p95 above 300ms"))
		Expect(everythingUsersRead(Default, inc) + everythingUsersRead(Default, rcv)).NotTo(ContainSubstring("XXXXSECRET"))
	})

	It("signs webhooks as docs/notifications.md says, with an Idempotency-Key per Incident and event", func() {
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))
		hook := newFakeReceiver(http.StatusNoContent)
		const signingKey = "whsec-0a1b2c"
		createSecret(ns, "hook", map[string]string{"signingKey": signingKey})
		createReceiver(testbuild.MakeReceiver("automation", ns).URL(hook.URL+"/alertbridge").Secret("hook", ""))
		inc := openIncident(ns, "latency", v1.SeverityP3)
		Eventually(hook.accepted, settle, poll).Should(HaveLen(1))
		inc = getIncident(Default, ns, inc.Name)
		req := hook.accepted()[0]

		// The recipe of docs/notifications.md: HMAC-SHA256 over "<timestamp>.<body>".
		ts := req.header.Get("X-Alertbridge-Timestamp")
		sent, err := strconv.ParseInt(ts, 10, 64)
		Expect(err).NotTo(HaveOccurred())
		Expect(time.Since(time.Unix(sent, 0))).To(BeNumerically("<", 5*time.Minute))
		mac := hmac.New(sha256.New, []byte(signingKey))
		mac.Write([]byte(ts + "." + string(req.body)))
		Expect(req.header.Get("X-Alertbridge-Signature")).To(Equal("sha256=" + hex.EncodeToString(mac.Sum(nil))))
		Expect(req.header.Get("X-Alertbridge-Event")).To(Equal("incident.opened"))
		id := req.header.Get("Idempotency-Key")
		Expect(id).To(HavePrefix(string(inc.UID) + "/"))
		Expect(req.json()).To(Equal(map[string]any{
			"schemaVersion": "alertbridge.io/notification/v1", "id": id, "event": "incident.opened",
			"receiver": map[string]any{"namespace": ns, "name": "automation"},
			"incident": map[string]any{
				"namespace": ns, "name": inc.Name, "uid": string(inc.UID), "service": "gateway", "env": "prod",
				"severity": "P3", "title": "p95 above 300ms", "state": "Open", "signature": "gateway/prod/latency",
				"alertCount": float64(1), "openedAt": inc.Status.OpenedAt.UTC().Format(time.RFC3339),
			},
		}))
		Eventually(func(g Gomega) {
			got := notificationsOf(g, inc)
			g.Expect(got).To(HaveLen(1))
			g.Expect(got[0].Key).To(Equal(id), "the recorded key is the one sent")
		}, settle, poll).Should(Succeed())
	})

	It("catches up after a receiver's outage without doubling anything, and never holds up the others", func() {
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))
		flaky, audit := newFakeReceiver(http.StatusOK), newFakeReceiver(http.StatusOK)
		flaky.down.Store(true)
		deliveries := func(result string) float64 {
			return testutil.ToFloat64(metrics.NotificationDeliveries.WithLabelValues(string(v1.ReceiverWebhook), result))
		}
		pending := func() float64 {
			return testutil.ToFloat64(metrics.NotificationsPending.WithLabelValues(string(v1.ReceiverWebhook)))
		}
		delivered, retrying, pendingBefore := deliveries(metrics.ResultDelivered), deliveries(metrics.ResultRetrying), pending()
		createSecret(ns, "hook", map[string]string{"signingKey": "k"})
		createReceiver(testbuild.MakeReceiver("flaky", ns).URL(flaky.URL).Secret("hook", ""))
		createReceiver(testbuild.MakeReceiver("audit", ns).URL(audit.URL).Secret("hook", ""))
		kinds := []string{"latency", "error_rate", "saturation", "disk_full", "cert_expiry"}
		var incs []*v1.Incident
		for _, k := range kinds {
			incs = append(incs, openIncident(ns, k, v1.SeverityP2))
		}
		Eventually(audit.accepted, settle, poll).Should(HaveLen(len(kinds)), "the healthy receiver is not held up")
		Expect(flaky.accepted()).To(BeEmpty())
		Eventually(func(g Gomega) {
			for _, inc := range incs {
				for _, n := range notificationsOf(g, inc) {
					if n.Receiver == "flaky" {
						g.Expect(n.LastError).To(Equal("webhook answered HTTP 503 (Service Unavailable)"))
						g.Expect(n.NextAttemptAt).NotTo(BeNil())
					}
				}
			}
		}, settle, poll).Should(Succeed())

		// The outage shows in the metrics: failed attempts to retry, and
		// notifications waiting.
		// (A failing receiver holds its other messages back for the backoff:
		// an outage costs one attempt per backoff, not one per Incident.)
		Expect(deliveries(metrics.ResultRetrying)).To(BeNumerically(">", retrying))
		Eventually(pending, settle, poll).Should(BeNumerically(">=", pendingBefore+float64(len(kinds))))

		flaky.down.Store(false)
		Eventually(flaky.accepted, settle, poll).Should(HaveLen(len(kinds)))
		Consistently(flaky.accepted, quietFor, poll).Should(HaveLen(len(kinds)))
		for _, f := range []*fakeReceiver{flaky, audit} {
			perKey := map[string]int{}
			for _, r := range f.accepted() {
				perKey[r.header.Get("Idempotency-Key")]++
			}
			Expect(perKey).To(HaveLen(len(kinds)))
			for k, n := range perKey {
				Expect(n).To(Equal(1), "key %s accepted %d times", k, n)
			}
		}
		for _, inc := range incs {
			Eventually(func(g Gomega) {
				for _, n := range notificationsOf(g, inc) {
					g.Expect(n.DeliveredAt).NotTo(BeNil(), "%s to %s", inc.Name, n.Receiver)
				}
			}, settle, poll).Should(Succeed())
		}
		Expect(deliveries(metrics.ResultDelivered)).To(Equal(delivered+float64(2*len(kinds))), "one delivery per Incident and Receiver")
		Eventually(pending, settle, poll).Should(Equal(pendingBefore), "nothing left to deliver")
	})

	It("keeps telling the other receivers while one takes POSTs and never answers", func() {
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))
		stuck, audit := newFakeReceiver(http.StatusOK), newFakeReceiver(http.StatusOK)
		stuck.hang.Store(true)
		createSecret(ns, "hook", map[string]string{"signingKey": "k"})
		createReceiver(testbuild.MakeReceiver("stuck", ns).URL(stuck.URL).Secret("hook", ""))
		createReceiver(testbuild.MakeReceiver("audit", ns).URL(audit.URL).Secret("hook", ""))
		// More Incidents than the notification controller has workers.
		kinds := []string{"latency", "error_rate", "saturation", "disk_full", "cert_expiry", "queue_depth", "restarts", "oom"}
		var incs []*v1.Incident
		for _, k := range kinds {
			incs = append(incs, openIncident(ns, k, v1.SeverityP2))
		}
		// Every Incident reaches audit while stuck still holds its first
		// POST (no wall clock: the stuck POST ends only at the HTTP
		// client's timeout).
		Eventually(func(g Gomega) {
			if stuck.hung.Load() > 0 {
				StopTrying("a POST to the stuck receiver timed out before audit heard of every Incident").Now()
			}
			g.Expect(audit.accepted()).To(HaveLen(len(kinds)))
		}, settle, poll).Should(Succeed())
		Expect(stuck.arrived.Load()).To(BeEquivalentTo(1), "one POST at a time to the stuck receiver")

		stuck.hang.Store(false)
		close(stuck.release)
		Eventually(stuck.accepted, settle, poll).Should(HaveLen(len(kinds)), "it catches up once it answers")
		for _, inc := range incs {
			Eventually(func(g Gomega) {
				got := notificationsOf(g, inc)
				g.Expect(got).To(HaveLen(2))
				for _, n := range got {
					g.Expect(n.DeliveredAt).NotTo(BeNil(), "%s to %s", inc.Name, n.Receiver)
				}
			}, settle, poll).Should(Succeed())
		}
	})

	It("sends one notification for a storm of 10,000 alerts on one signature", func() {
		op, err := testoperator.Start(env.Operator, controllers.Options{NotificationBackoff: notifyBackoff})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(op.Stop(settle)).To(Succeed()) })
		mgr := op.Manager
		hook := newFakeReceiver(http.StatusOK)
		createSecret(ns, "hook", map[string]string{"signingKey": "k"})
		createReceiver(testbuild.MakeReceiver("automation", ns).URL(hook.URL).Secret("hook", ""))
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).AutoIncident(1, v1.SeverityP3))

		// The HTTP intake's path: occurrences counted into their canonical
		// Alerts, ten fingerprints of one signature.
		in := &intake.Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
		const total, workers = 10000, 50
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range workers {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := next.Add(1); i <= total; i = next.Add(1) {
					_, err := in.Ingest(ctx, intake.Request{Namespace: ns, Caller: "monitor", Spec: v1.AlertSpec{
						Service: "gateway", Env: "prod", Kind: "latency", Severity: v1.SeverityP2, Title: "p95 above 300ms",
						Labels: map[string]string{"host": fmt.Sprintf("h%d", i%10)},
					}})
					Expect(err).NotTo(HaveOccurred())
				}
			})
		}
		wg.Wait()
		Eventually(func(g Gomega) {
			incs := listIncidents(g, ns)
			g.Expect(incs).To(HaveLen(1))
			g.Expect(incs[0].Status.AlertCount).To(BeEquivalentTo(10))
			var occurrences int64
			for _, a := range testbuild.Alerts(g, k8s, ns) {
				if a.Status.Phase == v1.AlertNew {
					occurrences += a.Status.Occurrences
				}
			}
			g.Expect(occurrences).To(BeEquivalentTo(total))
		}, settle, poll).Should(Succeed())
		Eventually(hook.accepted, settle, poll).Should(HaveLen(1))
		Consistently(hook.all, quietFor, poll).Should(HaveLen(1))
		Expect(hook.all()[0].header.Get("X-Alertbridge-Event")).To(Equal("incident.opened"))
	})

	It("never announces a silenced Alert, and announces it when its Silence ends", func() {
		hook := newFakeReceiver(http.StatusOK)
		createSecret(ns, "hook", map[string]string{"signingKey": "k"})
		createReceiver(testbuild.MakeReceiver("new-alerts", ns).URL(hook.URL).Secret("hook", "").Events().Alerts(v1.SeverityP2))
		// A real Silence, there before the Alerts: the Alert controller
		// silences the quiet one in the same write that makes it New.
		sil := testbuild.MakeSilence("maintenance-42", ns).Matcher("host", v1.MatchEqual, "quiet").EndsAt(time.Now().Add(time.Hour)).Obj()
		Expect(k8s.Create(ctx, sil)).To(Succeed())
		loud, quiet, minor := sigAlert(ns, "loud", v1.SeverityP1), sigAlert(ns, "quiet", v1.SeverityP1), sigAlert(ns, "minor", v1.SeverityP3)
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))

		alertsIn := func(r fakeRequest) []string {
			var names []string
			items, _ := r.json()["alerts"].(map[string]any)["items"].([]any)
			for _, it := range items {
				names = append(names, it.(map[string]any)["name"].(string))
			}
			return names
		}
		Eventually(hook.accepted, settle, poll).Should(HaveLen(1))
		Consistently(hook.all, quietFor, poll).Should(HaveLen(1))
		first := hook.accepted()[0]
		Expect(first.header.Get("X-Alertbridge-Event")).To(Equal("alerts.firing"))
		Expect(alertsIn(first)).To(Equal([]string{loud.Name}), "not the silenced one, nor the P3 %s", minor.Name)

		// The Silence is expired as `silences expire` does it.
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(sil), sil); err != nil {
				return err
			}
			sil.Spec.EndsAt = metav1.Now()
			return k8s.Update(ctx, sil)
		})).To(Succeed())
		Eventually(hook.accepted, settle, poll).Should(HaveLen(2))
		Expect(alertsIn(hook.accepted()[1])).To(Equal([]string{quiet.Name}))
		Consistently(hook.all, quietFor, poll).Should(HaveLen(2))
	})

	It("sends nothing from a ServiceAccount token Secret and follows no redirect to another origin", func() {
		DeferCleanup(startOperator(controllers.Options{Only: notificationControllers, NotificationBackoff: notifyBackoff}))
		attacker := newListener(nil)
		front := newListener(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, attacker.URL+"/steal", http.StatusTemporaryRedirect)
		})
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: ns}})).To(Succeed())
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "builder-token", Namespace: ns, Annotations: map[string]string{corev1.ServiceAccountNameKey: "builder"}},
			Type:       corev1.SecretTypeServiceAccountToken,
			StringData: map[string]string{"token": "sa-token-9a0f", "signingKey": "sa-token-9a0f"},
		})).To(Succeed())
		createSecret(ns, "hook", map[string]string{"signingKey": "k"})
		sa := createReceiver(testbuild.MakeReceiver("sa", ns).URL(attacker.URL).Secret("builder-token", ""))
		createReceiver(testbuild.MakeReceiver("redirected", ns).URL(front.URL+"/hook").Secret("hook", ""))
		Eventually(func(g Gomega) {
			c := receiverReady(g, sa)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonSecretNotAllowed))
			g.Expect(c.Message).To(ContainSubstring("spec.secretRef: Secret builder-token holds a Kubernetes ServiceAccount token"))
		}, settle, poll).Should(Succeed())

		inc := openIncident(ns, "latency", v1.SeverityP1)
		Eventually(func(g Gomega) {
			got := notificationsOf(g, inc)
			g.Expect(got).To(HaveLen(2))
			for _, n := range got {
				g.Expect(n.NextAttemptAt).To(BeNil(), "given up at once: %s", n.Receiver)
				g.Expect(n.DeliveredAt).To(BeNil())
				switch n.Receiver {
				case "sa":
					g.Expect(n.LastError).To(ContainSubstring("Secret builder-token holds a Kubernetes ServiceAccount token"))
				case "redirected":
					g.Expect(n.LastError).To(ContainSubstring("refused a redirect from " + front.URL + " to another origin"))
				}
			}
			g.Expect(eventReasons(g, ns, inc.Name)).To(ContainElement(controllers.EventNotificationFailed))
		}, settle, poll).Should(Succeed())
		Consistently(attacker.received, quietFor, poll).Should(BeEmpty(), "no credential, no signature, not even a call")
		Expect(front.received()).To(HaveLen(1))
	})
})
