package testbuild

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// SLOPolicyWrapper builds an SLOPolicy; start it with MakeSLOPolicy and end
// it with Obj.
type SLOPolicyWrapper struct {
	objectMeta[*SLOPolicyWrapper]
	obj *v1.SLOPolicy
}

// MakeSLOPolicy is an SLOPolicy named name in ns (not yet created) that
// holds the gateway to a p95 of 300ms, read from http://prometheus:9090;
// valid as it stands. An empty name is generated, <service>-.
func MakeSLOPolicy(name, ns string) *SLOPolicyWrapper {
	w := &SLOPolicyWrapper{obj: &v1.SLOPolicy{
		ObjectMeta: newMeta(name, ns),
		Spec: v1.SLOPolicySpec{
			Service:    "gateway",
			Objectives: v1.SLOObjectives{LatencyP95Ms: ptr.To[int64](300)},
			Source:     v1.SLOSource{Prometheus: v1.PrometheusSource{URL: "http://prometheus:9090"}},
		},
	}}
	w.objectMeta = objectMeta[*SLOPolicyWrapper]{m: &w.obj.ObjectMeta, self: w}
	return w
}

// Obj is the SLOPolicy built.
func (w *SLOPolicyWrapper) Obj() *v1.SLOPolicy {
	if w.obj.Name == "" && w.obj.GenerateName == "" {
		w.obj.GenerateName = w.obj.Spec.Service + "-"
	}
	return w.obj
}

// Val is the SLOPolicy built, as a value (for []v1.SLOPolicy).
func (w *SLOPolicyWrapper) Val() v1.SLOPolicy { return *w.Obj() }

// Service sets spec.service.
func (w *SLOPolicyWrapper) Service(s string) *SLOPolicyWrapper { w.obj.Spec.Service = s; return w }

// Env sets spec.env.
func (w *SLOPolicyWrapper) Env(e string) *SLOPolicyWrapper { w.obj.Spec.Env = e; return w }

// NoObjectives clears spec.objectives, for a spec that sets only the
// error-budget ones or checks that some are needed.
func (w *SLOPolicyWrapper) NoObjectives() *SLOPolicyWrapper {
	w.obj.Spec.Objectives = v1.SLOObjectives{}
	return w
}

// LatencyP95Ms sets the p95 objective in milliseconds.
func (w *SLOPolicyWrapper) LatencyP95Ms(ms int64) *SLOPolicyWrapper {
	w.obj.Spec.Objectives.LatencyP95Ms = &ms
	return w
}

// ErrorRatePercent sets the error-rate objective, a decimal string.
func (w *SLOPolicyWrapper) ErrorRatePercent(p string) *SLOPolicyWrapper {
	w.obj.Spec.Objectives.ErrorRatePercent = &p
	return w
}

// Availability sets the availability error-budget objective: target
// percent over window ("" for the default, 28d).
func (w *SLOPolicyWrapper) Availability(target string, window v1.SLOWindow) *SLOPolicyWrapper {
	w.obj.Spec.Objectives.Availability = &v1.AvailabilityObjective{
		BudgetObjective: v1.BudgetObjective{Target: target, Window: window}}
	return w
}

// AvailabilityQueries sets the availability objective's errorQuery,
// goodQuery and totalQuery ("" leaves one out); Availability comes first.
func (w *SLOPolicyWrapper) AvailabilityQueries(errorQuery, goodQuery, totalQuery string) *SLOPolicyWrapper {
	a := w.obj.Spec.Objectives.Availability
	a.ErrorQuery, a.GoodQuery, a.TotalQuery = errorQuery, goodQuery, totalQuery
	return w
}

// Latency sets the latency error-budget objective: target percent of
// requests within thresholdMs over window ("" for the default, 28d).
func (w *SLOPolicyWrapper) Latency(target string, thresholdMs int64, window v1.SLOWindow) *SLOPolicyWrapper {
	w.obj.Spec.Objectives.Latency = &v1.LatencyObjective{
		BudgetObjective: v1.BudgetObjective{Target: target, Window: window}, ThresholdMs: thresholdMs}
	return w
}

// PrometheusURL sets spec.source.prometheus.url.
func (w *SLOPolicyWrapper) PrometheusURL(url string) *SLOPolicyWrapper {
	w.obj.Spec.Source.Prometheus.URL = url
	return w
}

// Queries sets the PromQL overrides of the p95 latency (in seconds) and
// the error rate (a 0..1 ratio).
func (w *SLOPolicyWrapper) Queries(latencyP95, errorRate string) *SLOPolicyWrapper {
	w.obj.Spec.Source.Prometheus.LatencyP95Query = latencyP95
	w.obj.Spec.Source.Prometheus.ErrorRateQuery = errorRate
	return w
}

