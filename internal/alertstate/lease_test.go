package alertstate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func caller(name string) Caller {
	return Caller{Owner: name, User: "system:serviceaccount:ops:" + name}
}

func claimed(t *testing.T, c Caller, ttl time.Duration) *v1.AlertStatus {
	t.Helper()
	s := &v1.AlertStatus{Phase: v1.AlertNew}
	if err := Claim(s, c, ttl, t0); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantNotHolder(t *testing.T, err error, holder Caller) {
	t.Helper()
	var nh *NotHolderError
	if !errors.As(err, &nh) {
		t.Fatalf("want NotHolderError, got %v", err)
	}
	if nh.Holder != holder || !strings.Contains(err.Error(), holder.String()) {
		t.Fatalf("error %q does not name holder %q", err, holder)
	}
}

func TestOnlyTheHolderMayRenewAckOrFail(t *testing.T) {
	ops := map[string]func(s *v1.AlertStatus, c Caller, now time.Time) error{
		"renew": func(s *v1.AlertStatus, c Caller, now time.Time) error { return Renew(s, c, time.Minute, now) },
		"ack":   func(s *v1.AlertStatus, c Caller, now time.Time) error { return Ack(s, c, "done", now) },
		"fail":  func(s *v1.AlertStatus, c Caller, now time.Time) error { return Fail(s, c, "boom", time.Minute, now) },
	}
	a1 := caller("agent-1")
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			s := claimed(t, a1, time.Minute)
			before := *s.Claim
			err := op(s, caller("agent-2"), t0.Add(time.Second))
			wantNotHolder(t, err, a1)
			if !strings.Contains(err.Error(), "only the holder may "+name) {
				t.Fatalf("error %q does not say what was refused", err)
			}
			if s.Phase != v1.AlertProcessing || *s.Claim != before {
				t.Fatalf("refused %s still changed the status: %+v", name, s)
			}
			// Same owner name, another user: the user is what counts.
			wantNotHolder(t, op(s, Caller{Owner: a1.Owner, User: "mallory"}, t0.Add(time.Second)), a1)
			// Past the lease's end, others are told it ran out; it is still
			// the holder's until the operator returns it to New.
			err = op(s, caller("agent-2"), t0.Add(time.Hour))
			wantNotHolder(t, err, a1)
			if !err.(*NotHolderError).Expired || !strings.Contains(err.Error(), "whose lease ran out at") {
				t.Fatalf("a lease past its end not reported as such: %v", err)
			}
			if err := op(s, a1, t0.Add(time.Hour)); err != nil {
				t.Fatalf("the holder was refused before the operator returned the Alert to New: %v", err)
			}
		})
	}
	// Once the operator has, nobody holds it.
	s := claimed(t, a1, time.Minute)
	if Requeue(s, 1, t0.Add(time.Minute)) != v1.ReasonLeaseExpired {
		t.Fatal("not requeued at the lease's end")
	}
	for name, op := range ops {
		if name == "ack" {
			continue // a New Alert is acked by whoever the API server lets (on-call)
		}
		var nh *NotHolderError
		if err := op(s.DeepCopy(), a1, t0.Add(time.Minute)); !errors.As(err, &nh) || nh.Phase != v1.AlertNew {
			t.Fatalf("%s of a requeued Alert by its last holder: %v", name, err)
		}
	}
}

