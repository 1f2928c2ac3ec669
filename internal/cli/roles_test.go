package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// roles are the roles table's columns, in order: the shipped ClusterRoles
// alertbridge-<role>.
var roles = []string{"monitor", "agent", "oncall", "viewer"}

// identity is a ServiceAccount bound to one shipped role, as a user would
// set it up: a kubeconfig for the CLI and a bearer token for the HTTP API.
type identity struct {
	role, user, owner string
	kubeconfig, token string
}

// roleRow is one row of the roles table.
type roleRow struct {
	action  string          // the cell as written, e.g. "`alertbridge alerts ack` (own claim)"
	command string          // what is in backquotes: a CLI command or an HTTP route
	allowed map[string]bool // role → ✓
}

// rolesDoc is the page whose "## Roles" section holds the roles table.
const rolesDoc = "docs/roles.md"

// readRolesTable parses the table of the "## Roles" section of rolesDoc.
func readRolesTable() []roleRow {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(testenv.Root(), rolesDoc))
	Expect(err).NotTo(HaveOccurred())
	_, section, ok := strings.Cut(string(data), "\n## Roles\n")
	Expect(ok).To(BeTrue(), "%s has no \"## Roles\" section", rolesDoc)
	section, _, _ = strings.Cut(section, "\n## ")
	cmd := regexp.MustCompile("^`([^`]+)`")
	var rows []roleRow
	header := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if !header {
			Expect(cells).To(Equal(append([]string{"action"}, roles...)), "the table's columns")
			header = true
			continue
		}
		if strings.HasPrefix(cells[1], "-") || strings.HasPrefix(cells[1], ":") {
			continue // the alignment row
		}
		Expect(cells).To(HaveLen(1+len(roles)), "row %q", line)
		m := cmd.FindStringSubmatch(cells[0])
		Expect(m).NotTo(BeNil(), "row %q starts with no `command`", line)
		r := roleRow{action: cells[0], command: m[1], allowed: map[string]bool{}}
		for i, role := range roles {
			Expect(cells[1+i]).To(BeElementOf("✓", "✗"), "row %q, role %s", cells[0], role)
			r.allowed[role] = cells[1+i] == "✓"
		}
		rows = append(rows, r)
	}
	Expect(rows).NotTo(BeEmpty())
	return rows
}

// outcome of one action: allowed, forbidden, or something that is neither.
type outcome struct {
	allowed, forbidden bool
	detail             string
}

// roleFixture is what the actions of one namespace act on.
type roleFixture struct {
	ns       string
	api      string // the HTTP API's base URL
	operator client.Client
	ids      map[string]identity
}

type roleAction func(f *roleFixture, id identity) outcome

// cliAction runs the CLI as id; ok lists the exit codes that mean the
// action was allowed (0 unless said otherwise), exit 7 means Forbidden.
func cliAction(args func(f *roleFixture, id identity) []string, ok ...int) roleAction {
	if len(ok) == 0 {
		ok = []int{cli.ExitOK}
	}
	return func(f *roleFixture, id identity) outcome {
		a := append([]string{"-n", f.ns}, args(f, id)...)
		r := runWith(id.kubeconfig, "", a...)
		detail := fmt.Sprintf("alertbridge %s: exit %d: %s%s", strings.Join(a, " "), r.code, r.err, r.out)
		return outcome{allowed: slices.Contains(ok, r.code), forbidden: r.code == cli.ExitForbidden, detail: detail}
	}
}

// httpAction calls the HTTP API as id: 2xx is allowed, 403 forbidden.
func httpAction(method string, path func(f *roleFixture) string, body string) roleAction {
	return func(f *roleFixture, id identity) outcome {
		req, err := http.NewRequestWithContext(ctx, method, f.api+path(f), strings.NewReader(body))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+id.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		detail := fmt.Sprintf("%s %s: %d %s", method, path(f), resp.StatusCode, b)
		return outcome{allowed: resp.StatusCode/100 == 2, forbidden: resp.StatusCode == http.StatusForbidden, detail: detail}
	}
}

