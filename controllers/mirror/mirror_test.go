package mirror_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// Timeouts of the mirror specs.
const (
	// catchUp bounds how long the mirror may take to write every final
	// state after PostgreSQL returns; the backoff cap is 2s, so this is
	// generous.
	catchUp = 30 * time.Second
	// pgStartup bounds initdb + pg_ctl start.
	pgStartup = 2 * time.Minute
)

// mirrorOptions runs the operator with the mirror writing to store.
func mirrorOptions(store *mirror.Store) mirrorctrl.Options {
	return mirrorctrl.Options{Store: store, Migrate: true, ProbeNamespace: env.Install.Namespace}
}

// mirrorOffOptions runs the operator with the mirror off.
func mirrorOffOptions() mirrorctrl.Options {
	return mirrorctrl.Options{ProbeNamespace: env.Install.Namespace}
}

func newIncident(ns, name string) *v1.Incident {
	return testbuild.MakeIncident(name, ns).Severity(v1.SeverityP1).Signature("gateway/prod/latency").State(v1.IncidentOpen).Obj()
}

// patchStatus writes obj's status as the operator does: a merge patch from
// orig under orig's resourceVersion (the operator may patch, not update).
func patchStatus(orig, obj client.Object) error {
	return asOperator.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// noteAuthor is who the specs' notes name: the operator appends them as it
// does a note made over HTTP, in the caller's name.
const noteAuthor = "oncall@example.com"

// appendTimeline adds one timeline entry the way the operator does for a
// caller: re-read, append with the next seq and the caller as author, write
// status, retry conflicts.
func appendTimeline(in *v1.Incident, typ v1.TimelineType) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := asOperator.Get(ctx, client.ObjectKeyFromObject(in), in); err != nil {
			return err
		}
		orig := in.DeepCopy()
		now := metav1.NowMicro()
		seq := in.Status.TimelineSeq + 1
		in.Status.Timeline = append(in.Status.Timeline, v1.TimelineEntry{Seq: seq, At: now, Type: typ, Message: fmt.Sprintf("entry %d", seq), Author: noteAuthor})
		in.Status.TimelineSeq = seq
		return patchStatus(orig, in)
	})
}

// ackAlert acks a New Alert in on-call's name, as the operator does for a
// caller over HTTP (only the operator may name someone else in ack.by).
func ackAlert(a *v1.Alert) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := asOperator.Get(ctx, client.ObjectKeyFromObject(a), a); err != nil {
			return err
		}
		if a.Status.Phase != v1.AlertNew {
			return fmt.Errorf("alert %s is %q, not New yet", a.Name, a.Status.Phase)
		}
		orig := a.DeepCopy()
		a.Status.Phase = v1.AlertAcked
		a.Status.Ack = &v1.AlertAck{By: "oncall", Note: "false positive", At: metav1.Now()}
		return patchStatus(orig, a)
	})
}

func gauge(name string) float64 {
	mfs, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	Fail("no metric " + name)
	return 0
}

// mirroredReason is the reason of the Mirrored condition users see on the
// namespace's AlertRoutingPolicy ("" while it has none).
func mirroredReason(g Gomega, ns string) string {
	reason, _ := mirrored(g, ns)
	return reason
}

// mirrored is the reason and message of the Mirrored condition.
func mirrored(g Gomega, ns string) (reason, message string) {
	var p v1.AlertRoutingPolicy
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1.RoutingPolicyName}, &p)).To(Succeed())
	if c := meta.FindStatusCondition(p.Status.Conditions, mirrorctrl.ConditionMirrored); c != nil {
		return c.Reason, c.Message
	}
	return "", ""
}

// closeIncident closes in, as a user would (spec.state with a note).
func closeIncident(in *v1.Incident) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(in), in); err != nil {
			return err
		}
		in.Spec.State, in.Spec.Note = v1.IncidentClosed, "false positive"
		return k8s.Update(ctx, in)
	})).To(Succeed())
}

// gone says whether obj has left the cluster.
func gone(g Gomega, obj client.Object) bool {
	err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	g.Expect(client.IgnoreNotFound(err)).To(Succeed())
	return err != nil
}

