package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/httpapi/dashboard"
	"github.com/alertbridge/alertbridge/internal/httpapi/ingestapi"
	"github.com/alertbridge/alertbridge/internal/query"
)

// GET /openapi.json is an OpenAPI 3.1 document of every route the server
// serves, its parameters, requests and answers. The schemas are made from
// the Go types the handlers decode and encode (base/schema.go); a test walks
// Server.Routes and fails on an undocumented route, and validates real
// answers against the document.

// openAPIVersion is the OpenAPI version of the document: 3.1, whose schemas
// are JSON Schema 2020-12 like the MCP tools'.
const openAPIVersion = "3.1.0"

// routeDoc documents one route.
type routeDoc struct {
	summary string
	desc    string
	// query parameters, each a string unless typed.
	query []docParam
	// headers the route reads.
	headers []docParam
	// body is the request body's type; bodySchema a schema instead.
	body       reflect.Type
	bodySchema *jsonschema.Schema
	// ok is the 200 answer's type; okSchema a schema instead; okMedia a
	// media type other than JSON (the page).
	ok       reflect.Type
	okSchema *jsonschema.Schema
	okMedia  string
	// errs are the refusals, each answered with errType (base.ErrorBody unless set).
	errs    []int
	errType reflect.Type
	// more are answers with a status of their own.
	more map[int]reflect.Type
	// auth: "bearer" (default), "optional" or "none".
	auth string
}

type docParam struct {
	name, desc string
	typ        string // JSON Schema type; string when empty
}

var (
	readQuery3 = []docParam{
		{name: "namespace", desc: fmt.Sprintf("one namespace (default: every namespace you may list; without the right to list cluster-wide, "+
			"the %d most recently active namespaces are checked: name one to read another)", base.MaxReviewedNamespaces)},
		{name: "windowMinutes", desc: "only Alerts last seen within this many minutes (default 240; 0: no window); also window_minutes", typ: "integer"},
		{name: "window_minutes", desc: "another name of windowMinutes", typ: "integer"},
		{name: "statusIn", desc: "comma-separated phases: New, Processing, Acked, Failed, Deduplicated (any case); also status_in, status"},
		{name: "status_in", desc: "another name of statusIn"},
		{name: "status", desc: "another name of statusIn"},
		{name: "env", desc: "only this env"},
		{name: "source", desc: "only this source"},
		{name: "service", desc: "only this service"},
	}
	anyObject  = &jsonschema.Schema{Type: "object"}
	ingestBody = &jsonschema.Schema{
		Description: "one alert (service, kind, title, message, severity, env, source, labels, fingerprint, dedupeTTL or dedupe_ttl_minutes) or {\"alerts\": [...]}",
		Type:        "object",
	}
	workErrs = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusServiceUnavailable}
)

