package fingerprint

import (
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/policy"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestCanonical(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	pol := policy.Policy{} // the built-in dedupe TTL, 30m
	older := testbuild.MakeAlert("a", "").Created(t0).Phase(v1.AlertProcessing).LastSeen(t0.Add(time.Minute)).Obj()
	newer := testbuild.MakeAlert("b", "").Created(t0.Add(time.Second)).Phase(v1.AlertNew).LastSeen(t0.Add(2 * time.Minute)).Obj()
	acked := testbuild.MakeAlert("c", "").Created(t0.Add(2 * time.Second)).Phase(v1.AlertAcked).LastSeen(t0.Add(3 * time.Minute)).Obj()
	undecided := testbuild.MakeAlert("d", "").Created(t0.Add(3 * time.Second)).Obj()
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
		{"creation ties broken by name", []*v1.Alert{
			testbuild.MakeAlert("y", "").Created(t0).Phase(v1.AlertNew).LastSeen(t0).Obj(),
			testbuild.MakeAlert("x", "").Created(t0).Phase(v1.AlertNew).LastSeen(t0).Obj(),
		}, t0, "y"},
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
