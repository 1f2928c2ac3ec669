package agents

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/query"
)

// POST /v1/tools/execute is the tool endpoint: an agent sends {"tool":
// "alert_ingest_tool", "action": "claim", "window_minutes": 240, ...} with
// snake_case parameter names and reads snake_case answer fields (accepted,
// deduped, alert_ref, occurrences, errors), the shape tool-calling agents
// written against a SQL-backed alert queue already use. Every action is the same code as the /v1 endpoints and MCP.
//
// Validation failures answer HTTP 200 with accepted: false and the errors,
// as snake_case tool routers answer them; every other refusal keeps its /v1 status
// (401, 403, 404, 409, 429, 503) with accepted: false and the same body.

// Tools this endpoint serves.
const (
	ToolAlertIngest = "alert_ingest_tool"
	ToolOncall      = "oncall_tool"
)

// ToolRequest is a tool call: the tool, the action and the
// parameters of that action, in snake_case. An ingest takes the alert's
// fields (service, kind, title, message, severity, env, source, labels,
// fingerprint, dedupe_ttl_minutes) beside them.
type ToolRequest struct {
	Tool   string `json:"tool" jsonschema:"alert_ingest_tool or oncall_tool"`
	Action string `json:"action" jsonschema:"alert_ingest_tool: ingest, list, get, claim, renew, ack, fail, requeue, to_incident, dashboard, incidents_open; oncall_tool: alert_to_incident, incident_get, incident_close, incident_note, incidents_open"`
	// Namespace: where to ingest (default: the API's default namespace),
	// list or claim (default: every namespace the caller may), and the
	// namespace of an alert_ref or incident_ref given as a bare name.
	Namespace string `json:"namespace,omitempty" jsonschema:"namespace: where to ingest (default: the API's default namespace), list or claim (default: all you may); the namespace of a bare alert_ref"`

	WindowMinutes  *int64          `json:"window_minutes,omitempty" jsonschema:"list, claim, dashboard: only Alerts last seen within this many minutes (default 240; 0: no window)"`
	StatusIn       base.StringList `json:"status_in,omitempty" jsonschema:"list: only these statuses (new, processing, acked, failed); a list or a comma-separated string"`
	Env            string          `json:"env,omitempty" jsonschema:"ingest: the alert's env; list, claim: only this env"`
	Source         string          `json:"source,omitempty" jsonschema:"ingest: the alert's source; list: only this source"`
	Service        string          `json:"service,omitempty" jsonschema:"ingest: the alert's service; list, claim, incidents_open: only this service"`
	Limit          int             `json:"limit,omitempty" jsonschema:"claim: most alerts to claim (default 25)"`
	Owner          string          `json:"owner,omitempty" jsonschema:"claim, renew, ack, fail: the lease holder name your loop goes by (default: your Kubernetes user name)"`
	LockTTLSeconds *int64          `json:"lock_ttl_seconds,omitempty" jsonschema:"claim, renew: lease duration in seconds (default: the namespace's policy, else 600)"`

	AlertRef          string `json:"alert_ref,omitempty" jsonschema:"get, renew, ack, fail, requeue, to_incident: the alert, namespace/name (or a name in namespace)"`
	Error             string `json:"error,omitempty" jsonschema:"fail: what went wrong"`
	RetryAfterSeconds *int64 `json:"retry_after_seconds,omitempty" jsonschema:"fail: seconds before the alert is claimable again (default: the namespace's policy, else 300)"`
	Note              string `json:"note,omitempty" jsonschema:"ack: why; incident_close, incident_note: the note"`
	Reason            string `json:"reason,omitempty" jsonschema:"requeue: why the alert goes back to new (on-call), e.g. worker hung"`

	IncidentSeverityCap string `json:"incident_severity_cap,omitempty" jsonschema:"to_incident: the incident is never worse than this (P0..P4; default P1)"`
	DedupeWindowMinutes *int64 `json:"dedupe_window_minutes,omitempty" jsonschema:"to_incident: an open incident active within this many minutes absorbs the alert (default 60)"`
	Signature           string `json:"signature,omitempty" jsonschema:"to_incident: override the incident signature"`
	IncidentRef         string `json:"incident_ref,omitempty" jsonschema:"incident_get, incident_close, incident_note: the incident, namespace/name (or a name in namespace)"`
	Postmortem          bool   `json:"postmortem,omitempty" jsonschema:"incident_get: also draft the postmortem (Markdown) from the incident as it is now; nothing is written"`

	Kind             string            `json:"kind,omitempty" jsonschema:"ingest: the alert's kind"`
	Severity         string            `json:"severity,omitempty" jsonschema:"ingest: P0..P4"`
	Title            string            `json:"title,omitempty" jsonschema:"ingest: the alert's title (default: the message, else the kind)"`
	Message          string            `json:"message,omitempty" jsonschema:"ingest: the alert's message"`
	Labels           map[string]string `json:"labels,omitempty" jsonschema:"ingest: the alert's labels"`
	Fingerprint      string            `json:"fingerprint,omitempty" jsonschema:"ingest: the monitor's own fingerprint"`
	DedupeTTLMinutes *float64          `json:"dedupe_ttl_minutes,omitempty" jsonschema:"ingest: dedupe window of this alert in minutes"`
}

