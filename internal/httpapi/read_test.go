package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// Bounds of the waits in the read specs.
const (
	decideTimeout = 30 * time.Second
	pollEvery     = 100 * time.Millisecond
	// longGC keeps folded duplicates in the cluster for the whole spec.
	longGC = time.Hour
	// pgStartup bounds initdb + pg_ctl start.
	pgStartup = 2 * time.Minute
	// catchUp bounds how long the mirror takes to write what changed.
	catchUp = 30 * time.Second
)

// readOperator is the real manager with every controller, as `alertbridge
// run` starts it, and the HTTP API reading its cache.
type readOperator struct {
	mgr ctrl.Manager
}

func startOperator(t testing.TB, opts controllers.Options, with ...testoperator.Option) *readOperator {
	t.Helper()
	op, err := testoperator.Start(env.Operator, opts, with...)
	must(t, err)
	t.Cleanup(func() {
		if err := op.Stop(decideTimeout); err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	return &readOperator{mgr: op.Manager}
}

// serve runs the HTTP API beside o with cfg, as `alertbridge serve` runs
// it (its own ServiceAccount and cache).
func (o *readOperator) serve(t testing.TB, cfg httpapi.Config) *httptest.Server {
	t.Helper()
	api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: cfg})
	must(t, err)
	srv := httptest.NewServer(api.Server.Handler())
	t.Cleanup(func() {
		srv.Close()
		must(t, api.Stop(settle))
	})
	return srv
}

// p2Alert is the P2 Alert of service and kind, titled after them, that the
// read and page specs create (each on a route label of its own).
func p2Alert(ns, service, kind string) *testbuild.AlertWrapper {
	return testbuild.MakeAlert("", ns).Service(service).Kind(kind).Title(service + " " + kind).Severity(v1.SeverityP2)
}

// get calls path and decodes the JSON answer into out (when not nil).
func get(t testing.TB, srv *httptest.Server, path, tok string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+path, nil)
	must(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: content type %q", path, ct)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		must(t, json.Unmarshal(body, out))
	}
	return resp.StatusCode, string(body)
}

// within polls cond until it returns nil or the timeout passes.
func within(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), pollEvery, timeout, true, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("not within %s: %v", timeout, last)
	}
}

type errorf string

func (e errorf) Error() string { return string(e) }

// bindClusterRole applies a ClusterRole shipped in config/rbac and binds
// it to a new ServiceAccount in ns; it returns the account's token.
func bindClusterRole(t testing.TB, ns, file, sa string) string {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("../../config/rbac/" + file)
	must(t, err)
	var role rbacv1.ClusterRole
	must(t, yaml.Unmarshal(raw, &role))
	if err := k8s.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}},
	}))
	return token(t, ns, sa)
}

// adminToken is a ServiceAccount bound cluster-wide to the viewer role.
func adminToken(t testing.TB, ns string) string {
	t.Helper()
	tok := bindClusterRole(t, ns, "viewer_role.yaml", "cluster-viewer")
	must(t, k8s.Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "cluster-viewer-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "alertbridge-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "cluster-viewer", Namespace: ns}},
	}))
	return tok
}

// waitDecided waits until every Alert of ns has a phase, and returns them.
func waitDecided(t testing.TB, ns string, want int) []v1.Alert {
	t.Helper()
	var list v1.AlertList
	within(t, decideTimeout, func() error {
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(list.Items) != want {
			return errorf("alerts: " + strings.Repeat("*", len(list.Items)))
		}
		for _, a := range list.Items {
			if a.Status.Phase == "" || (a.Status.Phase == v1.AlertDeduplicated) != (a.Status.DuplicateOf != "") {
				return errorf("alert " + a.Name + " is not decided yet")
			}
		}
		return nil
	})
	return list.Items
}

