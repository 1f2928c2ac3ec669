package claim

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Only New Alerts are candidates: an expired lease or a due retry comes
// back as New on the operator's timer, never by a claimer's clock.
func TestCandidatesAreNewAlertsInsideTheWindowOldestFirst(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	mk := func(name string, created time.Duration, s v1.AlertStatus) v1.Alert {
		return v1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: *at(created)}, Status: s}
	}
	expired := &v1.AlertClaim{HolderIdentity: "x", RenewTime: metav1.NewMicroTime(now.Add(-time.Hour)), LeaseDurationSeconds: 60}
	live := &v1.AlertClaim{HolderIdentity: "x", RenewTime: metav1.NewMicroTime(now), LeaseDurationSeconds: 60}
	deleting := mk("deleting", time.Minute, v1.AlertStatus{Phase: v1.AlertNew})
	deleting.DeletionTimestamp = at(0)
	items := []v1.Alert{
		mk("new-young", time.Minute, v1.AlertStatus{Phase: v1.AlertNew}),
		mk("stale", 2*time.Hour, v1.AlertStatus{Phase: v1.AlertProcessing, Claim: expired}),
		mk("held", 3*time.Hour, v1.AlertStatus{Phase: v1.AlertProcessing, Claim: live}),
		mk("failed-due", time.Hour, v1.AlertStatus{Phase: v1.AlertFailed, RetryAfter: at(time.Second)}),
		mk("failed-later", time.Hour, v1.AlertStatus{Phase: v1.AlertFailed, RetryAfter: at(-time.Minute)}),
		mk("too-old", 5*time.Hour, v1.AlertStatus{Phase: v1.AlertNew}),
		mk("old-but-seen", 5*time.Hour, v1.AlertStatus{Phase: v1.AlertNew, LastSeenAt: at(time.Minute)}),
		mk("acked", time.Minute, v1.AlertStatus{Phase: v1.AlertAcked}),
		mk("undecided", time.Minute, v1.AlertStatus{}),
		deleting,
	}
	var got []string
	for _, a := range Candidates(items, 4*time.Hour, now) {
		got = append(got, a.Name)
	}
	want := []string{"old-but-seen", "new-young"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if n := len(Candidates(items, 0, now)); n != 3 {
		t.Fatalf("without a window %d candidates, want the 3 New ones", n)
	}
}

// A request's env and service keep only what they name.
func TestRequestKeepsEnvAndService(t *testing.T) {
	mk := func(ns, service, env string) v1.Alert {
		return v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ns + "-" + service + "-" + env},
			Spec: v1.AlertSpec{Service: service, Env: env}}
	}
	items := []v1.Alert{mk("a", "gateway", "prod"), mk("a", "gateway", "staging"), mk("b", "db", "prod"), mk("c", "gateway", "prod")}
	var names []string
	for _, a := range (Request{Env: "prod", Service: "gateway"}).keep(items) {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"a-gateway-prod", "c-gateway-prod"}) {
		t.Fatalf("kept %v", names)
	}
}

// The namespaces a claim across namespaces looks at are those holding a
// claimable Alert, the one with the newest first; a namespace whose Alerts
// are all taken, acked or silenced is not one of them.
func TestClaimableNamespacesNewestFirst(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	mk := func(ns string, age time.Duration, phase v1.AlertPhase) v1.Alert {
		return v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ns + "-" + age.String(), CreationTimestamp: metav1.NewTime(now.Add(-age))},
			Status: v1.AlertStatus{Phase: phase}}
	}
	silenced := mk("silenced", time.Second, v1.AlertNew)
	silenced.Status.Conditions = []metav1.Condition{{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue}}
	items := []v1.Alert{
		mk("stale", 5*time.Hour, v1.AlertNew),
		mk("busy", 6*time.Hour, v1.AlertNew),
		mk("busy", time.Minute, v1.AlertNew),
		mk("taken", time.Second, v1.AlertProcessing),
		mk("done", time.Second, v1.AlertAcked),
		mk("middle", time.Hour, v1.AlertNew),
		silenced,
	}
	if got := ClaimableNamespaces(items); !slices.Equal(got, []string{"busy", "middle", "stale"}) {
		t.Fatalf("got %v", got)
	}
	if got := ClaimableNamespaces(nil); len(got) != 0 {
		t.Fatalf("no Alerts: %v", got)
	}
}

// The namespaces a user worked in are those where it holds a lease or
// acked an Alert.
func TestWorkedNamespaces(t *testing.T) {
	mk := func(ns string, s v1.AlertStatus) v1.Alert {
		return v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns}, Status: s}
	}
	items := []v1.Alert{
		mk("held", v1.AlertStatus{Phase: v1.AlertProcessing, Claim: &v1.AlertClaim{HolderUser: "agent"}}),
		mk("acked", v1.AlertStatus{Phase: v1.AlertAcked, Ack: &v1.AlertAck{By: "agent"}}),
		mk("acked", v1.AlertStatus{Phase: v1.AlertAcked, Ack: &v1.AlertAck{By: "agent"}}),
		mk("others", v1.AlertStatus{Phase: v1.AlertProcessing, Claim: &v1.AlertClaim{HolderUser: "someone"}}),
		mk("new", v1.AlertStatus{Phase: v1.AlertNew}),
	}
	if got := WorkedNamespaces(items, "agent"); !slices.Equal(got, []string{"acked", "held"}) {
		t.Fatalf("got %v", got)
	}
}