// SecretRef sets spec.source.prometheus.secretRef.
func (w *SLOPolicyWrapper) SecretRef(name string) *SLOPolicyWrapper {
	w.obj.Spec.Source.Prometheus.SecretRef = &v1.LocalObjectReference{Name: name}
	return w
}

// PageWindows sets the page burn-rate condition's windows.
func (w *SLOPolicyWrapper) PageWindows(windows ...v1.BurnRateWindow) *SLOPolicyWrapper {
	w.alerting().Page = &v1.BurnRateCondition{Windows: windows}
	return w
}

// TicketWindows sets the ticket burn-rate condition's windows.
func (w *SLOPolicyWrapper) TicketWindows(windows ...v1.BurnRateWindow) *SLOPolicyWrapper {
	w.alerting().Ticket = &v1.BurnRateCondition{Windows: windows}
	return w
}

// DisableBurn raises no Alert for the burn-rate condition c (page or
// ticket), whose windows the gate may still block on.
func (w *SLOPolicyWrapper) DisableBurn(c v1.BurnCondition) *SLOPolicyWrapper {
	cond := &w.alerting().Page
	if c == v1.BurnTicket {
		cond = &w.alerting().Ticket
	}
	if *cond == nil {
		*cond = &v1.BurnRateCondition{}
	}
	(*cond).Disabled = true
	return w
}

func (w *SLOPolicyWrapper) alerting() *v1.BurnRateAlerting {
	if w.obj.Spec.Alerting == nil {
		w.obj.Spec.Alerting = &v1.BurnRateAlerting{}
	}
	return w.obj.Spec.Alerting
}

// GateMode sets spec.gate.mode.
func (w *SLOPolicyWrapper) GateMode(m v1.GateMode) *SLOPolicyWrapper {
	w.obj.Spec.Gate.Mode = m
	return w
}

// NoData sets spec.gate.noData.
func (w *SLOPolicyWrapper) NoData(p v1.NoDataPolicy) *SLOPolicyWrapper {
	w.obj.Spec.Gate.NoData = p
	return w
}

// MaxBypass sets spec.gate.maxBypass.
func (w *SLOPolicyWrapper) MaxBypass(d time.Duration) *SLOPolicyWrapper {
	w.obj.Spec.Gate.MaxBypass = duration(d)
	return w
}

// MinErrorBudgetPercent sets spec.gate.minErrorBudgetPercent.
func (w *SLOPolicyWrapper) MinErrorBudgetPercent(p string) *SLOPolicyWrapper {
	w.obj.Spec.Gate.MinErrorBudgetPercent = &p
	return w
}

// BlockOnBurn sets spec.gate.blockOnBurn.
func (w *SLOPolicyWrapper) BlockOnBurn(c v1.BurnCondition) *SLOPolicyWrapper {
	w.obj.Spec.Gate.BlockOnBurn = &c
	return w
}

// EvaluationInterval sets spec.evaluationInterval.
func (w *SLOPolicyWrapper) EvaluationInterval(d time.Duration) *SLOPolicyWrapper {
	w.obj.Spec.EvaluationInterval = duration(d)
	return w
}

// LastEvaluated sets status.lastEvaluatedAt.
func (w *SLOPolicyWrapper) LastEvaluated(t time.Time) *SLOPolicyWrapper {
	w.obj.Status.LastEvaluatedAt = timeRef(t)
	return w
}

// Observed sets status.observed, the SLIs last evaluated.
func (w *SLOPolicyWrapper) Observed(latencyP95Ms, errorRatePercent string) *SLOPolicyWrapper {
	w.obj.Status.Observed = &v1.ObservedSLIs{LatencyP95Ms: latencyP95Ms, ErrorRatePercent: errorRatePercent}
	return w
}

// Gate sets status.gate: decision for reason.
func (w *SLOPolicyWrapper) Gate(decision v1.GateDecision, reason string) *SLOPolicyWrapper {
	w.obj.Status.Gate = &v1.GateStatus{Decision: decision, Reason: reason}
	return w
}

// GateSince sets status.gate.since; Gate comes first.
func (w *SLOPolicyWrapper) GateSince(t time.Time) *SLOPolicyWrapper {
	w.obj.Status.Gate.Since = timeRef(t)
	return w
}

// Bypass sets status.bypass.
func (w *SLOPolicyWrapper) Bypass(b *v1.BypassStatus) *SLOPolicyWrapper {
	w.obj.Status.Bypass = b
	return w
}

// Conditions adds status conditions.
func (w *SLOPolicyWrapper) Conditions(cs ...metav1.Condition) *SLOPolicyWrapper {
	w.obj.Status.Conditions = append(w.obj.Status.Conditions, cs...)
	return w
}
