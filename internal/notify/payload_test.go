package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation: %v", err)
	}
	gb, _ := json.MarshalIndent(g, "", "  ")
	wb, _ := json.MarshalIndent(w, "", "  ")
	if string(gb) != string(wb) {
		t.Fatalf("got\n%s\nwant\n%s", gb, wb)
	}
}

func entry(e v1.NotificationEvent, s v1.IncidentState, sev v1.Severity, seq int32) *v1.IncidentNotification {
	return &v1.IncidentNotification{Receiver: "oncall", Event: e, State: s, Severity: sev, Seq: seq, Key: Key("inc-uid", "oncall", seq, e)}
}

func TestPagerDutyEvents(t *testing.T) {
	r := receiver(v1.ReceiverPagerDuty)
	inc := openIncident()
	target := Target{Receiver: r, Credential: "R0UTINGKEY", DashboardURL: "https://alertbridge.example/", Now: t0}
	m, err := IncidentMessage(target, inc, entry(v1.NotifyOpened, v1.IncidentOpen, v1.SeverityP2, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.URL != v1.DefaultPagerDutyEventsURL {
		t.Fatalf("URL %s", m.URL)
	}
	jsonEqual(t, m.Body, `{
	  "routing_key": "R0UTINGKEY",
	  "event_action": "trigger",
	  "dedup_key": "alertbridge-inc-uid",
	  "payload": {
	    "summary": "[P2] gateway/prod: p95 above 300ms",
	    "source": "gateway/prod",
	    "severity": "error",
	    "timestamp": "2026-11-30T03:00:00Z",
	    "component": "gateway",
	    "group": "prod",
	    "class": "gateway/prod/latency",
	    "custom_details": {"incident": "prod/inc-1", "event": "Opened", "state": "Open", "severity": "P2",
	      "title": "p95 above 300ms", "alerts": 3, "signature": "gateway/prod/latency"}
	  },
	  "client": "alertbridge",
	  "client_url": "https://alertbridge.example/?namespace=prod&incident=inc-1",
	  "links": [{"href": "https://alertbridge.example/?namespace=prod&incident=inc-1", "text": "Incident prod/inc-1 in alertbridge"}]
	}`)

	r.Spec.URL = "http://127.0.0.1:9/v2/enqueue"
	target.DashboardURL = ""
	for _, tc := range []struct {
		e      *v1.IncidentNotification
		action string
	}{
		{entry(v1.NotifyStateChanged, v1.IncidentMitigating, v1.SeverityP2, 2), PDAcknowledge},
		{entry(v1.NotifyResolved, v1.IncidentResolved, v1.SeverityP2, 3), PDResolve},
		{entry(v1.NotifyClosed, v1.IncidentClosed, v1.SeverityP2, 4), PDResolve},
	} {
		m, err := IncidentMessage(target, inc, tc.e, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.URL != r.Spec.URL {
			t.Fatalf("the override: %s", m.URL)
		}
		jsonEqual(t, m.Body, `{"routing_key": "R0UTINGKEY", "event_action": "`+tc.action+`", "dedup_key": "alertbridge-inc-uid"}`)
	}
	for sev, want := range map[v1.Severity]string{"P0": "critical", "P1": "critical", "P2": "error", "P3": "warning", "P4": "info"} {
		if got := PagerDutySeverity(sev); got != want {
			t.Errorf("%s: %s, want %s", sev, got, want)
		}
	}
	if a := PagerDutyAction(entry(v1.NotifyStateChanged, v1.IncidentOpen, v1.SeverityP2, 5)); a != PDTrigger {
		t.Errorf("open again: %s", a)
	}
}

func TestSlackMessage(t *testing.T) {
	r := receiver(v1.ReceiverSlack)
	inc := openIncident()
	inc.Spec.Title = "p95 <above> 300ms & rising"
	target := Target{Receiver: r, Credential: "https://hooks.slack.example/services/T0/B0/SECRET", DashboardURL: "https://alertbridge.example", Now: t0}
	m, err := IncidentMessage(target, inc, entry(v1.NotifyOpened, v1.IncidentOpen, v1.SeverityP2, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.URL != target.Credential {
		t.Fatal("a Slack message goes to the webhook URL from the Secret")
	}
	jsonEqual(t, m.Body, `{
	  "text": "[P2] Incident opened: gateway/prod: p95 <above> 300ms & rising",
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": ":red_circle: [P2] Incident opened", "emoji": true}},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "*p95 &lt;above&gt; 300ms &amp; rising*"}},
	    {"type": "section", "fields": [
	      {"type": "mrkdwn", "text": "*Service*\ngateway"},
	      {"type": "mrkdwn", "text": "*Env*\nprod"},
	      {"type": "mrkdwn", "text": "*Severity*\nP2"},
	      {"type": "mrkdwn", "text": "*State*\nOpen"},
	      {"type": "mrkdwn", "text": "*Alerts*\n3"},
	      {"type": "mrkdwn", "text": "*Incident*\nprod/inc-1"}
	    ]},
	    {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://alertbridge.example/?namespace=prod&incident=inc-1|Open in alertbridge>"}]}
	  ]
	}`)
	inc.Spec.State, inc.Spec.Note = v1.IncidentResolved, "rolled back"
	m, err = IncidentMessage(target, inc, entry(v1.NotifyResolved, v1.IncidentResolved, v1.SeverityP2, 2), entry(v1.NotifyOpened, v1.IncidentOpen, v1.SeverityP2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.Body), `":white_check_mark: [P2] Incident resolved"`) || !strings.Contains(string(m.Body), `rising*\nrolled back"`) {
		t.Fatalf("the follow-up: %s", m.Body)
	}
}

// TestWebhookSignature verifies the signature as docs/notifications.md
// tells a receiver to: HMAC-SHA256 with the signing key over the timestamp
// header, a dot and the raw body, hex, after "sha256=".
func TestWebhookSignature(t *testing.T) {
	r := receiver(v1.ReceiverWebhook)
	r.Spec.URL = "https://hooks.example/alertbridge"
	inc := openIncident()
	key := "s3cr3t-signing-key"
	m, err := IncidentMessage(Target{Receiver: r, Credential: key, Now: t0}, inc,
		entry(v1.NotifyStateChanged, v1.IncidentMitigating, v1.SeverityP2, 2), entry(v1.NotifyOpened, v1.IncidentOpen, v1.SeverityP2, 1))
	if err != nil {
		t.Fatal(err)
	}
	ts := m.Header.Get("X-Alertbridge-Timestamp")
	if ts != strconv.FormatInt(t0.Unix(), 10) {
		t.Fatalf("timestamp %q", ts)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(ts + "." + string(m.Body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); m.Header.Get("X-Alertbridge-Signature") != want {
		t.Fatalf("signature %q, want %q", m.Header.Get("X-Alertbridge-Signature"), want)
	}
	if err := Verify([]byte(key), ts, m.Header.Get(HeaderSignature), m.Body, t0.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := Verify([]byte(key), ts, m.Header.Get(HeaderSignature), m.Body, t0.Add(time.Hour), 5*time.Minute); err == nil {
		t.Fatal("a replay an hour later passes")
	}
	if err := Verify([]byte("other"), ts, m.Header.Get(HeaderSignature), m.Body, t0, 5*time.Minute); err == nil {
		t.Fatal("another key passes")
	}
	// The same request verifies with the Standard Webhooks library, given
	// the key as that scheme writes secrets, and fails once tampered.
	wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString([]byte(key)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("webhook-id") != m.Header.Get("Idempotency-Key") || m.Header.Get("webhook-timestamp") != ts {
		t.Fatalf("Standard Webhooks headers %v", m.Header)
	}
	if err := wh.VerifyIgnoringTimestamp(m.Body, m.Header); err != nil {
		t.Fatalf("Standard Webhooks: %v", err)
	}
	if err := wh.VerifyIgnoringTimestamp(append([]byte(" "), m.Body...), m.Header); err == nil {
		t.Fatal("Standard Webhooks: a changed body passes")
	}
	if err := VerifyStandard([]byte(key), m.Header, m.Body); err != nil {
		t.Fatal(err)
	}
	wantKey := Key("inc-uid", "oncall", 2, v1.NotifyStateChanged)
	if m.Header.Get("Idempotency-Key") != wantKey || m.Header.Get("X-Alertbridge-Event") != "incident.state_changed" {
		t.Fatalf("headers %v", m.Header)
	}
	jsonEqual(t, m.Body, `{
	  "schemaVersion": "alertbridge.io/notification/v1",
	  "id": "`+wantKey+`",
	  "event": "incident.state_changed",
	  "receiver": {"namespace": "prod", "name": "oncall"},
	  "incident": {
	    "namespace": "prod", "name": "inc-1", "uid": "inc-uid", "service": "gateway", "env": "prod",
	    "severity": "P2", "title": "p95 above 300ms", "state": "Mitigating", "previousState": "Open",
	    "signature": "gateway/prod/latency", "alertCount": 3, "openedAt": "2026-11-30T03:00:00Z"
	  }
	}`)
}

func TestAlertsDigest(t *testing.T) {
	r := receiver(v1.ReceiverWebhook)
	r.Spec.URL = "https://hooks.example/"
	r.Spec.Alerts = &v1.ReceiverAlerts{MinSeverity: v1.SeverityP2}
	alert := func(name string, sev v1.Severity, created time.Time) *testbuild.AlertWrapper {
		return testbuild.MakeAlert(name, "prod").Env("prod").Severity(sev).Title(name).Created(created).Occurrences(1)
	}
	alerts := []v1.Alert{
		alert("old", v1.SeverityP1, t0.Add(-time.Minute)).Phase(v1.AlertNew).Val(),
		alert("b-new", v1.SeverityP1, t0.Add(time.Second)).Phase(v1.AlertNew).Val(),
		alert("a-new", v1.SeverityP2, t0.Add(time.Second)).Phase(v1.AlertProcessing).Val(),
		alert("minor", v1.SeverityP3, t0.Add(time.Second)).Phase(v1.AlertNew).Val(),
		alert("acked", v1.SeverityP1, t0.Add(time.Second)).Phase(v1.AlertAcked).Val(),
		alert("dup", v1.SeverityP1, t0.Add(time.Second)).Phase(v1.AlertDeduplicated).Val(),
		alert("silenced", v1.SeverityP1, t0.Add(2*time.Second)).Phase(v1.AlertNew).Conditions(metav1.Condition{Type: v1.AlertConditionSilenced,
			Status: metav1.ConditionTrue, Reason: "Silenced", LastTransitionTime: metav1.NewTime(t0.Add(2 * time.Second))}).Val(),
	}
	now := t0.Add(10 * time.Second)
	through := Cutoff(alerts, now)
	if !through.Equal(t0.Add(8 * time.Second)) {
		t.Fatalf("cutoff %s", through)
	}
	got := InDigest(alerts, r, t0, through)
	if len(got) != 2 || got[0].Name != "a-new" || got[1].Name != "b-new" {
		t.Fatalf("digest %v", names(got))
	}
	// An undecided Alert holds the cutoff back.
	undecided := alert("undecided", v1.SeverityP1, t0.Add(3*time.Second)).Val()
	if c := Cutoff(append(alerts, undecided), now); !c.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("cutoff with an undecided Alert %s", c)
	}
	// The Silence ends: the Alert comes into play then.
	alerts[6].Status.Conditions[0].Status, alerts[6].Status.Conditions[0].LastTransitionTime = metav1.ConditionFalse, metav1.NewTime(t0.Add(20*time.Second))
	if got := InDigest(alerts, r, through, t0.Add(30*time.Second)); len(got) != 1 || got[0].Name != "silenced" {
		t.Fatalf("after the Silence %v", names(got))
	}
	if next := NextIncluded(alerts, r, through); !next.Equal(t0.Add(23 * time.Second)) {
		t.Fatalf("next %s", next)
	}

	d := NewDigest("rcv-uid", through, 2, now)
	m, err := AlertsMessage(Target{Receiver: r, Credential: "k", Now: now}, d, got, 2)
	if err != nil {
		t.Fatal(err)
	}
	var p WebhookPayload
	if err := json.Unmarshal(m.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != EventAlertsFiring || p.ID != "rcv-uid/alerts/"+strconv.FormatInt(through.Unix(), 10) || p.Alerts.Total != 2 || p.Incident != nil {
		t.Fatalf("digest payload %+v", p)
	}
}

func names(as []v1.Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

// TestSendInOurWords: what reaches status is our description and the
// status code; a Slack URL (the credential) is never in it; a redirect to
// another origin is not followed.
func TestSendInOurWords(t *testing.T) {
	const canary = "CANARY-7f3e"
	var other int
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { other++ }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.SplitN(r.URL.Path, "/", 3)[1] {
		case "busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "bad":
			w.WriteHeader(http.StatusBadRequest)
		case "redirect":
			http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
			return
		default:
			w.WriteHeader(http.StatusAccepted)
			return
		}
		_, _ = w.Write([]byte(canary))
	}))
	defer srv.Close()
	hc := &http.Client{Timeout: 5 * time.Second}
	send := func(path string) Result {
		return Send(context.Background(), hc, v1.ReceiverSlack, &Message{URL: srv.URL + path + "/T0/SECRET", Header: jsonHeader(), Body: []byte(`{}`)})
	}
	if res := send("/ok"); res.Err != nil {
		t.Fatal(res.Err)
	}
	res := send("/busy")
	if !res.Retryable || res.RetryAfter != 7*time.Second || res.Err.Error() != "slack answered HTTP 429 (Too Many Requests)" {
		t.Fatalf("429: %+v", res)
	}
	if res := send("/bad"); res.Retryable || res.Err.Error() != "slack answered HTTP 400 (Bad Request)" {
		t.Fatalf("400: %+v", res)
	}
	res = send("/redirect")
	if res.Retryable || !strings.Contains(res.Err.Error(), "refused a redirect") || other != 0 {
		t.Fatalf("redirect: %+v (other origin called %d times)", res, other)
	}
	srv.Close()
	res = send("/ok")
	if !res.Retryable || res.Err.Error() != "slack not reached: connection refused" {
		t.Fatalf("down: %+v", res)
	}
	for _, r := range []Result{send("/busy"), res} {
		if strings.Contains(r.Err.Error(), "SECRET") || strings.Contains(r.Err.Error(), canary) {
			t.Fatalf("leaks: %s", r.Err)
		}
	}
}
