package v1alpha1_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// rbacSettle bounds how long a new binding takes to reach the authorizer.
const rbacSettle = 30 * time.Second

// These specs change SLOPolicies and AlertRoutingPolicies the way kubectl
// does (raw merge patches) as users bound to the shipped roles, plus, where
// a spec needs someone who may write a policy at all, a Role of the kind a
// team that owns its policies would get (none of the shipped roles writes a
// policy's spec). The policies are the ones config/default installs.
var _ = Describe("Whoever configures an action must hold its rights", func() {
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
		for _, name := range []string{"prom-creds", "other-creds"} {
			Expect(k8s.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				StringData: map[string]string{"token": name + "-token"},
			})).To(Succeed())
		}
		oncall = userIn(ns, oncallUser, "alertbridge-oncall")
		// The owner may write policies and nothing else: no Secrets, no Jobs.
		owner = userIn(ns, ownerUser, "alertbridge-viewer")
		grant(ns, ownerUser, rbacv1.PolicyRule{
			APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"slopolicies", "alertroutingpolicies"},
			Verbs: []string{"get", "create", "update", "patch"},
		})
	})

	mergePatch := func(c client.Client, obj client.Object, patch map[string]any) error {
		body, err := json.Marshal(patch)
		Expect(err).NotTo(HaveOccurred())
		return c.Patch(ctx, obj.DeepCopyObject().(client.Object), client.RawPatch("application/merge-patch+json", body))
	}
	prom := func(fields map[string]any) map[string]any {
		return map[string]any{"spec": map[string]any{"source": map[string]any{"prometheus": fields}}}
	}
	bypass := func(until, reason, by any) map[string]any {
		return map[string]any{"metadata": map[string]any{"annotations": map[string]any{
			v1.BypassUntilAnnotation: until, v1.BypassReasonAnnotation: reason, v1.BypassByAnnotation: by,
		}}}
	}
	inAnHour := func() string { return time.Now().Add(time.Hour).UTC().Format(time.RFC3339) }

	Describe("SLOPolicy: on-call may only bypass", func() {
		var p *v1.SLOPolicy
		BeforeEach(func() {
			p = testbuild.MakeSLOPolicy("gateway", ns).Obj()
			Expect(k8s.Create(ctx, p)).To(Succeed())
		})

		DescribeTable("refuses on-call (patch, no update) any change but the bypass annotations, naming what changed",
			func(patch map[string]any, field string) {
				Eventually(func() error { return mergePatch(oncall, p, patch) }, rbacSettle, "100ms").Should(MatchError(And(
					ContainSubstring(field+": "+oncallUser+" may change only the bypass annotations of SLOPolicy gateway"),
					ContainSubstring("needs update on slopolicies in namespace "+ns))))
			},
			Entry("the source URL", prom(map[string]any{"url": "https://anywhere.example"}), "spec"),
			Entry("the objectives", map[string]any{"spec": map[string]any{"objectives": map[string]any{"latencyP95Ms": 100000}}}, "spec"),
			Entry("the gate mode", map[string]any{"spec": map[string]any{"gate": map[string]any{"mode": "Off"}}}, "spec"),
			Entry("maxBypass", map[string]any{"spec": map[string]any{"gate": map[string]any{"maxBypass": "168h"}}}, "spec"),
			Entry("a label", map[string]any{"metadata": map[string]any{"labels": map[string]any{"team": "x"}}}, "metadata.labels"),
			Entry("another annotation", map[string]any{"metadata": map[string]any{"annotations": map[string]any{"note": "x"}}},
				"metadata.annotations[note]"),
			Entry("the finalizers", map[string]any{"metadata": map[string]any{"finalizers": []string{"example.com/x"}}}, "metadata.finalizers"),
		)

		It("refuses on-call a secretRef, whichever rule speaks first", func() {
			Eventually(func() error {
				return mergePatch(oncall, p, prom(map[string]any{"secretRef": map[string]any{"name": "prom-creds"}}))
			}, rbacSettle, "100ms").Should(MatchError(Or(
				ContainSubstring("spec: "+oncallUser+" may change only the bypass annotations"),
				ContainSubstring("spec.source.prometheus.secretRef: sending the credentials of Secret prom-creds needs get"))))
		})

		It("lets on-call bypass in their own name and clear it, and lets who may update change the rest", func() {
			Eventually(func() error { return mergePatch(oncall, p, bypass(inAnHour(), "INC-42", oncallUser)) }, rbacSettle, "100ms").
				Should(Succeed())
			Expect(mergePatch(oncall, p, bypass(nil, nil, nil))).To(Succeed())

			grant(ns, oncallUser, rbacv1.PolicyRule{
				APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"slopolicies"}, ResourceNames: []string{"gateway"}, Verbs: []string{"update"},
			})
			Eventually(func() error {
				return mergePatch(oncall, p, map[string]any{"spec": map[string]any{"gate": map[string]any{"mode": "Warn"}}})
			}, rbacSettle, "100ms").Should(Succeed(), "update on the SLOPolicy lifts the bypass-only rule")
		})

		It("refuses a bypass that names nobody, to everyone", func() {
			for _, c := range []client.Client{oncall, k8s} {
				Eventually(func() error { return mergePatch(c, p, bypass(inAnHour(), "INC-42", nil)) }, rbacSettle, "100ms").
					Should(MatchError(ContainSubstring("metadata.annotations[ops.alertbridge.io/bypass-by] is required with bypass-until and bypass-reason")))
				Expect(mergePatch(c, p, bypass(nil, "INC-42", nil))).To(MatchError(ContainSubstring("bypass-by] is required")))
			}
			Expect(mergePatch(oncall, p, bypass(inAnHour(), "INC-42", "someone-else"))).
				To(MatchError(ContainSubstring("metadata.annotations[ops.alertbridge.io/bypass-by] must name you (" + oncallUser + ")")))
			Expect(mergePatch(oncall, p, bypass(inAnHour(), "INC-42", oncallUser))).To(Succeed())
		})
	})

	Describe("SLOPolicy: only who may get a Secret sends its credentials", func() {
		It("refuses naming, or moving the URL of, a Secret the user may not read, and allows it once they may", func() {
			withSecret := testbuild.MakeSLOPolicy("gateway", ns).SecretRef("prom-creds").Obj()
			Eventually(func() error { return owner.Create(ctx, withSecret.DeepCopy()) }, rbacSettle, "100ms").Should(MatchError(ContainSubstring(
				"spec.source.prometheus.secretRef: sending the credentials of Secret prom-creds needs get on that Secret, which " +
					ownerUser + " does not have in namespace " + ns)))

			Expect(k8s.Create(ctx, withSecret)).To(Succeed(), "an admin may")
			Expect(mergePatch(owner, withSecret, map[string]any{"spec": map[string]any{"gate": map[string]any{"mode": "Warn"}}})).
				To(Succeed(), "other edits need nothing more")
			Expect(mergePatch(owner, withSecret, prom(map[string]any{"url": "https://anywhere.example"}))).To(MatchError(ContainSubstring(
				"spec.source.prometheus.url: moving where the credentials of Secret prom-creds needs get on that Secret")))
			Expect(mergePatch(owner, withSecret, prom(map[string]any{"secretRef": map[string]any{"name": "other-creds"}}))).
				To(MatchError(ContainSubstring("spec.source.prometheus.secretRef: sending the credentials of Secret other-creds")))

			readOne(ns, ownerUser, "prom-creds")
			Eventually(func() error {
				return mergePatch(owner, withSecret, prom(map[string]any{"url": "https://prometheus.example"}))
			}, rbacSettle, "100ms").Should(Succeed())
			Expect(mergePatch(owner, withSecret, prom(map[string]any{"secretRef": map[string]any{"name": "other-creds"}}))).
				To(MatchError(ContainSubstring("Secret other-creds needs get")), "get on one Secret is not get on another")
			Expect(owner.Create(ctx, testbuild.MakeSLOPolicy("api", ns).Service("api").SecretRef("prom-creds").Obj())).To(Succeed())
			Expect(mergePatch(owner, withSecret, prom(map[string]any{"secretRef": nil}))).To(Succeed(), "dropping a secretRef needs nothing")
		})
	})

	Describe("SLOPolicy: only who may get a Secret chooses what is queried with it", func() {
		// The answers of the queries show in status, so choosing them is
		// reading whatever the Secret's credentials may read.
		var p *v1.SLOPolicy
		BeforeEach(func() {
			p = testbuild.MakeSLOPolicy("gateway", ns).SecretRef("prom-creds").Availability("99.9", "").Latency("99", 300, "").Obj()
			Expect(k8s.Create(ctx, p)).To(Succeed())
		})
		spec := func(fields map[string]any) map[string]any { return map[string]any{"spec": fields} }
		objectives := func(fields map[string]any) map[string]any { return spec(map[string]any{"objectives": fields}) }
		pageWindows := spec(map[string]any{"alerting": map[string]any{"page": map[string]any{
			"windows": []any{map[string]any{"long": "2h", "short": "10m", "factor": "14.4"}},
		}}})

		DescribeTable("refuses a change of what is queried without get on the Secret, naming the field",
			func(patch map[string]any, field string) {
				Eventually(func() error { return mergePatch(owner, p, patch) }, rbacSettle, "100ms").Should(MatchError(ContainSubstring(
					field + ": changing what the operator queries (and shows in status) with the credentials of Secret prom-creds " +
						"needs get on that Secret, which " + ownerUser + " does not have in namespace " + ns)))
			},
			Entry("the latency query", prom(map[string]any{"latencyP95Query": `max(secret_metric)`}), "spec.source.prometheus.latencyP95Query"),
			Entry("the error-rate query", prom(map[string]any{"errorRateQuery": `max(secret_metric)`}), "spec.source.prometheus.errorRateQuery"),
			Entry("the service (in the default queries)", spec(map[string]any{"service": "payments"}), "spec.service"),
			Entry("the env (in the default queries)", spec(map[string]any{"env": "staging"}), "spec.env"),
			Entry("an objective not queried before", objectives(map[string]any{"errorRatePercent": "1.0"}), "spec.objectives.errorRatePercent"),
			Entry("availability's error query", objectives(map[string]any{"availability": map[string]any{"errorQuery": `secret_metric`}}),
				"spec.objectives.availability.errorQuery"),
			Entry("availability's total query", objectives(map[string]any{"availability": map[string]any{"totalQuery": `secret_metric`}}),
				"spec.objectives.availability.totalQuery"),
			Entry("availability's window", objectives(map[string]any{"availability": map[string]any{"window": "7d"}}),
				"spec.objectives.availability.window"),
			Entry("latency's threshold (the bucket asked for)", objectives(map[string]any{"latency": map[string]any{"thresholdMs": 500}}),
				"spec.objectives.latency.thresholdMs"),
			Entry("latency's good query", objectives(map[string]any{"latency": map[string]any{"goodQuery": `secret_metric`}}),
				"spec.objectives.latency.goodQuery"),
			Entry("the burn-rate windows", pageWindows, "spec.alerting.page.windows"),
		)

		It("lets through, without get, what sends nothing new", func() {
			Eventually(func() error { return owner.Get(ctx, keyOf(p), &v1.SLOPolicy{}) }, rbacSettle, "100ms").Should(Succeed())
			for _, edit := range []struct {
				what  string
				patch map[string]any
			}{
				{"the objectives' values and targets", objectives(map[string]any{"latencyP95Ms": 500,
					"availability": map[string]any{"target": "99.5"}, "latency": map[string]any{"target": "95"}})},
				{"burn severities and switches", spec(map[string]any{"alerting": map[string]any{"page": map[string]any{"severity": "P2", "disabled": true}}})},
				{"the gate", spec(map[string]any{"gate": map[string]any{"mode": "Warn", "noData": "Allow", "maxBypass": "48h",
					"minErrorBudgetPercent": "10", "blockOnBurn": "ticket"}})},
				{"the interval", spec(map[string]any{"evaluationInterval": "5m"})},
				{"a bypass", bypass(inAnHour(), "INC-7", ownerUser)},
				{"a label", map[string]any{"metadata": map[string]any{"labels": map[string]any{"team": "payments"}}}},
				{"dropping an objective", objectives(map[string]any{"latency": nil})},
			} {
				Expect(mergePatch(owner, p, edit.patch)).To(Succeed(), edit.what)
			}
		})

		It("lets who may get the Secret change what is queried, and asks nothing where no Secret is named", func() {
			readOne(ns, ownerUser, "prom-creds")
			Eventually(func() error {
				return mergePatch(owner, p, prom(map[string]any{"latencyP95Query": `histogram_quantile(0.95, rate(x_bucket[5m]))`}))
			}, rbacSettle, "100ms").Should(Succeed())
			Expect(mergePatch(owner, p, pageWindows)).To(Succeed())
			Expect(mergePatch(owner, p, spec(map[string]any{"service": "payments"}))).To(Succeed())

			plain := testbuild.MakeSLOPolicy("plain", ns).Service("plain").Obj()
			Expect(k8s.Create(ctx, plain)).To(Succeed())
			Expect(mergePatch(owner, plain, prom(map[string]any{"errorRateQuery": `max(any_metric)`}))).To(Succeed())
			Expect(mergePatch(owner, plain, spec(map[string]any{"env": "staging"}))).To(Succeed())
		})

		It("needs get again to name the Secret for queries changed while none was named", func() {
			Eventually(func() error { return mergePatch(owner, p, prom(map[string]any{"secretRef": nil})) }, rbacSettle, "100ms").
				Should(Succeed(), "without a Secret, nothing is sent with its credentials")
			Expect(mergePatch(owner, p, prom(map[string]any{"latencyP95Query": `max(secret_metric)`}))).To(Succeed())
			Expect(mergePatch(owner, p, prom(map[string]any{"secretRef": map[string]any{"name": "prom-creds"}}))).To(MatchError(ContainSubstring(
				"spec.source.prometheus.secretRef: sending the credentials of Secret prom-creds needs get on that Secret")))
		})
	})

	Describe("AlertRoutingPolicy: only who may get a Secret sends its token, only who may create Jobs configures them", func() {
		webhook := func(fields map[string]any) map[string]any {
			return map[string]any{"spec": map[string]any{"triage": map[string]any{"webhook": fields}}}
		}
		triage := func(fields map[string]any) map[string]any {
			return map[string]any{"spec": map[string]any{"triage": fields}}
		}

		It("refuses a webhook secretRef, or moving its URL, without get on the Secret", func() {
			arp := testbuild.MakeAlertRoutingPolicy(ns).TriageWebhook("https://triage.example", "prom-creds").Obj()
			Eventually(func() error { return owner.Create(ctx, arp.DeepCopy()) }, rbacSettle, "100ms").Should(MatchError(ContainSubstring(
				"spec.triage.webhook.secretRef: sending the token of Secret prom-creds needs get on that Secret, which " + ownerUser)))
			Expect(k8s.Create(ctx, arp)).To(Succeed())
			Expect(mergePatch(owner, arp, map[string]any{"spec": map[string]any{"allowedKinds": []string{"latency"}}})).To(Succeed())
			// Only url and secretRef decide where the token goes; the rest
			// chooses which of the namespace's Incidents are triaged, when.
			Expect(mergePatch(owner, arp, map[string]any{"spec": map[string]any{
				"triageCooldown": "1m", "signatureLabels": []string{"region"}, "incident": map[string]any{"auto": map[string]any{"minOccurrences": 1}},
			}})).To(Succeed(), "what is triaged and when: RBAC alone")
			Expect(mergePatch(owner, arp, webhook(map[string]any{"url": "https://anywhere.example"}))).To(MatchError(ContainSubstring(
				"spec.triage.webhook.url: moving where the token of Secret prom-creds needs get on that Secret")))

			readOne(ns, ownerUser, "prom-creds")
			Eventually(func() error { return mergePatch(owner, arp, webhook(map[string]any{"url": "https://triage2.example"})) }, rbacSettle, "100ms").
				Should(Succeed())
			Expect(mergePatch(owner, arp, webhook(map[string]any{"secretRef": map[string]any{"name": "other-creds"}}))).
				To(MatchError(ContainSubstring("spec.triage.webhook.secretRef: sending the token of Secret other-creds")))
		})

		It("refuses a job template, or a new ServiceAccount for it, without create on Jobs", func() {
			arp := testbuild.MakeAlertRoutingPolicy(ns).TriageJob("triage", jobTemplate("registry.example/triage:1")).Obj()
			Eventually(func() error { return owner.Create(ctx, arp.DeepCopy()) }, rbacSettle, "100ms").Should(MatchError(ContainSubstring(
				"spec.triage.jobTemplate: the operator creates triage Jobs from this in your stead, and " + ownerUser +
					" may not create Jobs in namespace " + ns)))
			Expect(k8s.Create(ctx, arp)).To(Succeed())
			Expect(mergePatch(owner, arp, map[string]any{"spec": map[string]any{"allowedKinds": []string{"latency"}}})).To(Succeed())
			Expect(mergePatch(owner, arp, triage(map[string]any{"serviceAccountName": "default"}))).
				To(MatchError(ContainSubstring("spec.triage.serviceAccountName: the operator creates triage Jobs")))
			Expect(mergePatch(owner, arp, triage(map[string]any{"jobTemplate": jobTemplate("registry.example/other:1")}))).
				To(MatchError(ContainSubstring("spec.triage.jobTemplate: the operator creates triage Jobs")))

			grant(ns, ownerUser, rbacv1.PolicyRule{APIGroups: []string{batchv1.GroupName}, Resources: []string{"jobs"}, Verbs: []string{"create"}})
			Eventually(func() error { return mergePatch(owner, arp, triage(map[string]any{"serviceAccountName": "default"})) }, rbacSettle, "100ms").
				Should(Succeed())
			Expect(mergePatch(owner, arp, triage(map[string]any{"jobTemplate": jobTemplate("registry.example/other:1")}))).To(Succeed())
		})

		It("needs nothing to drop a template or a webhook", func() {
			arp := testbuild.MakeAlertRoutingPolicy(ns).TriageJob("", jobTemplate("registry.example/triage:1")).
				TriageWebhook("https://triage.example", "prom-creds").Obj()
			Expect(k8s.Create(ctx, arp)).To(Succeed())
			Eventually(func() error {
				return mergePatch(owner, arp, triage(map[string]any{"jobTemplate": nil, "webhook": nil}))
			}, rbacSettle, "100ms").
				Should(Succeed())
		})
	})

	It("keeps reading and updating an SLOPolicy stored before the interval and maxBypass bounds", func() {
		legacy := testbuild.MakeSLOPolicy("legacy", ns).Service("legacy").EvaluationInterval(time.Second).MaxBypass(720 * time.Hour).Obj()
		storeInEtcd(legacy)
		var got v1.SLOPolicy
		Eventually(func() error { return k8s.Get(ctx, keyOf(legacy), &got) }, rbacSettle, "100ms").Should(Succeed())
		Expect(got.Spec.EvaluationInterval.Duration).To(Equal(time.Second))
		Expect(got.Spec.Gate.MaxBypass.Duration).To(Equal(720 * time.Hour))

		Eventually(func() error { return mergePatch(oncall, legacy, bypass(inAnHour(), "INC-1", oncallUser)) }, rbacSettle, "100ms").
			Should(Succeed(), "on-call's bypass leaves the old values as they are")
		Expect(mergePatch(k8s, legacy, map[string]any{"spec": map[string]any{"gate": map[string]any{"mode": "Warn"}}})).
			To(Succeed(), "an edit of other fields keeps them too")
		Expect(mergePatch(k8s, legacy, map[string]any{"spec": map[string]any{"evaluationInterval": "2s"}})).
			To(MatchError(ContainSubstring("spec.evaluationInterval must be at least 15s")))
		Expect(mergePatch(k8s, legacy, map[string]any{"spec": map[string]any{"gate": map[string]any{"maxBypass": "719h"}}})).
			To(MatchError(ContainSubstring("spec.gate.maxBypass must be at most 168h")))
		Expect(mergePatch(k8s, legacy, map[string]any{"spec": map[string]any{"evaluationInterval": "30s", "gate": map[string]any{"maxBypass": "24h"}}})).
			To(Succeed())
	})
})

