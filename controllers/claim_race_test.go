package controllers_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// Bounds of the race specs; generous for a shared 2-core machine. A drain
// of 1,000 Alerts takes about 40 s alone and passed 3 minutes once while
// the other test streams ran beside it; it stays below liveLease, so no
// lease can end while its claimer is still working.
const (
	drainTimeout = 8 * time.Minute
	// liveLease outlasts any batch on a loaded two-core machine: a live
	// claimer's lease must never expire, or a takeover would be legitimate.
	liveLease      = 10 * time.Minute
	acceptTimeout  = 90 * time.Second
	claimerBackoff = 50 * time.Millisecond
)

// createAlerts creates n Alerts with distinct fingerprints, in parallel, and
// waits until the controller has accepted every one as New.
func createAlerts(ns string, n int) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			defer GinkgoRecover()
			for i := range jobs {
				Expect(k8s.Create(ctx, testbuild.MakeAlert("", ns).Host(fmt.Sprintf("h%04d", i)).Obj())).To(Succeed())
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	Eventually(func(g Gomega) {
		items := testbuild.Alerts(g, k8s, ns)
		g.Expect(items).To(HaveLen(n))
		for i := range items {
			g.Expect(items[i].Status.Phase).To(Equal(v1.AlertNew), "Alert %s", items[i].Name)
		}
	}, acceptTimeout, 250*time.Millisecond).Should(Succeed())
}

// claimLog records every claim a claimer was told it won.
type claimLog struct {
	mu     sync.Mutex
	claims map[types.UID][]string
}

func (l *claimLog) add(a *v1.Alert, owner string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.claims[a.UID] = append(l.claims[a.UID], owner)
}

// drain claims and acks in batches until every Alert of ns is Acked.
func drain(c *claim.Claimer, ns, owner string, limit int, log *claimLog) error {
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) {
		got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: limit, Owner: owner, LockTTL: liveLease})
		if errors.Is(err, claim.ErrNothingToClaim) {
			var list v1.AlertList
			if err := c.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			if allAcked(list.Items) {
				return nil
			}
			// Alerts held by dead claimers come back when their lease ends.
			time.Sleep(claimerBackoff) // the supervisor loop's poll interval, not test synchronisation
			continue
		}
		if err != nil {
			return err
		}
		for i := range got {
			log.add(&got[i], owner)
		}
		for i := range got {
			if _, err := c.Ack(ctx, client.ObjectKeyFromObject(&got[i]), owner, "handled"); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%s: Alerts left unacked after %s", owner, drainTimeout)
}

