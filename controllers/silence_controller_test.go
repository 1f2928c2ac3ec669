package controllers_test

import (
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// silenceControllers are the controllers these specs test: Silences over Alerts, and automatic conversion of silenced ones.
var silenceControllers = []controllers.Controller{controllers.AlertController, controllers.IncidentController, controllers.SilenceController}

const oncallUser = "alice@example.com"

// silenceFor is a Silence of matchers (name=value pairs, operator =) that
// on-call creates through the shipped role, as kubectl would.
func silenceFor(ns string, start *time.Time, end time.Time, matchers ...string) *v1.Silence {
	GinkgoHelper()
	s := testbuild.MakeSilence("", ns).GenerateName("deploy-").EndsAt(end).Comment("deploy")
	if start != nil {
		s.StartsAt(*start)
	}
	for i := 0; i < len(matchers); i += 2 {
		s.Matcher(matchers[i], v1.MatchEqual, matchers[i+1])
	}
	return createSilence(s.Obj())
}

func createSilence(s *v1.Silence) *v1.Silence {
	GinkgoHelper()
	Expect(userIn(s.Namespace, oncallUser, oncallGroup, "alertbridge-oncall").Create(ctx, s)).To(Succeed())
	Expect(s.Spec.CreatedBy).To(Equal(oncallUser), "the API server names the creator")
	return s
}

// silencedCondition is a's Silenced condition, refreshed; nil without one.
func silencedCondition(g Gomega, a *v1.Alert) *metav1.Condition {
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
	return meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionSilenced)
}

func expectSilenced(a *v1.Alert, by string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		c := silencedCondition(g, a)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Message).To(HavePrefix("silenced by Silence " + by + " until "))
	}, settle, poll).Should(Succeed())
}

// expectBackInPlay waits until a's Silenced condition is False and
// returns when it turned so.
func expectBackInPlay(a *v1.Alert) time.Time {
	GinkgoHelper()
	var at time.Time
	Eventually(func(g Gomega) {
		c := silencedCondition(g, a)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(v1.ReasonSilenceEnded))
		at = c.LastTransitionTime.Time
	}, settle, poll).Should(Succeed())
	return at
}

func expectSilenceState(s *v1.Silence, state v1.SilenceState) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
		g.Expect(s.Status.State).To(Equal(state))
	}, settle, poll).Should(Succeed())
}