// routeDocs document every route the server may register, by pattern.
var routeDocs = map[string]routeDoc{
	"GET /v1/alerts": {summary: "List Alerts", desc: "Alerts last seen inside the window, newest first (the tool endpoint's alert_ingest_tool list action, as REST).",
		query: readQuery3, ok: reflect.TypeFor[query.AlertList](), errs: []int{400, 401, 403, 503}},
	"GET /v1/alerts/dashboard": {summary: "The operational dashboard", desc: "Counts by status, top signatures, latest Alerts, open Incidents and gates.",
		query: readQuery3, ok: reflect.TypeFor[query.Dashboard](), errs: []int{400, 401, 403, 503}, auth: "optional"},
	"GET /v1/alerts/trends": {summary: "Trends over the window", desc: "New Alerts per interval by status, occurrences by severity, gate decisions over time, MTTA and MTTR; from the mirror when it is on.",
		query: readQuery3[:3], ok: reflect.TypeFor[query.Trends](), errs: []int{400, 401, 403, 503}, auth: "optional"},
	"GET /v1/permissions": {summary: "The page's buttons", desc: fmt.Sprintf("For each namespace, the actions your token's user may take there "+
		"(SubjectAccessReviews made by the server: at most 9 per namespace, 3 for a user who may change nothing there; answers cached %s). "+
		"More than %d namespaces are refused with 400 before any review.", base.DefaultAuthCacheTTL, base.MaxReviewedNamespaces),
		query: []docParam{{name: "namespace", desc: fmt.Sprintf("a namespace; repeat for more (at most %d)", base.MaxReviewedNamespaces)}}, ok: reflect.TypeFor[dashboard.Permissions](),
		errs: []int{400, 401, 503}, errType: reflect.TypeFor[base.Problem]()},
	"POST /v1/slopolicies/{namespace}/{name}/bypass": {summary: "Set or clear the emergency bypass of a release gate", desc: "As `alertbridge slo bypass`: recorded in your name, capped by gate.maxBypass.",
		body: reflect.TypeFor[dashboard.BypassRequest](), ok: reflect.TypeFor[dashboard.BypassResult]()},
	"GET /v1/incidents/open": {summary: "List open Incidents", query: []docParam{readQuery3[0], readQuery3[8]},
		ok: reflect.TypeFor[query.IncidentList](), errs: []int{400, 401, 403, 503}},
	"GET /v1/incidents/{namespace}/{name}": {summary: "Read one Incident",
		desc: "Spec and status as stored (timeline, triage runs and the signature's cooldown, notifications sent), the linked Alerts as they are now " +
			"(phase, lease holder and expiry, attempts, last error, occurrences; by ref only where you may not get them), and with postmortem=true " +
			"a postmortem draft made from the Incident as it is now (nothing is written). Needs get on the Incident (the oncall_tool incident_get action, as REST).",
		query: []docParam{{name: "postmortem", desc: "true: also draft the postmortem (Markdown)", typ: "boolean"}},
		ok:    reflect.TypeFor[base.IncidentDetail](), errs: []int{400, 401, 403, 404, 503}, errType: reflect.TypeFor[base.Problem]()},
	"GET /v1/alerts/{namespace}/{name}": {summary: "Read one Alert",
		desc: "Its phase, lease holder and expiry, attempts, last error, occurrences, first and last occurrence, and its Incident " +
			"(the summary where you may get it). Needs get on the Alert (the alert_ingest_tool get action, as REST).",
		ok: reflect.TypeFor[base.AlertDetail](), errs: []int{400, 401, 403, 404, 503}, errType: reflect.TypeFor[base.Problem]()},
	"GET /ui/": {summary: "The dashboard page's assets", okMedia: "*/*", auth: "none", errs: []int{404}},
	"GET /{$}": {summary: "The dashboard page", okMedia: "text/html", auth: "none"},
	"GET /v1/gates/{namespace}/{slopolicy}": {summary: "Read a release gate", desc: "Allowed unless the gate blocks; format=flagger answers 403 when blocked.",
		query: []docParam{{name: "format", desc: "flagger: answer 403 when blocked"}}, ok: reflect.TypeFor[base.Gate](),
		errs: []int{401, 404, 503}, more: map[int]reflect.Type{http.StatusForbidden: reflect.TypeFor[gateOrError]()}, auth: "optional"},
	"POST /v1/gates/{namespace}/{slopolicy}": {summary: "Read a release gate (webhooks that POST)", desc: "As GET; the body is ignored.",
		query: []docParam{{name: "format", desc: "flagger: answer 403 when blocked"}}, bodySchema: anyObject, ok: reflect.TypeFor[base.Gate](),
		errs: []int{401, 404, 503}, more: map[int]reflect.Type{http.StatusForbidden: reflect.TypeFor[gateOrError]()}, auth: "optional"},
	"POST /v1/alerts": {summary: "Ingest alerts", desc: "One alert, or {\"alerts\": [...]} answered per item. deduped, alertRef and occurrences " +
		"describe the Alert that counted the occurrence and are answered only to callers who may get Alerts in the namespace; " +
		"a caller who may only create them (alertbridge-monitor) is told accepted (and replayed).",
		query:      []docParam{{name: "namespace", desc: "namespace of the Alerts (default: the API's default namespace)"}},
		headers:    []docParam{{name: base.IdempotencyKeyHeader, desc: "a retry with the same key counts once"}},
		bodySchema: ingestBody, ok: reflect.TypeFor[ingestAnswer](), errs: []int{401, 403, 404, 413, 429, 503},
		more: map[int]reflect.Type{http.StatusBadRequest: reflect.TypeFor[ingestapi.FieldErrorBody]()}},
	"POST /v1/alertmanager": {summary: "Alertmanager webhook receiver", desc: fmt.Sprintf("Payload version 4; per-alert results, which name the Alert "+
		"and its count only to callers who may get Alerts there. A message whose alerts span more than %d namespaces is refused with 400 "+
		"before any access check (Alertmanager drops it: group the route by namespace).", base.MaxReviewedNamespaces),
		query:      []docParam{{name: "namespace", desc: "namespace of the Alerts (default: the namespace label, else the API's default)"}},
		bodySchema: anyObject, ok: reflect.TypeFor[ingestapi.AlertmanagerResponse](), errs: []int{400, 401, 403, 413, 503}},
	"POST /v1/alerts/claim": {summary: "Claim Alerts", desc: fmt.Sprintf("The oldest New Alerts under a lease held in your name; nothing to claim is 200 "+
		"with nothingToClaim. Without namespace, a caller who may not claim cluster-wide claims in the namespaces holding New Alerts where it may "+
		"(list alerts, patch alerts/status), checking at most %d: those it worked in, then those with the newest New Alerts; "+
		"allowed in none of them, 403: name the namespace.", base.MaxReviewedNamespaces),
		body: reflect.TypeFor[base.ClaimRequest](), ok: reflect.TypeFor[base.ClaimResult]()},
	"POST /v1/alerts/{namespace}/{name}/renew": {summary: "Renew your lease", body: reflect.TypeFor[base.RenewRequest](), ok: reflect.TypeFor[base.WorkAlert]()},
	"POST /v1/alerts/{namespace}/{name}/ack": {summary: "Ack an Alert", desc: "Yours if Processing; one nobody holds needs the acknowledge verb (on-call).",
		body: reflect.TypeFor[base.AckRequest](), ok: reflect.TypeFor[base.WorkAlert]()},
	"POST /v1/alerts/{namespace}/{name}/fail": {summary: "Fail your Alert for a retry", body: reflect.TypeFor[base.FailRequest](), ok: reflect.TypeFor[base.WorkAlert]()},
	"POST /v1/alerts/{namespace}/{name}/requeue": {summary: "Requeue an Alert: Processing (whoever holds it) or Failed back to New",
		desc: "Needs the requeue verb on alerts/status (on-call); the claim is cleared and status.requeued records the caller and the reason.",
		body: reflect.TypeFor[base.RequeueRequest](), ok: reflect.TypeFor[base.WorkAlert]()},
	"POST /v1/alerts/{namespace}/{name}/to-incident": {summary: "Convert an Alert into an Incident",
		desc: "The Alert is linked first: one someone else holds is refused (409, naming the holder) and nothing is created. " +
			"Whether it starts a triage run is the operator's decision, when it sees the Alert (triage.pending until then).",
		body: reflect.TypeFor[base.ToIncidentRequest](), ok: reflect.TypeFor[base.ToIncidentResult]()},
	"POST /v1/incidents/{namespace}/{name}/note":  {summary: "Note an Incident", body: reflect.TypeFor[base.IncidentNoteRequest](), ok: reflect.TypeFor[base.WorkIncident]()},
	"POST /v1/incidents/{namespace}/{name}/close": {summary: "Close an Incident", body: reflect.TypeFor[base.IncidentCloseRequest](), ok: reflect.TypeFor[base.WorkIncident]()},
	"POST /v1/incidents/{namespace}/{name}/state": {summary: "Move an Incident to another state", body: reflect.TypeFor[base.IncidentStateRequest](),
		ok: reflect.TypeFor[base.WorkIncident]()},
	"POST /v1/tools/execute": {summary: "The tool router: one endpoint for agents that call tools by name", desc: "Validation failures answer 200 with accepted false and errors; other refusals keep their status. " +
		"ingest answers deduped, alert_ref and occurrences only to callers who may get Alerts in the namespace.",
		headers: []docParam{{name: base.IdempotencyKeyHeader, desc: "ingest: a retry with the same key counts once"}},
		query: []docParam{{name: "namespace", desc: "the namespace parameter, as on every other endpoint; a body that names another is refused, " +
			"and so is any other query parameter"}},
		body: reflect.TypeFor[agents.ToolRequest](), ok: reflect.TypeFor[agents.ToolResult](), errs: []int{403, 404, 409, 413, 429, 503},
		errType: reflect.TypeFor[agents.ToolResult](), more: map[int]reflect.Type{http.StatusUnauthorized: reflect.TypeFor[base.ErrorBody](), http.StatusTooManyRequests: reflect.TypeFor[toolOrError]()}},
	"POST /mcp": {summary: "MCP (streamable HTTP, stateless)", desc: "JSON-RPC 2.0 messages of the Model Context Protocol; tools: " + strings.Join(agents.MCPTools, ", ") + ".",
		bodySchema: anyObject, okSchema: anyObject, errs: []int{401}, more: map[int]reflect.Type{http.StatusAccepted: nil}},
	"GET /mcp": {summary: "MCP server-to-client stream (not offered)", desc: "Answers 405: the endpoint is stateless.",
		errs: []int{401}, more: map[int]reflect.Type{http.StatusMethodNotAllowed: nil}},
	"GET /openapi.json": {summary: "This document", okSchema: anyObject, auth: "none"},
}