// ToolResult is a tool's answer, with snake_case field names.
type ToolResult struct {
	Tool     string `json:"tool"`
	Action   string `json:"action"`
	Accepted bool   `json:"accepted"`

	// ingest
	Deduped     *bool  `json:"deduped,omitempty"`
	AlertRef    string `json:"alert_ref,omitempty"`
	Occurrences *int64 `json:"occurrences,omitempty"`
	Replayed    bool   `json:"replayed,omitempty"`

	// list, claim
	Count          *int        `json:"count,omitempty"`
	Alerts         []ToolAlert `json:"alerts,omitzero"`
	NothingToClaim bool        `json:"nothing_to_claim,omitempty"`
	// renew, ack, fail
	Alert *ToolAlert `json:"alert,omitempty"`
	// to_incident, incident_close, incident_note
	Incident *ToolIncident `json:"incident,omitempty"`
	Created  *bool         `json:"created,omitempty"`
	Appended *bool         `json:"appended,omitempty"`
	// TriagePending: the operator has not yet decided whether the newest
	// Alerts start a triage run (it does when it sees them).
	TriagePending *bool  `json:"triage_pending,omitempty"`
	TriageRuns    *int32 `json:"triage_runs,omitempty"`
	LastTriageRun string `json:"last_triage_run,omitempty"`
	// incidents_open
	Incidents []ToolIncident `json:"incidents,omitzero"`
	// dashboard: the answer of GET /v1/alerts/dashboard.
	Dashboard *query.Dashboard `json:"dashboard,omitempty"`
	// get: the answer of GET /v1/alerts/{namespace}/{name} (and the MCP
	// tool alerts_get), beside alert.
	AlertDetail *base.AlertDetail `json:"alert_detail,omitempty"`
	// incident_get: the answer of GET /v1/incidents/{namespace}/{name}
	// (and the MCP tool incidents_get), beside incident.
	IncidentDetail *base.IncidentDetail `json:"incident_detail,omitempty"`

	// Refusals: the status, the message and the invalid fields, and the
	// holder of an Alert someone else holds.
	Code             int               `json:"code,omitempty"`
	Message          string            `json:"message,omitempty"`
	Errors           []base.FieldError `json:"errors,omitempty"`
	Holder           *base.Holder      `json:"holder,omitempty"`
	ProcessingLockTo *time.Time        `json:"processing_lock_until,omitempty"`
}

