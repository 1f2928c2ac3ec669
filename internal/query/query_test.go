package query

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func alert(name, service, env, kind string, phase v1.AlertPhase, occ int64, ago time.Duration) v1.Alert {
	seen := metav1.NewTime(now.Add(-ago))
	return v1.Alert{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", CreationTimestamp: seen},
		Spec:       v1.AlertSpec{Service: service, Env: env, Kind: kind, Severity: v1.SeverityP2, Title: name, Source: "monitor@node1"},
		Status:     v1.AlertStatus{Phase: phase, Occurrences: occ, LastSeenAt: &seen},
	}
}

func TestParsePhases(t *testing.T) {
	got, err := ParsePhases([]string{"new, FAILED", "processing"})
	if err != nil || len(got) != 3 || got[0] != v1.AlertNew || got[1] != v1.AlertFailed || got[2] != v1.AlertProcessing {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := ParsePhases([]string{"open"}); err == nil {
		t.Fatal("accepted an unknown phase")
	}
}

func TestAlertsFilterAndOrder(t *testing.T) {
	items := []v1.Alert{
		alert("old", "gateway", "prod", "latency", v1.AlertNew, 1, 5*time.Hour),
		alert("a", "gateway", "prod", "latency", v1.AlertNew, 3, time.Hour),
		alert("b", "gateway", "staging", "latency", v1.AlertFailed, 1, 30*time.Minute),
		alert("c", "payments", "prod", "error_rate", v1.AlertAcked, 1, 10*time.Minute),
	}
	cases := []struct {
		name string
		f    AlertFilter
		want []string
	}{
		{"window", AlertFilter{Window: 240 * time.Minute}, []string{"c", "b", "a"}},
		{"all", AlertFilter{}, []string{"c", "b", "a", "old"}},
		{"status", AlertFilter{Phases: []v1.AlertPhase{v1.AlertNew, v1.AlertFailed}, Window: 240 * time.Minute}, []string{"b", "a"}},
		{"env", AlertFilter{Env: "staging"}, []string{"b"}},
		{"service", AlertFilter{Service: "payments"}, []string{"c"}},
		{"source", AlertFilter{Source: "monitor@node2"}, nil},
	}
	for _, c := range cases {
		var got []string
		for _, a := range Alerts(items, c.f, now) {
			got = append(got, a.Name)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

func TestBuildDashboard(t *testing.T) {
	items := []v1.Alert{
		alert("a", "gateway", "prod", "latency", v1.AlertNew, 7, time.Hour),
		alert("a-dup", "gateway", "prod", "latency", v1.AlertDeduplicated, 0, time.Hour),
		alert("b", "gateway", "prod", "latency", v1.AlertProcessing, 2, 20*time.Minute),
		alert("c", "payments", "prod", "error_rate", v1.AlertAcked, 1, 10*time.Minute),
		alert("undecided", "payments", "prod", "error_rate", "", 0, time.Minute),
		alert("old", "db", "prod", "disk", v1.AlertNew, 100, 10*time.Hour),
	}
	incidents := []v1.Incident{
		{ObjectMeta: metav1.ObjectMeta{Name: "p3", Namespace: "prod"}, Spec: v1.IncidentSpec{Service: "db", State: v1.IncidentOpen, Severity: v1.SeverityP3}},
		{ObjectMeta: metav1.ObjectMeta{Name: "closed", Namespace: "prod"}, Spec: v1.IncidentSpec{Service: "db", State: v1.IncidentClosed, Severity: v1.SeverityP0}},
		{ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "prod"}, Spec: v1.IncidentSpec{Service: "gateway", State: v1.IncidentMitigating, Severity: v1.SeverityP1}},
	}
	d := BuildDashboard(items, incidents, nil, nil, "prod", 240*time.Minute, now)
	want := map[string]int64{"New": 1, "Processing": 1, "Acked": 1, "Failed": 0, "Deduplicated": 1}
	for k, v := range want {
		if d.Counts[k] != v {
			t.Errorf("count %s = %d, want %d", k, d.Counts[k], v)
		}
	}
	if d.Occurrences != 10 {
		t.Errorf("occurrences %d, want 10", d.Occurrences)
	}
	if len(d.TopSignatures) != 2 || d.TopSignatures[0].Signature != "gateway/prod/latency" || d.TopSignatures[0].Occurrences != 9 || d.TopSignatures[0].Alerts != 2 {
		t.Errorf("top signatures %+v", d.TopSignatures)
	}
	if len(d.Latest) != 3 || d.Latest[0].Name != "c" || d.Latest[1].Holder != "" {
		t.Errorf("latest %+v", d.Latest)
	}
	if len(d.OpenIncidents) != 2 || d.OpenIncidents[0].Name != "p1" {
		t.Errorf("open incidents %+v", d.OpenIncidents)
	}
}

func silenced(a v1.Alert, by string) v1.Alert {
	a.Status.Conditions = []metav1.Condition{{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue,
		Reason: v1.ReasonSilenceActive, Message: "silenced by Silence " + by + " until 2026-11-27T14:00:00Z"}}
	return a
}

func TestDashboardSilences(t *testing.T) {
	ended := alert("ended", "gateway", "prod", "latency", v1.AlertNew, 1, time.Minute)
	ended.Status.Conditions = []metav1.Condition{{Type: v1.AlertConditionSilenced, Status: metav1.ConditionFalse, Reason: v1.ReasonSilenceEnded}}
	items := []v1.Alert{
		silenced(alert("gw-new", "gateway", "prod", "latency", v1.AlertNew, 5, time.Minute), "deploy"),
		silenced(alert("gw-failed", "gateway", "prod", "error_rate", v1.AlertFailed, 1, time.Minute), "deploy"),
		// Acked is out of play: not counted as silenced even if it was.
		silenced(alert("gw-acked", "gateway", "prod", "latency", v1.AlertAcked, 1, time.Minute), "deploy"),
		alert("db", "db", "prod", "disk", v1.AlertNew, 1, time.Minute),
		ended,
	}
	window := func(name string, start, end time.Duration, ms ...v1.SilenceMatcher) v1.Silence {
		s := v1.Silence{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
			Spec: v1.SilenceSpec{Matchers: ms, StartsAt: &metav1.Time{Time: now.Add(start)}, EndsAt: metav1.NewTime(now.Add(end)),
				Comment: name, CreatedBy: "alice"},
		}
		return s
	}
	gw := v1.SilenceMatcher{Name: "service", Operator: v1.MatchEqual, Value: "gateway"}
	silences := []v1.Silence{
		window("deploy", -time.Hour, 2*time.Hour, gw),
		window("soon", -time.Hour, time.Hour, v1.SilenceMatcher{Name: "service", Operator: v1.MatchEqual, Value: "db"}),
		window("tonight", 8*time.Hour, 10*time.Hour, gw),
		window("over", -2*time.Hour, -time.Hour, gw),
	}
	d := BuildDashboard(items, nil, nil, silences, "prod", 240*time.Minute, now)
	if d.Silenced != 2 {
		t.Errorf("silenced %d, want 2 (New and Failed Alerts with Silenced=True)", d.Silenced)
	}
	if d.Counts["New"] != 3 || d.Counts["Failed"] != 1 {
		t.Errorf("silenced Alerts are still counted by phase: %v", d.Counts)
	}
	type row struct {
		name, state string
		alerts      int64
	}
	var got []row
	for _, s := range d.Silences {
		got = append(got, row{s.Name, s.State, s.Alerts})
	}
	want := []row{{"soon", "Active", 0}, {"deploy", "Active", 2}, {"tonight", "Pending", 0}}
	if len(got) != len(want) {
		t.Fatalf("silences %+v, want %+v (active and pending, soonest to end first)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("silences %+v, want %+v (active and pending, soonest to end first)", got, want)
		}
	}
	if d.Silences[1].Matchers != `{service="gateway"}` || d.Silences[1].CreatedBy != "alice" {
		t.Errorf("silence %+v", d.Silences[1])
	}
	for _, a := range d.Latest {
		want := ""
		if a.Name == "gw-new" || a.Name == "gw-failed" {
			want = "silenced by Silence deploy until 2026-11-27T14:00:00Z"
		}
		if a.SilencedBy != want {
			t.Errorf("latest %s silencedBy %q, want %q", a.Name, a.SilencedBy, want)
		}
	}
}

func TestLastNotification(t *testing.T) {
	at := func(ago time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(-ago)); return &m }
	inc := v1.Incident{Spec: v1.IncidentSpec{State: v1.IncidentOpen}}
	if LastNotification(&inc) != nil {
		t.Fatal("an Incident without notifications has a last one")
	}
	delivered := v1.IncidentNotification{Receiver: "pagerduty", Event: v1.NotifyOpened, Seq: 1,
		DeliveryAttempts: v1.DeliveryAttempts{Attempts: 2, LastAttemptAt: at(3 * time.Minute), DeliveredAt: at(3 * time.Minute)}}
	pending := v1.IncidentNotification{Receiver: "slack", Event: v1.NotifyStateChanged, Seq: 2,
		DeliveryAttempts: v1.DeliveryAttempts{Attempts: 3, LastAttemptAt: at(time.Minute), NextAttemptAt: at(-time.Minute), LastError: "slack answered HTTP 503 (Service Unavailable)"}}
	failed := v1.IncidentNotification{Receiver: "hook", Event: v1.NotifyResolved, Seq: 1,
		DeliveryAttempts: v1.DeliveryAttempts{Attempts: 1, LastAttemptAt: at(time.Minute), LastError: "webhook answered HTTP 400 (Bad Request)"}}
	for _, c := range []struct {
		entries []v1.IncidentNotification
		want    NotificationInfo
	}{
		{[]v1.IncidentNotification{delivered}, NotificationInfo{Receiver: "pagerduty", Event: "Opened", Result: NotificationDelivered, Attempts: 2, At: &delivered.DeliveredAt.Time}},
		{[]v1.IncidentNotification{delivered, pending}, NotificationInfo{Receiver: "slack", Event: "StateChanged", Result: NotificationPending, Attempts: 3,
			At: &pending.LastAttemptAt.Time, NextAttemptAt: &pending.NextAttemptAt.Time, LastError: pending.LastError}},
		{[]v1.IncidentNotification{pending, failed}, NotificationInfo{Receiver: "hook", Event: "Resolved", Result: NotificationFailed, Attempts: 1,
			At: &failed.LastAttemptAt.Time, LastError: failed.LastError}},
	} {
		inc.Status.Notifications = c.entries
		got := LastNotification(&inc)
		if got == nil || got.Receiver != c.want.Receiver || got.Event != c.want.Event || got.Result != c.want.Result ||
			got.Attempts != c.want.Attempts || got.LastError != c.want.LastError || !sameTime(got.At, c.want.At) || !sameTime(got.NextAttemptAt, c.want.NextAttemptAt) {
			t.Errorf("got %+v, want %+v", got, c.want)
		}
	}
	inc.Status.Notifications = []v1.IncidentNotification{delivered}
	d := BuildDashboard(nil, []v1.Incident{inc}, nil, nil, "", 0, now)
	if n := d.OpenIncidents[0].LastNotification; n == nil || n.Receiver != "pagerduty" {
		t.Errorf("the dashboard's open incident has last notification %+v", n)
	}
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}
