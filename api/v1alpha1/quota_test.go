package v1alpha1_test

import (
	"os"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// alertCount is the object-count quota of Alerts, as a ResourceQuota names it.
const alertCount corev1.ResourceName = "count/alerts.ops.alertbridge.io"

// Kubernetes' object-count quota bounds Alerts per namespace: the API
// server's ResourceQuota admission counts every create, whoever makes it.
// This control plane runs no kube-controller-manager, so no quota
// controller fills in a new quota's status; the spec writes the status the
// controller would (nothing used yet), as an admin, and from there the
// admission plugin counts the creates itself.
var _ = Describe("A ResourceQuota bounds Alerts per namespace", func() {
	It("refuses a monitor's Alert, and the operator's, once the namespace holds its quota", func() {
		ns := testbuild.Namespace(Default, k8s, "api-")
		// The documented quota, with room for three Alerts.
		quota := documentedQuota()
		Expect(quota.Spec.Hard).To(HaveKey(alertCount))
		quota.Namespace = ns
		quota.Spec.Hard[alertCount] = resource.MustParse("3")
		Expect(k8s.Create(ctx, quota)).To(Succeed())
		quota.Status = corev1.ResourceQuotaStatus{
			Hard: corev1.ResourceList{alertCount: resource.MustParse("3")},
			Used: corev1.ResourceList{alertCount: resource.MustParse("0")},
		}
		Expect(k8s.Status().Update(ctx, quota)).To(Succeed())

		monitor := userIn(ns, "system:serviceaccount:monitoring:prometheus", "alertbridge-monitor")
		// HTTP ingest creates Alerts as the operator, for the caller.
		operator, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())

		// The quota's status reaches the admission plugin's cache a moment
		// after it is written; until then it answers "status unknown".
		Eventually(func() error { return monitor.Create(ctx, testbuild.MakeAlert("", ns).Obj()) }, rbacSettle, "100ms").Should(Succeed())
		Expect(operator.Create(ctx, testbuild.MakeAlert("", ns).Obj())).To(Succeed())
		Expect(monitor.Create(ctx, testbuild.MakeAlert("", ns).Obj())).To(Succeed())

		overQuota := "exceeded quota: alertbridge-alerts, requested: count/alerts.ops.alertbridge.io=1, " +
			"used: count/alerts.ops.alertbridge.io=3, limited: count/alerts.ops.alertbridge.io=3"
		for who, c := range map[string]client.Client{"monitor": monitor, "operator": operator} {
			err := c.Create(ctx, testbuild.MakeAlert("", ns).Obj())
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s: %v", who, err)
			Expect(err).To(MatchError(ContainSubstring(overQuota)), who)
		}

		var alerts v1.AlertList
		Expect(k8s.List(ctx, &alerts, client.InNamespace(ns))).To(Succeed())
		Expect(alerts.Items).To(HaveLen(3))
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(quota), quota)).To(Succeed())
		used := quota.Status.Used[alertCount]
		Expect(used.Value()).To(BeEquivalentTo(3), "the API server counted every create")
	})
})

// documentedQuota is the ResourceQuota docs/roles.md shows for bounding
// Alerts.
func documentedQuota() *corev1.ResourceQuota {
	GinkgoHelper()
	raw, err := os.ReadFile("../../docs/roles.md")
	Expect(err).NotTo(HaveOccurred())
	_, section, found := strings.Cut(string(raw), "**Bounding Alerts per namespace.**")
	Expect(found).To(BeTrue(), "the section of docs/roles.md on bounding Alerts")
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	Expect(block).NotTo(BeNil(), "its ResourceQuota")
	var q corev1.ResourceQuota
	Expect(yaml.UnmarshalStrict([]byte(block[1]), &q)).To(Succeed())
	Expect(q.Kind).To(Equal("ResourceQuota"))
	return &q
}