// ingestAnswer documents POST /v1/alerts: one result, or one per item.
type ingestAnswer struct{}

// toolOrError documents a 429 of the tool endpoint: the tool's answer (an
// ingest refused for now) or the error body (the client's tokens failed
// review too often).
type toolOrError struct{}

// gateOrError documents a 403 of the gate: the base.Gate (format=flagger,
// blocked) or the error body.
type gateOrError struct{}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// RoutePath is the method and OpenAPI path of a route pattern: "GET /{$}"
// is "/", a subtree "GET /ui/" is "/ui/{path}".
func RoutePath(route string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	switch {
	case strings.HasSuffix(path, "/{$}"):
		path = strings.TrimSuffix(path, "{$}")
	case strings.HasSuffix(path, "/"):
		path += "{path}"
	}
	return method, path
}

// serveOpenAPI is GET /openapi.json.
func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	s.docOnce.Do(func() { s.doc = s.buildOpenAPI() })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(s.doc)
}

// buildOpenAPI documents the registered routes; a route without a
// routeDoc is listed with no more than its path, which the route-walk test
// refuses.
func (s *Server) buildOpenAPI() []byte {
	paths := map[string]map[string]any{}
	for _, route := range s.routes {
		method, path := RoutePath(route)
		d, ok := routeDocs[route]
		if !ok {
			continue
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = s.operation(route, path, d)
	}
	doc := map[string]any{
		"openapi": openAPIVersion,
		"info": map[string]any{
			"title":   "alertbridge HTTP API",
			"version": "v1",
			"description": fmt.Sprintf("Alerts, incidents and release gates as Kubernetes resources. Send a Kubernetes bearer token bound to the audience "+
				"alertbridge (kubectl create token NAME --audience alertbridge); every action is judged with your RBAC rights. A token that is empty, "+
				"longer than %d bytes or not printable ASCII is refused (401) without a review; TokenReview and SubjectAccessReview answers are cached %s; "+
				"a client (remote address) whose tokens failed review %d times gets 429 with Retry-After for tokens not yet reviewed, one more every %s.",
				base.MaxTokenBytes, base.DefaultAuthCacheTTL, base.FailedReviewBurst, base.FailedReviewInterval),
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "a Kubernetes token bound to the audience alertbridge"},
			},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("the OpenAPI document does not marshal: %v", err)) // fixed at build time; a test builds it
	}
	return data
}

