package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The attacks on a lease that the API server alone can refuse, made as
// kubectl makes them (raw merge patches of status) by an agent bound to
// the shipped alertbridge-agent role. What admission cannot judge (a
// renewTime in the future; a long lease where no policy sets the ceiling)
// the operator undoes: controllers/lease_bounds_test.go.
var _ = Describe("Lease bounds at admission", func() {
	const agentUser = "system:serviceaccount:ops:supervisor"
	var (
		ns       string
		operator client.Client
		agent    client.Client
		a        *v1.Alert
	)

	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "api-")
		var err error
		operator, err = client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		agent = userIn(ns, agentUser, "alertbridge-agent")
		// No operator runs in this suite: the spec writes its first decision.
		a = testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		orig := a.DeepCopy()
		alertstate.MarkCanonical(&a.Status, "fp", a.CreationTimestamp, a.Generation)
		Expect(operator.Status().Patch(ctx, a, client.MergeFrom(orig))).To(Succeed())
	})

	patch := func(c client.Client, status map[string]any, opts ...client.SubResourcePatchOption) error {
		body, err := json.Marshal(map[string]any{"status": status})
		Expect(err).NotTo(HaveOccurred())
		return c.Status().Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", body), opts...)
	}
	// claim is the status of a claim by agentUser, as an agent writes it
	// by hand; attempts counts the claims before it.
	claim := func(acquire, renew time.Time, seconds, transitions, attempts int) map[string]any {
		c := map[string]any{
			"holderIdentity": "supervisor", "holderUser": agentUser,
			"acquireTime": micro(acquire), "renewTime": micro(renew), "leaseDurationSeconds": seconds,
		}
		if transitions != 0 {
			c["leaseTransitions"] = transitions
		}
		return map[string]any{"phase": "Processing", "attempts": attempts + 1, "claim": c}
	}
	renew := func(at time.Time, seconds int) map[string]any {
		return map[string]any{"claim": map[string]any{"renewTime": micro(at), "leaseDurationSeconds": seconds}}
	}
	// requeue returns the Alert to New as the operator's timer does.
	requeue := func() {
		GinkgoHelper()
		var cur v1.Alert
		Expect(operator.Get(ctx, keyOf(a), &cur)).To(Succeed())
		orig := cur.DeepCopy()
		Expect(alertstate.Requeue(&cur.Status, cur.Generation, time.Now().Add(48*time.Hour))).To(Equal(v1.ReasonLeaseExpired))
		Expect(operator.Status().Patch(ctx, &cur, client.MergeFrom(orig))).To(Succeed())
	}

	It("refuses a claim or renewal longer than the namespace's maxLeaseDuration, the operator's too, naming the field and the ceiling", func() {
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).MaxLeaseDuration(30*time.Minute).Obj())).To(Succeed())
		ceiling := "spec.maxLeaseDuration 30m0s (1800 seconds)"
		tooLong := func(seconds int) OmegaMatcher {
			return MatchError(And(
				ContainSubstring(fmt.Sprintf("status.claim.leaseDurationSeconds: %d is longer than namespace %s allows", seconds, ns)),
				ContainSubstring(ceiling)))
		}
		t := time.Now()
		// A new policy takes a moment to reach the API server's cache; a dry
		// run waits for it without taking the lease meanwhile.
		Eventually(func() error { return patch(agent, claim(t, t, 3600, 0, 0), client.DryRunAll) }, "30s", "200ms").Should(tooLong(3600))
		Expect(patch(agent, claim(t, t, 3600, 0, 0))).To(tooLong(3600))

		By("the operator, claiming for an HTTP caller, is held to the same ceiling")
		Expect(patch(operator, claim(t, t, 3600, 0, 0))).To(tooLong(3600))

		By("a claim within it is taken; a renewal past it is refused")
		Expect(patch(agent, claim(t, t, 1800, 0, 0))).To(Succeed())
		Expect(patch(agent, renew(t.Add(time.Minute), 1801))).To(tooLong(1801))
		Expect(patch(agent, renew(t.Add(time.Minute), 1200))).To(Succeed())

		By("a lowered ceiling refuses the next renewal, and not the operator's count of the Alert's occurrences")
		var p v1.AlertRoutingPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1.RoutingPolicyName}, &p)).To(Succeed())
		p.Spec.MaxLeaseDuration = &metav1.Duration{Duration: 15 * time.Minute}
		Expect(k8s.Update(ctx, &p)).To(Succeed())
		ceiling = "spec.maxLeaseDuration 15m0s (900 seconds)"
		Eventually(func() error { return patch(agent, renew(t.Add(2*time.Minute), 1200), client.DryRunAll) }, "30s", "200ms").
			Should(tooLong(1200))
		Expect(patch(agent, renew(t.Add(2*time.Minute), 1200))).To(tooLong(1200))
		Expect(patch(operator, map[string]any{"occurrences": 2})).To(Succeed())
		var stored v1.Alert
		Expect(k8s.Get(ctx, keyOf(a), &stored)).To(Succeed())
		Expect(stored.Status.Claim.LeaseDurationSeconds).To(BeEquivalentTo(1200))
		Expect(stored.Status.Occurrences).To(BeEquivalentTo(2))
	})

	It("admits any lease the CRD allows where no policy sets a ceiling: the operator shortens it", func() {
		t := time.Now()
		Eventually(func() error { return patch(agent, claim(t, t, 86400, 0, 0)) }, "30s", "100ms").Should(Succeed())
	})

	It("refuses a claim with a forged acquireTime or leaseTransitions", func() {
		t := time.Now()
		Eventually(func() error { return patch(agent, claim(t.Add(-time.Hour), t, 600, 0, 0)) }, "30s", "100ms").
			Should(MatchError(ContainSubstring("status.claim.acquireTime must equal status.claim.renewTime in a claim")))
		Expect(patch(agent, claim(t, t, 600, 7, 0))).
			To(MatchError(ContainSubstring("status.claim.leaseTransitions must be 0 in this claim of Alert " + a.Name + ", not 7")))
		Expect(patch(agent, claim(t, t, 600, 0, 0))).To(Succeed())

		By("the next claim, after the operator returned the lease, counts one transition")
		requeue()
		t = time.Now()
		Expect(patch(agent, claim(t, t, 600, 0, 1))).
			To(MatchError(ContainSubstring("status.claim.leaseTransitions must be 1 in this claim of Alert " + a.Name + ", not 0")))
		Expect(patch(agent, claim(t, t, 600, 5, 1))).
			To(MatchError(ContainSubstring("status.claim.leaseTransitions must be 1")))
		Expect(patch(agent, claim(t, t, 600, 1, 1))).To(Succeed())
		var stored v1.Alert
		Expect(k8s.Get(ctx, keyOf(a), &stored)).To(Succeed())
		Expect(stored.Status.Claim.LeaseTransitions).To(BeEquivalentTo(1))
		Expect(stored.Status.Attempts).To(BeEquivalentTo(2))
	})

	It("refuses a renewal that moves renewTime back", func() {
		t := time.Now()
		Eventually(func() error { return patch(agent, claim(t, t, 600, 0, 0)) }, "30s", "100ms").Should(Succeed())
		Expect(patch(agent, renew(t.Add(-time.Second), 600))).
			To(MatchError(ContainSubstring("status.claim.renewTime: a renewal moves the lease forward, never back (from " + micro(t))))
		Expect(patch(agent, renew(t, 300))).To(Succeed(), "the same renewTime with a shorter lease")
		Expect(patch(agent, renew(t.Add(time.Minute), 600))).To(Succeed())
	})
})

