package notify

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Announcing new Alerts (spec.alerts) works on a watermark: a Receiver's
// status.alerts.notifiedThrough says every Alert that came into play up
// to then was announced. A digest covers the Alerts that came into play
// after it, up to a cutoff; once delivered (or given up) the watermark
// moves to the cutoff. An Alert comes into play when it is created, or
// when its Silence ends (the Silenced condition turning False), so an
// Alert silenced when it fired is announced when its Silence ends if it
// is still live then.

// Settle is how long after an Alert came into play a digest may include
// it, so that an Alert created just before a cut, but not yet in the
// operator's cache, is not passed over by the watermark.
const Settle = 2 * time.Second

// Silenced reports whether a's Silenced condition is True.
func Silenced(a *v1.Alert) bool {
	return meta.IsStatusConditionTrue(a.Status.Conditions, v1.AlertConditionSilenced)
}

// CameIntoPlay is when Alert a came into play for r's announcements: its
// creation, or the end of its Silence if later. ok is false when a is not
// to be announced now: not a live canonical Alert (New, Processing,
// Failed), silenced, below spec.alerts.minSeverity, or of a service or
// env r does not take.
func CameIntoPlay(a *v1.Alert, r *v1.Receiver) (time.Time, bool) {
	if r.Spec.Alerts == nil || !a.Status.Phase.Absorbing() || Silenced(a) {
		return time.Time{}, false
	}
	sev := a.Spec.Severity
	if sev == "" {
		sev = v1.SeverityP3
	}
	if !Matches(r, a.Spec.Service, a.Spec.Env, sev, r.Spec.Alerts.MinSeverity) {
		return time.Time{}, false
	}
	t := a.CreationTimestamp.Time
	if c := meta.FindStatusCondition(a.Status.Conditions, v1.AlertConditionSilenced); c != nil && c.LastTransitionTime.After(t) {
		t = c.LastTransitionTime.Time
	}
	return t, true
}

// Cutoff is the latest time a digest cut at now may cover: Settle ago,
// in whole seconds (what status keeps), and before every Alert the
// controller has not decided yet (it may become a new canonical Alert).
func Cutoff(alerts []v1.Alert, now time.Time) time.Time {
	c := now.Add(-Settle).Truncate(time.Second)
	for i := range alerts {
		a := &alerts[i]
		if a.Status.Phase == "" {
			if t := a.CreationTimestamp.Add(-time.Second); t.Before(c) {
				c = t
			}
		}
	}
	return c
}

// InDigest returns the Alerts r announces that came into play after
// after and up to through, oldest first.
func InDigest(alerts []v1.Alert, r *v1.Receiver, after, through time.Time) []v1.Alert {
	var out []v1.Alert
	for i := range alerts {
		t, ok := CameIntoPlay(&alerts[i], r)
		if ok && t.After(after) && !t.After(through) {
			out = append(out, alerts[i])
		}
	}
	slices.SortStableFunc(out, func(a, b v1.Alert) int {
		ta, _ := CameIntoPlay(&a, r)
		tb, _ := CameIntoPlay(&b, r)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// NextIncluded is the earliest time at which an Alert r announces that
// came into play after through may go into a digest; zero when none.
func NextIncluded(alerts []v1.Alert, r *v1.Receiver, through time.Time) time.Time {
	var next time.Time
	for i := range alerts {
		t, ok := CameIntoPlay(&alerts[i], r)
		if !ok || !t.After(through) {
			continue
		}
		// Settle after it, rounded up to the next whole second.
		at := t.Truncate(time.Second).Add(Settle + time.Second)
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// DigestKey is a digest's identity at the receiver (Idempotency-Key):
// the Receiver's UID and the digest's cutoff, which only grows.
func DigestKey(receiverUID string, through time.Time) string {
	return fmt.Sprintf("%s/alerts/%d", receiverUID, through.Unix())
}

// NewDigest is the digest of n Alerts up to through, due at now.
func NewDigest(receiverUID string, through time.Time, n int, now time.Time) *v1.AlertDigest {
	d := &v1.AlertDigest{Key: DigestKey(receiverUID, through), Through: metav1.NewTime(through), Alerts: int32(min(n, 1<<30))} //nolint:gosec // bounded by min to fit int32
	Due(&d.DeliveryAttempts, now)
	return d
}
