// Package query answers the read questions of on-call over Alerts, Incidents
// and SLOPolicies — list with filters, the operational dashboard (counts by
// status, top signatures, latest alerts, open incidents, gates) — as pure
// functions over objects, so the CLI, the HTTP API and the page give the
// same answers.
package query

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Phases are the Alert phases in display order.
var Phases = []v1.AlertPhase{v1.AlertNew, v1.AlertProcessing, v1.AlertAcked, v1.AlertFailed, v1.AlertDeduplicated}

// ParsePhases reads phase names case-insensitively (new = New).
func ParsePhases(list []string) ([]v1.AlertPhase, error) {
	var out []v1.AlertPhase
	for _, s := range list {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			i := slices.IndexFunc(Phases, func(p v1.AlertPhase) bool { return strings.EqualFold(string(p), part) })
			if i < 0 {
				return nil, fmt.Errorf("unknown phase %q (want New, Processing, Acked, Failed or Deduplicated)", part)
			}
			out = append(out, Phases[i])
		}
	}
	return out, nil
}

// LastSeen is when the Alert last fired.
func LastSeen(a *v1.Alert) time.Time {
	if a.Status.LastSeenAt != nil {
		return a.Status.LastSeenAt.Time
	}
	return a.CreationTimestamp.Time
}

// AlertFilter is the Alert list's filter; zero fields match everything.
type AlertFilter struct {
	// Window keeps Alerts last seen inside it; 0 keeps all.
	Window  time.Duration
	Phases  []v1.AlertPhase
	Env     string
	Source  string
	Service string
}

// Match reports whether a passes the filter at now.
func (f AlertFilter) Match(a *v1.Alert, now time.Time) bool {
	return (f.Window <= 0 || !LastSeen(a).Before(now.Add(-f.Window))) &&
		(len(f.Phases) == 0 || slices.Contains(f.Phases, a.Status.Phase)) &&
		(f.Env == "" || a.Spec.Env == f.Env) &&
		(f.Source == "" || a.Spec.Source == f.Source) &&
		(f.Service == "" || a.Spec.Service == f.Service)
}

// Alerts returns the Alerts passing f, last seen first.
func Alerts(items []v1.Alert, f AlertFilter, now time.Time) []v1.Alert {
	out := make([]v1.Alert, 0, len(items))
	for i := range items {
		if f.Match(&items[i], now) {
			out = append(out, items[i])
		}
	}
	slices.SortStableFunc(out, func(a, b v1.Alert) int {
		if c := LastSeen(&b).Compare(LastSeen(&a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// OpenIncidents returns the Open and Mitigating Incidents, of one service
// when given, most severe and then most recently active first.
func OpenIncidents(items []v1.Incident, service string) []v1.Incident {
	var out []v1.Incident
	for _, inc := range items {
		if inc.Spec.State.IsOpen() && (service == "" || inc.Spec.Service == service) {
			out = append(out, inc)
		}
	}
	slices.SortStableFunc(out, func(a, b v1.Incident) int {
		if c := cmp.Compare(a.Spec.Severity.Rank(), b.Spec.Severity.Rank()); c != 0 {
			return c
		}
		return activity(&b).Compare(activity(&a))
	})
	return out
}

func activity(inc *v1.Incident) time.Time {
	if inc.Status.LastActivityAt != nil {
		return inc.Status.LastActivityAt.Time
	}
	return inc.CreationTimestamp.Time
}
