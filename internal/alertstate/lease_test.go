package alertstate

import (
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func claimed(t *testing.T, owner string, ttl time.Duration) *v1.AlertStatus {
	t.Helper()
	s := &v1.AlertStatus{Phase: v1.AlertNew}
	if err := Claim(s, owner, ttl, t0); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantNotHolder(t *testing.T, err error, holder string) {
	t.Helper()
	var nh *NotHolderError
	if !errors.As(err, &nh) {
		t.Fatalf("want NotHolderError, got %v", err)
	}
	if nh.Holder != holder || !strings.Contains(err.Error(), holder) {
		t.Fatalf("error %q does not name holder %q", err, holder)
	}
}

func TestOnlyTheLiveHolderMayRenewAckOrFail(t *testing.T) {
	ops := map[string]func(s *v1.AlertStatus, owner string, now time.Time) error{
		"renew": func(s *v1.AlertStatus, o string, now time.Time) error { return Renew(s, o, time.Minute, now) },
		"ack":   func(s *v1.AlertStatus, o string, now time.Time) error { return Ack(s, o, "done", now) },
		"fail":  func(s *v1.AlertStatus, o string, now time.Time) error { return Fail(s, o, "boom", time.Minute, now) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			s := claimed(t, "agent-1", time.Minute)
			before := *s.Claim
			wantNotHolder(t, op(s, "agent-2", t0.Add(time.Second)), "agent-1")
			if s.Phase != v1.AlertProcessing || *s.Claim != before {
				t.Fatalf("refused %s still changed the status: %+v", name, s)
			}
			// The holder's own lease ran out: refused too (the lease was lost).
			err := op(s, "agent-1", t0.Add(time.Minute))
			wantNotHolder(t, err, "agent-1")
			if !err.(*NotHolderError).Expired {
				t.Fatal("expired lease not reported as expired")
			}
			if err := op(s, "agent-1", t0.Add(59*time.Second)); err != nil {
				t.Fatalf("holder refused: %v", err)
			}
		})
	}
}

func TestRenewExtendsTheLease(t *testing.T) {
	s := claimed(t, "a", 10*time.Second)
	now := t0.Add(9 * time.Second)
	if err := Renew(s, "a", 0, now); err != nil {
		t.Fatal(err)
	}
	if !LeaseExpiry(s).Equal(now.Add(10*time.Second)) || s.Claim.LeaseTransitions != 0 || s.Attempts != 1 {
		t.Fatalf("renew wrote %+v", s.Claim)
	}
	if err := Renew(s, "a", 90*time.Second, now); err != nil || s.Claim.LeaseDurationSeconds != 90 {
		t.Fatalf("renew with ttl: %v %+v", err, s.Claim)
	}
	n := &v1.AlertStatus{Phase: v1.AlertNew}
	wantNotHolder(t, Renew(n, "a", 0, now), "")
}

func TestManualAckOfUnclaimedAlert(t *testing.T) {
	for _, p := range []v1.AlertPhase{v1.AlertNew, v1.AlertFailed} {
		s := &v1.AlertStatus{Phase: p}
		if err := Ack(s, "alice", "false positive", t0); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if s.Phase != v1.AlertAcked || s.Ack.By != "alice" || s.Ack.Note != "false positive" || !s.Ack.At.Time.Equal(t0) {
			t.Fatalf("%s: ack wrote %+v", p, s.Ack)
		}
	}
	for _, p := range []v1.AlertPhase{v1.AlertAcked, v1.AlertDeduplicated, ""} {
		var pe *PhaseError
		if err := Ack(&v1.AlertStatus{Phase: p}, "alice", "", t0); !errors.As(err, &pe) {
			t.Fatalf("%q: want PhaseError, got %v", p, err)
		}
	}
}

func TestFailThenClaimAgainCountsAttempts(t *testing.T) {
	s := claimed(t, "a", time.Minute)
	if err := Fail(s, "a", "gateway timeout", 5*time.Minute, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.Phase != v1.AlertFailed || s.LastError != "gateway timeout" || !s.RetryAfter.Time.Equal(t0.Add(time.Second+5*time.Minute)) {
		t.Fatalf("fail wrote %+v", s)
	}
	if !Allowed(v1.AlertProcessing, v1.AlertFailed) {
		t.Fatal("table")
	}
	if Claimable(s, t0.Add(time.Minute)) {
		t.Fatal("claimable before retryAfter")
	}
	if err := Claim(s, "b", time.Minute, s.RetryAfter.Time); err != nil {
		t.Fatal(err)
	}
	if s.Attempts != 2 || s.Claim.LeaseTransitions != 1 || s.Claim.HolderIdentity != "b" {
		t.Fatalf("second claim wrote attempts %d %+v", s.Attempts, s.Claim)
	}
}
