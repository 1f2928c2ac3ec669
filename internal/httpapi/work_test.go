package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The work queue over HTTP as an agent and an on-call engineer use it, each
// through the shipped role, and the error contract: 409 names the holder
// and the lease expiry, 403 the verb and resource, 404, 400 with the
// fields, and nothing to claim is a 200.
func TestWorkQueueOverHTTP(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	agent := roleCaller(t, ns, "supervisor", "agent")
	other := roleCaller(t, ns, "other-agent", "agent")
	oncall := roleCaller(t, ns, "oncall", "oncall")
	viewer := roleCaller(t, ns, "viewer", "viewer")

	var empty base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns}, &empty); code != http.StatusOK ||
		!empty.NothingToClaim || empty.Count != 0 || empty.Alerts == nil {
		t.Fatalf("nothing to claim: %d %+v", code, empty)
	}

	names := newAlerts(t, ns, 4)
	var got base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", map[string]any{
		"namespace": ns, "limit": 3, "owner": "triage-supervisor", "lockTTL": "10m", "windowMinutes": 240, "statusIn": []string{"new"},
		"service": "gateway", "env": "prod",
	}, &got); code != http.StatusOK || got.Count != 3 || got.NothingToClaim {
		t.Fatalf("claim: %d %+v", code, got)
	}
	for _, a := range got.Alerts {
		if a.Phase != string(v1.AlertProcessing) || a.Lease == nil || a.Lease.User != agent.user || a.Lease.Owner != "triage-supervisor" ||
			a.Lease.DurationSeconds != 600 || a.AlertRef != ns+"/"+a.Name {
			t.Fatalf("claimed %+v lease %+v", a, a.Lease)
		}
		if live := getAlert(t, ns, a.Name); live.Status.Claim.HolderUser != agent.user {
			t.Fatalf("holderUser %q", live.Status.Claim.HolderUser)
		}
	}
	held := got.Alerts[0]

	// Someone else: 409 naming the holder and the lease expiry.
	var p base.Problem
	if code := api.call(t, other, http.MethodPost, "/v1/alerts/"+ns+"/"+held.Name+"/ack", base.AckRequest{Owner: "triage-supervisor"}, &p); code != http.StatusConflict ||
		p.Holder == nil || p.Holder.User != agent.user || p.Holder.Owner != "triage-supervisor" || p.LeaseExpiresAt == nil ||
		!strings.Contains(p.Message, "is held by "+agent.user+" (owner triage-supervisor) until "+p.LeaseExpiresAt.Format(time.RFC3339)) {
		t.Fatalf("steal: %d %+v", code, p)
	}
	// The holder's other loop (another owner name) is kept out too.
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+held.Name+"/fail", base.FailRequest{Owner: "other-loop"}, &p); code != http.StatusConflict {
		t.Fatalf("other owner: %d %+v", code, p)
	}

	var w base.WorkAlert
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+held.Name+"/renew", base.RenewRequest{Owner: "triage-supervisor", LockTTL: "20m"}, &w); code != http.StatusOK ||
		w.Lease == nil || w.Lease.DurationSeconds != 1200 {
		t.Fatalf("renew: %d %+v", code, w)
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+held.Name+"/fail", base.FailRequest{Owner: "triage-supervisor", Error: "gateway timeout", RetryAfter: "5m"}, &w); code != http.StatusOK ||
		w.Phase != string(v1.AlertFailed) || w.LastError != "gateway timeout" || w.RetryAfter == nil {
		t.Fatalf("fail: %d %+v", code, w)
	}
	second := got.Alerts[1]
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+second.Name+"/ack", base.AckRequest{Owner: "triage-supervisor", Note: "fixed"}, &w); code != http.StatusOK ||
		w.Phase != string(v1.AlertAcked) || w.AckBy != agent.user || w.AckNote != "fixed" {
		t.Fatalf("ack: %d %+v", code, w)
	}

	// Acking an Alert nobody holds needs acknowledge: the on-call role has
	// it, the agent role does not (the admission policy's words).
	claimed := map[string]bool{}
	for _, a := range got.Alerts {
		claimed[a.Name] = true
	}
	unheld := ""
	for _, n := range names {
		if !claimed[n] {
			unheld = n
		}
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+unheld+"/ack", base.AckRequest{Note: "false positive"}, &p); code != http.StatusForbidden ||
		!strings.Contains(p.Message, "needs the acknowledge verb on alerts/status") {
		t.Fatalf("agent acks unheld: %d %+v", code, p)
	}
	if code := api.call(t, oncall, http.MethodPost, "/v1/alerts/"+ns+"/"+unheld+"/ack", base.AckRequest{Note: "false positive"}, &w); code != http.StatusOK ||
		w.AckBy != oncall.user {
		t.Fatalf("oncall acks unheld: %d %+v", code, w)
	}

	// 403 names the verb and the resource; 404; 400 names the fields.
	if code := api.call(t, viewer, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns}, &p); code != http.StatusForbidden ||
		!strings.Contains(p.Message, `cannot patch resource "alerts/status"`) {
		t.Fatalf("viewer claims: %d %+v", code, p)
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/no-such-alert/renew", nil, &p); code != http.StatusNotFound {
		t.Fatalf("missing: %d %+v", code, p)
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", map[string]any{"limit": -1, "lockTTL": "soon", "statusIn": []string{"failed"}, "bogus": 1}, &p); code != http.StatusBadRequest ||
		len(p.Errors) != 1 || p.Errors[0].Field != "bogus" {
		t.Fatalf("unknown field: %d %+v", code, p)
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", map[string]any{"limit": -1, "lockTTL": "soon", "statusIn": []string{"failed"}}, &p); code != http.StatusBadRequest ||
		len(p.Errors) != 3 || p.Errors[0].Field != "limit" || p.Errors[1].Field != "lockTTL" || p.Errors[2].Field != "statusIn" {
		t.Fatalf("invalid: %d %+v", code, p)
	}
	if code := api.call(t, caller{}, http.MethodPost, "/v1/alerts/claim", nil, &p); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %+v", code, p)
	}

	// On-call converts, notes, moves and closes; an agent may not.
	last := got.Alerts[2]
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+last.Name+"/to-incident", nil, &p); code != http.StatusForbidden ||
		!strings.Contains(p.Message, "incidents") {
		t.Fatalf("agent converts: %d %+v", code, p)
	}
	// The agent holds it: on-call may not link it, as kubectl as on-call may
	// not (the operator writes, so the API applies the holder rule to its
	// caller), and nothing is left behind.
	if code := api.call(t, oncall, http.MethodPost, "/v1/alerts/"+ns+"/"+last.Name+"/to-incident", nil, &p); code != http.StatusConflict ||
		p.Holder == nil || p.Holder.User != agent.user || p.Holder.Owner != "triage-supervisor" ||
		!strings.Contains(p.Message, "is held by "+agent.user+" (owner triage-supervisor)") || !strings.Contains(p.Message, "only the holder may convert it") {
		t.Fatalf("on-call converts a held Alert: %d %+v", code, p)
	}
	var incs v1.IncidentList
	must(t, k8s.List(context.Background(), &incs, client.InNamespace(ns)))
	if a := getAlert(t, ns, last.Name); len(incs.Items) != 0 || a.Status.IncidentRef != nil {
		t.Fatalf("a refused conversion left %d Incidents and incidentRef %+v", len(incs.Items), a.Status.IncidentRef)
	}
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+last.Name+"/ack", base.AckRequest{Owner: "triage-supervisor", Note: "escalated"}, &w); code != http.StatusOK {
		t.Fatalf("ack: %d %+v", code, w)
	}
	var conv base.ToIncidentResult
	if code := api.call(t, oncall, http.MethodPost, "/v1/alerts/"+ns+"/"+last.Name+"/to-incident", base.ToIncidentRequest{SeverityCap: "P1", DedupeWindow: "60m"}, &conv); code != http.StatusOK ||
		!conv.Created || !conv.Appended || conv.Incident.Name == "" || conv.Triage.Runs != 0 {
		t.Fatalf("to-incident: %d %+v", code, conv)
	}
	if a := getAlert(t, ns, last.Name); a.Status.IncidentRef == nil || a.Status.IncidentRef.Name != conv.Incident.Name {
		t.Fatalf("incidentRef %+v", a.Status.IncidentRef)
	}
	incPath := "/v1/incidents/" + ns + "/" + conv.Incident.Name
	var inc base.WorkIncident
	if code := api.call(t, agent, http.MethodPost, incPath+"/note", base.IncidentNoteRequest{Note: "looking"}, &p); code != http.StatusForbidden {
		t.Fatalf("agent notes: %d %+v", code, p)
	}
	if code := api.call(t, oncall, http.MethodPost, incPath+"/note", base.IncidentNoteRequest{Note: "looking"}, &inc); code != http.StatusOK || inc.Note != "looking" {
		t.Fatalf("note: %d %+v %+v", code, inc, p)
	}
	// The operator wrote both entries, each in the caller's name.
	var stored v1.Incident
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: conv.Incident.Name}, &stored))
	for _, typ := range []v1.TimelineType{v1.TimelineAlertAppended, v1.TimelineNote} {
		i := slices.IndexFunc(stored.Status.Timeline, func(e v1.TimelineEntry) bool { return e.Type == typ })
		if i < 0 || stored.Status.Timeline[i].Author != oncall.user {
			t.Fatalf("the %s entry names its author: %+v", typ, stored.Status.Timeline)
		}
	}
	if code := api.call(t, oncall, http.MethodPost, incPath+"/state", base.IncidentStateRequest{State: "mitigating", Note: "rolled back"}, &inc); code != http.StatusOK ||
		inc.State != string(v1.IncidentMitigating) {
		t.Fatalf("state: %d %+v", code, inc)
	}
	if code := api.call(t, oncall, http.MethodPost, incPath+"/close", base.IncidentCloseRequest{}, &p); code != http.StatusBadRequest || p.Errors[0].Field != "note" {
		t.Fatalf("close without a note: %d %+v", code, p)
	}
	if code := api.call(t, oncall, http.MethodPost, incPath+"/close", base.IncidentCloseRequest{Note: "fixed upstream"}, &inc); code != http.StatusOK ||
		inc.State != string(v1.IncidentClosed) {
		t.Fatalf("close: %d %+v", code, inc)
	}
	if code := api.call(t, oncall, http.MethodPost, incPath+"/close", base.IncidentCloseRequest{Note: "again"}, &p); code != http.StatusConflict {
		t.Fatalf("close twice: %d %+v", code, p)
	}
}

