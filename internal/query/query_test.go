package query

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// seen is a P2 Alert of the gateway's latency in prod, created and last
// seen ago; a spec sets what else it is about.
func seen(name string, ago time.Duration) *testbuild.AlertWrapper {
	t := now.Add(-ago)
	return testbuild.MakeAlert(name, "prod").Env("prod").Severity(v1.SeverityP2).Title(name).Created(t).LastSeen(t)
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
		seen("old", 5*time.Hour).Phase(v1.AlertNew).Occurrences(1).Val(),
		seen("a", time.Hour).Phase(v1.AlertNew).Occurrences(3).Val(),
		seen("b", 30*time.Minute).Env("staging").Phase(v1.AlertFailed).Occurrences(1).Val(),
		seen("c", 10*time.Minute).Service("payments").Kind("error_rate").Phase(v1.AlertAcked).Occurrences(1).Val(),
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
		seen("a", time.Hour).Phase(v1.AlertNew).Occurrences(7).Val(),
		seen("a-dup", time.Hour).Phase(v1.AlertDeduplicated).Val(),
		seen("b", 20*time.Minute).Phase(v1.AlertProcessing).Occurrences(2).Val(),
		seen("c", 10*time.Minute).Service("payments").Kind("error_rate").Phase(v1.AlertAcked).Occurrences(1).Val(),
		seen("undecided", time.Minute).Service("payments").Kind("error_rate").Val(),
		seen("old", 10*time.Hour).Service("db").Kind("disk").Phase(v1.AlertNew).Occurrences(100).Val(),
	}
	incidents := []v1.Incident{
		testbuild.MakeIncident("p3", "prod").Service("db").State(v1.IncidentOpen).Severity(v1.SeverityP3).Val(),
		testbuild.MakeIncident("closed", "prod").Service("db").State(v1.IncidentClosed).Severity(v1.SeverityP0).Val(),
		testbuild.MakeIncident("p1", "prod").Service("gateway").State(v1.IncidentMitigating).Severity(v1.SeverityP1).Val(),
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

func TestDashboardSilences(t *testing.T) {
	ended := seen("ended", time.Minute).Phase(v1.AlertNew).Occurrences(1).
		Conditions(metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionFalse, Reason: v1.ReasonSilenceEnded}).Val()
	items := []v1.Alert{
		seen("gw-new", time.Minute).Phase(v1.AlertNew).Occurrences(5).Silenced("silenced by Silence deploy until 2026-11-27T14:00:00Z").Val(),
		seen("gw-failed", time.Minute).Kind("error_rate").Phase(v1.AlertFailed).Occurrences(1).Silenced("silenced by Silence deploy until 2026-11-27T14:00:00Z").Val(),
		// Acked is out of play: not counted as silenced even if it was.
		seen("gw-acked", time.Minute).Phase(v1.AlertAcked).Occurrences(1).Silenced("silenced by Silence deploy until 2026-11-27T14:00:00Z").Val(),
		seen("db", time.Minute).Service("db").Kind("disk").Phase(v1.AlertNew).Occurrences(1).Val(),
		ended,
	}
	window := func(name string, start, end time.Duration, ms ...v1.SilenceMatcher) v1.Silence {
		return testbuild.MakeSilence(name, "prod").Created(now.Add(-time.Hour)).Matchers(ms...).
			StartsAt(now.Add(start)).EndsAt(now.Add(end)).Comment(name).CreatedBy("alice").Val()
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
	inc := testbuild.MakeIncident("inc", "").State(v1.IncidentOpen).Val()
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
