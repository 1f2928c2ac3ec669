package alertstate

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// NotHolderError is returned when someone other than the holder of a live
// lease tries to renew, ack or fail a Processing Alert, or when the caller's
// own lease has run out (Expired). The CLI maps it to exit code 3.
type NotHolderError struct {
	// Caller is who asked.
	Caller string
	// Holder is who holds (or last held) the lease; empty without a claim.
	Holder string
	// Phase is the Alert's phase when the caller asked.
	Phase v1.AlertPhase
	// Expired is true when the lease is no longer live.
	Expired bool
	// Until is when the lease ends (or ended).
	Until time.Time
}

func (e *NotHolderError) Error() string {
	switch {
	case e.Phase != v1.AlertProcessing:
		return fmt.Sprintf("%s does not hold the Alert: it is %s, not Processing (last holder %q)", e.Caller, e.Phase, e.Holder)
	case e.Expired && e.Holder == e.Caller:
		return fmt.Sprintf("the lease of %s expired at %s: the Alert may have been taken over", e.Caller, e.Until.UTC().Format(time.RFC3339Nano))
	case e.Expired:
		return fmt.Sprintf("%s does not hold the Alert: the lease of %s expired at %s", e.Caller, e.Holder, e.Until.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%s does not hold the Alert: it is held by %s until %s", e.Caller, e.Holder, e.Until.UTC().Format(time.RFC3339Nano))
}

// PhaseError is returned when an operation does not apply to an Alert in
// its phase at all (acking an Acked Alert, renewing a New one, …).
type PhaseError struct {
	Op    string
	Phase v1.AlertPhase
}

func (e *PhaseError) Error() string {
	if e.Phase == "" {
		return fmt.Sprintf("cannot %s the Alert: the controller has not accepted it yet", e.Op)
	}
	return fmt.Sprintf("cannot %s an Alert in phase %s", e.Op, e.Phase)
}

// CheckHolder returns nil when owner holds the live lease of a Processing
// Alert at now, else a *NotHolderError naming the holder.
func CheckHolder(s *v1.AlertStatus, owner string, now time.Time) error {
	if LeaseLive(s, now) && s.Claim.HolderIdentity == owner {
		return nil
	}
	e := &NotHolderError{Caller: owner, Phase: s.Phase, Until: LeaseExpiry(s)}
	if s.Claim != nil {
		e.Holder = s.Claim.HolderIdentity
	}
	e.Expired = s.Phase == v1.AlertProcessing && !LeaseLive(s, now)
	return e
}

// Renew extends the holder's lease from now by ttl (zero keeps the current
// duration). Only the holder of a live lease may renew.
func Renew(s *v1.AlertStatus, owner string, ttl time.Duration, now time.Time) error {
	if s.Phase != v1.AlertProcessing {
		return CheckHolder(s, owner, now)
	}
	if err := CheckHolder(s, owner, now); err != nil {
		return err
	}
	if ttl > 0 {
		s.Claim.LeaseDurationSeconds = leaseSeconds(ttl)
	}
	s.Claim.RenewTime = metav1.NewMicroTime(now)
	return nil
}

// Ack closes the Alert. A Processing Alert may only be acked by the holder
// of its live lease; a New or Failed one by anyone (a false positive, or
// resolved at source), and the ack records who.
func Ack(s *v1.AlertStatus, by, note string, now time.Time) error {
	switch s.Phase {
	case v1.AlertProcessing:
		if err := CheckHolder(s, by, now); err != nil {
			return err
		}
	case v1.AlertNew, v1.AlertFailed:
	default:
		return &PhaseError{Op: "ack", Phase: s.Phase}
	}
	s.Phase = v1.AlertAcked
	s.Ack = &v1.AlertAck{By: by, Note: note, At: metav1.NewTime(now)}
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionFalse, v1.ReasonAcked,
		fmt.Sprintf("acked by %s", by), 0, now)
	return nil
}

// Fail hands a Processing Alert back for a retry after retryAfter,
// recording the error. Only the holder of its live lease may fail it.
func Fail(s *v1.AlertStatus, owner, lastError string, retryAfter time.Duration, now time.Time) error {
	if err := CheckHolder(s, owner, now); err != nil {
		return err
	}
	at := metav1.NewTime(now.Add(max(retryAfter, 0)))
	s.Phase = v1.AlertFailed
	s.LastError = lastError
	s.RetryAfter = &at
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionFalse, v1.ReasonFailed,
		fmt.Sprintf("failed by %s; retry after %s", owner, at.UTC().Format(time.RFC3339)), 0, now)
	return nil
}

// leaseSeconds rounds ttl up to whole seconds within the CRD's bounds.
func leaseSeconds(ttl time.Duration) int32 {
	return int32(max(1, min(int64((ttl+time.Second-1)/time.Second), MaxLeaseSeconds)))
}

// ResolvedAtSource is the ack note of an Alert its source resolved.
const ResolvedAtSource = "resolved at source"

// Resolve records that the source says the alert is over: resolvedAt and the
// Resolved condition, and an ack by `by` when nobody holds the Alert (New or
// Failed). A Processing Alert stays with its holder, who decides. It reports
// whether anything changed.
func Resolve(s *v1.AlertStatus, by string, at, now time.Time) bool {
	if s.ResolvedAt != nil {
		return false
	}
	t := metav1.NewTime(at)
	s.ResolvedAt = &t
	setCondition(s, v1.AlertConditionResolved, metav1.ConditionTrue, v1.ReasonResolvedAtSource,
		fmt.Sprintf("%s resolved the alert at %s", by, at.UTC().Format(time.RFC3339)), 0, now)
	if s.Phase == v1.AlertNew || s.Phase == v1.AlertFailed {
		_ = Ack(s, by, ResolvedAtSource, now) // New and Failed are always ackable
	}
	return true
}