var _ = Describe("Silences", func() {
	var ns string
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		stop := startOperator(controllers.Options{Only: silenceControllers, DuplicateGCDelay: gcDelay})
		DeferCleanup(func() { stop() })
	})

	It("silence a matching Alert that is still counted, refuse its claim, and put it back in play at endsAt on the operator's timer", func() {
		baseline := acceptLatency(testbuild.Namespace(Default, k8s, "ctl-"), 3)
		s := silenceFor(ns, nil, time.Now().Add(time.Hour), "service", "gateway", "host", "db-1")
		a := testbuild.MakeAlert("", ns).Host("db-1").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, v1.AlertNew)
		expectSilenced(a, s.Name)
		other := testbuild.MakeAlert("", ns).Host("db-2").Obj()
		Expect(k8s.Create(ctx, other)).To(Succeed())
		expectPhase(other, v1.AlertNew)
		Expect(other.Status.Conditions).To(BeEmpty(), "an Alert the Silence does not match gets no condition")

		// Ingested, deduplicated and counted all the same.
		Expect(k8s.Create(ctx, testbuild.MakeAlert("", ns).Host("db-1").Obj())).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Occurrences).To(BeEquivalentTo(2))
		}, settle, poll).Should(Succeed())

		// The claim library skips it; a raw claim, as kubectl would write
		// it, is refused by the API server.
		got, err := agent(ns, "agent-1").Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-1", LockTTL: time.Hour})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		Expect(got[0].Name).To(Equal(other.Name), "only the Alert nobody silenced")
		at := metav1.NowMicro().UTC().Format(metav1.RFC3339Micro) // acquired when first renewed
		raw, err := json.Marshal(map[string]any{"status": map[string]any{"phase": "Processing", "attempts": 1, "claim": map[string]any{
			"holderIdentity": "agent-1", "holderUser": "agent-1", "acquireTime": at, "renewTime": at, "leaseDurationSeconds": 600,
		}}})
		Expect(err).NotTo(HaveOccurred())
		agentClient := userIn(ns, "agent-1", agentsGroup, "alertbridge-agent")
		Expect(agentClient.Status().Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", raw))).To(MatchError(
			ContainSubstring(fmt.Sprintf("status.phase: Alert %s is silenced by Silence %s until ", a.Name, s.Name))))

		expectSilenceState(s, v1.SilenceActive)
		Expect(s.Status.Matchers).To(Equal(`{service="gateway", host="db-1"}`))
		Expect(meta.IsStatusConditionTrue(s.Status.Conditions, v1.SilenceConditionAccepted)).To(BeTrue())
		Expect(s.Status.StartsAt.Time).To(BeTemporally("==", s.CreationTimestamp.Time), "without startsAt it starts at its creation")

		// On-call shortens the window; the Alert comes back at the new
		// endsAt with no action by anyone, on the operator's timer.
		end := time.Now().Add(3 * time.Second).Truncate(time.Second)
		patch := fmt.Appendf(nil, `{"spec":{"endsAt":%q}}`, end.UTC().Format(time.RFC3339))
		Expect(userIn(ns, oncallUser, oncallGroup, "alertbridge-oncall").Patch(ctx, s.DeepCopy(),
			client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(silencedCondition(g, a).Status).To(Equal(metav1.ConditionTrue))
		}, time.Until(end)-500*time.Millisecond, poll).Should(Succeed())
		back := expectBackInPlay(a)
		Expect(back).To(BeTemporally(">=", end), "back in play before the Silence ended")
		// The condition's time has second resolution: one second of slack.
		Expect(back.Sub(end)).To(BeNumerically("<=", time.Second+3*baseline),
			"back in play late (the operator decides a new Alert in %s in this run)", baseline)
		expectSilenceState(s, v1.SilenceExpired)

		got, err = agent(ns, "agent-1").Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-1", LockTTL: time.Hour})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		Expect(got[0].Name).To(Equal(a.Name))
		Eventually(func(g Gomega) {
			g.Expect(eventReasons(g, ns, a.Name)).To(ContainElements(controllers.EventSilenced, controllers.EventSilenceEnded))
		}, settle, poll).Should(Succeed())
	})

	It("let an agent claim a silenced Alert once the Silence's endsAt passes, with no action by anyone", func() {
		end := time.Now().Add(4 * time.Second).Truncate(time.Second)
		s := silenceFor(ns, nil, end, "host", "expiring")
		a := testbuild.MakeAlert("", ns).Host("expiring").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectSilenced(a, s.Name)
		claimer := agent(ns, "agent-1")
		req := claim.Request{Namespace: ns, Limit: 5, Owner: "agent-1", LockTTL: time.Hour}
		// Until endsAt nobody claims it; nobody touches the Silence or the
		// Alert: the operator's timer at endsAt puts it back in play.
		Consistently(func(g Gomega) {
			got, err := claimer.Claim(ctx, req)
			g.Expect(err).To(MatchError(claim.ErrNothingToClaim))
			g.Expect(got).To(BeEmpty())
		}, time.Until(end)-500*time.Millisecond, 250*time.Millisecond).Should(Succeed())
		var got []v1.Alert
		Eventually(func(g Gomega) {
			var err error
			got, err = claimer.Claim(ctx, req)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(HaveLen(1))
		}, settle, poll).Should(Succeed())
		Expect(got[0].Name).To(Equal(a.Name))
		Expect(time.Now()).To(BeTemporally(">=", end))
		Expect(got[0].Status.Phase).To(Equal(v1.AlertProcessing))
		expectSilenceState(s, v1.SilenceExpired)
	})

	It("start silencing at startsAt on the operator's timer", func() {
		baseline := acceptLatency(testbuild.Namespace(Default, k8s, "ctl-"), 3)
		a := testbuild.MakeAlert("", ns).Host("later").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, v1.AlertNew)
		start := time.Now().Add(3 * time.Second).Truncate(time.Second)
		s := silenceFor(ns, &start, start.Add(time.Hour), "host", "later")
		expectSilenceState(s, v1.SilencePending)
		Consistently(func(g Gomega) {
			g.Expect(silencedCondition(g, a)).To(BeNil())
		}, time.Until(start)-500*time.Millisecond, poll).Should(Succeed())
		expectSilenced(a, s.Name)
		c := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionSilenced)
		Expect(c.LastTransitionTime.Time).To(BeTemporally(">=", start))
		Expect(c.LastTransitionTime.Sub(start)).To(BeNumerically("<=", time.Second+3*baseline), "silenced late")
		expectSilenceState(s, v1.SilenceActive)
	})

	It("follow a Silence's matchers as they change, and let go at once when it is deleted", func() {
		s := createSilence(testbuild.MakeSilence("", ns).GenerateName("deploy-").Comment("web rollout").
			Matcher("host", v1.MatchRegexp, "web-(1|2)").EndsAt(time.Now().Add(time.Hour)).Obj())
		a1, a2 := testbuild.MakeAlert("", ns).Host("web-1").Obj(), testbuild.MakeAlert("", ns).Host("web-2").Obj()
		Expect(k8s.Create(ctx, a1)).To(Succeed())
		Expect(k8s.Create(ctx, a2)).To(Succeed())
		expectSilenced(a1, s.Name)
		expectSilenced(a2, s.Name)

		oncall := userIn(ns, oncallUser, oncallGroup, "alertbridge-oncall")
		Expect(oncall.Patch(ctx, s.DeepCopy(), client.RawPatch("application/merge-patch+json",
			[]byte(`{"spec":{"matchers":[{"name":"host","operator":"=","value":"web-1"}]}}`)))).To(Succeed())
		expectBackInPlay(a2)
		Consistently(func(g Gomega) {
			g.Expect(silencedCondition(g, a1).Status).To(Equal(metav1.ConditionTrue))
		}, quietFor, poll).Should(Succeed())

		Expect(oncall.Delete(ctx, s)).To(Succeed())
		expectBackInPlay(a1)
	})

	It("not convert a silenced Alert automatically, and convert it once the Silence is expired", func() {
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).AutoIncident(1, v1.SeverityP2))
		s := silenceFor(ns, nil, time.Now().Add(time.Hour), "host", "maintenance")
		a := sigAlert(ns, "maintenance", v1.SeverityP1)
		expectSilenced(a, s.Name)
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.IncidentRef).To(BeNil())
			g.Expect(listIncidents(g, ns)).To(BeEmpty())
		}, quietFor, poll).Should(Succeed())

		// `alertbridge silences expire`: endsAt = now.
		Expect(userIn(ns, oncallUser, oncallGroup, "alertbridge-oncall").Patch(ctx, s.DeepCopy(), client.RawPatch("application/merge-patch+json",
			fmt.Appendf(nil, `{"spec":{"endsAt":%q}}`, time.Now().UTC().Format(time.RFC3339))))).To(Succeed())
		expectBackInPlay(a)
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.IncidentRef).NotTo(BeNil())
		}, settle, poll).Should(Succeed())
	})

	It("not apply a Silence longer than the namespace allows, and say why", func() {
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).SilenceMaxDuration(30 * time.Minute))
		a := testbuild.MakeAlert("", ns).Host("long").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, v1.AlertNew)
		s := silenceFor(ns, nil, time.Now().Add(2*time.Hour), "host", "long")
		expectSilenceState(s, v1.SilenceInvalid)
		accepted := meta.FindStatusCondition(s.Status.Conditions, v1.SilenceConditionAccepted)
		Expect(accepted.Status).To(Equal(metav1.ConditionFalse))
		Expect(accepted.Reason).To(Equal(v1.ReasonTooLong))
		Expect(accepted.Message).To(ContainSubstring("longer than this namespace allows (30m0s, AlertRoutingPolicy spec.silences.maxDuration)"))
		Consistently(func(g Gomega) { g.Expect(silencedCondition(g, a)).To(BeNil()) }, quietFor, poll).Should(Succeed())

		// The namespace admin allows longer Silences: it applies at once.
		var p v1.AlertRoutingPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1.RoutingPolicyName}, &p)).To(Succeed())
		p.Spec.Silences.MaxDuration.Duration = 3 * time.Hour
		Expect(k8s.Update(ctx, &p)).To(Succeed())
		expectSilenceState(s, v1.SilenceActive)
		expectSilenced(a, s.Name)
	})
})
