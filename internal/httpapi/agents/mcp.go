// Package agents is how agents reach the work queue besides its REST
// endpoints: MCP at /mcp (mcp.go) and the tool endpoint POST
// /v1/tools/execute (tools.go), which call tools by name with snake_case
// parameters. Both run the same actions as the REST endpoints, which the
// server hands them (Work, Reads, Ingester), with the same per-caller
// rights.
package agents

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/query"
)

// MCP at /mcp (streamable HTTP, the official Go SDK): LLM agents discover
// and call the work queue's actions as tools. Each tool takes the same Go
// type as the HTTP endpoint (plus the namespace and name the HTTP path
// carries), runs the same action with the same per-caller rights, and
// answers refusals as tool results an agent can act on ("... held by X
// until T; only the holder may ack it; retry after T").
//
// The endpoint is stateless: each POST is a whole MCP exchange, so any
// replica answers any call and nothing is kept between calls (GET, the
// optional server-to-client stream, answers 405). The caller is
// authenticated on every request with the same bearer token as the HTTP API.

// MCPServerName is the name the MCP server gives itself.
const MCPServerName = "alertbridge"

// AlertTarget names the Alert a tool works on.
type AlertTarget struct {
	Namespace string `json:"namespace" jsonschema:"the Alert's namespace"`
	Name      string `json:"name" jsonschema:"the Alert's name"`
}

// IncidentTarget names the Incident a tool works on.
type IncidentTarget struct {
	Namespace string `json:"namespace" jsonschema:"the Incident's namespace"`
	Name      string `json:"name" jsonschema:"the Incident's name"`
}

// MCP tool inputs: the HTTP request plus what the HTTP path carries.
type (
	RenewInput struct {
		AlertTarget
		base.RenewRequest
	}
	AckInput struct {
		AlertTarget
		base.AckRequest
	}
	FailInput struct {
		AlertTarget
		base.FailRequest
	}
	RequeueInput struct {
		AlertTarget
		base.RequeueRequest
	}
	ToIncidentInput struct {
		AlertTarget
		base.ToIncidentRequest
	}
	IncidentNoteInput struct {
		IncidentTarget
		base.IncidentNoteRequest
	}
	IncidentCloseInput struct {
		IncidentTarget
		base.IncidentCloseRequest
	}
	IncidentStateInput struct {
		IncidentTarget
		base.IncidentStateRequest
	}
)

func (t AlertTarget) ref() base.Ref    { return base.Ref{Namespace: t.Namespace, Name: t.Name} }
func (t IncidentTarget) ref() base.Ref { return base.Ref{Namespace: t.Namespace, Name: t.Name} }

// Protocols serve MCP and the tool endpoint.
type Protocols struct {
	// Reader reads the manager's cache (the release check's SLOPolicies).
	Reader client.Reader
	Auth   *base.Authenticator
	Clock  clock.PassiveClock
	// DefaultNamespace is the namespace of a bare alert_ref or
	// incident_ref, and where the tool ingests without one (default
	// "default").
	DefaultNamespace string
	// Work and Reads are the work queue's actions and the read endpoints'.
	Work  Work
	Reads Reads
	// Ingest counts the tool endpoint's alerts; nil: ingest is not served.
	Ingest Ingester
}

// Work is the work queue's actions (work.Queue).
type Work interface {
	Claim(ctx context.Context, u *base.User, r base.ClaimRequest) (*base.ClaimResult, error)
	Renew(ctx context.Context, u *base.User, at base.Ref, r base.RenewRequest) (*base.WorkAlert, error)
	Ack(ctx context.Context, u *base.User, at base.Ref, r base.AckRequest) (*base.WorkAlert, error)
	Fail(ctx context.Context, u *base.User, at base.Ref, r base.FailRequest) (*base.WorkAlert, error)
	Requeue(ctx context.Context, u *base.User, at base.Ref, r base.RequeueRequest) (*base.WorkAlert, error)
	ToIncident(ctx context.Context, u *base.User, at base.Ref, r base.ToIncidentRequest) (*base.ToIncidentResult, error)
	NoteIncident(ctx context.Context, u *base.User, at base.Ref, r base.IncidentNoteRequest) (*base.WorkIncident, error)
	CloseIncident(ctx context.Context, u *base.User, at base.Ref, r base.IncidentCloseRequest) (*base.WorkIncident, error)
	SetIncidentState(ctx context.Context, u *base.User, at base.Ref, r base.IncidentStateRequest) (*base.WorkIncident, error)
}

