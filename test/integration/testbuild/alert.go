package testbuild

import (
	"maps"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// AlertWrapper builds an Alert; start it with MakeAlert and end it with Obj.
type AlertWrapper struct {
	objectMeta[*AlertWrapper]
	obj *v1.Alert
}

// MakeAlert is the gateway's p95 latency Alert named name in ns, as a
// monitor would create it (not yet created), valid as it stands. An empty
// name is generated from the service and kind when Obj is called.
func MakeAlert(name, ns string) *AlertWrapper {
	w := &AlertWrapper{obj: &v1.Alert{
		ObjectMeta: newMeta(name, ns),
		Spec: v1.AlertSpec{
			Service: "gateway",
			Kind:    "latency",
			Title:   "p95 above 300ms",
			Source:  "monitor@node1",
		},
	}}
	w.objectMeta = objectMeta[*AlertWrapper]{m: &w.obj.ObjectMeta, self: w}
	return w
}

// Obj is the Alert built. Without a name it gets a generated one,
// <service>-<kind>-.
func (w *AlertWrapper) Obj() *v1.Alert {
	if w.obj.Name == "" && w.obj.GenerateName == "" {
		w.obj.GenerateName = dns.ReplaceAllString(strings.ToLower(w.obj.Spec.Service+"-"+w.obj.Spec.Kind), "-") + "-"
	}
	return w.obj
}

// Val is the Alert built, as a value (for []v1.Alert).
func (w *AlertWrapper) Val() v1.Alert { return *w.Obj() }

// Service sets spec.service.
func (w *AlertWrapper) Service(s string) *AlertWrapper { w.obj.Spec.Service = s; return w }

// Env sets spec.env (the API server defaults it to prod).
func (w *AlertWrapper) Env(e string) *AlertWrapper { w.obj.Spec.Env = e; return w }

// Kind sets spec.kind.
func (w *AlertWrapper) Kind(k string) *AlertWrapper { w.obj.Spec.Kind = k; return w }

// Severity sets spec.severity (the API server defaults it to P3).
func (w *AlertWrapper) Severity(s v1.Severity) *AlertWrapper { w.obj.Spec.Severity = s; return w }

// Title sets spec.title.
func (w *AlertWrapper) Title(t string) *AlertWrapper { w.obj.Spec.Title = t; return w }

// Message sets spec.message.
func (w *AlertWrapper) Message(m string) *AlertWrapper { w.obj.Spec.Message = m; return w }

// Source sets spec.source; "" leaves it out.
func (w *AlertWrapper) Source(s string) *AlertWrapper { w.obj.Spec.Source = s; return w }

// Labels adds the spec label pairs k1, v1, k2, v2, ….
func (w *AlertWrapper) Labels(kv ...string) *AlertWrapper {
	if w.obj.Spec.Labels == nil {
		w.obj.Spec.Labels = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		w.obj.Spec.Labels[kv[i]] = kv[i+1]
	}
	return w
}

// LabelMap adds spec labels; a nil map adds none.
func (w *AlertWrapper) LabelMap(labels map[string]string) *AlertWrapper {
	if labels == nil {
		return w
	}
	if w.obj.Spec.Labels == nil {
		w.obj.Spec.Labels = map[string]string{}
	}
	maps.Copy(w.obj.Spec.Labels, labels)
	return w
}

// Host sets the spec label host, which makes the Alert's fingerprint
// differ from another host's.
func (w *AlertWrapper) Host(h string) *AlertWrapper { return w.Labels("host", h) }

// Fingerprint sets spec.fingerprint, the override of the computed one.
func (w *AlertWrapper) Fingerprint(fp string) *AlertWrapper { w.obj.Spec.Fingerprint = fp; return w }

// DedupeTTL sets spec.dedupeTTL.
func (w *AlertWrapper) DedupeTTL(d time.Duration) *AlertWrapper {
	w.obj.Spec.DedupeTTL = duration(d)
	return w
}

// Phase sets status.phase. The API server wants the fields a phase needs
// beside it (Claim, Ack, RetryAfter, DuplicateOf).
func (w *AlertWrapper) Phase(p v1.AlertPhase) *AlertWrapper { w.obj.Status.Phase = p; return w }

// StatusFingerprint sets status.fingerprint, the effective fingerprint.
func (w *AlertWrapper) StatusFingerprint(fp string) *AlertWrapper {
	w.obj.Status.Fingerprint = fp
	return w
}

// Occurrences sets status.occurrences.
func (w *AlertWrapper) Occurrences(n int64) *AlertWrapper { w.obj.Status.Occurrences = n; return w }

// FirstSeen sets status.firstSeenAt.
func (w *AlertWrapper) FirstSeen(t time.Time) *AlertWrapper {
	w.obj.Status.FirstSeenAt = timeRef(t)
	return w
}

// LastSeen sets status.lastSeenAt.
func (w *AlertWrapper) LastSeen(t time.Time) *AlertWrapper {
	w.obj.Status.LastSeenAt = timeRef(t)
	return w
}

// DuplicateOf sets status.duplicateOf, the canonical it was folded into.
func (w *AlertWrapper) DuplicateOf(name string) *AlertWrapper {
	w.obj.Status.DuplicateOf = name
	return w
}

// Claim sets status.claim.
func (w *AlertWrapper) Claim(c *v1.AlertClaim) *AlertWrapper { w.obj.Status.Claim = c; return w }

// Attempts sets status.attempts, the claims so far.
func (w *AlertWrapper) Attempts(n int32) *AlertWrapper { w.obj.Status.Attempts = n; return w }

// LastError sets status.lastError.
func (w *AlertWrapper) LastError(e string) *AlertWrapper { w.obj.Status.LastError = e; return w }

// RetryAfter sets status.retryAfter.
func (w *AlertWrapper) RetryAfter(t time.Time) *AlertWrapper {
	w.obj.Status.RetryAfter = timeRef(t)
	return w
}

// Ack sets status.ack: by acked at at, saying note.
func (w *AlertWrapper) Ack(by, note string, at time.Time) *AlertWrapper {
	w.obj.Status.Ack = &v1.AlertAck{By: by, Note: note, At: metav1.NewTime(at)}
	return w
}

// ResolvedAt sets status.resolvedAt.
func (w *AlertWrapper) ResolvedAt(t time.Time) *AlertWrapper {
	w.obj.Status.ResolvedAt = timeRef(t)
	return w
}

// IncidentRef sets status.incidentRef.
func (w *AlertWrapper) IncidentRef(name string) *AlertWrapper {
	w.obj.Status.IncidentRef = &v1.LocalObjectReference{Name: name}
	return w
}

// Conditions adds status conditions.
func (w *AlertWrapper) Conditions(cs ...metav1.Condition) *AlertWrapper {
	w.obj.Status.Conditions = append(w.obj.Status.Conditions, cs...)
	return w
}

// Silenced adds the condition Silenced=True, reason SilenceActive, with
// message (a silence's "silenced by Silence … until …").
func (w *AlertWrapper) Silenced(message string) *AlertWrapper {
	return w.Conditions(metav1.Condition{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue,
		Reason: v1.ReasonSilenceActive, Message: message})
}
