package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsi/gomega"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/httpapi/dashboard"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// The attacks of the HTTP API's load review, each performed through the
// shipped roles against the real API server and counted by what the API
// server says it served (apiserver_request_total on its /metrics).

// served is a count of requests the API server answered, by verb,
// resource and scope ("cluster", "namespace", ...).
type served map[string]float64

const (
	tokenReviews = "POST tokenreviews"
	accessReview = "POST subjectaccessreviews"
	listAlerts   = "LIST alerts"
)

// apiServerServed scrapes the API server's apiserver_request_total as
// cluster admin.
func apiServerServed(t testing.TB) served {
	t.Helper()
	raw, err := kubernetes.NewForConfigOrDie(cfg).Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	must(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	must(t, err)
	out := served{}
	for _, m := range fams["apiserver_request_total"].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		res := l["resource"]
		if l["subresource"] != "" {
			res += "/" + l["subresource"]
		}
		kind := l["verb"] + " " + res
		out[kind] += m.GetCounter().GetValue()
		out[kind+" "+l["scope"]] += m.GetCounter().GetValue()
	}
	return out
}

// costOf runs attack and answers what the API server served meanwhile.
func costOf(t testing.TB, attack func()) served {
	t.Helper()
	before := apiServerServed(t)
	attack()
	after := apiServerServed(t)
	out := served{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// send makes one request with the Authorization header as given (tok is
// sent as "Bearer tok" unless it is empty) and answers the status, the
// Retry-After header and the body.
func send(t testing.TB, c *http.Client, method, u, tok string, body []byte) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	must(t, err)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: %d %s: %v", method, u, resp.StatusCode, data, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

// madeUpToken is a random token: a JWT-shaped one (which the API server
// tries to verify) or an opaque one (which no authenticator recognises).
func madeUpToken(i int) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b)
	if i%2 == 0 {
		return "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0." + s
	}
	return s
}