// drainAll races n claimers, each with its own client, until every Alert of
// ns is Acked, and fails if any of them fails.
func drainAll(ns, prefix string, n, limit int, log *claimLog) {
	GinkgoHelper()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		// Each racing agent is its own user with its own client, as separate
		// processes would be.
		owner := fmt.Sprintf("%s-%d", prefix, i)
		c := agent(ns, owner)
		wg.Go(func() { errs <- drain(c, ns, owner, limit, log) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		Expect(err).NotTo(HaveOccurred())
	}
}

func allAcked(items []v1.Alert) bool {
	for i := range items {
		if items[i].Status.Phase != v1.AlertAcked {
			return false
		}
	}
	return true
}

var _ = Describe("Racing claimers", Ordered, func() {
	var stop func()
	BeforeAll(func() {
		stop = startOperator(controllers.Options{DuplicateGCDelay: gcDelay, AlertConcurrency: 4, Only: []controllers.Controller{controllers.AlertController}})
		DeferCleanup(func() { stop() })
	})

	It("drain 1,000 Alerts with 8 claimers, each Alert claimed exactly once", func() {
		const alerts, claimers, limit = 1000, 8, 25
		ns := testbuild.Namespace(Default, k8s, "ctl-")
		createAlerts(ns, alerts)

		log := &claimLog{claims: map[types.UID][]string{}}
		drainAll(ns, "agent", claimers, limit, log)

		items := testbuild.Alerts(Default, k8s, ns)
		Expect(items).To(HaveLen(alerts))
		perOwner := map[string]int{}
		for i := range items {
			a := &items[i]
			owners := log.claims[a.UID]
			Expect(owners).To(HaveLen(1), "Alert %s claimed by %v", a.Name, owners)
			Expect(a.Status.Phase).To(Equal(v1.AlertAcked))
			Expect(a.Status.Ack.By).To(Equal(owners[0]))
			Expect(a.Status.Attempts).To(BeEquivalentTo(1))
			Expect(a.Status.Claim.HolderIdentity).To(Equal(owners[0]))
			perOwner[owners[0]]++
		}
		Expect(log.claims).To(HaveLen(alerts))
		GinkgoWriter.Printf("claims per claimer: %v\n", perOwner)
	})

	It("take over the Alerts of claimers that die holding leases, losing none", func() {
		const alerts, dead, live, limit = 200, 3, 5, 20
		const deadLease = 2 * time.Second
		ns := testbuild.Namespace(Default, k8s, "ctl-")
		createAlerts(ns, alerts)

		// Baseline, same run and machine: how long the operator takes to
		// decide a new Alert. Requeueing an expired lease is the same kind
		// of reaction, to a timer instead of a watch event.
		baseline := acceptLatency(ns, 5)

		requeued, stopWatch := watchRequeues(ns, "dead-")
		defer stopWatch()
		log := &claimLog{claims: map[types.UID][]string{}}
		var expiryMu sync.Mutex
		expiry := map[types.UID]time.Time{}
		// The dying claimers take a batch each and vanish without acking.
		var wg sync.WaitGroup
		for i := range dead {
			owner := fmt.Sprintf("dead-%d", i)
			c := agent(ns, owner)
			wg.Go(func() {
				defer GinkgoRecover()
				got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: limit, Owner: owner, LockTTL: deadLease})
				Expect(err).NotTo(HaveOccurred())
				for j := range got {
					log.add(&got[j], owner)
					expiryMu.Lock()
					expiry[got[j].UID] = alertstate.LeaseExpiry(&got[j].Status)
					expiryMu.Unlock()
				}
			})
		}
		wg.Wait()
		Expect(log.claims).To(HaveLen(dead * limit))

		drainAll(ns, "live", live, limit, log)

		items := testbuild.Alerts(Default, k8s, ns)
		Expect(items).To(HaveLen(alerts + 5))
		takenOver := 0
		var slowest, slowestRequeue time.Duration
		for i := range items {
			a := &items[i]
			owners := log.claims[a.UID]
			Expect(a.Status.Phase).To(Equal(v1.AlertAcked), "Alert %s", a.Name)
			// Exactly one live claim per Alert; a dead claimer's claim, if any, came first.
			Expect(owners).NotTo(BeEmpty())
			last := owners[len(owners)-1]
			Expect(last).To(HavePrefix("live-"), "Alert %s claims %v", a.Name, owners)
			Expect(a.Status.Ack.By).To(Equal(last))
			Expect(a.Status.Attempts).To(BeEquivalentTo(len(owners)), "Alert %s claims %v", a.Name, owners)
			switch len(owners) {
			case 1:
			case 2:
				Expect(owners[0]).To(HavePrefix("dead-"), "Alert %s claims %v", a.Name, owners)
				Expect(a.Status.Claim.LeaseTransitions).To(BeEquivalentTo(1))
				takenOver++
				// From the dead lease's end to a live agent holding the Alert:
				// the operator's requeue plus the claimers' poll.
				slowest = max(slowest, a.Status.Claim.AcquireTime.Sub(expiry[a.UID]))
				at, ok := requeued.at(a.UID)
				Expect(ok).To(BeTrue(), "Alert %s was never seen New again", a.Name)
				slowestRequeue = max(slowestRequeue, at.Sub(expiry[a.UID]))
			default:
				Fail(fmt.Sprintf("Alert %s claimed %d times: %v", a.Name, len(owners), owners))
			}
		}
		Expect(takenOver).To(Equal(dead * limit))
		GinkgoWriter.Printf("lease expiry to New again: slowest %s (goal: lease + 5s); to claimed again (the live claimers busy draining): slowest %s; operator decides a new Alert in %s\n",
			slowestRequeue, slowest, baseline)
		// The operator's part is bounded; when a busy claimer next takes the
		// Alert is the claimers' business, so it is reported only.
		Expect(slowestRequeue).To(BeNumerically("<=", 5*time.Second+3*baseline),
			"an expired lease must be claimable again within 5s (plus three times the operator's reaction time in this run)")
	})
})

