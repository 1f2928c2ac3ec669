package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/onsi/gomega"
)

// Requeue over HTTP: on-call (the requeue verb, checked with a
// SubjectAccessReview) frees a Processing Alert someone else holds and
// retries a Failed one now, recorded as theirs; an agent, even the holder,
// is refused with 403 naming the verb.
func TestRequeueOverHTTP(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "requeue-")
	agent := roleCaller(t, ns, "supervisor", "agent")
	oncall := roleCaller(t, ns, "oncall", "oncall")
	newAlerts(t, ns, 2)

	var got base.ClaimResult
	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Limit: 2, Owner: "triage-supervisor", LockTTL: "1h"}, &got); code != http.StatusOK ||
		got.Count != 2 {
		t.Fatalf("claim: %d %+v", code, got)
	}
	held, failed := got.Alerts[0].Name, got.Alerts[1].Name
	path := func(name string) string { return "/v1/alerts/" + ns + "/" + name + "/requeue" }

	var p base.Problem
	if code := api.call(t, agent, http.MethodPost, path(held), base.RequeueRequest{Reason: "stuck"}, &p); code != http.StatusForbidden ||
		!strings.Contains(p.Message, `cannot requeue resource "alerts/status"`) {
		t.Fatalf("the holder requeues: %d %+v", code, p)
	}
	if code := api.call(t, oncall, http.MethodPost, path(held), base.RequeueRequest{Reason: " "}, &p); code != http.StatusBadRequest ||
		len(p.Errors) == 0 || p.Errors[0].Field != "reason" {
		t.Fatalf("no reason: %d %+v", code, p)
	}
	var w base.WorkAlert
	if code := api.call(t, oncall, http.MethodPost, path(held), base.RequeueRequest{Reason: "worker hung"}, &w); code != http.StatusOK ||
		w.Phase != string(v1.AlertNew) || w.Lease != nil || w.RequeuedBy != oncall.user || w.RequeueReason != "worker hung" {
		t.Fatalf("oncall requeues a held Alert: %d %+v", code, w)
	}
	if a := getAlert(t, ns, held); a.Status.Phase != v1.AlertNew || a.Status.Claim != nil || a.Status.Requeued == nil ||
		a.Status.Requeued.By != oncall.user || a.Status.Attempts != 1 {
		t.Fatalf("stored: %+v", a.Status)
	}

	if code := api.call(t, agent, http.MethodPost, "/v1/alerts/"+ns+"/"+failed+"/fail",
		base.FailRequest{Owner: "triage-supervisor", Error: "timeout", RetryAfter: "1h"}, &w); code != http.StatusOK {
		t.Fatalf("fail: %d %+v", code, w)
	}
	if code := api.call(t, oncall, http.MethodPost, path(failed), base.RequeueRequest{Reason: "retry now"}, &w); code != http.StatusOK ||
		w.Phase != string(v1.AlertNew) || w.RequeuedBy != oncall.user {
		t.Fatalf("oncall requeues a Failed Alert: %d %+v", code, w)
	}
	// A New Alert has nothing to requeue.
	if code := api.call(t, oncall, http.MethodPost, path(failed), base.RequeueRequest{Reason: "again"}, &p); code != http.StatusConflict {
		t.Fatalf("requeue a New Alert: %d %+v", code, p)
	}
}
