package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

const oneAlert = `{"service":"gateway","env":"prod","kind":"latency","severity":"P2","title":"p95 above 300ms","labels":{"route":"/v1/chat"}}`

func TestIngestAuth(t *testing.T) {
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	monitor := monitorToken(t, ns)
	stranger := token(t, ns, "stranger")
	url := op.srv.URL + "/v1/alerts?namespace=" + ns
	c := op.srv.Client()

	if code, body := post(t, c, url, "", []byte(oneAlert)); code != http.StatusUnauthorized || body["code"] != float64(401) {
		t.Fatalf("no token: %d %v", code, body)
	}
	if code, _ := post(t, c, url, "not-a-token", []byte(oneAlert)); code != http.StatusUnauthorized {
		t.Fatalf("invalid token: %d", code)
	}
	if code, body := post(t, c, url, stranger, []byte(oneAlert)); code != http.StatusForbidden ||
		!strings.Contains(fmt.Sprint(body["message"]), "cannot create alerts in namespace "+ns) {
		t.Fatalf("token without create alerts: %d %v", code, body)
	}
	// The monitor role is bound in ns only.
	other := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	if code, _ := post(t, c, op.srv.URL+"/v1/alerts?namespace="+other, monitor, []byte(oneAlert)); code != http.StatusForbidden {
		t.Fatalf("monitor in another namespace: %d", code)
	}
	if code, _ := post(t, c, op.srv.URL+"/v1/alertmanager?namespace="+other, monitor, amBody("firing", "x1", "gw-1")); code != http.StatusForbidden {
		t.Fatalf("monitor posting Alertmanager alerts to another namespace: %d", code)
	}
	if n := len(alerts(t, other)); n != 0 {
		t.Fatalf("refused requests stored %d Alerts", n)
	}
	// The monitor role reports firings; it reads no gates (nor lists Alerts).
	if code, _ := call(t, op.srv, http.MethodGet, "/v1/gates/"+ns+"/gateway", monitor); code != http.StatusForbidden {
		t.Fatalf("monitor reading a gate: %d", code)
	}
	// The monitor is told its occurrence was accepted, and nothing of the
	// Alert that counted it, which it may not read.
	code, body := post(t, c, url, monitor, []byte(oneAlert))
	if code != http.StatusOK || len(body) != 1 || body["accepted"] != true {
		t.Fatalf("monitor ingest: %d %v", code, body)
	}
	stored := alerts(t, ns)
	if len(stored) != 1 {
		t.Fatalf("%d Alerts stored, want 1", len(stored))
	}
	a := stored[0]
	if a.Spec.Service != "gateway" || a.Spec.Severity != v1.SeverityP2 || a.Spec.Labels["route"] != "/v1/chat" {
		t.Fatalf("stored spec %+v", a.Spec)
	}
	// The same alert again is folded into it; a caller who may read Alerts
	// there is told which, and its count.
	code, body = post(t, c, url, readerToken(t, ns), []byte(oneAlert))
	if code != http.StatusOK || body["deduped"] != true || body["alertRef"] != a.Name || body["occurrences"] != float64(2) {
		t.Fatalf("second ingest: %d %v", code, body)
	}
	// snake_case names are accepted (the tool calls' spelling, see
	// docs/migration.md).
	snake := `{"service":"billing","kind":"error_rate","title":"5xx","dedupe_ttl_minutes":5}`
	if code, body := post(t, c, url, monitor, []byte(snake)); code != http.StatusOK || body["accepted"] != true {
		t.Fatalf("snake_case ingest: %d %v", code, body)
	}
}

