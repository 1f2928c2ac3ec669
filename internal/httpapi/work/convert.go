package work

import (
	"cmp"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/query"
)

// Bounds of the work queue's fields.
const (
	// maxOwner, maxNote, maxLastError and maxIncidentNote match the CRD bounds.
	maxOwner        = 253
	maxNote         = 1024
	maxLastError    = 4096
	maxIncidentNote = 4096
)

func workAlert(a *v1.Alert) base.WorkAlert {
	w := base.WorkAlert{AlertItem: query.Item(a), AlertRef: a.Namespace + "/" + a.Name}
	s := &a.Status
	if s.Phase == v1.AlertProcessing && s.Claim != nil {
		w.Lease = &base.Lease{
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

func workIncident(inc *v1.Incident) base.WorkIncident {
	return base.WorkIncident{
		IncidentInfo: query.IncidentSummary(inc), IncidentRef: inc.Namespace + "/" + inc.Name,
		Note: inc.Spec.Note, Signature: inc.Spec.Signature,
	}
}

func toIncidentResult(alertRef string, res *incident.Result) base.ToIncidentResult {
	out := base.ToIncidentResult{
		AlertRef: alertRef, Incident: workIncident(res.Incident), Created: res.Created, Appended: res.Appended,
		Triage: base.IncidentTriage{Pending: incident.RefsUnseen(res.Incident)},
	}
	if t := res.Incident.Status.Triage; t != nil {
		out.Triage.Runs, out.Triage.LastRunAlert = t.Runs, t.LastRunAlertRef
		if t.LastRunRef != nil {
			out.Triage.LastRun = t.LastRunRef.Name
		}
		if t.CooldownUntil != nil {
			at := t.CooldownUntil.UTC()
			out.Triage.CooldownUntil = &at
		}
	}
	return out
}

// owner is the lease holder name a request gives, else the caller's user.
func owner(given string, u *base.User) string { return cmp.Or(given, u.Username) }
