package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeHealth struct {
	enabled bool
	pending int
	lag     time.Duration
}

func (h fakeHealth) Enabled() bool             { return h.enabled }
func (h fakeHealth) Lag() (int, time.Duration) { return h.pending, h.lag }

// TestRegisterMirror checks that the mirror's gauges read the health they
// are given at scrape time, and that a second manager in the process (as
// in tests) reports its own mirror from its registration on.
func TestRegisterMirror(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	names := []string{"alertbridge_mirror_enabled", "alertbridge_mirror_pending_objects", "alertbridge_mirror_lag_seconds"}
	live := &fakeHealth{enabled: true}
	for _, c := range []struct {
		health MirrorHealth
		change func()
		want   []float64
	}{
		{health: live, want: []float64{1, 0, 0}},
		// Read at scrape time: a change shows without registering again.
		{health: live, change: func() { live.pending, live.lag = 3, 1500*time.Millisecond }, want: []float64{1, 3, 1.5}},
		{health: fakeHealth{}, want: []float64{0, 0, 0}},
		{health: nil, want: []float64{0, 0, 0}},
		{health: fakeHealth{enabled: true, pending: 1, lag: time.Second}, want: []float64{1, 1, 1}},
	} {
		if c.change != nil {
			c.change()
		} else if err := registerMirror(reg, c.health); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
		for i, n := range names {
			if v, ok := got[n]; !ok || v != c.want[i] {
				t.Errorf("with %+v: %s = %v (reported: %v), want %v", c.health, n, v, ok, c.want[i])
			}
		}
	}
}
