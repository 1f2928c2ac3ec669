package controllers_test

import (
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// acceptedAlert creates an Alert and makes the controller's first decision
// (New) itself, as the operator's ServiceAccount, for specs that run
// without the operator.
func acceptedAlert(ns, host string) *v1.Alert {
	GinkgoHelper()
	a := testbuild.MakeAlert("", ns).Host(host).Obj()
	Expect(k8s.Create(ctx, a)).To(Succeed())
	updateStatus(a, func(a *v1.Alert) {
		alertstate.MarkCanonical(&a.Status, "fp-"+host, a.CreationTimestamp, a.Generation)
	})
	return a
}

var _ = Describe("Claims without the operator", func() {
	var (
		ns     string
		clk    *clocktesting.FakePassiveClock
		a1, a2 *claim.Claimer
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		clk = clocktesting.NewFakePassiveClock(time.Now())
		a1, a2 = agent(ns, "agent-1"), agent(ns, "agent-2")
		a1.Clock, a2.Clock = clk, clk
	})

	It("refuses renew, ack and fail from anyone but the holder, naming the holder", func() {
		a := acceptedAlert(ns, "h1")
		got, err := a1.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-1", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		Expect(got[0].Status.Claim.HolderUser).To(Equal("agent-1"), "the claim records the Kubernetes user")
		key := client.ObjectKeyFromObject(a)
		before := &v1.Alert{}
		Expect(k8s.Get(ctx, key, before)).To(Succeed())

		_, errRenew := a2.Renew(ctx, key, "agent-1", 0)
		_, errAck := a2.Ack(ctx, key, "agent-1", "mine now")
		_, errFail := a2.Fail(ctx, key, "agent-1", "boom", time.Minute)
		for _, err := range []error{errRenew, errAck, errFail} {
			var nh *alertstate.NotHolderError
			Expect(errors.As(err, &nh)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring("is held by agent-1 (owner agent-1) until"))
		}
		after := &v1.Alert{}
		Expect(k8s.Get(ctx, key, after)).To(Succeed())
		Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "a refused operation wrote")

		clk.SetTime(clk.Now().Add(30 * time.Second))
		renewed, err := a1.Renew(ctx, key, "agent-1", 0)
		Expect(err).NotTo(HaveOccurred())
		Expect(alertstate.LeaseExpiry(&renewed.Status)).To(BeTemporally("~", clk.Now().Add(time.Minute), time.Millisecond))
		acked, err := a1.Ack(ctx, key, "agent-1", "fixed")
		Expect(err).NotTo(HaveOccurred())
		Expect(acked.Status.Phase).To(Equal(v1.AlertAcked))
		Expect(acked.Status.Ack.By).To(Equal("agent-1"))
	})

	It("takes only New Alerts, oldest first: an expired lease waits for the operator", func() {
		old := acceptedAlert(ns, "h1")
		_, err := a1.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "dead-agent", LockTTL: 2 * time.Second})
		Expect(err).NotTo(HaveOccurred())
		clk.SetTime(clk.Now().Add(time.Second)) // creation times have second resolution
		newer := acceptedAlert(ns, "h2")

		_, err = a2.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-2", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred(), "the newer New Alert is claimable")
		clk.SetTime(clk.Now().Add(time.Hour))
		_, err = a2.Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-2", LockTTL: time.Minute})
		Expect(err).To(MatchError(claim.ErrNothingToClaim), "an expired lease is not taken over by a claimer")

		// The operator's timer returns it to New (written here as the operator would).
		updateStatus(old, func(a *v1.Alert) {
			Expect(alertstate.Requeue(&a.Status, a.Generation, time.Now().Add(time.Hour))).To(Equal(v1.ReasonLeaseExpired))
		})
		got, err := a2.Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-2", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		Expect(got[0].Name).To(Equal(old.Name))
		Expect(got[0].Status.Claim.HolderIdentity).To(Equal("agent-2"))
		Expect(got[0].Status.Claim.LeaseTransitions).To(BeEquivalentTo(1))
		Expect(got[0].Status.Attempts).To(BeEquivalentTo(2))
		_, err = a1.Ack(ctx, client.ObjectKeyFromObject(old), "dead-agent", "back from the dead")
		Expect(err).To(MatchError(ContainSubstring("is held by agent-2 (owner agent-2)")))
		Expect(newer.Name).NotTo(Equal(old.Name))
	})

	It("claims the oldest Alerts first and only inside the window", func() {
		first := acceptedAlert(ns, "a")
		second := acceptedAlert(ns, "b")
		third := acceptedAlert(ns, "c")
		// Make the ages differ beyond creationTimestamp's resolution.
		for i, a := range []*v1.Alert{first, second, third} {
			updateStatus(a, func(a *v1.Alert) {
				at := metav1.NewTime(clk.Now().Add(-time.Duration(3-i) * time.Hour))
				a.Status.LastSeenAt = &at
			})
		}
		got, err := a1.Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent", Window: 150 * time.Minute})
		Expect(err).NotTo(HaveOccurred())
		names := []string{}
		for _, a := range got {
			names = append(names, a.Name)
		}
		Expect(names).To(ConsistOf(second.Name, third.Name), "the 3h-old Alert is outside a 150m window")
		Expect(got[0].Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(600), "the built-in lock TTL")
	})
})