// ToolAlert is an alert with snake_case column names.
type ToolAlert struct {
	AlertRef            string            `json:"alert_ref"`
	Namespace           string            `json:"namespace"`
	Name                string            `json:"name"`
	Status              string            `json:"status"`
	Service             string            `json:"service"`
	Env                 string            `json:"env,omitempty"`
	Kind                string            `json:"kind"`
	Severity            string            `json:"severity,omitempty"`
	Title               string            `json:"title"`
	Message             string            `json:"message,omitempty"`
	Source              string            `json:"source,omitempty"`
	Labels              map[string]string `json:"labels,omitempty"`
	Fingerprint         string            `json:"fingerprint,omitempty"`
	Occurrences         int64             `json:"occurrences"`
	CreatedAt           time.Time         `json:"created_at"`
	LastSeenAt          time.Time         `json:"last_seen_at"`
	ProcessingOwner     string            `json:"processing_owner,omitempty"`
	ProcessingUser      string            `json:"processing_user,omitempty"`
	ProcessingLockUntil *time.Time        `json:"processing_lock_until,omitempty"`
	Attempts            int32             `json:"attempts,omitempty"`
	LastError           string            `json:"last_error,omitempty"`
	RetryAfter          *time.Time        `json:"retry_after,omitempty"`
	AckBy               string            `json:"ack_by,omitempty"`
	AckNote             string            `json:"ack_note,omitempty"`
	IncidentRef         string            `json:"incident_ref,omitempty"`
}

// ToolIncident is an incident with snake_case names.
type ToolIncident struct {
	IncidentRef    string     `json:"incident_ref"`
	Namespace      string     `json:"namespace"`
	Name           string     `json:"name"`
	Status         string     `json:"status"`
	Severity       string     `json:"severity"`
	Service        string     `json:"service"`
	Env            string     `json:"env,omitempty"`
	Title          string     `json:"title"`
	AlertCount     int64      `json:"alert_count"`
	LastActivityAt time.Time  `json:"last_activity_at"`
	CooldownUntil  *time.Time `json:"cooldown_until,omitempty"`
	Note           string     `json:"note,omitempty"`
}

func toolAlert(w *base.WorkAlert) ToolAlert {
	t := ToolAlert{
		AlertRef: w.AlertRef, Namespace: w.Namespace, Name: w.Name, Status: strings.ToLower(w.Phase),
		Service: w.Service, Env: w.Env, Kind: w.Kind, Severity: w.Severity, Title: w.Title, Message: w.Message,
		Source: w.Source, Labels: w.Labels, Fingerprint: w.Fingerprint, Occurrences: w.Occurrences,
		CreatedAt: w.CreatedAt, LastSeenAt: w.LastSeenAt, Attempts: w.Attempts, LastError: w.LastError,
		RetryAfter: w.RetryAfter, AckBy: w.AckBy, AckNote: w.AckNote,
	}
	if w.Lease != nil {
		t.ProcessingOwner, t.ProcessingUser = w.Lease.Owner, w.Lease.User
		until := w.Lease.ExpiresAt
		t.ProcessingLockUntil = &until
	}
	if w.Incident != "" {
		t.IncidentRef = w.Namespace + "/" + w.Incident
	}
	return t
}

func toolIncident(i *query.IncidentInfo, note string) ToolIncident {
	return ToolIncident{
		IncidentRef: i.Namespace + "/" + i.Name, Namespace: i.Namespace, Name: i.Name, Status: strings.ToLower(i.State),
		Severity: i.Severity, Service: i.Service, Env: i.Env, Title: i.Title, AlertCount: i.AlertCount,
		LastActivityAt: i.LastActivityAt, CooldownUntil: i.CooldownUntil, Note: note,
	}
}

// toolAction is one action of a tool: the parameters it takes (beside tool
// and action) and what it does.
type toolAction struct {
	params []string
	run    func(s *Protocols, ctx context.Context, u *base.User, r *http.Request, t *ToolRequest, raw map[string]json.RawMessage) (*ToolResult, error)
}

