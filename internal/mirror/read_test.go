package mirror_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// TestReadBackGivesTheSameAnswers writes Alerts and Incidents with every
// field the read side serves, reads them back, and requires the list and
// dashboard lines internal/query builds from the rows to equal the ones it
// builds from the objects.
func TestReadBackGivesTheSameAnswers(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, ctx)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(ago time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(-ago)); return &m }

	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	full := testbuild.MakeAlert("gateway-acked", "prod").UID("uid-acked").ResourceVersion("10").Created(ago(2*time.Hour)).Deleting(ago(time.Minute)).
		Env("prod").Severity(v1.SeverityP1).Message("p95 975ms").Labels("route", "/v1/chat").
		Phase(v1.AlertAcked).StatusFingerprint("fp1").Occurrences(7).FirstSeen(ago(2*time.Hour)).LastSeen(ago(10*time.Minute)).
		Claim(&v1.AlertClaim{HolderIdentity: "agent-cto"}).Attempts(2).LastError("gateway timeout").
		Ack("alertmanager", "resolved at source", ago(5*time.Minute)).ResolvedAt(ago(5 * time.Minute)).IncidentRef("inc-1").Val()
	processing := testbuild.MakeAlert("gateway-held", "prod").UID("uid-held").ResourceVersion("11").Created(ago(time.Hour)).
		Env("prod").Kind("error_rate").Severity(v1.SeverityP2).Title("5xx").
		Phase(v1.AlertProcessing).StatusFingerprint("fp2").Occurrences(1).LastSeen(ago(time.Minute)).
		Claim(&v1.AlertClaim{HolderIdentity: "agent-oncall"}).Attempts(1).Val()
	old := testbuild.MakeAlert("old", "staging").UID("uid-old").ResourceVersion("12").Created(ago(9 * time.Hour)).
		Service("db").Env("staging").Kind("disk").Severity(v1.SeverityP3).Title("disk").Phase(v1.AlertNew).Occurrences(1).Val()
	alerts := []v1.Alert{full, processing, old}
	for i := range alerts {
		if _, err := s.UpsertAlert(ctx, &alerts[i]); err != nil {
			t.Fatal(err)
		}
	}
	open := testbuild.MakeIncident("inc-1", "prod").UID("uid-inc-1").ResourceVersion("20").Created(ago(time.Hour)).
		Env("prod").Severity(v1.SeverityP1).Title("gateway slow").Signature("gateway/prod/latency").State(v1.IncidentMitigating).
		OpenedAt(ago(time.Hour)).LastActivity(ago(3 * time.Minute)).AlertCount(3).
		Triage(&v1.TriageStatus{Runs: 1, LastTriageAt: at(time.Hour), CooldownUntil: at(-14 * time.Minute)}).Val()
	closed := testbuild.MakeIncident("inc-0", "prod").UID("uid-inc-0").ResourceVersion("21").Created(ago(3 * time.Hour)).
		Env("prod").Severity(v1.SeverityP2).Title("old").State(v1.IncidentClosed).Note("fixed").Val()
	deletedOpen := testbuild.MakeIncident("inc-gone", "prod").UID("uid-inc-gone").ResourceVersion("22").Created(ago(3 * time.Hour)).Deleting(ago(time.Hour)).
		Env("prod").Severity(v1.SeverityP2).Title("deleted while open").State(v1.IncidentOpen).Val()
	for _, in := range []*v1.Incident{&open, &closed, &deletedOpen} {
		if _, err := s.UpsertIncident(ctx, in, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Window: old is outside 4h; namespace filter; newest first.
	got, err := s.Alerts(ctx, []string{"prod"}, now.Add(-4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f := query.AlertFilter{Window: 4 * time.Hour}
	want := query.ListAlerts(alerts, f, "prod", now)
	if have := query.ListAlerts(got, f, "prod", now); !reflect.DeepEqual(have, want) {
		t.Fatalf("list from rows:\n%+v\nfrom objects:\n%+v", have, want)
	}
	if len(got) != 2 || got[0].Name != "gateway-held" {
		t.Fatalf("rows %d, first %s", len(got), got[0].Name)
	}
	all, err := s.Alerts(ctx, nil, time.Time{})
	if err != nil || len(all) != 3 {
		t.Fatalf("all namespaces, no window: %d %v", len(all), err)
	}

	incs, err := s.OpenIncidents(ctx, []string{"prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 1 || incs[0].Name != "inc-1" {
		t.Fatalf("open incidents from rows: %+v", incs)
	}
	if have, want := query.IncidentSummary(&incs[0]), query.IncidentSummary(&open); !reflect.DeepEqual(have, want) {
		t.Fatalf("incident from rows:\n%+v\nfrom object:\n%+v", have, want)
	}
	d1 := query.BuildDashboard(got, incs, nil, nil, "prod", 4*time.Hour, now)
	d2 := query.BuildDashboard(alerts, []v1.Incident{open, closed}, nil, nil, "prod", 4*time.Hour, now)
	if !reflect.DeepEqual(d1, d2) {
		t.Fatalf("dashboard from rows:\n%+v\nfrom objects:\n%+v", d1, d2)
	}
}
