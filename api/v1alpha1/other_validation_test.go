package v1alpha1_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func keyOf(o client.Object) client.ObjectKey { return client.ObjectKeyFromObject(o) }

func validIncident(ns string) *v1.Incident {
	return &v1.Incident{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "inc-", Namespace: ns},
		Spec:       v1.IncidentSpec{Service: "gateway", Title: "gateway slow", Severity: v1.SeverityP1},
	}
}

var _ = Describe("Incident validation", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	It("defaults to Open", func() {
		inc := validIncident(ns)
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
				inc := validIncident(ns)
				inc.Spec.Note = "root cause: config push"
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
		inc := validIncident(ns)
		Expect(k8s.Create(ctx, inc)).To(Succeed())
		inc.Spec.State = v1.IncidentClosed
		Expect(k8s.Update(ctx, inc)).To(MatchError(ContainSubstring("spec.note")))
	})

	It("keeps service and signature immutable", func() {
		inc := validIncident(ns)
		inc.Spec.Signature = "gateway/prod/latency"
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

	valid := func() *v1.SLOPolicy {
		return &v1.SLOPolicy{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "gateway-", Namespace: ns},
			Spec: v1.SLOPolicySpec{
				Service:    "gateway",
				Env:        "staging",
				Objectives: v1.SLOObjectives{LatencyP95Ms: ptr.To[int64](300), ErrorRatePercent: ptr.To("1.0")},
				Source:     v1.SLOSource{Prometheus: v1.PrometheusSource{URL: "http://prometheus:9090"}},
			},
		}
	}

	It("accepts the bounds themselves", func() {
		p := valid()
		p.Spec.EvaluationInterval = &metav1.Duration{Duration: 15 * time.Second}
		p.Spec.Gate.MaxBypass = &metav1.Duration{Duration: 168 * time.Hour}
		Expect(k8s.Create(ctx, p)).To(Succeed())
	})

	It("defaults the gate and interval", func() {
		p := valid()
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Expect(p.Spec.Gate.Mode).To(Equal(v1.GateStrict))
		Expect(p.Spec.Gate.NoData).To(Equal(v1.NoDataBlock))
		Expect(p.Spec.EvaluationInterval.Duration.String()).To(Equal("1m0s"))
	})

	DescribeTable("refuses invalid policies naming the field",
		func(mutate func(*v1.SLOPolicy), field string) {
			p := valid()
			mutate(p)
			Expect(k8s.Create(ctx, p)).To(MatchError(ContainSubstring(field)))
		},
		Entry("float-ish error rate", func(p *v1.SLOPolicy) { p.Spec.Objectives.ErrorRatePercent = ptr.To("1e-3") }, "spec.objectives.errorRatePercent"),
		Entry("no objective", func(p *v1.SLOPolicy) { p.Spec.Objectives = v1.SLOObjectives{} }, "spec.objectives"),
		Entry("not a URL", func(p *v1.SLOPolicy) { p.Spec.Source.Prometheus.URL = "prometheus:9090" }, "spec.source.prometheus.url"),
		Entry("interval below 15s", func(p *v1.SLOPolicy) {
			p.Spec.EvaluationInterval = &metav1.Duration{Duration: 14 * time.Second}
		}, "spec.evaluationInterval must be at least 15s"),
		Entry("maxBypass above a week", func(p *v1.SLOPolicy) {
			p.Spec.Gate.MaxBypass = &metav1.Duration{Duration: 169 * time.Hour}
		}, "spec.gate.maxBypass must be at most 168h"),
		Entry("unknown mode", func(p *v1.SLOPolicy) { p.Spec.Gate.Mode = "Loose" }, "spec.gate.mode"),
	)
})

var _ = Describe("AlertRoutingPolicy validation", func() {
	It("must be named default", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		p := &v1.AlertRoutingPolicy{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns}}
		Expect(k8s.Create(ctx, p)).To(MatchError(ContainSubstring("metadata.name")))
		p = &v1.AlertRoutingPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1.RoutingPolicyName, Namespace: ns}}
		Expect(k8s.Create(ctx, p)).To(Succeed())
	})

	It("refuses a bad allowed kind", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		p := &v1.AlertRoutingPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: v1.RoutingPolicyName, Namespace: ns},
			Spec:       v1.AlertRoutingPolicySpec{AllowedKinds: []string{"Bad-Kind"}},
		}
		Expect(k8s.Create(ctx, p)).To(MatchError(ContainSubstring("spec.allowedKinds")))
	})
})
