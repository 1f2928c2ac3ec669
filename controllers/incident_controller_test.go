package controllers_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// incidentControllers are the controllers these specs test: conversion and triage, on Alerts the Alert controller decides.
var incidentControllers = []controllers.Controller{controllers.AlertController, controllers.IncidentController}

// Cooldowns of the specs; time moves on a fake clock, so they can be long
// and the specs still never wait for them.
const (
	stormCooldown = 15 * time.Minute
	triageSA      = "triage"
)

func sigAlert(ns, host string, sev v1.Severity) *v1.Alert {
	a := testbuild.MakeAlert("", ns).Host(host).Severity(sev).Obj()
	Expect(k8s.Create(ctx, a)).To(Succeed())
	return a
}

func triageJobTemplate() *batchv1.JobTemplateSpec {
	return &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy:      corev1.RestartPolicyNever,
		ServiceAccountName: "cluster-admin-wannabe", // never used: the policy's marked SA wins
		Containers:         []corev1.Container{{Name: "triage", Image: "registry.example/triage:1"}},
	}}}}
}

func createPolicy(p *testbuild.AlertRoutingPolicyWrapper) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, p.Obj())).To(Succeed())
}

// createTriageSA creates the ServiceAccount triage Jobs run as, marked
// for triage or not, in a namespace that lets the operator run them.
func createTriageSA(ns, name string, marked bool) {
	GinkgoHelper()
	grant(ns, controllers.TriageJobsRole)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if marked {
		sa.Annotations = map[string]string{v1.TriageServiceAccountAnnotation: "true"}
	}
	Expect(k8s.Create(ctx, sa)).To(Succeed())
}

// jobPolicy is the routing policy of ns that triages with a Job as
// triageSA, at most once per cooldown.
func jobPolicy(ns string, cooldown time.Duration) *testbuild.AlertRoutingPolicyWrapper {
	return testbuild.MakeAlertRoutingPolicy(ns).TriageCooldown(cooldown).TriageJob(triageSA, triageJobTemplate())
}

func listIncidents(g Gomega, ns string) []v1.Incident {
	var list v1.IncidentList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

func listJobs(g Gomega, ns string) []batchv1.Job {
	var list batchv1.JobList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

func countEntries(inc *v1.Incident, typ v1.TimelineType, contains string) int {
	n := 0
	for _, e := range inc.Status.Timeline {
		if e.Type == typ && strings.Contains(e.Message, contains) {
			n++
		}
	}
	return n
}

// triageOf is the Incident's triage state, once the operator has decided
// some.
func triageOf(g Gomega, ns, name string) *v1.TriageStatus {
	t := getIncident(g, ns, name).Status.Triage
	g.Expect(t).NotTo(BeNil(), "the operator has decided no triage on Incident %s yet", name)
	return t
}

func getIncident(g Gomega, ns, name string) *v1.Incident {
	var inc v1.Incident
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &inc)).To(Succeed())
	return &inc
}

// convertAll converts the Alerts through c from workers goroutines released
// at once.
func convertAll(c client.Client, alerts []*v1.Alert, workers int, opts incident.Options) []*incident.Result {
	results := make([]*incident.Result, len(alerts))
	jobs := make(chan int)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			defer GinkgoRecover()
			<-start
			for i := range jobs {
				res, err := incident.Convert(ctx, c, client.ObjectKeyFromObject(alerts[i]), opts)
				Expect(err).NotTo(HaveOccurred())
				results[i] = res
			}
		})
	}
	close(start)
	for i := range alerts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

func names(alerts []*v1.Alert) []string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.Name
	}
	return out
}

func count[T any](xs []T, pred func(T) bool) int {
	n := 0
	for _, x := range xs {
		if pred(x) {
			n++
		}
	}
	return n
}

