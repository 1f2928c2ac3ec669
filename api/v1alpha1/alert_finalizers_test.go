package v1alpha1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// Retention deletes finished Alerts; a finalizer nobody takes off would
// leave one Terminating for good. These specs create Alerts the way
// kubectl does, as users bound to the shipped roles, against the policies
// (and the mirror finalizer's MutatingAdmissionPolicy) config/default
// installs.
var _ = Describe("Finalizers on Alerts (alertbridge-alert-origin)", func() {
	const (
		monitorUser = "system:serviceaccount:monitoring:prometheus"
		adminUser   = "app-admin@example.com"
		editorUser  = "patcher@example.com"
		hold        = "example.com/hold"
	)
	var (
		ns       string
		monitor  client.Client
		operator client.Client
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "api-")
		monitor = userIn(ns, monitorUser, "alertbridge-monitor")
		var err error
		operator, err = client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
	})
	withFinalizers := func(finalizers ...string) *v1.Alert {
		return testbuild.MakeAlert("", ns).Finalizers(finalizers...).Obj()
	}

	It("refuses a monitor's own finalizer, naming metadata.finalizers", func() {
		refused := MatchError(And(
			ContainSubstring("metadata.finalizers: "+hold+" would keep the Alert from being deleted"),
			ContainSubstring(monitorUser+" may not update alerts in namespace "+ns)))
		Eventually(func() error { return monitor.Create(ctx, withFinalizers(hold)) }, rbacSettle, "100ms").Should(refused)
		Expect(monitor.Create(ctx, withFinalizers(v1.MirrorFinalizer, hold))).To(refused, "beside the mirror's, too")
	})

	It("lets a monitor create a plain Alert, which gets the mirror's finalizer, or one naming the mirror's itself", func() {
		plain := testbuild.MakeAlert("", ns).Obj()
		Eventually(func() error { return monitor.Create(ctx, plain) }, rbacSettle, "100ms").Should(Succeed())
		var stored v1.Alert
		Expect(k8s.Get(ctx, keyOf(plain), &stored)).To(Succeed())
		Expect(stored.Finalizers).To(Equal([]string{v1.MirrorFinalizer}), "the mirror finalizer policy is in effect and not refused")
		Expect(monitor.Create(ctx, withFinalizers(v1.MirrorFinalizer))).To(Succeed())
	})

	It("lets who may update Alerts, and the operator, add one", func() {
		// A namespace admin's usual grant: every verb on ops.alertbridge.io.
		grant(ns, adminUser, rbacv1.PolicyRule{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"*"}, Verbs: []string{"*"}})
		admin, err := client.New(env.As(adminUser), client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		held := withFinalizers(hold)
		Eventually(func() error { return admin.Create(ctx, held) }, rbacSettle, "100ms").Should(Succeed())
		Expect(held.Finalizers).To(ConsistOf(hold, v1.MirrorFinalizer))
		Expect(operator.Create(ctx, withFinalizers(hold))).To(Succeed())
	})

	It("keeps one who may patch Alerts but not update them from adding one later", func() {
		grant(ns, editorUser, rbacv1.PolicyRule{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"alerts"}, Verbs: []string{"get", "patch"}})
		editor, err := client.New(env.As(editorUser), client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		a := testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		addHold := client.RawPatch("application/json-patch+json", []byte(`[{"op":"add","path":"/metadata/finalizers/-","value":"`+hold+`"}]`))
		Eventually(func() error { return editor.Patch(ctx, a.DeepCopy(), addHold) }, rbacSettle, "100ms").Should(MatchError(And(
			ContainSubstring("metadata.finalizers: "+hold+" would keep the Alert from being deleted"),
			ContainSubstring(editorUser+" may not update alerts in namespace "+ns))))
		Expect(editor.Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"team":"x"}}}`)))).
			To(Succeed(), "other edits are RBAC's to judge")
	})
})
