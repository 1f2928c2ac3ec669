package testbuild

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// ReceiverWrapper builds a Receiver; start it with MakeReceiver and end it
// with Obj.
type ReceiverWrapper struct {
	objectMeta[*ReceiverWrapper]
	obj *v1.Receiver
}

// MakeReceiver is a webhook Receiver named name in ns (not yet created)
// that POSTs to https://hooks.example/alertbridge, signed with the key in
// Secret hook-key; valid as it stands (the API server defaults it to every
// Incident event). An empty name is generated, receiver-.
func MakeReceiver(name, ns string) *ReceiverWrapper {
	w := &ReceiverWrapper{obj: &v1.Receiver{
		ObjectMeta: newMeta(name, ns),
		Spec: v1.ReceiverSpec{
			Type:      v1.ReceiverWebhook,
			URL:       "https://hooks.example/alertbridge",
			SecretRef: v1.SecretKeyReference{Name: "hook-key"},
		},
	}}
	w.objectMeta = objectMeta[*ReceiverWrapper]{m: &w.obj.ObjectMeta, self: w}
	return w
}

// Obj is the Receiver built.
func (w *ReceiverWrapper) Obj() *v1.Receiver {
	if w.obj.Name == "" && w.obj.GenerateName == "" {
		w.obj.GenerateName = "receiver-"
	}
	return w.obj
}

// Type sets spec.type. A Slack Receiver's URL is in its Secret, so for
// slack it also clears spec.url, which must then be empty.
func (w *ReceiverWrapper) Type(t v1.ReceiverType) *ReceiverWrapper {
	w.obj.Spec.Type = t
	if t == v1.ReceiverSlack {
		w.obj.Spec.URL = ""
	}
	return w
}

// URL sets spec.url.
func (w *ReceiverWrapper) URL(u string) *ReceiverWrapper { w.obj.Spec.URL = u; return w }

// Secret sets spec.secretRef: the key ("" for the type's default) of
// Secret name.
func (w *ReceiverWrapper) Secret(name, key string) *ReceiverWrapper {
	w.obj.Spec.SecretRef = v1.SecretKeyReference{Name: name, Key: key}
	return w
}

// Events sets spec.events.
func (w *ReceiverWrapper) Events(events ...v1.NotificationEvent) *ReceiverWrapper {
	w.obj.Spec.Events = events
	return w
}

// Alerts sets spec.alerts: new Alerts of minSeverity or worse are
// announced too.
func (w *ReceiverWrapper) Alerts(minSeverity v1.Severity) *ReceiverWrapper {
	w.obj.Spec.Alerts = &v1.ReceiverAlerts{MinSeverity: minSeverity}
	return w
}

// GroupInterval sets spec.groupInterval.
func (w *ReceiverWrapper) GroupInterval(d time.Duration) *ReceiverWrapper {
	w.obj.Spec.GroupInterval = duration(d)
	return w
}

// Conditions adds status conditions.
func (w *ReceiverWrapper) Conditions(cs ...metav1.Condition) *ReceiverWrapper {
	w.obj.Status.Conditions = append(w.obj.Status.Conditions, cs...)
	return w
}
