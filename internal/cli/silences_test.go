package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// as runs the CLI in f's namespace as id, a ServiceAccount bound to one
// shipped role.
func (f *roleFixture) as(id identity, stdin string, args ...string) result {
	return runWith(id.kubeconfig, stdin, append([]string{"-n", f.ns}, args...)...)
}

func silenceNamed(ns, name string) *v1.Silence {
	GinkgoHelper()
	var s v1.Silence
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)).To(Succeed())
	return &s
}

// silencedBy is the message of a's Silenced condition while True, else "".
func silencedBy(g Gomega, a *v1.Alert) string {
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
	c := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionSilenced)
	if c == nil || c.Status != metav1.ConditionTrue {
		return ""
	}
	return c.Message
}

var _ = Describe("alertbridge silences", func() {
	It("previews, adds, lists and expires a Silence as on-call; its Alert is counted, not claimable, then back in play", func() {
		f := newRoleFixture("")
		oncall, viewer, agentID := f.ids["oncall"], f.ids["viewer"], f.ids["agent"]
		a := f.decidedAlert() // gateway/prod/latency

		// query: which Alerts would service=gateway env=prod silence?
		r := f.as(oncall, "", "silences", "query", "service=gateway", "env=prod")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(MatchRegexp(`^NAME\s+PHASE\s+SERVICE\s+ENV\s+KIND\s+SEVERITY\s+OCCURRENCES\s+SILENCED\n`+
			a.Name+`\s+New\s+gateway\s+prod\s+latency\s+P3\s+1\s+-\n$`), "stdout holds the table alone")
		Expect(r.err).To(Equal(`Alerts in play that {service="gateway", env="prod"} matches: 1` + "\n"))
		// The printers of every list: wide, --no-headers, name, custom-columns.
		r = f.as(oncall, "", "silences", "query", "service=gateway", "-o", "wide")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(MatchRegexp(`^NAME\s+PHASE.*\s+SILENCED\s+HOLDER\s+LAST SEEN\s+TITLE\s+SOURCE\s+FINGERPRINT\n` +
			a.Name + `\s+New\s+.*\s+p95 above 300ms\s`))
		r = f.as(oncall, "", "silences", "query", "service=gateway", "--no-headers")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(MatchRegexp(`^` + a.Name + `\s+New\s+gateway\s+prod\s+latency\s+P3\s+1\s+-\n$`))
		r = f.as(oncall, "", "silences", "query", "service=gateway", "-o", "name")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(Equal("alert.ops.alertbridge.io/" + a.Name + "\n"))
		Expect(r.err).To(BeEmpty(), "no count line beside machine-readable output")
		r = f.as(oncall, "", "silences", "query", "service=gateway", "-o", "custom-columns=ALERT:.metadata.name,HOST:.spec.labels.host")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(MatchRegexp(`^ALERT\s+HOST\n` + a.Name + `\s+` + a.Spec.Labels["host"] + `\n$`))
		r = run("", "silences", "query", "service=gateway", "-A", "--show-labels", "--sort-by", ".status.occurrences")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(MatchRegexp(`^NAMESPACE\s+NAME\s+.*\s+SILENCED\s+LABELS\n`))
		Expect(r.out).To(MatchRegexp(f.ns + `\s+` + a.Name + `\s+New\s`))
		r = f.as(viewer, "", "silences", "query", "service=payments")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(Equal(`No Alerts in play match {service="payments"}.` + "\n"))
		r = f.as(viewer, "", "silences", "query", "service=payments", "--no-headers")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(BeEmpty())

		// add, amtool's way; the API server records on-call as the creator
		// and add waits until the operator applies it.
		before := time.Now()
		r = f.as(oncall, "", "silences", "add", "service=gateway", "env=prod", "--duration", "2h", "--comment", "deploy")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		name := strings.TrimSpace(r.out)
		s := silenceNamed(f.ns, name)
		Expect(s.Spec.CreatedBy).To(Equal(oncall.user))
		Expect(s.Spec.Matchers).To(Equal([]v1.SilenceMatcher{
			{Name: "service", Operator: v1.MatchEqual, Value: "gateway"}, {Name: "env", Operator: v1.MatchEqual, Value: "prod"}}))
		Expect(s.Spec.EndsAt.Time).To(BeTemporally("~", before.Add(2*time.Hour), 5*time.Second))
		Expect(s.Status.State).To(Equal(v1.SilenceActive), "add returns once the operator applies the Silence")

		Eventually(func(g Gomega) {
			g.Expect(silencedBy(g, a)).To(HavePrefix("silenced by Silence " + name + " until "))
		}, settle, poll).Should(Succeed())
		r = f.as(oncall, "", "silences", "query", "service=gateway")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(ContainSubstring("silenced by Silence " + name))

		// Still counted; nobody claims it.
		Expect(k8s.Create(ctx, testbuild.MakeAlert("", f.ns).LabelMap(a.Spec.Labels).Obj())).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Occurrences).To(BeEquivalentTo(2))
		}, settle, poll).Should(Succeed())
		r = f.as(agentID, "", "alerts", "claim", "--owner", "a1", "--limit", "5")
		Expect(r.code).To(Equal(cli.ExitNothing), "the only Alert is silenced: %s%s", r.out, r.err)

		// list (viewer) and the dashboard's silenced count.
		r = f.as(viewer, "", "silences", "list")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(MatchRegexp(name + `\s+Active\s+\{service="gateway", env="prod"\}\s+\S+ ago\s+in 1\d\dm\s+` +
			strings.ReplaceAll(oncall.user, ".", `\.`) + `\s+deploy`))
		var d query.Dashboard
		Eventually(func(g Gomega) {
			r := f.as(viewer, "", "dashboard", "-o", "json")
			g.Expect(r.code).To(Equal(cli.ExitOK), r.err)
			g.Expect(json.Unmarshal([]byte(r.out), &d)).To(Succeed())
			g.Expect(d.Silenced).To(BeEquivalentTo(1))
		}, settle, poll).Should(Succeed())
		Expect(d.Counts["New"]).To(BeEquivalentTo(1), "a silenced Alert is still counted")
		Expect(d.Silences).To(HaveLen(1))
		Expect(d.Silences[0].Name).To(Equal(name))
		Expect(d.Silences[0].Alerts).To(BeEquivalentTo(1))
		Expect(d.Latest[0].SilencedBy).To(HavePrefix("silenced by Silence " + name))
		r = f.as(viewer, "", "dashboard")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(ContainSubstring("SILENCES (1 alerts silenced)"))
		Expect(r.out).To(MatchRegexp(name + `\s+Active\s+\{service="gateway", env="prod"\}\s+1\s+`))

		// expire: back in play at once, and claimable.
		r = f.as(oncall, "", "silences", "expire", name)
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(Equal("silence/" + name + " expired\n"))
		Eventually(func(g Gomega) { g.Expect(silencedBy(g, a)).To(BeEmpty()) }, settle, poll).Should(Succeed())
		r = f.as(agentID, "", "alerts", "claim", "--owner", "a1", "--limit", "5", "-o", "json")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(ContainSubstring(a.Name))
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
			g.Expect(s.Status.State).To(Equal(v1.SilenceExpired))
		}, settle, poll).Should(Succeed())
		r = f.as(viewer, "", "silences", "list")
		Expect(r.out).To(Equal("No Silences found.\n"))
		r = f.as(viewer, "", "silences", "list", "--expired", "-o", "json")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(ContainSubstring(`"name": "` + name + `"`))
		r = f.as(oncall, "", "silences", "expire", name)
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(HavePrefix("silence/" + name + " already ended at "))
	})

	It("expires a pending Silence by ending it before it starts", func() {
		f := newRoleFixture("")
		start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		r := f.as(f.ids["oncall"], "", "silences", "add", "host=db-1", "--start", start, "--duration", "1h", "--comment", "tonight", "--name", "tonight")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(silenceNamed(f.ns, "tonight").Status.State).To(Equal(v1.SilencePending))
		r = f.as(f.ids["oncall"], "", "silences", "expire", "tonight")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Eventually(func(g Gomega) {
			s := silenceNamed(f.ns, "tonight")
			g.Expect(s.Status.State).To(Equal(v1.SilenceExpired))
			g.Expect(s.Spec.EndsAt.Time).To(BeTemporally("==", s.Spec.StartsAt.Time))
		}, settle, poll).Should(Succeed())
	})

	It("refuses bad input with exit 1 before asking the cluster, and a Silence longer than the namespace allows", func() {
		f := newRoleFixture("")
		oncall := f.ids["oncall"]
		Expect(k8s.Create(ctx, testbuild.MakeAlertRoutingPolicy(f.ns).SilenceMaxDuration(30*time.Minute).Obj())).To(Succeed())
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"silences", "add", "--comment", "x"}, "give at least one matcher"},
			{[]string{"silences", "add", "service=gateway"}, "--comment is required"},
			{[]string{"silences", "add", `route=~".*"`, "--comment", "x"}, "at least one matcher must not match the empty string"},
			{[]string{"silences", "add", "service=gateway", "--comment", "x", "--duration", "1h", "--end", "2030-01-01T00:00:00Z"}, "not both"},
			{[]string{"silences", "add", "service=gateway", "--comment", "x", "--end", "2020-01-01T00:00:00Z"}, "which is past"},
			{[]string{"silences", "add", `service=~"(unclosed"`, "--comment", "x"}, "service"},
			{[]string{"silences", "query"}, "give at least one matcher"},
			{[]string{"silences", "list", "-o", "xml"}, "--output"},
		} {
			r := f.as(oncall, "", c.args...)
			Expect(r.code).To(Equal(cli.ExitUsage), "%v: %s%s", c.args, r.out, r.err)
			Expect(r.err).To(ContainSubstring(c.want), "%v", c.args)
		}
		r := f.as(oncall, "", "silences", "expire", "nope")
		Expect(r.code).To(Equal(cli.ExitNotFound), r.err)

		r = f.as(oncall, "", "silences", "add", "service=gateway", "--duration", "2h", "--comment", "too long", "--name", "long")
		Expect(r.code).To(Equal(cli.ExitUsage), r.out)
		Expect(r.err).To(ContainSubstring("silence/long was created but the operator does not apply it: spec.endsAt: the Silence lasts 2h0m0s"))
		Expect(r.err).To(ContainSubstring("longer than this namespace allows (30m0s, AlertRoutingPolicy spec.silences.maxDuration)"))
	})

	It("imports the silences a real Alertmanager serves at /api/v2/silences, once", func() {
		f := newRoleFixture("")
		oncall := f.ids["oncall"]
		am := startAlertmanager()
		now := time.Now().UTC()
		post := func(body string) {
			resp, err := http.Post(am+"/api/v2/silences", "application/json", strings.NewReader(body)) //nolint:noctx // test
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			Expect(resp.StatusCode).To(Equal(http.StatusOK), "%s", b)
		}
		ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
		post(fmt.Sprintf(`{"matchers":[{"name":"service","value":"gateway","isRegex":false,"isEqual":true},
			{"name":"route","value":"/v1/(chat|embed)","isRegex":true,"isEqual":true},
			{"name":"kind","value":"latency","isRegex":false,"isEqual":false},
			{"name":"host","value":"canary-.*","isRegex":true,"isEqual":false}],
			"startsAt":%q,"endsAt":%q,"createdBy":"bob","comment":"gateway rollout"}`, ts(-time.Minute), ts(2*time.Hour)))
		post(fmt.Sprintf(`{"matchers":[{"name":"service","value":"db","isRegex":false}],
			"startsAt":%q,"endsAt":%q,"createdBy":"carol","comment":"db maintenance tonight"}`, ts(time.Hour), ts(3*time.Hour)))
		resp, err := http.Get(am + "/api/v2/silences") //nolint:noctx // test
		Expect(err).NotTo(HaveOccurred())
		served, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.Body.Close()).To(Succeed())
		var ids []struct {
			ID      string `json:"id"`
			Comment string `json:"comment"`
		}
		Expect(json.Unmarshal(served, &ids)).To(Succeed())
		Expect(ids).To(HaveLen(2))
		id := map[string]string{}
		for _, s := range ids {
			id[s.Comment] = s.ID
		}
		file := filepath.Join(GinkgoT().TempDir(), "silences.json")
		Expect(os.WriteFile(file, served, 0o600)).To(Succeed())

		r := f.as(oncall, "", "silences", "import", file)
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		rollout := silenceNamed(f.ns, "am-"+id["gateway rollout"])
		Expect(rollout.Spec.Matchers).To(Equal([]v1.SilenceMatcher{
			{Name: "service", Operator: v1.MatchEqual, Value: "gateway"},
			{Name: "route", Operator: v1.MatchRegexp, Value: "/v1/(chat|embed)"},
			{Name: "kind", Operator: v1.MatchNotEqual, Value: "latency"},
			{Name: "host", Operator: v1.MatchNotRegexp, Value: "canary-.*"},
		}))
		Expect(rollout.Spec.StartsAt).To(BeNil(), "a start in the past becomes the creation, as in Alertmanager")
		Expect(rollout.Spec.EndsAt.Time).To(BeTemporally("~", now.Add(2*time.Hour), time.Second))
		Expect(rollout.Spec.CreatedBy).To(Equal(oncall.user))
		Expect(rollout.Spec.Comment).To(Equal("gateway rollout (imported from Alertmanager silence " + id["gateway rollout"] + ", created by bob)"))
		tonight := silenceNamed(f.ns, "am-"+id["db maintenance tonight"])
		Expect(tonight.Spec.StartsAt.Time).To(BeTemporally("~", now.Add(time.Hour), time.Second))
		Expect(tonight.Spec.Matchers).To(Equal([]v1.SilenceMatcher{{Name: "service", Operator: v1.MatchEqual, Value: "db"}}))
		Eventually(func(g Gomega) {
			g.Expect(silenceNamed(f.ns, rollout.Name).Status.State).To(Equal(v1.SilenceActive))
			g.Expect(silenceNamed(f.ns, tonight.Name).Status.State).To(Equal(v1.SilencePending))
		}, settle, poll).Should(Succeed())

		// Again, from stdin: nothing new. One object (not an array) and an
		// expired silence are read too.
		r = f.as(oncall, string(served), "silences", "import", "-")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(strings.Count(r.out, "already imported")).To(Equal(2), r.out)
		var list v1.SilenceList
		Expect(k8s.List(ctx, &list, client.InNamespace(f.ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(2))
		one := fmt.Sprintf(`{"id":"5bd2d6f4-0000-4000-8000-000000000001","matchers":[{"name":"env","value":"staging","isRegex":false}],
			"startsAt":%q,"endsAt":%q,"createdBy":"dave","comment":"old","status":{"state":"expired"}}`, ts(-3*time.Hour), ts(-2*time.Hour))
		r = f.as(oncall, one, "silences", "import", "-")
		Expect(r.code).To(Equal(cli.ExitOK), r.err)
		Expect(r.out).To(Equal("silence 5bd2d6f4-0000-4000-8000-000000000001: skipped, already ended\n"))

		// Not JSON of that shape: exit 1; not on-call: exit 7.
		r = f.as(oncall, `{"matchers":"service=gateway"}`, "silences", "import", "-")
		Expect(r.code).To(Equal(cli.ExitUsage), r.err)
		Expect(r.err).To(ContainSubstring("is not Alertmanager silence JSON"))
		r = f.as(f.ids["viewer"], strings.Replace(one, `"expired"`, `"active"`, 1), "silences", "import", "-")
		Expect(r.code).To(Equal(cli.ExitOK), "an ended silence is skipped before any write: %s", r.err)
		fresh := fmt.Sprintf(`{"matchers":[{"name":"env","value":"staging","isRegex":false}],"endsAt":%q,"comment":"x"}`, ts(time.Hour))
		r = f.as(f.ids["viewer"], fresh, "silences", "import", "-")
		Expect(r.code).To(Equal(cli.ExitForbidden), r.err)
	})
})

// startAlertmanager runs Debian's prometheus-alertmanager (installed by
// hack/ensure-packages.sh) on a free loopback port until the spec ends.
func startAlertmanager() string {
	GinkgoHelper()
	am, err := promtest.StartAlertmanager(ctx, "route:\n  receiver: none\nreceivers:\n  - name: none\n")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			GinkgoWriter.Printf("alertmanager log:\n%s\n", am.Log())
		}
		am.Stop()
	})
	return am.URL()
}
