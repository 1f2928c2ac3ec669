// Package notify decides what a namespace's Receivers are told about its
// Incidents and new Alerts, builds the messages (PagerDuty Events API v2,
// Slack incoming webhooks, signed JSON webhooks) and sends them under the
// rules of internal/outbound. It knows nothing of reconcilers; the
// decisions are pure functions over an Incident, a Receiver and the record
// of what was sent (status.notifications), so a restart decides the same.
//
// The model is level-based: a Receiver is owed the difference between the
// Incident as it is and what that Receiver was last told (its latest
// delivered notification). A notification not yet delivered when the
// Incident moves on is replaced by one of the latest state, so changes
// during an outage or inside the Receiver's groupInterval coalesce into
// one message; a storm of Alerts on one signature is one Incident, and so
// one "opened".
package notify

import (
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
)

// Bounds of the record in an Incident's status.
const (
	// MaxHistory is how many notifications status keeps beyond each
	// Receiver's latest (which is always kept: it is what that Receiver
	// was told).
	MaxHistory = 32
	// MaxReceivers is how many Receivers (in name order) notify one
	// Incident; with MaxHistory it keeps status.notifications within the
	// CRD's 64 items.
	MaxReceivers = 64
)

// Delivery: one POST per attempt, the waits doubling from the
// controller's first backoff up to MaxBackoff; with the default 2s first
// wait, Attempts attempts span about 80 minutes, enough for a receiver's
// outage to end before anything is given up.
const (
	Attempts   = 24
	MaxBackoff = 5 * time.Minute
	// DefaultGroupInterval is spec.groupInterval's default.
	DefaultGroupInterval = 10 * time.Second
)

// Subscribed reports whether r is sent event e (a nil spec.events, which
// the API server defaults, means every Incident event).
func Subscribed(r *v1.Receiver, e v1.NotificationEvent) bool {
	if r.Spec.Events == nil {
		return slices.Contains(v1.IncidentEvents, e)
	}
	return slices.Contains(r.Spec.Events, e)
}

// GroupInterval is r's spec.groupInterval, or its default.
func GroupInterval(r *v1.Receiver) time.Duration {
	if g := r.Spec.GroupInterval; g != nil {
		return max(g.Duration, 0)
	}
	return DefaultGroupInterval
}

// Matches reports whether r takes something of service and env at sev,
// given the least severity min ("" takes all).
func Matches(r *v1.Receiver, service, env string, sev, minSev v1.Severity) bool {
	return (minSev == "" || sev.AtLeast(minSev)) &&
		(len(r.Spec.Services) == 0 || slices.Contains(r.Spec.Services, service)) &&
		(len(r.Spec.Envs) == 0 || slices.Contains(r.Spec.Envs, env))
}

// Key is the notification's identity at the receiver (the webhook's
// Idempotency-Key): the Incident's UID, the Receiver, the notification's
// number and its event. It is the same on every attempt and after a
// restart, since all four are in the Incident's status or decided again
// the same way from it; two Receivers pointing at one endpoint never share
// one.
func Key(incidentUID, receiver string, seq int32, e v1.NotificationEvent) string {
	return fmt.Sprintf("%s/%s/%d/%s", incidentUID, fingerprint.Hash("receiver:" + receiver)[:8], seq, strings.ToLower(string(e)))
}

// DedupKey is the PagerDuty dedup_key of an Incident: its UID, so every
// trigger, acknowledge and resolve of one Incident, retried or re-sent
// after a restart, lands on one PagerDuty alert.
func DedupKey(incidentUID string) string { return "alertbridge-" + incidentUID }

// Pending reports whether d is still to be delivered (an attempt is due).
func Pending(d *v1.DeliveryAttempts) bool { return d.DeliveredAt == nil && d.NextAttemptAt != nil }

// GivenUp reports whether d was neither delivered nor is to be retried.
func GivenUp(d *v1.DeliveryAttempts) bool { return d.DeliveredAt == nil && d.NextAttemptAt == nil }

// Latest is the receiver's newest notification in entries (highest seq);
// told is its newest delivered one. Either may be nil.
func Latest(entries []v1.IncidentNotification, receiver string) (latest, told *v1.IncidentNotification) {
	for i := range entries {
		e := &entries[i]
		if e.Receiver != receiver {
			continue
		}
		if latest == nil || e.Seq > latest.Seq {
			latest = e
		}
		if e.DeliveredAt != nil && (told == nil || e.Seq > told.Seq) {
			told = e
		}
	}
	return latest, told
}

// want is what r should know of inc now, given what it was last told: the
// event that brings it there, or ok false when it knows enough.
type want struct {
	event    v1.NotificationEvent
	state    v1.IncidentState
	severity v1.Severity
}

func wanted(inc *v1.Incident, r *v1.Receiver, told *v1.IncidentNotification) (want, bool) {
	state, sev := inc.Spec.State, inc.Spec.Severity
	base := told
	if base == nil {
		// Nothing delivered yet: an Incident is announced when it opened
		// after the Receiver existed and matches its filters, while it is
		// open; a Receiver not sent Opened starts from the Incident as it
		// opened, and hears of its next change.
		opened := inc.Status.OpenedAt
		if opened == nil || opened.Before(&r.CreationTimestamp) || !Matches(r, inc.Spec.Service, inc.Spec.Env, sev, r.Spec.MinSeverity) {
			return want{}, false
		}
		if Subscribed(r, v1.NotifyOpened) {
			if !state.IsOpen() {
				return want{}, false
			}
			return want{v1.NotifyOpened, v1.IncidentOpen, sev}, true
		}
		base = &v1.IncidentNotification{State: v1.IncidentOpen, Severity: sev}
	}
	if state != base.State {
		e := stateEvent(state)
		// PagerDuty already resolved the alert on Resolved.
		skip := r.Spec.Type == v1.ReceiverPagerDuty && e == v1.NotifyClosed && base.State == v1.IncidentResolved
		if Subscribed(r, e) && !skip {
			return want{e, state, sev}, true
		}
	}
	if state.IsOpen() && sev.Rank() < base.Severity.Rank() && Subscribed(r, v1.NotifySeverityRaised) {
		return want{v1.NotifySeverityRaised, base.State, sev}, true
	}
	return want{}, false
}