// expectRetention runs the operator with opts in ns, whose policy keeps
// finished objects 1s (and a triage cooldown of 1s), and checks what the in-cluster retention deletes:
// an acked Alert and a Closed Incident, but never a GitOps-tracked Alert
// nor a Closed Incident inside its triage cooldown. It returns the deleted
// Alert and Incident.
func expectRetention(ns string, opts mirrorctrl.Options) (*v1.Alert, *v1.Incident) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Retention(time.Second, 0).TriageCooldown(time.Second).Obj())).To(Succeed())
	stop := startOperator(opts)
	defer stop()
	done := testbuild.MakeAlert("", ns).Host("done").Obj()
	tracked := testbuild.MakeAlert("", ns).Host("tracked").Annotation("argocd.argoproj.io/tracking-id", "app:ops.alertbridge.io/Alert:"+ns+"/tracked").Obj()
	for _, a := range []*v1.Alert{done, tracked} {
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Eventually(func() error { return ackAlert(a) }, settle, poll).Should(Succeed())
	}
	closed := newIncident(ns, "closed")
	Expect(k8s.Create(ctx, closed)).To(Succeed())
	closeIncident(closed)
	// The cooling Incident's signature stays in its triage cooldown for an
	// hour: once the operator has opened it, a run is recorded with the
	// cooldown moved out (as the operator would), then it is closed.
	cooling := newIncident(ns, "cooling")
	Expect(k8s.Create(ctx, cooling)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cooling), cooling)).To(Succeed())
		g.Expect(cooling.Status.OpenedAt).NotTo(BeNil())
	}, settle, poll).Should(Succeed())
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := asOperator.Get(ctx, client.ObjectKeyFromObject(cooling), cooling); err != nil {
			return err
		}
		orig := cooling.DeepCopy()
		at, until := metav1.Now(), metav1.NewTime(time.Now().Add(time.Hour))
		cooling.Status.Triage = &v1.TriageStatus{LastTriageAt: &at, CooldownUntil: &until}
		return patchStatus(orig, cooling)
	})).To(Succeed())
	closeIncident(cooling)
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(cooling), cooling)).To(Succeed())
		g.Expect(cooling.Status.ClosedAt).NotTo(BeNil())
	}, settle, poll).Should(Succeed())

	Eventually(func(g Gomega) {
		g.Expect(gone(g, done)).To(BeTrue(), "the acked Alert is still in the cluster")
		g.Expect(gone(g, closed)).To(BeTrue(), "the Closed Incident is still in the cluster")
	}, settle, poll).Should(Succeed())
	Consistently(func(g Gomega) {
		g.Expect(gone(g, tracked)).To(BeFalse(), "the GitOps-tracked Alert was deleted")
		g.Expect(gone(g, cooling)).To(BeFalse(), "the Closed Incident inside its triage cooldown was deleted")
	}, quietFor, poll).Should(Succeed())
	return done, closed
}

// probeAlert is an Alert like the operator's probe of the finalizer policy,
// without the label that marks it as the operator's own.
func probeAlert(ns string) *v1.Alert {
	return testbuild.MakeAlert("", ns).GenerateName("probe-").Service("alertbridge").Kind("mirror_probe").Title("probe").Source("").Obj()
}

type alertRow struct {
	Phase     string
	RV        string
	Deleted   bool
	Acked     bool
	Namespace string
}