// toolAction calls POST /v1/tools/execute as id with the tool calls'
// snake_case parameters: 2xx with accepted is allowed, 403 forbidden.
func toolAction(params func(f *roleFixture, id identity) map[string]any) roleAction {
	return func(f *roleFixture, id identity) outcome {
		body, err := json.Marshal(params(f, id))
		Expect(err).NotTo(HaveOccurred())
		o := httpAction(http.MethodPost, func(*roleFixture) string { return "/v1/tools/execute" }, string(body))(f, id)
		o.allowed = o.allowed && strings.Contains(o.detail, `"accepted":true`)
		return o
	}
}

// mcpAction calls an MCP tool through the SDK's own client as id: a result
// without an error is allowed, a 403 refusal forbidden.
func mcpAction(tool string, args func(f *roleFixture, id identity) map[string]any) roleAction {
	return func(f *roleFixture, id identity) outcome {
		s := mcpSession(f.api, id.token)
		defer func() { _ = s.Close() }()
		a := args(f, id)
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: a})
		Expect(err).NotTo(HaveOccurred())
		text := ""
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text += tc.Text
			}
		}
		detail := fmt.Sprintf("MCP %s %v: error %v: %s", tool, a, res.IsError, text)
		return outcome{allowed: !res.IsError, forbidden: res.IsError && strings.HasPrefix(text, "403 Forbidden"), detail: detail}
	}
}

// mcpSession connects the MCP SDK's client to the API's /mcp with token.
func mcpSession(api, token string) *mcp.ClientSession {
	GinkgoHelper()
	client := mcp.NewClient(&mcp.Implementation{Name: "roles-test", Version: "v0"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: api + "/mcp", HTTPClient: &http.Client{Transport: bearerToken{token: token, next: http.DefaultTransport}},
	}, nil)
	Expect(err).NotTo(HaveOccurred())
	return s
}

type bearerToken struct {
	token string
	next  http.RoundTripper
}

func (b bearerToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// decidedAlert creates an Alert of its own fingerprint and waits until the
// operator has made it New.
func (f *roleFixture) decidedAlert() *v1.Alert {
	GinkgoHelper()
	a := testbuild.MakeAlert("", f.ns).Host(fmt.Sprintf("h%d", time.Now().UnixNano())).Obj()
	Expect(k8s.Create(ctx, a)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
		g.Expect(a.Status.Phase).To(Equal(v1.AlertNew))
	}, settle, poll).Should(Succeed())
	return a
}

// claimedBy is a decided Alert claimed in id's name: the operator's
// identity may write a claim for another user (as the HTTP API does).
func (f *roleFixture) claimedBy(id identity) string {
	GinkgoHelper()
	a := f.decidedAlert()
	orig := a.DeepCopy()
	Expect(alertstate.Claim(&a.Status, alertstate.Caller{Owner: id.owner, User: id.user}, time.Hour, time.Now())).To(Succeed())
	Expect(f.operator.Status().Patch(ctx, a, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))).To(Succeed())
	return a.Name
}

// silence is an active Silence of the namespace, made by an administrator,
// of a host no other row's Alert has (they stay claimable).
func (f *roleFixture) silence() string {
	GinkgoHelper()
	s := testbuild.MakeSilence("", f.ns).Matcher("host", v1.MatchEqual, fmt.Sprintf("h%d", time.Now().UnixNano())).Comment("deploy").Obj()
	Expect(k8s.Create(ctx, s)).To(Succeed())
	return s.Name
}

func (f *roleFixture) openIncident() string {
	GinkgoHelper()
	inc := testbuild.MakeIncident("", f.ns).Env("prod").Severity(v1.SeverityP2).Title("gateway slow").State(v1.IncidentOpen).Obj()
	Expect(k8s.Create(ctx, inc)).To(Succeed())
	return inc.Name
}

const (
	gatePolicy = "gateway"
	amPayload  = `{"version":"4","status":"firing","receiver":"alertbridge","groupKey":"{}:{alertname=\"HighLatency\"}",
"alerts":[{"status":"firing","labels":{"alertname":"HighLatency","service":"gateway","severity":"warning"},
"annotations":{"summary":"p95 above 300ms"},"startsAt":"2026-11-30T10:00:00Z","fingerprint":"a1b2c3"}]}`
)

