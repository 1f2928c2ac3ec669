package v1alpha1_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func keyOf(o client.Object) client.ObjectKey { return client.ObjectKeyFromObject(o) }

// validIncident is a P1 Incident of the gateway, not yet created.
func validIncident(ns string) *testbuild.IncidentWrapper {
	return testbuild.MakeIncident("", ns).Severity(v1.SeverityP1)
}

var _ = Describe("Incident validation", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	It("defaults to Open", func() {
		inc := validIncident(ns).Obj()
		Expect(k8s.Create(ctx, inc)).To(Succeed())
		Expect(inc.Spec.State).To(Equal(v1.IncidentOpen))
	})

	states := []v1.IncidentState{v1.IncidentOpen, v1.IncidentMitigating, v1.IncidentResolved, v1.IncidentClosed}
	legal := map[v1.IncidentState][]v1.IncidentState{
		v1.IncidentOpen:       {v1.IncidentMitigating, v1.IncidentResolved, v1.IncidentClosed},
		v1.IncidentMitigating: {v1.IncidentOpen, v1.IncidentResolved, v1.IncidentClosed},
		v1.IncidentResolved:   {v1.IncidentOpen, v1.IncidentClosed},
	}
	pathTo := map[v1.IncidentState][]v1.IncidentState{
		v1.IncidentOpen:       nil,
		v1.IncidentMitigating: {v1.IncidentMitigating},
		v1.IncidentResolved:   {v1.IncidentResolved},
		v1.IncidentClosed:     {v1.IncidentClosed},
	}
	for _, from := range states {
		for _, to := range states {
			if from == to {
				continue
			}
			allowed := false
			for _, s := range legal[from] {
				allowed = allowed || s == to
			}
			It(fmt.Sprintf("state %s → %s allowed=%v", from, to, allowed), func() {
				inc := validIncident(ns).Note("root cause: config push").Obj()
				Expect(k8s.Create(ctx, inc)).To(Succeed())
				for _, s := range pathTo[from] {
					inc.Spec.State = s
					Expect(k8s.Update(ctx, inc)).To(Succeed())
				}
				inc.Spec.State = to
				err := k8s.Update(ctx, inc)
				if allowed {
					Expect(err).NotTo(HaveOccurred())
				} else {
					Expect(err).To(MatchError(ContainSubstring("spec.state")))
				}
			})
		}
	}

	It("refuses closing without a note", func() {
		inc := validIncident(ns).Obj()
		Expect(k8s.Create(ctx, inc)).To(Succeed())
		inc.Spec.State = v1.IncidentClosed
		Expect(k8s.Update(ctx, inc)).To(MatchError(ContainSubstring("spec.note")))
	})

	It("keeps service and signature immutable", func() {
		inc := validIncident(ns).Signature("gateway/prod/latency").Obj()
		Expect(k8s.Create(ctx, inc)).To(Succeed())
		changed := inc.DeepCopy()
		changed.Spec.Signature = "other"
		Expect(k8s.Update(ctx, changed)).To(MatchError(ContainSubstring("spec.signature")))
		changed = inc.DeepCopy()
		changed.Spec.Service = "payments"
		Expect(k8s.Update(ctx, changed)).To(MatchError(ContainSubstring("spec.service")))
	})
})

var _ = Describe("SLOPolicy validation", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	valid := func() *testbuild.SLOPolicyWrapper {
		return testbuild.MakeSLOPolicy("", ns).Env("staging").ErrorRatePercent("1.0")
	}

	It("accepts the bounds themselves", func() {
		p := valid().EvaluationInterval(15 * time.Second).MaxBypass(168 * time.Hour).Obj()
		Expect(k8s.Create(ctx, p)).To(Succeed())
	})

	It("defaults the gate and interval", func() {
		p := valid().Obj()
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Expect(p.Spec.Gate.Mode).To(Equal(v1.GateStrict))
		Expect(p.Spec.Gate.NoData).To(Equal(v1.NoDataBlock))
		Expect(p.Spec.EvaluationInterval.Duration.String()).To(Equal("1m0s"))
	})

	DescribeTable("refuses invalid policies naming the field",
		func(mutate func(*testbuild.SLOPolicyWrapper), field string) {
			p := valid()
			mutate(p)
			Expect(k8s.Create(ctx, p.Obj())).To(MatchError(ContainSubstring(field)))
		},
		Entry("float-ish error rate", func(p *testbuild.SLOPolicyWrapper) { p.ErrorRatePercent("1e-3") }, "spec.objectives.errorRatePercent"),
		Entry("no objective", func(p *testbuild.SLOPolicyWrapper) { p.NoObjectives() }, "spec.objectives"),
		Entry("not a URL", func(p *testbuild.SLOPolicyWrapper) { p.PrometheusURL("prometheus:9090") }, "spec.source.prometheus.url"),
		Entry("interval below 15s", func(p *testbuild.SLOPolicyWrapper) { p.EvaluationInterval(14 * time.Second) },
			"spec.evaluationInterval must be at least 15s"),
		Entry("maxBypass above a week", func(p *testbuild.SLOPolicyWrapper) { p.MaxBypass(169 * time.Hour) },
			"spec.gate.maxBypass must be at most 168h"),
		Entry("unknown mode", func(p *testbuild.SLOPolicyWrapper) { p.GateMode("Loose") }, "spec.gate.mode"),
	)
})

var _ = Describe("AlertRoutingPolicy validation", func() {
	It("must be named default", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		p := testbuild.MakeAlertRoutingPolicy(ns).Name("other").Obj()
		Expect(k8s.Create(ctx, p)).To(MatchError(ContainSubstring("metadata.name")))
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).Obj())).To(Succeed())
	})

	It("refuses a bad allowed kind", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		p := testbuild.MakeAlertRoutingPolicy(ns).AllowedKinds("Bad-Kind").Obj()
		Expect(k8s.Create(ctx, p)).To(MatchError(ContainSubstring("spec.allowedKinds")))
	})
})
