package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// The policy is the one config/default installs (testenv installs it).
var _ = Describe("AlertRoutingPolicy allowedKinds at admission", func() {
	It("refuses a kind the namespace's policy does not allow, naming spec.kind", func() {
		ns := newNamespace()
		Expect(k8s.Create(ctx, &v1.AlertRoutingPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: v1.RoutingPolicyName, Namespace: ns},
			Spec:       v1.AlertRoutingPolicySpec{AllowedKinds: []string{"latency", "error_rate"}},
		})).To(Succeed())
		// A new policy takes a moment to apply.
		Eventually(func() error {
			a := validAlert(ns)
			a.Spec.Kind = "disk_full"
			return k8s.Create(ctx, a)
		}, "30s", "200ms").Should(MatchError(And(
			ContainSubstring(`spec.kind: "disk_full" is not allowed`),
			ContainSubstring("latency, error_rate"))))
		Expect(k8s.Create(ctx, validAlert(ns))).To(Succeed(), "an allowed kind is still accepted")
	})

	It("accepts any kind where no policy (or an empty list) restricts it", func() {
		ns := newNamespace()
		a := validAlert(ns)
		a.Spec.Kind = "disk_full"
		Expect(k8s.Create(ctx, a)).To(Succeed())

		other := newNamespace()
		Expect(k8s.Create(ctx, &v1.AlertRoutingPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1.RoutingPolicyName, Namespace: other}})).To(Succeed())
		b := validAlert(other)
		b.Spec.Kind = "disk_full"
		Expect(k8s.Create(ctx, b)).To(Succeed())
	})
})
