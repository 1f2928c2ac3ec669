package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// A claim or renewal over HTTP asks for no more than the namespace's
// maxLeaseDuration: a longer lockTTL is a 400 naming the field and the
// ceiling, with nothing written, here and at the tool endpoint (there as
// lock_ttl_seconds).
func TestLockTTLWithinTheNamespacesCeiling(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	must(t, k8s.Create(context.Background(), testbuild.MakeAlertRoutingPolicy(ns).MaxLeaseDuration(30*time.Minute).Obj()))
	agent := roleCaller(t, ns, "supervisor", "agent")
	names := newAlerts(t, ns, 1)
	ceiling := "longer than namespace " + ns + " allows: a lease lasts at most 30m0s there"

	var p base.Problem
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, LockTTL: "1h"}, &p); code != http.StatusBadRequest ||
		len(p.Errors) != 1 || p.Errors[0].Field != "lockTTL" || !strings.Contains(p.Errors[0].Detail, ceiling) {
		t.Fatalf("claim past the ceiling: %d %+v", code, p)
	}
	var tool agents.ToolResult
	if code := api.call(t, agent, http.MethodPost, "/v1/tools/execute", map[string]any{
		"tool": "alert_ingest_tool", "action": "claim", "namespace": ns, "lock_ttl_seconds": 3600,
	}, &tool); code != http.StatusOK || tool.Accepted || len(tool.Errors) != 1 || tool.Errors[0].Field != "lock_ttl_seconds" ||
		!strings.Contains(tool.Errors[0].Detail, ceiling) {
		t.Fatalf("tool claim past the ceiling: %d %+v", code, tool)
	}
	if a := getAlert(t, ns, names[0]); a.Status.Phase != v1.AlertNew || a.Status.Attempts != 0 {
		t.Fatalf("a refused claim wrote: %+v", a.Status)
	}

	var got base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, LockTTL: "30m"}, &got); code != http.StatusOK ||
		got.Count != 1 || got.Alerts[0].Lease.DurationSeconds != 1800 {
		t.Fatalf("claim at the ceiling: %d %+v", code, got)
	}
	renew := "/v1/alerts/" + ns + "/" + names[0] + "/renew"
	if code := api.call(t, agent, http.MethodPost, renew, base.RenewRequest{LockTTL: "31m"}, &p); code != http.StatusBadRequest ||
		len(p.Errors) != 1 || p.Errors[0].Field != "lockTTL" || !strings.Contains(p.Errors[0].Detail, ceiling) {
		t.Fatalf("renew past the ceiling: %d %+v", code, p)
	}
	var w base.WorkAlert
	if code := api.call(t, agent, http.MethodPost, renew, base.RenewRequest{LockTTL: "20m"}, &w); code != http.StatusOK ||
		w.Lease == nil || w.Lease.DurationSeconds != 1200 {
		t.Fatalf("renew within the ceiling: %d %+v", code, w)
	}
}
