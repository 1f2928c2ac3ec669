package alertstate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Caller is who works an Alert: the owner name an agent loop goes by (e.g.
// triage-supervisor, recorded as claim.holderIdentity) and the
// Kubernetes user the API server authenticated (claim.holderUser, ack.by).
// The API server's admission policy enforces the user; the owner lets one
// user run several loops that keep out of each other's leases.
type Caller struct {
	Owner string
	User  string
}

// NotHolderError is returned when someone other than the holder of a
// lease tries to renew, ack or fail a Processing Alert, or anyone tries it
// on an Alert that is not Processing (nobody holds it). The CLI maps it to
// exit code 3.
type NotHolderError struct {
	// Alert names the Alert, when known.
	Alert string
	// Caller is who asked.
	Caller Caller
	// Holder is who holds (or last held) the lease; empty without a claim.
	Holder Caller
	// Op is what the caller tried: renew, ack or fail.
	Op string
	// Phase is the Alert's phase when the caller asked.
	Phase v1.AlertPhase
	// Expired is true when the lease's end has passed and the operator has
	// yet to return the Alert to New; its holder still holds it until then.
	Expired bool
	// Until is when the lease ends (or ended).
	Until time.Time
}

func (e *NotHolderError) Error() string {
	alert := "the Alert"
	if e.Alert != "" {
		alert = "Alert " + e.Alert
	}
	until := e.Until.UTC().Format(time.RFC3339)
	switch {
	case e.Phase != v1.AlertProcessing:
		return fmt.Sprintf("status.claim: %s is %s, not Processing (last holder %s); nobody holds it, so it cannot be %s", alert, e.Phase, e.Holder, pastTense(e.Op))
	case e.Expired:
		return fmt.Sprintf("status.claim: %s is held by %s, whose lease ran out at %s; the operator returns it to New, then it may be claimed; only the holder may %s it", alert, e.Holder, until, e.Op)
	}
	return fmt.Sprintf("status.claim: %s is held by %s until %s; only the holder may %s it", alert, e.Holder, until, e.Op)
}

// String names a caller as the API server's refusals do: the user, and the
// owner name in brackets.
func (c Caller) String() string {
	switch {
	case c.User == "":
		return "owner " + c.Owner
	case c.Owner == "":
		return c.User
	}
	return c.User + " (owner " + c.Owner + ")"
}

func pastTense(op string) string {
	switch op {
	case "renew":
		return "renewed"
	case "fail":
		return "failed"
	}
	return op + "ed"
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

// SilencedError refuses a claim of an Alert an active Silence silences,
// in the words of the admission policy alertbridge-alert-status.
type SilencedError struct {
	// Alert is the Alert's name, when known.
	Alert string
	// Message is the Silenced condition's ("silenced by Silence NAME until T").
	Message string
}

func (e *SilencedError) Error() string {
	name := "the Alert"
	if e.Alert != "" {
		name = "Alert " + e.Alert
	}
	return fmt.Sprintf("status.phase: %s is %s; nobody claims it until the Silence ends", name, e.Message)
}

// Holder is who holds (or last held) the Alert's lease.
func Holder(s *v1.AlertStatus) Caller {
	if s.Claim == nil {
		return Caller{}
	}
	return Caller{Owner: s.Claim.HolderIdentity, User: s.Claim.HolderUser}
}

// CheckHolder returns nil when c holds the lease of a Processing Alert,
// else a *NotHolderError naming the holder. A lease is held until the
// operator returns the Alert to New: a claim takes New Alerts only, so
// nobody else can hold it meanwhile, and no client's clock (now is only for
// the wording) decides that the holder may no longer renew, ack or fail it
// (docs/adr/lease-bounds.md). The API server enforces the user part; this
// check answers early, in the same words, and keeps loops of one user with
// different owner names apart.
func CheckHolder(s *v1.AlertStatus, c Caller, op string, now time.Time) error {
	if s.Phase == v1.AlertProcessing && s.Claim != nil && Holder(s) == c {
		return nil
	}
	return &NotHolderError{
		Caller: c, Holder: Holder(s), Op: op, Phase: s.Phase, Until: LeaseExpiry(s),
		Expired: s.Phase == v1.AlertProcessing && !LeaseLive(s, now),
	}
}

// Renew extends the holder's lease from now by ttl (zero keeps the current
// duration). Only the holder may renew. renewTime never moves back, as the
// API server requires: a caller whose clock is behind the last renewTime
// (the operator's, after it shortened the lease) renews from that instead.
func Renew(s *v1.AlertStatus, c Caller, ttl time.Duration, now time.Time) error {
	if err := CheckHolder(s, c, "renew", now); err != nil {
		return err
	}
	if ttl > 0 {
		s.Claim.LeaseDurationSeconds = leaseSeconds(ttl)
	}
	if t := metav1.NewMicroTime(now.Truncate(time.Microsecond)); t.After(s.Claim.RenewTime.Time) {
		s.Claim.RenewTime = t
	}
	return nil
}

// Ack closes the Alert, recording c.User in ack.by. A Processing Alert may
// only be acked by the holder of its lease; a New or Failed one by anyone
// the API server lets (on-call: a false positive; the operator: resolved at
// source).
func Ack(s *v1.AlertStatus, c Caller, note string, now time.Time) error {
	switch s.Phase {
	case v1.AlertProcessing:
		if err := CheckHolder(s, c, "ack", now); err != nil {
			return err
		}
	case v1.AlertNew, v1.AlertFailed:
	default:
		return &PhaseError{Op: "ack", Phase: s.Phase}
	}
	s.Phase = v1.AlertAcked
	s.Ack = &v1.AlertAck{By: c.User, Note: note, At: metav1.NewTime(now)}
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionFalse, v1.ReasonAcked,
		fmt.Sprintf("acked by %s", c), 0, now)
	return nil
}

// Fail hands a Processing Alert back for a retry after retryAfter,
// recording the error. Only the holder of its lease may fail it.
func Fail(s *v1.AlertStatus, c Caller, lastError string, retryAfter time.Duration, now time.Time) error {
	if err := CheckHolder(s, c, "fail", now); err != nil {
		return err
	}
	at := metav1.NewTime(now.Add(max(retryAfter, 0)))
	s.Phase = v1.AlertFailed
	s.LastError = lastError
	s.RetryAfter = &at
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionFalse, v1.ReasonFailed,
		fmt.Sprintf("failed by %s; retry after %s", c, at.UTC().Format(time.RFC3339)), 0, now)
	return nil
}