func TestReadEndpointsFromTheCache(t *testing.T) {
	op := startOperator(t, controllers.Options{DuplicateGCDelay: longGC})
	srv := op.serve(t, httpapi.Config{})
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "read-")
	tok := bindClusterRole(t, ns, "viewer_role.yaml", "viewer")

	ctx := context.Background()
	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj())) // folds into the first
	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj())) // folds into the first
	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "error_rate").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(ctx, p2Alert(ns, "payments", "latency").Labels("route", "/pay").Obj()))
	alerts := waitDecided(t, ns, 5)
	settleIncidents(t) // earlier specs' Incidents must not count below
	runs, skips := testutil.ToFloat64(metrics.TriageRuns), testutil.ToFloat64(metrics.TriageCooldownSkips)
	must(t, k8s.Create(ctx, testbuild.MakeIncident("gw", ns).Title("gateway slow").Severity(v1.SeverityP1).State(v1.IncidentOpen).
		Signature("gateway/prod/latency").Obj()))
	must(t, k8s.Create(ctx, testbuild.MakeIncident("pay", ns).Service("payments").Title("payments errors").Severity(v1.SeverityP2).
		State(v1.IncidentMitigating).Signature("payments/prod/latency").Obj()))
	settleIncidents(t) // opened, and labelled with their signature
	// The operator triages each when an Alert is converted into it: two
	// runs, dispatched and counted.
	convertInto(t, canonical(alerts, "gateway", "latency"), "")
	convertInto(t, canonical(alerts, "payments", "latency"), "")
	within(t, decideTimeout, func() error {
		if got := testutil.ToFloat64(metrics.TriageRuns) - runs; got != 2 {
			return errorf("triage runs " + strconv.FormatFloat(got, 'f', -1, 64))
		}
		return nil
	})
	// A second Incident of the signature inherits its cooldown: an Alert
	// converted into the signature skips triage.
	must(t, k8s.Create(ctx, testbuild.MakeIncident("gw-again", ns).Title("gateway slow again").Severity(v1.SeverityP3).State(v1.IncidentOpen).
		Signature("gateway/prod/latency").Obj()))
	settleIncidents(t)
	convertInto(t, canonical(alerts, "gateway", "error_rate"), "gateway/prod/latency")
	within(t, decideTimeout, func() error {
		if got := testutil.ToFloat64(metrics.TriageCooldownSkips) - skips; got != 1 {
			return errorf("cooldown skips " + strconv.FormatFloat(got, 'f', -1, 64))
		}
		return nil
	})
	if got := testutil.ToFloat64(metrics.TriageRuns) - runs; got != 2 {
		t.Fatalf("triage runs %v after a skip, want 2", got)
	}

	var l query.AlertList
	within(t, decideTimeout, func() error {
		code, body := get(t, srv, "/v1/alerts?namespace="+ns+"&status_in=new", tok, &l)
		if code != http.StatusOK || l.Count != 3 {
			return errorf(body)
		}
		return nil
	})
	for _, it := range l.Items {
		if it.Phase != "New" || it.Namespace != ns || it.Fingerprint == "" || it.Labels["route"] == "" {
			t.Errorf("item %+v", it)
		}
		if it.Service == "gateway" && it.Kind == "latency" && it.Occurrences != 3 {
			t.Errorf("canonical occurrences %d, want 3", it.Occurrences)
		}
	}

	// camelCase and snake_case, any case of phase names: one answer.
	var camel, snake query.AlertList
	get(t, srv, "/v1/alerts?namespace="+ns+"&windowMinutes=60&statusIn=New,DEDUPLICATED&service=gateway", tok, &camel)
	get(t, srv, "/v1/alerts?namespace="+ns+"&window_minutes=60&status_in=new&status_in=deduplicated&service=gateway", tok, &snake)
	if camel.Count != 4 || camel.WindowMinutes != 60 || !reflect.DeepEqual(camel, snake) {
		t.Fatalf("camelCase %+v\nsnake_case %+v", camel, snake)
	}
	var src query.AlertList
	get(t, srv, "/v1/alerts?namespace="+ns+"&source=monitor@node2", tok, &src)
	if src.Count != 0 || src.Items == nil {
		t.Fatalf("source filter: %+v", src)
	}

	var d query.Dashboard
	within(t, decideTimeout, func() error {
		code, body := get(t, srv, "/v1/alerts/dashboard?namespace="+ns+"&window_minutes=240", tok, &d)
		if code != http.StatusOK || len(d.OpenIncidents) != 3 {
			return errorf(body)
		}
		return nil
	})
	wantCounts := map[string]int64{"New": 3, "Processing": 0, "Acked": 0, "Failed": 0, "Deduplicated": 2}
	if !reflect.DeepEqual(d.Counts, wantCounts) || d.Occurrences != 5 || d.WindowMinutes != 240 {
		t.Fatalf("dashboard counts %v occurrences %d", d.Counts, d.Occurrences)
	}
	if len(d.TopSignatures) != 3 || d.TopSignatures[0].Signature != "gateway/prod/latency" || d.TopSignatures[0].Occurrences != 3 {
		t.Fatalf("top signatures %+v", d.TopSignatures)
	}
	if len(d.Latest) != 3 || d.OpenIncidents[0].Name != "gw" {
		t.Fatalf("latest %+v incidents %+v", d.Latest, d.OpenIncidents)
	}

	var inc query.IncidentList
	if code, body := get(t, srv, "/v1/incidents/open?namespace="+ns+"&service=payments", tok, &inc); code != http.StatusOK ||
		inc.Count != 1 || inc.Items[0].Name != "pay" || inc.Items[0].State != "Mitigating" {
		t.Fatalf("open incidents: %d %s", code, body)
	}
}

