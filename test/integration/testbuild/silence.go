package testbuild

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// SilenceWrapper builds a Silence; start it with MakeSilence and end it
// with Obj.
type SilenceWrapper struct {
	objectMeta[*SilenceWrapper]
	obj *v1.Silence
	// matched is set once the spec chose its matchers, which then replace
	// the default.
	matched bool
}

// MakeSilence is a Silence named name in ns (not yet created) of the
// gateway's Alerts (service=gateway), from its creation for an hour after
// now; valid as it stands (the API server fills in createdBy). An empty
// name is generated, silence-.
func MakeSilence(name, ns string) *SilenceWrapper {
	w := &SilenceWrapper{obj: &v1.Silence{
		ObjectMeta: newMeta(name, ns),
		Spec: v1.SilenceSpec{
			Matchers: []v1.SilenceMatcher{{Name: "service", Operator: v1.MatchEqual, Value: "gateway"}},
			EndsAt:   metav1.NewTime(time.Now().Add(time.Hour)),
			Comment:  "maintenance",
		},
	}}
	w.objectMeta = objectMeta[*SilenceWrapper]{m: &w.obj.ObjectMeta, self: w}
	return w
}

// Obj is the Silence built.
func (w *SilenceWrapper) Obj() *v1.Silence {
	if w.obj.Name == "" && w.obj.GenerateName == "" {
		w.obj.GenerateName = "silence-"
	}
	return w.obj
}

// Val is the Silence built, as a value (for []v1.Silence).
func (w *SilenceWrapper) Val() v1.Silence { return *w.Obj() }

// Matcher adds the matcher name op value; the first replaces the default
// service=gateway.
func (w *SilenceWrapper) Matcher(name string, op v1.MatchOperator, value string) *SilenceWrapper {
	return w.Matchers(append(w.own(), v1.SilenceMatcher{Name: name, Operator: op, Value: value})...)
}

// Matchers sets spec.matchers.
func (w *SilenceWrapper) Matchers(ms ...v1.SilenceMatcher) *SilenceWrapper {
	w.obj.Spec.Matchers, w.matched = ms, true
	return w
}

func (w *SilenceWrapper) own() []v1.SilenceMatcher {
	if !w.matched {
		return nil
	}
	return w.obj.Spec.Matchers
}

// StartsAt sets spec.startsAt.
func (w *SilenceWrapper) StartsAt(t time.Time) *SilenceWrapper {
	w.obj.Spec.StartsAt = timeRef(t)
	return w
}

// EndsAt sets spec.endsAt.
func (w *SilenceWrapper) EndsAt(t time.Time) *SilenceWrapper {
	w.obj.Spec.EndsAt = metav1.NewTime(t)
	return w
}

// Comment sets spec.comment.
func (w *SilenceWrapper) Comment(c string) *SilenceWrapper { w.obj.Spec.Comment = c; return w }

// CreatedBy sets spec.createdBy, which the API server fills in when absent
// and refuses when it names someone other than the requesting user.
func (w *SilenceWrapper) CreatedBy(user string) *SilenceWrapper {
	w.obj.Spec.CreatedBy = user
	return w
}

// State sets status.state.
func (w *SilenceWrapper) State(s v1.SilenceState) *SilenceWrapper { w.obj.Status.State = s; return w }

// Conditions adds status conditions.
func (w *SilenceWrapper) Conditions(cs ...metav1.Condition) *SilenceWrapper {
	w.obj.Status.Conditions = append(w.obj.Status.Conditions, cs...)
	return w
}
