package controllers_test

import (
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The attacks on a lease that admission cannot refuse, made by an agent
// through the shipped alertbridge-agent role as kubectl makes them, and
// undone by the running operator (as its ServiceAccount, on a fake clock):
// a renewTime in the future, which the API server has no clock to judge,
// and a lease longer than the ceiling where no AlertRoutingPolicy sets one.
// What admission refuses is api/v1alpha1/lease_bounds_test.go's.
var _ = Describe("Lease bounds with the operator", func() {
	const mallory = "mallory"
	var (
		ns    string
		clk   *clocktesting.FakeClock
		agent client.Client
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		clk = clocktesting.NewFakeClock(time.Now())
		stop := startOperator(controllers.Options{Clock: clk, DuplicateGCDelay: gcDelay, Only: []controllers.Controller{controllers.AlertController}})
		DeferCleanup(func() { stop() })
		agent = userIn(ns, mallory, agentsGroup, "alertbridge-agent")
	})

	newAlert := func() *v1.Alert {
		GinkgoHelper()
		a := testbuild.MakeAlert("", ns).Host("leased").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, v1.AlertNew)
		return a
	}
	clamped := func(a *v1.Alert) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			g.Expect(eventReasons(g, ns, a.Name)).To(ContainElement(controllers.EventLeaseClamped))
		}, settle, poll).Should(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
	}

	It("moves a renewTime in 2999 back to the operator's clock, and returns the Alert to New once the ceiling has passed", func() {
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).ProcessingLockTTL(time.Second).MaxLeaseDuration(2 * time.Second))
		a := newAlert()
		far := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
		Expect(patchStatus(agent, a, rawClaim(mallory, far, 2, 0, 1))).To(Succeed(), "admission has no clock to refuse it by")

		clamped(a)
		seen := clk.Now().Truncate(time.Microsecond)
		Expect(a.Status.Phase).To(Equal(v1.AlertProcessing))
		Expect(a.Status.Claim.RenewTime.Time).To(BeTemporally("==", seen))
		Expect(a.Status.Claim.AcquireTime.Time).To(BeTemporally("==", seen))
		Expect(a.Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(2))
		Expect(a.Status.Claim.HolderUser).To(Equal(mallory), "the holder keeps the lease it is entitled to")
		c := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionClaimed)
		Expect(c).NotTo(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Message).To(HavePrefix("claimed by mallory (owner mallory); at " + seen.UTC().Format(time.RFC3339) +
			" the operator shortened the lease to end at " + seen.Add(2*time.Second).UTC().Format(time.RFC3339) +
			": renewTime 2999-01-01T00:00:00.000000Z was ahead of the operator's clock"))

		By("nothing happens until the ceiling has passed on the operator's clock")
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(v1.AlertProcessing))
		}, quietFor, poll).Should(Succeed())
		clk.Step(2 * time.Second)
		expectPhase(a, v1.AlertNew)
		Expect(meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionClaimed).Reason).To(Equal(v1.ReasonLeaseExpired))

		By("the holder's ack comes too late: the Alert is New, and an agent acks only what it holds")
		Expect(patchStatus(agent, a, rawAck(mallory))).To(MatchError(ContainSubstring("needs the acknowledge verb on alerts/status")))
	})

	It("shortens a lease longer than the 1h default where no AlertRoutingPolicy sets a ceiling", func() {
		a := newAlert()
		Expect(patchStatus(agent, a, rawClaim(mallory, clk.Now(), 86400, 0, 1))).To(Succeed(), "no policy: no ceiling at admission")
		clamped(a)
		seen := clk.Now().Truncate(time.Microsecond)
		Expect(a.Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(3600))
		Expect(a.Status.Claim.RenewTime.Time).To(BeTemporally("==", seen))
		Expect(meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionClaimed).Message).
			To(ContainSubstring("leaseDurationSeconds 86400 was longer than the namespace's maxLeaseDuration 1h0m0s"))
	})

	It("shortens the leases held now when the ceiling is lowered", func() {
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns))
		a := newAlert()
		Expect(patchStatus(agent, a, rawClaim(mallory, clk.Now(), 3600, 0, 1))).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(eventReasons(g, ns, a.Name)).NotTo(ContainElement(controllers.EventLeaseClamped))
		}, quietFor, poll).Should(Succeed(), "a lease at the ceiling is left alone")

		var p v1.AlertRoutingPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1.RoutingPolicyName}, &p)).To(Succeed())
		p.Spec.MaxLeaseDuration = &metav1.Duration{Duration: 20 * time.Minute}
		Expect(k8s.Update(ctx, &p)).To(Succeed())
		clamped(a)
		Expect(a.Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(1200))
		Expect(a.Status.Claim.RenewTime.Time).To(BeTemporally("==", clk.Now().Truncate(time.Microsecond)))
	})
})