// 500 requests with made-up tokens cost at most FailedReviewBurst
// TokenReviews; past it the client gets 429 with Retry-After, while a token
// already accepted keeps working and costs nothing. A token the API server
// refused is not reviewed again; malformed tokens are refused without a
// review, and tokens are not refused for not being JWTs.
func TestMadeUpTokensCostBoundedTokenReviews(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	srv := authenticated(t, &base.Authenticator{Client: apiCS, Clock: clk})
	gate := srv.URL + "/v1/gates/" + f.ns + "/gateway"
	if code, _, body := send(t, srv.Client(), http.MethodGet, gate, f.allowed, nil); code != http.StatusOK {
		t.Fatalf("a valid token: %d %v", code, body)
	}

	const attempts = 500
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := map[string]int{}
	cost := costOf(t, func() {
		forEachParallel(attempts, 10, func(i int) {
			code, after, _ := send(t, srv.Client(), http.MethodGet, gate, madeUpToken(i), nil)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == http.StatusTooManyRequests {
				retryAfter[after]++
			}
		})
	})
	t.Logf("%d made-up tokens: answers %v, %v TokenReviews, %v SubjectAccessReviews", attempts, codes, cost[tokenReviews], cost[accessReview])
	if cost[tokenReviews] > base.FailedReviewBurst || cost[accessReview] != 0 {
		t.Fatalf("%d made-up tokens cost %v TokenReviews and %v SubjectAccessReviews; want at most %d and none",
			attempts, cost[tokenReviews], cost[accessReview], base.FailedReviewBurst)
	}
	if codes[http.StatusUnauthorized] != int(cost[tokenReviews]) || codes[http.StatusTooManyRequests] != attempts-codes[http.StatusUnauthorized] {
		t.Fatalf("answers %v for %v TokenReviews: want 401 for each token reviewed, 429 for the rest", codes, cost[tokenReviews])
	}
	for after := range retryAfter {
		if s, err := strconv.Atoi(after); err != nil || s < 1 || s > int(base.FailedReviewInterval/time.Second) {
			t.Fatalf("Retry-After %q", after)
		}
	}

	// Limited, the client still gets in with the token already accepted,
	// at no cost; a new one, even valid, waits for the limit.
	fresh := token(t, f.ns, "fresh")
	cost = costOf(t, func() {
		if code, _, body := send(t, srv.Client(), http.MethodGet, gate, f.allowed, nil); code != http.StatusOK {
			t.Fatalf("the accepted token while limited: %d %v", code, body)
		}
		if code, after, body := send(t, srv.Client(), http.MethodGet, gate, fresh, nil); code != http.StatusTooManyRequests || after == "" ||
			!strings.Contains(fmt.Sprint(body["message"]), "tokens accepted in the last few seconds keep working") {
			t.Fatalf("a new token while limited: %d %q %v", code, after, body)
		}
	})
	if cost[tokenReviews] != 0 {
		t.Fatalf("limited: %v TokenReviews, want none", cost[tokenReviews])
	}
	clk.SetTime(clk.Now().Add(base.FailedReviewInterval))
	if code, _, body := send(t, srv.Client(), http.MethodGet, gate, fresh, nil); code != http.StatusForbidden { // reviewed: valid, without the right
		t.Fatalf("a new token after the interval: %d %v", code, body)
	}

	// A token refused once is refused again without a review, and tokens
	// not shaped like JWTs (OpenShift's sha256~..., EKS's k8s-aws-v1...)
	// are reviewed like any other.
	other := authenticated(t, &base.Authenticator{Client: apiCS, Clock: clk})
	otherGate := other.URL + "/v1/gates/" + f.ns + "/gateway"
	cost = costOf(t, func() {
		for range 100 {
			if code, _, body := send(t, other.Client(), http.MethodGet, otherGate, "sha256~"+strings.Repeat("A", 43), nil); code != http.StatusUnauthorized {
				t.Fatalf("a refused token again: %d %v", code, body)
			}
		}
	})
	if cost[tokenReviews] != 1 {
		t.Fatalf("one refused token sent 100 times: %v TokenReviews, want 1", cost[tokenReviews])
	}

	// Malformed tokens: 401 naming why, no review.
	cost = costOf(t, func() {
		for tok, why := range map[string]string{
			"": "is empty",
			strings.Repeat("a", base.MaxTokenBytes+1): "more than the 16384",
			"two words": "not printable ASCII",
			"tab\there": "not printable ASCII",
			"caf\xe9":   "not printable ASCII",
		} {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, otherGate, nil)
			must(t, err)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := other.Client().Do(req)
			must(t, err)
			var body map[string]any
			must(t, json.NewDecoder(resp.Body).Decode(&body))
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(fmt.Sprint(body["message"]), why) {
				t.Errorf("token %.20q: %d %v, want 401 saying %q", tok, resp.StatusCode, body, why)
			}
		}
	})
	if cost[tokenReviews] != 0 {
		t.Fatalf("malformed tokens cost %v TokenReviews", cost[tokenReviews])
	}
}