// RequeueBy moves a Processing Alert (whoever holds it: the lease is
// released and the claim cleared) or a Failed one (retry now) back to New
// by hand, recording c.User, reason and now in status.requeued. The API
// server lets only users with the virtual verb requeue on alerts/status
// (on-call) do it. attempts is kept: it counts claims.
func RequeueBy(s *v1.AlertStatus, c Caller, reason string, now time.Time) error {
	if strings.TrimSpace(reason) == "" {
		return errors.New("a requeue needs a reason")
	}
	if s.Phase != v1.AlertProcessing && s.Phase != v1.AlertFailed {
		return &PhaseError{Op: "requeue", Phase: s.Phase}
	}
	from := s.Phase
	s.Phase = v1.AlertNew
	s.Claim = nil
	s.Requeued = &v1.AlertRequeue{By: c.User, Reason: reason, At: metav1.NewTime(now)}
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionFalse, v1.ReasonRequeued,
		fmt.Sprintf("requeued from %s by %s: %s", from, c.User, reason), 0, now)
	return nil
}

// leaseSeconds rounds ttl up to whole seconds within the CRD's bounds.
func leaseSeconds(ttl time.Duration) int32 {
	return int32(max(1, min(int64((ttl+time.Second-1)/time.Second), MaxLeaseSeconds)))
}

// MaxClockSkew is how far ahead of the operator's clock a renewTime may lie
// before the operator shortens the lease: clocks of well-run machines agree
// far better than this, and a claim seen a moment after it was written lies
// behind, never ahead.
const MaxClockSkew = 5 * time.Second

// CapSeconds is the longest lease, in the whole seconds leaseDurationSeconds
// holds, that a namespace's maxLeaseDuration allows: rounded down, so that
// a lease of that length is never refused by the API server.
func CapSeconds(maxLease time.Duration) int32 {
	return int32(max(1, min(int64(maxLease/time.Second), MaxLeaseSeconds)))
}

