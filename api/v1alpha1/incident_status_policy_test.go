package v1alpha1_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// These specs write an Incident's status the way kubectl does (raw merge
// patches of the whole list a change touches, no client-side checks) as
// users bound to the shipped roles, against the admission policy
// alertbridge-incident-status as config/default installs it. Each attack
// a security review made as on-call is refused by the API server alone.
var _ = Describe("Who may write an Incident's status (alertbridge-incident-status)", func() {
	var (
		ns       string
		operator client.Client
		oncall   client.Client
		inc      *v1.Incident
	)
	const oncallUser = "alice@example.com"

	// opened is the Incident as the operator leaves it after opening it,
	// triaging its first Alert and paging a Receiver: inside the cooldown.
	opened := func(inc *v1.Incident) {
		t := time.Now()
		at := metav1.NewTime(t)
		until := metav1.NewTime(t.Add(time.Hour))
		s := &inc.Status
		s.OpenedAt, s.LastActivityAt, s.ObservedState = &at, &at, v1.IncidentOpen
		incident.AddEntry(inc, t, v1.TimelineOpened, "Incident opened (P1, gateway slow)", "")
		Expect(incident.AppendAlert(inc, "a0", t, "")).To(BeTrue())
		s.Triage = &v1.TriageStatus{ObservedAlertCount: 1, Runs: 1, LastTriageAt: &at, CooldownUntil: &until, DispatchedRuns: 1,
			LastRunRef: &v1.LocalObjectReference{Name: incident.RunName(inc.Name, 1)}, LastRunAlertRef: "a0"}
		incident.AddEntry(inc, t, v1.TimelineTriageStarted, "Triage run started", "a0")
		s.ObservedTimelineSeq = s.TimelineSeq
		s.Notifications = []v1.IncidentNotification{{Receiver: "pagerduty", Event: v1.NotifyClosed, Seq: 2, State: v1.IncidentClosed,
			Severity: v1.SeverityP1, Key: "inc-closed-2", DeliveryAttempts: v1.DeliveryAttempts{Attempts: 1, LastAttemptAt: &at, NextAttemptAt: &until}}}
	}

	BeforeEach(func() {
		ns = testbuild.Namespace(Default, k8s, "api-")
		var err error
		operator, err = client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
		Expect(err).NotTo(HaveOccurred())
		oncall = userIn(ns, oncallUser, "alertbridge-oncall")

		inc = validIncident(ns).Obj()
		Expect(k8s.Create(ctx, inc)).To(Succeed())
		orig := inc.DeepCopy()
		opened(inc)
		Expect(operator.Status().Patch(ctx, inc, client.MergeFrom(orig))).To(Succeed(), "the operator writes what it owns")
	})

	// patch sends status as a raw merge patch, as kubectl patch --subresource=status does.
	patch := func(c client.Client, status map[string]any) error {
		body, err := json.Marshal(map[string]any{"status": status})
		Expect(err).NotTo(HaveOccurred())
		return c.Status().Patch(ctx, inc.DeepCopy(), client.RawPatch("application/merge-patch+json", body))
	}
	// timelineWith is the stored timeline plus extra, as a patch carries it.
	timelineWith := func(extra ...map[string]any) []any {
		var out []any
		for _, e := range inc.Status.Timeline {
			var m map[string]any
			b, err := json.Marshal(e)
			Expect(err).NotTo(HaveOccurred())
			Expect(json.Unmarshal(b, &m)).To(Succeed())
			out = append(out, m)
		}
		for _, e := range extra {
			out = append(out, e)
		}
		return out
	}
	entry := func(seq int64, typ v1.TimelineType, author, msg string) map[string]any {
		return map[string]any{"seq": seq, "at": now(), "type": string(typ), "author": author, "message": msg}
	}
	stored := func() *v1.Incident {
		var got v1.Incident
		Expect(k8s.Get(ctx, keyOf(inc), &got)).To(Succeed())
		return &got
	}
	refused := func(c client.Client, status map[string]any, msg string) {
		GinkgoHelper()
		before := stored()
		// The binding takes a moment to reach the authorizer; the policy is
		// in effect from the start.
		Eventually(func() error { return patch(c, status) }, "30s", "100ms").Should(MatchError(ContainSubstring(msg)), "status %v", status)
		Expect(stored().Status).To(Equal(before.Status), "a refused write changes nothing")
	}

	It("refuses on-call a re-run of triage during the cooldown, with a Job name and Alert of their choosing", func() {
		refused(oncall, map[string]any{"triage": map[string]any{
			"runs": 2, "lastTriageAt": now()[:19] + "Z", "lastRunRef": map[string]any{"name": "pwn"}, "lastRunAlertRef": "$(id)",
		}}, "status.triage: only the alertbridge operator writes this (Incident "+inc.Name+"); "+oncallUser+" may append Alert refs")
		refused(oncall, map[string]any{"triage": map[string]any{"cooldownUntil": nil}}, "status.triage: only the alertbridge operator writes this")
		refused(oncall, map[string]any{"triage": map[string]any{"observedAlertCount": 0}}, "status.triage: only the alertbridge operator writes this")
	})

	It("refuses on-call a timeline entry written in someone else's name, or in nobody's", func() {
		refused(oncall, map[string]any{"timelineSeq": 4, "timeline": timelineWith(entry(4, v1.TimelineNote, "cto@example.com", "approved the rollback"))},
			"status.timeline[].author must name you ("+oncallUser+")")
		anonymous := entry(4, v1.TimelineNote, "", "approved the rollback")
		delete(anonymous, "author")
		refused(oncall, map[string]any{"timelineSeq": 4, "timeline": timelineWith(anonymous)}, "status.timeline[].author must name you")
	})

	It("refuses on-call a notification record that would stop a page", func() {
		// The record of the Closed page still to be delivered, marked delivered.
		refused(oncall, map[string]any{"notifications": []any{map[string]any{
			"receiver": "pagerduty", "event": "Closed", "seq": 2, "state": "Closed", "severity": "P1", "key": "inc-closed-2",
			"attempts": 1, "deliveredAt": now()[:19] + "Z",
		}}}, "status.notifications: only the alertbridge operator writes this")
	})

	It("refuses on-call editing, removing or folding an old timeline entry", func() {
		edited := timelineWith()
		edited[0].(map[string]any)["message"] = "Incident opened by mistake"
		refused(oncall, map[string]any{"timeline": edited}, "status.timeline: "+oncallUser+" may only append entries; only the alertbridge operator changes, trims or folds")
		refused(oncall, map[string]any{"timeline": timelineWith()[1:]}, "status.timeline: "+oncallUser+" may only append entries")
		refused(oncall, map[string]any{"timeline": []any{map[string]any{
			"seq": 4, "at": now(), "type": "Summary", "message": "nothing to see", "summary": map[string]any{"count": 3, "firstSeq": 1, "firstAt": now()},
		}}}, "status.timeline: "+oncallUser+" may only append entries")
	})

	It("refuses on-call the operator's entry types, out-of-order seqs and a timelineSeq that does not follow", func() {
		refused(oncall, map[string]any{"timelineSeq": 5, "timeline": timelineWith(entry(5, v1.TimelineNote, oncallUser, "skipped one"))},
			"status.timeline: appended entries are numbered on from status.timelineSeq (3): seq 4, 5")
		refused(oncall, map[string]any{"timelineSeq": 4, "timeline": timelineWith(entry(4, v1.TimelineTriageStarted, oncallUser, "run"))},
			"may append Note and AlertAppended entries; only the alertbridge operator writes the others")
		refused(oncall, map[string]any{"timeline": timelineWith(entry(4, v1.TimelineNote, oncallUser, "n"))},
			"status.timelineSeq is the seq of the newest entry: it grows by the number of entries appended (1)")
	})

	It("refuses on-call a count that no ref backs, and any change to the refs but one appended", func() {
		refused(oncall, map[string]any{"alertCount": 50}, "status.alertCount counts the Alerts appended to Incident "+inc.Name)
		refused(oncall, map[string]any{"alertRefs": []string{"a0", "a1"}}, "status.alertCount counts the Alerts appended")
		refused(oncall, map[string]any{"alertRefs": []string{"other"}, "alertCount": 1}, "status.alertRefs: "+oncallUser+" may append one Alert")
		refused(oncall, map[string]any{"alertRefs": []string{"a0", "a0"}, "alertCount": 2}, "status.alertRefs: "+oncallUser+" may append one Alert that is not there yet")
		refused(oncall, map[string]any{"alertRefs": []string{"a0", "a1", "a2"}, "alertCount": 3}, "status.alertRefs")
	})

	It("refuses on-call every other field the operator owns", func() {
		for field, value := range map[string]any{
			"lastActivityAt": "2030-01-01T00:00:00Z", "openedAt": nil, "mirroredTimelineSeq": 100, "observedTimelineSeq": 100,
			"postmortemRef": map[string]any{"name": "mine"}, "observedState": "Closed", "closedAt": "2030-01-01T00:00:00Z",
			"conditions": []any{}, "observedGeneration": 9,
		} {
			refused(oncall, map[string]any{field: value}, "status."+field+": only the alertbridge operator writes this")
		}
	})

	It("lets on-call append an Alert ref with its entry, and notes, in their own name", func() {
		appendRef := map[string]any{
			"alertRefs": []string{"a0", "a1"}, "alertCount": 2, "timelineSeq": 4,
			"timeline": timelineWith(entry(4, v1.TimelineAlertAppended, oncallUser, "Alert a1 appended")),
		}
		Eventually(func() error { return patch(oncall, appendRef) }, "30s", "100ms").Should(Succeed())
		inc = stored()
		Expect(patch(oncall, map[string]any{"timelineSeq": 6, "timeline": timelineWith(
			entry(5, v1.TimelineNote, oncallUser, "rolled back v42"), entry(6, v1.TimelineNote, oncallUser, "error rate back to normal"))})).To(Succeed())
		got := stored()
		Expect(got.Status.AlertCount).To(BeEquivalentTo(2))
		Expect(got.Status.TimelineSeq).To(BeEquivalentTo(6))
		Expect(got.Status.Timeline[5].Author).To(Equal(oncallUser))
		Expect(got.Status.Triage.Runs).To(BeEquivalentTo(1), "triage is the operator's to decide")
	})

	It("lets on-call drop the oldest ref only to stay within 100", func() {
		refs := make([]string, incident.MaxAlertRefs)
		for i := range refs {
			refs[i] = fmt.Sprintf("a%d", i)
		}
		orig := inc.DeepCopy()
		inc.Status.AlertRefs, inc.Status.AlertCount, inc.Status.Triage.ObservedAlertCount = refs, 150, 150
		Expect(operator.Status().Patch(ctx, inc, client.MergeFrom(orig))).To(Succeed())
		inc = stored()
		full := slices.Concat(refs[1:], []string{"new"})
		appendNew := func(refs []string) map[string]any {
			return map[string]any{"alertRefs": refs, "alertCount": 151, "timelineSeq": 4,
				"timeline": timelineWith(entry(4, v1.TimelineAlertAppended, oncallUser, "Alert new appended"))}
		}
		refused(oncall, appendNew(slices.Concat(refs[2:], []string{"new"})), "status.alertRefs")
		Expect(patch(oncall, appendNew(full))).To(Succeed())
		Expect(stored().Status.AlertRefs).To(Equal(full))
	})

	It("judges an append to a timeline of 999 entries within its cost budget, and the CRD refuses the 1001st", func() {
		orig := inc.DeepCopy()
		// As long as the operator's fold cap lets them be (460 KiB in all).
		long := strings.Repeat("p95 over 300ms ", 25)
		for range incident.TimelineItems - 1 - len(inc.Status.Timeline) {
			incident.AddEntry(inc, time.Now(), v1.TimelineStateChanged, long, "a0")
		}
		inc.Status.ObservedTimelineSeq = inc.Status.TimelineSeq
		Expect(operator.Status().Patch(ctx, inc, client.MergeFrom(orig))).To(Succeed())
		inc = stored()
		seq := inc.Status.TimelineSeq
		Eventually(func() error {
			return patch(oncall, map[string]any{"timelineSeq": seq + 1, "timeline": timelineWith(entry(seq+1, v1.TimelineNote, oncallUser, strings.Repeat("<&>", 341)))})
		}, "30s", "100ms").Should(Succeed())
		inc = stored()
		Expect(patch(oncall, map[string]any{"timelineSeq": seq + 2, "timeline": timelineWith(entry(seq+2, v1.TimelineNote, oncallUser, "one more"))})).
			To(MatchError(ContainSubstring("must have at most 1000 items")))
	})

	// The usual grant to an app team's admin: every verb on every
	// alertbridge resource of the namespace. It is not the operator.
	It("refuses a namespace admin holding every verb the same", func() {
		admin := appAdmin(ns, "app-admin@example.com")
		refused(admin, map[string]any{"triage": map[string]any{"runs": 2}}, "status.triage: only the alertbridge operator writes this")
	})
})

