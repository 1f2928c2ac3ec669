package v1alpha1_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// These specs write Receivers the way kubectl does, as users bound to the
// shipped roles, plus a Role of the kind a team that keeps its own
// Receivers would get (none of the shipped roles writes them).
var _ = Describe("Receivers: only who may get a Secret has the operator send it", func() {
	const (
		oncallUser = "carol@example.com"
		ownerUser  = "dana@example.com"
	)
	var (
		ns            string
		oncall, owner client.Client
	)
	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "api-")
		for _, name := range []string{"hook-key", "other-key"} {
			Expect(k8s.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				StringData: map[string]string{"signingKey": name + "-value", "routingKey": name + "-routing"},
			})).To(Succeed())
		}
		oncall = userIn(ns, oncallUser, "alertbridge-oncall")
		owner = userIn(ns, ownerUser, "alertbridge-viewer")
		grant(ns, ownerUser, rbacv1.PolicyRule{
			APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"receivers"}, Verbs: []string{"get", "create", "update", "patch"},
		})
	})

	mergePatch := func(c client.Client, obj client.Object, patch map[string]any) error {
		body, err := json.Marshal(patch)
		Expect(err).NotTo(HaveOccurred())
		return c.Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch("application/merge-patch+json", body))
	}
	spec := func(fields map[string]any) map[string]any { return map[string]any{"spec": fields} }

	It("refuses naming a Secret, or moving where it goes, or how it is used, without get on it", func() {
		r := testbuild.MakeReceiver("automation", ns).Obj()
		Eventually(func() error { return owner.Create(ctx, r.DeepCopy()) }, rbacSettle, "100ms").Should(MatchError(ContainSubstring(
			"spec.secretRef: sending the credential of Secret hook-key needs get on that Secret, which " + ownerUser +
				" does not have in namespace " + ns)))
		Expect(k8s.Create(ctx, r)).To(Succeed(), "an admin may")

		Expect(mergePatch(owner, r, spec(map[string]any{"events": []string{"Opened", "Resolved"}, "minSeverity": "P1"}))).
			To(Succeed(), "which events, which severities: RBAC alone")
		// The same place, the same credential, the operator's own format:
		// which of the namespace's notifications go, and how often.
		Expect(mergePatch(owner, r, spec(map[string]any{
			"services": []string{"gateway"}, "envs": []string{"prod"}, "alerts": map[string]any{"minSeverity": "P2"},
			"groupInterval": "1m", "rateLimit": map[string]any{"perMinute": 60, "burst": 20},
		}))).To(Succeed(), "which services, envs and Alerts, how often: RBAC alone")
		Expect(mergePatch(owner, r, spec(map[string]any{"alerts": nil}))).To(Succeed())
		for field, patch := range map[string]map[string]any{
			"spec.url: moving where the credential of":          spec(map[string]any{"url": "https://attacker.example/"}),
			"spec.secretRef.key: choosing which key is sent of": spec(map[string]any{"secretRef": map[string]any{"name": "hook-key", "key": "routingKey"}}),
			"spec.type: changing how the operator uses":         spec(map[string]any{"type": "pagerduty"}),
			"spec.secretRef: sending the credential of":         spec(map[string]any{"secretRef": map[string]any{"name": "other-key"}}),
		} {
			Expect(mergePatch(owner, r, patch)).To(MatchError(ContainSubstring(field)), field)
		}

		readOne(ns, ownerUser, "hook-key")
		Eventually(func() error { return mergePatch(owner, r, spec(map[string]any{"url": "https://hooks2.example/"})) }, rbacSettle, "100ms").
			Should(Succeed())
		Expect(mergePatch(owner, r, spec(map[string]any{"secretRef": map[string]any{"name": "other-key"}}))).
			To(MatchError(ContainSubstring("Secret other-key needs get")), "get on one Secret is not get on another")
		Expect(owner.Create(ctx, testbuild.MakeReceiver("second", ns).URL("https://hooks.example/").Obj())).To(Succeed())
	})

	It("lets on-call read Receivers, not write them", func() {
		r := testbuild.MakeReceiver("automation", ns).Obj()
		Expect(k8s.Create(ctx, r)).To(Succeed())
		Eventually(func() error { return oncall.Get(ctx, client.ObjectKeyFromObject(r), &v1.Receiver{}) }, rbacSettle, "100ms").Should(Succeed())
		Expect(oncall.List(ctx, &v1.ReceiverList{}, client.InNamespace(ns))).To(Succeed())
		err := mergePatch(oncall, r, spec(map[string]any{"minSeverity": "P0"}))
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		err = oncall.Create(ctx, testbuild.MakeReceiver("mine", ns).URL("https://hooks.example/").Obj())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
	})

	DescribeTable("refuses a Receiver that cannot work, naming the field",
		func(edit func(*v1.Receiver), message string) {
			r := testbuild.MakeReceiver("bad", ns).URL("https://hooks.example/").Obj()
			edit(r)
			Expect(k8s.Create(ctx, r)).To(MatchError(ContainSubstring(message)))
		},
		Entry("a webhook without url", func(r *v1.Receiver) { r.Spec.URL = "" }, "spec.url is required for a webhook Receiver"),
		Entry("a Slack URL in spec", func(r *v1.Receiver) { r.Spec.Type = v1.ReceiverSlack },
			"spec.url: a Slack incoming webhook URL is itself the credential"),
		Entry("a url that is not http(s)", func(r *v1.Receiver) { r.Spec.URL = "ftp://hooks.example/" }, "spec.url must be an http or https URL"),
		Entry("PagerDuty paging per Alert", func(r *v1.Receiver) {
			r.Spec.Type, r.Spec.URL, r.Spec.Alerts = v1.ReceiverPagerDuty, "", &v1.ReceiverAlerts{MinSeverity: v1.SeverityP1}
		}, "spec.alerts: a pagerduty Receiver pages on Incidents only"),
		Entry("a groupInterval over an hour", func(r *v1.Receiver) { r.Spec.GroupInterval = &metav1.Duration{Duration: 2 * time.Hour} },
			"spec.groupInterval must be at most 1h"),
		Entry("an unknown event", func(r *v1.Receiver) { r.Spec.Events = []v1.NotificationEvent{"Paged"} }, "spec.events[0]: Unsupported value"),
		Entry("a rate of zero", func(r *v1.Receiver) { r.Spec.RateLimit.PerMinute = -1 }, "spec.rateLimit.perMinute"),
	)

	It("refuses a Receiver told about nothing, and defaults the rest", func() {
		// kubectl sends an explicit empty list; Go's omitempty would not.
		quiet := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1.GroupVersion.String(), "kind": "Receiver",
			"metadata": map[string]any{"name": "quiet", "namespace": ns},
			"spec":     map[string]any{"type": "webhook", "url": "https://hooks.example/", "secretRef": map[string]any{"name": "hook-key"}, "events": []any{}},
		}}
		Expect(k8s.Create(ctx, quiet)).To(MatchError(ContainSubstring("spec.events: a Receiver must be told about something")))
		quiet.Object["spec"].(map[string]any)["alerts"] = map[string]any{"minSeverity": "P1"}
		Expect(k8s.Create(ctx, quiet)).To(Succeed(), "new Alerts only")
		r := testbuild.MakeReceiver("defaults", ns).URL("https://hooks.example/").Obj()
		Expect(k8s.Create(ctx, r)).To(Succeed())
		Expect(r.Spec.Events).To(Equal(v1.IncidentEvents))
		Expect(r.Spec.GroupInterval.Duration).To(Equal(10 * time.Second))
		Expect(r.Spec.RateLimit).To(Equal(v1.ReceiverRateLimit{PerMinute: 30, Burst: 10}))
	})
})

var _ = Describe("the Receivers of docs/notifications.md", func() {
	It("are accepted as written, with their Secret", func() {
		raw, err := os.ReadFile("../../docs/notifications.md")
		Expect(err).NotTo(HaveOccurred())
		section := string(raw)
		start := strings.Index(section, "\n## Receivers: copy, paste, fill in\n")
		Expect(start).To(BeNumerically(">=", 0))
		section = section[start+1:]
		if end := strings.Index(section, "\n## "); end >= 0 {
			section = section[:end]
		}
		ns := testbuild.Namespace(Default, k8s, "api-")
		kinds := map[string]int{}
		for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(section, -1) {
			for _, doc := range strings.Split(block[1], "\n---\n") {
				var obj unstructured.Unstructured
				Expect(yaml.Unmarshal([]byte(doc), &obj.Object)).To(Succeed(), doc)
				obj.SetNamespace(ns)
				Expect(k8s.Create(ctx, &obj)).To(Succeed(), doc)
				kinds[obj.GetKind()]++
			}
		}
		Expect(kinds).To(Equal(map[string]int{"Secret": 1, "Receiver": 3}))
	})
})