func TestRenewNeverMovesRenewTimeBack(t *testing.T) {
	a := caller("a")
	s := claimed(t, a, time.Minute)
	// The operator shortened the lease at its clock, ahead of this caller's.
	s.Claim.RenewTime.Time = t0.Add(10 * time.Second)
	if err := Renew(s, a, 2*time.Minute, t0.Add(8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !s.Claim.RenewTime.Time.Equal(t0.Add(10*time.Second)) || s.Claim.LeaseDurationSeconds != 120 {
		t.Fatalf("renew behind the last renewTime wrote %+v", s.Claim)
	}
}

func TestClampBoundsTheLeaseByTheOperatorsClockAndTheCeiling(t *testing.T) {
	a := caller("a")
	now := t0.Add(time.Hour)
	far := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                   string
		acquire, renew         time.Time
		seconds                int32
		maxLease               time.Duration
		wantSeconds            int32
		wantRenew, wantAcquire time.Time
		wantClamped            bool
		wantWhy                string
	}{
		{name: "renewTime in 2999", acquire: far, renew: far, seconds: 600, maxLease: time.Hour,
			wantSeconds: 600, wantRenew: now, wantAcquire: now, wantClamped: true, wantWhy: "renewTime 2999-01-01T00:00:00.000000Z was ahead"},
		{name: "renewTime in 2999 and a day's lease", acquire: t0, renew: far, seconds: 86400, maxLease: time.Hour,
			wantSeconds: 3600, wantRenew: now, wantAcquire: t0, wantClamped: true, wantWhy: "at 2026-11-27T13:00:00Z the operator shortened the lease to end at 2026-11-27T14:00:00Z: renewTime 2999-01-01T00:00:00.000000Z was ahead of the operator's clock (2026-11-27T13:00:00.000000Z), and leaseDurationSeconds 86400 was longer than the namespace's maxLeaseDuration 1h0m0s"},
		{name: "longer than the ceiling", acquire: now, renew: now, seconds: 7200, maxLease: 30 * time.Minute,
			wantSeconds: 1800, wantRenew: now, wantAcquire: now, wantClamped: true, wantWhy: "leaseDurationSeconds 7200 was longer"},
		{name: "longer than the ceiling, most of it gone: never extended", acquire: now.Add(-110 * time.Minute), renew: now.Add(-110 * time.Minute),
			seconds: 7200, maxLease: time.Hour, wantSeconds: 600, wantRenew: now, wantAcquire: now.Add(-110 * time.Minute), wantClamped: true},
		{name: "ahead within the tolerance", acquire: now.Add(MaxClockSkew), renew: now.Add(MaxClockSkew), seconds: 600, maxLease: time.Hour,
			wantSeconds: 600, wantRenew: now.Add(MaxClockSkew), wantAcquire: now.Add(MaxClockSkew)},
		{name: "at the ceiling", acquire: now, renew: now, seconds: 3600, maxLease: time.Hour,
			wantSeconds: 3600, wantRenew: now, wantAcquire: now},
		{name: "a fraction of a second left: the timer requeues it", acquire: now, renew: now.Add(-7199500 * time.Millisecond), seconds: 7200, maxLease: time.Hour,
			wantSeconds: 7200, wantRenew: now.Add(-7199500 * time.Millisecond), wantAcquire: now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := claimed(t, a, time.Minute)
			s.Claim.AcquireTime.Time, s.Claim.RenewTime.Time, s.Claim.LeaseDurationSeconds = tc.acquire, tc.renew, tc.seconds
			before := LeaseExpiry(s)
			why := Clamp(s, tc.maxLease, now)
			if (why != "") != tc.wantClamped || !strings.Contains(why, tc.wantWhy) {
				t.Fatalf("clamp said %q", why)
			}
			c := s.Claim
			if c.LeaseDurationSeconds != tc.wantSeconds || !c.RenewTime.Time.Equal(tc.wantRenew) || !c.AcquireTime.Time.Equal(tc.wantAcquire) {
				t.Fatalf("clamp wrote %+v", c)
			}
			after := LeaseExpiry(s)
			if after.After(before) {
				t.Fatalf("clamp extended the lease from %s to %s", before, after)
			}
			if tc.wantClamped && after.After(now.Add(tc.maxLease)) {
				t.Fatalf("clamped lease ends at %s, past the ceiling after %s", after, now)
			}
			cond := meta.FindStatusCondition(s.Conditions, v1.AlertConditionClaimed)
			if tc.wantClamped && (cond == nil || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "the operator shortened the lease")) {
				t.Fatalf("Claimed condition %+v", cond)
			}
		})
	}
	if Clamp(&v1.AlertStatus{Phase: v1.AlertNew}, time.Hour, now) != "" {
		t.Fatal("clamped an Alert nobody holds")
	}
}