func jobTemplate(image string) *batchv1.JobTemplateSpec {
	return &batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "triage", Image: image}},
	}}}}
}

// grant gives user the rules in ns through a Role of its own.
func grant(ns, user string, rules ...rbacv1.PolicyRule) {
	GinkgoHelper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "test-"}, Rules: rules}
	Expect(k8s.Create(ctx, role)).To(Succeed())
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())
}

// readOne lets user get the one Secret name in ns.
func readOne(ns, user, name string) {
	GinkgoHelper()
	grant(ns, user, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get"}})
}

// storeInEtcd writes p straight into etcd, as an SLOPolicy written before
// the CRD's current rules would be stored: the API server only ever sees it
// on the way out and on later updates. It goes through etcd's JSON gateway
// (the etcd that envtest started; custom resources are stored as JSON).
func storeInEtcd(p *v1.SLOPolicy) {
	GinkgoHelper()
	p.APIVersion, p.Kind = v1.GroupVersion.String(), "SLOPolicy"
	p.UID, p.Generation, p.CreationTimestamp = uuid.NewUUID(), 1, metav1.Now()
	p.Spec.Env, p.Spec.Gate.Mode, p.Spec.Gate.NoData = "prod", v1.GateStrict, v1.NoDataBlock
	value, err := json.Marshal(p)
	Expect(err).NotTo(HaveOccurred())
	key := fmt.Sprintf("/registry/%s/slopolicies/%s/%s", v1.GroupVersion.Group, p.Namespace, p.Name)
	body, err := json.Marshal(map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)), "value": base64.StdEncoding.EncodeToString(value),
	})
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.Post(env.ControlPlane.Etcd.URL.String()+"/v3/kv/put", "application/json", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Body.Close()).To(Succeed())
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
}
