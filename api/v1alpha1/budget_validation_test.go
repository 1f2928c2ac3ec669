package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// budgetPolicy is an SLOPolicy with an availability objective alone.
func budgetPolicy(ns string) *testbuild.SLOPolicyWrapper {
	return testbuild.MakeSLOPolicy("", ns).GenerateName("budget-").Service("checkout").NoObjectives().Availability("99.9", "")
}

var _ = Describe("SLOPolicy error-budget validation", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	It("accepts an availability objective alone and defaults its window to 28d", func() {
		p := budgetPolicy(ns).Obj()
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Expect(p.Spec.Objectives.Availability.Window).To(Equal(v1.SLOWindow("28d")))
	})

	It("accepts the example of docs/slo.md as written", func() {
		doc, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "slo.md"))
		Expect(err).NotTo(HaveOccurred())
		_, section, ok := strings.Cut(string(doc), "\n## Error budgets\n")
		Expect(ok).To(BeTrue(), "docs/slo.md has no Error budgets section")
		_, block, ok := strings.Cut(section, "```yaml\n")
		Expect(ok).To(BeTrue())
		block, _, _ = strings.Cut(block, "```")
		var p v1.SLOPolicy
		Expect(yaml.UnmarshalStrict([]byte(block), &p)).To(Succeed())
		p.Namespace = ns
		Expect(k8s.Create(ctx, &p)).To(Succeed())
		Expect(p.Spec.Objectives.Latency.ThresholdMs).To(Equal(int64(300)))
	})

	DescribeTable("refuses bad input with the field's name",
		func(mutate func(p *testbuild.SLOPolicyWrapper), field, msg string) {
			p := budgetPolicy(ns)
			mutate(p)
			err := k8s.Create(ctx, p.Obj())
			Expect(err).To(MatchError(ContainSubstring(field)))
			Expect(err).To(MatchError(ContainSubstring(msg)))
		},
		Entry("target 0", func(p *testbuild.SLOPolicyWrapper) { p.Availability("0.0", "") },
			"spec.objectives.availability.target", "greater than 0 and less than 100"),
		Entry("target 100", func(p *testbuild.SLOPolicyWrapper) { p.Availability("100", "") },
			"spec.objectives.availability.target", "should match"),
		Entry("a window in weeks", func(p *testbuild.SLOPolicyWrapper) { p.Availability("99.9", "4w") },
			"spec.objectives.availability.window", "should match"),
		Entry("a window over 90d", func(p *testbuild.SLOPolicyWrapper) { p.Availability("99.9", "91d") },
			"spec.objectives.availability.window", "at most 90d"),
		Entry("both errorQuery and goodQuery", func(p *testbuild.SLOPolicyWrapper) {
			p.AvailabilityQueries(`errors_total`, `good_total`, "")
		}, "spec.objectives.availability", "errorQuery or goodQuery, not both"),
		Entry("a latency objective without thresholdMs", func(p *testbuild.SLOPolicyWrapper) { p.Latency("99", 0, "") },
			"spec.objectives.latency.thresholdMs", "greater than or equal to 1"),
		Entry("a short window not shorter than its long one", func(p *testbuild.SLOPolicyWrapper) {
			p.PageWindows(v1.BurnRateWindow{Long: "1h", Short: "60m", Factor: "14.4"})
		}, "spec.alerting.page.windows[0]", "short must be shorter than long"),
		Entry("a factor of 0", func(p *testbuild.SLOPolicyWrapper) {
			p.TicketWindows(v1.BurnRateWindow{Long: "3d", Short: "6h", Factor: "0"})
		}, "spec.alerting.ticket.windows[0].factor", "greater than 0"),
		Entry("an unknown blockOnBurn", func(p *testbuild.SLOPolicyWrapper) { p.BlockOnBurn("always") },
			"spec.gate.blockOnBurn", "Unsupported value"),
		Entry("minErrorBudgetPercent over 100", func(p *testbuild.SLOPolicyWrapper) { p.MinErrorBudgetPercent("101") },
			"spec.gate.minErrorBudgetPercent", "should match"),
	)
})
