package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/onsi/gomega"

	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/httpapi/dashboard"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// validating checks every request and answer that passes through it
// against the OpenAPI document (kin-openapi, JSON Schema 2020-12 for an
// OpenAPI 3.1 document), and records the routes it saw.
type validating struct {
	next   http.RoundTripper
	router routers.Router
	mu     sync.Mutex
	errs   []string
	seen   map[string]bool // "METHOD /path" of the document → answered
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	answer, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(answer))

	fail := func(format string, args ...any) {
		v.mu.Lock()
		defer v.mu.Unlock()
		v.errs = append(v.errs, fmt.Sprintf("%s %s: %d: ", req.Method, req.URL.Path, resp.StatusCode)+fmt.Sprintf(format, args...))
	}
	check := req.Clone(context.Background())
	check.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(check)
	if err != nil {
		fail("no route in the document: %v", err)
		return resp, nil
	}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}}
	if resp.StatusCode/100 == 2 && !strings.HasPrefix(req.URL.Path, "/mcp") {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			fail("request %s: %v", body, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: in.Options}
	out.SetBodyBytes(answer)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		fail("answer %.300s: %v", answer, err)
	}
	v.mu.Lock()
	v.seen[req.Method+" "+route.Path] = true
	v.mu.Unlock()
	return resp, nil
}