// A lease ends when the operator returns its Alert to New, not when some
// client's clock says: until then the holder may still ack it (nobody else
// can have claimed it, since claims take New Alerts only); after that the
// API server refuses the holder's ack.
var _ = Describe("An ack after the lease's end", func() {
	const mallory = "mallory"

	It("is the holder's while the operator has not returned the Alert to New (operator stopped), and refused once it has", func() {
		ns := testbuild.Namespace(Default, k8s, "ctl-")
		agent := userIn(ns, mallory, agentsGroup, "alertbridge-agent")
		// The operator is not running: the Alerts' first decision is written
		// here, and nothing returns an expired lease to New.
		byHand, byLibrary, late := acceptedAlert(ns, "by-hand"), acceptedAlert(ns, "by-library"), acceptedAlert(ns, "late")
		hourAgo := time.Now().Add(-time.Hour)
		for _, a := range []*v1.Alert{byHand, late} {
			Expect(patchStatus(agent, a, rawClaim(mallory, hourAgo, 60, 0, 1))).To(Succeed())
		}
		past := clocktesting.NewFakePassiveClock(hourAgo)
		lib := &claim.Claimer{Client: agent, Clock: past}
		got, err := lib.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "loop", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		Expect(got[0].Name).To(Equal(byLibrary.Name))

		By("an hour past their ends, the holder acks them, with kubectl and with the claim library")
		Expect(patchStatus(agent, byHand, rawAck(mallory))).To(Succeed())
		past.SetTime(time.Now())
		acked, err := lib.Ack(ctx, client.ObjectKeyFromObject(byLibrary), "loop", "done, late")
		Expect(err).NotTo(HaveOccurred(), "no client's clock ends a lease")
		Expect(acked.Status.Phase).To(Equal(v1.AlertAcked))
		Expect(acked.Status.Ack.By).To(Equal(mallory))

		By("once the operator has returned the last one to New, the holder's ack is refused by the API server")
		stop := startOperator(controllers.Options{Clock: clocktesting.NewFakeClock(time.Now()), DuplicateGCDelay: gcDelay,
			Only: []controllers.Controller{controllers.AlertController}})
		DeferCleanup(func() { stop() })
		expectPhase(late, v1.AlertNew)
		Expect(patchStatus(agent, late, rawAck(mallory))).To(MatchError(ContainSubstring("needs the acknowledge verb on alerts/status")))
		_, err = lib.Ack(ctx, client.ObjectKeyFromObject(late), mallory, "too late")
		Expect(err).To(MatchError(ContainSubstring("needs the acknowledge verb on alerts/status")))
		for _, a := range []*v1.Alert{byHand, byLibrary} {
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			Expect(a.Status.Phase).To(Equal(v1.AlertAcked), "the operator leaves an acked Alert acked")
		}
	})
})

// rawClaim is a claim of a New Alert by user as kubectl writes it: a lease
// from renew (acquired then), leaseTransitions as the policy wants it, and
// attempts counting this claim.
func rawClaim(user string, renew time.Time, seconds, transitions, attempts int) map[string]any {
	at := metav1.NewMicroTime(renew).UTC().Format(metav1.RFC3339Micro)
	c := map[string]any{"holderIdentity": user, "holderUser": user, "acquireTime": at, "renewTime": at, "leaseDurationSeconds": seconds}
	if transitions > 0 {
		c["leaseTransitions"] = transitions
	}
	return map[string]any{"phase": "Processing", "attempts": attempts, "claim": c}
}

// rawAck is an ack by user as kubectl writes it.
func rawAck(user string) map[string]any {
	return map[string]any{"phase": "Acked", "ack": map[string]any{"by": user, "at": metav1.Now().UTC().Format(time.RFC3339)}}
}

// patchStatus merge-patches a's status as c, as `kubectl patch
// --subresource=status --type=merge` does.
func patchStatus(c client.Client, a *v1.Alert, status map[string]any) error {
	body, err := json.Marshal(map[string]any{"status": status})
	Expect(err).NotTo(HaveOccurred())
	return c.Status().Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", body))
}
