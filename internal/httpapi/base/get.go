package base

import (
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/query"
)

// The reads of one object: GET /v1/incidents/{namespace}/{name} and
// GET /v1/alerts/{namespace}/{name}, the tool endpoint's incident_get and
// get actions and the MCP tools incidents_get and alerts_get. Each answers
// what a responder needs in one read, for a caller who may get the object
// (a SubjectAccessReview, as kubectl get would need).

// IncidentGetRequest is GET /v1/incidents/{namespace}/{name} as a tool input.
type IncidentGetRequest struct {
	Namespace  string `json:"namespace" jsonschema:"the Incident's namespace"`
	Name       string `json:"name" jsonschema:"the Incident's name"`
	Postmortem bool   `json:"postmortem,omitempty" jsonschema:"also draft the postmortem (Markdown) from the Incident as it is now; nothing is written"`
}

// AlertGetRequest is GET /v1/alerts/{namespace}/{name} as a tool input.
type AlertGetRequest struct {
	Namespace string `json:"namespace" jsonschema:"the Alert's namespace"`
	Name      string `json:"name" jsonschema:"the Alert's name"`
}

// IncidentDetail is one Incident: its spec and status as stored (the
// timeline, triage cooldown and runs, and the notifications sent are in
// status), the linked Alerts as they are now, and on request a postmortem
// draft.
type IncidentDetail struct {
	// IncidentRef is namespace/name.
	IncidentRef string            `json:"incidentRef"`
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Spec        v1.IncidentSpec   `json:"spec"`
	Status      v1.IncidentStatus `json:"status"`
	// Triage is status.triage read for a responder: the runs, the last run
	// and the signature's cooldown, and whether the operator has yet to
	// decide on the newest linked Alerts.
	Triage IncidentTriage `json:"triage"`
	// Alerts are the linked Alerts of status.alertRefs (the newest 100), in
	// that order.
	Alerts []LinkedAlert `json:"alerts"`
	// Postmortem is the Markdown postmortem draft of the Incident as it is
	// now, when asked for (postmortem=true); the operator stores the draft
	// of a closed Incident in a ConfigMap (status.postmortemRef).
	Postmortem string `json:"postmortem,omitempty"`
}

// LinkedAlert is one Alert an Incident links.
type LinkedAlert struct {
	// AlertRef is namespace/name.
	AlertRef string `json:"alertRef"`
	// Alert is the Alert as it is now: its phase, lease, attempts, last
	// error and occurrences. Absent when you may not get it (only the ref
	// is shown) or when it is gone.
	Alert *WorkAlert `json:"alert,omitempty"`
	// Gone is true when you may get the Alert but it is no longer in the
	// cluster (deleted, or not yet seen by the API's cache).
	Gone bool `json:"gone,omitempty"`
}

// AlertDetail is one Alert: its state, lease, attempts, last error,
// occurrences and first and last occurrence (the work queue's answer), and
// the Incident it is linked to.
type AlertDetail struct {
	WorkAlert
	// IncidentRef is namespace/name of the linked Incident (status.incidentRef).
	IncidentRef string `json:"incidentRef,omitempty"`
	// LinkedIncident is that Incident's summary, when you may get it.
	LinkedIncident *WorkIncident `json:"linkedIncident,omitempty"`
}

// WorkAlertOf is a as the work queue answers it.
func WorkAlertOf(a *v1.Alert) WorkAlert {
	w := WorkAlert{AlertItem: query.Item(a), AlertRef: a.Namespace + "/" + a.Name}
	s := &a.Status
	if s.Phase == v1.AlertProcessing && s.Claim != nil {
		w.Lease = &Lease{
			Owner: s.Claim.HolderIdentity, User: s.Claim.HolderUser,
			AcquiredAt: s.Claim.AcquireTime.UTC(), RenewedAt: s.Claim.RenewTime.UTC(),
			ExpiresAt: alertstate.LeaseExpiry(s).UTC(), DurationSeconds: s.Claim.LeaseDurationSeconds,
		}
	}
	if s.Phase == v1.AlertFailed && s.RetryAfter != nil {
		t := s.RetryAfter.UTC()
		w.RetryAfter = &t
	}
	return w
}

// WorkIncidentOf is inc as the work queue answers it.
func WorkIncidentOf(inc *v1.Incident) WorkIncident {
	return WorkIncident{
		IncidentInfo: query.IncidentSummary(inc), IncidentRef: inc.Namespace + "/" + inc.Name,
		Note: inc.Spec.Note, Signature: inc.Spec.Signature,
	}
}

// TriageOf is inc's triage state as read.
func TriageOf(inc *v1.Incident) IncidentTriage {
	out := IncidentTriage{Pending: incident.RefsUnseen(inc)}
	if t := inc.Status.Triage; t != nil {
		out.Runs, out.LastRunAlert = t.Runs, t.LastRunAlertRef
		if t.LastRunRef != nil {
			out.LastRun = t.LastRunRef.Name
		}
		if t.CooldownUntil != nil {
			at := t.CooldownUntil.UTC()
			out.CooldownUntil = &at
		}
	}
	return out
}
