package mirror

import (
	"testing"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestAckedAlertOutlivesItsKeys(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	acked := func(keyed bool) *v1.Alert {
		a := testbuild.MakeAlert("a", "prod").Phase(v1.AlertAcked).LastSeen(t0).Ack("agent-1", "", t0.Add(time.Minute)).Obj()
		if keyed {
			alertstate.AddKeys(&a.Status, t0, "0123456789abcdef")
		}
		return a
	}
	for _, tc := range []struct {
		name      string
		keyed     bool
		retention time.Duration
		want      time.Time
	}{
		{"no keys: the retention alone", false, time.Minute, t0.Add(2 * time.Minute)},
		{"keys outlive a short retention", true, time.Minute, t0.Add(alertstate.KeyWindow)},
		{"a long retention outlives the keys", true, time.Hour, t0.Add(time.Minute + time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, ok := alertKind.deletableAt(acked(tc.keyed), tc.retention)
			if !ok || !at.Equal(tc.want) {
				t.Errorf("deletable at %s (%v), want %s", at, ok, tc.want)
			}
		})
	}
}