var _ = Describe("Incident conversion and triage", func() {
	var (
		ns    string
		clk   *clocktesting.FakeClock
		stop  func()
		opts  incident.Options
		oc    client.Client // on-call, through the shipped role
		start = func() {
			stop = startOperator(controllers.Options{Only: incidentControllers, Clock: clk, DuplicateGCDelay: gcDelay, TriageWebhookBackoff: 10 * time.Millisecond})
		}
	)
	const olga = "olga@example.com"
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		clk = clocktesting.NewFakeClock(time.Now())
		oc = userIn(ns, olga, oncallGroup, "alertbridge-oncall")
		opts = incident.Options{Clock: clk, Caller: olga}
		start()
		DeferCleanup(func() { stop() })
	})
	convert := func(a *v1.Alert) *incident.Result {
		GinkgoHelper()
		res, err := incident.Convert(ctx, oc, client.ObjectKeyFromObject(a), opts)
		Expect(err).NotTo(HaveOccurred())
		return res
	}
	// triaged waits for the operator to have decided on every ref of the
	// Incident and returns it.
	triaged := func(name string) *v1.Incident {
		GinkgoHelper()
		var inc *v1.Incident
		Eventually(func(g Gomega) {
			inc = getIncident(g, ns, name)
			g.Expect(inc.Status.OpenedAt).NotTo(BeNil())
			g.Expect(incident.Unseen(inc)).To(BeFalse())
		}, settle, poll).Should(Succeed())
		return inc
	}

	It("turns a storm of 50 alerts of one signature into one Incident and one triage Job, the operator deciding once", func() {
		createTriageSA(ns, triageSA, true)
		createPolicy(jobPolicy(ns, stormCooldown))
		alerts := make([]*v1.Alert, 50)
		for i := range alerts {
			alerts[i] = sigAlert(ns, fmt.Sprintf("host-%02d", i), v1.SeverityP2)
		}
		skips := testutil.ToFloat64(metrics.TriageCooldownSkips)
		results := convertAll(oc, alerts, 10, opts)

		Expect(count(results, func(r *incident.Result) bool { return r.Created })).To(Equal(1))
		Expect(count(results, func(r *incident.Result) bool { return r.Appended })).To(Equal(50))
		incs := listIncidents(Default, ns)
		Expect(incs).To(HaveLen(1))
		inc := triaged(incs[0].Name)
		Expect(inc.Status.AlertCount).To(BeEquivalentTo(50))
		Expect(inc.Status.AlertRefs).To(HaveLen(50))
		Expect(inc.Status.Triage.Runs).To(BeEquivalentTo(1))
		Expect(inc.Status.Triage.ObservedAlertCount).To(BeEquivalentTo(50))
		Expect(countEntries(inc, v1.TimelineOpened, "")).To(Equal(1))
		Expect(countEntries(inc, v1.TimelineTriageStarted, "")).To(Equal(1))
		Expect(countEntries(inc, v1.TimelineAlertAppended, "")).To(Equal(50))
		for _, e := range inc.Status.Timeline {
			if e.Type == v1.TimelineAlertAppended {
				Expect(e.Author).To(Equal(olga), "entry %d", e.Seq)
			} else {
				Expect(e.Author).To(BeEmpty(), "the operator's entry %d", e.Seq)
			}
		}
		// The refs the operator saw inside the cooldown it started.
		Expect(testutil.ToFloat64(metrics.TriageCooldownSkips) - skips).To(BeNumerically("<=", 49))
		Expect(inc.Labels).To(HaveKeyWithValue(v1.SignatureLabel, incident.SignatureHash("gateway/prod/latency")))
		for _, a := range alerts {
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			Expect(a.Status.IncidentRef).To(Equal(&v1.LocalObjectReference{Name: inc.Name}))
		}

		Eventually(func(g Gomega) {
			jobs := listJobs(g, ns)
			g.Expect(jobs).To(HaveLen(1))
			job := jobs[0]
			g.Expect(job.Name).To(Equal(incident.RunName(inc.Name, 1)))
			g.Expect(job.OwnerReferences).To(ConsistOf(HaveField("UID", inc.UID)))
			g.Expect(job.Spec.Template.Spec.ServiceAccountName).To(Equal(triageSA))
			g.Expect(job.Spec.Template.Spec.Containers[0].Env).To(ContainElements(
				corev1.EnvVar{Name: incident.EnvIncident, Value: inc.Name},
				corev1.EnvVar{Name: incident.EnvSignature, Value: "gateway/prod/latency"},
				corev1.EnvVar{Name: incident.EnvAlert, Value: inc.Status.Triage.LastRunAlertRef},
			))
			cur := getIncident(g, ns, inc.Name)
			g.Expect(cur.Status.Triage.DispatchedRuns).To(BeEquivalentTo(1))
			g.Expect(meta.IsStatusConditionTrue(cur.Status.Conditions, v1.IncidentConditionTriageConfigured)).To(BeTrue())
		}, settle, poll).Should(Succeed())
		Expect(inc.Status.Triage.LastRunAlertRef).To(BeElementOf(names(alerts)))
		Consistently(func(g Gomega) {
			g.Expect(listJobs(g, ns)).To(HaveLen(1))
			g.Expect(getIncident(g, ns, inc.Name).Status.Triage.Runs).To(BeEquivalentTo(1))
		}, quietFor, poll).Should(Succeed())

		By("the same signature after the cooldown triages again")
		clk.Step(stormCooldown + time.Second)
		late := sigAlert(ns, "late", v1.SeverityP2)
		res := convert(late)
		Expect(res.Created).To(BeFalse())
		Expect(res.Appended).To(BeTrue())
		Expect(res.Incident.Name).To(Equal(inc.Name))
		Eventually(func(g Gomega) {
			g.Expect(listJobs(g, ns)).To(ConsistOf(
				HaveField("Name", incident.RunName(inc.Name, 1)),
				HaveField("Name", incident.RunName(inc.Name, 2)),
			))
			t := getIncident(g, ns, inc.Name).Status.Triage
			g.Expect(t.Runs).To(BeEquivalentTo(2))
			g.Expect(t.LastRunAlertRef).To(Equal(late.Name))
		}, settle, poll).Should(Succeed())
	})

	It("makes one Incident of racing conversions, for each of several signatures", func() {
		const signatures, perSignature = 4, 8
		var alerts []*v1.Alert
		for s := range signatures {
			for h := range perSignature {
				a := testbuild.MakeAlert("", ns).Host(fmt.Sprintf("h%d", h)).Obj()
				a.Spec.Kind = fmt.Sprintf("kind_%d", s)
				Expect(k8s.Create(ctx, a)).To(Succeed())
				alerts = append(alerts, a)
			}
		}
		results := convertAll(oc, alerts, signatures*perSignature, opts)
		Expect(count(results, func(r *incident.Result) bool { return r.Created })).To(Equal(signatures))
		incs := listIncidents(Default, ns)
		Expect(incs).To(HaveLen(signatures))
		for _, inc := range incs {
			got := triaged(inc.Name)
			Expect(got.Status.AlertCount).To(BeEquivalentTo(perSignature))
			Expect(got.Status.Triage.Runs).To(BeEquivalentTo(1))
			Expect(incident.Seq(got)).To(BeEquivalentTo(1))
		}
	})

	It("caps the severity: a P0 alert with cap P1 opens a P1 Incident; a P3 alert stays P3", func() {
		opts.SeverityCap = v1.SeverityP1
		Expect(convert(sigAlert(ns, "a", v1.SeverityP0)).Incident.Spec.Severity).To(Equal(v1.SeverityP1))
		low := testbuild.MakeAlert("", ns).Host("b").Kind("errors").Severity(v1.SeverityP3).Obj()
		Expect(k8s.Create(ctx, low)).To(Succeed())
		Expect(convert(low).Incident.Spec.Severity).To(Equal(v1.SeverityP3))
	})

	It("records state transitions, refuses a close without a note and drafts the postmortem on close", func() {
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns)) // no triage action configured
		alert := sigAlert(ns, "a", v1.SeverityP1)
		key := client.ObjectKeyFromObject(convert(alert).Incident)

		By("a run without a configured action is still recorded, with a condition saying so")
		Eventually(func(g Gomega) {
			g.Expect(triageOf(g, ns, key.Name).DispatchedRuns).To(BeEquivalentTo(1))
			inc := getIncident(g, ns, key.Name)
			c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonNoTriageAction))
			g.Expect(c.Message).To(ContainSubstring("no triage action is configured"))
		}, settle, poll).Should(Succeed())
		Expect(listJobs(Default, ns)).To(BeEmpty())

		// As kubectl edit would be retried: the operator writes the
		// Incident's status meanwhile, so an update may conflict.
		setState := func(s v1.IncidentState) error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				inc := getIncident(Default, ns, key.Name)
				inc.Spec.State = s
				return oc.Update(ctx, inc)
			})
		}
		waitState := func(s v1.IncidentState) *v1.Incident {
			var inc *v1.Incident
			Eventually(func(g Gomega) {
				inc = getIncident(g, ns, key.Name)
				g.Expect(inc.Status.ObservedState).To(Equal(s))
			}, settle, poll).Should(Succeed())
			return inc
		}
		clk.Step(time.Minute)
		Expect(setState(v1.IncidentMitigating)).To(Succeed())
		Expect(waitState(v1.IncidentMitigating).Status.MitigatingAt).NotTo(BeNil())
		clk.Step(time.Minute)
		Expect(setState(v1.IncidentResolved)).To(Succeed())
		Expect(waitState(v1.IncidentResolved).Status.ResolvedAt).NotTo(BeNil())
		err := setState(v1.IncidentMitigating)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "Resolved → Mitigating must be refused, got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.state"))
		Expect(setState(v1.IncidentOpen)).To(Succeed()) // reopen
		reopened := waitState(v1.IncidentOpen)
		Expect(reopened.Status.ResolvedAt).To(BeNil())
		Expect(countEntries(reopened, v1.TimelineStateChanged, "")).To(Equal(3))

		By("closing without a note is refused by the API server")
		err = setState(v1.IncidentClosed)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.note is required to close"))

		_, err = incident.AddNote(ctx, oc, key, "rolled back gateway v42", olga, clk)
		Expect(err).NotTo(HaveOccurred())
		clk.Step(time.Minute)
		_, err = incident.Close(ctx, oc, key, "false positive: synthetic probe misconfigured")
		Expect(err).NotTo(HaveOccurred())
		var inc *v1.Incident
		Eventually(func(g Gomega) {
			inc = getIncident(g, ns, key.Name)
			g.Expect(inc.Status.ClosedAt).NotTo(BeNil())
			g.Expect(inc.Status.PostmortemRef).NotTo(BeNil())
		}, settle, poll).Should(Succeed())
		Expect(countEntries(inc, v1.TimelineClosed, "false positive")).To(Equal(1))
		Expect(inc.Status.Timeline).To(ContainElement(MatchFields(IgnoreExtras, Fields{
			"Type": Equal(v1.TimelineNote), "Message": Equal("rolled back gateway v42"), "Author": Equal(olga),
		})))
		var cm corev1.ConfigMap
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: inc.Status.PostmortemRef.Name}, &cm)).To(Succeed())
		Expect(cm.OwnerReferences).To(ConsistOf(HaveField("UID", inc.UID)))
		md := cm.Data[incident.PostmortemKey]
		for _, want := range []string{"# Postmortem draft", "## Summary", "## Timeline", "## Linked alerts (1)", alert.Name, "## Triage runs",
			"## Durations", "Open for: 3m0s", "false positive", "| Note | " + olga + " |  | rolled back gateway v42 |"} {
			Expect(md).To(ContainSubstring(want))
		}

		Eventually(func(g Gomega) {
			g.Expect(eventReasons(g, ns, key.Name)).To(ContainElements(
				controllers.EventTriageStarted, controllers.EventStateChanged, controllers.EventClosed, controllers.EventPostmortemDrafted))
		}, settle, poll).Should(Succeed())

		By("Closed is terminal")
		Expect(apierrors.IsInvalid(setState(v1.IncidentOpen))).To(BeTrue())
	})

	It("keeps the cooldown across an operator restart and hands it to the signature's next Incident", func() {
		createTriageSA(ns, triageSA, true)
		createPolicy(jobPolicy(ns, stormCooldown))
		By("a conversion made while the operator is down is opened and triaged once it is back")
		stop()
		first := convert(sigAlert(ns, "a", v1.SeverityP2))
		Expect(first.Incident.Status.OpenedAt).To(BeNil(), "only the operator opens")
		Expect(first.Incident.Status.Triage).To(BeNil(), "only the operator decides triage")
		Expect(listJobs(Default, ns)).To(BeEmpty())
		start()
		Eventually(func(g Gomega) {
			g.Expect(listJobs(g, ns)).To(HaveLen(1))
			g.Expect(triageOf(g, ns, first.Incident.Name).DispatchedRuns).To(BeEquivalentTo(1))
		}, settle, poll).Should(Succeed())

		By("restarting the manager mid-cooldown")
		stop()
		clk.Step(stormCooldown / 2)
		start()
		for _, host := range []string{"b", "c", "d"} {
			convert(sigAlert(ns, host, v1.SeverityP2))
		}
		inc := triaged(first.Incident.Name)
		Expect(inc.Status.AlertCount).To(BeEquivalentTo(4))
		Consistently(func(g Gomega) {
			g.Expect(listJobs(g, ns)).To(HaveLen(1))
			g.Expect(getIncident(g, ns, first.Incident.Name).Status.Triage.Runs).To(BeEquivalentTo(1))
		}, quietFor, poll).Should(Succeed())

		By("a new Incident of the signature inherits the running cooldown")
		_, err := incident.Close(ctx, oc, client.ObjectKeyFromObject(first.Incident), "fixed")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			g.Expect(getIncident(g, ns, first.Incident.Name).Status.ObservedState).To(Equal(v1.IncidentClosed))
		}, settle, poll).Should(Succeed())
		closed := getIncident(Default, ns, first.Incident.Name)
		Expect(incident.DeletableAt(closed, time.Second)).To(BeTemporally(">=", closed.Status.Triage.CooldownUntil.Time))
		second := convert(sigAlert(ns, "e", v1.SeverityP2))
		Expect(second.Created).To(BeTrue())
		Expect(second.Incident.Name).To(Equal(incident.Name("gateway/prod/latency", 2)))
		next := triaged(second.Incident.Name)
		Expect(next.Status.Triage.CooldownUntil.Time).To(BeTemporally("==", closed.Status.Triage.CooldownUntil.Time))
		Expect(next.Status.Triage.Runs).To(BeZero())
		Expect(countEntries(next, v1.TimelineOpened, "(inherited)")).To(Equal(1))
		Consistently(func(g Gomega) { g.Expect(listJobs(g, ns)).To(HaveLen(1)) }, quietFor, poll).Should(Succeed())

		By("once the inherited cooldown ends, the next alert triages the new Incident")
		clk.Step(stormCooldown)
		convert(sigAlert(ns, "f", v1.SeverityP2))
		Eventually(func(g Gomega) {
			g.Expect(listJobs(g, ns)).To(ContainElement(HaveField("Name", incident.RunName(second.Incident.Name, 1))))
		}, settle, poll).Should(Succeed())
	})

	It("runs no Job as a ServiceAccount the namespace admin did not mark", func() {
		createTriageSA(ns, triageSA, false)
		createPolicy(jobPolicy(ns, stormCooldown))
		res := convert(sigAlert(ns, "a", v1.SeverityP2))
		Eventually(func(g Gomega) {
			inc := getIncident(g, ns, res.Incident.Name)
			c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(v1.ReasonServiceAccountNotAllowed))
			g.Expect(c.Message).To(ContainSubstring(v1.TriageServiceAccountAnnotation))
		}, settle, poll).Should(Succeed())
		Consistently(func(g Gomega) { g.Expect(listJobs(g, ns)).To(BeEmpty()) }, quietFor, poll).Should(Succeed())
	})

	It("starts no run for a ref to an Alert that is not linked to the Incident, nor for a triage on-call writes", func() {
		createTriageSA(ns, triageSA, true)
		createPolicy(jobPolicy(ns, stormCooldown))
		inc := testbuild.MakeIncident("manual", ns).Title("customers report 502s").Signature("gateway/prod/manual").Obj()
		Expect(oc.Create(ctx, inc)).To(Succeed())
		triaged("manual")
		elsewhere := sigAlert(ns, "elsewhere", v1.SeverityP1) // linked to nothing

		By("on-call appends refs by hand, as kubectl would: one to no Alert, one to an Alert not linked here")
		for _, ref := range []string{"no-such-alert", elsewhere.Name} {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur := getIncident(Default, ns, "manual")
				orig := cur.DeepCopy()
				Expect(incident.AppendAlert(cur, ref, clk.Now(), olga)).To(BeTrue())
				return oc.Status().Patch(ctx, cur, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
			})).To(Succeed())
		}
		inc = triaged("manual")
		Expect(inc.Status.AlertCount).To(BeEquivalentTo(2))
		Expect(inc.Status.Triage.ObservedAlertCount).To(BeEquivalentTo(2))

		By("on-call writes a run into status.triage: refused by the API server")
		forged := fmt.Appendf(nil, `{"status":{"triage":{"runs":1,"observedAlertCount":2,"lastRunRef":{"name":"pwn"},"lastRunAlertRef":"$(id)","lastTriageAt":%q}}}`,
			clk.Now().UTC().Format(time.RFC3339))
		Expect(oc.Status().Patch(ctx, inc, client.RawPatch(types.MergePatchType, forged))).
			To(MatchError(ContainSubstring("status.triage: only the alertbridge operator writes this")))
		Consistently(func(g Gomega) {
			g.Expect(listJobs(g, ns)).To(BeEmpty())
			g.Expect(getIncident(g, ns, "manual").Status.Triage.Runs).To(BeZero())
		}, quietFor, poll).Should(Succeed())

		By("an Alert converted into it starts the run")
		opts.Signature = "gateway/prod/manual"
		linked := sigAlert(ns, "linked", v1.SeverityP1)
		Expect(convert(linked).Incident.Name).To(Equal("manual"))
		Eventually(func(g Gomega) {
			jobs := listJobs(g, ns)
			g.Expect(jobs).To(HaveLen(1))
			g.Expect(jobs[0].Name).To(Equal(incident.RunName("manual", 1)))
			g.Expect(jobs[0].Spec.Template.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: incident.EnvAlert, Value: linked.Name}))
		}, settle, poll).Should(Succeed())
	})

	It("leaves no Incident and no Job behind when the Alert's holder is someone else", func() {
		createTriageSA(ns, triageSA, true)
		createPolicy(jobPolicy(ns, stormCooldown))
		held := sigAlert(ns, "held", v1.SeverityP1)
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(held), held)).To(Succeed())
			g.Expect(held.Status.Phase).To(Equal(v1.AlertNew))
		}, settle, poll).Should(Succeed())
		supervisor := agent(ns, "system:serviceaccount:ops:supervisor")
		got, err := supervisor.Claim(ctx, claim.Request{Namespace: ns, Limit: 1, Owner: "triage-supervisor", LockTTL: time.Hour})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(HaveLen(1))

		By("the conversion checks the holder first")
		_, err = incident.Convert(ctx, oc, client.ObjectKeyFromObject(held), opts)
		var nh *alertstate.NotHolderError
		Expect(errors.As(err, &nh)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("is held by system:serviceaccount:ops:supervisor (owner triage-supervisor)"))
		Expect(err.Error()).To(ContainSubstring("only the holder may convert it"))

		By("without that check, the API server refuses the link, which comes first")
		noCheck := opts
		noCheck.Caller = ""
		_, err = incident.Convert(ctx, oc, client.ObjectKeyFromObject(held), noCheck)
		Expect(err).To(MatchError(ContainSubstring("is held by system:serviceaccount:ops:supervisor (owner triage-supervisor)")))
		Consistently(func(g Gomega) {
			g.Expect(listIncidents(g, ns)).To(BeEmpty())
			g.Expect(listJobs(g, ns)).To(BeEmpty())
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(held), held)).To(Succeed())
			g.Expect(held.Status.IncidentRef).To(BeNil())
		}, quietFor, poll).Should(Succeed())

		By("once the holder has acked it, on-call converts it")
		_, err = supervisor.Ack(ctx, client.ObjectKeyFromObject(held), "triage-supervisor", "escalating")
		Expect(err).NotTo(HaveOccurred())
		res := convert(held)
		Expect(res.Created).To(BeTrue())
		Eventually(func(g Gomega) { g.Expect(listJobs(g, ns)).To(HaveLen(1)) }, settle, poll).Should(Succeed())
	})

	// webhookReceiver answers each POST with answer(n), n counting the POSTs
	// of the run's signature; it records bodies and headers.
	type webhookReceiver struct {
		*httptest.Server
		mu      sync.Mutex
		posts   map[string]int
		bodies  []incident.Run
		headers []http.Header
	}
	newReceiver := func(answer func(sig string, n int) int) *webhookReceiver {
		r := &webhookReceiver{posts: map[string]int{}}
		r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			defer GinkgoRecover()
			var run incident.Run
			Expect(json.NewDecoder(req.Body).Decode(&run)).To(Succeed())
			r.mu.Lock()
			defer r.mu.Unlock()
			r.posts[run.Signature]++
			r.bodies, r.headers = append(r.bodies, run), append(r.headers, req.Header.Clone())
			w.WriteHeader(answer(run.Signature, r.posts[run.Signature]))
		}))
		DeferCleanup(r.Close)
		return r
	}
	postsOf := func(r *webhookReceiver, sig string) func() int {
		return func() int {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.posts[sig]
		}
	}
	webhookPolicy := func(url string) {
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: ns},
			StringData: map[string]string{"token": "s3cret"},
		})).To(Succeed())
		grant(ns, controllers.CredentialsRole)
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).TriageWebhook(url+"/triage", "hook"))
	}
	delivery := func(g Gomega, name string) *v1.WebhookDelivery {
		inc := getIncident(g, ns, name)
		g.Expect(inc.Status.Triage).NotTo(BeNil())
		g.Expect(inc.Status.Triage.Webhook).NotTo(BeNil())
		return inc.Status.Triage.Webhook
	}

	It("retries a failing triage webhook across reconciles, one attempt each, recording the attempts in status", func() {
		hook := newReceiver(func(_ string, n int) int {
			if n < 3 {
				return http.StatusServiceUnavailable
			}
			return http.StatusAccepted
		})
		webhookPolicy(hook.URL)
		alert := sigAlert(ns, "a", v1.SeverityP1)
		res := convert(alert)
		name, sig := res.Incident.Name, res.Incident.Spec.Signature

		for attempt := 1; attempt <= 2; attempt++ {
			By(fmt.Sprintf("attempt %d fails: it is recorded, and the next waits for nextAttemptAt", attempt))
			Eventually(func(g Gomega) {
				d := delivery(g, name)
				g.Expect(d.Attempts).To(BeEquivalentTo(attempt))
				g.Expect(d.LastError).To(Equal("webhook answered HTTP 503 (Service Unavailable)"))
				g.Expect(d.NextAttemptAt).NotTo(BeNil())
				g.Expect(d.DeliveredAt).To(BeNil())
				inc := getIncident(g, ns, name)
				g.Expect(inc.Status.Triage.DispatchedRuns).To(BeEquivalentTo(0))
				c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(metav1.ConditionUnknown))
				g.Expect(c.Reason).To(Equal(v1.ReasonWebhookRetrying))
				g.Expect(c.Message).To(ContainSubstring(fmt.Sprintf("attempt %d of %d failed", attempt, incident.WebhookAttempts)))
			}, settle, poll).Should(Succeed())
			// The operator's clock has not reached nextAttemptAt: nothing
			// waits and retries inside a worker.
			Consistently(postsOf(hook, sig), quietFor, poll).Should(Equal(attempt))
			clk.Step(time.Minute)
		}

		By("the third attempt is delivered: the run is dispatched")
		Eventually(func(g Gomega) {
			d := delivery(g, name)
			g.Expect(d.Attempts).To(BeEquivalentTo(3))
			g.Expect(d.DeliveredAt).NotTo(BeNil())
			g.Expect(d.NextAttemptAt).To(BeNil())
			g.Expect(d.LastError).To(BeEmpty())
			inc := getIncident(g, ns, name)
			g.Expect(inc.Status.Triage.DispatchedRuns).To(BeEquivalentTo(1))
			c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(v1.ReasonWebhookDelivered))
		}, settle, poll).Should(Succeed())
		clk.Step(time.Hour)
		Consistently(postsOf(hook, sig), quietFor, poll).Should(Equal(3))
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for i := range hook.bodies {
			Expect(hook.bodies[i]).To(MatchFields(IgnoreExtras, Fields{
				"Run": Equal(incident.RunName(name, 1)), "Incident": Equal(name), "Namespace": Equal(ns),
				"Signature": Equal("gateway/prod/latency"), "Alert": Equal(alert.Name), "Severity": Equal(v1.SeverityP1),
			}))
			Expect(hook.headers[i].Get("Authorization")).To(Equal("Bearer s3cret"))
			Expect(hook.headers[i].Get("Idempotency-Key")).To(Equal(incident.RunName(name, 1)), "every attempt carries the run's key")
		}
	})

	It("gives up on a triage webhook that never accepts after its attempts, with the WebhookFailed condition", func() {
		hook := newReceiver(func(string, int) int { return http.StatusBadGateway })
		webhookPolicy(hook.URL)
		res := convert(sigAlert(ns, "a", v1.SeverityP1))
		name, sig := res.Incident.Name, res.Incident.Spec.Signature
		for attempt := 1; attempt < incident.WebhookAttempts; attempt++ {
			Eventually(func(g Gomega) {
				g.Expect(delivery(g, name).Attempts).To(BeEquivalentTo(attempt))
			}, settle, poll).Should(Succeed())
			clk.Step(incident.WebhookMaxBackoff)
		}
		Eventually(func(g Gomega) {
			d := delivery(g, name)
			g.Expect(d.Attempts).To(BeEquivalentTo(incident.WebhookAttempts))
			g.Expect(d.NextAttemptAt).To(BeNil())
			g.Expect(d.DeliveredAt).To(BeNil())
			inc := getIncident(g, ns, name)
			g.Expect(inc.Status.Triage.DispatchedRuns).To(BeEquivalentTo(1))
			c := meta.FindStatusCondition(inc.Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(v1.ReasonWebhookFailed))
			g.Expect(c.Message).To(Equal(fmt.Sprintf("triage webhook failed after %d attempts: webhook answered HTTP 502 (Bad Gateway)", incident.WebhookAttempts)))
			g.Expect(eventReasons(g, ns, name)).To(ContainElement(controllers.EventTriageWebhookFail))
		}, settle, poll).Should(Succeed())
		clk.Step(time.Hour)
		Consistently(postsOf(hook, sig), quietFor, poll).Should(Equal(incident.WebhookAttempts))
	})

	// opConn is the operator's own client, for writes the specs make in its
	// place (the mirror's cursor; a timeline a long outage filled).
	opConn := func() client.Client {
		c, err := client.New(env.Operator, client.Options{Scheme: scheme})
		Expect(err).NotTo(HaveOccurred())
		return c
	}

	It("bounds the timeline to the newest 100, and with the mirror on trims only mirrored entries", func() {
		key := client.ObjectKeyFromObject(convert(sigAlert(ns, "a", v1.SeverityP2)).Incident)
		Eventually(func(g Gomega) {
			g.Expect(triageOf(g, ns, key.Name).DispatchedRuns).To(BeEquivalentTo(1))
		}, settle, poll).Should(Succeed())
		base := triaged(key.Name).Status.TimelineSeq // AlertAppended, Opened, TriageStarted
		addNotes := func(n int) {
			for i := range n {
				// On-call only appends; the operator trims.
				_, err := incident.AddNote(ctx, oc, key, fmt.Sprintf("note %d", i), olga, clk)
				Expect(err).NotTo(HaveOccurred())
			}
		}
		addNotes(110)
		Eventually(func(g Gomega) {
			inc := getIncident(g, ns, key.Name)
			g.Expect(inc.Status.TimelineSeq).To(Equal(base + 110))
			g.Expect(inc.Status.Timeline).To(HaveLen(incident.MaxTimeline))
			g.Expect(inc.Status.Timeline[0].Seq).To(Equal(base + 11))
		}, settle, poll).Should(Succeed())

		By("with the mirror on, entries the mirror has not written stay")
		stop()
		stop = startOperator(controllers.Options{Only: incidentControllers, Clock: clk, DuplicateGCDelay: gcDelay, MirrorEnabled: true})
		addNotes(20) // 120 entries, none mirrored
		Consistently(func(g Gomega) {
			g.Expect(getIncident(g, ns, key.Name).Status.Timeline).To(HaveLen(120))
		}, quietFor, poll).Should(Succeed())
		// As the mirror records it, as the operator: a merge patch of the one field.
		mirrored := fmt.Appendf(nil, `{"status":{"mirroredTimelineSeq":%d}}`, base+18)
		Expect(opConn().Status().Patch(ctx, getIncident(Default, ns, key.Name), client.RawPatch(types.MergePatchType, mirrored))).To(Succeed())
		Eventually(func(g Gomega) {
			inc := getIncident(g, ns, key.Name)
			g.Expect(inc.Status.Timeline).To(HaveLen(112))
			g.Expect(inc.Status.Timeline[0].Seq).To(Equal(base + 19))
		}, settle, poll).Should(Succeed())
	})

	It("folds below the CRD's cap so on-call always has room, and refuses an append past it until the operator folds", func() {
		// The mirror is on but has written nothing (PostgreSQL down): the
		// operator may trim no entry, so only its fold cap bounds the timeline.
		stop()
		stop = startOperator(controllers.Options{Only: incidentControllers, Clock: clk, DuplicateGCDelay: gcDelay, MirrorEnabled: true})
		key := client.ObjectKeyFromObject(convert(sigAlert(ns, "a", v1.SeverityP2)).Incident)
		Eventually(func(g Gomega) {
			g.Expect(triageOf(g, ns, key.Name).DispatchedRuns).To(BeEquivalentTo(1))
		}, settle, poll).Should(Succeed())

		// fill writes the operator's entries up to n, as a long outage would
		// leave them, in the operator's place.
		fill := func(n int) int64 {
			var filled int64
			Eventually(func() error {
				inc := getIncident(Default, ns, key.Name)
				orig := inc.DeepCopy()
				for i := len(inc.Status.Timeline); i < n; i++ {
					incident.AddEntry(inc, clk.Now().Add(time.Duration(i)*time.Millisecond), v1.TimelineStateChanged, fmt.Sprintf("while PostgreSQL is down %d", i), "")
				}
				inc.Status.ObservedTimelineSeq = inc.Status.TimelineSeq
				filled = inc.Status.TimelineSeq
				return opConn().Status().Patch(ctx, inc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
			}, settle, poll).Should(Succeed())
			return filled
		}

		By("filling the timeline to two entries below the fold cap")
		filled := fill(incident.MaxTimelineEntries - 2)
		Expect(filled).To(BeEquivalentTo(incident.MaxTimelineEntries - 2))

		By("on-call keeps writing notes past the fold cap, with the role's patch verb; the operator folds")
		before := testutil.ToFloat64(metrics.TimelineSummarised)
		const notes = 12
		for i := range notes {
			clk.Step(time.Second)
			_, err := incident.AddNote(ctx, oc, key, fmt.Sprintf("past the cap %d", i), olga, clk)
			Expect(err).NotTo(HaveOccurred())
		}
		var got *v1.Incident
		Eventually(func(g Gomega) {
			got = getIncident(g, ns, key.Name)
			g.Expect(got.Status.Timeline).To(HaveLen(incident.MaxTimelineEntries))
			g.Expect(got.Status.ObservedTimelineSeq).To(Equal(filled + notes))
		}, settle, poll).Should(Succeed())
		tl := got.Status.Timeline
		Expect(got.Status.TimelineSeq).To(Equal(filled + notes))
		summary := tl[0]
		Expect(summary.Type).To(Equal(v1.TimelineSummary))
		// 10 notes beyond the fold cap: 11 entries folded into one, however
		// many operator writes it took.
		Expect(summary.Summary).To(PointTo(MatchFields(IgnoreExtras, Fields{"FirstSeq": BeEquivalentTo(1), "Count": BeEquivalentTo(notes - 1)})))
		Expect(summary.Seq).To(BeEquivalentTo(notes - 1))
		Expect(summary.Message).To(ContainSubstring(fmt.Sprintf("%d timeline entries (seq 1 to %d", notes-1, notes-1)))
		Expect(tl[1].Seq).To(Equal(summary.Seq + 1))
		Expect(tl[len(tl)-1]).To(MatchFields(IgnoreExtras, Fields{"Message": Equal(fmt.Sprintf("past the cap %d", notes-1)), "Author": Equal(olga)}))
		// The operator counts folded entries once its write has returned,
		// which may be just after this spec read the Incident.
		Eventually(func() float64 { return testutil.ToFloat64(metrics.TimelineSummarised) - before }, settle, poll).Should(BeEquivalentTo(notes - 1))

		By("with the operator down, an append past the CRD's cap waits, then says why")
		stop()
		fill(incident.TimelineItems)
		_, err := incident.AddNote(ctx, oc, key, "one too many", olga, clk)
		Expect(err).To(MatchError(incident.ErrTimelineFull))
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "the CLI and HTTP API answer it as a write to retry (exit 5, 503)")
		stop = startOperator(controllers.Options{Only: incidentControllers, Clock: clk, DuplicateGCDelay: gcDelay, MirrorEnabled: true})
		Eventually(func(g Gomega) {
			g.Expect(getIncident(g, ns, key.Name).Status.Timeline).To(HaveLen(incident.MaxTimelineEntries))
		}, settle, poll).Should(Succeed())
		_, err = incident.AddNote(ctx, oc, key, "room again", olga, clk)
		Expect(err).NotTo(HaveOccurred())

		By("the mirror catches up: the summary and the rest go, down to the newest 100")
		got = getIncident(Default, ns, key.Name)
		mirrored := fmt.Appendf(nil, `{"status":{"mirroredTimelineSeq":%d}}`, got.Status.TimelineSeq)
		Expect(opConn().Status().Patch(ctx, got, client.RawPatch(types.MergePatchType, mirrored))).To(Succeed())
		Eventually(func(g Gomega) {
			tl := getIncident(g, ns, key.Name).Status.Timeline
			g.Expect(tl).To(HaveLen(incident.MaxTimeline))
			g.Expect(tl[0].Type).NotTo(Equal(v1.TimelineSummary))
		}, settle, poll).Should(Succeed())
	})

	It("reports an invalid job template with the API server's field error", func() {
		createTriageSA(ns, triageSA, true)
		tmpl := triageJobTemplate()
		tmpl.Spec.Template.Spec.Containers = nil
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).TriageCooldown(stormCooldown).TriageJob(triageSA, tmpl))
		res := convert(sigAlert(ns, "a", v1.SeverityP2))
		Eventually(func(g Gomega) {
			c := meta.FindStatusCondition(getIncident(g, ns, res.Incident.Name).Status.Conditions, v1.IncidentConditionTriageConfigured)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(v1.ReasonInvalidJobTemplate))
			g.Expect(c.Message).To(ContainSubstring("spec.template.spec.containers"))
		}, settle, poll).Should(Succeed())
		Expect(listJobs(Default, ns)).To(BeEmpty())
	})

	It("opens an Incident created with kubectl, and triages it when an Alert is converted into it", func() {
		inc := testbuild.MakeIncident("manual", ns).Title("customers report 502s").Signature("gateway/prod/manual").Obj()
		Expect(oc.Create(ctx, inc)).To(Succeed())
		Eventually(func(g Gomega) {
			got := getIncident(g, ns, "manual")
			g.Expect(got.Labels).To(HaveKeyWithValue(v1.SignatureLabel, incident.SignatureHash("gateway/prod/manual")))
			g.Expect(got.Status.OpenedAt).NotTo(BeNil())
			g.Expect(countEntries(got, v1.TimelineOpened, "")).To(Equal(1))
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1.IncidentConditionReady)).To(BeTrue())
		}, settle, poll).Should(Succeed())
		Expect(getIncident(Default, ns, "manual").Status.Triage).To(BeNil(), "no Alert, no run")
		opts.Signature = "gateway/prod/manual"
		Expect(convert(sigAlert(ns, "a", v1.SeverityP2)).Incident.Name).To(Equal("manual"))
		Eventually(func(g Gomega) {
			got := getIncident(g, ns, "manual")
			g.Expect(got.Status.Triage).NotTo(BeNil())
			g.Expect(got.Status.Triage.Runs).To(BeEquivalentTo(1))
			g.Expect(got.Status.Triage.DispatchedRuns).To(BeEquivalentTo(1))
		}, settle, poll).Should(Succeed())
	})
})