// toolActions are the tools and actions served.
var toolActions = map[string]map[string]toolAction{
	ToolAlertIngest: {
		"ingest":  {nil, (*Protocols).toolIngest},
		"list":    {[]string{"namespace", "window_minutes", "status_in", "env", "source", "service"}, (*Protocols).toolList},
		"get":     {[]string{"namespace", "alert_ref"}, (*Protocols).toolAlertGet},
		"claim":   {[]string{"namespace", "window_minutes", "limit", "owner", "lock_ttl_seconds", "status_in", "env", "service"}, (*Protocols).toolClaim},
		"renew":   {[]string{"namespace", "alert_ref", "owner", "lock_ttl_seconds"}, (*Protocols).toolRenew},
		"ack":     {[]string{"namespace", "alert_ref", "owner", "note"}, (*Protocols).toolAck},
		"fail":    {[]string{"namespace", "alert_ref", "owner", "error", "retry_after_seconds"}, (*Protocols).toolFail},
		"requeue": {[]string{"namespace", "alert_ref", "reason"}, (*Protocols).toolRequeue},
		"to_incident": {[]string{"namespace", "alert_ref", "incident_severity_cap", "dedupe_window_minutes", "signature"},
			(*Protocols).toolToIncident},
		"dashboard":      {[]string{"namespace", "window_minutes"}, (*Protocols).toolDashboard},
		"incidents_open": {[]string{"namespace", "service"}, (*Protocols).toolIncidentsOpen},
	},
	ToolOncall: {
		"alert_to_incident": {[]string{"namespace", "alert_ref", "incident_severity_cap", "dedupe_window_minutes", "signature"},
			(*Protocols).toolToIncident},
		"incident_get":   {[]string{"namespace", "incident_ref", "postmortem"}, (*Protocols).toolIncidentGet},
		"incident_close": {[]string{"namespace", "incident_ref", "note"}, (*Protocols).toolIncidentClose},
		"incident_note":  {[]string{"namespace", "incident_ref", "note"}, (*Protocols).toolIncidentNote},
		"incidents_open": {[]string{"namespace", "service"}, (*Protocols).toolIncidentsOpen},
	},
}

// serveTool is POST /v1/tools/execute. The body is JSON whatever its
// Content-Type says (agents written with curl often send none).
func (s *Protocols) serveTool(w http.ResponseWriter, r *http.Request) {
	u, ok := s.Auth.Authenticate(w, r, false)
	if !ok {
		return
	}
	res := &ToolResult{}
	err := func() error {
		data, err := base.ReadAll(r)
		if err != nil {
			return err
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
			return base.Invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", `must be a JSON object {"tool": ..., "action": ..., parameters...}`)})
		}
		_ = json.Unmarshal(raw["tool"], &res.Tool)
		_ = json.Unmarshal(raw["action"], &res.Action)
		actions, ok := toolActions[res.Tool]
		if !ok {
			return base.Invalid(field.ErrorList{field.NotSupported(field.NewPath("tool"), res.Tool, slices.Sorted(maps.Keys(toolActions)))})
		}
		act, ok := actions[res.Action]
		if !ok {
			return base.Invalid(field.ErrorList{field.NotSupported(field.NewPath("action"), res.Action, slices.Sorted(maps.Keys(actions)))})
		}
		delete(raw, "tool")
		delete(raw, "action")
		if err := queryIntoParams(r.URL.Query(), raw); err != nil {
			return err
		}
		t := &ToolRequest{Tool: res.Tool, Action: res.Action}
		if act.params != nil {
			if err := decodeToolParams(raw, act.params, t); err != nil {
				return err
			}
		}
		out, err := act.run(s, r.Context(), u, r, t, raw)
		if err != nil {
			return err
		}
		out.Tool, out.Action, out.Accepted = res.Tool, res.Action, true
		res = out
		return nil
	}()
	if err == nil {
		base.WriteJSON(w, http.StatusOK, res)
		return
	}
	p := base.RefusalOf(r.Context(), err)
	res.Accepted, res.Code, res.Message, res.Errors, res.Holder = false, p.Code, p.Message, p.Errors, p.Holder
	res.ProcessingLockTo = p.LeaseExpiresAt
	code := p.Code
	if code == http.StatusBadRequest {
		code = http.StatusOK // validation failures: accepted false, as tool routers answer them
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(p.RetryAfter.Seconds())))
	}
	base.WriteJSON(w, code, res)
}