// canonical is the Alert of service and kind that is not a folded duplicate.
func canonical(alerts []v1.Alert, service, kind string) *v1.Alert {
	for i := range alerts {
		if a := &alerts[i]; a.Spec.Service == service && a.Spec.Kind == kind && a.Status.Phase != v1.AlertDeduplicated {
			return a
		}
	}
	return nil
}

// convertInto converts a, as the CLI does for whoever the test's
// administrator is (its entry names them), into the open Incident of its
// signature, or of sig when given.
func convertInto(t testing.TB, a *v1.Alert, sig string) {
	t.Helper()
	review := &authenticationv1.SelfSubjectReview{}
	must(t, k8s.Create(context.Background(), review))
	_, err := incident.Convert(context.Background(), k8s, client.ObjectKeyFromObject(a),
		incident.Options{Signature: sig, Caller: review.Status.UserInfo.Username})
	must(t, err)
}

// settleIncidents waits until the operator has opened every Incident in
// the cluster, seen all that was appended to it, and dispatched its triage
// runs.
func settleIncidents(t testing.TB) {
	t.Helper()
	within(t, decideTimeout, func() error {
		var list v1.IncidentList
		if err := k8s.List(context.Background(), &list); err != nil {
			return err
		}
		for _, inc := range list.Items {
			tr := inc.Status.Triage
			if incident.Unseen(&inc) || (tr != nil && tr.DispatchedRuns < tr.Runs) {
				return errorf("incident " + inc.Namespace + "/" + inc.Name + " is not settled")
			}
		}
		return nil
	})
}

func TestReadParameterErrors(t *testing.T) {
	srv := newServer(t, false)
	cases := []struct{ query, names string }{
		{"window_minutes=abc", "window_minutes"},
		{"windowMinutes=-5", "windowMinutes"},
		{"windowMinutes=1.5", "windowMinutes"},
		{"windowMinutes=99999999", "windowMinutes"},
		{"status_in=open", "status_in"},
		{"statusIn=New,bogus", "statusIn"},
		{"namespace=Not_A_Namespace", "namespace"},
		{"service=" + strings.Repeat("x", 300), "service"},
	}
	for _, path := range []string{"/v1/alerts", "/v1/alerts/dashboard", "/v1/incidents/open"} {
		for _, c := range cases {
			var body base.ErrorBody
			code, raw := get(t, srv, path+"?"+c.query, "", nil)
			must(t, json.Unmarshal([]byte(raw), &body))
			if code != http.StatusBadRequest || body.Code != 400 || !strings.HasPrefix(body.Message, c.names+": ") {
				t.Errorf("%s?%s: %d %s", path, c.query, code, raw)
			}
		}
	}
}