// roleActions runs each row of the roles table. A row without an entry
// here, or an entry without a row, fails the spec.
var roleActions = map[string]roleAction{
	"`alertbridge alerts ingest`": cliAction(func(*roleFixture, identity) []string {
		return []string{"alerts", "ingest", "--service", "gateway", "--kind", "latency", "--title", "p95", "--wait", "5s"}
	}),
	"`POST /v1/alerts`": httpAction(http.MethodPost, func(f *roleFixture) string { return "/v1/alerts?namespace=" + f.ns },
		`{"service":"gateway","kind":"latency","title":"p95 above 300ms"}`),
	"`POST /v1/alertmanager`":   httpAction(http.MethodPost, func(f *roleFixture) string { return "/v1/alertmanager?namespace=" + f.ns }, amPayload),
	"`alertbridge alerts list`": cliAction(func(*roleFixture, identity) []string { return []string{"alerts", "list"} }),
	"`GET /v1/alerts`":          httpAction(http.MethodGet, func(f *roleFixture) string { return "/v1/alerts?namespace=" + f.ns }, ""),
	"`alertbridge dashboard`":   cliAction(func(*roleFixture, identity) []string { return []string{"dashboard"} }),
	"`GET /v1/alerts/dashboard`": httpAction(http.MethodGet, func(f *roleFixture) string {
		return "/v1/alerts/dashboard?namespace=" + f.ns
	}, ""),
	"`alertbridge alerts claim`": cliAction(func(f *roleFixture, id identity) []string {
		f.decidedAlert()
		return []string{"alerts", "claim", "--owner", id.owner, "--limit", "1", "--lock-ttl", "1h"}
	}),
	"`alertbridge alerts renew` (own claim)": cliAction(func(f *roleFixture, id identity) []string {
		return []string{"alerts", "renew", f.claimedBy(id), "--owner", id.owner}
	}),
	"`alertbridge alerts ack` (own claim)": cliAction(func(f *roleFixture, id identity) []string {
		return []string{"alerts", "ack", f.claimedBy(id), "--owner", id.owner, "--note", "fixed"}
	}),
	"`alertbridge alerts fail` (own claim)": cliAction(func(f *roleFixture, id identity) []string {
		return []string{"alerts", "fail", f.claimedBy(id), "--owner", id.owner, "--error", "timeout", "--retry-after", "1m"}
	}),
	"`alertbridge alerts ack` (nobody holds it)": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"alerts", "ack", f.decidedAlert().Name, "--note", "false positive"}
	}),
	// The agent holds the Alert: as agent, "even the holder" is refused.
	"`alertbridge alerts requeue` (someone holds it)": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"alerts", "requeue", f.claimedBy(f.ids["agent"]), "--reason", "worker hung"}
	}),
	"`alertbridge alerts to-incident`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"alerts", "to-incident", f.decidedAlert().Name}
	}),
	"`alertbridge incidents convert`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"incidents", "convert", f.decidedAlert().Name}
	}),
	"`alertbridge silences add`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"silences", "add", fmt.Sprintf("host=h%d", time.Now().UnixNano()), "--duration", "1h", "--comment", "deploy"}
	}),
	"`alertbridge silences list`": cliAction(func(*roleFixture, identity) []string { return []string{"silences", "list"} }),
	"`alertbridge silences expire`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"silences", "expire", f.silence()}
	}),
	"`alertbridge silences query`": cliAction(func(*roleFixture, identity) []string {
		return []string{"silences", "query", "service=gateway"}
	}),
	"`alertbridge silences import`": cliAction(func(f *roleFixture, _ identity) []string {
		file := filepath.Join(GinkgoT().TempDir(), "silences.json")
		// A host nothing else here fires from: the other rows' Alerts stay
		// claimable.
		Expect(os.WriteFile(file, fmt.Appendf(nil, `[{"matchers":[{"name":"host","value":"h%d","isRegex":false,"isEqual":true}],"endsAt":%q,"createdBy":"bob","comment":"deploy"}]`,
			time.Now().UnixNano(), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), 0o600)).To(Succeed())
		return []string{"silences", "import", file}
	}),
	"`alertbridge incidents list`": cliAction(func(*roleFixture, identity) []string { return []string{"incidents", "list"} }),
	"`alertbridge incidents open`": cliAction(func(*roleFixture, identity) []string { return []string{"incidents", "open"} }),
	"`GET /v1/incidents/open`": httpAction(http.MethodGet, func(f *roleFixture) string {
		return "/v1/incidents/open?namespace=" + f.ns
	}, ""),
	"`alertbridge incidents note`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"incidents", "note", f.openIncident(), "--note", "looking"}
	}),
	"`alertbridge incidents state`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"incidents", "state", f.openIncident(), "Mitigating", "--note", "rolled back"}
	}),
	"`alertbridge incidents close`": cliAction(func(f *roleFixture, _ identity) []string {
		return []string{"incidents", "close", f.openIncident(), "--note", "false positive"}
	}),
	"`alertbridge slo bypass`": cliAction(func(*roleFixture, identity) []string {
		return []string{"slo", "bypass", gatePolicy, "--reason", "hotfix INC-1", "--for", "1h"}
	}),
	"`alertbridge slo bypass --clear`": cliAction(func(*roleFixture, identity) []string {
		return []string{"slo", "bypass", gatePolicy, "--clear"}
	}),
	"`alertbridge slo rules`": cliAction(func(*roleFixture, identity) []string {
		return []string{"slo", "rules", gatePolicy}
	}),
	"`alertbridge release-check`": cliAction(func(*roleFixture, identity) []string {
		return []string{"release-check", "--service", "gateway", "--env", "staging"}
	}, cli.ExitOK, cli.ExitBlocked),
	"`GET /v1/alerts/trends`": httpAction(http.MethodGet, func(f *roleFixture) string {
		return "/v1/alerts/trends?namespace=" + f.ns
	}, ""),
	"`POST /v1/slopolicies/{namespace}/{name}/bypass`": httpAction(http.MethodPost, func(f *roleFixture) string {
		return "/v1/slopolicies/" + f.ns + "/" + gatePolicy + "/bypass"
	}, `{"reason":"hotfix INC-1","for":"1h"}`),
	"`POST /v1/slopolicies/{namespace}/{name}/bypass` (clear)": httpAction(http.MethodPost, func(f *roleFixture) string {
		return "/v1/slopolicies/" + f.ns + "/" + gatePolicy + "/bypass"
	}, `{"clear":true}`),
	"`GET /v1/gates/{namespace}/{slopolicy}`": httpAction(http.MethodGet, func(f *roleFixture) string {
		return "/v1/gates/" + f.ns + "/" + gatePolicy
	}, ""),
	"`POST /v1/gates/{namespace}/{slopolicy}`": httpAction(http.MethodPost, func(f *roleFixture) string {
		return "/v1/gates/" + f.ns + "/" + gatePolicy
	}, "{}"),
}