var _ = Describe("Automatic Incident conversion", func() {
	var ns string
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		stop := startOperator(controllers.Options{Only: incidentControllers, DuplicateGCDelay: gcDelay})
		DeferCleanup(func() { stop() })
	})

	It("is off without a policy asking for it", func() {
		a := sigAlert(ns, "a", v1.SeverityP0)
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.IncidentRef).To(BeNil())
		}, quietFor, poll).Should(Succeed())
		Expect(listIncidents(Default, ns)).To(BeEmpty())
	})

	It("converts an Alert once it reaches minOccurrences at or above minSeverity", func() {
		createPolicy(testbuild.MakeAlertRoutingPolicy(ns).AutoIncident(2, v1.SeverityP2))
		minor := testbuild.MakeAlert("", ns).Host("quiet").Severity(v1.SeverityP3).Obj()
		Expect(k8s.Create(ctx, minor)).To(Succeed())
		minorAgain := testbuild.MakeAlert("", ns).Host("quiet").Severity(v1.SeverityP3).Obj()
		Expect(k8s.Create(ctx, minorAgain)).To(Succeed())
		first := sigAlert(ns, "loud", v1.SeverityP1)
		Consistently(func(g Gomega) { g.Expect(listIncidents(g, ns)).To(BeEmpty()) }, quietFor, poll).Should(Succeed())

		second := testbuild.MakeAlert("", ns).Host("loud").Severity(v1.SeverityP1).Obj()
		Expect(k8s.Create(ctx, second)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(first), first)).To(Succeed())
			g.Expect(first.Status.Occurrences).To(BeEquivalentTo(2))
			g.Expect(first.Status.Phase).To(Equal(v1.AlertNew))
			g.Expect(first.Status.IncidentRef).NotTo(BeNil())
			inc := getIncident(g, ns, first.Status.IncidentRef.Name)
			g.Expect(inc.Spec.Severity).To(Equal(v1.SeverityP1))
			g.Expect(inc.Status.AlertRefs).To(Equal([]string{first.Name}))
		}, settle, poll).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(listIncidents(g, ns)).To(HaveLen(1))
		}, quietFor, poll).Should(Succeed())
	})
})
