package testbuild

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// IncidentWrapper builds an Incident; start it with MakeIncident and end it
// with Obj.
type IncidentWrapper struct {
	objectMeta[*IncidentWrapper]
	obj *v1.Incident
}

// MakeIncident is an Incident of the gateway named name in ns (not yet
// created), valid as it stands; the API server defaults it to Open, P3 in
// prod. An empty name is generated, <service>-.
func MakeIncident(name, ns string) *IncidentWrapper {
	w := &IncidentWrapper{obj: &v1.Incident{
		ObjectMeta: newMeta(name, ns),
		Spec:       v1.IncidentSpec{Service: "gateway", Title: "gateway is slow"},
	}}
	w.objectMeta = objectMeta[*IncidentWrapper]{m: &w.obj.ObjectMeta, self: w}
	return w
}

// Obj is the Incident built.
func (w *IncidentWrapper) Obj() *v1.Incident {
	if w.obj.Name == "" && w.obj.GenerateName == "" {
		w.obj.GenerateName = w.obj.Spec.Service + "-"
	}
	return w.obj
}

// Val is the Incident built, as a value (for []v1.Incident).
func (w *IncidentWrapper) Val() v1.Incident { return *w.Obj() }

// Service sets spec.service.
func (w *IncidentWrapper) Service(s string) *IncidentWrapper { w.obj.Spec.Service = s; return w }

// Env sets spec.env.
func (w *IncidentWrapper) Env(e string) *IncidentWrapper { w.obj.Spec.Env = e; return w }

// Severity sets spec.severity.
func (w *IncidentWrapper) Severity(s v1.Severity) *IncidentWrapper { w.obj.Spec.Severity = s; return w }

// Title sets spec.title.
func (w *IncidentWrapper) Title(t string) *IncidentWrapper { w.obj.Spec.Title = t; return w }

// Signature sets spec.signature.
func (w *IncidentWrapper) Signature(s string) *IncidentWrapper { w.obj.Spec.Signature = s; return w }

// State sets spec.state.
func (w *IncidentWrapper) State(s v1.IncidentState) *IncidentWrapper { w.obj.Spec.State = s; return w }

// Note sets spec.note, which closing needs.
func (w *IncidentWrapper) Note(n string) *IncidentWrapper { w.obj.Spec.Note = n; return w }

// ObservedState sets status.observedState.
func (w *IncidentWrapper) ObservedState(s v1.IncidentState) *IncidentWrapper {
	w.obj.Status.ObservedState = s
	return w
}

// OpenedAt sets status.openedAt.
func (w *IncidentWrapper) OpenedAt(t time.Time) *IncidentWrapper {
	w.obj.Status.OpenedAt = timeRef(t)
	return w
}

// ResolvedAt sets status.resolvedAt.
func (w *IncidentWrapper) ResolvedAt(t time.Time) *IncidentWrapper {
	w.obj.Status.ResolvedAt = timeRef(t)
	return w
}

// ClosedAt sets status.closedAt.
func (w *IncidentWrapper) ClosedAt(t time.Time) *IncidentWrapper {
	w.obj.Status.ClosedAt = timeRef(t)
	return w
}

// LastActivity sets status.lastActivityAt.
func (w *IncidentWrapper) LastActivity(t time.Time) *IncidentWrapper {
	w.obj.Status.LastActivityAt = timeRef(t)
	return w
}

// AlertCount sets status.alertCount.
func (w *IncidentWrapper) AlertCount(n int64) *IncidentWrapper { w.obj.Status.AlertCount = n; return w }

// Triage sets status.triage.
func (w *IncidentWrapper) Triage(t *v1.TriageStatus) *IncidentWrapper {
	w.obj.Status.Triage = t
	return w
}

// Timeline appends status.timeline entries.
func (w *IncidentWrapper) Timeline(entries ...v1.TimelineEntry) *IncidentWrapper {
	w.obj.Status.Timeline = append(w.obj.Status.Timeline, entries...)
	return w
}

// TimelineSeq sets status.timelineSeq, the seq of the newest entry.
func (w *IncidentWrapper) TimelineSeq(seq int64) *IncidentWrapper {
	w.obj.Status.TimelineSeq = seq
	return w
}

// Notifications appends status.notifications.
func (w *IncidentWrapper) Notifications(n ...v1.IncidentNotification) *IncidentWrapper {
	w.obj.Status.Notifications = append(w.obj.Status.Notifications, n...)
	return w
}

// Conditions adds status conditions.
func (w *IncidentWrapper) Conditions(cs ...metav1.Condition) *IncidentWrapper {
	w.obj.Status.Conditions = append(w.obj.Status.Conditions, cs...)
	return w
}
