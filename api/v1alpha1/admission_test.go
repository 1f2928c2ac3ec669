package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The policy is the one config/default installs (testenv installs it).
var _ = Describe("AlertRoutingPolicy allowedKinds at admission", func() {
	It("refuses a kind the namespace's policy does not allow, naming spec.kind", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).AllowedKinds("latency", "error_rate").Obj())).To(Succeed())
		// A new policy takes a moment to apply.
		Eventually(func() error {
			return k8s.Create(ctx, testbuild.MakeAlert("", ns).Kind("disk_full").Obj())
		}, "30s", "200ms").Should(MatchError(And(
			ContainSubstring(`spec.kind: "disk_full" is not allowed`),
			ContainSubstring("latency, error_rate"))))
		Expect(k8s.Create(ctx, testbuild.MakeAlert("", ns).Obj())).To(Succeed(), "an allowed kind is still accepted")
	})

	It("accepts any kind where no policy (or an empty list) restricts it", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		Expect(k8s.Create(ctx, testbuild.MakeAlert("", ns).Kind("disk_full").Obj())).To(Succeed())

		other := testbuild.Namespace(Default, k8s, "api-")
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(other).Obj())).To(Succeed())
		Expect(k8s.Create(ctx, testbuild.MakeAlert("", other).Kind("disk_full").Obj())).To(Succeed())
	})

	It("exempts the operator's own Alerts (labelled origin=operator), not those it creates for callers nor anyone else's", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(ns).AllowedKinds("latency").Obj())).To(Succeed())
		probe := func(own bool) *v1.Alert {
			a := testbuild.MakeAlert("", ns).Kind("mirror_probe")
			if own {
				a.MetaLabel(v1.OriginLabel, v1.OriginOperator)
			}
			return a.Obj()
		}
		operator, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		monitor := userIn(ns, "prometheus", "alertbridge-monitor")
		refused := MatchError(ContainSubstring(`spec.kind: "mirror_probe" is not allowed in namespace ` + ns))
		// A new policy takes a moment to apply.
		Eventually(func() error { return operator.Create(ctx, probe(false), client.DryRunAll) }, "30s", "200ms").Should(refused,
			"an Alert the operator creates for a caller (HTTP ingest) is held to the namespace's list")
		Expect(operator.Create(ctx, probe(true), client.DryRunAll)).To(Succeed(), "the operator's own Alert is exempt")
		Eventually(func() error { return monitor.Create(ctx, probe(true)) }, "30s", "200ms").Should(MatchError(ContainSubstring(
			`metadata.labels[ops.alertbridge.io/origin]: "operator" marks the Alerts the alertbridge operator raises`)),
			"nobody but the operator may set the label that exempts")
	})
})
