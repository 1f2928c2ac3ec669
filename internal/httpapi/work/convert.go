package work

import (
	"cmp"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/incident"
)

// Bounds of the work queue's fields.
const (
	// maxOwner, maxNote, maxLastError and maxIncidentNote match the CRD bounds.
	maxOwner        = 253
	maxNote         = 1024
	maxLastError    = 4096
	maxIncidentNote = 4096
)

func workAlert(a *v1.Alert) base.WorkAlert { return base.WorkAlertOf(a) }

func workIncident(inc *v1.Incident) base.WorkIncident { return base.WorkIncidentOf(inc) }

func toIncidentResult(alertRef string, res *incident.Result) base.ToIncidentResult {
	return base.ToIncidentResult{
		AlertRef: alertRef, Incident: workIncident(res.Incident), Created: res.Created, Appended: res.Appended,
		Triage: base.TriageOf(res.Incident),
	}
}

// owner is the lease holder name a request gives, else the caller's user.
func owner(given string, u *base.User) string { return cmp.Or(given, u.Username) }