var _ = Describe("PostgreSQL mirror", Ordered, func() {
	var (
		pg    *pgcluster.Cluster
		store *mirror.Store
		db    *pgxpool.Pool
		ns    string
		// uninstallFinalizer removes the finalizer component again.
		uninstallFinalizer func(context.Context) error
	)
	BeforeAll(func() {
		var err error
		sctx, cancel := context.WithTimeout(ctx, pgStartup)
		defer cancel()
		pg, err = pgcluster.Start(sctx)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(pg.Stop)
		store, err = mirror.Open(ctx, pg.DSN())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(store.Close)
		db, err = pgxpool.New(ctx, pg.DSN())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(db.Close)
		// The suite installs config/without-mirror; these specs run the
		// operator as config/default installs it, with the shipped
		// component's finalizer policy.
		uninstallFinalizer, err = testenv.InstallMirrorFinalizer(ctx, k8s)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(uninstallFinalizer(ctx)).To(Succeed()) })
	})
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "mirror-") })

	alertRowOf := func(g Gomega, a *v1.Alert) (alertRow, bool) {
		var r alertRow
		err := db.QueryRow(ctx, `SELECT phase, resource_version::text, deleted_at IS NOT NULL, acked_at IS NOT NULL, namespace FROM alerts WHERE uid = $1`, string(a.UID)).
			Scan(&r.Phase, &r.RV, &r.Deleted, &r.Acked, &r.Namespace)
		if err == pgx.ErrNoRows {
			return r, false
		}
		g.Expect(err).NotTo(HaveOccurred())
		return r, true
	}

	It("keeps an ingested alert and its row across an operator restart (the persistence check of docs/migration.md)", func() {
		stop := startOperator(mirrorOptions(store))
		a := testbuild.MakeAlert("", ns).Host("persist").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Expect(a.Finalizers).To(ContainElement(v1.MirrorFinalizer), "the admission policy adds the finalizer at creation")
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			row, ok := alertRowOf(g, a)
			g.Expect(ok).To(BeTrue())
			g.Expect(row.Phase).To(Equal("New"))
			g.Expect(row.RV).To(Equal(a.ResourceVersion))
		}, settle, poll).Should(Succeed())
		Expect(gauge("alertbridge_mirror_enabled")).To(BeEquivalentTo(1))
		stop()

		stop = startOperator(mirrorOptions(store))
		defer stop()
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		row, ok := alertRowOf(Default, a)
		Expect(ok).To(BeTrue())
		Expect(row.Phase).To(Equal("New"))
		// The restarted operator keeps mirroring.
		Expect(ackAlert(a)).To(Succeed())
		Eventually(func(g Gomega) {
			row, ok := alertRowOf(g, a)
			g.Expect(ok).To(BeTrue())
			g.Expect(row.Phase).To(Equal("Acked"))
			g.Expect(row.Acked).To(BeTrue())
		}, settle, poll).Should(Succeed())
	})

	It("writes the final state of Alerts and Incidents deleted right after creation", func() {
		stop := startOperator(mirrorOptions(store))
		defer stop()
		const n = 30
		var uids []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				defer GinkgoRecover()
				var obj client.Object = testbuild.MakeAlert("", ns).Host(fmt.Sprintf("gone-%d", i)).Obj()
				if i%5 == 0 {
					obj = newIncident(ns, fmt.Sprintf("gone-%d", i))
				}
				Expect(k8s.Create(ctx, obj)).To(Succeed())
				Expect(k8s.Delete(ctx, obj)).To(Succeed())
				mu.Lock()
				uids = append(uids, string(obj.GetUID()))
				mu.Unlock()
			})
		}
		wg.Wait()
		Eventually(func(g Gomega) {
			g.Expect(testbuild.Alerts(g, k8s, ns)).To(BeEmpty())
			var incs v1.IncidentList
			g.Expect(k8s.List(ctx, &incs, client.InNamespace(ns))).To(Succeed())
			g.Expect(incs.Items).To(BeEmpty())
		}, settle, poll).Should(Succeed())
		var rows, deleted int
		Expect(db.QueryRow(ctx, `SELECT count(*), count(deleted_at) FROM (
			SELECT uid, deleted_at FROM alerts WHERE uid = ANY($1) UNION ALL SELECT uid, deleted_at FROM incidents WHERE uid = ANY($1)) x`, uids).
			Scan(&rows, &deleted)).To(Succeed())
		Expect(rows).To(Equal(n), "every object deleted right after creation has its row")
		Expect(deleted).To(Equal(n), "and the row is its final, deleted state")
	})

	It("loses and doubles nothing when PostgreSQL stops in the middle of 500 changes", func() {
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Obj())).To(Succeed())
		stop := startOperator(mirrorOptions(store))
		defer stop()
		const (
			alerts    = 100 // create + ack: 200 changes
			incidents = 20  // create + 14 timeline entries: 300 changes
			entries   = 14
			total     = alerts*2 + incidents*(1+entries)
			haltAfter = total / 2
			workers   = 8
		)
		var changes atomic.Int64
		halted := make(chan struct{})
		count := func() {
			if changes.Add(1) == haltAfter {
				Expect(pg.Halt(ctx)).To(Succeed())
				close(halted)
			}
		}
		jobs := make(chan func())
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				defer GinkgoRecover()
				for job := range jobs {
					job()
				}
			})
		}
		alertObjs := make([]*v1.Alert, alerts)
		incObjs := make([]*v1.Incident, incidents)
		for i := range alerts {
			alertObjs[i] = testbuild.MakeAlert("", ns).Host(fmt.Sprintf("burst-%d", i)).Obj()
		}
		for i := range incidents {
			incObjs[i] = newIncident(ns, fmt.Sprintf("burst-%d", i))
		}
		// Creates first, then the changes, interleaved across kinds.
		for i := range max(alerts, incidents) {
			if i < alerts {
				a := alertObjs[i]
				jobs <- func() { Expect(k8s.Create(ctx, a)).To(Succeed()); count() }
			}
			if i < incidents {
				in := incObjs[i]
				jobs <- func() { Expect(k8s.Create(ctx, in)).To(Succeed()); count() }
			}
		}
		for i := range max(alerts, incidents*entries) {
			if i < alerts {
				a := alertObjs[i]
				jobs <- func() {
					Eventually(func() error { return ackAlert(a) }, settle, poll).Should(Succeed())
					count()
				}
			}
			if i < incidents*entries {
				in := incObjs[i%incidents]
				jobs <- func() { Expect(appendTimeline(in, v1.TimelineNote)).To(Succeed()); count() }
			}
		}
		close(jobs)
		wg.Wait()
		Expect(changes.Load()).To(BeEquivalentTo(total))
		Expect(halted).To(BeClosed())

		// While the database is down the operator shows the lag.
		Eventually(func() float64 { return gauge("alertbridge_mirror_pending_objects") }, settle, poll).Should(BeNumerically(">", 0))
		Eventually(func() float64 { return gauge("alertbridge_mirror_lag_seconds") }, settle, poll).Should(BeNumerically(">", 0))
		Eventually(func(g Gomega) string { return mirroredReason(g, ns) }, settle, poll).Should(Equal(mirrorctrl.ReasonDatabaseUnavailable))
		Expect(gauge("alertbridge_mirror_up")).To(BeZero())
		// The rest of the operator keeps working while the database is down.
		late := testbuild.MakeAlert("", ns).Host("during-outage").Obj()
		Expect(k8s.Create(ctx, late)).To(Succeed())
		Eventually(func(g Gomega) v1.AlertPhase {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(late), late)).To(Succeed())
			return late.Status.Phase
		}, settle, poll).Should(Equal(v1.AlertNew))
		Expect(pg.Restart(ctx)).To(Succeed())
		restarted := time.Now()

		Eventually(func(g Gomega) {
			for _, a := range alertObjs {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				row, ok := alertRowOf(g, a)
				g.Expect(ok).To(BeTrue(), "alert %s has no row", a.Name)
				g.Expect(row.RV).To(Equal(a.ResourceVersion), "alert %s row is older than the object", a.Name)
				g.Expect(row.Phase).To(Equal("Acked"))
			}
			for _, in := range incObjs {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(in), in)).To(Succeed())
				// The Incident controller adds its own entries (Opened, triage)
				// beside the test's notes: every one of them must be mirrored.
				want := in.Status.TimelineSeq
				g.Expect(want).To(BeNumerically(">=", entries))
				g.Expect(in.Status.MirroredTimelineSeq).To(Equal(want))
				var rv string
				var events, distinct int
				var minSeq, maxSeq int64
				g.Expect(db.QueryRow(ctx, `SELECT i.resource_version::text, count(e.seq), count(DISTINCT e.seq), coalesce(min(e.seq), 0), coalesce(max(e.seq), 0)
					FROM incidents i LEFT JOIN incident_events e ON e.incident_uid = i.uid WHERE i.uid = $1 GROUP BY i.resource_version`, string(in.UID)).
					Scan(&rv, &events, &distinct, &minSeq, &maxSeq)).To(Succeed())
				g.Expect(rv).To(Equal(in.ResourceVersion), "incident %s row is older than the object", in.Name)
				g.Expect([]any{int64(events), int64(distinct), minSeq, maxSeq}).To(Equal([]any{want, want, int64(1), want}))
				var authored int
				g.Expect(db.QueryRow(ctx, `SELECT count(*) FROM incident_events WHERE incident_uid = $1 AND author = $2`, string(in.UID), noteAuthor).
					Scan(&authored)).To(Succeed())
				g.Expect(authored).To(Equal(entries), "incident %s: each note's author is mirrored", in.Name)
			}
			row, ok := alertRowOf(g, late)
			g.Expect(ok).To(BeTrue())
			g.Expect(row.Phase).To(Equal("New"))
			g.Expect(gauge("alertbridge_mirror_pending_objects")).To(BeZero())
		}, catchUp, poll).Should(Succeed())
		GinkgoWriter.Printf("mirror caught up %s after PostgreSQL returned\n", time.Since(restarted))
		Eventually(func(g Gomega) string { return mirroredReason(g, ns) }, settle, poll).Should(Equal(mirrorctrl.ReasonCaughtUp))

		var alertRows, distinctAlerts, incRows int
		Expect(db.QueryRow(ctx, `SELECT (SELECT count(*) FROM alerts WHERE namespace = $1), (SELECT count(DISTINCT uid) FROM alerts WHERE namespace = $1), (SELECT count(*) FROM incidents WHERE namespace = $1)`, ns).
			Scan(&alertRows, &distinctAlerts, &incRows)).To(Succeed())
		Expect([]int{alertRows, distinctAlerts, incRows}).To(Equal([]int{alerts + 1, alerts + 1, incidents}))
	})

	It("deletes finished objects once mirrored and past resolvedInCluster, but never GitOps-tracked ones", func() {
		done, closed := expectRetention(ns, mirrorOptions(store))
		row, ok := alertRowOf(Default, done)
		Expect(ok).To(BeTrue())
		Expect(row.Phase).To(Equal("Acked"))
		Expect(row.Deleted).To(BeTrue())
		var state string
		var deleted bool
		Expect(db.QueryRow(ctx, "SELECT state, deleted_at IS NOT NULL FROM incidents WHERE uid = $1", string(closed.UID)).Scan(&state, &deleted)).To(Succeed())
		Expect([]any{state, deleted}).To(Equal([]any{"Closed", true}), "the Closed Incident's final row is written before it leaves the cluster")
	})

	It("holds folded duplicates the Alert controller deletes until their Deduplicated row is written", func() {
		stop := startOperator(mirrorOptions(store))
		defer stop()
		first, second := testbuild.MakeAlert("", ns).Host("same").Obj(), testbuild.MakeAlert("", ns).Host("same").Obj()
		Expect(k8s.Create(ctx, first)).To(Succeed())
		Expect(k8s.Create(ctx, second)).To(Succeed())
		// Created in the same second, the name decides which one is canonical.
		var dup *v1.Alert
		Eventually(func(g Gomega) {
			for _, a := range []*v1.Alert{first, second} {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				if a.Status.Phase == v1.AlertDeduplicated {
					dup = a
				}
			}
			g.Expect(dup).NotTo(BeNil())
		}, settle, poll).Should(Succeed())
		Eventually(func(g Gomega) {
			var cur v1.Alert
			err := k8s.Get(ctx, client.ObjectKeyFromObject(dup), &cur)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed())
			g.Expect(err).To(HaveOccurred(), "the duplicate is still in the cluster: finalizers %v, deleting since %v", cur.Finalizers, cur.DeletionTimestamp)
		}, settle, poll).Should(Succeed())
		row, ok := alertRowOf(Default, dup)
		Expect(ok).To(BeTrue())
		Expect(row.Phase).To(Equal("Deduplicated"))
		Expect(row.Deleted).To(BeTrue())
	})

	It("records one row per SLO evaluation and per gate bypass", func() {
		stop := startOperator(mirrorOptions(store))
		defer stop()
		p := testbuild.MakeSLOPolicy("gateway", ns).Obj()
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Expect(p.Finalizers).To(ContainElement(v1.MirrorFinalizer))
		base := time.Now().Truncate(time.Second)
		for i := range 3 {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
					return err
				}
				at := metav1.NewTime(base.Add(time.Duration(i) * time.Minute))
				until := metav1.NewTime(base.Add(time.Hour))
				p.Status.LastEvaluatedAt = &at
				p.Status.Observed = &v1.ObservedSLIs{LatencyP95Ms: fmt.Sprintf("%d.5", 300+i)}
				p.Status.Gate = &v1.GateStatus{Decision: v1.DecisionBlock, Reason: v1.ReasonLatencyP95Exceeded}
				p.Status.Bypass = &v1.BypassStatus{Active: true, Until: &until, Reason: "hotfix for INC-42", By: "alice"}
				return k8s.Status().Update(ctx, p)
			})).To(Succeed())
			// Each evaluation reaches the mirror before the next one replaces it.
			Eventually(func() (int, error) {
				var n int
				err := db.QueryRow(ctx, "SELECT count(*) FROM slo_evaluations WHERE slo_uid = $1", string(p.UID)).Scan(&n)
				return n, err
			}, settle, poll).Should(Equal(i + 1))
		}
		var bypasses int
		var latest string
		Expect(db.QueryRow(ctx, `SELECT (SELECT count(*) FROM gate_bypasses WHERE slo_uid = $1),
			(SELECT latency_p95_ms::text FROM slo_evaluations WHERE slo_uid = $1 ORDER BY evaluated_at DESC LIMIT 1)`, string(p.UID)).
			Scan(&bypasses, &latest)).To(Succeed())
		Expect(bypasses).To(Equal(1))
		Expect(latest).To(Equal("302.5"))
	})

	It("reports whether the finalizer policy is in effect, and never installs, deletes or exits over it", func() {
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Obj())).To(Succeed())
		metrics.MirrorFinalizerPolicyActive.Set(0)
		stop := startOperator(mirrorOptions(store))
		defer stop() // fails the spec if the operator exited meanwhile
		Eventually(func() float64 { return gauge("alertbridge_mirror_finalizer_policy_active") }, settle, poll).Should(BeEquivalentTo(1))
		Eventually(func(g Gomega) string { return mirroredReason(g, ns) }, settle, poll).Should(Equal(mirrorctrl.ReasonCaughtUp))

		// Someone removes the shipped policy: the operator notices on its
		// next check and says so, and puts nothing back.
		Expect(uninstallFinalizer(ctx)).To(Succeed())
		Eventually(func() float64 { return gauge("alertbridge_mirror_finalizer_policy_active") }, settle, poll).Should(BeZero())
		Eventually(func(g Gomega) {
			reason, msg := mirrored(g, ns)
			g.Expect(reason).To(Equal(mirrorctrl.ReasonFinalizerPolicyMissing))
			g.Expect(msg).To(ContainSubstring("config/components/mirror-finalizer"))
		}, settle, poll).Should(Succeed())
		binding := &unstructured.Unstructured{}
		binding.SetGroupVersionKind(schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingAdmissionPolicyBinding"})
		binding.SetName(mirrorctrl.FinalizerPolicyName)
		Consistently(func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(binding), binding) }, quietFor, poll).
			Should(Satisfy(apierrors.IsNotFound), "the operator installs no admission policy")
		// The mirror itself goes on: new objects get the finalizer from the
		// reconciler instead, and their rows are written.
		late := testbuild.MakeAlert("", ns).Host("no-policy").Obj()
		Expect(k8s.Create(ctx, late)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(late), late)).To(Succeed())
			g.Expect(late.Finalizers).To(ContainElement(v1.MirrorFinalizer))
			_, ok := alertRowOf(g, late)
			g.Expect(ok).To(BeTrue())
		}, settle, poll).Should(Succeed())

		var err error
		uninstallFinalizer, err = testenv.InstallMirrorFinalizer(ctx, k8s)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() float64 { return gauge("alertbridge_mirror_finalizer_policy_active") }, settle, poll).Should(BeEquivalentTo(1))
		Eventually(func(g Gomega) string { return mirroredReason(g, ns) }, settle, poll).Should(Equal(mirrorctrl.ReasonCaughtUp))
	})

	It("checks the finalizer policy with a probe in its own namespace that no allowedKinds refuses", func() {
		own := env.Install.Namespace
		p := testbuild.MakeAlertRoutingPolicy(own).AllowedKinds("latency").Obj()
		Expect(k8s.Create(ctx, p)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, p)).To(Succeed()) })
		// The namespace's list is in effect, for the operator's identity
		// too when the Alert is not its own (as HTTP ingest creates them).
		asOperator, err := client.New(env.Operator, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() error { return asOperator.Create(ctx, probeAlert(own), client.DryRunAll) }, settle, poll).
			Should(MatchError(ContainSubstring(`spec.kind: "mirror_probe" is not allowed`)))

		metrics.MirrorFinalizerPolicyActive.Set(0)
		stop := startOperator(mirrorOptions(store))
		defer stop()
		Eventually(func() float64 { return gauge("alertbridge_mirror_finalizer_policy_active") }, settle, poll).Should(BeEquivalentTo(1))
		Eventually(func(g Gomega) string { return mirroredReason(g, own) }, settle, poll).Should(Equal(mirrorctrl.ReasonCaughtUp))
	})

	It("with --mirror=off, mirrors nothing even with a database, and says the finalizer policy should not be installed", func() {
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Obj())).To(Succeed())
		opts := mirrorOptions(store)
		opts.Mode = mirrorctrl.Off
		stop := startOperator(opts)
		defer stop()
		Expect(gauge("alertbridge_mirror_enabled")).To(BeZero())
		a := testbuild.MakeAlert("", ns).Host("unmirrored").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Expect(a.Finalizers).To(ContainElement(v1.MirrorFinalizer), "the policy is installed, though it should not be")
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Finalizers).NotTo(ContainElement(v1.MirrorFinalizer))
			g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
		}, settle, poll).Should(Succeed())
		Eventually(func(g Gomega) {
			reason, msg := mirrored(g, ns)
			g.Expect(reason).To(Equal(mirrorctrl.ReasonDisabled))
			g.Expect(msg).To(And(ContainSubstring("--mirror=off"), ContainSubstring("config/without-mirror")))
		}, settle, poll).Should(Succeed())
		Consistently(func(g Gomega) bool { _, ok := alertRowOf(g, a); return ok }, quietFor, poll).Should(BeFalse())
	})

	It("with --mirror=required, is ready once PostgreSQL answered with a current schema, and stays ready through an outage", func() {
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Obj())).To(Succeed())
		fresh, err := mirror.Open(ctx, freshDatabase(db, pg, "ready"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(fresh.Close)
		Expect(pg.Halt(ctx)).To(Succeed())
		halted := true
		DeferCleanup(func() {
			if halted {
				Expect(pg.Restart(ctx)).To(Succeed())
			}
		})
		op, stop := startServingProbes(mirrorctrl.Options{Mode: mirrorctrl.Required, Store: fresh, ProbeNamespace: env.Install.Namespace})
		defer stop()
		notReady := func(why string) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				code, body := readyz(g, op, "/readyz/"+mirrorctrl.ReadyzName)
				g.Expect(code).To(Equal(http.StatusInternalServerError))
				g.Expect(body).To(ContainSubstring(why))
				code, _ = readyz(g, op, "/readyz")
				g.Expect(code).To(Equal(http.StatusInternalServerError))
			}, settle, poll).Should(Succeed())
		}
		notReady("PostgreSQL does not answer")
		Expect(pg.Restart(ctx)).To(Succeed())
		halted = false
		notReady("schema is behind")
		notReady("alertbridge migrate")
		_, err = fresh.Migrate(ctx, mirror.MigrateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) int { code, _ := readyz(g, op, "/readyz"); return code }, settle, poll).Should(Equal(http.StatusOK))

		// From now on an outage delays the mirror, and says so, but never
		// makes the operator unready: ingest and the controllers go on.
		Expect(pg.Halt(ctx)).To(Succeed())
		halted = true
		a := testbuild.MakeAlert("", ns).Host("during-outage").Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) v1.AlertPhase {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			return a.Status.Phase
		}, settle, poll).Should(Equal(v1.AlertNew))
		Eventually(func(g Gomega) string { return mirroredReason(g, ns) }, settle, poll).Should(Equal(mirrorctrl.ReasonDatabaseUnavailable))
		Consistently(func(g Gomega) int { code, _ := readyz(g, op, "/readyz"); return code }, quietFor, poll).Should(Equal(http.StatusOK))
		Expect(pg.Restart(ctx)).To(Succeed())
		halted = false
		Eventually(func(g Gomega) string { return mirroredReason(g, ns) }, settle, poll).Should(Equal(mirrorctrl.ReasonCaughtUp))
	})
})