// queryIntoParams takes ?namespace= as the namespace parameter, as every
// other endpoint takes it, so that a call for one namespace never lands
// in the default one. The query may name no other parameter (it gets the
// answer an unknown body parameter gets), and may not contradict the body.
func queryIntoParams(q url.Values, raw map[string]json.RawMessage) error {
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if k != "namespace" {
			errs = append(errs, field.NotSupported(field.NewPath(k), k, []string{"namespace"}))
			continue
		}
		if len(q[k]) != 1 {
			errs = append(errs, field.Invalid(field.NewPath(k), strings.Join(q[k], ","), "give the namespace once"))
			continue
		}
		ns := q[k][0]
		if v, ok := raw[k]; ok {
			var body string
			if json.Unmarshal(v, &body) != nil || body != ns {
				errs = append(errs, field.Invalid(field.NewPath(k), ns, "the query's namespace and the body's differ"))
			}
			continue
		}
		raw[k], _ = json.Marshal(ns)
	}
	if len(errs) > 0 {
		return base.Invalid(errs)
	}
	return nil
}

// decodeToolParams checks that raw has only the action's parameters and
// decodes them into t, naming the parameter of any error.
func decodeToolParams(raw map[string]json.RawMessage, params []string, t *ToolRequest) error {
	var errs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if !slices.Contains(params, k) {
			errs = append(errs, field.NotSupported(field.NewPath(k), k, params))
		}
	}
	if len(errs) > 0 {
		return base.Invalid(errs)
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return base.Invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", err.Error())})
	}
	var typeErr *json.UnmarshalTypeError
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(t); err != nil {
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return base.Invalid(field.ErrorList{field.Invalid(field.NewPath(typeErr.Field), typeErr.Value, "must be "+base.JSONType(typeErr.Type))})
		}
		return base.Invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", err.Error())})
	}
	return nil
}

// refOf reads an alert_ref or incident_ref: namespace/name, or a name in
// the request's namespace (default: the API's default namespace).
func (s *Protocols) refOf(param, v, ns string) (base.Ref, error) {
	if v == "" {
		return base.Ref{}, base.Invalid(field.ErrorList{field.Required(field.NewPath(param), "")})
	}
	if n, name, ok := strings.Cut(v, "/"); ok {
		return base.Ref{Namespace: n, Name: name}, nil
	}
	return base.Ref{Namespace: cmp.Or(ns, s.DefaultNamespace, "default"), Name: v}, nil
}

func seconds(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10) + "s"
}

func minutes(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10) + "m"
}

// renamed turns a problem's field names into the tool's snake_case parameter names.
func renamed(err error, names map[string]string) error {
	var p *base.Refusal
	if !errors.As(err, &p) || p.Code != http.StatusBadRequest {
		return err
	}
	for i, e := range p.Errors {
		if n, ok := names[e.Field]; ok {
			p.Errors[i].Field = n
			p.Errors[i].Detail = strings.ReplaceAll(e.Detail, e.Field, n)
		}
	}
	for from, to := range names {
		p.Message = strings.ReplaceAll(p.Message, from+":", to+":")
	}
	return p
}

var toolNames = map[string]string{
	"windowMinutes": "window_minutes", "statusIn": "status_in", "lockTTL": "lock_ttl_seconds",
	"retryAfter": "retry_after_seconds", "severityCap": "incident_severity_cap", "dedupeWindow": "dedupe_window_minutes",
	"alert.namespace": "alert_ref", "alert.name": "alert_ref", "incident.namespace": "incident_ref", "incident.name": "incident_ref",
}

func (s *Protocols) toolList(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	l, err := s.Reads.ListAlerts(ctx, u, base.ListRequest{
		Namespace: t.Namespace, WindowMinutes: t.WindowMinutes, StatusIn: t.StatusIn, Env: t.Env, Source: t.Source, Service: t.Service,
	})
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	res := &ToolResult{Count: &l.Count, Alerts: make([]ToolAlert, 0, len(l.Items))}
	for i := range l.Items {
		w := base.WorkAlert{AlertItem: l.Items[i], AlertRef: l.Items[i].Namespace + "/" + l.Items[i].Name}
		res.Alerts = append(res.Alerts, toolAlert(&w))
	}
	return res, nil
}

func (s *Protocols) toolClaim(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	c, err := s.Work.Claim(ctx, u, base.ClaimRequest{
		Namespace: t.Namespace, WindowMinutes: t.WindowMinutes, Limit: t.Limit, Owner: t.Owner,
		LockTTL: seconds(t.LockTTLSeconds), StatusIn: t.StatusIn, Env: t.Env, Service: t.Service,
	})
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	res := &ToolResult{Count: &c.Count, Alerts: make([]ToolAlert, 0, len(c.Alerts)), NothingToClaim: c.NothingToClaim, Message: c.Message}
	for i := range c.Alerts {
		res.Alerts = append(res.Alerts, toolAlert(&c.Alerts[i]))
	}
	return res, nil
}