// Claims without a namespace cover exactly the namespaces where the caller
// may claim.
func TestClaimAcrossNamespacesKeepsToTheCallers(t *testing.T) {
	api := startAgentAPI(t)
	mine, theirs := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-"), testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	agent := roleCaller(t, mine, "supervisor", "agent")
	newAlerts(t, mine, 2)
	newAlerts(t, theirs, 2)
	var got base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Limit: 10}, &got); code != http.StatusOK || got.Count != 2 {
		t.Fatalf("claim: %d %+v", code, got)
	}
	for _, a := range got.Alerts {
		if a.Namespace != mine {
			t.Fatalf("claimed in %s", a.Namespace)
		}
	}
}

// Eight agents claiming over HTTP drain 1,000 Alerts, each claimed exactly
// once: real goroutines race through the API server's optimistic locks.
func TestEightAgentsDrainAThousandAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 Alerts")
	}
	const total, agents, batch = 1000, 8, 25
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	callers := make([]caller, agents)
	for i := range callers {
		callers[i] = roleCaller(t, ns, fmt.Sprintf("agent-%d", i), "agent")
	}
	newAlerts(t, ns, total)

	var mu sync.Mutex
	claimedBy := map[string][]string{}
	var wg sync.WaitGroup
	for i, c := range callers {
		wg.Go(func() {
			owner := fmt.Sprintf("loop-%d", i)
			for {
				var got base.ClaimResult
				if code := api.call(t, c, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Limit: batch, Owner: owner}, &got); code != http.StatusOK {
					t.Errorf("claim: %d %+v", code, got)
					return
				}
				if got.NothingToClaim {
					return
				}
				for _, a := range got.Alerts {
					mu.Lock()
					claimedBy[a.Name] = append(claimedBy[a.Name], owner)
					mu.Unlock()
					var w base.WorkAlert
					if code := api.call(t, c, http.MethodPost, "/v1/alerts/"+ns+"/"+a.Name+"/ack", base.AckRequest{Owner: owner, Note: "done"}, &w); code != http.StatusOK {
						t.Errorf("ack %s: %d %+v", a.Name, code, w)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(claimedBy) != total {
		t.Fatalf("%d of %d Alerts claimed", len(claimedBy), total)
	}
	for name, owners := range claimedBy {
		if len(owners) != 1 {
			t.Fatalf("%s claimed by %v", name, owners)
		}
	}
	var list v1.AlertList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(ns)))
	for _, a := range list.Items {
		if a.Status.Phase != v1.AlertAcked || a.Status.Attempts != 1 {
			t.Fatalf("%s: %s after %d attempts", a.Name, a.Status.Phase, a.Status.Attempts)
		}
	}
}
