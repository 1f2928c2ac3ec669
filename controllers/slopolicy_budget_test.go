package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/slo"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// budgetControllers are the controllers these specs test: error budgets, whose burns are Alerts.
var budgetControllers = []controllers.Controller{controllers.AlertController, controllers.SLOPolicyController}

// burnFlip bounds how long a burn takes to start or stop paging: the long
// page window (60s) filling past 14.4× the budget, the next evaluation
// (15s) and slack for 2 cores.
const burnFlip = 3 * time.Minute

// Error shares of promtest.Requests, per 10000 requests.
const (
	steadyErrors = 5   // 0.05%: burns the 99.9% budget at 0.5
	spikeErrors  = 200 // 2%: burns it at 20
)

// budgetPolicy is an availability objective of 99.9% with the workbook's
// page conditions scaled from hours to seconds (1h/5m → 60s/10s, 6h/30m →
// 2m/20s, same factors), so a real Prometheus fills them within a minute.
func budgetPolicy(ns, service, url string) *v1.SLOPolicy {
	return testbuild.MakeSLOPolicy(service, ns).Service(service).Env("staging").PrometheusURL(url).
		NoObjectives().Availability("99.9", "10m").
		PageWindows(v1.BurnRateWindow{Long: "60s", Short: "10s", Factor: "14.4"}, v1.BurnRateWindow{Long: "2m", Short: "20s", Factor: "6"}).
		TicketWindows(v1.BurnRateWindow{Long: "5m", Short: "30s", Factor: "1"}).DisableBurn(v1.BurnTicket).
		GateMode(v1.GateStrict).NoData(v1.NoDataBlock).BlockOnBurn(v1.BurnPage).
		EvaluationInterval(slo.MinEvaluationInterval).Obj()
}

func burnAlerts(g Gomega, ns string) []v1.Alert {
	var list v1.AlertList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []v1.Alert
	for _, a := range list.Items {
		if a.Spec.Kind == v1.AlertKindSLOBurn {
			out = append(out, a)
		}
	}
	return out
}