func (s *Protocols) toolLease(t *ToolRequest, f func(base.Ref) (*base.WorkAlert, error)) (*ToolResult, error) {
	at, err := s.refOf("alert_ref", t.AlertRef, t.Namespace)
	if err != nil {
		return nil, err
	}
	w, err := f(at)
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	a := toolAlert(w)
	return &ToolResult{Alert: &a, AlertRef: w.AlertRef}, nil
}

func (s *Protocols) toolRenew(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	return s.toolLease(t, func(at base.Ref) (*base.WorkAlert, error) {
		return s.Work.Renew(ctx, u, at, base.RenewRequest{Owner: t.Owner, LockTTL: seconds(t.LockTTLSeconds)})
	})
}

// toolRequeue is POST /v1/alerts/{namespace}/{name}/requeue for the tool
// (on-call: the virtual verb requeue).
func (s *Protocols) toolRequeue(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	return s.toolLease(t, func(at base.Ref) (*base.WorkAlert, error) {
		return s.Work.Requeue(ctx, u, at, base.RequeueRequest{Reason: t.Reason})
	})
}

func (s *Protocols) toolAck(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	return s.toolLease(t, func(at base.Ref) (*base.WorkAlert, error) {
		return s.Work.Ack(ctx, u, at, base.AckRequest{Owner: t.Owner, Note: t.Note})
	})
}

func (s *Protocols) toolFail(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	return s.toolLease(t, func(at base.Ref) (*base.WorkAlert, error) {
		return s.Work.Fail(ctx, u, at, base.FailRequest{Owner: t.Owner, Error: t.Error, RetryAfter: seconds(t.RetryAfterSeconds)})
	})
}

func (s *Protocols) toolToIncident(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	at, err := s.refOf("alert_ref", t.AlertRef, t.Namespace)
	if err != nil {
		return nil, err
	}
	c, err := s.Work.ToIncident(ctx, u, at, base.ToIncidentRequest{
		SeverityCap: t.IncidentSeverityCap, DedupeWindow: minutes(t.DedupeWindowMinutes), Signature: t.Signature,
	})
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	inc := toolIncident(&c.Incident.IncidentInfo, c.Incident.Note)
	return &ToolResult{AlertRef: c.AlertRef, Incident: &inc, Created: &c.Created, Appended: &c.Appended,
		TriagePending: &c.Triage.Pending, TriageRuns: &c.Triage.Runs, LastTriageRun: c.Triage.LastRun}, nil
}

func (s *Protocols) toolIncidentClose(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	return s.toolIncident(t, func(at base.Ref) (*base.WorkIncident, error) {
		return s.Work.CloseIncident(ctx, u, at, base.IncidentCloseRequest{Note: t.Note})
	})
}

func (s *Protocols) toolIncidentNote(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	return s.toolIncident(t, func(at base.Ref) (*base.WorkIncident, error) {
		return s.Work.NoteIncident(ctx, u, at, base.IncidentNoteRequest{Note: t.Note})
	})
}

func (s *Protocols) toolIncident(t *ToolRequest, f func(base.Ref) (*base.WorkIncident, error)) (*ToolResult, error) {
	at, err := s.refOf("incident_ref", t.IncidentRef, t.Namespace)
	if err != nil {
		return nil, err
	}
	w, err := f(at)
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	inc := toolIncident(&w.IncidentInfo, w.Note)
	return &ToolResult{Incident: &inc}, nil
}

// toolAlertGet is GET /v1/alerts/{namespace}/{name} for the tool: the
// same answer as alert_detail, and the alert's columns as alert.
func (s *Protocols) toolAlertGet(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	at, err := s.refOf("alert_ref", t.AlertRef, t.Namespace)
	if err != nil {
		return nil, err
	}
	d, err := s.Reads.GetAlert(ctx, u, base.AlertGetRequest(at))
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	a := toolAlert(&d.WorkAlert)
	return &ToolResult{Alert: &a, AlertRef: d.AlertRef, AlertDetail: d}, nil
}