func TestIngestBadPayloads(t *testing.T) {
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := monitorToken(t, ns)
	must(t, k8s.Create(context.Background(), testbuild.MakeAlertRoutingPolicy(ns).AllowedKinds("latency", "error_rate").Obj()))
	url := op.srv.URL + "/v1/alerts?namespace=" + ns
	huge := `{"service":"gateway","kind":"latency","title":"t","message":"` + strings.Repeat("x", 2<<20) + `"}`
	cases := []struct {
		name, body string
		code       int
		says       []string // in the message
		field      string   // the first field error names it
	}{
		{"malformed JSON", `{"service":"gateway",`, 400, []string{"body", "JSON"}, "body"},
		{"not an object", `[1,2]`, 400, []string{"body"}, "body"},
		{"oversize body", huge, 413, []string{"body", "1048576 bytes"}, ""},
		{"missing fields", `{"service":"gateway"}`, 400, []string{"kind: Required", "title: Required"}, "kind"},
		{"wrong type", `{"service":"gateway","kind":"latency","title":"t","labels":["a"]}`, 400, []string{"labels", "object of string values"}, "labels"},
		{"number as string field", `{"service":42,"kind":"latency","title":"t"}`, 400, []string{"service", "must be a string"}, "service"},
		{"bad severity", `{"service":"gateway","kind":"latency","title":"t","severity":"P9"}`, 400, []string{"severity", "P9"}, "severity"},
		{"unknown field", `{"service":"gateway","kind":"latency","title":"t","sevrity":"P1"}`, 400, []string{"sevrity"}, "sevrity"},
		{"one bad item refuses the batch", `{"alerts":[` + oneAlert + `,{"service":"gateway","kind":"latency"}]}`, 400, []string{"alerts[1].title: Required"}, "alerts[1].title"},
		{"kind not allowed by the policy", `{"service":"gateway","kind":"disk_full","title":"t"}`, 400, []string{"kind", "disk_full", "latency"}, "kind"},
		{"empty batch", `{"alerts":[]}`, 400, []string{"alerts"}, "alerts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, op.srv.Client(), url, tok, []byte(tc.body))
			if code != tc.code {
				t.Fatalf("code %d, want %d: %v", code, tc.code, body)
			}
			msg := fmt.Sprint(body["message"])
			for _, s := range tc.says {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			if tc.field != "" {
				errs, _ := body["errors"].([]any)
				if len(errs) == 0 || errs[0].(map[string]any)["field"] != tc.field {
					t.Errorf("field errors %v, want the first to name %q", body["errors"], tc.field)
				}
			}
		})
	}
	long := strings.Repeat("k", 256)
	if code, body := post(t, op.srv.Client(), url, tok, []byte(oneAlert), "Idempotency-Key", long); code != 400 ||
		!strings.Contains(fmt.Sprint(body["message"]), "Idempotency-Key") {
		t.Fatalf("oversize Idempotency-Key: %d %v", code, body)
	}
	// A namespace that does not exist, for a caller allowed everywhere.
	monitorRole(t)
	must(t, k8s.Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "monitor-everywhere-" + ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "alertbridge-monitor"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "everywhere", Namespace: ns}},
	}))
	everywhere := token(t, ns, "everywhere")
	if code, body := post(t, op.srv.Client(), op.srv.URL+"/v1/alerts?namespace=no-such-"+ns, everywhere, []byte(oneAlert)); code != 404 ||
		!strings.Contains(fmt.Sprint(body["message"]), "namespace") {
		t.Fatalf("missing namespace: %d %v", code, body)
	}
	amURL := op.srv.URL + "/v1/alertmanager?namespace=" + ns
	for name, body := range map[string]string{
		"malformed":   `{"version":"4","alerts":[`,
		"version 3":   `{"version":"3","alerts":[]}`,
		"no alerts":   `{"version":"4"}`,
		"wrong types": `{"version":"4","alerts":{"a":1}}`,
		"oversize":    huge,
	} {
		code, out := post(t, op.srv.Client(), amURL, tok, []byte(body))
		if code != 400 && code != 413 || out["message"] == "" {
			t.Errorf("Alertmanager %s: %d %v", name, code, out)
		}
	}
	if n := len(alerts(t, ns)); n != 0 {
		t.Fatalf("refused requests stored %d Alerts", n)
	}
}

func TestIngestIdempotencyKey(t *testing.T) {
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := readerToken(t, ns) // the answers' counts show what was counted
	url := op.srv.URL + "/v1/alerts?namespace=" + ns
	c := op.srv.Client()
	_, first := post(t, c, url, tok, []byte(oneAlert), "Idempotency-Key", "req-1")
	code, again := post(t, c, url, tok, []byte(oneAlert), "Idempotency-Key", "req-1")
	if code != 200 || again["occurrences"] != float64(1) || again["replayed"] != true || again["alertRef"] != first["alertRef"] {
		t.Fatalf("retry: %d %v (first %v)", code, again, first)
	}
	if _, body := post(t, c, url, tok, []byte(oneAlert), "Idempotency-Key", "req-2"); body["occurrences"] != float64(2) {
		t.Fatalf("a new key counts: %v", body)
	}
	// A batch: each item is keyed; the retry replays every one.
	batch := `{"alerts":[` + oneAlert + `,` + strings.Replace(oneAlert, "/v1/chat", "/v1/embed", 1) + `]}`
	_, b1 := post(t, c, url, tok, []byte(batch), "Idempotency-Key", "batch-1")
	code, b2 := post(t, c, url, tok, []byte(batch), "Idempotency-Key", "batch-1")
	r1, r2 := b1["results"].([]any), b2["results"].([]any)
	if code != 200 || len(r2) != 2 || r2[0].(map[string]any)["replayed"] != true || r2[1].(map[string]any)["replayed"] != true ||
		r2[0].(map[string]any)["occurrences"] != float64(3) || r1[1].(map[string]any)["occurrences"] != float64(1) {
		t.Fatalf("batch retry: %d %v (first %v)", code, b2, b1)
	}
	// The keys are durable: a restarted operator (a new intake) still knows them.
	op2 := startAPI(t)
	code, after := post(t, op2.srv.Client(), op2.srv.URL+"/v1/alerts?namespace="+ns, tok, []byte(oneAlert), "Idempotency-Key", "req-1")
	if code != 200 || after["replayed"] != true || after["occurrences"] != float64(3) {
		t.Fatalf("retry after restart: %d %v", code, after)
	}
	var a v1.Alert
	must(t, k8s.Get(context.Background(), keyOf(ns, first["alertRef"]), &a))
	if a.Status.Occurrences != 3 {
		t.Fatalf("occurrences %d, want 3", a.Status.Occurrences)
	}
}