func TestCapSecondsRoundsDown(t *testing.T) {
	for d, want := range map[time.Duration]int32{
		time.Hour: 3600, 1500 * time.Millisecond: 1, 90500 * time.Millisecond: 90, 500 * time.Millisecond: 1, 48 * time.Hour: MaxLeaseSeconds,
	} {
		if got := CapSeconds(d); got != want {
			t.Errorf("CapSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}

func TestRenewExtendsTheLease(t *testing.T) {
	a := caller("a")
	s := claimed(t, a, 10*time.Second)
	now := t0.Add(9 * time.Second)
	if err := Renew(s, a, 0, now); err != nil {
		t.Fatal(err)
	}
	if !LeaseExpiry(s).Equal(now.Add(10*time.Second)) || s.Claim.LeaseTransitions != 0 || s.Attempts != 1 {
		t.Fatalf("renew wrote %+v", s.Claim)
	}
	if err := Renew(s, a, 90*time.Second, now); err != nil || s.Claim.LeaseDurationSeconds != 90 {
		t.Fatalf("renew with ttl: %v %+v", err, s.Claim)
	}
	n := &v1.AlertStatus{Phase: v1.AlertNew}
	wantNotHolder(t, Renew(n, a, 0, now), Caller{})
}

func TestManualAckRecordsTheUser(t *testing.T) {
	alice := Caller{Owner: "alice-laptop", User: "alice"}
	for _, p := range []v1.AlertPhase{v1.AlertNew, v1.AlertFailed} {
		s := &v1.AlertStatus{Phase: p}
		if err := Ack(s, alice, "false positive", t0); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if s.Phase != v1.AlertAcked || s.Ack.By != "alice" || s.Ack.Note != "false positive" || !s.Ack.At.Time.Equal(t0) {
			t.Fatalf("%s: ack wrote %+v", p, s.Ack)
		}
	}
	for _, p := range []v1.AlertPhase{v1.AlertAcked, v1.AlertDeduplicated, ""} {
		var pe *PhaseError
		if err := Ack(&v1.AlertStatus{Phase: p}, alice, "", t0); !errors.As(err, &pe) {
			t.Fatalf("%q: want PhaseError, got %v", p, err)
		}
	}
}

func TestFailHandsTheAlertBackForTheOperator(t *testing.T) {
	a := caller("a")
	s := claimed(t, a, time.Minute)
	if err := Fail(s, a, "gateway timeout", 5*time.Minute, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if s.Phase != v1.AlertFailed || s.LastError != "gateway timeout" || !s.RetryAfter.Time.Equal(t0.Add(time.Second+5*time.Minute)) {
		t.Fatalf("fail wrote %+v", s)
	}
	if Claimable(s) {
		t.Fatal("a Failed Alert is claimable: the operator returns it to New at retryAfter")
	}
	if Requeue(s, 1, s.RetryAfter.Time) != v1.ReasonRetryDue {
		t.Fatal("not due at retryAfter")
	}
	if err := Claim(s, caller("b"), time.Minute, s.RetryAfter.Time); err != nil {
		t.Fatal(err)
	}
	if s.Attempts != 2 || s.Claim.LeaseTransitions != 1 || s.Claim.HolderIdentity != "b" {
		t.Fatalf("second claim wrote attempts %d %+v", s.Attempts, s.Claim)
	}
}

func TestResolvedAtSourceOnlyWhenEveryInstanceResolved(t *testing.T) {
	am := Caller{User: "alertmanager"}
	// Two instances fired (two occurrences); the first resolution leaves the
	// Alert open, the second resolves and acks it.
	s := &v1.AlertStatus{Phase: v1.AlertNew, Occurrences: 2}
	Fired(s, "i1")
	Fired(s, "i2")
	Fired(s, "i1") // a re-sent firing is one instance
	if !Resolve(s, "i1", am, t0, t0) || s.ResolvedAt != nil || s.Phase != v1.AlertNew {
		t.Fatalf("one of two resolved: %+v", s)
	}
	if Resolve(s, "i1", am, t0, t0) || Resolve(s, "other-callers-i2", am, t0, t0) {
		t.Fatal("a resolution of an instance not firing changed the Alert")
	}
	if !Resolve(s, "i2", am, t0, t0) || s.ResolvedAt == nil || s.Phase != v1.AlertAcked || s.Ack.Note != ResolvedAtSource {
		t.Fatalf("all resolved: %+v", s)
	}

	// An occurrence that came from elsewhere (kubectl, HTTP ingest) is not
	// the source's to close.
	mixed := &v1.AlertStatus{Phase: v1.AlertNew, Occurrences: 2}
	Fired(mixed, "i1")
	if !Resolve(mixed, "i1", am, t0, t0) || mixed.ResolvedAt != nil || mixed.Phase != v1.AlertNew {
		t.Fatalf("resolved occurrences another source reported: %+v", mixed)
	}

	// Past the bound, instances are untracked: the source no longer closes it.
	full := &v1.AlertStatus{Phase: v1.AlertNew, Occurrences: v1.MaxFiringInstances + 1}
	for i := range v1.MaxFiringInstances + 1 {
		Fired(full, string(rune('a'+i%26))+strings.Repeat("x", i))
	}
	if len(full.Firing.Instances) != v1.MaxFiringInstances || full.Firing.Untracked != 1 {
		t.Fatalf("bound: %d tracked, %d untracked", len(full.Firing.Instances), full.Firing.Untracked)
	}
	for _, k := range append([]string(nil), full.Firing.Instances...) {
		Resolve(full, k, am, t0, t0)
	}
	if full.ResolvedAt != nil || full.Phase != v1.AlertNew {
		t.Fatal("resolved with an untracked instance still firing")
	}
}

func TestRequeueByReleasesTheLeaseAndRecordsTheCaller(t *testing.T) {
	oncall := Caller{User: "alice@example.com"}
	s := claimed(t, caller("worker"), time.Hour)
	if err := RequeueBy(s, oncall, " ", t0); err == nil {
		t.Fatal("a requeue without a reason was taken")
	}
	if err := RequeueBy(s, oncall, "worker hung", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s.Phase != v1.AlertNew || s.Claim != nil || s.Attempts != 1 {
		t.Fatalf("phase %s claim %+v attempts %d", s.Phase, s.Claim, s.Attempts)
	}
	if r := s.Requeued; r == nil || r.By != oncall.User || r.Reason != "worker hung" || !r.At.Time.Equal(t0.Add(time.Minute)) {
		t.Fatalf("requeued %+v", s.Requeued)
	}
	if c := meta.FindStatusCondition(s.Conditions, v1.AlertConditionClaimed); c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1.ReasonRequeued {
		t.Fatalf("Claimed %+v", c)
	}
	var pe *PhaseError
	if err := RequeueBy(s, oncall, "again", t0); !errors.As(err, &pe) {
		t.Fatalf("requeueing a New Alert: %v", err)
	}
	// The next claim counts from the requeue: a first claim again, one more attempt.
	if err := Claim(s, caller("other"), time.Hour, t0.Add(2*time.Minute)); err != nil || s.Attempts != 2 || s.Claim.LeaseTransitions != 0 {
		t.Fatalf("claim after requeue: %v attempts %d claim %+v", err, s.Attempts, s.Claim)
	}

	f := claimed(t, caller("worker"), time.Hour)
	if err := Fail(f, caller("worker"), "timeout", time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	if err := RequeueBy(f, oncall, "retry now", t0); err != nil || f.Phase != v1.AlertNew {
		t.Fatalf("requeue a Failed Alert: %v, phase %s", err, f.Phase)
	}
}