// Reads are the read endpoints' answers for a caller (dashboard.Board).
type Reads interface {
	ListAlerts(ctx context.Context, u *base.User, r base.ListRequest) (*query.AlertList, error)
	Dashboard(ctx context.Context, u *base.User, r base.DashboardRequest) (*query.Dashboard, error)
	OpenIncidents(ctx context.Context, u *base.User, r base.IncidentsOpenRequest) (*query.IncidentList, error)
	GetIncident(ctx context.Context, u *base.User, r base.IncidentGetRequest) (*base.IncidentDetail, error)
	GetAlert(ctx context.Context, u *base.User, r base.AlertGetRequest) (*base.AlertDetail, error)
}

// Ingester counts one alert as POST /v1/alerts would (ingestapi.Receiver).
type Ingester interface {
	IngestOne(ctx context.Context, u *base.User, ns, key string, raw map[string]json.RawMessage) (intake.Result, bool, error)
}

// Routes serve POST /v1/tools/execute and /mcp.
func (s *Protocols) Routes(m base.Mux) {
	m.Handle("POST /v1/tools/execute", http.HandlerFunc(s.serveTool)) // tools called by name (alert_ingest_tool, …)
	mcp := s.mcpHandler()
	m.Handle("POST /mcp", mcp)
	m.Handle("GET /mcp", mcp) // 405: the MCP endpoint is stateless, see mcp.go
}

// mcpUserKey carries the authenticated caller into TokenInfo.Extra.
const mcpUserKey = "alertbridge.user"

// MCPTools are the tools /mcp serves, in the order they are listed.
var MCPTools = []string{
	"alerts_list", "alerts_get", "alerts_claim", "alerts_renew", "alerts_ack", "alerts_fail", "alerts_requeue", "alerts_to_incident",
	"incidents_open", "incidents_get", "incidents_note", "incidents_close", "incidents_state", "dashboard", "release_check",
}

