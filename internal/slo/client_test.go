package slo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/outbound"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testhttp"
)

// fakeProm serves /api/v1/query like Prometheus does, answering with the
// JSON body the test names for each query.
func fakeProm(t *testing.T, answers map[string]string, seen func(*http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if seen != nil {
			seen(r)
		}
		body, ok := answers[r.Form.Get("query")]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"unknown query"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func vector(values ...string) string {
	res := []map[string]any{}
	for i, v := range values {
		res = append(res, map[string]any{"metric": map[string]string{"i": fmt.Sprint(i)}, "value": []any{1700000000.0, v}})
	}
	b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}})
	return string(b)
}

func TestClientAgainstPrometheusAPI(t *testing.T) {
	const (
		lat  = `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="gw",env="staging"}[5m])))`
		errQ = `(sum(rate(http_requests_total{service="gw",env="staging",code=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total{service="gw",env="staging"}[5m]))`
	)
	if got := Render("", DefaultLatencyP95Query, "gw", "staging"); got != lat {
		t.Fatalf("rendered %s", got)
	}
	if got := Render("", DefaultErrorRateQuery, "gw", "staging"); got != errQ {
		t.Fatalf("rendered %s", got)
	}
	cases := []struct {
		name    string
		body    string
		wantNil bool
		wantInf bool
		want    string
	}{
		{name: "empty vector", body: vector(), wantNil: true},
		{name: "NaN", body: vector("NaN"), wantNil: true},
		{name: "exactly 0.3 stays 3/10", body: vector("0.3"), want: "3/10"},
		{name: "decimal string 0.011", body: vector("0.011"), want: "11/1000"},
		{name: "worst of several series", body: vector("0.1", "NaN", "0.25"), want: "1/4"},
		{name: "+Inf", body: vector("+Inf"), wantInf: true},
		{name: "scalar", body: `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.5"]}}`, want: "1/2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeProm(t, map[string]string{lat: tc.body}, nil)
			c, err := NewClient(srv.URL, Auth{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			m, err := c.Query(context.Background(), lat, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantNil && !m.NoData(), tc.wantInf && !m.Inf:
				t.Fatalf("got %+v", m)
			case tc.want != "" && (m.Value == nil || m.Value.Cmp(mustRat(t, tc.want)) != 0):
				t.Fatalf("got %v, want %s", m.Value, tc.want)
			}
		})
	}
}

func mustRat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rat %s", s)
	}
	return r
}

func TestClientErrors(t *testing.T) {
	srv := fakeProm(t, map[string]string{"matrix": `{"status":"success","data":{"resultType":"matrix","result":[]}}`}, nil)
	c, err := NewClient(srv.URL, Auth{}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "bad(", time.Now()); err == nil {
		t.Fatal("a query error was not reported")
	}
	if _, err := c.Query(context.Background(), "matrix", time.Now()); err == nil {
		t.Fatal("a matrix result was accepted")
	}
	srv.Close()
	if _, err := c.Query(context.Background(), "matrix", time.Now()); err == nil {
		t.Fatal("an unreachable source was not reported")
	}
}

