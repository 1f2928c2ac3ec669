package httpapi

import (
	"context"
	"net/http"
	"reflect"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

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
		RenewRequest
	}
	AckInput struct {
		AlertTarget
		AckRequest
	}
	FailInput struct {
		AlertTarget
		FailRequest
	}
	ToIncidentInput struct {
		AlertTarget
		ToIncidentRequest
	}
	IncidentNoteInput struct {
		IncidentTarget
		IncidentNoteRequest
	}
	IncidentCloseInput struct {
		IncidentTarget
		IncidentCloseRequest
	}
	IncidentStateInput struct {
		IncidentTarget
		IncidentStateRequest
	}
)

func (t AlertTarget) ref() ref    { return ref{ns: t.Namespace, name: t.Name} }
func (t IncidentTarget) ref() ref { return ref{ns: t.Namespace, name: t.Name} }

// mcpUserKey carries the authenticated caller into TokenInfo.Extra.
const mcpUserKey = "alertbridge.user"

// MCPTools are the tools /mcp serves, in the order they are listed.
var MCPTools = []string{
	"alerts_list", "alerts_claim", "alerts_renew", "alerts_ack", "alerts_fail", "alerts_to_incident",
	"incidents_open", "incidents_note", "incidents_close", "incidents_state", "dashboard", "release_check",
}

// mcpHandler is the MCP endpoint: our authentication (401 with the same JSON
// as every endpoint), then the SDK's bearer-token middleware, which hands
// the caller to the tools as TokenInfo, then the SDK's stateless handler.
func (s *Server) mcpHandler() http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: MCPServerName, Title: "alertbridge work queue"}, &mcp.ServerOptions{
		Instructions: "Alerts are a work queue: alerts_claim takes the oldest New Alerts under a lease in your name; " +
			"work each, then alerts_ack it (or alerts_fail it with an error and a retryAfter) before the lease expires " +
			"(alerts_renew extends it). Only the holder may renew, ack or fail. alerts_to_incident opens or appends to an Incident.",
	})
	addTool(srv, "alerts_list", "List Alerts last seen inside a window, newest first (GET /v1/alerts)", true, s.listAlerts)
	addTool(srv, "alerts_claim", "Claim up to limit of the oldest New Alerts under a lease held in your name; "+
		"an empty list (nothingToClaim) when there is nothing to claim (POST /v1/alerts/claim)", false, s.claimAlerts)
	addTool(srv, "alerts_renew", "Extend your lease on an Alert you claimed", false, func(ctx context.Context, u *User, in RenewInput) (*WorkAlert, error) {
		return s.renewAlert(ctx, u, in.ref(), in.RenewRequest)
	})
	addTool(srv, "alerts_ack", "Ack (close) an Alert you claimed, or (on-call) one nobody holds", false, func(ctx context.Context, u *User, in AckInput) (*WorkAlert, error) {
		return s.ackAlert(ctx, u, in.ref(), in.AckRequest)
	})
	addTool(srv, "alerts_fail", "Fail an Alert you claimed: it is claimable again after retryAfter", false, func(ctx context.Context, u *User, in FailInput) (*WorkAlert, error) {
		return s.failAlert(ctx, u, in.ref(), in.FailRequest)
	})
	addTool(srv, "alerts_to_incident", "Convert an Alert into an Incident, or append it to the open Incident of its signature",
		false, func(ctx context.Context, u *User, in ToIncidentInput) (*ToIncidentResult, error) {
			return s.toIncident(ctx, u, in.ref(), in.ToIncidentRequest)
		})
	addTool(srv, "incidents_open", "List open (Open or Mitigating) Incidents (GET /v1/incidents/open)", true,
		func(ctx context.Context, u *User, in IncidentsOpenRequest) (*query.IncidentList, error) {
			return s.openIncidents(ctx, u, in)
		})
	addTool(srv, "incidents_note", "Add a note to an Incident's timeline", false, func(ctx context.Context, u *User, in IncidentNoteInput) (*WorkIncident, error) {
		return s.noteIncident(ctx, u, in.ref(), in.IncidentNoteRequest)
	})
	addTool(srv, "incidents_close", "Close an Incident with a note (Closed is terminal)", false, func(ctx context.Context, u *User, in IncidentCloseInput) (*WorkIncident, error) {
		return s.closeIncident(ctx, u, in.ref(), in.IncidentCloseRequest)
	})
	addTool(srv, "incidents_state", "Move an Incident to Open, Mitigating, Resolved or Closed", false,
		func(ctx context.Context, u *User, in IncidentStateInput) (*WorkIncident, error) {
			return s.setIncidentState(ctx, u, in.ref(), in.IncidentStateRequest)
		})
	addTool(srv, "dashboard", "The operational dashboard: counts by status, top signatures, latest Alerts, open Incidents, gates", true,
		func(ctx context.Context, u *User, in DashboardRequest) (*query.Dashboard, error) {
			return s.dashboard(ctx, u, in)
		})
	addTool(srv, "release_check", "Whether the release gates of a service (or one SLOPolicy) allow a release", true, s.releaseCheck)

	stateless := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, MaxRequestBodyBytes: MaxRequestBytes})
	withUser := auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		u := UserFrom(r.Context())
		if u == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: u.Username, Extra: map[string]any{mcpUserKey: u}}, nil
	}, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(stateless)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.auth.Authenticate(w, r, false)
		if !ok {
			return
		}
		withUser.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// addTool registers an action as a tool with schemas made from its Go types;
// a refusal becomes a tool error whose text is the problem's.
func addTool[In, Out any](srv *mcp.Server, name, desc string, readOnly bool, f func(context.Context, *User, In) (*Out, error)) {
	tool := &mcp.Tool{
		Name: name, Description: desc,
		InputSchema:  schemaOf(reflect.TypeFor[In]()),
		OutputSchema: schemaOf(reflect.TypeFor[Out]()),
		Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: readOnly, IdempotentHint: readOnly},
	}
	mcp.AddTool(srv, tool, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, *Out, error) {
		u := mcpUser(req)
		if u == nil {
			return nil, nil, newProblem(http.StatusUnauthorized, "a Kubernetes bearer token is required")
		}
		out, err := f(ctx, u, in)
		if err != nil {
			p := toProblem(ctx, err)
			return nil, nil, toolError{p}
		}
		return nil, out, nil
	})
}

func mcpUser(req *mcp.CallToolRequest) *User {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return nil
	}
	u, _ := req.Extra.TokenInfo.Extra[mcpUserKey].(*User)
	return u
}

// toolError is a refusal as an MCP tool error: its text is what an agent reads.
type toolError struct{ p *problem }

func (e toolError) Error() string { return e.p.text() }