// mcpHandler is the MCP endpoint: our authentication (401 with the same JSON
// as every endpoint), then the SDK's bearer-token middleware, which hands
// the caller to the tools as TokenInfo, then the SDK's stateless handler.
func (s *Protocols) mcpHandler() http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: MCPServerName, Title: "alertbridge work queue"}, &mcp.ServerOptions{
		Instructions: "Alerts are a work queue: alerts_claim takes the oldest New Alerts under a lease in your name; " +
			"work each, then alerts_ack it (or alerts_fail it with an error and a retryAfter) before the lease expires " +
			"(alerts_renew extends it). Only the holder may renew, ack or fail. alerts_to_incident opens or appends to an Incident.",
	})
	addTool(srv, "alerts_list", "List Alerts last seen inside a window, newest first (GET /v1/alerts)", true, s.Reads.ListAlerts)
	addTool(srv, "alerts_get", "Read one Alert: its phase, lease holder and expiry, attempts, last error, occurrences, "+
		"first and last occurrence, and its Incident (GET /v1/alerts/{namespace}/{name})", true, s.Reads.GetAlert)
	addTool(srv, "alerts_claim", "Claim up to limit of the oldest New Alerts under a lease held in your name; "+
		"an empty list (nothingToClaim) when there is nothing to claim (POST /v1/alerts/claim)", false, s.Work.Claim)
	addTool(srv, "alerts_renew", "Extend your lease on an Alert you claimed", false, func(ctx context.Context, u *base.User, in RenewInput) (*base.WorkAlert, error) {
		return s.Work.Renew(ctx, u, in.ref(), in.RenewRequest)
	})
	addTool(srv, "alerts_ack", "Ack (close) an Alert you claimed, or (on-call) one nobody holds", false, func(ctx context.Context, u *base.User, in AckInput) (*base.WorkAlert, error) {
		return s.Work.Ack(ctx, u, in.ref(), in.AckRequest)
	})
	addTool(srv, "alerts_fail", "Fail an Alert you claimed: it is claimable again after retryAfter", false, func(ctx context.Context, u *base.User, in FailInput) (*base.WorkAlert, error) {
		return s.Work.Fail(ctx, u, in.ref(), in.FailRequest)
	})
	addTool(srv, "alerts_requeue", "Requeue an Alert (on-call): a Processing one whoever holds it (its lease is released) or a Failed one "+
		"back to New, with a reason; needs the requeue verb on alerts/status", false, func(ctx context.Context, u *base.User, in RequeueInput) (*base.WorkAlert, error) {
		return s.Work.Requeue(ctx, u, in.ref(), in.RequeueRequest)
	})
	addTool(srv, "alerts_to_incident", "Convert an Alert into an Incident, or append it to the open Incident of its signature",
		false, func(ctx context.Context, u *base.User, in ToIncidentInput) (*base.ToIncidentResult, error) {
			return s.Work.ToIncident(ctx, u, in.ref(), in.ToIncidentRequest)
		})
	addTool(srv, "incidents_open", "List open (Open or Mitigating) Incidents (GET /v1/incidents/open)", true,
		func(ctx context.Context, u *base.User, in base.IncidentsOpenRequest) (*query.IncidentList, error) {
			return s.Reads.OpenIncidents(ctx, u, in)
		})
	addTool(srv, "incidents_get", "Read one Incident: spec and status (timeline, triage and cooldown, notifications sent), "+
		"its linked Alerts as they are now, and with postmortem true a postmortem draft (GET /v1/incidents/{namespace}/{name})", true, s.Reads.GetIncident)
	addTool(srv, "incidents_note", "Add a note to an Incident's timeline", false, func(ctx context.Context, u *base.User, in IncidentNoteInput) (*base.WorkIncident, error) {
		return s.Work.NoteIncident(ctx, u, in.ref(), in.IncidentNoteRequest)
	})
	addTool(srv, "incidents_close", "Close an Incident with a note (Closed is terminal)", false, func(ctx context.Context, u *base.User, in IncidentCloseInput) (*base.WorkIncident, error) {
		return s.Work.CloseIncident(ctx, u, in.ref(), in.IncidentCloseRequest)
	})
	addTool(srv, "incidents_state", "Move an Incident to Open, Mitigating, Resolved or Closed", false,
		func(ctx context.Context, u *base.User, in IncidentStateInput) (*base.WorkIncident, error) {
			return s.Work.SetIncidentState(ctx, u, in.ref(), in.IncidentStateRequest)
		})
	addTool(srv, "dashboard", "The operational dashboard: counts by status, top signatures, latest Alerts, open Incidents, gates", true,
		func(ctx context.Context, u *base.User, in base.DashboardRequest) (*query.Dashboard, error) {
			return s.Reads.Dashboard(ctx, u, in)
		})
	addTool(srv, "release_check", "Whether the release gates of a service (or one SLOPolicy) allow a release", true, s.releaseCheck)

	stateless := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, MaxRequestBodyBytes: base.MaxRequestBytes})
	withUser := auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		u := base.UserFrom(r.Context())
		if u == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: u.Username, Extra: map[string]any{mcpUserKey: u}}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(stateless)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.Auth.Authenticate(w, r, false)
		if !ok {
			return
		}
		withUser.ServeHTTP(w, r.WithContext(base.WithUser(r.Context(), u)))
	})
}

// addTool registers an action as a tool with schemas made from its Go types;
// a refusal becomes a tool error whose text is the problem's.
func addTool[In, Out any](srv *mcp.Server, name, desc string, readOnly bool, f func(context.Context, *base.User, In) (*Out, error)) {
	tool := &mcp.Tool{
		Name: name, Description: desc,
		InputSchema:  base.SchemaOf(reflect.TypeFor[In]()),
		OutputSchema: base.SchemaOf(reflect.TypeFor[Out]()),
		Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: readOnly, IdempotentHint: readOnly},
	}
	mcp.AddTool(srv, tool, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, *Out, error) {
		u := mcpUser(req)
		if u == nil {
			return nil, nil, base.Refuse(http.StatusUnauthorized, "a Kubernetes bearer token is required")
		}
		out, err := f(ctx, u, in)
		if err != nil {
			p := base.RefusalOf(ctx, err)
			return nil, nil, toolError{p}
		}
		return nil, out, nil
	})
}

func mcpUser(req *mcp.CallToolRequest) *base.User {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return nil
	}
	u, _ := req.Extra.TokenInfo.Extra[mcpUserKey].(*base.User)
	return u
}

// toolError is a refusal as an MCP tool error: its text is what an agent reads.
type toolError struct{ p *base.Refusal }

func (e toolError) Error() string { return e.p.Text() }
