package alertstate

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

var agent1 = Caller{Owner: "agent-1", User: "system:serviceaccount:ops:agent-1"}

func TestClaimAndRequeue(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := &v1.AlertStatus{Phase: v1.AlertNew}
	if err := Claim(s, agent1, 1500*time.Millisecond, now); err != nil {
		t.Fatal(err)
	}
	if s.Phase != v1.AlertProcessing || s.Attempts != 1 || s.Claim.LeaseDurationSeconds != 2 ||
		s.Claim.HolderIdentity != agent1.Owner || s.Claim.HolderUser != agent1.User {
		t.Fatalf("claim wrote %+v", s)
	}
	if Claimable(s) {
		t.Fatal("a Processing Alert is claimable")
	}
	if r := Requeue(s, 1, now.Add(1999*time.Millisecond)); r != "" {
		t.Fatalf("requeued a live lease: %s", r)
	}
	if got := NextDeadline(s); !got.Equal(now.Add(2 * time.Second)) {
		t.Fatalf("deadline %v", got)
	}
	// Nobody takes over an expired lease: the operator returns it to New.
	var pe *PhaseError
	if err := Claim(s, Caller{Owner: "agent-2", User: "agent-2"}, time.Minute, now.Add(time.Hour)); !errors.As(err, &pe) {
		t.Fatalf("claimed a Processing Alert whose lease expired: %v", err)
	}
	if r := Requeue(s, 1, now.Add(2*time.Second)); r != v1.ReasonLeaseExpired || s.Phase != v1.AlertNew {
		t.Fatalf("expired lease: reason %q phase %s", r, s.Phase)
	}
	if err := Claim(s, Caller{Owner: "agent-2", User: "agent-2"}, time.Minute, now.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.Claim.HolderIdentity != "agent-2" || s.Claim.LeaseTransitions != 1 || s.Attempts != 2 {
		t.Fatalf("second claim wrote %+v", s.Claim)
	}
}

func TestFailedRetry(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := metav1.NewTime(now.Add(5 * time.Minute))
	s := &v1.AlertStatus{Phase: v1.AlertFailed, RetryAfter: &at}
	if Claimable(s) || Requeue(s, 1, now) != "" {
		t.Fatal("Failed Alert due before retryAfter")
	}
	if r := Requeue(s, 1, at.Time); r != v1.ReasonRetryDue || s.Phase != v1.AlertNew || !Claimable(s) {
		t.Fatalf("retry: reason %q phase %s", r, s.Phase)
	}
}

func TestOnlyNewIsClaimable(t *testing.T) {
	for _, p := range []v1.AlertPhase{v1.AlertAcked, v1.AlertDeduplicated, v1.AlertProcessing, v1.AlertFailed, ""} {
		if Claimable(&v1.AlertStatus{Phase: p}) {
			t.Errorf("%q is claimable", p)
		}
	}
}