var _ = Describe("AlertRoutingPolicy maxLeaseDuration", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	policy := func(lockTTL, maxLease time.Duration) *v1.AlertRoutingPolicy {
		p := testbuild.MakeAlertRoutingPolicy(ns)
		if lockTTL > 0 {
			p.ProcessingLockTTL(lockTTL)
		}
		if maxLease > 0 {
			p.MaxLeaseDuration(maxLease)
		}
		return p.Obj()
	}

	DescribeTable("accepts a ceiling from processingLockTTL to 24h",
		func(lockTTL, maxLease time.Duration) {
			Expect(k8s.Create(ctx, policy(lockTTL, maxLease))).To(Succeed())
		},
		Entry("24h", time.Duration(0), 24*time.Hour),
		Entry("equal to processingLockTTL", 3*time.Second, 3*time.Second),
		Entry("unset, with processingLockTTL below the 1h default", 50*time.Minute, time.Duration(0)),
	)

	DescribeTable("refuses a ceiling out of bounds, naming spec.maxLeaseDuration",
		func(lockTTL, maxLease time.Duration, msg string) {
			Expect(k8s.Create(ctx, policy(lockTTL, maxLease))).To(MatchError(ContainSubstring(msg)))
		},
		Entry("above 24h", time.Duration(0), 25*time.Hour, "spec.maxLeaseDuration must be between 1s and 24h"),
		Entry("below processingLockTTL", 20*time.Minute, 15*time.Minute,
			"spec.maxLeaseDuration (15m0s) must be at least spec.processingLockTTL (20m0s)"),
		Entry("below the default processingLockTTL", time.Duration(0), 5*time.Minute,
			"spec.maxLeaseDuration (5m0s) must be at least spec.processingLockTTL (10m, the default)"),
		Entry("unset, below processingLockTTL", 2*time.Hour, time.Duration(0),
			"spec.maxLeaseDuration (1h, the default) must be at least spec.processingLockTTL (2h0m0s)"),
	)
})

// micro is t as Kubernetes clients write a MicroTime.
func micro(t time.Time) string { return metav1.NewMicroTime(t).UTC().Format(metav1.RFC3339Micro) }
