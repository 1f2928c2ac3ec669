package mirror

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/alertbridge/alertbridge/internal/metrics"
)

// Health tracks the objects whose latest state is not yet in PostgreSQL
// because a write failed. One Health belongs to one manager: the wiring
// creates it, hands it to Setup (the reconcilers report to it, the status
// controller reads it) and to metrics.RegisterMirror, whose gauges read it
// at scrape time.
type Health struct {
	enabled bool
	clock   clock.PassiveClock

	mu      sync.Mutex
	pending map[string]time.Time // first failed write per kind/namespace/name
}

// NewHealth is the Health of a mirror that runs (enabled) or not; clk
// measures the lag (nil: the real clock).
func NewHealth(enabled bool, clk clock.PassiveClock) *Health {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Health{enabled: enabled, clock: clk, pending: map[string]time.Time{}}
}

var _ metrics.MirrorHealth = &Health{}

// Enabled says whether the mirror runs.
func (h *Health) Enabled() bool { return h.enabled }

func pendingKey(kind string, key types.NamespacedName) string { return kind + "/" + key.String() }

func (h *Health) failed(kind string, key types.NamespacedName, now time.Time) {
	metrics.MirrorWrites.WithLabelValues(kind, "error").Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.pending[pendingKey(kind, key)]; !ok {
		h.pending[pendingKey(kind, key)] = now
	}
}

func (h *Health) written(kind string, key types.NamespacedName) {
	metrics.MirrorWrites.WithLabelValues(kind, "ok").Inc()
	h.forget(kind, key)
}

// forget drops an object that is gone: nothing is pending for it any more.
func (h *Health) forget(kind string, key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, pendingKey(kind, key))
}

// Lag returns the number of pending objects and the age of the oldest.
func (h *Health) Lag() (int, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var oldest time.Time
	for _, t := range h.pending {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if oldest.IsZero() {
		return 0, 0
	}
	return len(h.pending), h.clock.Since(oldest)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
