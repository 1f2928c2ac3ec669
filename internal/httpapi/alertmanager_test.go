package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/test/integration/promtest"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// amBody is a webhook v4 message with one alert.
func amBody(status, fingerprint, instance string) []byte {
	ends := "0001-01-01T00:00:00Z"
	if status == "resolved" {
		ends = "2026-11-27T10:05:00Z"
	}
	return fmt.Appendf(nil, `{"version":"4","groupKey":"{}:{alertname=\"HighLatency\"}","status":%q,"receiver":"alertbridge",
"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",
"alerts":[{"status":%q,"labels":{"alertname":"HighLatency","service":"gateway","severity":"critical","instance":%q},
"annotations":{"summary":"p95 above 300ms"},"startsAt":"2026-11-27T10:00:00Z","endsAt":%q,"fingerprint":%q}]}`,
		status, status, instance, ends, fingerprint)
}

// TestAlertmanagerWebhook: re-sends of one firing instance count once; a
// bad alert is a per-item error beside the good ones, answered 200.
func TestAlertmanagerWebhook(t *testing.T) {
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := monitorToken(t, ns)
	url := op.srv.URL + "/v1/alertmanager?namespace=" + ns
	c := op.srv.Client()
	for range 3 {
		code, body := post(t, c, url, tok, amBody("firing", "fp1", "gw-1"))
		// Alertmanager's monitor token may not read Alerts: it is told the
		// instance was accepted, not the Alert's count (checked below).
		res := body["results"].([]any)[0].(map[string]any)
		if code != 200 || res["accepted"] != true || res["fingerprint"] != "fp1" || res["occurrences"] != nil || res["alertRef"] != nil {
			t.Fatalf("firing: %d %v", code, body)
		}
	}
	bad := strings.Replace(string(amBody("firing", "fp2", "gw-2")), `"service":"gateway",`, "", 1)
	bad = strings.Replace(bad, `"alerts":[`, `"alerts":[`+extractAlert(amBody("firing", "fp3", "gw-3"))+",", 1)
	code, body := post(t, c, url, tok, []byte(bad))
	rs := body["results"].([]any)
	if code != 200 || len(rs) != 2 || rs[0].(map[string]any)["accepted"] != true ||
		!strings.Contains(fmt.Sprint(rs[1].(map[string]any)["error"]), "labels.service") {
		t.Fatalf("mixed batch: %d %v", code, body)
	}
	code, body = post(t, c, url, tok, amBody("resolved", "fp1", "gw-1"))
	if code != 200 {
		t.Fatalf("resolved: %d %v", code, body)
	}
	as := alerts(t, ns)
	if len(as) != 2 {
		t.Fatalf("%d Alerts, want 2", len(as))
	}
	for _, a := range as {
		if a.Spec.Labels["instance"] != "gw-1" {
			continue
		}
		if a.Status.Occurrences != 1 || a.Status.ResolvedAt == nil || a.Status.Phase != v1.AlertAcked || a.Annotations[v1.AlertmanagerFingerprintAnnotation] != "fp1" ||
			!meta.IsStatusConditionTrue(a.Status.Conditions, v1.AlertConditionResolved) {
			t.Fatalf("resolved Alert: %+v %+v", a.Annotations, a.Status)
		}
	}
}

// TestAlertmanagerNamespaces: without ?namespace= each alert goes to its
// namespace label, mapped by that namespace's policy, and the caller must
// be allowed to create Alerts in each namespace the batch touches.
func TestAlertmanagerNamespaces(t *testing.T) {
	op := startAPI(t)
	allowed, denied := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-"), testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	tok := monitorToken(t, allowed)
	must(t, k8s.Create(context.Background(), testbuild.MakeAlertRoutingPolicy(allowed).Alertmanager(&v1.AlertmanagerMapping{
		ServiceLabel: "app", SeverityMap: map[string]v1.Severity{"critical": v1.SeverityP0},
	}).Obj()))
	alertIn := func(ns, fp string) string {
		a := extractAlert(amBody("firing", fp, "gw-1"))
		return strings.Replace(a, `"service":"gateway",`, fmt.Sprintf(`"app":"checkout","namespace":%q,`, ns), 1)
	}
	batch := strings.Replace(string(amBody("firing", "x", "x")), extractAlert(amBody("firing", "x", "x")),
		alertIn(allowed, "fa")+","+alertIn(denied, "fd"), 1)
	url := op.srv.URL + "/v1/alertmanager"
	// Eventually: the policy reaches the operator's cache.
	gomega.NewWithT(t).Eventually(func() error {
		var p v1.AlertRoutingPolicy
		return op.reader.Get(context.Background(), keyOf(allowed, v1.RoutingPolicyName), &p)
	}, settle, poll).Should(gomega.Succeed())
	code, body := post(t, op.srv.Client(), url, tok, []byte(batch))
	rs, _ := body["results"].([]any)
	if code != 200 || len(rs) != 2 || rs[0].(map[string]any)["accepted"] != true ||
		!strings.Contains(fmt.Sprint(rs[1].(map[string]any)["error"]), "cannot create alerts in namespace "+denied) {
		t.Fatalf("batch over two namespaces: %d %v", code, body)
	}
	as := alerts(t, allowed)
	if len(as) != 1 || as[0].Spec.Service != "checkout" || as[0].Spec.Severity != v1.SeverityP0 {
		t.Fatalf("policy mapping not applied: %+v", as)
	}
	if n := len(alerts(t, denied)); n != 0 {
		t.Fatalf("%d Alerts in the namespace the caller may not write", n)
	}
	// Allowed in none of the namespaces: the whole request is refused.
	only := strings.Replace(string(amBody("firing", "x", "x")), extractAlert(amBody("firing", "x", "x")), alertIn(denied, "fd"), 1)
	if code, _ := post(t, op.srv.Client(), url, tok, []byte(only)); code != http.StatusForbidden {
		t.Fatalf("batch only for a forbidden namespace: %d", code)
	}
}