func TestReadAuth(t *testing.T) {
	op := startOperator(t, controllers.Options{DuplicateGCDelay: longGC})
	srv := op.serve(t, httpapi.Config{})
	anon := op.serve(t, httpapi.Config{DashboardAnonymous: true})
	mine, theirs := testbuild.Namespace(gomega.NewWithT(t), k8s, "read-"), testbuild.Namespace(gomega.NewWithT(t), k8s, "read-")
	viewer := bindClusterRole(t, mine, "viewer_role.yaml", "viewer")
	monitor := bindClusterRole(t, mine, "monitor_role.yaml", "monitor")
	ctx := context.Background()
	must(t, k8s.Create(ctx, p2Alert(mine, "gateway", "latency").Labels("route", "/mine").Obj()))
	must(t, k8s.Create(ctx, p2Alert(theirs, "gateway", "latency").Labels("route", "/theirs").Obj()))
	must(t, k8s.Create(ctx, p2Alert(theirs, "payments", "latency").Labels("route", "/theirs").Obj()))
	waitDecided(t, mine, 1)
	waitDecided(t, theirs, 2)

	for _, path := range []string{"/v1/alerts", "/v1/alerts/dashboard", "/v1/incidents/open"} {
		p := path + "?namespace=" + mine
		if code, body := get(t, srv, p, "", nil); code != http.StatusUnauthorized || !strings.Contains(body, `"code":401`) {
			t.Errorf("%s without a token: %d %s", p, code, body)
		}
		if code, _ := get(t, srv, p, "not-a-token", nil); code != http.StatusUnauthorized {
			t.Errorf("%s with a bad token: %d", p, code)
		}
		// The monitor role creates and gets Alerts; it may not list them.
		if code, body := get(t, srv, p, monitor, nil); code != http.StatusForbidden || !strings.Contains(body, `"code":403`) {
			t.Errorf("%s as monitor: %d %s", p, code, body)
		}
		if code, _ := get(t, srv, p, viewer, nil); code != http.StatusOK {
			t.Errorf("%s as viewer: %d", p, code)
		}
		if code, _ := get(t, srv, path+"?namespace="+theirs, viewer, nil); code != http.StatusForbidden {
			t.Errorf("%s in another namespace: %d", path, code)
		}
	}

	// Without a namespace, the answer covers only the namespaces the
	// caller may list, though Alerts exist in both.
	var l query.AlertList
	within(t, decideTimeout, func() error {
		if code, body := get(t, srv, "/v1/alerts?windowMinutes=0", viewer, &l); code != http.StatusOK {
			return errorf(body)
		}
		return nil
	})
	for _, it := range l.Items {
		if it.Namespace != mine {
			t.Fatalf("viewer of %s sees %s/%s", mine, it.Namespace, it.Name)
		}
	}
	if l.Count != 1 {
		t.Fatalf("viewer sees %d alerts, want 1", l.Count)
	}
	var d query.Dashboard
	get(t, srv, "/v1/alerts/dashboard", viewer, &d)
	for _, a := range d.Latest {
		if a.Namespace != mine {
			t.Fatalf("dashboard of a viewer of %s shows %s/%s", mine, a.Namespace, a.Name)
		}
	}
	// A cluster-wide viewer sees both.
	all := adminToken(t, mine)
	within(t, decideTimeout, func() error {
		get(t, srv, "/v1/alerts?windowMinutes=0", all, &l)
		seen := map[string]int{}
		for _, it := range l.Items {
			seen[it.Namespace]++
		}
		if seen[mine] != 1 || seen[theirs] != 2 {
			return errorf("cluster-wide viewer sees " + strings.TrimSpace(strings.Repeat("?", len(l.Items))))
		}
		return nil
	})

	// --dashboard-anonymous opens the dashboard JSON (and the page), not
	// the list; a token sent anyway is still checked.
	if code, _ := get(t, srv, "/v1/alerts/dashboard?namespace="+theirs, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("dashboard without the flag: %d", code)
	}
	if code, body := get(t, anon, "/v1/alerts/dashboard?namespace="+theirs, "", &d); code != http.StatusOK || d.Counts["New"] != 2 {
		t.Fatalf("anonymous dashboard: %d %s", code, body)
	}
	if code, _ := get(t, anon, "/v1/alerts?namespace="+theirs, "", nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous list: %d", code)
	}
	if code, _ := get(t, anon, "/v1/alerts/dashboard?namespace="+theirs, monitor, nil); code != http.StatusForbidden {
		t.Fatalf("anonymous server, monitor token: %d", code)
	}
	if code, _ := get(t, anon, "/v1/alerts/dashboard", "not-a-token", nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous server, bad token: %d", code)
	}
}

