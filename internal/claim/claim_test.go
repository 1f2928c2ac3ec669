package claim

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/policy"
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

// A lease is what was asked, or the namespace's default, and never longer
// than the namespace's ceiling: asking for more is refused, naming the
// field and the ceiling.
func TestLeaseStaysWithinTheNamespacesCeiling(t *testing.T) {
	pol := func(ns string, spec v1.AlertRoutingPolicySpec) *v1.AlertRoutingPolicy {
		return &v1.AlertRoutingPolicy{ObjectMeta: metav1.ObjectMeta{Name: v1.RoutingPolicyName, Namespace: ns}, Spec: spec}
	}
	d := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	c := &Claimer{Client: fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithObjects(
		pol("capped", v1.AlertRoutingPolicySpec{MaxLeaseDuration: d(30 * time.Minute)}),
		// Written before the ceiling existed: its default is longer.
		pol("older", v1.AlertRoutingPolicySpec{ProcessingLockTTL: d(2 * time.Hour)}),
		pol("fraction", v1.AlertRoutingPolicySpec{ProcessingLockTTL: d(time.Second), MaxLeaseDuration: d(1500 * time.Millisecond)}),
	).Build()}
	for _, tc := range []struct {
		ns          string
		asked, want time.Duration
		refused     string
	}{
		{ns: "none", want: 10 * time.Minute},
		{ns: "none", asked: time.Hour, want: time.Hour},
		{ns: "none", asked: time.Hour + time.Second, refused: "a lease lasts at most 1h0m0s there"},
		{ns: "capped", asked: 30 * time.Minute, want: 30 * time.Minute},
		{ns: "capped", asked: 31 * time.Minute, refused: `lockTTL: Invalid value: "31m0s": longer than namespace capped allows: a lease lasts at most 30m0s there`},
		{ns: "older", want: time.Hour},
		{ns: "fraction", asked: 1500 * time.Millisecond, want: time.Second},
	} {
		got, err := c.lease(context.Background(), map[string]policy.Policy{}, tc.ns, tc.asked)
		var tl *LeaseTooLongError
		switch {
		case tc.refused != "":
			if !errors.As(err, &tl) || !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("%s, %s: want a refusal saying %q, got %v, %v", tc.ns, tc.asked, tc.refused, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s, %s: got %v, %v; want %v", tc.ns, tc.asked, got, err, tc.want)
		}
	}
}
