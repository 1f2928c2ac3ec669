package intake_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func spec(host string) v1.AlertSpec {
	return v1.AlertSpec{Service: "gateway", Env: "prod", Kind: "latency", Severity: v1.SeverityP2,
		Title: "p95 above 300ms", Labels: map[string]string{"host": host}}
}

// canonicals returns the live Alerts of the namespace by fingerprint label
// after the operator settled: every Deduplicated one must be gone.
func occurrencesByHost(g Gomega, ns string) map[string][]int64 {
	var list v1.AlertList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	out := map[string][]int64{}
	for _, a := range list.Items {
		g.Expect(a.Status.Phase).NotTo(BeEmpty(), "undecided Alert %s", a.Name)
		g.Expect(a.Status.PendingFolds).To(BeEmpty())
		if a.Status.Phase == v1.AlertDeduplicated {
			continue
		}
		out[a.Spec.Labels["host"]] = append(out[a.Spec.Labels["host"]], a.Status.Occurrences)
	}
	return out
}

var _ = Describe("Intake", func() {
	var (
		ns     string
		in     *intake.Intake
		stop   func()
		writes *writeCounter
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "intake-")
		writes = &writeCounter{}
		in, stop = startIntake(writes)
		DeferCleanup(func() { stop() })
	})

	It("counts a storm of 20,000 occurrences of 20 fingerprints exactly", func() {
		const fingerprints, total, clients = 20, 20000, 200
		jobs := make(chan int, clients)
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := map[string]int{}
		for range clients {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := range jobs {
					host := fmt.Sprintf("h%02d", i%fingerprints)
					res, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec(host)})
					Expect(err).NotTo(HaveOccurred())
					Expect(res.Accepted).To(BeTrue())
					mu.Lock()
					acked[host]++
					mu.Unlock()
				}
			})
		}
		for i := range total {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		GinkgoWriter.Printf("storm: %d occurrences, %d API writes (%.4f writes per occurrence)\n",
			total, writes.n.Load(), float64(writes.n.Load())/total)

		Eventually(func(g Gomega) {
			got := occurrencesByHost(g, ns)
			g.Expect(got).To(HaveLen(fingerprints))
			for host, occ := range got {
				g.Expect(occ).To(Equal([]int64{int64(acked[host])}), "host %s", host)
				g.Expect(occ[0]).To(BeEquivalentTo(total / fingerprints))
			}
		}, settle, poll).Should(Succeed())
		Expect(writes.n.Load()).To(BeNumerically("<", total/4), "a storm must cost a fraction of a write per occurrence")
	})

	It("counts a retried request once, also after a restart", func() {
		first, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("a"), Key: "req-1"})
		Expect(err).NotTo(HaveOccurred())
		Expect(first.Deduped).To(BeFalse())
		again, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("a"), Key: "req-1"})
		Expect(err).NotTo(HaveOccurred())
		Expect(again.Replayed).To(BeTrue())
		Expect(again.AlertRef).To(Equal(first.AlertRef))

		// Concurrent retries of one key and distinct keys at once.
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				defer GinkgoRecover()
				_, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("a"), Key: fmt.Sprintf("req-%d", 2+i%10)})
				Expect(err).NotTo(HaveOccurred())
			})
		}
		wg.Wait()

		// A new operator process has no memory of the keys but the Alert has.
		stop()
		in, stop = startIntake(writes)
		res, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("a"), Key: "req-5"})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.Replayed).To(BeTrue())
		Eventually(func(g Gomega) {
			g.Expect(occurrencesByHost(g, ns)).To(Equal(map[string][]int64{"a": {11}}))
		}, settle, poll).Should(Succeed())
	})

	It("counts every keyed retry once at a storm rate, and refuses rather than forget a key", func() {
		// More keyed requests to one fingerprint than the key log holds for
		// its window, as fast as 100 senders can send them; then every
		// accepted key is retried.
		total := alertstate.MaxKeys + 800
		var accepted, busy atomic.Int64
		took := make([]bool, total)
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := range jobs {
					_, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("keyed"), Caller: "sender", Key: fmt.Sprintf("k-%05d", i)})
					if errors.Is(err, intake.ErrBusy) {
						busy.Add(1)
						continue
					}
					Expect(err).NotTo(HaveOccurred())
					accepted.Add(1)
					took[i] = true
				}
			})
		}
		for i := range total {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		// The log holds MaxKeys keys; the key of the request that created the
		// Alert stays on the Alert itself.
		Expect(accepted.Load()).To(BeNumerically("~", alertstate.MaxKeys, 1), "keys the log holds for its window")
		Expect(busy.Load()).To(Equal(int64(total)-accepted.Load()), "the others are answered busy, not counted")

		var replays atomic.Int64
		retries := make(chan int)
		for range 100 {
			wg.Go(func() {
				defer GinkgoRecover()
				for i := range retries {
					res, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("keyed"), Caller: "sender", Key: fmt.Sprintf("k-%05d", i)})
					Expect(err).NotTo(HaveOccurred())
					Expect(res.Replayed).To(BeTrue(), "key k-%05d counted twice", i)
					replays.Add(1)
				}
			})
		}
		for i, ok := range took {
			if ok {
				retries <- i
			}
		}
		close(retries)
		wg.Wait()
		Expect(replays.Load()).To(Equal(accepted.Load()))
		Eventually(func(g Gomega) {
			g.Expect(occurrencesByHost(g, ns)).To(Equal(map[string][]int64{"keyed": {accepted.Load()}}))
		}, settle, poll).Should(Succeed())
	})

	It("starts a new Alert after an Acked canonical and after the dedupe TTL", func() {
		s := spec("b")
		s.DedupeTTL = &metav1.Duration{Duration: time.Second}
		first, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: s})
		Expect(err).NotTo(HaveOccurred())
		a := testbuild.MakeAlert(first.AlertRef, ns).Obj()
		op, err := env.OperatorClient()
		Expect(err).NotTo(HaveOccurred())
		testbuild.WriteStatus(Default, op, a, func(a *v1.Alert) {
			a.Status.Phase = v1.AlertAcked
			a.Status.Ack = &v1.AlertAck{By: "alice", At: metav1.Now()}
		})
		second, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: s})
		Expect(err).NotTo(HaveOccurred())
		Expect(second.AlertRef).NotTo(Equal(first.AlertRef))
		Expect(second.Deduped).To(BeFalse())

		// Past the TTL by more than the second of resolution creation
		// timestamps have (the controller decides by them).
		Eventually(time.Now, 5*time.Second, poll).Should(BeTemporally(">", time.Now().Add(2500*time.Millisecond)))
		third, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: s})
		Expect(err).NotTo(HaveOccurred())
		Expect(third.AlertRef).NotTo(Equal(second.AlertRef), "a canonical past its dedupe TTL absorbs nothing")
	})

	It("agrees with the controller when Alerts are also created directly", func() {
		const each = 100
		var wg sync.WaitGroup
		for i := range each {
			wg.Go(func() {
				defer GinkgoRecover()
				_, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("mixed"), Key: fmt.Sprintf("k%d", i)})
				Expect(err).NotTo(HaveOccurred())
			})
			wg.Go(func() {
				defer GinkgoRecover()
				Expect(k8s.Create(ctx, &v1.Alert{
					ObjectMeta: metav1.ObjectMeta{GenerateName: "direct-", Namespace: ns},
					Spec:       spec("mixed"),
				})).To(Succeed())
			})
		}
		wg.Wait()
		Eventually(func(g Gomega) {
			var sum int64
			for _, occ := range occurrencesByHost(g, ns)["mixed"] {
				sum += occ
			}
			g.Expect(sum).To(BeEquivalentTo(2 * each))
		}, settle, poll).Should(Succeed())
	})

	firing := func(caller, host, key string) intake.Request {
		return intake.Request{Namespace: ns, Spec: spec(host), Caller: caller, Key: key, Firing: true,
			Annotations: map[string]string{v1.AlertmanagerFingerprintAnnotation: key}}
	}

	It("resolves the Alert that counted a firing instance", func() {
		res, err := in.Ingest(ctx, firing("am", "r", "am:abc@t1"))
		Expect(err).NotTo(HaveOccurred())
		at := time.Now().Add(-time.Minute).Truncate(time.Second)
		other, err := in.Resolve(ctx, ns, spec("r"), "someone-else", "am:abc@t1", "alertmanager", at)
		Expect(err).NotTo(HaveOccurred())
		Expect(other.AlertRef).To(BeEmpty(), "another caller's resolution matches nothing")
		got, err := in.Resolve(ctx, ns, spec("r"), "am", "am:abc@t1", "alertmanager", at)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.AlertRef).To(Equal(res.AlertRef))
		var a v1.Alert
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: res.AlertRef}, &a)).To(Succeed())
		Expect(a.Status.Phase).To(Equal(v1.AlertAcked))
		Expect(a.Status.Ack.Note).To(Equal("resolved at source"))
		Expect(a.Status.ResolvedAt.Time).To(BeTemporally("==", at))

		unknown, err := in.Resolve(ctx, ns, spec("r"), "am", "am:never@t0", "alertmanager", at)
		Expect(err).NotTo(HaveOccurred())
		Expect(unknown.AlertRef).To(BeEmpty())
	})

	It("acks at source only when every instance folded into the Alert has resolved", func() {
		first, err := in.Ingest(ctx, firing("am", "two", "am:a@t1"))
		Expect(err).NotTo(HaveOccurred())
		second, err := in.Ingest(ctx, firing("am", "two", "am:b@t1"))
		Expect(err).NotTo(HaveOccurred())
		Expect(second.AlertRef).To(Equal(first.AlertRef))
		Expect(second.Occurrences).To(BeEquivalentTo(2))
		// A caller that folds its own firing in and resolves it closes
		// nothing of the others'.
		_, err = in.Ingest(ctx, firing("mallory", "two", "am:m@t1"))
		Expect(err).NotTo(HaveOccurred())
		_, err = in.Resolve(ctx, ns, spec("two"), "mallory", "am:m@t1", "mallory", time.Now())
		Expect(err).NotTo(HaveOccurred())
		_, err = in.Resolve(ctx, ns, spec("two"), "am", "am:a@t1", "alertmanager", time.Now())
		Expect(err).NotTo(HaveOccurred())
		var a v1.Alert
		key := client.ObjectKey{Namespace: ns, Name: first.AlertRef}
		Expect(k8s.Get(ctx, key, &a)).To(Succeed())
		Expect(a.Status.Phase).To(Equal(v1.AlertNew), "one instance still fires")
		Expect(a.Status.Firing.Instances).To(HaveLen(1))
		_, err = in.Resolve(ctx, ns, spec("two"), "am", "am:b@t1", "alertmanager", time.Now())
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Get(ctx, key, &a)).To(Succeed())
		Expect(a.Status.Phase).To(Equal(v1.AlertAcked))
		Expect(a.Status.Firing.Resolved).To(BeEquivalentTo(3))
	})

	It("scopes idempotency keys to the caller", func() {
		mine, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("k"), Caller: "a", Key: "req-1"})
		Expect(err).NotTo(HaveOccurred())
		theirs, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("k"), Caller: "b", Key: "req-1"})
		Expect(err).NotTo(HaveOccurred())
		Expect(theirs.Replayed).To(BeFalse(), "another caller's equal key is another request")
		Expect(theirs.Occurrences).To(BeEquivalentTo(mine.Occurrences + 1))
		again, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec("k"), Caller: "a", Key: "req-1"})
		Expect(err).NotTo(HaveOccurred())
		Expect(again.Replayed).To(BeTrue())
	})

	It("leaves one live canonical and the exact sum when two replicas' intakes race on new fingerprints", func() {
		// The second replica is not the leader: it serves HTTP from a cache
		// of its own and decides nothing; the leader's controller decides.
		other := replicaIntake()
		const fingerprints, each = 20, 30
		var wg sync.WaitGroup
		for f := range fingerprints {
			for i := range each {
				for _, intk := range []*intake.Intake{in, other} {
					wg.Go(func() {
						defer GinkgoRecover()
						_, err := intk.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec(fmt.Sprintf("race-%02d", f)),
							Caller: "monitor", Key: fmt.Sprintf("r%d-%d", f, i)})
						Expect(err).NotTo(HaveOccurred())
					})
				}
			}
		}
		wg.Wait()
		Eventually(func(g Gomega) {
			got := occurrencesByHost(g, ns)
			g.Expect(got).To(HaveLen(fingerprints))
			for host, occ := range got {
				// Each key was sent to both replicas: counted once.
				g.Expect(occ).To(Equal([]int64{each}), "host %s: one live canonical with every occurrence", host)
			}
		}, settle, poll).Should(Succeed())
	})

	It("counts exactly when each new fingerprint's first burst races the controller's decision", func() {
		// Every new fingerprint is a race between the intake deciding the
		// Alert it created and the controller deciding the same Alert.
		const fingerprints, burst = 150, 8
		var wg sync.WaitGroup
		for f := range fingerprints {
			for range burst {
				wg.Go(func() {
					defer GinkgoRecover()
					_, err := in.Ingest(ctx, intake.Request{Namespace: ns, Spec: spec(fmt.Sprintf("new-%03d", f))})
					Expect(err).NotTo(HaveOccurred())
				})
			}
		}
		wg.Wait()
		Eventually(func(g Gomega) {
			got := occurrencesByHost(g, ns)
			g.Expect(got).To(HaveLen(fingerprints))
			for host, occ := range got {
				g.Expect(occ).To(Equal([]int64{burst}), "host %s", host)
			}
		}, settle, poll).Should(Succeed())
	})
})
