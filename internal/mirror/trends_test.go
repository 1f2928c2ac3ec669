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

// TestTrendsFromHistory writes Alerts, Incidents and a gate's evaluations,
// and requires the trends built from the rows to equal the ones built from
// the objects, plus the gate decisions the cluster no longer holds.
func TestTrendsFromHistory(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, ctx)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(ago time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(-ago)); return &m }
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	var alerts []v1.Alert
	for i, sev := range []v1.Severity{v1.SeverityP1, v1.SeverityP2, v1.SeverityP2, v1.SeverityP3} {
		a := testbuild.MakeAlert("a"+string(rune('0'+i)), "prod").UID("uid-a" + string(rune('0'+i))).ResourceVersion("1").
			Created(ago(time.Duration(10*i+5) * time.Minute)).Env("prod").Severity(sev).Title("t").
			Phase(v1.AlertNew).Occurrences(int64(3 * (i + 1))).FirstSeen(ago(time.Duration(10*i+5) * time.Minute)).LastSeen(ago(time.Minute))
		if i == 1 {
			a.Phase(v1.AlertAcked).Ack("oncall-1", "", ago(3*time.Minute))
		}
		alerts = append(alerts, a.Val())
	}
	incident := func(name string, created time.Duration, state v1.IncidentState) *testbuild.IncidentWrapper {
		return testbuild.MakeIncident(name, "prod").UID("uid-" + name).ResourceVersion("1").Created(ago(created)).
			Env("prod").Severity(v1.SeverityP1).Title("t").State(state).OpenedAt(ago(created))
	}
	incidents := []v1.Incident{
		incident("resolved", time.Hour, v1.IncidentResolved).ResolvedAt(ago(20 * time.Minute)).Val(),
		incident("closed", 2*time.Hour, v1.IncidentClosed).ClosedAt(ago(30 * time.Minute)).Val(),
		incident("open", time.Hour, v1.IncidentOpen).Val(),
	}
	for i := range alerts {
		if _, err := s.UpsertAlert(ctx, &alerts[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range incidents {
		if _, err := s.UpsertIncident(ctx, &incidents[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	policy := testbuild.MakeSLOPolicy("gw", "prod").UID("uid-slo").Env("prod").Val()
	for _, ev := range []struct {
		ago      time.Duration
		decision v1.GateDecision
	}{{50 * time.Minute, v1.DecisionAllow}, {40 * time.Minute, v1.DecisionAllow}, {30 * time.Minute, v1.DecisionWarn}, {20 * time.Minute, v1.DecisionBlock}} {
		policy.Status = v1.SLOPolicyStatus{LastEvaluatedAt: at(ev.ago), Gate: &v1.GateStatus{Decision: ev.decision, Reason: "R" + string(ev.decision)}}
		if err := s.RecordSLOPolicy(ctx, &policy); err != nil {
			t.Fatal(err)
		}
	}
	other := policy.DeepCopy()
	other.Namespace, other.UID = "staging", "uid-slo-staging"
	if err := s.RecordSLOPolicy(ctx, other); err != nil {
		t.Fatal(err)
	}

	since := now.Add(-time.Hour)
	rows, err := s.Alerts(ctx, []string{"prod"}, since)
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := s.ResolvedIncidents(ctx, []string{"prod"}, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(resolved) != 2 {
		t.Fatalf("resolved incidents: %d rows, want 2", len(resolved))
	}
	evals, err := s.GateEvaluations(ctx, []string{"prod"}, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(evals) != 4 {
		t.Fatalf("evaluations: %d rows, want 4 (prod only)", len(evals))
	}
	fromRows := query.BuildTrends(query.TrendInput{Alerts: rows, Incidents: resolved, Evaluations: evals}, "prod", "mirror", time.Hour, now)
	fromObjects := query.BuildTrends(query.TrendInput{Alerts: alerts, Incidents: incidents}, "prod", "mirror", time.Hour, now)
	if !reflect.DeepEqual(fromRows.NewAlerts, fromObjects.NewAlerts) || !reflect.DeepEqual(fromRows.Occurrences, fromObjects.Occurrences) {
		t.Errorf("the rows give other counts:\nrows    %v %v\nobjects %v %v", fromRows.NewAlerts, fromRows.Occurrences, fromObjects.NewAlerts, fromObjects.Occurrences)
	}
	if fromRows.MTTA != fromObjects.MTTA || fromRows.MTTR != fromObjects.MTTR {
		t.Errorf("MTTA/MTTR from rows %+v %+v, from objects %+v %+v", fromRows.MTTA, fromRows.MTTR, fromObjects.MTTA, fromObjects.MTTR)
	}
	if fromRows.MTTA.Count != 1 || fromRows.MTTR != (query.Duration{Count: 2, MeanSeconds: 3900, MedianSeconds: 3900, MaxSeconds: 5400}) {
		t.Errorf("MTTA %+v MTTR %+v", fromRows.MTTA, fromRows.MTTR)
	}
	var decisions []string
	for _, p := range fromRows.Gates[0].Points {
		decisions = append(decisions, p.Decision)
	}
	if len(fromRows.Gates) != 1 || !reflect.DeepEqual(decisions, []string{"Allow", "Warn", "Block"}) {
		t.Errorf("gates from history: %+v", fromRows.Gates)
	}
}