var _ = Describe("SLOPolicy error budgets against a real Prometheus", Ordered, func() {
	var (
		reqs    *promtest.Requests
		prom    *promtest.Server
		stopOp  func()
		stopExp func()
		ns      string
	)

	BeforeAll(func() {
		reqs = promtest.NewRequests("staging")
		reqs.Set("checkout", steadyErrors)
		addr, stop, err := reqs.Serve()
		Expect(err).NotTo(HaveOccurred())
		stopExp = stop
		prom, err = promtest.Start(ctx, addr)
		Expect(err).NotTo(HaveOccurred())
		stopOp = startOperator(controllers.Options{Only: budgetControllers})
		ns = testbuild.Namespace(Default, k8s, "ctl-")
		// The namespace allows only latency Alerts: the operator's own
		// slo_burn Alerts are exempt from allowedKinds.
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).AllowedKinds("latency").Obj())).To(Succeed())
	})

	AfterAll(func() {
		if stopOp != nil {
			stopOp()
		}
		if prom != nil {
			prom.Stop()
		}
		if stopExp != nil {
			stopExp()
		}
	})

	It("leaves a steady 0.05% alone, pages on a 2% spike and blocks, and resolves and reopens on recovery", func() {
		p := budgetPolicy(ns, "checkout", prom.URL())
		Expect(k8s.Create(ctx, p)).To(Succeed())
		key := client.ObjectKeyFromObject(p)

		By("a steady 0.05% error rate: half the budget's pace, no page, the gate open")
		Eventually(func(g Gomega) {
			var got v1.SLOPolicy
			g.Expect(k8s.Get(ctx, key, &got)).To(Succeed())
			g.Expect(got.Status.Gate).NotTo(BeNil())
			g.Expect(got.Status.Gate.Decision).To(Equal(v1.DecisionAllow))
			g.Expect(got.Status.Objectives).To(HaveLen(1))
			o := got.Status.Objectives[0]
			g.Expect(o.SLIPercent).To(Equal("99.95"))
			g.Expect(o.ErrorBudgetRemainingPercent).To(Equal("50"))
			g.Expect(o.ErrorBudgetRemainingMinutes).To(Equal("0.005")) // half of 10m × 0.1%
			g.Expect(o.BurnRates).To(ContainElement(v1.BurnRateStatus{Window: "10s", Rate: "0.5"}))
			g.Expect(got.Status.ErrorBudgetRemainingPercent).To(Equal("50"))
		}, burnFlip, poll).Should(Succeed())
		Consistently(func(g Gomega) {
			var got v1.SLOPolicy
			g.Expect(k8s.Get(ctx, key, &got)).To(Succeed())
			g.Expect(got.Status.Objectives[0].Burning).To(BeEmpty())
			g.Expect(got.Status.Gate.Decision).To(Equal(v1.DecisionAllow))
			g.Expect(burnAlerts(g, ns)).To(BeEmpty())
		}, 2*slo.MinEvaluationInterval, time.Second).Should(Succeed())

		By("a 2% spike: burning at 20× pages (an slo_burn Alert, P1) and the gate blocks on the burn")
		reqs.Set("checkout", spikeErrors)
		var alertName string
		Eventually(func(g Gomega) {
			var got v1.SLOPolicy
			g.Expect(k8s.Get(ctx, key, &got)).To(Succeed())
			g.Expect(got.Status.Gate.Decision).To(Equal(v1.DecisionBlock))
			g.Expect(got.Status.Gate.Reason).To(Equal(v1.ReasonErrorBudgetBurning))
			g.Expect(got.Status.Gate.Message).To(ContainSubstring("availability error budget burning (page)"))
			g.Expect(got.Status.BurnAlerts).To(HaveLen(1))
			g.Expect(got.Status.BurnAlerts[0].Condition).To(Equal(v1.BurnPage))
			g.Expect(got.Status.BurnAlerts[0].AlertRef).NotTo(BeEmpty())
			alertName = got.Status.BurnAlerts[0].AlertRef
		}, burnFlip, poll).Should(Succeed())
		var a v1.Alert
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: alertName}, &a)).To(Succeed())
		Expect(a.Spec.Kind).To(Equal(v1.AlertKindSLOBurn))
		Expect(a.Spec.Severity).To(Equal(v1.SeverityP1))
		Expect(a.Spec.Labels).To(HaveKeyWithValue(v1.SLOBurnPolicyLabel, "checkout"))
		Expect(a.Spec.Labels).To(HaveKeyWithValue(v1.SLOBurnConditionLabel, "page"))
		Expect(a.Labels).To(HaveKeyWithValue(v1.OriginLabel, v1.OriginOperator))
		Expect(a.Spec.Message).To(ContainSubstring("burn rate"))
		// The normal pipeline decided it, as any other Alert.
		Eventually(func(g Gomega) v1.AlertPhase {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&a), &a)).To(Succeed())
			return a.Status.Phase
		}, settle, poll).Should(Equal(v1.AlertNew))
		// The disabled ticket raised nothing; one page is one Alert.
		Consistently(func(g Gomega) []v1.Alert { return burnAlerts(g, ns) }, 2*time.Second, poll).Should(HaveLen(1))

		By("recovery: the page clears, the Alert is resolved as at its source and the gate reopens")
		reqs.Set("checkout", steadyErrors)
		Eventually(func(g Gomega) {
			var got v1.SLOPolicy
			g.Expect(k8s.Get(ctx, key, &got)).To(Succeed())
			g.Expect(got.Status.BurnAlerts).To(BeEmpty())
			g.Expect(got.Status.Gate.Decision).To(Equal(v1.DecisionAllow))
		}, burnFlip, poll).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&a), &a)).To(Succeed())
			g.Expect(a.Status.ResolvedAt).NotTo(BeNil())
			g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, v1.AlertConditionResolved)).To(BeTrue())
			g.Expect(a.Status.Phase).To(Equal(v1.AlertAcked))
			g.Expect(a.Status.Ack.By).To(Equal(controllers.BurnResolvedBy))
		}, settle, poll).Should(Succeed())
	})

	It("resolves the page of a policy deleted while it burns, and of one deleted while the operator was down", func() {
		// Each burning policy's firing key lives in its status, which goes
		// with it: only the sweep of the policy's Alerts can end its page.
		paging := func(service string) *v1.Alert {
			GinkgoHelper()
			reqs.Set(service, spikeErrors)
			p := budgetPolicy(ns, service, prom.URL())
			Expect(k8s.Create(ctx, p)).To(Succeed())
			var a v1.Alert
			Eventually(func(g Gomega) {
				var got v1.SLOPolicy
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
				g.Expect(got.Status.BurnAlerts).To(HaveLen(1))
				g.Expect(got.Status.BurnAlerts[0].AlertRef).NotTo(BeEmpty())
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: got.Status.BurnAlerts[0].AlertRef}, &a)).To(Succeed())
				g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
				g.Expect(a.Status.Firing).NotTo(BeNil())
				g.Expect(a.Status.Firing.Instances).To(HaveLen(1))
			}, burnFlip, poll).Should(Succeed())
			return &a
		}
		resolved := func(a *v1.Alert) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				g.Expect(meta.IsStatusConditionTrue(a.Status.Conditions, v1.AlertConditionResolved)).To(BeTrue())
				g.Expect(a.Status.Phase).To(Equal(v1.AlertAcked))
				g.Expect(a.Status.Ack.By).To(Equal(controllers.BurnResolvedBy))
				g.Expect(a.Status.Firing.Instances).To(BeEmpty())
			}, settle, poll).Should(Succeed())
		}
		reqs.Set("search", spikeErrors) // its windows fill while payments pages
		running, stopped := paging("payments"), paging("search")
		Consistently(func(g Gomega) {
			for _, a := range []*v1.Alert{running, stopped} {
				g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
				g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
				g.Expect(a.Status.Firing.Instances).To(HaveLen(1))
			}
		}, 2*slo.MinEvaluationInterval, time.Second).Should(Succeed(), "the evaluations' sweeps leave a live policy's page alone")

		By("deleted while the operator runs: the deletion's reconcile resolves the page")
		Expect(k8s.Delete(ctx, testbuild.MakeSLOPolicy("payments", ns).Obj())).To(Succeed())
		resolved(running)

		By("deleted while the operator is down: the Alert, seen again at start, leads to the sweep")
		stopOp()
		stopOp = nil
		Expect(k8s.Delete(ctx, testbuild.MakeSLOPolicy("search", ns).Obj())).To(Succeed())
		Consistently(func(g Gomega) []string {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(stopped), stopped)).To(Succeed())
			return stopped.Status.Firing.Instances
		}, quietFor, poll).Should(HaveLen(1), "nothing resolves it while the operator is down")
		stopOp = startOperator(controllers.Options{Only: budgetControllers})
		resolved(stopped)
	})
})
