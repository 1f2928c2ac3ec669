package httpapi_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The tool calls of the PostgreSQL bridge that alertbridge replaces (see
// docs/migration.md), copied verbatim. Only the base URL changes, and each
// request carries a bearer token (and the CA of the API's certificate).
const (
	bridgeIngest = `curl -X POST http://router:8000/v1/tools/execute \
  -H "Content-Type: application/json" \
  -d '{"tool":"alert_ingest_tool","action":"ingest","service":"test","kind":"test","message":"persistence check"}'`
	bridgeListCurl = `curl "http://router:8000/v1/tools/execute" \
  -d '{"tool":"alert_ingest_tool","action":"list","service":"test"}'`

	bridgeListProd     = `alert_ingest_tool.list(window_minutes=240, env="prod")`
	bridgeListUnworked = `alert_ingest_tool.list(window_minutes=240, status_in=["new","failed"])`
	bridgeClaim        = `alert_ingest_tool.claim(window_minutes=240, limit=25, owner="triage-supervisor", lock_ttl_seconds=600)`
	bridgeFail         = `alert_ingest_tool.fail(alert_ref="alrt_...", error="gateway timeout", retry_after_seconds=300)`
	bridgeMonitorCheck = `alert_ingest_tool.list(source="monitor@node1", window_minutes=60)`
	bridgeToIncident   = `oncall_tool.alert_to_incident(
    alert_ref="alrt_...",
    incident_severity_cap="P1",
    dedupe_window_minutes=60
)`
	bridgeDashboard = `GET /v1/alerts/dashboard?window_minutes=240`
	bridgeOpen      = `GET /v1/incidents/open?service=gateway`
)

// toolCall turns the bridge's tool(arg=value, ...) into the tool
// endpoint's JSON, with alert_ref "alrt_..." replaced by ref.
func toolCall(t testing.TB, call, ref string) map[string]any {
	t.Helper()
	m := regexp.MustCompile(`(?s)^(\w+)\.(\w+)\((.*)\)$`).FindStringSubmatch(strings.TrimSpace(call))
	if m == nil {
		t.Fatalf("not a tool call: %s", call)
	}
	body := map[string]any{"tool": m[1], "action": m[2]}
	for _, arg := range regexp.MustCompile(`(\w+)=(\[[^\]]*\]|"[^"]*"|[0-9]+)`).FindAllStringSubmatch(m[3], -1) {
		var v any
		must(t, json.Unmarshal([]byte(arg[2]), &v))
		if v == "alrt_..." {
			v = ref
		}
		body[arg[1]] = v
	}
	return body
}

func (a *agentAPI) tool(t testing.TB, c caller, call, ref string) (int, agents.ToolResult) {
	t.Helper()
	var res agents.ToolResult
	code := a.call(t, c, http.MethodPost, "/v1/tools/execute", toolCall(t, call, ref), &res)
	return code, res
}

// curl runs one of the bridge's curl commands with bash against the API,
// adding the token and the CA.
func (a *agentAPI) curl(t testing.TB, c caller, cmd string) agents.ToolResult {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw}), 0o600))
	cmd = strings.ReplaceAll(cmd, "http://router:8000", a.url)
	cmd = strings.Replace(cmd, "curl ", `curl -sS --fail-with-body --cacert "$CA" -H "Authorization: Bearer $TOKEN" `, 1)
	sh := exec.CommandContext(context.Background(), "bash", "-c", cmd)
	sh.Env = append(os.Environ(), "CA="+ca, "TOKEN="+c.token)
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	var res agents.ToolResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s: %s: %v", cmd, out, err)
	}
	return res
}