// Work-queue actions over HTTP and MCP, per row of the table.
func init() {
	post := func(path func(f *roleFixture, id identity) string, body string) roleAction {
		return func(f *roleFixture, id identity) outcome {
			p := path(f, id)
			return httpAction(http.MethodPost, func(*roleFixture) string { return p }, body)(f, id)
		}
	}
	// get reads the object path names, made once per run.
	get := func(path func(f *roleFixture) string) roleAction {
		return func(f *roleFixture, id identity) outcome {
			p := path(f)
			return httpAction(http.MethodGet, func(*roleFixture) string { return p }, "")(f, id)
		}
	}
	own := func(f *roleFixture, id identity, action string) string {
		return "/v1/alerts/" + f.ns + "/" + f.claimedBy(id) + "/" + action
	}
	incidentPath := func(f *roleFixture, action string) string {
		return "/v1/incidents/" + f.ns + "/" + f.openIncident() + "/" + action
	}
	for action, run := range map[string]roleAction{
		"`POST /v1/alerts/claim`": func(f *roleFixture, id identity) outcome {
			f.decidedAlert()
			body := fmt.Sprintf(`{"namespace":%q,"limit":1,"owner":%q,"lockTTL":"1h"}`, f.ns, id.owner)
			return httpAction(http.MethodPost, func(*roleFixture) string { return "/v1/alerts/claim" }, body)(f, id)
		},
		"`POST /v1/alerts/{namespace}/{name}/renew` (own claim)": func(f *roleFixture, id identity) outcome {
			return post(func(f *roleFixture, id identity) string { return own(f, id, "renew") }, fmt.Sprintf(`{"owner":%q}`, id.owner))(f, id)
		},
		"`POST /v1/alerts/{namespace}/{name}/ack` (own claim)": func(f *roleFixture, id identity) outcome {
			return post(func(f *roleFixture, id identity) string { return own(f, id, "ack") }, fmt.Sprintf(`{"owner":%q,"note":"fixed"}`, id.owner))(f, id)
		},
		"`POST /v1/alerts/{namespace}/{name}/fail` (own claim)": func(f *roleFixture, id identity) outcome {
			return post(func(f *roleFixture, id identity) string { return own(f, id, "fail") },
				fmt.Sprintf(`{"owner":%q,"error":"timeout","retryAfter":"1m"}`, id.owner))(f, id)
		},
		"`POST /v1/alerts/{namespace}/{name}/ack` (nobody holds it)": post(func(f *roleFixture, _ identity) string {
			return "/v1/alerts/" + f.ns + "/" + f.decidedAlert().Name + "/ack"
		}, `{"note":"false positive"}`),
		"`POST /v1/alerts/{namespace}/{name}/requeue` (someone holds it)": post(func(f *roleFixture, _ identity) string {
			return "/v1/alerts/" + f.ns + "/" + f.claimedBy(f.ids["agent"]) + "/requeue"
		}, `{"reason":"worker hung"}`),
		"`POST /v1/alerts/{namespace}/{name}/to-incident`": post(func(f *roleFixture, _ identity) string {
			return "/v1/alerts/" + f.ns + "/" + f.decidedAlert().Name + "/to-incident"
		}, `{"severityCap":"P1","dedupeWindow":"60m"}`),
		"`POST /v1/incidents/{namespace}/{name}/note`": post(func(f *roleFixture, _ identity) string { return incidentPath(f, "note") }, `{"note":"looking"}`),
		"`POST /v1/incidents/{namespace}/{name}/state`": post(func(f *roleFixture, _ identity) string { return incidentPath(f, "state") },
			`{"state":"Mitigating","note":"rolled back"}`),
		"`POST /v1/incidents/{namespace}/{name}/close`": post(func(f *roleFixture, _ identity) string { return incidentPath(f, "close") }, `{"note":"false positive"}`),

		"`POST /v1/tools/execute` (ingest)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "ingest", "namespace": f.ns, "service": "test", "kind": "test", "message": "persistence check"}
		}),
		"`POST /v1/tools/execute` (list)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "list", "namespace": f.ns, "window_minutes": 240}
		}),
		"`GET /v1/alerts/{namespace}/{name}`": get(func(f *roleFixture) string {
			return "/v1/alerts/" + f.ns + "/" + f.decidedAlert().Name
		}),
		"`GET /v1/incidents/{namespace}/{name}`": get(func(f *roleFixture) string {
			return "/v1/incidents/" + f.ns + "/" + f.openIncident() + "?postmortem=true"
		}),
		"`POST /v1/tools/execute` (get)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "get", "alert_ref": f.ns + "/" + f.decidedAlert().Name}
		}),
		"`POST /v1/tools/execute` (incident_get)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "oncall_tool", "action": "incident_get", "incident_ref": f.ns + "/" + f.openIncident(), "postmortem": true}
		}),
		"`POST /v1/tools/execute` (claim)": toolAction(func(f *roleFixture, id identity) map[string]any {
			f.decidedAlert()
			return map[string]any{"tool": "alert_ingest_tool", "action": "claim", "namespace": f.ns, "limit": 1, "owner": id.owner, "lock_ttl_seconds": 600}
		}),
		"`POST /v1/tools/execute` (ack, own claim)": toolAction(func(f *roleFixture, id identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "ack", "alert_ref": f.ns + "/" + f.claimedBy(id), "note": "fixed"}
		}),
		"`POST /v1/tools/execute` (fail, own claim)": toolAction(func(f *roleFixture, id identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "fail", "alert_ref": f.ns + "/" + f.claimedBy(id), "error": "gateway timeout", "retry_after_seconds": 300}
		}),
		"`POST /v1/tools/execute` (requeue, someone holds it)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "requeue", "alert_ref": f.ns + "/" + f.claimedBy(f.ids["agent"]), "reason": "worker hung"}
		}),
		"`POST /v1/tools/execute` (to_incident)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "oncall_tool", "action": "alert_to_incident", "alert_ref": f.ns + "/" + f.decidedAlert().Name,
				"incident_severity_cap": "P1", "dedupe_window_minutes": 60}
		}),
		"`POST /v1/tools/execute` (incidents_open)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "incidents_open", "namespace": f.ns}
		}),
		"`POST /v1/tools/execute` (dashboard)": toolAction(func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"tool": "alert_ingest_tool", "action": "dashboard", "namespace": f.ns}
		}),

		"`POST /mcp` tool `alerts_list`": mcpAction("alerts_list", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns}
		}),
		"`POST /mcp` tool `alerts_get`": mcpAction("alerts_get", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.decidedAlert().Name}
		}),
		"`POST /mcp` tool `incidents_get`": mcpAction("incidents_get", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.openIncident(), "postmortem": true}
		}),
		"`POST /mcp` tool `alerts_claim`": mcpAction("alerts_claim", func(f *roleFixture, id identity) map[string]any {
			f.decidedAlert()
			return map[string]any{"namespace": f.ns, "limit": 1, "owner": id.owner}
		}),
		"`POST /mcp` tool `alerts_renew` (own claim)": mcpAction("alerts_renew", func(f *roleFixture, id identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.claimedBy(id), "owner": id.owner, "lockTTL": "30m"}
		}),
		"`POST /mcp` tool `alerts_ack` (own claim)": mcpAction("alerts_ack", func(f *roleFixture, id identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.claimedBy(id), "owner": id.owner, "note": "fixed"}
		}),
		"`POST /mcp` tool `alerts_ack` (nobody holds it)": mcpAction("alerts_ack", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.decidedAlert().Name, "note": "false positive"}
		}),
		"`POST /mcp` tool `alerts_fail` (own claim)": mcpAction("alerts_fail", func(f *roleFixture, id identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.claimedBy(id), "owner": id.owner, "error": "timeout", "retryAfter": "1m"}
		}),
		"`POST /mcp` tool `alerts_requeue` (someone holds it)": mcpAction("alerts_requeue", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.claimedBy(f.ids["agent"]), "reason": "worker hung"}
		}),
		"`POST /mcp` tool `alerts_to_incident`": mcpAction("alerts_to_incident", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.decidedAlert().Name, "severityCap": "P1"}
		}),
		"`POST /mcp` tool `incidents_open`": mcpAction("incidents_open", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns}
		}),
		"`POST /mcp` tool `incidents_note`": mcpAction("incidents_note", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.openIncident(), "note": "looking"}
		}),
		"`POST /mcp` tool `incidents_state`": mcpAction("incidents_state", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.openIncident(), "state": "Mitigating"}
		}),
		"`POST /mcp` tool `incidents_close`": mcpAction("incidents_close", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": f.openIncident(), "note": "false positive"}
		}),
		"`POST /mcp` tool `dashboard`": mcpAction("dashboard", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns}
		}),
		"`POST /mcp` tool `release_check`": mcpAction("release_check", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "service": "gateway", "env": "staging"}
		}),
	} {
		roleActions[action] = run
	}
}