// The OpenAPI document describes every route the server serves, is a valid
// OpenAPI 3.1 document, and the answers of the work queue, the tool
// endpoint, MCP and the read endpoints — successes and refusals — validate
// against it.
func TestOpenAPIDocumentsEveryRouteAndItsAnswers(t *testing.T) {
	api := startAgentAPI(t)
	ctx := context.Background()
	resp, err := api.client.Get(api.url + "/openapi.json")
	must(t, err)
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", resp.StatusCode, data)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	must(t, err)
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	for _, route := range api.server.Routes() {
		method, path := httpapi.RoutePath(route)
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s is not documented", route)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	doc.Servers = openapi3.Servers{{URL: api.url}}
	router, err := gorillamux.NewRouter(doc)
	must(t, err)
	v := &validating{next: api.client.Transport, router: router, seen: map[string]bool{}}
	api.client = &http.Client{Transport: v}

	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	agent := roleCaller(t, ns, "supervisor", "agent")
	oncall := roleCaller(t, ns, "oncall", "oncall")
	monitor := roleCaller(t, ns, "monitor", "monitor")
	names := newAlerts(t, ns, 4)
	alert := func(name, action string) string { return "/v1/alerts/" + ns + "/" + name + "/" + action }

	var claimed base.ClaimResult
	api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Limit: 3, Owner: "loop", LockTTL: "10m"}, &claimed)
	if claimed.Count != 3 {
		t.Fatalf("claim: %+v", claimed)
	}
	a, b, c := claimed.Alerts[0].Name, claimed.Alerts[1].Name, claimed.Alerts[2].Name
	api.call(t, agent, http.MethodPost, alert(a, "renew"), base.RenewRequest{LockTTL: "5m"}, nil)
	api.call(t, agent, http.MethodPost, alert(a, "ack"), base.AckRequest{Note: "done"}, nil)
	api.call(t, agent, http.MethodPost, alert(b, "fail"), base.FailRequest{Error: "timeout", RetryAfter: "1m"}, nil)
	api.call(t, oncall, http.MethodPost, alert(c, "ack"), nil, nil)                                          // 409
	api.call(t, agent, http.MethodPost, alert(b, "requeue"), base.RequeueRequest{Reason: "stuck"}, nil)      // 403
	api.call(t, oncall, http.MethodPost, alert(b, "requeue"), base.RequeueRequest{}, nil)                    // 400
	api.call(t, oncall, http.MethodPost, alert(b, "requeue"), base.RequeueRequest{Reason: "retry now"}, nil) // Failed to New
	api.call(t, agent, http.MethodPost, alert("missing", "renew"), nil, nil)                                 // 404
	api.call(t, agent, http.MethodPost, "/v1/alerts/claim", map[string]any{"limit": -1}, nil)                // 400
	api.call(t, caller{}, http.MethodPost, "/v1/alerts/claim", nil, nil)                                     // 401
	api.call(t, monitor, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns}, nil)         // 403
	api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Service: "none"}, nil)

	var conv base.ToIncidentResult
	api.call(t, oncall, http.MethodPost, alert(c, "to-incident"), nil, nil) // 409: the agent holds it
	api.call(t, oncall, http.MethodPost, alert(b, "to-incident"), base.ToIncidentRequest{SeverityCap: "P1"}, &conv)
	inc := "/v1/incidents/" + ns + "/" + conv.Incident.Name
	api.call(t, oncall, http.MethodPost, inc+"/note", base.IncidentNoteRequest{Note: "looking"}, nil)
	api.call(t, oncall, http.MethodPost, inc+"/state", base.IncidentStateRequest{State: "Resolved"}, nil)
	api.call(t, oncall, http.MethodPost, inc+"/close", base.IncidentCloseRequest{Note: "fixed"}, nil)
	api.call(t, oncall, http.MethodPost, inc+"/close", base.IncidentCloseRequest{Note: "again"}, nil) // 409
	api.call(t, oncall, http.MethodGet, inc+"?postmortem=true", nil, nil)
	api.call(t, oncall, http.MethodGet, "/v1/incidents/"+ns+"/missing", nil, nil) // 404
	api.call(t, agent, http.MethodGet, inc, nil, nil)                             // 403
	api.call(t, oncall, http.MethodGet, "/v1/alerts/"+ns+"/"+b, nil, nil)
	api.call(t, agent, http.MethodGet, "/v1/alerts/"+ns+"/"+c, nil, nil)
	api.call(t, agent, http.MethodGet, "/v1/alerts/"+ns+"/missing", nil, nil) // 404

	for _, body := range []map[string]any{
		{"tool": "alert_ingest_tool", "action": "ingest", "namespace": ns, "service": "test", "kind": "test", "message": "persistence check"},
		{"tool": "alert_ingest_tool", "action": "ingest", "namespace": ns, "kind": "Bad"},
	} {
		api.call(t, monitor, http.MethodPost, "/v1/tools/execute", body, nil)
	}
	for _, body := range []map[string]any{
		{"tool": "alert_ingest_tool", "action": "list", "window_minutes": 240, "status_in": []string{"new", "failed"}},
		{"tool": "alert_ingest_tool", "action": "claim", "limit": 1, "owner": "tool-loop", "lock_ttl_seconds": 600},
		{"tool": "alert_ingest_tool", "action": "ack", "alert_ref": ns + "/" + names[3], "note": "x"},
		{"tool": "alert_ingest_tool", "action": "dashboard"},
		{"tool": "oncall_tool", "action": "incidents_open", "service": "gateway"},
		{"tool": "alert_ingest_tool", "action": "get", "alert_ref": ns + "/" + c},
		{"tool": "alert_ingest_tool", "action": "fail", "alert_ref": ns + "/" + c, "retry_after_seconds": 60}, // 409
	} {
		api.call(t, agent, http.MethodPost, "/v1/tools/execute", body, nil)
	}
	api.call(t, caller{}, http.MethodPost, "/v1/tools/execute", map[string]any{"tool": "alert_ingest_tool", "action": "list"}, nil) // 401
	api.call(t, monitor, http.MethodPost, "/v1/alerts?namespace="+ns, map[string]any{"service": "gateway", "kind": "latency", "title": "p95"}, nil)
	api.call(t, monitor, http.MethodPost, "/v1/alerts?namespace="+ns, map[string]any{"alerts": []any{map[string]any{"service": "gateway", "kind": "latency", "title": "p95"}}}, nil)
	api.call(t, monitor, http.MethodPost, "/v1/alerts?namespace="+ns, map[string]any{"service": "Bad"}, nil)
	api.call(t, oncall, http.MethodGet, "/v1/alerts?namespace="+ns, nil, nil)
	api.call(t, oncall, http.MethodGet, "/v1/alerts/dashboard?window_minutes=240", nil, nil)
	api.call(t, oncall, http.MethodGet, "/v1/incidents/open?service=gateway", nil, nil)
	api.call(t, oncall, http.MethodGet, "/v1/gates/"+ns+"/none", nil, nil)
	api.call(t, oncall, http.MethodPost, "/v1/gates/"+ns+"/none", map[string]any{}, nil)
	api.call(t, oncall, http.MethodGet, "/v1/alerts/trends?namespace="+ns+"&windowMinutes=60", nil, nil)
	api.call(t, oncall, http.MethodGet, "/v1/permissions?namespace="+ns, nil, nil)
	api.call(t, oncall, http.MethodGet, "/v1/permissions", nil, nil)                                                                 // 400
	api.call(t, oncall, http.MethodPost, "/v1/slopolicies/"+ns+"/none/bypass", dashboard.BypassRequest{Reason: "x", For: "1h"}, nil) // 404
	api.call(t, monitor, http.MethodPost, "/v1/slopolicies/"+ns+"/none/bypass", dashboard.BypassRequest{Clear: true}, nil)           // 403
	api.call(t, monitor, http.MethodPost, "/v1/alertmanager?namespace="+ns, map[string]any{"version": "4", "status": "firing", "alerts": []any{}}, nil)
	api.call(t, caller{}, http.MethodGet, "/openapi.json", nil, nil)
	api.call(t, agent, http.MethodGet, "/mcp", nil, nil)
	for _, p := range []string{"/", "/ui/app.js"} {
		resp, err := api.client.Get(api.url + p)
		must(t, err)
		_ = resp.Body.Close()
	}
	s, err := api.mcpSession(t, agent)
	must(t, err)
	callTool(t, s, "dashboard", map[string]any{"namespace": ns}, nil)
	callTool(t, s, "alerts_ack", map[string]any{"namespace": ns, "name": c}, nil)
	if msg := callTool(t, s, "alerts_get", map[string]any{"namespace": ns, "name": c}, nil); msg != "" {
		t.Errorf("alerts_get: %s", msg)
	}
	so, err := api.mcpSession(t, oncall)
	must(t, err)
	if msg := callTool(t, so, "incidents_get", map[string]any{"namespace": ns, "name": conv.Incident.Name, "postmortem": true}, nil); msg != "" {
		t.Errorf("incidents_get: %s", msg)
	}

	// The validator is strict: an answer with a field the document does not
	// describe, or without one it requires, fails.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.url+"/v1/alerts/claim", nil)
	must(t, err)
	route, params, err := router.FindRoute(req)
	must(t, err)
	for _, bad := range []string{
		`{"count":0,"alerts":[],"nothingToClaim":true,"surprise":1}`,
		`{"alerts":[],"nothingToClaim":true}`,
		`{"count":1,"alerts":[{"alertRef":"a/b"}],"nothingToClaim":false}`,
	} {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}}
		out.SetBodyBytes([]byte(bad))
		if err := openapi3filter.ValidateResponse(ctx, out); err == nil {
			t.Errorf("the document accepts %s", bad)
		}
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.seen) < len(api.server.Routes())-1 {
		t.Errorf("validated %d routes", len(v.seen))
	}
	for _, e := range v.errs {
		t.Error(e)
	}
	for _, route := range api.server.Routes() {
		method, path := httpapi.RoutePath(route)
		if !v.seen[method+" "+path] {
			t.Errorf("no answer of %s was validated", route)
		}
	}
	if !slices.Contains(api.server.Routes(), "POST /v1/tools/execute") {
		t.Fatal("the tool endpoint is not served")
	}
}
