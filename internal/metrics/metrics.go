// Package metrics defines alertbridge's Prometheus metrics. They are
// registered on controller-runtime's registry, so /metrics serves them next
// to the controller and workqueue metrics behind the same authn/authz
// filter. Every label has a small, fixed set of values.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/version"
)

// Ingest paths.
const (
	PathAPI          = "api"
	PathAlertmanager = "alertmanager"
)

var (
	// IngestOccurrences counts occurrences accepted over HTTP, by path and by
	// whether they were folded into an existing Alert.
	IngestOccurrences = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alertbridge_ingest_occurrences_total",
		Help: "Alert occurrences accepted over the HTTP API, by path and whether they were deduplicated.",
	}, []string{"path", "deduped"})

	// IngestReplays counts requests answered from an idempotency key.
	IngestReplays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alertbridge_ingest_replays_total",
		Help: "Ingest requests whose idempotency key (or Alertmanager firing instance) was already counted.",
	}, []string{"path"})

	// IngestRejected counts items refused as invalid.
	IngestRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alertbridge_ingest_rejected_total",
		Help: "Ingested items refused as invalid.",
	}, []string{"path"})

	// Folds counts duplicates the Alert controller folded into a canonical.
	Folds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "alertbridge_dedupe_folds_total",
		Help: "Duplicate Alerts folded into their canonical Alert by the controller.",
	})

	// Requeues counts Alerts the controller returned to New, by reason
	// (LeaseExpired, RetryDue).
	Requeues = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alertbridge_alert_requeues_total",
		Help: "Alerts returned to New by the controller: expired claims (LeaseExpired) and due retries (RetryDue).",
	}, []string{"reason"})
)

// IntakeCommitSeconds is how long the intake takes to make one batch of a
// fingerprint durable: its reads, its write (or the create and the wait for
// the controller's decision of a new fingerprint), and retries after
// conflicts. An HTTP ingest request waits about one commit.
var IntakeCommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "alertbridge_intake_commit_seconds",
	Help:    "Time the HTTP intake took to make one batch of occurrences of a fingerprint durable.",
	Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
})

// IntakeBatchOccurrences is how many occurrences one intake commit counted.
var IntakeBatchOccurrences = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "alertbridge_intake_batch_occurrences",
	Help:    "Occurrences the HTTP intake counted with one write (group commit).",
	Buckets: prometheus.ExponentialBuckets(1, 2, 11),
})

// IntakeForwarded counts the occurrences an HTTP API replica sent to the
// replica that counts them (the holder of the intake Lease), by outcome:
// counted there, counted here because the owner could not be reached
// (nothing was sent), or unconfirmed (sent, and no answer came back).
var IntakeForwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "alertbridge_intake_forwarded_total",
	Help: "Occurrences an HTTP API replica sent to the replica that counts them, by outcome (counted, local, unconfirmed).",
}, []string{"outcome"})

// IntakeResolutionsForwarded counts the ends of firing instances an HTTP
// API replica sent to the replica that counts their fingerprint, by
// outcome: resolved there, or resolved here because the owner could not
// be reached or did not answer (a resolution may be made twice).
var IntakeResolutionsForwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "alertbridge_intake_resolutions_forwarded_total",
	Help: "Ends of firing instances an HTTP API replica sent to the replica that counts them, by outcome (resolved, local).",
}, []string{"outcome"})

// HTTPRequests counts the HTTP API's answers by route (the path pattern
// that matched, or "unmatched"), method and status code.
var HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "alertbridge_http_requests_total",
	Help: "Requests the HTTP API answered, by route pattern, method and status code.",
}, []string{"route", "method", "code"})

// HTTPRequestSeconds is how long the HTTP API took to answer, by route and
// method: from 1 ms (a read from cache) to 16 s (a storm's queue).
var HTTPRequestSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "alertbridge_http_request_duration_seconds",
	Help:    "How long the HTTP API took to answer a request, by route pattern and method.",
	Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
}, []string{"route", "method"})

// HTTPInFlight is how many requests the HTTP API is answering now.
var HTTPInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "alertbridge_http_requests_in_flight",
	Help: "Requests the HTTP API is answering now.",
})

// TriageRuns counts triage runs the Incident controller dispatched (a
// Job, a webhook, or only recorded when neither is configured).
var TriageRuns = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "alertbridge_triage_runs_total",
	Help: "Triage runs dispatched by the Incident controller.",
})

// TriageCooldownSkips counts the operator's Incident openings and Alert
// appends that skipped triage because the signature was in its cooldown.
var TriageCooldownSkips = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "alertbridge_triage_cooldown_skips_total",
	Help: "Incidents opened or Alerts appended by the operator without triage because the signature was inside its cooldown.",
})

