package alertmanager

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// The CRD's own patterns: a mapped spec must pass the API server.
var (
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	kindRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

func checkSpec(t *testing.T, s v1.AlertSpec) {
	t.Helper()
	if !dnsLabelRE.MatchString(s.Service) || len(s.Service) > 63 {
		t.Errorf("service %q is not a DNS label", s.Service)
	}
	if !dnsLabelRE.MatchString(s.Env) || len(s.Env) > 63 {
		t.Errorf("env %q is not a DNS label", s.Env)
	}
	if !kindRE.MatchString(s.Kind) {
		t.Errorf("kind %q does not match the CRD pattern", s.Kind)
	}
	if s.Severity.Rank() > v1.SeverityP4.Rank() {
		t.Errorf("severity %q unknown", s.Severity)
	}
	// The API server counts characters, not bytes (maxLength, CEL size).
	n := utf8.RuneCountInString
	if s.Title == "" || n(s.Title) > 256 {
		t.Errorf("title %q out of bounds", s.Title)
	}
	if n(s.Message) > 4096 || n(s.Source) > 253 || len(s.Labels) > maxLabels {
		t.Errorf("bounds exceeded: message %d source %d labels %d", n(s.Message), n(s.Source), len(s.Labels))
	}
	for k, v := range s.Labels {
		if n(k) > 63 || n(v) > 256 {
			t.Errorf("label %q=%q out of bounds", k, v)
		}
	}
}

func TestDecodeAndMapTheExample(t *testing.T) {
	b, err := os.ReadFile("testdata/alertmanager-webhook-v4.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	items := Rules{}.Map(m)
	if len(items) != 2 {
		t.Fatalf("got %d items", len(items))
	}
	firing, resolved := items[0], items[1]
	if firing.Err != nil || resolved.Err != nil {
		t.Fatalf("errors: %v %v", firing.Err, resolved.Err)
	}
	want := v1.AlertSpec{
		Service: "gateway", Env: "prod", Kind: "high_latency", Severity: v1.SeverityP3,
		Title: "p95 latency above 300ms", Message: "p95 is 412ms on gw-1 for 10m",
		Source: "alertmanager/alertbridge", Labels: map[string]string{"instance": "gw-1:8080"},
	}
	if got := firing.Spec; got.Service != want.Service || got.Env != want.Env || got.Kind != want.Kind ||
		got.Severity != want.Severity || got.Title != want.Title || got.Message != want.Message ||
		got.Source != want.Source || len(got.Labels) != 1 || got.Labels["instance"] != "gw-1:8080" {
		t.Fatalf("firing mapped to %+v, want %+v", got, want)
	}
	if firing.Resolved || !resolved.Resolved {
		t.Fatal("statuses not mapped")
	}
	if firing.Instance.Fingerprint != "1a30ba71cca2921f" || firing.Instance.StartsAt.IsZero() {
		t.Fatalf("instance %+v", firing.Instance)
	}
	if resolved.EndsAt.IsZero() {
		t.Fatal("resolved alert lost endsAt")
	}
	checkSpec(t, firing.Spec)
}

func TestDecodeRefusesUnusableBodies(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      `{"version": "4", `,
		"wrong version": `{"version": "3", "alerts": []}`,
		"no alerts":     `{"version": "4"}`,
		"two values":    `{"version": "4", "alerts": []} {}`,
		"wrong type":    `{"version": "4", "alerts": "many"}`,
	} {
		if _, err := Decode(strings.NewReader(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecodeBoundsTheAlertsOfOneMessage(t *testing.T) {
	one := `{"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-11-30T10:00:00Z","fingerprint":"f"}`
	body := func(n int) string {
		return `{"version":"4","status":"firing","alerts":[` + strings.TrimSuffix(strings.Repeat(one+",", n), ",") + `]}`
	}
	if _, err := Decode(strings.NewReader(body(MaxAlerts))); err != nil {
		t.Fatalf("%d alerts refused: %v", MaxAlerts, err)
	}
	_, err := Decode(strings.NewReader(body(MaxAlerts + 1)))
	var tooMany *TooManyError
	if !errors.As(err, &tooMany) || !strings.Contains(err.Error(), "max_alerts") {
		t.Fatalf("%d alerts: %v", MaxAlerts+1, err)
	}
}

func TestMapRules(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		rules  Rules
		check  func(Item) string
	}{
		{"job is the service fallback", map[string]string{"alertname": "Down", "job": "node-exporter"}, Rules{},
			func(it Item) string { return expect(it.Spec.Service, "node-exporter") }},
		{"environment fallback", map[string]string{"alertname": "Down", "service": "db", "environment": "Staging"}, Rules{},
			func(it Item) string { return expect(it.Spec.Env, "staging") }},
		{"env default", map[string]string{"alertname": "Down", "service": "db"}, Rules{},
			func(it Item) string { return expect(it.Spec.Env, "prod") }},
		{"severity map", map[string]string{"alertname": "Down", "service": "db", "severity": "critical"}, Rules{},
			func(it Item) string { return expect(string(it.Spec.Severity), "P1") }},
		{"severity as P-level", map[string]string{"alertname": "Down", "service": "db", "severity": "p0"}, Rules{},
			func(it Item) string { return expect(string(it.Spec.Severity), "P0") }},
		{"unknown severity", map[string]string{"alertname": "Down", "service": "db", "severity": "meh"}, Rules{},
			func(it Item) string { return expect(string(it.Spec.Severity), "P3") }},
		{"policy severity map", map[string]string{"alertname": "Down", "service": "db", "severity": "page"},
			Rules{SeverityMap: map[string]v1.Severity{"page": v1.SeverityP0}},
			func(it Item) string { return expect(string(it.Spec.Severity), "P0") }},
		{"policy service label", map[string]string{"alertname": "Down", "app": "checkout", "service": "ignored"},
			Rules{ServiceLabel: "app"},
			func(it Item) string { return expect(it.Spec.Service, "checkout") }},
		{"title falls back to alertname", map[string]string{"alertname": "KubePodCrashLooping", "service": "db"}, Rules{},
			func(it Item) string { return expect(it.Spec.Title, "KubePodCrashLooping") }},
		{"namespace label", map[string]string{"alertname": "Down", "service": "db", "namespace": "payments"}, Rules{},
			func(it Item) string { return expect(it.Namespace, "payments") }},
		{"no service", map[string]string{"alertname": "Down"}, Rules{},
			func(it Item) string { return expectErr(it, "labels.service") }},
		{"no alertname", map[string]string{"service": "db"}, Rules{},
			func(it Item) string { return expectErr(it, "labels.alertname") }},
	}
	for _, c := range cases {
		m := &Message{Version: "4"}
		m.Data = dataWith(c.labels, nil)
		items := c.rules.Map(m)
		if msg := c.check(items[0]); msg != "" {
			t.Errorf("%s: %s", c.name, msg)
		}
		if items[0].Err == nil {
			checkSpec(t, items[0].Spec)
		}
	}
}

func TestSpecLabelsKeepTheMostSpecific(t *testing.T) {
	labels := map[string]string{"alertname": "Down", "service": "db"}
	common := map[string]string{}
	for i := range 40 {
		k := "common" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		labels[k], common[k] = "x", "x"
	}
	labels["instance"] = "db-1"
	labels["pod"] = "db-1-abc"
	got := specLabels(labels, common)
	if len(got) != maxLabels {
		t.Fatalf("kept %d labels", len(got))
	}
	if got["instance"] != "db-1" || got["pod"] != "db-1-abc" {
		t.Fatalf("dropped a specific label: %v", got)
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"HighLatency":         "high_latency",
		"KubePodCrashLooping": "kube_pod_crash_looping",
		"HTTPErrorRate":       "http_error_rate",
		"5xxErrors":           "alert_5xx_errors",
		"node:disk-full":      "node_disk_full",
		"already_snake":       "already_snake",
		"Ünïcode":             "n_code",
		"!!!":                 "",
	} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func expect(got, want string) string {
	if got != want {
		return "got " + got + ", want " + want
	}
	return ""
}

func expectErr(it Item, field string) string {
	if it.Err == nil || !strings.Contains(it.Err.Error(), field) {
		return "want an error naming " + field
	}
	return ""
}

func FuzzDecodeMap(f *testing.F) {
	b, _ := os.ReadFile("testdata/alertmanager-webhook-v4.json")
	f.Add(b)
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"ÄÖ-x","job":"__"},"fingerprint":"x"}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A","service":"` + strings.Repeat("Z", 300) + `"},"annotations":{"summary":"` + strings.Repeat("é", 200) + `"},"fingerprint":"f"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(bytes.NewReader(body))
		if err != nil {
			return
		}
		for _, it := range (Rules{}).Map(m) {
			if it.Err != nil {
				continue
			}
			checkSpec(t, it.Spec)
			if !utf8.ValidString(it.Spec.Title) && utf8.Valid(body) {
				t.Errorf("title %q is not valid UTF-8", it.Spec.Title)
			}
		}
	})
}