// The bridge's examples work as written against the tool endpoint: the
// persistence check, list by source, claim with the bridge's arguments,
// fail with retry_after_seconds, to-incident with the cap and window, and
// the dashboard and open-incidents reads.
func TestBridgeExamplesVerbatim(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the bridge's examples need curl")
	}
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	// The tool endpoint ingests into the API's default namespace.
	api := startAgentAPIWith(t, httpapi.Config{DefaultNamespace: ns})
	// The persistence check ingests and lists: a token of someone bound to
	// the monitor and viewer roles.
	ops := roleCaller(t, ns, "ops", "monitor")
	must(t, k8s.Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ops-viewer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "ops", Namespace: ns}},
	}))
	supervisor := roleCaller(t, ns, "triage-supervisor", "agent")
	oncall := roleCaller(t, ns, "agent-oncall", "oncall")

	res := api.curl(t, ops, bridgeIngest)
	if !res.Accepted || res.Deduped == nil || *res.Deduped || res.Occurrences == nil || *res.Occurrences != 1 || !strings.HasPrefix(res.AlertRef, ns+"/") {
		t.Fatalf("persistence check: %+v", res)
	}
	checked := getAlert(t, ns, strings.TrimPrefix(res.AlertRef, ns+"/"))
	if checked.Spec.Title != "persistence check" || checked.Spec.Message != "persistence check" {
		t.Fatalf("the title falls back to the message: %+v", checked.Spec)
	}
	gomega.NewWithT(t).Eventually(func() error {
		res = api.curl(t, ops, bridgeListCurl)
		if !res.Accepted || res.Count == nil || *res.Count != 1 || res.Alerts[0].AlertRef != checked.Namespace+"/"+checked.Name {
			return fmt.Errorf("list after ingest: %+v", res)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())

	newAlerts(t, ns, 3) // gateway/prod from monitor@node1
	for call, want := range map[string]int{bridgeListProd: 4, bridgeListUnworked: 4, bridgeMonitorCheck: 3} {
		code, res := api.tool(t, supervisor, call, "")
		if code != http.StatusOK || !res.Accepted || res.Count == nil || *res.Count != want || len(res.Alerts) != want {
			t.Fatalf("%s: %d %+v", call, code, res)
		}
	}
	code, claimed := api.tool(t, supervisor, bridgeClaim, "")
	if code != http.StatusOK || !claimed.Accepted || claimed.Count == nil || *claimed.Count != 4 {
		t.Fatalf("claim: %d %+v", code, claimed)
	}
	for _, a := range claimed.Alerts {
		if a.Status != "processing" || a.ProcessingOwner != "triage-supervisor" || a.ProcessingLockUntil == nil ||
			time.Until(*a.ProcessingLockUntil) < 9*time.Minute {
			t.Fatalf("claimed %+v", a)
		}
	}
	// Two of the gateway Alerts (the persistence check's is service test):
	// the incident read below asks for service gateway.
	var gateway []string
	for _, a := range claimed.Alerts {
		if a.Service == "gateway" {
			gateway = append(gateway, a.AlertRef)
		}
	}
	first, second := gateway[0], gateway[1]

	code, failed := api.tool(t, supervisor, bridgeFail, first)
	if code != http.StatusOK || !failed.Accepted || failed.Alert == nil || failed.Alert.Status != "failed" ||
		failed.Alert.LastError != "gateway timeout" || failed.Alert.RetryAfter == nil || time.Until(*failed.Alert.RetryAfter) < 4*time.Minute {
		t.Fatalf("fail: %d %+v", code, failed)
	}
	// Someone else's lease: 409 with the holder and the lock's end.
	code, stolen := api.tool(t, oncall, bridgeFail, second)
	if code != http.StatusConflict || stolen.Accepted || stolen.Holder == nil || stolen.Holder.User != supervisor.user || stolen.ProcessingLockTo == nil {
		t.Fatalf("steal: %d %+v", code, stolen)
	}

	// The supervisor holds second: on-call converts it only once it is
	// handed back (first, which failed, is nobody's).
	code, held := api.tool(t, oncall, bridgeToIncident, second)
	if code != http.StatusConflict || held.Accepted || held.Holder == nil || held.Holder.User != supervisor.user {
		t.Fatalf("to-incident of a held Alert: %d %+v", code, held)
	}
	code, conv := api.tool(t, oncall, bridgeToIncident, first)
	if code != http.StatusOK || !conv.Accepted || conv.Incident == nil || conv.Created == nil || !*conv.Created || conv.Incident.Status != "open" ||
		conv.TriagePending == nil || conv.TriageRuns == nil {
		t.Fatalf("to-incident: %d %+v", code, conv)
	}

	var dash query.Dashboard
	if code := api.call(t, oncall, http.MethodGet, strings.TrimPrefix(bridgeDashboard, "GET "), nil, &dash); code != http.StatusOK ||
		dash.WindowMinutes != 240 || dash.Counts[string(v1.AlertProcessing)] != 3 || dash.Counts[string(v1.AlertFailed)] != 1 {
		t.Fatalf("dashboard: %d %+v", code, dash)
	}
	// The read endpoints answer from the operator's cache, which learns of
	// the new Incident a moment after it is written.
	gomega.NewWithT(t).Eventually(func() error {
		var open query.IncidentList
		if code := api.call(t, oncall, http.MethodGet, strings.TrimPrefix(bridgeOpen, "GET "), nil, &open); code != http.StatusOK ||
			open.Count != 1 || open.Items[0].Name != conv.Incident.Name {
			return fmt.Errorf("open incidents: %d %+v", code, open)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())

	// Validation failures: 200, accepted false, every field named.
	var bad agents.ToolResult
	if code := api.call(t, ops, http.MethodPost, "/v1/tools/execute", map[string]any{
		"tool": "alert_ingest_tool", "action": "ingest", "namespace": ns, "kind": "Bad Kind", "title": "x",
	}, &bad); code != http.StatusOK || bad.Accepted || len(bad.Errors) != 2 {
		t.Fatalf("invalid ingest: %d %+v", code, bad)
	}
	if code := api.call(t, supervisor, http.MethodPost, "/v1/tools/execute", map[string]any{
		"tool": "alert_ingest_tool", "action": "claim", "limit": 0, "lock_ttl_seconds": 0, "windw_minutes": 5,
	}, &bad); code != http.StatusOK || bad.Accepted || len(bad.Errors) != 1 || bad.Errors[0].Field != "windw_minutes" {
		t.Fatalf("unknown parameter: %d %+v", code, bad)
	}
	if code := api.call(t, supervisor, http.MethodPost, "/v1/tools/execute", map[string]any{
		"tool": "alert_ingest_tool", "action": "claim", "lock_ttl_seconds": 0,
	}, &bad); code != http.StatusOK || bad.Accepted || len(bad.Errors) != 1 || bad.Errors[0].Field != "lock_ttl_seconds" {
		t.Fatalf("bad parameter: %d %+v", code, bad)
	}
	if code := api.call(t, supervisor, http.MethodPost, "/v1/tools/execute", map[string]any{"tool": "alert_ingest_tool", "action": "explode"}, &bad); code != http.StatusOK ||
		bad.Accepted || bad.Errors[0].Field != "action" {
		t.Fatalf("unknown action: %d %+v", code, bad)
	}
	// Refusals keep their status: a viewer may not claim.
	if code := api.call(t, ops, http.MethodPost, "/v1/tools/execute", map[string]any{"tool": "alert_ingest_tool", "action": "claim", "namespace": ns}, &bad); code != http.StatusForbidden ||
		bad.Accepted || bad.Code != http.StatusForbidden {
		t.Fatalf("viewer claims: %d %+v", code, bad)
	}
}

// TestToolTakesTheNamespaceFromTheQuery: ?namespace= is the call's
// namespace, as on every other endpoint, not silently the default one; a
// query parameter the tool does not know, or a namespace the body
// contradicts, is refused as an unknown body parameter is.
func TestToolTakesTheNamespaceFromTheQuery(t *testing.T) {
	api := startAgentAPI(t)
	g := gomega.NewWithT(t)
	ns := testbuild.Namespace(g, k8s, "toolns-")
	agent := roleCaller(t, ns, "agent", "agent")
	monitor := roleCaller(t, ns, "monitor", "monitor")

	// Ingest defaults to the API's default namespace, where the monitor
	// may create nothing: only the query's namespace makes this land.
	var res agents.ToolResult
	if code := api.call(t, monitor, http.MethodPost, "/v1/tools/execute?namespace="+ns,
		map[string]any{"tool": "alert_ingest_tool", "action": "ingest", "service": "gateway", "kind": "latency", "title": "p95"}, &res); code != http.StatusOK || !res.Accepted {
		t.Fatalf("ingest with ?namespace=%s: %d %+v", ns, code, res)
	}
	g.Eventually(func() error {
		var l v1.AlertList
		if err := k8s.List(context.Background(), &l, client.InNamespace(ns)); err != nil || len(l.Items) != 1 {
			return fmt.Errorf("Alerts in %s: %d (%v)", ns, len(l.Items), err)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())

	for query, field := range map[string]string{
		"?namespace=" + ns + "&window=5":        "window",
		"?namespace=" + ns + "&namespace=" + ns: "namespace",
	} {
		var res agents.ToolResult
		if code := api.call(t, agent, http.MethodPost, "/v1/tools/execute"+query,
			map[string]any{"tool": "alert_ingest_tool", "action": "list"}, &res); code != http.StatusOK || res.Accepted ||
			len(res.Errors) != 1 || res.Errors[0].Field != field {
			t.Errorf("%s: %d %+v, want accepted=false naming %s", query, code, res, field)
		}
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/tools/execute?namespace="+ns,
		map[string]any{"tool": "alert_ingest_tool", "action": "list", "namespace": "default"}, &res); code != http.StatusOK || res.Accepted ||
		len(res.Errors) != 1 || res.Errors[0].Field != "namespace" || !strings.Contains(res.Errors[0].Detail, "differ") {
		t.Errorf("contradicting namespaces: %d %+v", code, res)
	}
}