// toolIncidentGet is GET /v1/incidents/{namespace}/{name} for the tool:
// the same answer as incident_detail, and the incident's columns as
// incident.
func (s *Protocols) toolIncidentGet(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	at, err := s.refOf("incident_ref", t.IncidentRef, t.Namespace)
	if err != nil {
		return nil, err
	}
	d, err := s.Reads.GetIncident(ctx, u, base.IncidentGetRequest{Namespace: at.Namespace, Name: at.Name, Postmortem: t.Postmortem})
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	w := base.WorkIncidentOf(&v1.Incident{ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name, CreationTimestamp: metav1.NewTime(d.CreatedAt)}, Spec: d.Spec, Status: d.Status})
	inc := toolIncident(&w.IncidentInfo, d.Spec.Note)
	return &ToolResult{Incident: &inc, IncidentDetail: d}, nil
}

func (s *Protocols) toolDashboard(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	d, err := s.Reads.Dashboard(ctx, u, base.DashboardRequest{Namespace: t.Namespace, WindowMinutes: t.WindowMinutes})
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	return &ToolResult{Dashboard: d}, nil
}

func (s *Protocols) toolIncidentsOpen(ctx context.Context, u *base.User, _ *http.Request, t *ToolRequest, _ map[string]json.RawMessage) (*ToolResult, error) {
	l, err := s.Reads.OpenIncidents(ctx, u, base.IncidentsOpenRequest{Namespace: t.Namespace, Service: t.Service})
	if err != nil {
		return nil, renamed(err, toolNames)
	}
	res := &ToolResult{Count: &l.Count, Incidents: make([]ToolIncident, 0, len(l.Items))}
	for i := range l.Items {
		res.Incidents = append(res.Incidents, toolIncident(&l.Items[i], ""))
	}
	return res, nil
}

// toolIngest is the tool's ingest: one alert, through the same intake,
// kind check and authorisation (create alerts) as POST /v1/alerts. Its
// title falls back to the message, then to the kind, as a bare
// persistence check sends none.
func (s *Protocols) toolIngest(ctx context.Context, u *base.User, r *http.Request, _ *ToolRequest, raw map[string]json.RawMessage) (*ToolResult, error) {
	if s.Ingest == nil {
		return nil, base.Refuse(http.StatusNotFound, "ingest is not served here")
	}
	var ns string
	if v, ok := raw["namespace"]; ok {
		if err := json.Unmarshal(v, &ns); err != nil {
			return nil, base.Invalid(field.ErrorList{field.Invalid(field.NewPath("namespace"), string(v), "must be a string")})
		}
		delete(raw, "namespace")
	}
	if errs := base.DNSLabel(field.NewPath("namespace"), ns, false); len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	ns = cmp.Or(ns, s.DefaultNamespace, "default")
	if _, ok := raw["alerts"]; ok {
		return nil, base.Invalid(field.ErrorList{field.Forbidden(field.NewPath("alerts"), "the tool ingests one alert per call; send batches to POST /v1/alerts")})
	}
	if _, ok := raw["title"]; !ok {
		var msg, kind string
		_ = json.Unmarshal(raw["message"], &msg)
		_ = json.Unmarshal(raw["kind"], &kind)
		if title := clip.To(strings.TrimSpace(cmp.Or(msg, kind)), 256); title != "" {
			raw["title"], _ = json.Marshal(title)
		}
	}
	got, reveal, err := s.Ingest.IngestOne(ctx, u, ns, r.Header.Get(base.IdempotencyKeyHeader), raw)
	if err != nil {
		return nil, err
	}
	// As POST /v1/alerts: the Alert that counted it only for a caller who
	// may read it.
	res := &ToolResult{Replayed: got.Replayed}
	if reveal {
		res.Deduped, res.Occurrences = &got.Deduped, &got.Occurrences
		if got.AlertRef != "" {
			res.AlertRef = ns + "/" + got.AlertRef
		}
	}
	return res, nil
}
