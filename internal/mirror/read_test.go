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

// TestReadBackGivesTheSameAnswers writes Alerts and Incidents with every
// field the read side serves, reads them back, and requires the list and
// dashboard lines internal/query builds from the rows to equal the ones it
// builds from the objects.
func TestReadBackGivesTheSameAnswers(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t, ctx)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(ago time.Duration) *metav1.Time { m := metav1.NewTime(now.Add(-ago)); return &m }

	full := v1.Alert{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "gateway-acked", UID: types.UID("uid-acked"), ResourceVersion: "10",
			CreationTimestamp: *at(2 * time.Hour), DeletionTimestamp: at(time.Minute)},
		Spec: v1.AlertSpec{Service: "gateway", Env: "prod", Kind: "latency", Severity: v1.SeverityP1, Title: "p95 above 300ms",
			Message: "p95 975ms", Source: "monitor@node1", Labels: map[string]string{"route": "/v1/chat"}},
		Status: v1.AlertStatus{Phase: v1.AlertAcked, Fingerprint: "fp1", Occurrences: 7, FirstSeenAt: at(2 * time.Hour), LastSeenAt: at(10 * time.Minute),
			Claim: &v1.AlertClaim{HolderIdentity: "agent-cto"}, Attempts: 2, LastError: "gateway timeout",
			Ack: &v1.AlertAck{By: "alertmanager", Note: "resolved at source", At: *at(5 * time.Minute)}, ResolvedAt: at(5 * time.Minute),
			IncidentRef: &v1.LocalObjectReference{Name: "inc-1"}},
	}
	processing := v1.Alert{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "gateway-held", UID: types.UID("uid-held"), ResourceVersion: "11", CreationTimestamp: *at(time.Hour)},
		Spec:       v1.AlertSpec{Service: "gateway", Env: "prod", Kind: "error_rate", Severity: v1.SeverityP2, Title: "5xx"},
		Status: v1.AlertStatus{Phase: v1.AlertProcessing, Fingerprint: "fp2", Occurrences: 1, LastSeenAt: at(time.Minute),
			Claim: &v1.AlertClaim{HolderIdentity: "agent-oncall"}, Attempts: 1},
	}
	old := v1.Alert{
		ObjectMeta: metav1.ObjectMeta{Namespace: "staging", Name: "old", UID: types.UID("uid-old"), ResourceVersion: "12", CreationTimestamp: *at(9 * time.Hour)},
		Spec:       v1.AlertSpec{Service: "db", Env: "staging", Kind: "disk", Severity: v1.SeverityP3, Title: "disk"},
		Status:     v1.AlertStatus{Phase: v1.AlertNew, Occurrences: 1},
	}
	alerts := []v1.Alert{full, processing, old}
	for i := range alerts {
		if _, err := s.UpsertAlert(ctx, &alerts[i]); err != nil {
			t.Fatal(err)
		}
	}
	open := v1.Incident{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "inc-1", UID: types.UID("uid-inc-1"), ResourceVersion: "20", CreationTimestamp: *at(time.Hour)},
		Spec:       v1.IncidentSpec{Service: "gateway", Env: "prod", Severity: v1.SeverityP1, Title: "gateway slow", Signature: "gateway/prod/latency", State: v1.IncidentMitigating},
		Status: v1.IncidentStatus{OpenedAt: at(time.Hour), LastActivityAt: at(3 * time.Minute), AlertCount: 3,
			Triage: &v1.TriageStatus{Runs: 1, LastTriageAt: at(time.Hour), CooldownUntil: at(-14 * time.Minute)}},
	}
	closed := v1.Incident{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "inc-0", UID: types.UID("uid-inc-0"), ResourceVersion: "21", CreationTimestamp: *at(3 * time.Hour)},
		Spec:       v1.IncidentSpec{Service: "gateway", Env: "prod", Severity: v1.SeverityP2, Title: "old", State: v1.IncidentClosed, Note: "fixed"},
	}
	deletedOpen := v1.Incident{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "inc-gone", UID: types.UID("uid-inc-gone"), ResourceVersion: "22",
			CreationTimestamp: *at(3 * time.Hour), DeletionTimestamp: at(time.Hour)},
		Spec: v1.IncidentSpec{Service: "gateway", Env: "prod", Severity: v1.SeverityP2, Title: "deleted while open", State: v1.IncidentOpen},
	}
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
