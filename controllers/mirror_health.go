package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// mirrorHealth tracks the objects whose latest state is not yet in
// PostgreSQL because a write failed, and feeds the mirror's metrics.
type mirrorHealth struct {
	mu      sync.Mutex
	enabled bool
	pending map[string]time.Time // first failed write per kind/namespace/name
	clock   func() time.Time
}

var (
	// health is process-wide because metrics are registered once;
	// SetupAll resets it for each manager.
	health = &mirrorHealth{pending: map[string]time.Time{}, clock: time.Now}

	mirrorWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alertbridge_mirror_writes_total",
		Help: "PostgreSQL mirror writes by kind and result (ok, error).",
	}, []string{"kind", "result"})
)

func init() {
	metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "alertbridge_mirror_enabled",
			Help: "1 when the PostgreSQL mirror is on, 0 when no ALERT_DATABASE_URL or DATABASE_URL is set.",
		}, func() float64 { return boolGauge(health.isEnabled()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "alertbridge_mirror_pending_objects",
			Help: "Objects whose latest state is not in PostgreSQL because a write failed (e.g. the database is down).",
		}, func() float64 { n, _ := health.lag(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "alertbridge_mirror_lag_seconds",
			Help: "How long the oldest pending object has waited for its row; 0 when the mirror is caught up.",
		}, func() float64 { _, d := health.lag(); return d.Seconds() }),
		mirrorWrites,
	)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (h *mirrorHealth) reset(enabled bool, now func() time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.enabled, h.pending, h.clock = enabled, map[string]time.Time{}, now
}

func (h *mirrorHealth) isEnabled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.enabled
}

func pendingKey(kind string, key types.NamespacedName) string { return kind + "/" + key.String() }

func (h *mirrorHealth) failed(kind string, key types.NamespacedName, now time.Time) {
	mirrorWrites.WithLabelValues(kind, "error").Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.pending[pendingKey(kind, key)]; !ok {
		h.pending[pendingKey(kind, key)] = now
	}
}

func (h *mirrorHealth) written(kind string, key types.NamespacedName) {
	mirrorWrites.WithLabelValues(kind, "ok").Inc()
	h.forget(kind, key)
}

// forget drops an object that is gone: nothing is pending for it any more.
func (h *mirrorHealth) forget(kind string, key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.pending, pendingKey(kind, key))
}

// lag returns the number of pending objects and the age of the oldest.
func (h *mirrorHealth) lag() (int, time.Duration) {
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
	return len(h.pending), h.clock().Sub(oldest)
}
