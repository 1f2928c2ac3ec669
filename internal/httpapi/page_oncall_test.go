package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-logr/logr"
	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/dashboard"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// TestDashboardOnCallPathInABrowser drives one on-call path on the page in
// headless Chromium, as a user bound to the shipped alertbridge-oncall role
// with a token of the audience alertbridge: a storm grows on the trend
// chart, the user converts an Alert into an Incident, notes it, is told in
// words why a close without a note is refused, resolves it (MTTR counts
// it) and bypasses the gate. A user bound to alertbridge-viewer then sees
// the same page without a single button. Screenshots of each step go to
// testdata/artifacts/.
func TestDashboardOnCallPathInABrowser(t *testing.T) {
	exe := chromium(t)
	quietLogs.Do(func() { logf.SetLogger(logr.Discard()) })
	op, err := testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: longGC})
	must(t, err)
	api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: httpapi.Config{DefaultNamespace: "default"}})
	must(t, err)
	srv := httptest.NewServer(api.Server.Handler())
	t.Cleanup(func() {
		srv.Close()
		must(t, api.Stop(settle))
		must(t, op.Stop(settle))
	})
	ctx0 := context.Background()
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "oncall-page-")
	oncall := roleCaller(t, ns, "oncall", "oncall")
	viewer := roleCaller(t, ns, "viewer", "viewer")
	// Its Prometheus does not exist: the operator decides Block.
	must(t, k8s.Create(ctx0, testbuild.MakeSLOPolicy("gateway", ns).Env("prod").PrometheusURL("http://127.0.0.1:1").Obj()))

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromiumFlags, chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	must(t, chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")))
	ctx, cancel := context.WithTimeout(bctx, 8*browserTimeout)
	defer cancel()

	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(browserTimeout))); err != nil {
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
			dialog, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("action-error")?.textContent || ""`))
			t.Fatalf("%s: %v (page status: %q, dialog: %q)", what, err, status, dialog)
		}
	}
	eval := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must(t, err)
		path := filepath.Join(artifactsDir(t), name)
		must(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot: %s", path)
	}
	signIn := func(tok string) {
		t.Helper()
		must(t, chromedp.Do(ctx,
			chromedp.SetValue(chromedp.ID("namespace"), ns),
			chromedp.SetValue(chromedp.ID("window"), "60"),
			chromedp.SetValue(chromedp.ID("token"), tok),
			chromedp.Click(chromedp.CSS(`#settings button[type="submit"]`)),
		))
	}
	// act clicks the first button of action in rows, fills the dialog and
	// submits it.
	act := func(rows, action string, fill map[string]string) {
		t.Helper()
		sel := fmt.Sprintf(`%s button[data-action=%q]`, rows, action)
		waitFor("the "+action+" button is shown", fmt.Sprintf(`document.querySelector(%q) !== null`, sel))
		eval(fmt.Sprintf(`document.querySelector(%q).click()`, sel))
		waitFor("the "+action+" dialog opens", `document.getElementById("action-dialog")?.open === true`)
		for k, v := range fill {
			eval(fmt.Sprintf(`document.getElementById(%q).value = %q`, "action-"+k, v))
		}
		eval(`document.getElementById("action-submit").click()`)
	}
	total := func(id string, n int) string {
		return fmt.Sprintf(`document.getElementById(%q)?.dataset.total === "%d"`, id, n)
	}

	signIn(oncall.token)
	waitFor("the trends are drawn", total("trend-new", 0)+` && document.querySelector("#trend-new canvas") !== null`)

	// The storm begins: three Alerts.
	for i := range 3 {
		must(t, k8s.Create(ctx0, p2Alert(ns, "gateway", "latency").Labels("route", fmt.Sprintf("/v1/chat/%d", i)).Obj()))
	}
	waitFor("the storm begins on the chart", total("trend-new", 3))
	shot("oncall-1-storm-begins.png")
	// It grows: nine more, and repeats of one of them (occurrences).
	for i := 3; i < 12; i++ {
		must(t, k8s.Create(ctx0, p2Alert(ns, "gateway", "latency").Labels("route", fmt.Sprintf("/v1/chat/%d", i)).Obj()))
	}
	for range 3 {
		must(t, k8s.Create(ctx0, p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat/0").Obj()))
	}
	// Twelve Alerts and three folded repeats; every one counts as an
	// occurrence of its canonical (whether the last repeats are folded in
	// yet or not, at least the twelve).
	waitFor("the storm grows on the chart", total("trend-new", 15)+` && Number(document.getElementById("trend-occ").dataset.total) >= 12`)
	waitFor("the gate's Block is drawn", `(document.getElementById("trend-gates").dataset.decisions || "").includes("gateway:Block")`)
	shot("oncall-2-storm-grew.png")

	// Convert the newest Alert into an Incident.
	act("#latest tbody tr", "to-incident", nil)
	waitFor("the conversion is reported", `document.getElementById("action-result")?.textContent.startsWith("Opened incident ")`)
	waitFor("the incident is listed", `document.querySelector("#incidents h3")?.textContent === "gateway (1)"`)
	var incs v1.IncidentList
	must(t, k8s.List(ctx0, &incs, client.InNamespace(ns)))
	if len(incs.Items) != 1 {
		t.Fatalf("%d Incidents, want 1", len(incs.Items))
	}
	inc := client.ObjectKeyFromObject(&incs.Items[0])

	// Note it.
	act("#incidents tbody tr", "note", map[string]string{"note": "p95 back under 300ms after the rollback"})
	waitFor("the note is reported", `document.getElementById("action-result")?.textContent.startsWith("Noted incident ")`)
	var got v1.Incident
	must(t, k8s.Get(ctx0, inc, &got))
	if got.Spec.Note != "p95 back under 300ms after the rollback" {
		t.Fatalf("spec.note = %q", got.Spec.Note)
	}

	// A close without a note is refused, in words, and nothing changes.
	act("#incidents tbody tr", "close", map[string]string{"note": ""})
	waitFor("the refusal is shown", `(document.getElementById("action-error")?.textContent || "").includes("Error 400") && `+
		`document.getElementById("action-error").textContent.includes("note")`)
	shot("oncall-3-close-refused.png")
	eval(`document.getElementById("action-cancel").click()`)
	must(t, k8s.Get(ctx0, inc, &got))
	if got.Spec.State != v1.IncidentOpen {
		t.Fatalf("state %s after a refused close", got.Spec.State)
	}

	// Resolve it: it leaves the open list, and MTTR counts it.
	act("#incidents tbody tr", "resolve", map[string]string{"note": "rolled back"})
	waitFor("the resolve is reported", `document.getElementById("action-result")?.textContent.startsWith("Resolved incident ")`)
	waitFor("no open incident is left", `document.querySelector("#incidents .empty") !== null`)
	waitFor("MTTR counts it", `document.getElementById("mttr")?.dataset.count === "1"`)
	must(t, k8s.Get(ctx0, inc, &got))
	if got.Spec.State != v1.IncidentResolved {
		t.Fatalf("state %s, want Resolved", got.Spec.State)
	}

	// Bypass the gate: recorded in the on-call user's name.
	act("#gates tbody tr", "bypass", map[string]string{"reason": "hotfix for the gateway", "for": "1h"})
	waitFor("the bypass is reported", `(document.getElementById("action-result")?.textContent || "").includes("release gate bypassed until")`)
	var p v1.SLOPolicy
	must(t, k8s.Get(ctx0, client.ObjectKey{Namespace: ns, Name: "gateway"}, &p))
	if by := p.Annotations[v1.BypassByAnnotation]; by != oncall.user || p.Annotations[v1.BypassReasonAnnotation] != "hotfix for the gateway" {
		t.Fatalf("bypass annotations %v, want by %s", p.Annotations, oncall.user)
	}
	waitFor("the gate shows the bypass", `document.querySelector("#gates tbody tr")?.dataset.reason === "Bypassed"`)
	shot("oncall-4-resolved-and-bypassed.png")

	// A viewer sees the same page and no button; the server refuses the
	// viewer's actions whatever the page shows.
	signIn(viewer.token)
	waitFor("the viewer's page has no buttons", fmt.Sprintf(`sessionStorage.getItem("token") === %q && `+
		`document.body.dataset.actions === "0" && document.body.dataset.permissionsFor === %q && `+
		`document.querySelectorAll("#latest tbody tr[data-ns]").length > 0 && document.querySelector("th.actions") === null`, viewer.token, ns))
	shot("viewer-no-buttons.png")
	var perms dashboard.Permissions
	if code, body := get(t, srv, "/v1/permissions?namespace="+ns, viewer.token, &perms); code != http.StatusOK || perms.Namespaces[ns] != (dashboard.NamespaceActions{}) {
		t.Fatalf("viewer permissions: %d %s", code, body)
	}
	if code, body := get(t, srv, "/v1/permissions?namespace="+ns, oncall.token, &perms); code != http.StatusOK ||
		perms.Namespaces[ns] != (dashboard.NamespaceActions{Ack: true, Convert: true, Note: true, State: true, Bypass: true}) {
		t.Fatalf("on-call permissions: %d %s", code, body)
	}
	req, err := http.NewRequestWithContext(ctx0, http.MethodPost, srv.URL+"/v1/slopolicies/"+ns+"/gateway/bypass", strings.NewReader(`{"clear":true}`))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+viewer.token)
	resp, err := srv.Client().Do(req)
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer's bypass clear: %d, want 403", resp.StatusCode)
	}
}
