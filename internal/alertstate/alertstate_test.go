package alertstate

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

func TestAllowedMatchesTheDesignTable(t *testing.T) {
	legal := map[[2]v1.AlertPhase]bool{
		{"", v1.AlertNew}: true, {"", v1.AlertDeduplicated}: true,
		{v1.AlertNew, v1.AlertProcessing}: true, {v1.AlertNew, v1.AlertAcked}: true, {v1.AlertNew, v1.AlertDeduplicated}: true,
		{v1.AlertProcessing, v1.AlertNew}: true, {v1.AlertProcessing, v1.AlertAcked}: true, {v1.AlertProcessing, v1.AlertFailed}: true,
		{v1.AlertFailed, v1.AlertNew}: true, {v1.AlertFailed, v1.AlertProcessing}: true, {v1.AlertFailed, v1.AlertAcked}: true,
	}
	all := []v1.AlertPhase{"", v1.AlertNew, v1.AlertProcessing, v1.AlertAcked, v1.AlertFailed, v1.AlertDeduplicated}
	for _, from := range all {
		for _, to := range all {
			want := from == to || legal[[2]v1.AlertPhase{from, to}]
			if got := Allowed(from, to); got != want {
				t.Errorf("Allowed(%q, %q) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestClaimAndRequeue(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &v1.AlertStatus{Phase: v1.AlertNew}
	if err := Claim(s, "agent-1", 1500*time.Millisecond, now); err != nil {
		t.Fatal(err)
	}
	if s.Phase != v1.AlertProcessing || s.Attempts != 1 || s.Claim.LeaseDurationSeconds != 2 {
		t.Fatalf("claim wrote %+v", s)
	}
	if Claimable(s, now.Add(time.Second)) {
		t.Fatal("a live lease is claimable")
	}
	if err := Claim(s, "agent-2", time.Minute, now.Add(time.Second)); err == nil {
		t.Fatal("claimed over a live lease")
	}
	if r := Requeue(s, 1, now.Add(1999*time.Millisecond)); r != "" {
		t.Fatalf("requeued a live lease: %s", r)
	}
	if got := NextDeadline(s); !got.Equal(now.Add(2 * time.Second)) {
		t.Fatalf("deadline %v", got)
	}
	// A claimer may take over an expired lease before the controller requeues it.
	if err := Claim(s, "agent-2", time.Minute, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.Claim.HolderIdentity != "agent-2" || s.Claim.LeaseTransitions != 1 || s.Attempts != 2 {
		t.Fatalf("takeover wrote %+v", s.Claim)
	}
	if r := Requeue(s, 1, now.Add(2*time.Minute)); r != v1.ReasonLeaseExpired || s.Phase != v1.AlertNew {
		t.Fatalf("expired lease: reason %q phase %s", r, s.Phase)
	}
}

func TestFailedRetry(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := metav1.NewTime(now.Add(5 * time.Minute))
	s := &v1.AlertStatus{Phase: v1.AlertFailed, RetryAfter: &at}
	if Claimable(s, now) || Requeue(s, 1, now) != "" {
		t.Fatal("Failed Alert due before retryAfter")
	}
	if !Claimable(s, at.Time) {
		t.Fatal("Failed Alert not claimable at retryAfter")
	}
	if r := Requeue(s, 1, at.Time); r != v1.ReasonRetryDue || s.Phase != v1.AlertNew {
		t.Fatalf("retry: reason %q phase %s", r, s.Phase)
	}
}

func TestTerminalPhasesAreNotClaimable(t *testing.T) {
	for _, p := range []v1.AlertPhase{v1.AlertAcked, v1.AlertDeduplicated, ""} {
		if Claimable(&v1.AlertStatus{Phase: p}, time.Now()) {
			t.Errorf("%q is claimable", p)
		}
	}
}
