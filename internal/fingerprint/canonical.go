package fingerprint

// Canonical is the one rule that decides which Alert absorbs an occurrence
// of a fingerprint. The Alert controller applies it when it folds Alerts
// created by anyone; the HTTP intake applies it before it counts a batch
// into a canonical Alert. Only the controller decides Alerts that are new:
// the intake either counts into the canonical this rule names, or creates
// an Alert and leaves its decision to the controller.

import (
	"cmp"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Canonical is the Alert among alerts (all of one fingerprint and
// namespace) that absorbs an occurrence seen at `at`: the newest decided
// Alert in an absorbing phase (New, Processing, Failed) whose lastSeenAt
// plus its dedupe TTL is not before `at`. Nil means the occurrence starts a
// new Alert. An Acked canonical absorbs nothing: the next firing is new.
func Canonical(alerts []*v1.Alert, pol policy.Policy, at time.Time) *v1.Alert {
	var newest *v1.Alert
	for _, a := range alerts {
		if a.DeletionTimestamp != nil || !a.Status.Phase.Absorbing() || a.Status.LastSeenAt == nil {
			continue
		}
		if newest == nil || ByCreation(newest, a) < 0 {
			newest = a
		}
	}
	if newest == nil || at.After(newest.Status.LastSeenAt.Add(pol.DedupeTTL(newest))) {
		return nil
	}
	return newest
}

// ByCreation orders Alerts oldest first; the name breaks ties, since
// creationTimestamp has second resolution. Every process sees one order.
func ByCreation(a, b *v1.Alert) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}