var _ = Describe("The policy alertbridge-incident-status itself", func() {
	// What kube-controller-manager reports in a policy's
	// status.typeChecking (envtest runs none): every expression checked
	// against the Incident's schema as the API server serves it. The
	// checker skips wildcard versions and subresources, which the policy
	// matches, so it is given the one version and the resource.
	It("type-checks against the Incident schema without a warning", func() {
		var p admissionregistrationv1.ValidatingAdmissionPolicy
		Expect(k8s.Get(ctx, client.ObjectKey{Name: "alertbridge-incident-status"}, &p)).To(Succeed())
		rules := p.Spec.MatchConstraints.ResourceRules
		Expect(rules).To(HaveLen(1))
		rules[0].APIVersions, rules[0].Resources = []string{v1.GroupVersion.Version}, []string{"incidents"}
		dc, err := discovery.NewDiscoveryClientForConfig(env.Admin)
		Expect(err).NotTo(HaveOccurred())
		checker := &validating.TypeChecker{
			SchemaResolver: &resolver.ClientDiscoveryResolver{Discovery: dc},
			RestMapper:     restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		}
		Expect(checker.Check(&p)).To(BeEmpty())
	})
})

// TestIncidentStatusPolicyCoversEveryField: the policy allow-lists what
// others may change, so every status field the CRD has must be either one
// of those or among the fields it keeps as the operator wrote them; a new
// field must be placed on one side before it ships.
func TestIncidentStatusPolicyCoversEveryField(t *testing.T) {
	root := testenv.Root()
	raw, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", "ops.alertbridge.io_incidents.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	policy, err := os.ReadFile(filepath.Join(root, "config", "admission", "incident_status_policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	appendable := []string{"alertRefs", "alertCount", "timeline", "timelineSeq"}
	for _, v := range crd.Spec.Versions {
		for field := range v.Schema.OpenAPIV3Schema.Properties["status"].Properties {
			kept := strings.Contains(string(policy), fmt.Sprintf("'status.%[1]s': object.?status.?%[1]s == oldObject.?status.?%[1]s,", field)) ||
				strings.Contains(string(policy), fmt.Sprintf("'status.%[1]s': object.?status.?%[1]s == oldObject.?status.?%[1]s\n", field))
			if kept == slices.Contains(appendable, field) {
				t.Errorf("status.%s of %s: the policy must either keep it as the operator wrote it or be one of %v, not both or neither", field, v.Name, appendable)
			}
		}
	}
}
