package controllers_test

import (
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// updateStatus re-reads a and applies mutate until the write is not a
// conflict, as a careful client would, as the operator (what these specs
// write is the operator's).
func updateStatus(a *v1.Alert, mutate func(*v1.Alert)) {
	testbuild.WriteStatus(Default, opK8s, a, mutate)
}

var _ = Describe("Alert controller", func() {
	var (
		ns   string
		stop func()
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		stop = startOperator(controllers.Options{DuplicateGCDelay: gcDelay, AlertConcurrency: 4, Only: []controllers.Controller{controllers.AlertController}})
		DeferCleanup(func() { stop() })
	})

	It("accepts a new Alert as canonical, findable by its fingerprint without a label", func() {
		a := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
			g.Expect(a.Status.Occurrences).To(BeEquivalentTo(1))
			g.Expect(a.Status.Fingerprint).To(Equal(fingerprint.Key(a)))
			g.Expect(a.Status.FirstSeenAt).NotTo(BeNil())
			g.Expect(a.Status.ObservedGeneration).To(Equal(a.Generation))
		}, settle, poll).Should(Succeed())
		// Deciding is one status write and no label patch: the API server
		// finds the Alert by the fingerprint in its status.
		Expect(a.Labels).NotTo(HaveKey(v1.FingerprintLabel))
		var found v1.AlertList
		Expect(k8s.List(ctx, &found, client.InNamespace(ns), client.MatchingFields{v1.FingerprintField: fingerprint.Key(a)})).To(Succeed())
		Expect(found.Items).To(ConsistOf(HaveField("Name", a.Name)))
	})

	It("folds 200 concurrent creates of 10 fingerprints into 10 canonicals with exact occurrences", func() {
		const fingerprints, perFingerprint, workers = 10, 20, 10
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := range jobs {
					Expect(k8s.Create(ctx, testbuild.MakeAlert("", ns).Host(fmt.Sprintf("host-%d", i%fingerprints)).Obj())).To(Succeed())
				}
			})
		}
		for i := range fingerprints * perFingerprint {
			jobs <- i
		}
		close(jobs)
		wg.Wait()

		Eventually(func(g Gomega) {
			items := testbuild.Alerts(g, k8s, ns)
			g.Expect(items).To(HaveLen(fingerprints), "duplicates must be deleted after their GC delay")
			byFP := map[string]int64{}
			for _, a := range items {
				g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
				g.Expect(a.Status.PendingFolds).To(BeEmpty())
				byFP[a.Status.Fingerprint] += a.Status.Occurrences
			}
			g.Expect(byFP).To(HaveLen(fingerprints))
			for fp, n := range byFP {
				g.Expect(n).To(BeEquivalentTo(perFingerprint), "fingerprint %s", fp)
			}
		}, 2*settle, poll).Should(Succeed())
	})

	It("marks a folded duplicate Deduplicated before deleting it", func() {
		first := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, first)).To(Succeed())
		expectPhase(first, v1.AlertNew)
		dup := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, dup)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dup), dup)).To(Succeed())
			g.Expect(dup.Status.Phase).To(Equal(v1.AlertDeduplicated))
			g.Expect(dup.Status.DuplicateOf).To(Equal(first.Name))
		}, settle, poll).Should(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx, client.ObjectKeyFromObject(dup), &v1.Alert{})
		}, settle, poll).Should(MatchError(ContainSubstring("not found")))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		Expect(first.Status.Occurrences).To(BeEquivalentTo(2))
	})

	It("keeps a GitOps-tracked duplicate", func() {
		first := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, first)).To(Succeed())
		expectPhase(first, v1.AlertNew)
		dup := testbuild.MakeAlert("", ns).Host("n1").MetaLabel("kustomize.toolkit.fluxcd.io/name", "alerts").Obj()
		Expect(k8s.Create(ctx, dup)).To(Succeed())
		expectPhase(dup, v1.AlertDeduplicated)
		Consistently(func() error {
			return k8s.Get(ctx, client.ObjectKeyFromObject(dup), &v1.Alert{})
		}, gcDelay+quietFor, poll).Should(Succeed())
	})

	It("does not fold into an Acked canonical", func() {
		first := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, first)).To(Succeed())
		expectPhase(first, v1.AlertNew)
		updateStatus(first, func(a *v1.Alert) {
			a.Status.Phase = v1.AlertAcked
			a.Status.Ack = &v1.AlertAck{By: "alice", Note: "false positive", At: metav1.Now()}
		})
		next := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, next)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(next), next)).To(Succeed())
			g.Expect(next.Status.Phase).To(Equal(v1.AlertNew))
			g.Expect(next.Status.Occurrences).To(BeEquivalentTo(1))
		}, settle, poll).Should(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		Expect(first.Status.Occurrences).To(BeEquivalentTo(1))
	})

	// A retry an intake created an Alert for, because its view did not show
	// the first count (another replica's cache lagging), must not count
	// again when the Alert that counted it is no longer live: the chaos run
	// found one Alertmanager firing counted twice this way.
	DescribeTable("does not count a retry again once the Alert that counted it was acked",
		func(heldBy func(first *v1.Alert, key string)) {
			operator, err := client.New(env.Operator, client.Options{Scheme: scheme})
			Expect(err).NotTo(HaveOccurred())
			key := intake.HashKey("system:serviceaccount:monitoring:alertmanager", "0c5d799cc254ff8e@2026-11-30T07:49:49Z")
			first := testbuild.MakeAlert("", ns).Host("retry").Obj()
			heldBy(first, key)
			Expect(operator.Create(ctx, first)).To(Succeed())
			expectPhase(first, v1.AlertNew)
			if first.Annotations[v1.IngestKeyAnnotation] == "" {
				// The intake (the operator) counted it into the live canonical.
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
				counted := first.DeepCopy()
				alertstate.AddKeys(&counted.Status, time.Now(), key)
				Expect(operator.Status().Patch(ctx, counted, client.MergeFromWithOptions(first, client.MergeFromWithOptimisticLock{}))).To(Succeed())
			}
			_, err = oncall(ns, "alice").Ack(ctx, client.ObjectKeyFromObject(first), "alice", "handled")
			Expect(err).NotTo(HaveOccurred())

			retry := testbuild.MakeAlert("", ns).Host("retry").Annotation(v1.IngestKeyAnnotation, key).Obj()
			Expect(operator.Create(ctx, retry)).To(Succeed())
			expectPhase(retry, v1.AlertDeduplicated)
			Expect(retry.Status.DuplicateOf).To(Equal(first.Name))
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
			Expect(first.Status.Occurrences).To(BeEquivalentTo(1))
		},
		Entry("created by the first attempt", func(first *v1.Alert, key string) {
			first.Annotations = map[string]string{v1.IngestKeyAnnotation: key}
		}),
		Entry("counted into a live canonical by the first attempt", func(*v1.Alert, string) {}),
	)

	It("does not fold a repeat that comes after the dedupe TTL", func() {
		first := testbuild.MakeAlert("", ns).Host("n1").DedupeTTL(time.Second).Obj()
		Expect(k8s.Create(ctx, first)).To(Succeed())
		expectPhase(first, v1.AlertNew)
		// creationTimestamp has second resolution: wait until a later create
		// is certainly past lastSeenAt + 1s.
		Eventually(time.Now, 5*time.Second, poll).
			Should(BeTemporally(">", first.Status.LastSeenAt.Add(2*time.Second)))
		next := testbuild.MakeAlert("", ns).Host("n1").Obj()
		Expect(k8s.Create(ctx, next)).To(Succeed())
		expectPhase(next, v1.AlertNew)
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		Expect(first.Status.Occurrences).To(BeEquivalentTo(1))
	})

	Context("timers", func() {
		var a *v1.Alert
		BeforeEach(func() {
			a = testbuild.MakeAlert("", ns).Host("timer").Obj()
			Expect(k8s.Create(ctx, a)).To(Succeed())
			expectPhase(a, v1.AlertNew)
		})

		claim := func(ttl time.Duration) time.Time {
			got, err := agent(ns, "agent-1").Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-1", LockTTL: ttl})
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(HaveLen(1))
			return alertstate.LeaseExpiry(&got[0].Status)
		}

		It("returns an expired lease to New at its expiry, with an Event", func() {
			baseline := acceptLatency(testbuild.Namespace(Default, k8s, "ctl-"), 3)
			expiry := claim(2 * time.Second)
			expectPhase(a, v1.AlertNew)
			Expect(time.Now()).To(BeTemporally(">=", expiry), "requeued before the lease ended")
			requeued := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionClaimed).LastTransitionTime
			// The condition's time has second resolution: one second of slack.
			Expect(requeued.Sub(expiry)).To(BeNumerically("<=", time.Second+3*baseline),
				"requeued late (the operator decides a new Alert in %s in this run)", baseline)
			Expect(a.Status.Claim.HolderIdentity).To(Equal("agent-1"), "the last holder stays on record")
			Eventually(func(g Gomega) {
				g.Expect(eventReasons(g, ns, a.Name)).To(ContainElement(v1.ReasonLeaseExpired))
			}, settle, poll).Should(Succeed())
		})

		It("leaves a live lease alone", func() {
			claim(time.Hour)
			Consistently(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				g.Expect(a.Status.Phase).To(Equal(v1.AlertProcessing))
			}, quietFor, poll).Should(Succeed())
		})

		It("returns a Failed Alert to New at retryAfter", func() {
			claim(time.Hour)
			// retryAfter is stored with second precision: use a whole second.
			retryAt := time.Now().Add(3 * time.Second).Truncate(time.Second)
			_, err := agent(ns, "agent-1").Fail(ctx, client.ObjectKeyFromObject(a), "agent-1", "gateway timeout", time.Until(retryAt))
			Expect(err).NotTo(HaveOccurred())
			Consistently(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				g.Expect(a.Status.Phase).To(Equal(v1.AlertFailed))
			}, time.Until(retryAt)-500*time.Millisecond, poll).Should(Succeed())
			expectPhase(a, v1.AlertNew)
			requeued := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionClaimed)
			Expect(requeued.Reason).To(Equal(v1.ReasonRetryDue))
			Expect(requeued.LastTransitionTime.Sub(retryAt)).To(BeNumerically("<=", time.Second+3*acceptLatency(testbuild.Namespace(Default, k8s, "ctl-"), 3)), "requeued late")
			Expect(a.Status.Attempts).To(BeEquivalentTo(1))
			Expect(alertstate.Claimable(&a.Status)).To(BeTrue())
		})
	})
})

// expectPhase waits until the operator has moved a to phase, refreshing a.
func expectPhase(a *v1.Alert, phase v1.AlertPhase) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(a.Status.Phase).To(Equal(phase))
	}, settle, poll).Should(Succeed())
}

func eventReasons(g Gomega, ns, name string) []string {
	var list corev1.EventList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}
