package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// Bounds of the browser spec.
const (
	// browserTimeout bounds every wait on the page; it refreshes every 3s.
	browserTimeout = 45 * time.Second
)

// chromiumFlags keep Chromium off the network (this machine has none, and
// without them it stalls) and out of the user's profile.
var chromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.WindowSize(1400, 1100),
}

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: the browser test needs Debian's chromium package (hack/ensure-packages.sh installs it)")
	return ""
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "testdata", "artifacts")
	}
	must(t, os.MkdirAll(dir, 0o755))
	return dir
}

// TestDashboardPageInABrowser loads the page from a running operator in
// headless Chromium, signs in with a token, watches the counts change as
// Alerts arrive and the operator decides them, and saves a screenshot.
func TestDashboardPageInABrowser(t *testing.T) {
	exe := chromium(t)
	op := startOperator(t, controllers.Options{DuplicateGCDelay: longGC})
	srv := op.serve(t, httpapi.Config{})
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "read-")
	tok := bindClusterRole(t, ns, "viewer_role.yaml", "viewer")

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromiumFlags, chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first Run starts the browser; its context must outlive the test.
	must(t, chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")))
	ctx, cancel := context.WithTimeout(bctx, 3*browserTimeout)
	defer cancel()

	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(browserTimeout))); err != nil {
			status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
			t.Fatalf("%s: %v (page status: %q)", what, err, status)
		}
	}
	count := func(phase string, n int) string {
		return fmt.Sprintf(`document.querySelector("#count-%s")?.dataset.count === "%d"`, phase, n)
	}

	// Without a token the page says what is missing.
	waitFor("the 401 is shown", `document.getElementById("status").textContent.includes("401")`)

	must(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("namespace"), ns),
		chromedp.SetValue(chromedp.ID("token"), tok),
		chromedp.Click(chromedp.CSS(`#settings button[type="submit"]`)),
	))
	waitFor("the empty namespace is shown", count("New", 0)+` && document.getElementById("status").textContent.startsWith("Updated")`)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("token") !== null && localStorage.length === 0`))
	must(t, err)
	if !stored {
		t.Fatal("the token is not kept in sessionStorage (or leaked into localStorage)")
	}

	must(t, k8s.Create(context.Background(), p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(context.Background(), p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(context.Background(), p2Alert(ns, "gateway", "error_rate").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(context.Background(), p2Alert(ns, "payments", "latency").Labels("route", "/pay").Obj()))
	waitFor("the counts change", count("New", 3)+" && "+count("Deduplicated", 1))
	waitFor("the latest alerts are listed", `document.querySelectorAll("#latest tbody tr").length === 3`)
	waitFor("the top signature leads", `document.querySelector("#signatures tbody tr td")?.textContent === "gateway/prod/latency"`)
	gw := testbuild.MakeIncident("gateway-slow", ns).Title("gateway p95 above 300ms").Severity(v1.SeverityP1).State(v1.IncidentOpen).Obj()
	must(t, k8s.Create(context.Background(), gw))
	// As the notification controller records a delivery.
	sent := metav1.Now()
	unrecorded := gw.DeepCopy()
	gw.Status.Notifications = []v1.IncidentNotification{{Receiver: "pagerduty", Event: v1.NotifyOpened, Seq: 1, State: v1.IncidentOpen,
		Severity: v1.SeverityP1, Key: "k1", DeliveryAttempts: v1.DeliveryAttempts{Attempts: 1, LastAttemptAt: &sent, DeliveredAt: &sent}}}
	must(t, opK8s.Status().Patch(context.Background(), gw, client.MergeFrom(unrecorded)))
	blocks := testutil.ToFloat64(metrics.GateDecisions.WithLabelValues(string(v1.DecisionBlock)))
	// The operator evaluates it: its Prometheus does not exist, so Block.
	must(t, k8s.Create(context.Background(), testbuild.MakeSLOPolicy("gateway", ns).Env("staging").PrometheusURL("http://127.0.0.1:1").Obj()))
	waitFor("open incidents are grouped by service", `document.querySelector("#incidents h3")?.textContent === "gateway (1)"`)
	waitFor("the last notification is shown", `document.querySelector("#incidents td.notification")?.textContent.startsWith("pagerduty Opened delivered")`)
	waitFor("the gate is shown", `document.querySelectorAll("#gates tbody .pill.Block").length === 1`)
	// A Silence of the payments Alert: listed, and the Alert marked and
	// counted as silenced (still counted as New).
	must(t, k8s.Create(context.Background(), testbuild.MakeSilence("payments-deploy", ns).
		Matcher("service", v1.MatchEqual, "payments").Comment("payments deploy").Obj()))
	waitFor("the active Silence is listed", `document.querySelector("#silences tbody tr td")?.textContent === "`+ns+`/payments-deploy"`)
	waitFor("the silenced Alert is marked and counted", `document.getElementById("silenced").textContent === "· 1 alerts silenced" && `+
		`document.querySelectorAll("#latest tbody .pill.Silenced").length === 1 && `+count("New", 3))
	// The Block is counted.
	within(t, decideTimeout, func() error {
		if testutil.ToFloat64(metrics.GateDecisions.WithLabelValues(string(v1.DecisionBlock))) <= blocks {
			return errorf("no Block decision counted")
		}
		return nil
	})

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	if len(shot) < 8 || string(shot[1:4]) != "PNG" {
		t.Fatalf("not a PNG screenshot (%d bytes)", len(shot))
	}
	path := filepath.Join(artifactsDir(t), "dashboard.png")
	must(t, os.WriteFile(path, shot, 0o644))
	t.Logf("screenshot: %s", path)
}

// TestDashboardPageAssets checks the page is served from the binary with a
// strict CSP and references no external host.
func TestDashboardPageAssets(t *testing.T) {
	srv := newServer(t, false)
	for path, ctype := range map[string]string{
		"/": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css",
		"/ui/trends.js": "text/javascript", "/ui/actions.js": "text/javascript", "/ui/dashboard-extra.css": "text/css",
	} {
		resp, err := srv.Client().Get(srv.URL + path)
		must(t, err)
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		must(t, err)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("%s: CSP %q", path, csp)
		}
		if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") {
			t.Fatalf("%s refers to an external URL", path)
		}
	}
	// The vendored chart library is served from the binary too (its
	// licence header names its home page, which the page never loads).
	for path, ctype := range map[string]string{"/ui/vendor/uplot/uPlot.iife.min.js": "text/javascript", "/ui/vendor/uplot/uPlot.min.css": "text/css"} {
		resp, err := srv.Client().Get(srv.URL + path)
		must(t, err)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/ui/missing.js")
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing asset: %d", resp.StatusCode)
	}
}