func stateEvent(s v1.IncidentState) v1.NotificationEvent {
	switch s {
	case v1.IncidentResolved:
		return v1.NotifyResolved
	case v1.IncidentClosed:
		return v1.NotifyClosed
	}
	return v1.NotifyStateChanged
}

func (w want) is(e *v1.IncidentNotification) bool {
	return e != nil && e.Event == w.event && e.State == w.state && e.Severity == w.severity
}

// Plan is what one Receiver is owed about one Incident.
type Plan struct {
	// Entry is the notification to attempt at Due: the pending one, or a
	// new one (which replaces a pending one it supersedes). Nil: nothing
	// to send.
	Entry *v1.IncidentNotification
	Due   time.Time
	// Superseded is the seq of a pending notification to drop: the
	// Incident moved on before it was delivered (Entry, if any, says the
	// latest instead). Zero: none.
	Superseded int32
}

// PlanFor decides what r is owed about inc, given entries (inc's record
// of notifications, with whatever the caller knows to be more recent).
// A new notification waits for the Receiver's groupInterval after the
// last delivered one, so changes inside it coalesce; the first is not
// delayed. A pending notification keeps its own retry time.
func PlanFor(inc *v1.Incident, entries []v1.IncidentNotification, r *v1.Receiver, now time.Time) Plan {
	latest, told := Latest(entries, r.Name)
	w, ok := wanted(inc, r, told)
	pending := latest != nil && Pending(&latest.DeliveryAttempts)
	var p Plan
	switch {
	case ok && w.is(latest) && pending:
		p.Entry = latest.DeepCopy()
		p.Due = latest.NextAttemptAt.Time
		return p
	case ok && w.is(latest): // delivered, or given up: not again
		return p
	case !ok:
		if pending {
			p.Superseded = latest.Seq
		}
		return p
	}
	var seq int32 = 1
	if latest != nil {
		seq = latest.Seq + 1
	}
	p.Entry = &v1.IncidentNotification{
		Receiver: r.Name, Event: w.event, Seq: seq, State: w.state, Severity: w.severity,
		Key: Key(string(inc.UID), r.Name, seq, w.event),
	}
	p.Due = now
	if told != nil {
		p.Due = told.DeliveredAt.Add(GroupInterval(r))
	}
	if pending {
		p.Superseded = latest.Seq
		p.Due = Later(p.Due, latest.NextAttemptAt.Time) // keep its backoff
	}
	if w.event == v1.NotifyOpened && inc.Status.AlertCount == 0 && len(inc.Status.AlertRefs) == 0 {
		// A conversion creates the Incident, then appends its Alert to the
		// status: announce it with that Alert, unless none comes (an
		// Incident created by hand) within OpenedGrace.
		p.Due = Later(p.Due, inc.CreationTimestamp.Add(OpenedGrace))
	}
	p.Due = Later(p.Due, now)
	return p
}

// OpenedGrace is how long an Incident without Alerts waits to be announced
// for its first Alert to be appended.
const OpenedGrace = 5 * time.Second

// Later is the later of a and b.
func Later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Upsert puts e into entries in place of the receiver's notification of
// the same seq, or of the one it supersedes, else at the end.
func Upsert(entries []v1.IncidentNotification, e v1.IncidentNotification, superseded int32) []v1.IncidentNotification {
	out := slices.DeleteFunc(slices.Clone(entries), func(x v1.IncidentNotification) bool {
		return x.Receiver == e.Receiver && (x.Seq == e.Seq || (superseded != 0 && x.Seq == superseded))
	})
	return append(out, e)
}

// Drop removes the receiver's notification seq from entries.
func Drop(entries []v1.IncidentNotification, receiver string, seq int32) []v1.IncidentNotification {
	return slices.DeleteFunc(slices.Clone(entries), func(x v1.IncidentNotification) bool {
		return x.Receiver == receiver && x.Seq == seq
	})
}

// Bound keeps entries within the CRD's bound: every Receiver's latest
// notification and every pending one, then the newest others up to
// MaxHistory in all. Order (oldest first) is kept.
func Bound(entries []v1.IncidentNotification) []v1.IncidentNotification {
	if len(entries) <= MaxHistory {
		return entries
	}
	keep := make([]bool, len(entries))
	kept := 0
	for i := range entries {
		latest, _ := Latest(entries, entries[i].Receiver)
		if latest == &entries[i] || Pending(&entries[i].DeliveryAttempts) {
			keep[i] = true
			kept++
		}
	}
	for i := len(entries) - 1; i >= 0 && kept < MaxHistory; i-- {
		if !keep[i] {
			keep[i] = true
			kept++
		}
	}
	out := make([]v1.IncidentNotification, 0, kept)
	for i := range entries {
		if keep[i] {
			out = append(out, entries[i])
		}
	}
	return out
}