// TimelineSummarised counts Incident timeline entries folded into a
// Summary entry because the timeline was at its cap while PostgreSQL had
// not recorded them (the mirror behind or down). Each entry is counted
// once, by the process whose status write folded it.
var TimelineSummarised = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "alertbridge_incident_timeline_summarised_total",
	Help: "Incident timeline entries folded into a Summary entry at the timeline's cap before the mirror recorded them.",
})

// GateDecisions counts written SLOPolicy evaluations by gate decision
// (Allow, Warn, Block).
var GateDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "alertbridge_gate_decisions_total",
	Help: "SLOPolicy evaluations written, by release gate decision.",
}, []string{"decision"})

// MirrorFinalizerPolicyActive is 1 while the operator's periodic dry-run
// Alert (in its own namespace) comes back with the mirror finalizer, i.e.
// while the MutatingAdmissionPolicy of config/components/mirror-finalizer
// is in effect; 0 otherwise. Each replica reports its own check.
var MirrorFinalizerPolicyActive = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "alertbridge_mirror_finalizer_policy_active",
	Help: "1 when the mirror finalizer admission policy puts the finalizer on a dry-run Alert in the operator's namespace, 0 otherwise.",
})

// MirrorWrites counts the PostgreSQL mirror's writes by kind (alert,
// incident, slopolicy) and result (ok, error).
var MirrorWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "alertbridge_mirror_writes_total",
	Help: "PostgreSQL mirror writes by kind and result (ok, error).",
}, []string{"kind", "result"})

// MirrorUp is 1 while the mirror's status probe finds PostgreSQL answering
// and nothing pending.
var MirrorUp = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: "alertbridge_mirror_up",
	Help: "1 when PostgreSQL answers and no write is pending, 0 otherwise (or when the mirror is off).",
})

// MirrorHealth is the mirror's state that its gauges report at scrape time
// (controllers/mirror.Health).
type MirrorHealth interface {
	// Enabled says whether the mirror runs.
	Enabled() bool
	// Lag is the number of objects whose latest state is not in
	// PostgreSQL, and how long the oldest of them has waited.
	Lag() (pending int, oldest time.Duration)
}

// mirrorHealth reports a MirrorHealth as alertbridge_mirror_enabled,
// _pending_objects and _lag_seconds.
type mirrorHealth struct {
	enabled, pending, lag *prometheus.Desc

	mu     sync.Mutex
	health MirrorHealth
}

func newMirrorHealth(h MirrorHealth) *mirrorHealth {
	return &mirrorHealth{
		health: h,
		enabled: prometheus.NewDesc("alertbridge_mirror_enabled",
			"1 when the PostgreSQL mirror is on, 0 when no ALERT_DATABASE_URL or DATABASE_URL is set.", nil, nil),
		pending: prometheus.NewDesc("alertbridge_mirror_pending_objects",
			"Objects whose latest state is not in PostgreSQL because a write failed (e.g. the database is down).", nil, nil),
		lag: prometheus.NewDesc("alertbridge_mirror_lag_seconds",
			"How long the oldest pending object has waited for its row; 0 when the mirror is caught up.", nil, nil),
	}
}

func (c *mirrorHealth) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.enabled
	ch <- c.pending
	ch <- c.lag
}

func (c *mirrorHealth) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	h := c.health
	c.mu.Unlock()
	var (
		enabled float64
		pending int
		lag     time.Duration
	)
	if h != nil {
		if h.Enabled() {
			enabled = 1
		}
		pending, lag = h.Lag()
	}
	ch <- prometheus.MustNewConstMetric(c.enabled, prometheus.GaugeValue, enabled)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag.Seconds())
}

func (c *mirrorHealth) set(h MirrorHealth) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.health = h
}

// RegisterMirror adds the gauges of the mirror's health h to
// controller-runtime's registry. The registry is the process's, so when a
// second manager in one process (tests) registers its own mirror, the
// gauges report that one from then on.
func RegisterMirror(h MirrorHealth) error { return registerMirror(ctrlmetrics.Registry, h) }

func registerMirror(reg prometheus.Registerer, h MirrorHealth) error {
	err := reg.Register(newMirrorHealth(h))
	if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
		if c, ok := are.ExistingCollector.(*mirrorHealth); ok {
			c.set(h)
			return nil
		}
	}
	return err
}