// TestReadEndpointsFromTheMirror runs the operator with the PostgreSQL
// mirror on a throwaway database and serves the same cluster twice: from
// the cache and from the mirror. Both answer alike while the objects are
// in the cluster; the mirror keeps answering for deleted ones.
func TestReadEndpointsFromTheMirror(t *testing.T) {
	ctx := context.Background()
	pctx, cancel := context.WithTimeout(ctx, pgStartup)
	defer cancel()
	pg, err := pgcluster.Start(pctx)
	must(t, err)
	t.Cleanup(pg.Stop)
	store, err := mirror.Open(ctx, pg.DSN())
	must(t, err)
	t.Cleanup(store.Close)
	// As config/default installs the mirror: with its finalizer policy.
	uninstall, err := testenv.InstallMirrorFinalizer(ctx, k8s)
	must(t, err)
	t.Cleanup(func() { must(t, uninstall(context.Background())) })
	op := startOperator(t, controllers.Options{DuplicateGCDelay: longGC}, testoperator.WithMirror(mirrorctrl.Options{Store: store, Migrate: true}))
	cached := op.serve(t, httpapi.Config{})
	history := op.serve(t, httpapi.Config{History: store})
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "read-")
	tok := bindClusterRole(t, ns, "viewer_role.yaml", "viewer")

	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "latency").Labels("route", "/v1/chat").Obj()))
	must(t, k8s.Create(ctx, p2Alert(ns, "gateway", "error_rate").Labels("route", "/v1/chat").Obj()))
	gone := p2Alert(ns, "payments", "latency").Labels("route", "/pay").Obj()
	must(t, k8s.Create(ctx, gone))
	waitDecided(t, ns, 4)
	gw := testbuild.MakeIncident("gw", ns).Title("gateway slow").Severity(v1.SeverityP1).State(v1.IncidentOpen).Obj()
	must(t, k8s.Create(ctx, gw))
	// The mirror keeps no delivery records: the last notification of an
	// open Incident comes from the cluster either way.
	sent := metav1.Now()
	unrecorded := gw.DeepCopy()
	gw.Status.Notifications = []v1.IncidentNotification{{Receiver: "pagerduty", Event: v1.NotifyOpened, Seq: 1, State: v1.IncidentOpen,
		Severity: v1.SeverityP1, Key: "k1", DeliveryAttempts: v1.DeliveryAttempts{Attempts: 1, LastAttemptAt: &sent, DeliveredAt: &sent}}}
	must(t, opK8s.Status().Patch(ctx, gw, client.MergeFrom(unrecorded))) // as the notification controller records it

	paths := []string{
		"/v1/alerts?namespace=" + ns + "&windowMinutes=0",
		"/v1/alerts?namespace=" + ns + "&status_in=new&service=gateway",
		"/v1/alerts/dashboard?namespace=" + ns,
		"/v1/incidents/open?namespace=" + ns,
		"/v1/alerts/dashboard", // namespace-less: the viewer's namespace only
	}
	// Same JSON, byte for byte but for generatedAt, once the mirror has
	// caught up.
	within(t, catchUp, func() error {
		for _, p := range paths {
			c1, fromCache := get(t, cached, p, tok, nil)
			c2, fromMirror := get(t, history, p, tok, nil)
			if c1 != http.StatusOK || c2 != http.StatusOK {
				return errorf(p + ": " + fromCache + fromMirror)
			}
			if a, b := withoutGeneratedAt(t, fromCache), withoutGeneratedAt(t, fromMirror); a != b {
				return errorf(p + ":\ncache  " + a + "\nmirror " + b)
			}
		}
		return nil
	})
	var d query.Dashboard
	get(t, history, paths[2], tok, &d)
	if d.Counts["New"] != 3 || d.Counts["Deduplicated"] != 1 || d.Occurrences != 4 || len(d.OpenIncidents) != 1 {
		t.Fatalf("mirror dashboard %+v", d)
	}
	if n := d.OpenIncidents[0].LastNotification; n == nil || n.Receiver != "pagerduty" || n.Result != query.NotificationDelivered {
		t.Fatalf("mirror dashboard's last notification %+v", n)
	}
	checkTrendsFromTheMirror(t, cached, history, ns, tok, 4, 4)

	// Delete an Alert: the cache forgets it, the mirror keeps its history.
	must(t, k8s.Delete(ctx, gone))
	within(t, catchUp, func() error {
		var fromCache, fromMirror query.AlertList
		get(t, cached, paths[0], tok, &fromCache)
		get(t, history, paths[0], tok, &fromMirror)
		if fromCache.Count != 3 || fromMirror.Count != 4 {
			return errorf("cache " + strconv.Itoa(fromCache.Count) + ", mirror " + strconv.Itoa(fromMirror.Count))
		}
		for _, it := range fromMirror.Items {
			if it.Name == gone.Name {
				if it.DeletedAt == nil || it.UID != string(gone.UID) || it.Service != "payments" {
					return errorf("history row not final yet")
				}
				return nil
			}
		}
		return errorf("the mirror lost " + gone.Name)
	})
	// The deleted Alert still counts in the mirror's dashboard.
	get(t, history, paths[2], tok, &d)
	if d.Counts["New"] != 3 || d.Occurrences != 4 {
		t.Fatalf("mirror dashboard after the delete %+v", d.Counts)
	}
	checkTrendsFromTheMirror(t, cached, history, ns, tok, 3, 4)
}

// withoutGeneratedAt is the JSON body without its timestamp of generation.
func withoutGeneratedAt(t testing.TB, body string) string {
	t.Helper()
	var m map[string]any
	must(t, json.Unmarshal([]byte(body), &m))
	delete(m, "generatedAt")
	b, err := json.Marshal(m)
	must(t, err)
	return string(b)
}
