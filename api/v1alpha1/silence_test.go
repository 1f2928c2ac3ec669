package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/silence"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// validSilence is a two-hour Silence of the gateway from now, not yet
// created.
func validSilence(ns string) *testbuild.SilenceWrapper {
	start := time.Now().UTC().Truncate(time.Second)
	return testbuild.MakeSilence("", ns).GenerateName("deploy-").StartsAt(start).EndsAt(start.Add(2 * time.Hour)).Comment("deploy")
}

var _ = Describe("Silence validation", func() {
	var ns string
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	It("defaults the operator to =", func() {
		s := validSilence(ns).Matchers(v1.SilenceMatcher{Name: "service", Value: "gateway"}).CreatedBy("admin").Obj()
		Expect(k8s.Create(ctx, s)).To(Succeed())
		Expect(s.Spec.Matchers[0].Operator).To(Equal(v1.MatchEqual))
	})

	DescribeTable("refuses invalid Silences naming the field",
		func(mutate func(*v1.Silence), want string) {
			s := validSilence(ns).CreatedBy("admin").Obj()
			mutate(s)
			err := k8s.Create(ctx, s)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("no matchers", func(s *v1.Silence) { s.Spec.Matchers = nil }, "spec.matchers"),
		Entry("too many matchers", func(s *v1.Silence) {
			for i := range v1.MaxSilenceMatchers {
				s.Spec.Matchers = append(s.Spec.Matchers, v1.SilenceMatcher{Name: fmt.Sprintf("l%d", i), Value: "x"})
			}
		}, "spec.matchers: Too many"),
		Entry("unknown operator", func(s *v1.Silence) { s.Spec.Matchers[0].Operator = "==" }, "spec.matchers[0].operator"),
		Entry("a name with the operator in it", func(s *v1.Silence) { s.Spec.Matchers[0].Name = `service="gateway"` }, "spec.matchers[0].name"),
		Entry("a name too long", func(s *v1.Silence) { s.Spec.Matchers[0].Name = strings.Repeat("n", 64) }, "spec.matchers[0].name"),
		Entry("a value too long", func(s *v1.Silence) { s.Spec.Matchers[0].Value = strings.Repeat("v", 1025) }, "spec.matchers[0].value"),
		Entry("a bad regular expression", func(s *v1.Silence) {
			s.Spec.Matchers = append(s.Spec.Matchers, v1.SilenceMatcher{Name: "route", Operator: v1.MatchRegexp, Value: "(unclosed"})
		}, "spec.matchers[1]: Invalid value: \"object\": error parsing regexp: missing closing )"),
		Entry("matchers that all match the empty string", func(s *v1.Silence) {
			s.Spec.Matchers = []v1.SilenceMatcher{{Name: "route", Operator: v1.MatchRegexp, Value: ".*"}, {Name: "env", Operator: v1.MatchNotEqual, Value: "x"}}
		}, "spec.matchers: Invalid value: spec.matchers: at least one matcher must not match the empty string"),
		Entry("no endsAt", func(s *v1.Silence) { s.Spec.EndsAt = metav1.Time{} }, "spec.endsAt"),
		Entry("endsAt before startsAt", func(s *v1.Silence) {
			s.Spec.EndsAt = metav1.NewTime(s.Spec.StartsAt.Add(-time.Minute))
		}, "spec.endsAt: Invalid value: spec.endsAt must not be before spec.startsAt"),
		Entry("longer than 30 days", func(s *v1.Silence) {
			s.Spec.EndsAt = metav1.NewTime(s.Spec.StartsAt.Add(721 * time.Hour))
		}, "a Silence lasts at most 720h (30 days)"),
		Entry("no comment", func(s *v1.Silence) { s.Spec.Comment = "" }, "spec.comment"),
	)

	It("agrees with Alertmanager's matchers on what matches the empty string", func() {
		for _, ms := range [][]v1.SilenceMatcher{
			{{Name: "a", Operator: v1.MatchEqual, Value: ""}},
			{{Name: "a", Operator: v1.MatchNotEqual, Value: "x"}},
			{{Name: "a", Operator: v1.MatchNotEqual, Value: ""}},
			{{Name: "a", Operator: v1.MatchRegexp, Value: "x|"}},
			{{Name: "a", Operator: v1.MatchRegexp, Value: "x+"}},
			{{Name: "a", Operator: v1.MatchNotRegexp, Value: "x*"}},
			{{Name: "a", Operator: v1.MatchNotRegexp, Value: "x+"}},
		} {
			s := validSilence(ns).CreatedBy("admin").Matchers(ms...).Obj()
			compiled, err := silence.Compile(ms)
			Expect(err).NotTo(HaveOccurred())
			err = k8s.Create(ctx, s, client.DryRunAll)
			Expect(err == nil).To(Equal(!silence.MatchesEverything(compiled)), "%s: %v", silence.String(ms), err)
		}
	})

	It("keeps spec.createdBy as it was", func() {
		s := validSilence(ns).CreatedBy("admin").Obj()
		Expect(k8s.Create(ctx, s)).To(Succeed())
		changed := s.DeepCopy()
		changed.Spec.CreatedBy = "someone-else"
		Expect(k8s.Update(ctx, changed)).To(MatchError(ContainSubstring("spec.createdBy is immutable")))
		s.Spec.Comment = "deploy, extended"
		s.Spec.EndsAt = metav1.NewTime(s.Spec.EndsAt.Add(time.Hour))
		Expect(k8s.Update(ctx, s)).To(Succeed(), "the window and the comment may change")
	})

	It("accepts config/samples/silence.yaml", func() {
		data, err := os.ReadFile(filepath.Join(testenv.Root(), "config", "samples", "silence.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var s v1.Silence
		Expect(yaml.UnmarshalStrict(data, &s)).To(Succeed())
		s.Namespace = ns
		Expect(k8s.Create(ctx, &s, client.DryRunAll)).To(Succeed())
		Expect(s.Spec.CreatedBy).NotTo(BeEmpty(), "the API server names the creator")
	})
})

// The rules only the API server can hold: who a Silence names as its
// creator, and that nobody claims an Alert a Silence silences. Users act
// through the shipped roles, with raw writes as kubectl makes them.
var _ = Describe("Silences and the API server's admission policies", func() {
	var ns string
	const (
		oncallUser = "alice@example.com"
		viewerUser = "bob@example.com"
		agentUser  = "system:serviceaccount:ops:supervisor"
	)
	BeforeEach(func() { ns = testbuild.Namespace(Default, k8s, "api-") })

	createAs := func(c client.Client, s *v1.Silence) error {
		body, err := json.Marshal(s)
		Expect(err).NotTo(HaveOccurred())
		var u v1.Silence
		Expect(json.Unmarshal(body, &u)).To(Succeed())
		return c.Create(ctx, &u)
	}

	It("fills spec.createdBy in with the requesting user, and refuses anyone else's name", func() {
		oncall := userIn(ns, oncallUser, "alertbridge-oncall")
		s := validSilence(ns).Obj()
		Eventually(func() error { return oncall.Create(ctx, s) }, "30s", "100ms").Should(Succeed())
		Expect(s.Spec.CreatedBy).To(Equal(oncallUser))

		forged := validSilence(ns).CreatedBy("bob@example.com").Obj()
		Expect(createAs(oncall, forged)).To(MatchError(ContainSubstring(
			"spec.createdBy must name you (" + oncallUser + "), not bob@example.com")))
		mine := validSilence(ns).CreatedBy(oncallUser).Obj()
		Expect(createAs(oncall, mine)).To(Succeed())

		// Expiring someone else's Silence is a patch of endsAt, which keeps
		// createdBy; changing createdBy is refused whoever asks.
		other := userIn(ns, "carol@example.com", "alertbridge-oncall")
		Eventually(func() error {
			return other.Patch(ctx, s.DeepCopy(), client.RawPatch("application/merge-patch+json",
				fmt.Appendf(nil, `{"spec":{"endsAt":%q}}`, time.Now().UTC().Format(time.RFC3339))))
		}, "30s", "100ms").Should(Succeed())
		Expect(other.Patch(ctx, s.DeepCopy(), client.RawPatch("application/merge-patch+json",
			[]byte(`{"spec":{"createdBy":"carol@example.com"}}`)))).To(MatchError(ContainSubstring("spec.createdBy is immutable")))
	})

	It("lets only the operator, known by name, name the caller it acts for; every verb on every alertbridge resource does not", func() {
		// A namespace admin's usual grant; the operator holds no create
		// right on Silences, so here it gets one too, and only the policy's
		// judgement is left.
		admin := appAdmin(ns, "app-admin@example.com",
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: env.Install.Namespace, Name: env.Install.ServiceAccount})
		forged := validSilence(ns).CreatedBy(oncallUser).Obj()
		Eventually(func() error { return createAs(admin, forged) }, "30s", "100ms").Should(MatchError(ContainSubstring(
			"spec.createdBy must name you (app-admin@example.com), not " + oncallUser)))

		operator, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		s := validSilence(ns).CreatedBy(oncallUser).Obj()
		Eventually(func() error { return createAs(operator, s) }, "30s", "100ms").Should(Succeed())
	})

	It("lets viewers read Silences and only on-call write them", func() {
		viewer := userIn(ns, viewerUser, "alertbridge-viewer")
		agent := userIn(ns, agentUser, "alertbridge-agent")
		Eventually(func() error { return viewer.List(ctx, &v1.SilenceList{}, client.InNamespace(ns)) }, "30s", "100ms").Should(Succeed())
		Expect(viewer.Create(ctx, validSilence(ns).Obj())).To(MatchError(ContainSubstring(`cannot create resource "silences"`)))
		Eventually(func() error { return agent.List(ctx, &v1.AlertList{}, client.InNamespace(ns)) }, "30s", "100ms").Should(Succeed())
		Expect(agent.List(ctx, &v1.SilenceList{}, client.InNamespace(ns))).To(MatchError(ContainSubstring(`cannot list resource "silences"`)))
	})

	It("refuses to let anyone but the operator claim a silenced Alert, however they write", func() {
		operator, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		agent := userIn(ns, agentUser, "alertbridge-agent")
		a := testbuild.MakeAlert("", ns).Obj()
		Expect(k8s.Create(ctx, a)).To(Succeed())
		// The operator decides the Alert and silences it (no operator runs
		// in this suite: the spec writes as the operator).
		orig := a.DeepCopy()
		alertstate.MarkCanonical(&a.Status, "fp", a.CreationTimestamp, a.Generation)
		meta.SetStatusCondition(&a.Status.Conditions, metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue,
			Reason: v1.ReasonSilenceActive, Message: "silenced by Silence deploy until 2026-12-01T00:00:00Z"})
		Expect(operator.Status().Patch(ctx, a, client.MergeFrom(orig))).To(Succeed())

		at := now() // a claim is acquired when it is first renewed
		claim := map[string]any{"status": map[string]any{"phase": "Processing", "attempts": 1, "claim": map[string]any{
			"holderIdentity": "supervisor", "holderUser": agentUser, "acquireTime": at, "renewTime": at, "leaseDurationSeconds": 600,
		}}}
		body, err := json.Marshal(claim)
		Expect(err).NotTo(HaveOccurred())
		patch := func() error {
			return agent.Status().Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", body))
		}
		Eventually(patch, "30s", "100ms").Should(MatchError(ContainSubstring(
			"status.phase: Alert " + a.Name + " is silenced by Silence deploy until 2026-12-01T00:00:00Z; nobody claims it until the Silence ends")))

		// Nor may the agent lift the Silence itself: conditions are the
		// operator's.
		lift, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{}}})
		Expect(err).NotTo(HaveOccurred())
		Expect(agent.Status().Patch(ctx, a.DeepCopy(), client.RawPatch("application/merge-patch+json", lift))).
			To(MatchError(ContainSubstring("status.conditions: only the alertbridge operator writes conditions")))

		// Once the operator says the Silence ended, the claim goes through.
		var cur v1.Alert
		Expect(operator.Get(ctx, keyOf(a), &cur)).To(Succeed())
		orig = cur.DeepCopy()
		meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionFalse,
			Reason: v1.ReasonSilenceEnded, Message: "no active Silence matches the Alert"})
		Expect(operator.Status().Patch(ctx, &cur, client.MergeFrom(orig))).To(Succeed())
		Expect(patch()).To(Succeed())
	})
})