func extractAlert(body []byte) string {
	s := string(body)
	i := strings.Index(s, `"alerts":[`) + len(`"alerts":[`)
	return strings.TrimSuffix(strings.TrimSpace(s[i:]), "]}")
}

// Timeouts of the end-to-end Alertmanager spec.
const (
	amStart   = 30 * time.Second
	amDeliver = 60 * time.Second
)

// TestAlertmanagerEndToEnd runs Debian's Alertmanager with a webhook
// receiver pointing at the API, feeds it alerts through its own API and
// checks what the cluster holds.
func TestAlertmanagerEndToEnd(t *testing.T) {
	op := startAPI(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "ingest-")
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "token"), []byte(monitorToken(t, ns)), 0o600))
	conf := fmt.Sprintf(`route:
  receiver: alertbridge
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: alertbridge
    webhook_configs:
      - url: %s/v1/alertmanager?namespace=%s
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, op.srv.URL, ns, filepath.Join(dir, "token"))
	am := startAlertmanager(t, conf)
	starts := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	fire := func(instance, severity, endsAt string) {
		t.Helper()
		ends := ""
		if endsAt != "" {
			ends = fmt.Sprintf(`,"endsAt":%q`, endsAt)
		}
		body := fmt.Sprintf(`[{"labels":{"alertname":"HighLatency","service":"gateway","env":"prod","severity":%q,"instance":%q},
"annotations":{"summary":"p95 above 300ms","description":"p95 is 412ms"},"startsAt":%q%s,"generatorURL":"http://prometheus/graph"}]`,
			severity, instance, starts, ends)
		resp, err := http.Post(am+"/api/v2/alerts", "application/json", strings.NewReader(body)) //nolint:noctx // test
		must(t, err)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("Alertmanager refused the alert: %d", resp.StatusCode)
		}
	}
	replays := func() float64 {
		var m dto.Metric
		must(t, metrics.IngestReplays.WithLabelValues(metrics.PathAlertmanager).Write(&m))
		return m.GetCounter().GetValue()
	}
	before := replays()
	fire("gw-1", "critical", "")
	fire("gw-2", "critical", "")
	// Same service/env/kind/labels as gw-1 but another severity: another
	// Alertmanager fingerprint, the same alertbridge fingerprint: deduped.
	fire("gw-1", "warning", "")

	// Alertmanager re-sends every group each repeat interval: wait for
	// re-sends, then the counts must still be one per firing instance.
	gomega.NewWithT(t).Eventually(func() error {
		if r := replays() - before; r < 4 {
			return fmt.Errorf("%v re-sends seen so far", r)
		}
		return nil
	}, amDeliver, poll).Should(gomega.Succeed())
	live := map[string]v1.Alert{}
	for _, a := range alerts(t, ns) {
		if a.Status.Phase != v1.AlertDeduplicated {
			live[a.Spec.Labels["instance"]] = a
		}
	}
	if len(live) != 2 {
		t.Fatalf("live Alerts %v, want one per instance", live)
	}
	gw1, gw2 := live["gw-1"], live["gw-2"]
	if gw1.Status.Occurrences != 2 || gw2.Status.Occurrences != 1 {
		t.Fatalf("occurrences gw-1 %d (want 2: two firing instances), gw-2 %d (want 1)", gw1.Status.Occurrences, gw2.Status.Occurrences)
	}
	if s := gw2.Spec; s.Service != "gateway" || s.Env != "prod" || s.Kind != "high_latency" || s.Severity != v1.SeverityP1 ||
		s.Title != "p95 above 300ms" || s.Message != "p95 is 412ms" || s.Source != "alertmanager/alertbridge" {
		t.Fatalf("mapped spec %+v", s)
	}
	if gw2.Annotations[v1.AlertmanagerFingerprintAnnotation] == "" {
		t.Fatal("Alertmanager's fingerprint is not kept on the Alert")
	}

	// Resolution: the same alert with endsAt in the past.
	fire("gw-2", "critical", time.Now().Add(-time.Second).UTC().Format(time.RFC3339))
	gomega.NewWithT(t).Eventually(func() error {
		var a v1.Alert
		if err := k8s.Get(context.Background(), keyOf(ns, gw2.Name), &a); err != nil {
			return err
		}
		if a.Status.ResolvedAt == nil || a.Status.Phase != v1.AlertAcked || a.Status.Ack == nil || a.Status.Ack.By != "alertmanager" {
			return errors.New("gw-2 is not resolved and acked yet")
		}
		if !strings.Contains(a.Status.Ack.Note, "resolved at source") || a.Status.Occurrences != 1 {
			return fmt.Errorf("resolved Alert: %+v", a.Status)
		}
		return nil
	}, amDeliver, poll).Should(gomega.Succeed())
}

// startAlertmanager runs Alertmanager with conf until the test ends and
// returns its URL once it is ready; its log is shown when the test fails.
func startAlertmanager(t testing.TB, conf string) string {
	t.Helper()
	am, err := promtest.StartAlertmanager(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", am.Log())
		}
		am.Stop()
	})
	return am.URL()
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer func() { _ = l.Close() }()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