func (s *Server) operation(route, path string, d routeDoc) map[string]any {
	op := map[string]any{"summary": d.summary, "operationId": operationID(route)}
	if d.desc != "" {
		op["description"] = d.desc
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, p := range d.query {
		params = append(params, map[string]any{"name": p.name, "in": "query", "description": p.desc, "schema": map[string]any{"type": typeOr(p.typ)}})
	}
	for _, p := range d.headers {
		params = append(params, map[string]any{"name": p.name, "in": "header", "description": p.desc, "schema": map[string]any{"type": typeOr(p.typ)}})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	switch {
	case d.body != nil:
		op["requestBody"] = map[string]any{"content": jsonContent(base.SchemaOf(d.body))}
	case d.bodySchema != nil:
		op["requestBody"] = map[string]any{"content": jsonContent(d.bodySchema)}
	}
	responses := map[string]any{}
	switch {
	case d.okMedia != "":
		responses["200"] = map[string]any{"description": "OK", "content": map[string]any{d.okMedia: map[string]any{}}}
	case d.ok != nil:
		responses["200"] = map[string]any{"description": "OK", "content": jsonContent(s.answerSchema(d.ok))}
	case d.okSchema != nil:
		responses["200"] = map[string]any{"description": "OK", "content": jsonContent(d.okSchema)}
	}
	errs, errType := d.errs, d.errType
	if d.body != nil && errs == nil {
		errs = workErrs
	}
	if errType == nil {
		errType = reflect.TypeFor[base.ErrorBody]()
		if d.body != nil {
			errType = reflect.TypeFor[base.Problem]()
		}
	}
	for _, code := range errs {
		responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": jsonContent(s.answerSchema(errType))}
	}
	if d.auth != "none" {
		// Every route that reads a token may refuse it before any review.
		for code, why := range map[int]string{
			http.StatusUnauthorized:    "no token, a malformed one, or one not valid for this API",
			http.StatusTooManyRequests: "too many of this client's tokens failed review: retry after Retry-After",
		} {
			if _, ok := responses[strconv.Itoa(code)]; !ok && !slices.Contains(errs, code) {
				responses[strconv.Itoa(code)] = map[string]any{"description": why, "content": jsonContent(s.answerSchema(errType))}
			}
		}
	}
	for code, t := range d.more {
		r := map[string]any{"description": http.StatusText(code)}
		if t != nil {
			r["content"] = jsonContent(s.answerSchema(t))
		}
		responses[strconv.Itoa(code)] = r
	}
	op["responses"] = responses
	switch d.auth {
	case "none":
		op["security"] = []any{}
	case "optional":
		op["security"] = []any{map[string]any{"bearer": []any{}}, map[string]any{}}
	}
	return op
}

// answerSchema is the schema of an answer type; the documentation-only
// types stand for a choice of answers.
func (s *Server) answerSchema(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[ingestAnswer]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{base.SchemaOf(reflect.TypeFor[ingestapi.ItemResult]()), base.SchemaOf(reflect.TypeFor[ingestapi.BatchResult]())}}
	case reflect.TypeFor[toolOrError]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{base.SchemaOf(reflect.TypeFor[agents.ToolResult]()), base.SchemaOf(reflect.TypeFor[base.ErrorBody]())}}
	case reflect.TypeFor[gateOrError]():
		return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{base.SchemaOf(reflect.TypeFor[base.Gate]()), base.SchemaOf(reflect.TypeFor[base.ErrorBody]())}}
	}
	return base.SchemaOf(t)
}

func jsonContent(s *jsonschema.Schema) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": s}}
}

func typeOr(t string) string {
	if t == "" {
		return "string"
	}
	return t
}

// operationID is a route as an identifier: "POST /v1/alerts/claim" is
// post_v1_alerts_claim.
func operationID(route string) string {
	id := strings.NewReplacer(" ", "_", "/", "_", "{", "", "}", "", "$", "root", "-", "_", ".", "_").Replace(strings.ToLower(route))
	return strings.Trim(strings.ReplaceAll(id, "__", "_"), "_")
}