// freshDatabase creates an empty database beside pg's and returns its URL.
func freshDatabase(db *pgxpool.Pool, pg *pgcluster.Cluster, prefix string) string {
	GinkgoHelper()
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	_, err := db.Exec(ctx, "CREATE DATABASE "+name)
	Expect(err).NotTo(HaveOccurred())
	return strings.Replace(pg.DSN(), "/alertbridge?", "/"+name+"?", 1)
}

var _ = Describe("The mirror off, and required without a database", func() {
	It("with the mirror off, adds no finalizer and removes leftovers so deletion never hangs", func() {
		ns := testbuild.Namespace(Default, k8s, "mirror-")
		leftover := testbuild.MakeAlert("", ns).Host("leftover").Obj()
		leftover.Finalizers = []string{v1.MirrorFinalizer}
		Expect(k8s.Create(ctx, leftover)).To(Succeed())
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Obj())).To(Succeed())
		stop := startOperator(mirrorOffOptions())
		defer stop()
		Expect(gauge("alertbridge_mirror_enabled")).To(BeZero())
		Eventually(func(g Gomega) {
			reason, msg := mirrored(g, ns)
			g.Expect(reason).To(Equal(mirrorctrl.ReasonDisabled))
			g.Expect(msg).NotTo(ContainSubstring("config/without-mirror"), "installed without the mirror, nothing is amiss")
		}, settle, poll).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(leftover), leftover)).To(Succeed())
			g.Expect(leftover.Finalizers).NotTo(ContainElement(v1.MirrorFinalizer))
		}, settle, poll).Should(Succeed())
		// config/without-mirror ships no finalizer policy.
		probe := testbuild.MakeAlert("", ns).Host("probe").Obj()
		Expect(k8s.Create(ctx, probe, client.DryRunAll)).To(Succeed())
		Expect(probe.Finalizers).NotTo(ContainElement(v1.MirrorFinalizer))
		Eventually(func() float64 { return gauge("alertbridge_mirror_finalizer_policy_active") }, settle, poll).Should(BeZero())
		Expect(k8s.Delete(ctx, leftover)).To(Succeed())
		Eventually(func() bool {
			return slices.ContainsFunc(testbuild.Alerts(Default, k8s, ns), func(a v1.Alert) bool { return a.Name == leftover.Name })
		}, settle, poll).Should(BeFalse())
	})

	It("with the mirror off, still deletes finished objects past resolvedInCluster, but never GitOps-tracked ones", func() {
		expectRetention(testbuild.Namespace(Default, k8s, "mirror-"), mirrorOffOptions())
	})

	It("with --mirror=required and no database, runs no controller and is never ready, saying why", func() {
		ns := testbuild.Namespace(Default, k8s, "mirror-")
		op, stop := startServingProbes(mirrorctrl.Options{Mode: mirrorctrl.Required})
		defer stop()
		Eventually(func(g Gomega) {
			code, body := readyz(g, op, "/readyz/"+mirrorctrl.ReadyzName)
			g.Expect(code).To(Equal(http.StatusInternalServerError))
			g.Expect(body).To(And(ContainSubstring("no database URL"), ContainSubstring("ALERT_DATABASE_URL")))
		}, settle, poll).Should(Succeed())
		// Nothing runs without durable history: no decision, and a
		// finalizer stays for the mirror that will write the row.
		a := testbuild.MakeAlert("", ns).Host("waits").Obj()
		a.Finalizers = []string{v1.MirrorFinalizer}
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(BeEmpty())
			g.Expect(a.Finalizers).To(ContainElement(v1.MirrorFinalizer))
		}, quietFor, poll).Should(Succeed())
		code, _ := readyz(Default, op, "/readyz")
		Expect(code).To(Equal(http.StatusInternalServerError))
	})
})
