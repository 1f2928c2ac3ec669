package testbuild

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// AlertRoutingPolicyWrapper builds an AlertRoutingPolicy; start it with
// MakeAlertRoutingPolicy and end it with Obj.
type AlertRoutingPolicyWrapper struct {
	objectMeta[*AlertRoutingPolicyWrapper]
	obj *v1.AlertRoutingPolicy
}

// MakeAlertRoutingPolicy is the AlertRoutingPolicy of ns (not yet created):
// named default, as the API server requires, with every field at its
// default.
func MakeAlertRoutingPolicy(ns string) *AlertRoutingPolicyWrapper {
	w := &AlertRoutingPolicyWrapper{obj: &v1.AlertRoutingPolicy{ObjectMeta: newMeta(v1.RoutingPolicyName, ns)}}
	w.objectMeta = objectMeta[*AlertRoutingPolicyWrapper]{m: &w.obj.ObjectMeta, self: w}
	return w
}

// Obj is the AlertRoutingPolicy built.
func (w *AlertRoutingPolicyWrapper) Obj() *v1.AlertRoutingPolicy { return w.obj }

// DedupeTTL sets spec.dedupeTTL.
func (w *AlertRoutingPolicyWrapper) DedupeTTL(d time.Duration) *AlertRoutingPolicyWrapper {
	w.obj.Spec.DedupeTTL = duration(d)
	return w
}

// ProcessingLockTTL sets spec.processingLockTTL, the default lease.
func (w *AlertRoutingPolicyWrapper) ProcessingLockTTL(d time.Duration) *AlertRoutingPolicyWrapper {
	w.obj.Spec.ProcessingLockTTL = duration(d)
	return w
}

// MaxLeaseDuration sets spec.maxLeaseDuration, the longest lease.
func (w *AlertRoutingPolicyWrapper) MaxLeaseDuration(d time.Duration) *AlertRoutingPolicyWrapper {
	w.obj.Spec.MaxLeaseDuration = duration(d)
	return w
}

// RetryAfter sets spec.retryAfter.
func (w *AlertRoutingPolicyWrapper) RetryAfter(d time.Duration) *AlertRoutingPolicyWrapper {
	w.obj.Spec.RetryAfter = duration(d)
	return w
}

// TriageCooldown sets spec.triageCooldown.
func (w *AlertRoutingPolicyWrapper) TriageCooldown(d time.Duration) *AlertRoutingPolicyWrapper {
	w.obj.Spec.TriageCooldown = duration(d)
	return w
}

// AllowedKinds sets spec.allowedKinds.
func (w *AlertRoutingPolicyWrapper) AllowedKinds(kinds ...string) *AlertRoutingPolicyWrapper {
	w.obj.Spec.AllowedKinds = kinds
	return w
}

func (w *AlertRoutingPolicyWrapper) incident() *v1.IncidentPolicy {
	if w.obj.Spec.Incident == nil {
		w.obj.Spec.Incident = &v1.IncidentPolicy{}
	}
	return w.obj.Spec.Incident
}

// AutoIncident converts Alerts of minSeverity or worse into Incidents at
// minOccurrences (spec.incident.auto).
func (w *AlertRoutingPolicyWrapper) AutoIncident(minOccurrences int64, minSeverity v1.Severity) *AlertRoutingPolicyWrapper {
	w.incident().Auto = &v1.AutoIncident{MinOccurrences: minOccurrences, MinSeverity: minSeverity}
	return w
}

// SeverityCap sets spec.incident.severityCap.
func (w *AlertRoutingPolicyWrapper) SeverityCap(s v1.Severity) *AlertRoutingPolicyWrapper {
	w.incident().SeverityCap = s
	return w
}

// IncidentDedupeWindow sets spec.incident.dedupeWindow.
func (w *AlertRoutingPolicyWrapper) IncidentDedupeWindow(d time.Duration) *AlertRoutingPolicyWrapper {
	w.incident().DedupeWindow = duration(d)
	return w
}

func (w *AlertRoutingPolicyWrapper) triage() *v1.TriagePolicy {
	if w.obj.Spec.Triage == nil {
		w.obj.Spec.Triage = &v1.TriagePolicy{}
	}
	return w.obj.Spec.Triage
}

// TriageJob has triage run tmpl as a Job under the ServiceAccount sa ("" for
// none).
func (w *AlertRoutingPolicyWrapper) TriageJob(sa string, tmpl *batchv1.JobTemplateSpec) *AlertRoutingPolicyWrapper {
	w.triage().ServiceAccountName, w.triage().JobTemplate = sa, tmpl
	return w
}

// TriageWebhook has triage POST runs to url, with the token of Secret
// secret ("" for none).
func (w *AlertRoutingPolicyWrapper) TriageWebhook(url, secret string) *AlertRoutingPolicyWrapper {
	hook := &v1.TriageWebhook{URL: url}
	if secret != "" {
		hook.SecretRef = &v1.LocalObjectReference{Name: secret}
	}
	w.triage().Webhook = hook
	return w
}

// Retention sets spec.retention: finished objects stay inCluster, rows
// database (0 leaves either at its default).
func (w *AlertRoutingPolicyWrapper) Retention(inCluster, database time.Duration) *AlertRoutingPolicyWrapper {
	r := &v1.RetentionPolicy{}
	if inCluster > 0 {
		r.ResolvedInCluster = duration(inCluster)
	}
	if database > 0 {
		r.Database = duration(database)
	}
	w.obj.Spec.Retention = r
	return w
}

// SilenceMaxDuration sets spec.silences.maxDuration.
func (w *AlertRoutingPolicyWrapper) SilenceMaxDuration(d time.Duration) *AlertRoutingPolicyWrapper {
	w.obj.Spec.Silences = &v1.SilencePolicy{MaxDuration: duration(d)}
	return w
}

// Alertmanager sets spec.alertmanager.
func (w *AlertRoutingPolicyWrapper) Alertmanager(m *v1.AlertmanagerMapping) *AlertRoutingPolicyWrapper {
	w.obj.Spec.Alertmanager = m
	return w
}

// Conditions adds status conditions.
func (w *AlertRoutingPolicyWrapper) Conditions(cs ...metav1.Condition) *AlertRoutingPolicyWrapper {
	w.obj.Status.Conditions = append(w.obj.Status.Conditions, cs...)
	return w
}