// 50 concurrent requests with one new valid token cost one TokenReview and
// one SubjectAccessReview.
func TestConcurrentRequestsOfANewTokenCostOneReview(t *testing.T) {
	f := setup(t)
	policy(t, f.ns, "gateway", v1.DecisionAllow, v1.ReasonWithinObjectives, time.Second)
	srv := authenticated(t, &base.Authenticator{Client: apiCS})
	gate := srv.URL + "/v1/gates/" + f.ns + "/gateway"
	const concurrent = 50
	tr := &http.Transport{MaxIdleConnsPerHost: concurrent}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	cost := costOf(t, func() {
		for range concurrent {
			wg.Go(func() {
				<-start
				code, _, _ := send(t, c, http.MethodGet, gate, f.allowed, nil)
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
	})
	t.Logf("%d concurrent requests of a new token: answers %v, %v TokenReviews, %v SubjectAccessReviews", concurrent, codes, cost[tokenReviews], cost[accessReview])
	if codes[http.StatusOK] != concurrent || cost[tokenReviews] != 1 || cost[accessReview] != 1 {
		t.Fatalf("%d concurrent requests: answers %v, %v TokenReviews, %v SubjectAccessReviews; want all 200, one and one",
			concurrent, codes, cost[tokenReviews], cost[accessReview])
	}
}

// A caller with no rights who claims without a namespace gets 403, and the
// API server lists no Alerts for it; the reviews are bounded, and asked
// again they cost nothing. An agent claims in its own namespace without a
// cluster-wide LIST.
func TestClaimIsDecidedBeforeListing(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	newAlerts(t, ns, 2)
	stranger := caller{ns: ns, name: "stranger", token: token(t, ns, "stranger")}
	viewer := roleCaller(t, ns, "viewer", "viewer")
	agent := roleCaller(t, ns, "supervisor", "agent")

	for _, who := range []caller{stranger, viewer} {
		var p base.Problem
		cost := costOf(t, func() {
			if code := api.call(t, who, http.MethodPost, "/v1/alerts/claim", map[string]any{}, &p); code != http.StatusForbidden ||
				!strings.Contains(p.Message, "may claim Alerts in none of the namespaces checked") || !strings.Contains(p.Message, "name the namespace") {
				t.Fatalf("%s claims: %d %+v", who.name, code, p)
			}
		})
		t.Logf("%s claims without rights: %v LISTs of Alerts, %v SubjectAccessReviews", who.name, cost[listAlerts], cost[accessReview])
		if cost[listAlerts] != 0 || cost[accessReview] > 1+2*base.MaxReviewedNamespaces {
			t.Fatalf("%s claims: the API server served %v LISTs of Alerts and %v SubjectAccessReviews; want none and at most %d",
				who.name, cost[listAlerts], cost[accessReview], 1+2*base.MaxReviewedNamespaces)
		}
		// Asked again, the answers are cached (the operator's timers may
		// meanwhile make other namespaces' Alerts New, which are asked about).
		again := costOf(t, func() {
			for range 10 {
				api.call(t, who, http.MethodPost, "/v1/alerts/claim", map[string]any{}, nil)
			}
		})
		t.Logf("%s claims 10 times more: %v LISTs of Alerts, %v SubjectAccessReviews", who.name, again[listAlerts], again[accessReview])
		if again[listAlerts] != 0 || again[tokenReviews] != 0 || again[accessReview] > cost[accessReview] {
			t.Fatalf("%s claims 10 times more: %v", who.name, again)
		}
	}

	// The agent names its namespace: its claim picks candidates from the
	// API's Alert cache, so the API server serves no LIST at all.
	var got base.ClaimResult
	cost := costOf(t, func() {
		if code := api.call(t, agent, http.MethodPost, "/v1/alerts/claim", base.ClaimRequest{Namespace: ns, Limit: 1}, &got); code != http.StatusOK || got.Count != 1 {
			t.Fatalf("agent claims: %d %+v", code, got)
		}
	})
	if cost[listAlerts] != 0 || cost[listAlerts+" namespace"] != 0 || cost[listAlerts+" cluster"] != 0 {
		t.Fatalf("agent claims in its namespace: %v", cost)
	}
}

// GET /v1/permissions for more namespaces than the cap is refused without
// a review; at the cap, a caller without rights costs three reviews a
// namespace, and asking again costs nothing.
func TestPermissionsFanOutIsCapped(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	stranger := caller{ns: ns, name: "stranger", token: token(t, ns, "stranger")}
	api.call(t, stranger, http.MethodGet, "/v1/permissions?namespace="+ns, nil, nil) // its token reviewed
	query := func(n int) string {
		q := url.Values{}
		for i := range n {
			q.Add("namespace", fmt.Sprintf("team-%03d", i))
		}
		return "/v1/permissions?" + q.Encode()
	}
	var p base.Problem
	cost := costOf(t, func() {
		if code := api.call(t, stranger, http.MethodGet, query(base.MaxReviewedNamespaces+1), nil, &p); code != http.StatusBadRequest ||
			len(p.Errors) == 0 || p.Errors[0].Field != "namespace" || !strings.Contains(p.Message, strconv.Itoa(base.MaxReviewedNamespaces)) {
			t.Fatalf("over the cap: %d %+v", code, p)
		}
	})
	if cost[accessReview] != 0 || cost[tokenReviews] != 0 {
		t.Fatalf("a permissions call over the cap cost %v", cost)
	}
	var perms dashboard.Permissions
	cost = costOf(t, func() {
		if code := api.call(t, stranger, http.MethodGet, query(base.MaxReviewedNamespaces), nil, &perms); code != http.StatusOK ||
			len(perms.Namespaces) != base.MaxReviewedNamespaces {
			t.Fatalf("at the cap: %d %+v", code, perms)
		}
	})
	t.Logf("permissions for %d namespaces, no rights: %v SubjectAccessReviews", base.MaxReviewedNamespaces, cost[accessReview])
	if cost[accessReview] != 3*base.MaxReviewedNamespaces {
		t.Fatalf("permissions for %d namespaces: %v SubjectAccessReviews, want %d", base.MaxReviewedNamespaces, cost[accessReview], 3*base.MaxReviewedNamespaces)
	}
	cost = costOf(t, func() { api.call(t, stranger, http.MethodGet, query(base.MaxReviewedNamespaces), nil, nil) })
	if cost[accessReview] != 0 {
		t.Fatalf("asked again: %v SubjectAccessReviews", cost[accessReview])
	}
}

// amMessage is a webhook v4 message with one firing alert per namespace
// label of nss.
func amMessage(nss []string) []byte {
	alerts := make([]map[string]any, 0, len(nss))
	for i, ns := range nss {
		alerts = append(alerts, map[string]any{
			"status": "firing", "labels": map[string]string{"alertname": "HighLatency", "service": "gateway", "namespace": ns, "instance": fmt.Sprintf("gw-%d", i)},
			"annotations": map[string]string{"summary": "p95 above 300ms"}, "startsAt": "2026-11-27T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
			"fingerprint": fmt.Sprintf("fp%d", i),
		})
	}
	data, _ := json.Marshal(map[string]any{"version": "4", "groupKey": "{}", "status": "firing", "receiver": "alertbridge", "alerts": alerts})
	return data
}

// An Alertmanager message whose alerts span more namespaces than the cap is
// refused as a whole with a 4xx naming the cap (Alertmanager drops it
// rather than retrying it forever) and costs no review; a message of 1,000
// alerts over the cap's namespaces costs at most two reviews a namespace.
func TestAlertmanagerFanOutIsCapped(t *testing.T) {
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := monitorToken(t, ns)
	am := op.srv.URL + "/v1/alertmanager"
	send(t, op.srv.Client(), http.MethodPost, am, tok, amMessage([]string{ns})) // its token reviewed

	spread := make([]string, 1000)
	for i := range spread {
		spread[i] = fmt.Sprintf("team-%04d", i)
	}
	cost := costOf(t, func() {
		code, _, body := send(t, op.srv.Client(), http.MethodPost, am, tok, amMessage(spread))
		if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["message"]), "more than the "+strconv.Itoa(base.MaxReviewedNamespaces)) {
			t.Fatalf("1,000 namespaces: %d %v", code, body)
		}
		code, _, body = send(t, op.srv.Client(), http.MethodPost, am, tok, amMessage(spread[:base.MaxReviewedNamespaces+1]))
		if code != http.StatusBadRequest {
			t.Fatalf("%d namespaces: %d %v", base.MaxReviewedNamespaces+1, code, body)
		}
	})
	if cost[accessReview] != 0 || cost[tokenReviews] != 0 {
		t.Fatalf("messages over the cap cost %v", cost)
	}

	// 1,000 alerts over the cap's namespaces, the monitor's first.
	nss := append([]string{ns}, spread[:base.MaxReviewedNamespaces-1]...)
	within := make([]string, 1000)
	for i := range within {
		within[i] = nss[i%len(nss)]
	}
	cost = costOf(t, func() {
		code, _, body := send(t, op.srv.Client(), http.MethodPost, am, tok, amMessage(within))
		if code != http.StatusOK || body["results"].([]any)[0].(map[string]any)["accepted"] != true {
			t.Fatalf("1,000 alerts in %d namespaces: %d %.300v", base.MaxReviewedNamespaces, code, body)
		}
	})
	t.Logf("1,000 alerts over %d namespaces: %v SubjectAccessReviews", base.MaxReviewedNamespaces, cost[accessReview])
	if cost[accessReview] > 2*base.MaxReviewedNamespaces {
		t.Fatalf("1,000 alerts over %d namespaces: %v SubjectAccessReviews, want at most %d", base.MaxReviewedNamespaces, cost[accessReview], 2*base.MaxReviewedNamespaces)
	}
}

// A read across namespaces by a caller who may not list cluster-wide asks
// about at most the cap's namespaces, the most recently active first,
// however many hold Alerts; a namespace named in the request is always
// covered, and asked again the answers are cached.
func TestReadFanOutIsCapped(t *testing.T) {
	api := startAgentAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
	viewer := roleCaller(t, ns, "viewer", "viewer")
	older := newAlerts(t, ns, 1)[0]
	// Later Alerts in more namespaces than the cap. Times have whole
	// seconds; among equals the name decides, which "aa-" wins.
	for range base.MaxReviewedNamespaces + 1 {
		newAlerts(t, testbuild.Namespace(gomega.NewWithT(t), k8s, "aa-spread-"), 1)
	}
	api.call(t, viewer, http.MethodGet, "/v1/alerts?namespace="+ns, nil, nil) // its token reviewed
	names := func(l query.AlertList) []string {
		var out []string
		for _, it := range l.Items {
			out = append(out, it.Namespace+"/"+it.Name)
		}
		return out
	}
	var l query.AlertList
	cost := costOf(t, func() {
		if code := api.call(t, viewer, http.MethodGet, "/v1/alerts?windowMinutes=0", nil, &l); code != http.StatusOK {
			t.Fatalf("across namespaces: %d", code)
		}
	})
	t.Logf("a list across more than %d namespaces: %v SubjectAccessReviews", base.MaxReviewedNamespaces, cost[accessReview])
	if cost[accessReview] > 1+base.MaxReviewedNamespaces {
		t.Fatalf("a list across namespaces: %v SubjectAccessReviews, want at most %d", cost[accessReview], 1+base.MaxReviewedNamespaces)
	}
	// The viewer's namespace, the least recently active, was past the cap.
	if slices.Contains(names(l), ns+"/"+older) {
		t.Fatalf("a list across namespaces covers %s, past the %d most recently active: %v", ns, base.MaxReviewedNamespaces, names(l))
	}
	if code := api.call(t, viewer, http.MethodGet, "/v1/alerts?windowMinutes=0&namespace="+ns, nil, &l); code != http.StatusOK ||
		!slices.Contains(names(l), ns+"/"+older) {
		t.Fatalf("the viewer's namespace named: %d %v", code, names(l))
	}
	// Active again, it is among those covered.
	newer := newAlerts(t, ns, 1)[0]
	gomega.NewWithT(t).Eventually(func() []string {
		api.call(t, viewer, http.MethodGet, "/v1/alerts?windowMinutes=0", nil, &l)
		return names(l)
	}, settle, poll).Should(gomega.ContainElement(ns + "/" + newer))
	for _, path := range []string{"/v1/alerts/dashboard", "/v1/alerts/trends", "/v1/incidents/open"} {
		cost := costOf(t, func() {
			if code := api.call(t, viewer, http.MethodGet, path, nil, nil); code != http.StatusOK {
				t.Fatalf("%s: %d", path, code)
			}
		})
		t.Logf("%s across more than %d namespaces: %v SubjectAccessReviews", path, base.MaxReviewedNamespaces, cost[accessReview])
		// Alerts, Incidents, SLOPolicies and Silences at most: each the
		// cluster-wide question and the cap's namespaces.
		if cost[accessReview] > 4*(1+base.MaxReviewedNamespaces) {
			t.Fatalf("%s: %v SubjectAccessReviews", path, cost[accessReview])
		}
	}
	cost = costOf(t, func() { api.call(t, viewer, http.MethodGet, "/v1/alerts/dashboard", nil, nil) })
	if cost[accessReview] != 0 {
		t.Fatalf("the dashboard asked again: %v SubjectAccessReviews", cost[accessReview])
	}
}

// A monitor learns nothing of the Alerts it may not read from any ingest
// path — POST /v1/alerts (one, a batch, a replayed key), the tool
// endpoint's ingest and the Alertmanager receiver (firing, resolved): only
// that its occurrence was accepted (and replayed, which a retry needs). A
// caller who may get Alerts there is told the Alert and its count. The
// read check is one cached review.
func TestMonitorLearnsNothingOfAlertsItMayNotRead(t *testing.T) {
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	api := startAgentAPIWith(t, httpapi.Config{DefaultNamespace: ns})
	monitor := roleCaller(t, ns, "monitor", "monitor")
	must(t, k8s.Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader-viewer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: ns}},
	}))
	reader := roleCaller(t, ns, "reader", "monitor") // monitor and viewer
	// Someone else's Alert, which the monitor's occurrences fold into.
	names := newAlerts(t, ns, 1)
	existing := getAlert(t, ns, names[0])
	spec := map[string]any{"service": existing.Spec.Service, "env": existing.Spec.Env, "kind": existing.Spec.Kind,
		"title": existing.Spec.Title, "severity": existing.Spec.Severity, "labels": existing.Spec.Labels}
	one, _ := json.Marshal(spec)
	batch, _ := json.Marshal(map[string]any{"alerts": []any{spec, spec}})
	tool := map[string]any{"tool": "alert_ingest_tool", "action": "ingest"}
	for k, v := range spec {
		tool[k] = v
	}
	toolBody, _ := json.Marshal(tool)
	amFiring, amResolved := amBody("firing", "fp-secret", "gw-1"), amBody("resolved", "fp-secret", "gw-1")
	ingests := url.QueryEscape(ns)

	leaks := func(body map[string]any) []string {
		var out []string
		for _, k := range []string{"alertRef", "alert_ref", "occurrences", "deduped"} {
			if _, ok := body[k]; ok {
				out = append(out, k)
			}
		}
		raw, _ := json.Marshal(body)
		if strings.Contains(string(raw), existing.Name) {
			out = append(out, "the Alert's name")
		}
		return out
	}
	type path struct {
		name, url string
		body      []byte
		key       string
		items     func(map[string]any) []map[string]any
	}
	single := func(b map[string]any) []map[string]any { return []map[string]any{b} }
	results := func(b map[string]any) []map[string]any {
		var out []map[string]any
		for _, r := range b["results"].([]any) {
			out = append(out, r.(map[string]any))
		}
		return out
	}
	paths := []path{
		{"POST /v1/alerts", api.url + "/v1/alerts?namespace=" + ingests, one, "", single},
		{"POST /v1/alerts (a batch)", api.url + "/v1/alerts?namespace=" + ingests, batch, "", results},
		{"POST /v1/alerts (Idempotency-Key)", api.url + "/v1/alerts?namespace=" + ingests, one, "k1", single},
		{"POST /v1/alerts (the key replayed)", api.url + "/v1/alerts?namespace=" + ingests, one, "k1", single},
		{"POST /v1/tools/execute ingest", api.url + "/v1/tools/execute", toolBody, "", single},
		{"POST /v1/alertmanager (firing)", api.url + "/v1/alertmanager?namespace=" + ingests, amFiring, "", results},
		{"POST /v1/alertmanager (resolved)", api.url + "/v1/alertmanager?namespace=" + ingests, amResolved, "", results},
	}
	post := func(who caller, p path) map[string]any {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, p.url, bytes.NewReader(p.body))
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+who.token)
		if p.key != "" {
			req.Header.Set(base.IdempotencyKeyHeader, p.key)
		}
		resp, err := api.client.Do(req)
		must(t, err)
		defer func() { _ = resp.Body.Close() }()
		var body map[string]any
		must(t, json.NewDecoder(resp.Body).Decode(&body))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s as %s: %d %v", p.name, who.name, resp.StatusCode, body)
		}
		return body
	}
	before := existing.Status.Occurrences
	cost := costOf(t, func() {
		for _, p := range paths {
			body := post(monitor, p)
			for _, item := range p.items(body) {
				if item["accepted"] != true || len(leaks(item)) > 0 {
					t.Errorf("%s tells the monitor %v: %v", p.name, leaks(item), item)
				}
				if strings.HasSuffix(p.name, "replayed)") && item["replayed"] != true {
					t.Errorf("%s does not tell the monitor its retry was replayed: %v", p.name, item)
				}
			}
		}
	})
	// Its occurrences were counted: one, two of the batch, one keyed (not
	// its replay), one through the tool.
	if a := getAlert(t, ns, existing.Name); a.Status.Occurrences != before+5 {
		t.Fatalf("the monitor's occurrences were not all counted: %d, want %d", a.Status.Occurrences, before+5)
	}
	// create alerts and get alerts for the monitor in ns, asked once each.
	if cost[accessReview] > 2 {
		t.Fatalf("the monitor's %d ingests cost %v SubjectAccessReviews, want at most 2", len(paths), cost[accessReview])
	}
	for _, p := range paths[:2] {
		body := post(reader, p)
		for _, item := range p.items(body) {
			if item["alertRef"] != existing.Name || item["occurrences"] == nil || item["deduped"] != true {
				t.Errorf("%s does not tell a reader the Alert that counted it: %v", p.name, item)
			}
		}
	}
	// MCP has no ingest tool; one added must tell as little.
	if i := slices.IndexFunc(agents.MCPTools, func(n string) bool { return strings.Contains(n, "ingest") }); i >= 0 {
		t.Fatalf("MCP serves %s: check that its answer tells a monitor nothing of Alerts it may not read", agents.MCPTools[i])
	}
}

// While the API server cannot answer TokenReviews, new tokens count
// against the client's limit like refused ones: a flood costs at most
// FailedReviewBurst review attempts, not one a request, when the API
// server can least afford it.
func TestAnOutageDoesNotTurnAFloodIntoReviews(t *testing.T) {
	var attempts atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"ServiceUnavailable","code":503}`)
	}))
	t.Cleanup(down.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: down.URL})
	must(t, err)
	srv := authenticated(t, &base.Authenticator{Client: cs, Clock: clocktesting.NewFakePassiveClock(time.Now())})
	codes := map[int]int{}
	for i := range 30 {
		code, _, _ := send(t, srv.Client(), http.MethodGet, srv.URL+"/v1/gates/ns/gateway", madeUpToken(i), nil)
		codes[code]++
	}
	if attempts.Load() != base.FailedReviewBurst || codes[http.StatusServiceUnavailable] != base.FailedReviewBurst ||
		codes[http.StatusTooManyRequests] != 30-base.FailedReviewBurst {
		t.Fatalf("30 new tokens during an outage: %d review attempts, answers %v; want %d attempts answered 503, the rest 429",
			attempts.Load(), codes, base.FailedReviewBurst)
	}
}