// TestIngestStorm: 20,000 ingests of 20 fingerprints from concurrent HTTP
// clients end with exact occurrences, at a small fraction of a write each.
func TestIngestStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("storm")
	}
	const fingerprints, total, clients = 20, 20000, 200
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := monitorToken(t, ns)
	url := op.srv.URL + "/v1/alerts?namespace=" + ns
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	bodies := make([][]byte, fingerprints)
	for i := range bodies {
		bodies[i] = []byte(strings.Replace(oneAlert, "/v1/chat", fmt.Sprintf("/r%02d", i), 1))
	}
	jobs := make(chan int, clients)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]int{}
	var failures []string
	for range clients {
		wg.Go(func() {
			for i := range jobs {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(bodies[i%fingerprints]))
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := c.Do(req)
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				var res struct {
					Accepted bool   `json:"accepted"`
					AlertRef string `json:"alertRef"`
				}
				err = json.NewDecoder(resp.Body).Decode(&res)
				_ = resp.Body.Close()
				mu.Lock()
				if err != nil || resp.StatusCode != 200 || !res.Accepted {
					failures = append(failures, fmt.Sprintf("status %d, %v", resp.StatusCode, err))
				} else {
					acked[fmt.Sprintf("/r%02d", i%fingerprints)]++
				}
				mu.Unlock()
			}
		})
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(failures), failures[0])
	}
	t.Logf("storm: %d occurrences over HTTP, %d API writes (%.4f writes per occurrence)",
		total, op.writes.Load(), float64(op.writes.Load())/total)
	gomega.NewWithT(t).Eventually(func() error {
		got := map[string]int64{}
		for _, a := range alerts(t, ns) {
			if a.Status.Phase == "" {
				return fmt.Errorf("undecided Alert %s", a.Name)
			}
			if a.Status.Phase == v1.AlertDeduplicated {
				continue
			}
			got[a.Spec.Labels["route"]] += a.Status.Occurrences
		}
		for route, n := range acked {
			if got[route] != int64(n) {
				var dump []string
				for _, a := range alerts(t, ns) {
					if a.Spec.Labels["route"] == route {
						dump = append(dump, fmt.Sprintf("%s %s occ=%d dupOf=%s pending=%v created=%s lastSeen=%v",
							a.Name, a.Status.Phase, a.Status.Occurrences, a.Status.DuplicateOf, a.Status.PendingFolds,
							a.CreationTimestamp.Format(time.RFC3339Nano), a.Status.LastSeenAt))
					}
				}
				return fmt.Errorf("route %s: %d occurrences, %d acknowledged:\n%s", route, got[route], n, strings.Join(dump, "\n"))
			}
		}
		if len(got) != fingerprints {
			return fmt.Errorf("%d fingerprints, want %d", len(got), fingerprints)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	if w := op.writes.Load(); w*4 > total {
		t.Fatalf("%d API writes for %d occurrences: the storm is not coalesced", w, total)
	}
}

func keyOf(ns string, name any) client.ObjectKey {
	return client.ObjectKey{Namespace: ns, Name: fmt.Sprint(name)}
}

// TestIngestOverQuota: a namespace whose ResourceQuota is full refuses the
// operator's create as it refuses anyone's; the sender is told to back off
// (429; Alertmanager, which drops 4xx, 503), and nothing is counted.
func TestIngestOverQuota(t *testing.T) {
	g := gomega.NewWithT(t)
	op := startAPI(t)
	ns := testbuild.Namespace(g, k8s, "ingest-")
	monitor := monitorToken(t, ns)
	count := corev1.ResourceName("count/alerts.ops.alertbridge.io")
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "alertbridge-alerts", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{count: resource.MustParse("1")}}}
	must(t, k8s.Create(context.Background(), quota))
	// No quota controller runs here: write the status it would.
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: corev1.ResourceList{count: resource.MustParse("0")}}
	must(t, k8s.Status().Update(context.Background(), quota))
	url := op.srv.URL + "/v1/alerts?namespace=" + ns
	c := op.srv.Client()
	g.Eventually(func() int {
		code, _ := post(t, c, url, monitor, []byte(oneAlert))
		return code
	}, settle, poll).Should(gomega.Equal(http.StatusOK))
	other := `{"service":"payments","kind":"error_rate","title":"5xx above 1%"}`
	code, body := post(t, c, url, monitor, []byte(other))
	if code != http.StatusTooManyRequests || !strings.Contains(fmt.Sprint(body["message"]), "holds as many Alerts as its ResourceQuota allows") {
		t.Fatalf("over quota: %d %v, want 429 saying the quota is full", code, body)
	}
	if code, _ := post(t, c, op.srv.URL+"/v1/alertmanager?namespace="+ns, monitor, amBody("firing", "x9", "pay-1")); code != http.StatusServiceUnavailable {
		t.Fatalf("Alertmanager over quota: %d, want 503 (it retries)", code)
	}
	if n := len(alerts(t, ns)); n != 1 {
		t.Fatalf("%d Alerts stored, want the one within the quota", n)
	}
}
