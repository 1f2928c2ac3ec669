package mirror_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/query"
)

// TestTrendsFromHistory writes Alerts, Incidents and a gate's evaluations,
// and requires the trends built from the rows to equal the ones built from
// the objects, plus the gate decisions the cluster no longer holds.
func TestTrendsFromHistory(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, ctx)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(ago time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(-ago)); return &m }
	var alerts []v1.Alert
	for i, sev := range []v1.Severity{v1.SeverityP1, v1.SeverityP2, v1.SeverityP2, v1.SeverityP3} {
		a := v1.Alert{
			ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "a" + string(rune('0'+i)), UID: types.UID("uid-a" + string(rune('0'+i))),
				ResourceVersion: "1", CreationTimestamp: *at(time.Duration(10*i+5) * time.Minute)},
			Spec: v1.AlertSpec{Service: "gateway", Env: "prod", Kind: "latency", Severity: sev, Title: "t"},
			Status: v1.AlertStatus{Phase: v1.AlertNew, Occurrences: int64(3 * (i + 1)),
				FirstSeenAt: at(time.Duration(10*i+5) * time.Minute), LastSeenAt: at(time.Minute)},
		}
		if i == 1 {
			a.Status.Phase = v1.AlertAcked
			a.Status.Ack = &v1.AlertAck{By: "sofiia", At: *at(3 * time.Minute)}
		}
		alerts = append(alerts, a)
	}
	incidents := []v1.Incident{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "resolved", UID: "uid-i1", ResourceVersion: "1", CreationTimestamp: *at(time.Hour)},
			Spec:   v1.IncidentSpec{Service: "gateway", Env: "prod", Severity: v1.SeverityP1, Title: "t", State: v1.IncidentResolved},
			Status: v1.IncidentStatus{OpenedAt: at(time.Hour), ResolvedAt: at(20 * time.Minute)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "closed", UID: "uid-i2", ResourceVersion: "1", CreationTimestamp: *at(2 * time.Hour)},
			Spec:   v1.IncidentSpec{Service: "gateway", Env: "prod", Severity: v1.SeverityP1, Title: "t", State: v1.IncidentClosed},
			Status: v1.IncidentStatus{OpenedAt: at(2 * time.Hour), ClosedAt: at(30 * time.Minute)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "open", UID: "uid-i3", ResourceVersion: "1", CreationTimestamp: *at(time.Hour)},
			Spec:   v1.IncidentSpec{Service: "gateway", Env: "prod", Severity: v1.SeverityP1, Title: "t", State: v1.IncidentOpen},
			Status: v1.IncidentStatus{OpenedAt: at(time.Hour)}},
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
	policy := v1.SLOPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "gw", UID: "uid-slo"}, Spec: v1.SLOPolicySpec{Service: "gateway", Env: "prod"}}
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
