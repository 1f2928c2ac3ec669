package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// incidentReader is a ServiceAccount that may get Incidents in ns but not
// Alerts: it sees the linked Alerts by ref only.
func incidentReader(t testing.TB, ns string) caller {
	t.Helper()
	ctx := context.Background()
	must(t, k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "incident-reader", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"incidents"}, Verbs: []string{"get"}}},
	}))
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "incident-reader", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "incident-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "incident-reader", Namespace: ns}},
	}))
	c := caller{ns: ns, name: "incident-reader", user: "system:serviceaccount:" + ns + ":incident-reader", token: token(t, ns, "incident-reader")}
	gomega.NewWithT(t).Eventually(func() error {
		sar, err := opCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: c.user, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: "get", Group: v1.GroupVersion.Group, Resource: "incidents",
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("%s may not yet get incidents", c.user)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	return c
}

// canonicalJSON is v marshalled, for comparing answers given over
// different protocols.
func canonicalJSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	must(t, err)
	return string(data)
}

// A viewer reads one Incident with its two linked Alerts over HTTP, the
// tool endpoint and MCP, and gets the same answer from each: the
// timeline, the Alerts' states (one claimed: holder and lease expiry) and
// a postmortem draft. A caller who may not get Incidents is refused (403),
// a missing Incident is 404, and a caller who may get the Incident but not
// its Alerts sees them by ref only.
func TestReadOneIncident(t *testing.T) {
	api := startAgentAPI(t)
	g := gomega.NewWithT(t)
	ns := testbuild.Namespace(g, k8s, "reads-")
	viewer := roleCaller(t, ns, "viewer", "viewer")
	agent := roleCaller(t, ns, "agent", "agent")
	oncall := roleCaller(t, ns, "oncall", "oncall")
	refOnly := incidentReader(t, ns)
	names := newAlerts(t, ns, 2)

	var first, second base.ToIncidentResult
	if code := api.call(t, oncall, http.MethodPost, "/v1/alerts/"+ns+"/"+names[0]+"/to-incident", base.ToIncidentRequest{}, &first); code != http.StatusOK {
		t.Fatalf("to-incident: %d %+v", code, first)
	}
	if code := api.call(t, oncall, http.MethodPost, "/v1/alerts/"+ns+"/"+names[1]+"/to-incident", base.ToIncidentRequest{}, &second); code != http.StatusOK ||
		second.Incident.Name != first.Incident.Name || !second.Appended {
		t.Fatalf("the second Alert was not appended to %s: %d %+v", first.Incident.Name, code, second)
	}
	incName := first.Incident.Name
	incPath := "/v1/incidents/" + ns + "/" + incName
	if code := api.call(t, oncall, http.MethodPost, incPath+"/note", base.IncidentNoteRequest{Note: "rolling back gateway"}, nil); code != http.StatusOK {
		t.Fatalf("note: %d", code)
	}
	// The agent claims both and fails the first.
	claimedAt := time.Now()
	var claimed base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Limit: 2, Owner: "loop", LockTTL: "10m"}, &claimed); code != http.StatusOK {
		t.Fatalf("claim: %d %+v", code, claimed)
	}
	var held *base.WorkAlert
	for i := range claimed.Alerts {
		if claimed.Alerts[i].Name == names[1] {
			held = &claimed.Alerts[i]
		}
	}
	if held == nil || claimed.Count != 2 {
		t.Fatalf("the claim did not take both Alerts: %+v", claimed)
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+names[0]+"/fail", base.FailRequest{Error: "gateway timeout", RetryAfter: "10m"}, nil); code != http.StatusOK {
		t.Fatalf("fail: %d", code)
	}

	// Over HTTP, as the viewer.
	var d base.IncidentDetail
	g.Eventually(func() error {
		d = base.IncidentDetail{}
		if code := api.call(t, viewer, http.MethodGet, incPath+"?postmortem=true", nil, &d); code != http.StatusOK {
			return fmt.Errorf("GET %s: %d %+v", incPath, code, d)
		}
		if len(d.Alerts) != 2 {
			return fmt.Errorf("%d linked Alerts: %+v", len(d.Alerts), d.Alerts)
		}
		for _, a := range d.Alerts {
			if a.Alert == nil || (a.Alert.Name == names[1] && a.Alert.Lease == nil) || (a.Alert.Name == names[0] && a.Alert.Phase != string(v1.AlertFailed)) {
				return fmt.Errorf("linked Alert %s not as it is now: %+v", a.AlertRef, a.Alert)
			}
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	if d.IncidentRef != ns+"/"+incName || d.Spec.Title == "" || d.Spec.Note != "rolling back gateway" {
		t.Errorf("incident: %+v", d)
	}
	var types []v1.TimelineType
	for _, e := range d.Status.Timeline {
		types = append(types, e.Type)
	}
	for _, want := range []v1.TimelineType{v1.TimelineOpened, v1.TimelineAlertAppended, v1.TimelineNote} {
		if !slices.Contains(types, want) {
			t.Errorf("timeline %v has no %s", types, want)
		}
	}
	if !slices.ContainsFunc(d.Status.Timeline, func(e v1.TimelineEntry) bool {
		return e.Type == v1.TimelineNote && e.Message == "rolling back gateway" && e.Author == oncall.user
	}) {
		t.Errorf("the note is not in the timeline: %+v", d.Status.Timeline)
	}
	byName := map[string]base.LinkedAlert{}
	for _, a := range d.Alerts {
		byName[a.Alert.Name] = a
	}
	if a := byName[names[0]]; a.AlertRef != ns+"/"+names[0] || a.Alert.Lease != nil || a.Alert.Attempts != 1 ||
		a.Alert.LastError != "gateway timeout" || a.Alert.RetryAfter == nil || a.Alert.Occurrences < 1 {
		t.Errorf("linked Alert %s: %+v", names[0], a.Alert)
	}
	a := byName[names[1]].Alert
	if a.Phase != string(v1.AlertProcessing) || a.Lease.Owner != "loop" || a.Lease.User != agent.user || a.Incident != incName {
		t.Errorf("linked Alert %s: %+v lease %+v", names[1], a, a.Lease)
	}
	if exp := a.Lease.ExpiresAt; exp.Before(claimedAt.Add(9*time.Minute)) || exp.After(time.Now().Add(11*time.Minute)) {
		t.Errorf("lease of %s expires at %s, claimed at %s for 10m", names[1], exp, claimedAt)
	}
	if d.Status.AlertCount != 2 || d.Triage.Runs != d.Status.Triage.Runs {
		t.Errorf("alertCount %d, triage %+v / %+v", d.Status.AlertCount, d.Triage, d.Status.Triage)
	}
	for _, want := range []string{"# Postmortem draft: " + d.Spec.Title, "`" + ns + "/" + incName + "`", "`" + names[0] + "`", "`" + names[1] + "`", "rolling back gateway"} {
		if !strings.Contains(d.Postmortem, want) {
			t.Errorf("the postmortem draft has no %q:\n%s", want, d.Postmortem)
		}
	}
	// Drafting wrote nothing: an open Incident has no postmortem ConfigMap.
	var stored v1.Incident
	must(t, k8s.Get(context.Background(), keyOf(ns, incName), &stored))
	if stored.Status.PostmortemRef != nil {
		t.Errorf("reading drafted a stored postmortem: %+v", stored.Status.PostmortemRef)
	}
	var plain base.IncidentDetail
	api.call(t, viewer, http.MethodGet, incPath, nil, &plain)
	if plain.Postmortem != "" || plain.IncidentRef != d.IncidentRef {
		t.Errorf("without postmortem=true: %+v", plain)
	}

	// The same answer from the tool endpoint and MCP (read one after the
	// other until the operator is done with the Incident).
	s, err := api.mcpSession(t, viewer)
	must(t, err)
	g.Eventually(func() error {
		var rest base.IncidentDetail
		api.call(t, viewer, http.MethodGet, incPath+"?postmortem=true", nil, &rest)
		var tool agents.ToolResult
		if code := api.call(t, viewer, http.MethodPost, "/v1/tools/execute",
			map[string]any{"tool": "oncall_tool", "action": "incident_get", "incident_ref": ns + "/" + incName, "postmortem": true}, &tool); code != http.StatusOK ||
			!tool.Accepted || tool.IncidentDetail == nil || tool.Incident == nil {
			return fmt.Errorf("incident_get: %d %+v", code, tool)
		}
		if tool.Incident.IncidentRef != ns+"/"+incName || tool.Incident.Status != "open" || tool.Incident.AlertCount != 2 {
			return fmt.Errorf("incident_get's incident: %+v", tool.Incident)
		}
		var viaMCP base.IncidentDetail
		if msg := callTool(t, s, "incidents_get", map[string]any{"namespace": ns, "name": incName, "postmortem": true}, &viaMCP); msg != "" {
			return fmt.Errorf("incidents_get: %s", msg)
		}
		want := canonicalJSON(t, rest)
		if got := canonicalJSON(t, tool.IncidentDetail); got != want {
			return fmt.Errorf("the tool answered\n%s\nHTTP\n%s", got, want)
		}
		if got := canonicalJSON(t, viaMCP); got != want {
			return fmt.Errorf("MCP answered\n%s\nHTTP\n%s", got, want)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())

	// The agent may not get Incidents: 403 everywhere, in kubectl's words.
	var refused base.Problem
	if code := api.call(t, agent, http.MethodGet, incPath, nil, &refused); code != http.StatusForbidden || refused.Code != http.StatusForbidden ||
		!strings.Contains(refused.Message, `cannot get resource "incidents"`) {
		t.Errorf("agent: %d %+v", code, refused)
	}
	var toolRefused agents.ToolResult
	if code := api.call(t, agent, http.MethodPost, "/v1/tools/execute",
		map[string]any{"tool": "oncall_tool", "action": "incident_get", "incident_ref": ns + "/" + incName}, &toolRefused); code != http.StatusForbidden || toolRefused.Accepted {
		t.Errorf("agent's incident_get: %d %+v", code, toolRefused)
	}
	sa, err := api.mcpSession(t, agent)
	must(t, err)
	if msg := callTool(t, sa, "incidents_get", map[string]any{"namespace": ns, "name": incName}, nil); !strings.HasPrefix(msg, "403 Forbidden") {
		t.Errorf("agent's incidents_get: %q", msg)
	}

	// A missing Incident is 404 to whoever may get Incidents there.
	var missing base.Problem
	if code := api.call(t, viewer, http.MethodGet, "/v1/incidents/"+ns+"/missing", nil, &missing); code != http.StatusNotFound ||
		missing.Code != http.StatusNotFound || !strings.Contains(missing.Message, "not found") {
		t.Errorf("missing: %d %+v", code, missing)
	}
	var bad base.Problem
	if code := api.call(t, viewer, http.MethodGet, incPath+"?postmortem=maybe", nil, &bad); code != http.StatusBadRequest ||
		len(bad.Errors) != 1 || bad.Errors[0].Field != "postmortem" {
		t.Errorf("postmortem=maybe: %d %+v", code, bad)
	}

	// Who may get the Incident but not its Alerts sees them by ref only.
	var refs base.IncidentDetail
	if code := api.call(t, refOnly, http.MethodGet, incPath, nil, &refs); code != http.StatusOK || len(refs.Alerts) != 2 {
		t.Fatalf("incident reader: %d %+v", code, refs)
	}
	for _, l := range refs.Alerts {
		if l.Alert != nil || l.Gone || !slices.Contains([]string{ns + "/" + names[0], ns + "/" + names[1]}, l.AlertRef) {
			t.Errorf("incident reader sees %+v", l)
		}
	}
}

// One Alert read after a claim shows the holder and the lease expiry, at
// once (read-your-writes), the same over HTTP, the tool endpoint and MCP;
// its Incident is shown to who may get it.
func TestReadOneAlert(t *testing.T) {
	api := startAgentAPI(t)
	g := gomega.NewWithT(t)
	ns := testbuild.Namespace(g, k8s, "reads-")
	agent := roleCaller(t, ns, "agent", "agent")
	viewer := roleCaller(t, ns, "viewer", "viewer")
	monitor := roleCaller(t, ns, "monitor", "monitor")
	names := newAlerts(t, ns, 1)

	var claimed base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Limit: 1, Owner: "loop", LockTTL: "10m"}, &claimed); code != http.StatusOK || claimed.Count != 1 {
		t.Fatalf("claim: %d %+v", code, claimed)
	}
	path := "/v1/alerts/" + ns + "/" + names[0]
	var d base.AlertDetail
	if code := api.call(t, agent, http.MethodGet, path, nil, &d); code != http.StatusOK {
		t.Fatalf("GET %s: %d %+v", path, code, d)
	}
	want := claimed.Alerts[0].Lease
	if d.Phase != string(v1.AlertProcessing) || d.Lease == nil || d.Lease.Owner != "loop" || d.Lease.User != agent.user ||
		!d.Lease.ExpiresAt.Equal(want.ExpiresAt) || d.Occurrences < 1 || d.FirstSeenAt == nil || d.LastSeenAt.IsZero() || d.AlertRef != ns+"/"+names[0] {
		t.Errorf("after the claim: %+v lease %+v, claimed %+v", d, d.Lease, want)
	}
	if d.IncidentRef != "" || d.LinkedIncident != nil {
		t.Errorf("an unlinked Alert shows an Incident: %+v", d)
	}

	// Failed: attempts and last error.
	if code := api.call(t, agent, http.MethodPost, path+"/fail", base.FailRequest{Error: "gateway timeout", RetryAfter: "5m"}, nil); code != http.StatusOK {
		t.Fatalf("fail: %d", code)
	}
	var failed base.AlertDetail
	api.call(t, agent, http.MethodGet, path, nil, &failed)
	if failed.Phase != string(v1.AlertFailed) || failed.Attempts != 1 || failed.LastError != "gateway timeout" || failed.Lease != nil || failed.RetryAfter == nil {
		t.Errorf("after the fail: %+v", failed)
	}

	// Linked to an Incident: its ref, and its summary to a viewer.
	inc := testbuild.MakeIncident("", ns).Env("prod").Severity(v1.SeverityP2).Title("gateway slow").State(v1.IncidentOpen).Obj()
	must(t, k8s.Create(context.Background(), inc))
	a := getAlert(t, ns, names[0])
	orig := a.DeepCopy()
	a.Status.IncidentRef = &v1.LocalObjectReference{Name: inc.Name}
	must(t, k8s.Status().Patch(context.Background(), a, client.MergeFrom(orig)))
	g.Eventually(func() error {
		var v base.AlertDetail
		api.call(t, viewer, http.MethodGet, path, nil, &v)
		if v.IncidentRef != ns+"/"+inc.Name || v.LinkedIncident == nil || v.LinkedIncident.Title != "gateway slow" {
			return fmt.Errorf("viewer: %+v %+v", v, v.LinkedIncident)
		}
		var byAgent base.AlertDetail
		api.call(t, agent, http.MethodGet, path, nil, &byAgent)
		if byAgent.IncidentRef != ns+"/"+inc.Name || byAgent.LinkedIncident != nil {
			return fmt.Errorf("agent, who may not get Incidents: %+v %+v", byAgent, byAgent.LinkedIncident)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())

	// The same over the tool endpoint and MCP.
	s, err := api.mcpSession(t, viewer)
	must(t, err)
	var rest base.AlertDetail
	api.call(t, viewer, http.MethodGet, path, nil, &rest)
	var tool agents.ToolResult
	if code := api.call(t, viewer, http.MethodPost, "/v1/tools/execute", map[string]any{"tool": "alert_ingest_tool", "action": "get", "alert_ref": names[0], "namespace": ns}, &tool); code != http.StatusOK ||
		!tool.Accepted || tool.AlertDetail == nil || tool.Alert == nil {
		t.Fatalf("get: %d %+v", code, tool)
	}
	if tool.Alert.Status != "failed" || tool.Alert.LastError != "gateway timeout" || tool.Alert.IncidentRef != ns+"/"+inc.Name || tool.AlertRef != ns+"/"+names[0] {
		t.Errorf("get's alert: %+v", tool.Alert)
	}
	var viaMCP base.AlertDetail
	if msg := callTool(t, s, "alerts_get", map[string]any{"namespace": ns, "name": names[0]}, &viaMCP); msg != "" {
		t.Fatalf("alerts_get: %s", msg)
	}
	if w := canonicalJSON(t, rest); canonicalJSON(t, tool.AlertDetail) != w || canonicalJSON(t, viaMCP) != w {
		t.Errorf("HTTP %s\ntool %s\nMCP %s", w, canonicalJSON(t, tool.AlertDetail), canonicalJSON(t, viaMCP))
	}

	// A monitor may create Alerts, not get them; a missing Alert is 404.
	var refused base.Problem
	if code := api.call(t, monitor, http.MethodGet, path, nil, &refused); code != http.StatusForbidden || !strings.Contains(refused.Message, `cannot get resource "alerts"`) {
		t.Errorf("monitor: %d %+v", code, refused)
	}
	var missing base.Problem
	if code := api.call(t, agent, http.MethodGet, "/v1/alerts/"+ns+"/missing", nil, &missing); code != http.StatusNotFound || missing.Code != http.StatusNotFound {
		t.Errorf("missing: %d %+v", code, missing)
	}
}