// alertsByPhase reports the Alerts in the cache by phase at scrape time,
// so the gauge is never out of step with the cluster, and those of them a
// Silence silences (the condition Silenced=True on an Alert still in play:
// counted by phase all the same, but nobody claims or converts them).
type alertsByPhase struct {
	reader         client.Reader
	desc, silenced *prometheus.Desc
}

func (c *alertsByPhase) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.silenced
}

func (c *alertsByPhase) Collect(ch chan<- prometheus.Metric) {
	var list v1.AlertList
	if err := c.reader.List(context.Background(), &list); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		ch <- prometheus.NewInvalidMetric(c.silenced, err)
		return
	}
	counts := map[v1.AlertPhase]int{
		v1.AlertNew: 0, v1.AlertProcessing: 0, v1.AlertAcked: 0, v1.AlertFailed: 0, v1.AlertDeduplicated: 0,
	}
	silenced := map[v1.AlertPhase]int{v1.AlertNew: 0, v1.AlertProcessing: 0, v1.AlertFailed: 0}
	for i := range list.Items {
		s := &list.Items[i].Status
		if s.Phase == "" {
			continue
		}
		counts[s.Phase]++
		if s.Phase.Absorbing() && meta.IsStatusConditionTrue(s.Conditions, v1.AlertConditionSilenced) {
			silenced[s.Phase]++
		}
	}
	for phase, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(phase))
	}
	for phase, n := range silenced {
		ch <- prometheus.MustNewConstMetric(c.silenced, prometheus.GaugeValue, float64(n), string(phase))
	}
}

// silencesByState reports the Silences in the cache by state (Pending,
// Active, Expired, Invalid) at scrape time, as the Silence controller last
// wrote it; one it has not judged yet is not counted.
type silencesByState struct {
	reader client.Reader
	desc   *prometheus.Desc
}

func (c *silencesByState) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *silencesByState) Collect(ch chan<- prometheus.Metric) {
	var list v1.SilenceList
	if err := c.reader.List(context.Background(), &list); err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	counts := map[v1.SilenceState]int{v1.SilencePending: 0, v1.SilenceActive: 0, v1.SilenceExpired: 0, v1.SilenceInvalid: 0}
	for i := range list.Items {
		if st := list.Items[i].Status.State; st != "" {
			counts[st]++
		}
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(state))
	}
}

// BuildInfo is always 1; its labels say which build is running, so a
// dashboard can show versions and a rule can spot a rollout stuck half-way.
var BuildInfo = func() *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "alertbridge_build_info",
		Help: "Always 1; labelled with the version, commit and Go version of the running binary.",
	}, []string{"version", "commit", "goversion"})
	v := version.Get()
	g.WithLabelValues(v.Version, v.Commit, v.GoVersion).Set(1)
	return g
}()

// RegisterAPI adds the HTTP API's metrics (ingest and intake) to
// controller-runtime's registry: `alertbridge serve` counts occurrences,
// the controller manager does not.
func RegisterAPI() error {
	return register(IngestOccurrences, IngestReplays, IngestRejected,
		IntakeCommitSeconds, IntakeBatchOccurrences, IntakeForwarded, IntakeResolutionsForwarded, BuildInfo,
		HTTPRequests, HTTPRequestSeconds, HTTPInFlight)
}

// Register adds alertbridge's metrics to controller-runtime's registry;
// reader is the manager's cache, read at scrape time.
func Register(reader client.Reader) error {
	return register(
		IngestOccurrences, IngestReplays, IngestRejected, Folds, Requeues,
		TriageRuns, TriageCooldownSkips, TimelineSummarised, GateDecisions, IntakeCommitSeconds, IntakeBatchOccurrences,
		MirrorWrites, MirrorUp, MirrorFinalizerPolicyActive, BuildInfo,
		NotificationDeliveries, NotificationsPending,
		&alertsByPhase{reader: reader, desc: prometheus.NewDesc("alertbridge_alerts",
			"Alerts in the cluster by phase.", []string{"phase"}, nil),
			silenced: prometheus.NewDesc("alertbridge_alerts_silenced",
				"Alerts in play (New, Processing, Failed) that an active Silence silences, by phase; also counted in alertbridge_alerts.",
				[]string{"phase"}, nil)},
		&silencesByState{reader: reader, desc: prometheus.NewDesc("alertbridge_silences",
			"Silences in the cluster by state (Pending, Active, Expired, Invalid).", []string{"state"}, nil)},
	)
}

func register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := ctrlmetrics.Registry.Register(c); err != nil {
			if _, ok := err.(prometheus.AlreadyRegisteredError); ok {
				continue // a second manager in one process (tests)
			}
			return err
		}
	}
	return nil
}