// notInTable are the commands and routes the notes under the table explain.
var notInTable = []string{"alertbridge migrate", "alertbridge webhook-sink", "GET /ui/", "GET /{$}", "GET /mcp", "GET /openapi.json", "GET /v1/permissions"}

var _ = Describe("The roles table of docs/roles.md", Ordered, func() {
	var (
		rows []roleRow
		api  *httptest.Server
		srv  *httpapi.Server
	)
	BeforeAll(func() {
		rows = readRolesTable()
		var err error
		// The HTTP API as `alertbridge serve` runs it, as its own
		// ServiceAccount, beside the operator the suite runs.
		served, err := testoperator.StartAPI(env.API, serve.Options{HTTP: httpapi.Config{DefaultNamespace: "default"}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { Expect(served.Stop(settle)).To(Succeed()) })
		srv = served.Server
		api = httptest.NewServer(srv.Handler())
		DeferCleanup(api.Close)
	})

	It("lists every command and endpoint, and nothing else", func() {
		inTable := map[string]bool{}
		for _, r := range rows {
			inTable[r.command] = true
			Expect(roleActions).To(HaveKey(r.action), "the table's row %s has no action in roles_test.go", r.action)
		}
		for action := range roleActions {
			Expect(slices.ContainsFunc(rows, func(r roleRow) bool { return r.action == action })).To(BeTrue(),
				"roles_test.go runs %s, which the table in %s does not list", action, rolesDoc)
		}
		root, _ := cli.NewRoot()
		for _, c := range leafCommands(root) {
			Expect(inTable[c] || slices.Contains(notInTable, c)).To(BeTrue(), "command %q is missing from the roles table in %s", c, rolesDoc)
		}
		for _, route := range srv.Routes() {
			Expect(inTable[route] || slices.Contains(notInTable, route)).To(BeTrue(), "endpoint %q is missing from the roles table in %s", route, rolesDoc)
		}
		for _, tool := range agents.MCPTools {
			Expect(slices.ContainsFunc(rows, func(r roleRow) bool { return strings.HasPrefix(r.action, "`POST /mcp` tool `"+tool+"`") })).To(BeTrue(),
				"MCP tool %s is missing from the roles table in %s", tool, rolesDoc)
		}
	})

	for _, role := range roles {
		It("holds for every action as "+role, func() {
			f := newRoleFixture(api.URL)
			id := f.ids[role]
			for _, r := range rows {
				o := roleActions[r.action](f, id)
				if r.allowed[role] {
					Expect(o.allowed).To(BeTrue(), "%s as %s must be allowed: %s", r.action, role, o.detail)
				} else {
					Expect(o.forbidden).To(BeTrue(), "%s as %s must be Forbidden: %s", r.action, role, o.detail)
				}
			}
		})
	}

	It("refuses stealing a live claim through kubectl, the CLI, HTTP and MCP alike", func() {
		f := newRoleFixture(api.URL)
		holder := f.ids["agent"]
		thief := f.identity("thief", "agent")
		name := f.claimedBy(holder)

		assets, err := testenv.AssetsDir()
		Expect(err).NotTo(HaveOccurred())
		patch := fmt.Sprintf(`{"status":{"claim":{"holderIdentity":"thief","holderUser":%q}}}`, thief.user)
		out, err := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), "--kubeconfig", thief.kubeconfig, "-n", f.ns,
			"patch", "alert", name, "--subresource=status", "--type=merge", "-p", patch).CombinedOutput()
		Expect(err).To(HaveOccurred(), "kubectl patch: %s", out)
		Expect(string(out)).To(ContainSubstring(fmt.Sprintf("status.claim: Alert %s is held by %s (owner agent)", name, holder.user)))

		r := runWith(thief.kubeconfig, "", "-n", f.ns, "alerts", "ack", name, "--owner", holder.owner)
		Expect(r.code).To(Equal(cli.ExitNotHolder), r.err)
		Expect(r.err).To(ContainSubstring(fmt.Sprintf("is held by %s (owner agent)", holder.user)))

		// Over HTTP and MCP the same renewal is refused in the same words
		// (409, naming the holder and the lease expiry), though the operator
		// writes: it judges the caller as the admission policy would.
		refusal := regexp.MustCompile(`status\.claim: Alert (\S+) is held by (\S+) \(owner (\S+)\) until (\S+); only the holder may (\w+) it`)
		words := func(msg string) (string, time.Time) {
			GinkgoHelper()
			m := refusal.FindStringSubmatch(msg)
			Expect(m).NotTo(BeNil(), "no refusal naming the holder in %q", msg)
			until, err := time.Parse(time.RFC3339Nano, m[4])
			Expect(err).NotTo(HaveOccurred())
			return strings.Join([]string{m[1], m[2], m[3], m[5]}, " "), until.Truncate(time.Second)
		}
		kubectlWords, kubectlUntil := words(string(out))
		o := httpAction(http.MethodPost, func(f *roleFixture) string { return "/v1/alerts/" + f.ns + "/" + name + "/renew" },
			`{"owner":"agent"}`)(f, thief)
		Expect(o.detail).To(ContainSubstring(": 409 "))
		var body base.Problem
		_, answer, _ := strings.Cut(o.detail, ": 409 ")
		Expect(json.Unmarshal([]byte(answer), &body)).To(Succeed())
		Expect(body.Holder).To(Equal(&base.Holder{User: holder.user, Owner: "agent"}))
		Expect(body.LeaseExpiresAt.Truncate(time.Second)).To(BeTemporally("==", kubectlUntil))
		httpWords, httpUntil := words(body.Message)
		Expect(httpWords).To(Equal(kubectlWords))
		Expect(httpUntil).To(BeTemporally("==", kubectlUntil))

		m := mcpAction("alerts_renew", func(f *roleFixture, _ identity) map[string]any {
			return map[string]any{"namespace": f.ns, "name": name, "owner": "agent"}
		})(f, thief)
		Expect(m.allowed).To(BeFalse())
		Expect(m.detail).To(ContainSubstring("409 Conflict: "))
		mcpWords, mcpUntil := words(m.detail)
		Expect(mcpWords).To(Equal(kubectlWords))
		Expect(mcpUntil).To(BeTemporally("==", kubectlUntil))
		var a v1.Alert
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, &a)).To(Succeed())
		Expect(a.Status.Phase).To(Equal(v1.AlertProcessing))
		Expect(a.Status.Claim.HolderUser).To(Equal(holder.user))
	})
})

