// Package alertstate is the Alert work-queue state machine as pure functions
// over AlertStatus. The controller, the claim library and the HTTP API all
// move Alerts through these functions, so the transitions, conditions and
// bookkeeping are the same whoever writes them. The API server enforces the
// same transition table with CEL; these functions never produce a transition
// it would refuse. Writer is the one path that writes what they decide.
package alertstate

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// LeaseExpiry is when the current claim ends; zero without a claim.
func LeaseExpiry(s *v1.AlertStatus) time.Time {
	if s.Claim == nil {
		return time.Time{}
	}
	return s.Claim.RenewTime.Add(time.Duration(s.Claim.LeaseDurationSeconds) * time.Second)
}

// LeaseLive reports whether a Processing Alert's lease has yet to reach its
// end at now. Past it, the operator returns the Alert to New; until the
// operator has, the holder still holds it (see CheckHolder).
func LeaseLive(s *v1.AlertStatus, now time.Time) bool {
	return s.Phase == v1.AlertProcessing && s.Claim != nil && now.Before(LeaseExpiry(s))
}

// Claimable reports whether a claimer may take the Alert: only New ones,
// and not while a Silence silences it (the condition Silenced, which the
// admission policy alertbridge-alert-status enforces for every client).
// An expired lease and a due retry come back as New on the operator's
// timers, so no claim depends on a claimer's clock.
func Claimable(s *v1.AlertStatus) bool { return s.Phase == v1.AlertNew && !Silenced(s) }

// Silenced reports whether an active Silence silences the Alert, as the
// operator last decided (the condition Silenced).
func Silenced(s *v1.AlertStatus) bool {
	return meta.IsStatusConditionTrue(s.Conditions, v1.AlertConditionSilenced)
}

// MarkCanonical is the controller's first decision for an Alert that folds
// into nothing: it becomes New with one occurrence.
func MarkCanonical(s *v1.AlertStatus, fp string, created metav1.Time, generation int64) {
	s.Phase = v1.AlertNew
	s.Fingerprint = fp
	s.Occurrences = 1
	s.FirstSeenAt = created.DeepCopy()
	s.LastSeenAt = created.DeepCopy()
	s.ObservedGeneration = generation
}

// MarkDuplicate is the controller's first decision for an Alert folded into
// canonical.
func MarkDuplicate(s *v1.AlertStatus, fp, canonical string, created metav1.Time, generation int64, now time.Time) {
	s.Phase = v1.AlertDeduplicated
	s.Fingerprint = fp
	s.DuplicateOf = canonical
	s.FirstSeenAt = created.DeepCopy()
	s.LastSeenAt = created.DeepCopy()
	s.ObservedGeneration = generation
	setCondition(s, v1.AlertConditionDeduplicated, metav1.ConditionTrue, v1.ReasonFolded,
		fmt.Sprintf("folded into canonical Alert %s", canonical), generation, now)
}

// Requeue returns a Processing Alert whose lease expired, or a Failed Alert
// whose retryAfter came, to New. It reports the reason, or "" when the Alert
// is not due.
func Requeue(s *v1.AlertStatus, generation int64, now time.Time) string {
	var reason, msg string
	switch {
	case s.Phase == v1.AlertProcessing && s.Claim != nil && !LeaseLive(s, now):
		reason = v1.ReasonLeaseExpired
		msg = fmt.Sprintf("lease of %s expired at %s", s.Claim.HolderIdentity, LeaseExpiry(s).UTC().Format(time.RFC3339Nano))
	case s.Phase == v1.AlertFailed && (s.RetryAfter == nil || !now.Before(s.RetryAfter.Time)):
		reason = v1.ReasonRetryDue
		msg = "retryAfter passed; the Alert is claimable again"
	default:
		return ""
	}
	s.Phase = v1.AlertNew
	s.ObservedGeneration = generation
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionFalse, reason, msg, generation, now)
	return reason
}

// NextDeadline is when the controller must look at the Alert again on its
// own: lease expiry for Processing, retryAfter for Failed; zero otherwise.
func NextDeadline(s *v1.AlertStatus) time.Time {
	switch s.Phase {
	case v1.AlertProcessing:
		return LeaseExpiry(s)
	case v1.AlertFailed:
		if s.RetryAfter != nil {
			return s.RetryAfter.Time
		}
	}
	return time.Time{}
}

// DeduplicatedAt is when the Alert was folded; zero if it was not.
func DeduplicatedAt(s *v1.AlertStatus) time.Time {
	c := meta.FindStatusCondition(s.Conditions, v1.AlertConditionDeduplicated)
	if s.Phase != v1.AlertDeduplicated || c == nil {
		return time.Time{}
	}
	return c.LastTransitionTime.Time
}

// MaxLeaseSeconds is the longest lease the CRD accepts.
const MaxLeaseSeconds = 86400

// Claim takes the Alert for c for ttl at now. The caller must write with a
// resourceVersion precondition.
func Claim(s *v1.AlertStatus, c Caller, ttl time.Duration, now time.Time) error {
	if s.Phase == v1.AlertNew && Silenced(s) {
		return &SilencedError{Message: meta.FindStatusCondition(s.Conditions, v1.AlertConditionSilenced).Message}
	}
	if !Claimable(s) {
		return &PhaseError{Op: "claim", Phase: s.Phase}
	}
	transitions := int32(0)
	if s.Claim != nil {
		transitions = s.Claim.LeaseTransitions + 1
	}
	t := metav1.NewMicroTime(now)
	s.Phase = v1.AlertProcessing
	s.Claim = &v1.AlertClaim{
		HolderIdentity:       c.Owner,
		HolderUser:           c.User,
		AcquireTime:          t,
		RenewTime:            t,
		LeaseDurationSeconds: leaseSeconds(ttl),
		LeaseTransitions:     transitions,
	}
	s.Attempts++
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionTrue, v1.ReasonLeaseHeld,
		fmt.Sprintf("claimed by %s", c), 0, now)
	return nil
}

// setCondition keeps lastTransitionTime on the injected clock so tests that
// run on a fake clock see consistent times.
func setCondition(s *v1.AlertStatus, typ string, status metav1.ConditionStatus, reason, msg string, gen int64, now time.Time) {
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: gen,
		LastTransitionTime: metav1.NewTime(now),
	})
}