func TestClientAuthAndHeaders(t *testing.T) {
	var got http.Header
	srv := fakeProm(t, map[string]string{"up": vector("1")}, func(r *http.Request) { got = r.Header.Clone() })
	auth, err := AuthFromSecret(map[string][]byte{"token": []byte("s3cret\n"), "header.X-Scope-OrgID": []byte("tenant-a")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(srv.URL, auth, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Bearer s3cret" || got.Get("X-Scope-OrgID") != "tenant-a" {
		t.Fatalf("headers %v", got)
	}
	basic, err := AuthFromSecret(map[string][]byte{"username": []byte("u"), "password": []byte("p")})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = NewClient(srv.URL, basic, 5*time.Second)
	if _, err := c.Query(context.Background(), "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if u, p, ok := (&http.Request{Header: got}).BasicAuth(); !ok || u != "u" || p != "p" {
		t.Fatalf("basic auth %v", got)
	}
	if _, err := AuthFromSecret(map[string][]byte{"token": []byte("t"), "username": []byte("u")}); err == nil {
		t.Fatal("token and username together were accepted")
	}
	if _, err := NewClient(srv.URL, Auth{CA: []byte("not pem")}, time.Second); err == nil {
		t.Fatal("a bad CA was accepted")
	}
}

// TestGateFromPrometheusAPI runs the whole evaluation, query to decision,
// against an httptest Prometheus for the decision's edge cases.
func TestGateFromPrometheusAPI(t *testing.T) {
	policy := testbuild.MakeSLOPolicy("gw", "").Service("gw").Env("staging").ErrorRatePercent("1.1").Obj()
	lat := Render("", DefaultLatencyP95Query, "gw", "staging")
	errQ := Render("", DefaultErrorRateQuery, "gw", "staging")
	cases := []struct {
		name          string
		latency, errs string
		noData        v1.NoDataPolicy
		want          v1.GateDecision
		reason        string
	}{
		{"both within", vector("0.25"), vector("0.001"), v1.NoDataBlock, v1.DecisionAllow, v1.ReasonWithinObjectives},
		{"latency exactly 300ms", vector("0.3"), vector("0"), v1.NoDataBlock, v1.DecisionAllow, v1.ReasonWithinObjectives},
		{"error rate exactly 1.1%", vector("0.1"), vector("0.011"), v1.NoDataBlock, v1.DecisionAllow, v1.ReasonWithinObjectives},
		{"error rate just over 1.1%", vector("0.1"), vector("0.0110000001"), v1.NoDataBlock, v1.DecisionBlock, v1.ReasonErrorRateExceeded},
		{"latency just over 300ms", vector("0.3000001"), vector("0"), v1.NoDataBlock, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded},
		{"empty vector blocks", vector(), vector("0"), v1.NoDataBlock, v1.DecisionBlock, v1.ReasonNoData},
		{"NaN allowed by noData Allow", vector("NaN"), vector("NaN"), v1.NoDataAllow, v1.DecisionAllow, v1.ReasonNoData},
		{"query error is SourceUnavailable", `{"status":"error","errorType":"execution","error":"query timed out"}`, vector("0"), v1.NoDataBlock, v1.DecisionBlock, v1.ReasonSourceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeProm(t, map[string]string{lat: tc.latency, errQ: tc.errs}, nil)
			c, err := NewClient(srv.URL, Auth{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := ParseObjectives(policy.Spec.Objectives)
			if err != nil {
				t.Fatal(err)
			}
			res := Decide(Input{
				Mode: v1.GateStrict, NoData: tc.noData, Objectives: obj,
				Observed: Observe(context.Background(), c, policy, time.Now()),
			})
			if res.Decision != tc.want || res.Reason != tc.reason {
				t.Fatalf("got %s/%s (%s), want %s/%s", res.Decision, res.Reason, res.Message, tc.want, tc.reason)
			}
		})
	}
}

// TestCredentialsStayWithTheOrigin: the token, basic auth and configured
// headers reach the configured URL's origin, follow a redirect within it,
// and never another origin, even one on the same host (where Go's client
// would keep an Authorization header).
func TestCredentialsStayWithTheOrigin(t *testing.T) {
	elsewhere := testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, vector("0.1"))
	})
	var configured *testhttp.Recorder
	configured = testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away/api/v1/query":
			http.Redirect(w, r, elsewhere.URL+"/api/v1/query", http.StatusTemporaryRedirect)
		case "/moved/api/v1/query":
			http.Redirect(w, r, configured.URL+"/api/v1/query", http.StatusTemporaryRedirect)
		case "/api/v1/query":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, vector("0.1"))
		}
	})
	secrets := map[string]map[string][]byte{
		"token": {"token": []byte("s3cret"), "header.X-Scope-OrgID": []byte("tenant-a")},
		"basic": {"username": []byte("u"), "password": []byte("s3cret"), "header.X-Scope-OrgID": []byte("tenant-a")},
	}
	for name, data := range secrets {
		t.Run(name, func(t *testing.T) {
			auth, err := AuthFromSecret(data)
			if err != nil {
				t.Fatal(err)
			}
			same, err := NewClient(configured.URL+"/moved", auth, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := same.Query(context.Background(), "up", time.Now()); err != nil {
				t.Fatalf("a same-origin redirect: %v", err)
			}
			away, err := NewClient(configured.URL+"/away", auth, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, err = away.Query(context.Background(), "up", time.Now())
			if err == nil || !strings.Contains(err.Error(), "refused a redirect from "+outbound.Origin(mustURL(t, configured.URL))) {
				t.Fatalf("a redirect to another origin: %v", err)
			}
			if got := elsewhere.Received(); len(got) != 0 {
				t.Fatalf("the other origin received %d requests, first with headers %v", len(got), got[0].Header)
			}
			for _, r := range configured.Received() {
				if r.Header.Get("Authorization") == "" || r.Header.Get("X-Scope-OrgID") != "tenant-a" {
					t.Fatalf("%s at the configured origin without the credentials: %v", r.URL.Path, r.Header)
				}
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// rawAnswer serves each connection the bytes given, as a server that does
// not care about HTTP would.
func rawAnswer(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).Peek(1)
				_, _ = io.WriteString(c, answer)
			}()
		}
	}()
	return "http://" + l.Addr().String()
}

// TestErrorsAreOurWords: whatever a source answers, the error (which
// reaches status, conditions and Events) carries our words and the HTTP
// status code, never the source's text.
func TestErrorsAreOurWords(t *testing.T) {
	const canary = "CANARY-7f3a"
	body := func(code int, contentType, text string) string {
		return testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(code)
			fmt.Fprint(w, text)
		}).URL
	}
	apiErr := func(typ string) string {
		return `{"status":"error","errorType":"` + typ + `","error":"` + canary + ` in the error"}`
	}
	cases := []struct {
		name, url, want string
	}{
		{"bad query", body(400, "application/json", apiErr("bad_data")), "the source refused the query as invalid (try it in the source's own UI to see why) (HTTP 400)"},
		{"execution", body(422, "application/json", apiErr("execution")), "the source failed to run the query (HTTP 422)"},
		{"unavailable", body(503, "application/json", apiErr("unavailable")), "(HTTP 503)"},
		{"error type made up", body(400, "application/json", apiErr(canary)), "(HTTP 400)"},
		{"unauthorized", body(401, "text/plain", canary+" go away"), "the source refused the request's credentials (check spec.source.prometheus.secretRef) (HTTP 401)"},
		{"server error page", body(500, "text/html", "<h1>"+canary+"</h1>"), "(HTTP 500)"},
		{"error in a 200", body(200, "application/json", apiErr("execution")), "the source failed to run the query (HTTP 200)"},
		{"not JSON in a 200", body(200, "application/json", canary), "not a Prometheus API answer (HTTP 200)"},
		{"reason phrase", rawAnswer(t, "HTTP/1.1 502 "+canary+"\r\nContent-Length: 0\r\n\r\n"), "(HTTP 502)"},
		{"not HTTP", rawAnswer(t, canary+" "+canary+"\r\n\r\n"), "no valid HTTP answer"},
		{"redirect to a canary host", testhttp.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+canary+".example/api/v1/query", http.StatusTemporaryRedirect)
		}).URL, "refused a redirect"},
		{"answer too large", body(200, "application/json", `{"status":"success","data":{"resultType":"vector","result":[`+strings.Repeat(" ", maxAnswerBytes)+`]}}`),
			"exceeds 4194304 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(tc.url, Auth{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Query(context.Background(), "up", time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(canary)) {
				t.Fatalf("got %v, want %q and no %s", err, tc.want, canary)
			}
		})
	}
}
