package fingerprint

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/policy"
)

func alert(name string, created time.Time, phase v1.AlertPhase, lastSeen time.Time) *v1.Alert {
	a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}}
	a.Status.Phase = phase
	if !lastSeen.IsZero() {
		a.Status.LastSeenAt = &metav1.Time{Time: lastSeen}
	}
	return a
}

func TestCanonical(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	pol := policy.Policy{} // the built-in dedupe TTL, 30m
	older := alert("a", t0, v1.AlertProcessing, t0.Add(time.Minute))
	newer := alert("b", t0.Add(time.Second), v1.AlertNew, t0.Add(2*time.Minute))
	acked := alert("c", t0.Add(2*time.Second), v1.AlertAcked, t0.Add(3*time.Minute))
	undecided := alert("d", t0.Add(3*time.Second), "", time.Time{})
	for _, tc := range []struct {
		name   string
		alerts []*v1.Alert
		at     time.Time
		want   string // the canonical's name; empty for none
	}{
		{"nothing to absorb", nil, t0, ""},
		{"the newest absorbing one", []*v1.Alert{older, newer, acked, undecided}, t0.Add(5 * time.Minute), "b"},
		{"exactly at the TTL still folds", []*v1.Alert{newer}, t0.Add(32 * time.Minute), "b"},
		{"past the TTL starts a new Alert", []*v1.Alert{newer}, t0.Add(32*time.Minute + time.Nanosecond), ""},
		{"Acked and undecided absorb nothing", []*v1.Alert{acked, undecided}, t0, ""},
		{"creation ties broken by name", []*v1.Alert{alert("y", t0, v1.AlertNew, t0), alert("x", t0, v1.AlertNew, t0)}, t0, "y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if c := Canonical(tc.alerts, pol, tc.at); c != nil {
				got = c.Name
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
