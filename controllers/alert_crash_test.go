package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// noWatch adapts the manager's client to what interceptor wraps.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not used here")
}

// These specs drive the reconciler by hand, with no operator running, and
// make one of its writes fail as a crash would.
var _ = Describe("Alert folding after a crash", func() {
	var (
		ns        string
		cache     client.Client
		apiReader client.Reader
		stopMgr   context.CancelFunc
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		mgr, err := ctrl.NewManager(env.Operator, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
		Expect(err).NotTo(HaveOccurred())
		mctx, cancel := context.WithCancel(ctx)
		stopMgr = cancel
		Expect(fingerprint.RegisterIndex(mctx, mgr.GetFieldIndexer())).To(Succeed())
		go func() {
			defer GinkgoRecover()
			Expect(mgr.Start(mctx)).To(Succeed())
		}()
		Expect(mgr.GetCache().WaitForCacheSync(mctx)).To(BeTrue())
		cache = mgr.GetClient()
		apiReader = mgr.GetAPIReader()
		DeferCleanup(func() { stopMgr() })
	})

	reconciler := func(c client.Client) *controllers.AlertReconciler {
		return &controllers.AlertReconciler{
			Client:           c,
			APIReader:        apiReader,
			Recorder:         events.NewFakeRecorder(100),
			Clock:            clock.RealClock{},
			DuplicateGCDelay: time.Hour,
		}
	}

	// createAll creates n Alerts of one fingerprint and waits until the
	// cache sees them all.
	createAll := func(n int) (controllers.FingerprintKey, []*v1.Alert) {
		var alerts []*v1.Alert
		for range n {
			a := testbuild.MakeAlert("", ns).Host("crash").Obj()
			Expect(k8s.Create(ctx, a)).To(Succeed())
			alerts = append(alerts, a)
		}
		key := controllers.FingerprintKey{Namespace: ns, Fingerprint: fingerprint.Key(alerts[0])}
		Eventually(func(g Gomega) {
			var list v1.AlertList
			g.Expect(cache.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(n))
		}, settle, poll).Should(Succeed())
		return key, alerts
	}

	expectExactlyFolded := func(n int) {
		Eventually(func(g Gomega) {
			items := testbuild.Alerts(g, k8s, ns)
			var canon []v1.Alert
			dups := 0
			for _, a := range items {
				switch a.Status.Phase {
				case v1.AlertNew:
					canon = append(canon, a)
				case v1.AlertDeduplicated:
					dups++
				}
			}
			g.Expect(canon).To(HaveLen(1))
			g.Expect(canon[0].Status.Occurrences).To(BeEquivalentTo(n))
			g.Expect(canon[0].Status.PendingFolds).To(BeEmpty())
			g.Expect(dups).To(Equal(n - 1))
		}, settle, poll).Should(Succeed())
	}

	// runUntilQuiet reconciles until no error, as the work queue would.
	runUntilQuiet := func(r *controllers.AlertReconciler, key controllers.FingerprintKey) {
		Eventually(func() error {
			_, err := r.Reconcile(ctx, key)
			return err
		}, settle, poll).Should(Succeed())
	}

	It("neither loses nor doubles when it dies while marking duplicates", func() {
		key, _ := createAll(6)
		// Let the canonical be decided, then die on the third duplicate mark.
		var marks atomic.Int32
		crashing := interceptor.NewClient(noWatch{cache}, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if a, ok := obj.(*v1.Alert); ok && a.Status.Phase == v1.AlertDeduplicated && marks.Add(1) == 3 {
					return errors.New("operator killed")
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		})
		// The first run decides the canonical; its duplicates may already be
		// folded in the same run.
		_, err := reconciler(crashing).Reconcile(ctx, key)
		for err == nil && marks.Load() < 3 {
			_, err = reconciler(crashing).Reconcile(ctx, key)
		}
		Expect(err).To(MatchError(ContainSubstring("operator killed")))
		// What the crash left: counted, journalled, partly marked.
		var canon v1.Alert
		for _, a := range testbuild.Alerts(Default, k8s, ns) {
			if a.Status.Phase == v1.AlertNew {
				canon = a
			}
		}
		Expect(canon.Status.Occurrences).To(BeEquivalentTo(6))
		Expect(canon.Status.PendingFolds).NotTo(BeEmpty())

		runUntilQuiet(reconciler(cache), key)
		expectExactlyFolded(6)
	})

	It("neither loses nor doubles when it dies before clearing the journal", func() {
		key, _ := createAll(5)
		crashing := interceptor.NewClient(noWatch{cache}, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				if a, ok := obj.(*v1.Alert); ok && a.Status.Phase == v1.AlertNew && a.Status.Occurrences > 1 && len(a.Status.PendingFolds) == 0 {
					return errors.New("operator killed")
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		})
		Eventually(func() error {
			_, err := reconciler(crashing).Reconcile(ctx, key)
			return err
		}, settle, poll).Should(MatchError(ContainSubstring("operator killed")))
		runUntilQuiet(reconciler(cache), key)
		expectExactlyFolded(5)
	})

	It("never overwrites a decision another writer made after its read", func() {
		// Only the controller decides; a second controller (a leader
		// handover) deciding right between this one's fresh read and its
		// status write must win, not be overwritten.
		key, alerts := createAll(1)
		a := alerts[0]
		racing := interceptor.NewClient(noWatch{cache}, interceptor.Funcs{
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				var other v1.Alert
				Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), &other)).To(Succeed())
				if other.Status.Phase == "" {
					// The other controller is the operator too: only it may decide.
					updateStatus(&other, func(a *v1.Alert) {
						a.Status.Phase = v1.AlertNew
						a.Status.Occurrences = 10
						a.Status.LastSeenAt = &a.CreationTimestamp
					})
				}
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
		})
		Eventually(func() error {
			_, err := reconciler(racing).Reconcile(ctx, key)
			return err
		}, settle, poll).Should(Succeed())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		Expect(a.Status.Occurrences).To(BeEquivalentTo(10), "the controller overwrote the other writer's count")
	})
	It("folds into a canonical it decided before the cache shows it, even one sorting after the duplicate", func() {
		// Two Alerts of one fingerprint created in the same second: the
		// later one sorts first by name. Each try makes a fresh pair until
		// they share a second (creationTimestamp's resolution).
		var first, second *v1.Alert
		Eventually(func(g Gomega) {
			first = testbuild.MakeAlert(fmt.Sprintf("zz-first-%d", time.Now().UnixNano()), ns).Host("stale").Obj()
			second = testbuild.MakeAlert(fmt.Sprintf("aa-second-%d", time.Now().UnixNano()), ns).Host("stale").Obj()
			g.Expect(k8s.Create(ctx, first)).To(Succeed())
			g.Expect(k8s.Create(ctx, second)).To(Succeed())
			if !first.CreationTimestamp.Equal(&second.CreationTimestamp) {
				g.Expect(k8s.Delete(ctx, first)).To(Succeed())
				g.Expect(k8s.Delete(ctx, second)).To(Succeed())
				g.Expect(false).To(BeTrue(), "created in different seconds")
			}
		}, settle, poll).Should(Succeed())
		key := controllers.FingerprintKey{Namespace: ns, Fingerprint: fingerprint.Key(first)}
		undecided := func(o client.Object) bool { return o.GetName() == first.Name || o.GetName() == second.Name }
		Eventually(func(g Gomega) {
			var list v1.AlertList
			g.Expect(cache.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(slices.ContainsFunc(list.Items, func(a v1.Alert) bool { return a.Name == second.Name })).To(BeTrue())
		}, settle, poll).Should(Succeed())

		// A first run that saw only the first Alert made it canonical.
		onlyFirst := interceptor.NewClient(noWatch{cache}, interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if err := c.List(ctx, list, opts...); err != nil {
					return err
				}
				if l, ok := list.(*v1.AlertList); ok {
					l.Items = slices.DeleteFunc(l.Items, func(a v1.Alert) bool { return a.Name == second.Name })
				}
				return nil
			},
		})
		_, err := reconciler(onlyFirst).Reconcile(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		Expect(first.Status.Phase).To(Equal(v1.AlertNew))

		// The next run's cache has not seen that write: both look undecided.
		var stale v1.AlertList
		Expect(apiReader.List(ctx, &stale, client.InNamespace(ns))).To(Succeed())
		for i := range stale.Items {
			if undecided(&stale.Items[i]) {
				stale.Items[i].Status = v1.AlertStatus{}
			}
		}
		lagging := interceptor.NewClient(noWatch{cache}, interceptor.Funcs{
			List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
				if l, ok := list.(*v1.AlertList); ok {
					stale.DeepCopyInto(l)
					return nil
				}
				return c.List(ctx, list, opts...)
			},
		})
		Eventually(func() error {
			_, err := reconciler(lagging).Reconcile(ctx, key)
			return err
		}, settle, poll).Should(Succeed())
		runUntilQuiet(reconciler(cache), key)

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(second), second)).To(Succeed())
		Expect(second.Status.Phase).To(Equal(v1.AlertDeduplicated), "a second canonical for one fingerprint")
		Expect(second.Status.DuplicateOf).To(Equal(first.Name))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
		Expect(first.Status.Occurrences).To(BeEquivalentTo(2))
	})
})