var _ = Describe("Claim lifecycle with the operator", func() {
	var ns string
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		stop := startOperator(controllers.Options{DuplicateGCDelay: gcDelay, AlertConcurrency: 2, Only: []controllers.Controller{controllers.AlertController}})
		DeferCleanup(func() { stop() })
	})

	It("returns a failed Alert to New at retryAfter, claimable again with attempts counted", func() {
		createAlerts(ns, 1)
		c := agent(ns, "agent-a")
		got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-a", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))
		key := client.ObjectKeyFromObject(&got[0])

		failed, err := c.Fail(ctx, key, "agent-a", "gateway timeout", time.Second)
		Expect(err).NotTo(HaveOccurred())
		Expect(failed.Status.Phase).To(Equal(v1.AlertFailed))
		Expect(failed.Status.LastError).To(Equal("gateway timeout"))

		a := &v1.Alert{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, key, a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
		}, settle, poll).Should(Succeed())
		Expect(a.Status.LastError).To(Equal("gateway timeout"))

		again, err := agent(ns, "agent-b").Claim(ctx, claim.Request{Namespace: ns, Limit: 5, Owner: "agent-b", LockTTL: time.Minute})
		Expect(err).NotTo(HaveOccurred())
		Expect(again).To(HaveLen(1))
		Expect(again[0].Status.Attempts).To(BeEquivalentTo(2))
		Expect(again[0].Status.Claim.HolderIdentity).To(Equal("agent-b"))
		Expect(again[0].Status.Claim.LeaseTransitions).To(BeEquivalentTo(1))
	})

	It("requeues an expired lease to New on the controller's timer; on-call, not the agent, acks it by hand", func() {
		createAlerts(ns, 1)
		c := agent(ns, "agent-a")
		got, err := c.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "agent-a", LockTTL: time.Second})
		Expect(err).NotTo(HaveOccurred())
		key := client.ObjectKeyFromObject(&got[0])
		a := &v1.Alert{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, key, a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
		}, settle, poll).Should(Succeed())
		_, err = c.Ack(ctx, key, "agent-a", "too late")
		Expect(err).To(MatchError(ContainSubstring("needs the acknowledge verb on alerts/status")),
			"an agent acks only what it holds")
		_, err = oncall(ns, "alice").Ack(ctx, key, "alice", "false positive")
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Get(ctx, key, a)).To(Succeed())
		Expect(a.Status.Ack.By).To(Equal("alice"))
		Expect(a.Status.Ack.At.Time).To(BeTemporally("~", time.Now(), time.Minute))
	})
})

// acceptLatency creates n Alerts one at a time and returns the longest any
// took from its create to the operator's decision (New).
func acceptLatency(ns string, n int) time.Duration {
	GinkgoHelper()
	var slowest time.Duration
	for i := range n {
		a := testbuild.MakeAlert("", ns).Host(fmt.Sprintf("baseline-%d", i)).Obj()
		start := time.Now()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectPhase(a, v1.AlertNew)
		slowest = max(slowest, time.Since(start))
	}
	return slowest
}

// requeues records, per Alert, when a watch first saw it New again after a
// claim by a holder of a given prefix: the operator's part of a takeover.
type requeues struct {
	mu    sync.Mutex
	first map[types.UID]time.Time
}

func (r *requeues) at(uid types.UID) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.first[uid]
	return t, ok
}

// watchRequeues watches the Alerts of ns until stop is called. A watch
// delivers every write, so the short-lived New between two claims is seen.
func watchRequeues(ns, holderPrefix string) (*requeues, func()) {
	GinkgoHelper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &v1.AlertList{}, client.InNamespace(ns))
	Expect(err).NotTo(HaveOccurred())
	r := &requeues{first: map[types.UID]time.Time{}}
	held := map[types.UID]bool{}
	go func() {
		for ev := range w.ResultChan() {
			a, ok := ev.Object.(*v1.Alert)
			if !ok {
				continue
			}
			switch {
			case a.Status.Phase == v1.AlertProcessing && a.Status.Claim != nil && strings.HasPrefix(a.Status.Claim.HolderIdentity, holderPrefix):
				held[a.UID] = true
			case a.Status.Phase == v1.AlertNew && held[a.UID]:
				r.mu.Lock()
				if _, seen := r.first[a.UID]; !seen {
					r.first[a.UID] = time.Now()
				}
				r.mu.Unlock()
			}
		}
	}()
	return r, w.Stop
}
