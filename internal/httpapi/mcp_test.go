package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/onsi/gomega"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// bearer adds a bearer token to every request, as an MCP client configured
// with an Authorization header does.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// mcpSession connects the SDK's own client to /mcp as c.
func (a *agentAPI) mcpSession(t testing.TB, c caller) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "v0.0.1"}, nil)
	s, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   a.url + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token: c.token, next: a.client.Transport}},
	}, nil)
	if err == nil {
		t.Cleanup(func() { _ = s.Close() })
	}
	return s, err
}

// callTool calls a tool and decodes its structured answer into out; it
// returns the result's error text, empty when the call succeeded.
func callTool(t testing.TB, s *mcp.ClientSession, name string, args map[string]any, out any) string {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	must(t, err)
	if res.IsError {
		var text []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text = append(text, tc.Text)
			}
		}
		return strings.Join(text, "\n")
	}
	if out != nil {
		data, err := json.Marshal(res.StructuredContent)
		must(t, err)
		must(t, json.Unmarshal(data, out))
	}
	return ""
}

// End to end with the SDK's own client against the running operator: the
// tools are listed with their schemas, an agent claims and acks, a steal is
// refused with the holder and the time to retry, and per-caller rights hold.
func TestMCPEndToEnd(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	agent := roleCaller(t, ns, "llm-agent", "agent")
	thief := roleCaller(t, ns, "other-agent", "agent")
	viewer := roleCaller(t, ns, "viewer", "viewer")
	newAlerts(t, ns, 2)

	if _, err := api.mcpSession(t, caller{token: "not-a-token"}); err == nil {
		t.Fatal("connected without a valid token")
	}
	s, err := api.mcpSession(t, agent)
	must(t, err)
	tools, err := s.ListTools(context.Background(), nil)
	must(t, err)
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		schema, _ := tool.InputSchema.(map[string]any)
		if schema["type"] != "object" || tool.OutputSchema == nil || tool.Description == "" {
			t.Fatalf("tool %s: input %v output %v", tool.Name, tool.InputSchema, tool.OutputSchema)
		}
		if tool.Name == "alerts_claim" {
			props, _ := schema["properties"].(map[string]any)
			for _, p := range []string{"namespace", "limit", "owner", "lockTTL", "windowMinutes", "statusIn", "env", "service"} {
				if _, ok := props[p]; !ok {
					t.Fatalf("alerts_claim has no %s: %v", p, props)
				}
			}
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(agents.MCPTools))) {
		t.Fatalf("tools %v, want %v", names, agents.MCPTools)
	}

	var claimed base.ClaimResult
	if msg := callTool(t, s, "alerts_claim", map[string]any{"namespace": ns, "limit": 2, "owner": "llm-loop", "lockTTL": "10m"}, &claimed); msg != "" || claimed.Count != 2 {
		t.Fatalf("claim: %s %+v", msg, claimed)
	}
	var acked base.WorkAlert
	if msg := callTool(t, s, "alerts_ack", map[string]any{"namespace": ns, "name": claimed.Alerts[0].Name, "owner": "llm-loop", "note": "done"}, &acked); msg != "" ||
		acked.Phase != string(v1.AlertAcked) || acked.AckBy != agent.user {
		t.Fatalf("ack: %s %+v", msg, acked)
	}

	ts, err := api.mcpSession(t, thief)
	must(t, err)
	msg := callTool(t, ts, "alerts_ack", map[string]any{"namespace": ns, "name": claimed.Alerts[1].Name, "owner": "llm-loop"}, nil)
	held := claimed.Alerts[1].Lease.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z07:00")
	if !strings.Contains(msg, "409 Conflict: status.claim: Alert "+claimed.Alerts[1].Name+" is held by "+agent.user+" (owner llm-loop) until "+held+"; only the holder may ack it; retry after "+held) {
		t.Fatalf("steal: %q", msg)
	}
	if a := getAlert(t, ns, claimed.Alerts[1].Name); a.Status.Phase != v1.AlertProcessing || a.Status.Claim.HolderUser != agent.user {
		t.Fatalf("stolen: %+v", a.Status)
	}

	if msg := callTool(t, s, "alerts_claim", map[string]any{"namespace": ns, "limit": 1000}, nil); !strings.Contains(msg, "limit") {
		t.Fatalf("invalid limit: %q", msg)
	}
	if msg := callTool(t, s, "alerts_claim", map[string]any{"namespace": ns, "lockTTL": "soon"}, nil); !strings.Contains(msg, "400 Bad Request: lockTTL") {
		t.Fatalf("invalid lockTTL: %q", msg)
	}
	vs, err := api.mcpSession(t, viewer)
	must(t, err)
	if msg := callTool(t, vs, "alerts_claim", map[string]any{"namespace": ns}, nil); !strings.Contains(msg, `403 Forbidden: alerts.ops.alertbridge.io is forbidden: User "`+viewer.user+`" cannot patch resource "alerts/status"`) {
		t.Fatalf("viewer claims: %q", msg)
	}
	var list struct {
		Count int `json:"count"`
	}
	if msg := callTool(t, vs, "alerts_list", map[string]any{"namespace": ns}, &list); msg != "" || list.Count != 2 {
		t.Fatalf("viewer lists: %q %+v", msg, list)
	}
	var nothing base.ClaimResult
	if msg := callTool(t, s, "alerts_claim", map[string]any{"namespace": ns}, &nothing); msg != "" || !nothing.NothingToClaim {
		t.Fatalf("nothing to claim: %q %+v", msg, nothing)
	}
}