// leafCommands are the runnable commands under root, as users type them.
func leafCommands(root *cobra.Command) []string {
	var out []string
	var walk func(c *cobra.Command, path string)
	walk = func(c *cobra.Command, path string) {
		if c.Runnable() && !c.HasSubCommands() {
			out = append(out, path)
		}
		for _, sub := range c.Commands() {
			walk(sub, path+" "+sub.Name())
		}
	}
	walk(root, "alertbridge")
	return out
}

// newRoleFixture is a namespace with one ServiceAccount per role, each bound
// to its shipped ClusterRole, and the SLOPolicy the gate actions read.
func newRoleFixture(api string) *roleFixture {
	GinkgoHelper()
	operator, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	f := &roleFixture{ns: testbuild.Namespace(Default, k8s, "cli-"), api: api, operator: operator, ids: map[string]identity{}}
	for _, role := range roles {
		f.ids[role] = f.identity(role, role)
	}
	p := testbuild.MakeSLOPolicy(gatePolicy, f.ns).Env("staging").
		Availability("99.9", ""). // an error-budget objective, for `slo rules`
		PrometheusURL("http://127.0.0.1:1").GateMode(v1.GateStrict).Obj()
	Expect(k8s.Create(ctx, p)).To(Succeed())
	return f
}

// identity creates ServiceAccount name bound to alertbridge-<role> and waits
// until the API server's authorizer knows the binding.
func (f *roleFixture) identity(name, role string) identity {
	GinkgoHelper()
	cs, err := kubernetes.NewForConfig(env.Admin)
	Expect(err).NotTo(HaveOccurred())
	Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}})).To(Succeed())
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-" + role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: f.ns}},
	})).To(Succeed())
	// One token for the kube-apiserver (the CLI), one bound to alertbridge's
	// audience (the HTTP API), as a user would get them.
	tr, err := cs.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	apiToken, err := cs.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{base.DefaultAudience}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	cfg := rest.AnonymousClientConfig(env.Admin)
	cfg.BearerToken = tr.Status.Token
	data, err := testenv.Kubeconfig(cfg, name)
	Expect(err).NotTo(HaveOccurred())
	kc := filepath.Join(GinkgoT().TempDir(), name+".kubeconfig")
	Expect(os.WriteFile(kc, data, 0o600)).To(Succeed())
	id := identity{role: role, user: "system:serviceaccount:" + f.ns + ":" + name, owner: name, kubeconfig: kc, token: apiToken.Status.Token}
	// RBAC learns of a new binding through an informer: wait until the
	// authorizer grants the role's first rule.
	verb := "list"
	if role == "monitor" {
		verb = "create"
	}
	Eventually(func(g Gomega) {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: id.user, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: f.ns, Verb: verb, Group: v1.GroupVersion.Group, Resource: "alerts",
			}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sar.Status.Allowed).To(BeTrue())
	}, settle, poll).Should(Succeed())
	return id
}