// Clamp bounds a Processing Alert's lease by the operator's clock (now) and
// the namespace's ceiling (maxLease), which the API server cannot do for a
// renewTime, having no clock, nor for a lease in a namespace without an
// AlertRoutingPolicy. When renewTime lies more than MaxClockSkew ahead of
// now, or leaseDurationSeconds is longer than the ceiling, the lease is
// rewritten to start now (acquireTime no later) and to last no longer than
// the ceiling: it then ends at most maxLease after now. It never ends later
// than it did. It reports why it changed the lease ("" when it did not) and
// says so in the Claimed condition.
func Clamp(s *v1.AlertStatus, maxLease time.Duration, now time.Time) string {
	if s.Phase != v1.AlertProcessing || s.Claim == nil {
		return ""
	}
	c := s.Claim
	limit := CapSeconds(maxLease)
	ahead := c.RenewTime.Sub(now) > MaxClockSkew
	long := c.LeaseDurationSeconds > limit
	if !ahead && !long {
		return ""
	}
	at := metav1.NewMicroTime(now.Truncate(time.Microsecond))
	// Whole seconds left of the lease as written, rounded down: starting it
	// now must not make it end later.
	left := int32(max(0, min(int64(LeaseExpiry(s).Sub(at.Time)/time.Second), MaxLeaseSeconds)))
	seconds := min(c.LeaseDurationSeconds, limit, left)
	if seconds < 1 {
		return "" // it ends within the second: the timer returns it to New
	}
	var why []string
	if ahead {
		why = append(why, fmt.Sprintf("renewTime %s was ahead of the operator's clock (%s)",
			c.RenewTime.UTC().Format(metav1.RFC3339Micro), at.UTC().Format(metav1.RFC3339Micro)))
	}
	if long {
		why = append(why, fmt.Sprintf("leaseDurationSeconds %d was longer than the namespace's maxLeaseDuration %s", c.LeaseDurationSeconds, maxLease))
	}
	c.RenewTime = at
	if c.AcquireTime.After(at.Time) {
		c.AcquireTime = at
	}
	c.LeaseDurationSeconds = seconds
	// The condition keeps this until the phase changes (a renewal may not
	// touch it), so it says when, not only what.
	msg := fmt.Sprintf("at %s the operator shortened the lease to end at %s: %s", at.UTC().Format(time.RFC3339),
		LeaseExpiry(s).UTC().Format(time.RFC3339), strings.Join(why, ", and "))
	setCondition(s, v1.AlertConditionClaimed, metav1.ConditionTrue, v1.ReasonLeaseHeld,
		fmt.Sprintf("claimed by %s; %s", Holder(s), msg), 0, now)
	return msg
}

// ResolvedAtSource is the ack note of an Alert its source resolved.
const ResolvedAtSource = "resolved at source"

// Fired records that a firing instance of the source (its hashed,
// caller-scoped key) was counted into the Alert. Past MaxFiringInstances
// instances it only counts them as untracked.
func Fired(s *v1.AlertStatus, instance string) {
	if instance == "" {
		return
	}
	if s.Firing == nil {
		s.Firing = &v1.AlertFiring{}
	}
	switch f := s.Firing; {
	case slices.Contains(f.Instances, instance):
	case len(f.Instances) < v1.MaxFiringInstances:
		f.Instances = append(f.Instances, instance)
	default:
		f.Untracked++
	}
}

// Resolve records that the source ended one firing instance. The Alert is
// resolved at source (resolvedAt, the Resolved condition, and an ack by `by`
// when nobody holds it) only once every one of its occurrences came from a
// tracked instance and all of them resolved: a resolution must not close
// occurrences someone else reported. A Processing Alert stays with its
// holder, who decides. It reports whether anything changed.
func Resolve(s *v1.AlertStatus, instance string, by Caller, at, now time.Time) bool {
	f := s.Firing
	if f == nil || !slices.Contains(f.Instances, instance) {
		return false
	}
	f.Instances = slices.DeleteFunc(slices.Clone(f.Instances), func(k string) bool { return k == instance })
	f.Resolved++
	if len(f.Instances) > 0 || f.Untracked > 0 || f.Resolved < s.Occurrences || s.ResolvedAt != nil {
		return true
	}
	t := metav1.NewTime(at)
	s.ResolvedAt = &t
	setCondition(s, v1.AlertConditionResolved, metav1.ConditionTrue, v1.ReasonResolvedAtSource,
		fmt.Sprintf("%s resolved all %d firing instances; the last at %s", by.User, f.Resolved, at.UTC().Format(time.RFC3339)), 0, now)
	if s.Phase == v1.AlertNew || s.Phase == v1.AlertFailed {
		_ = Ack(s, by, ResolvedAtSource, now) // New and Failed are always ackable
	}
	return true
}
