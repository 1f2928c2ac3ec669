package slo

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
)

// StaleAfter is how many evaluation intervals a gate stays trusted: older
// than that the operator is presumed stopped and the gate reads Stale.
const StaleAfter = 3

// DefaultEvaluationInterval is used when spec.evaluationInterval is unset.
const DefaultEvaluationInterval = time.Minute

// MinEvaluationInterval is the shortest interval the operator evaluates a
// policy at, as the CRD requires of new values; a shorter one stored before
// that bound is read as this.
const MinEvaluationInterval = 15 * time.Second

var (
	thousand = big.NewRat(1000, 1)
	hundred  = big.NewRat(100, 1)
)

// Objectives are the thresholds in the units of status.observed.
type Objectives struct {
	LatencyP95Ms     *big.Rat
	ErrorRatePercent *big.Rat
}

// ParseObjectives converts the spec's objectives to exact decimals.
func ParseObjectives(o v1.SLOObjectives) (Objectives, error) {
	var out Objectives
	if o.LatencyP95Ms != nil {
		out.LatencyP95Ms = new(big.Rat).SetInt64(*o.LatencyP95Ms)
	}
	if o.ErrorRatePercent != nil {
		r, ok := new(big.Rat).SetString(*o.ErrorRatePercent)
		if !ok {
			return Objectives{}, fmt.Errorf("spec.objectives.errorRatePercent %q is not a decimal", *o.ErrorRatePercent)
		}
		out.ErrorRatePercent = r
	}
	return out, nil
}

// Observation is what one evaluation saw, in the source's units: latency in
// seconds, error rate as a 0..1 ratio.
type Observation struct {
	Latency   Measurement
	ErrorRate Measurement
	// Budgets are the error-budget objectives as evaluated.
	Budgets []BudgetEval
	// SourceErr is set when the source could not be queried.
	SourceErr error
	// SpecErr is set when the objectives cannot be evaluated as written
	// (what the CRD cannot check, e.g. a budget window shorter than an
	// alerting window); it names the field.
	SpecErr error
}

// OpenIncident is an open Incident that blocks the gate.
type OpenIncident struct {
	Name     string
	Severity v1.Severity
}

// Input is everything a gate decision depends on.
type Input struct {
	Mode       v1.GateMode
	NoData     v1.NoDataPolicy
	Objectives Objectives
	Observed   Observation
	// Incident is the worst open Incident at or above blockOnOpenIncidents.
	Incident *OpenIncident
	// BypassActive is true while an emergency bypass is in force.
	BypassActive bool
	// MinBudgetPercent blocks while an objective has less budget left.
	MinBudgetPercent *big.Rat
	// BlockOnBurn blocks while a page (or, for ticket, any) burn-rate
	// condition holds; off or "" ignores burning.
	BlockOnBurn v1.BurnCondition
}

// Result is the decision and what status reports about it.
type Result struct {
	Decision v1.GateDecision
	Reason   string
	Message  string

	// SLOMet is the SLOMet condition: True within objectives, False on a
	// breach, Unknown without data or source.
	SLOMet        metav1.ConditionStatus
	SLOMetReason  string
	SLOMetMessage string

	// ObservedLatencyP95Ms and ObservedErrorRatePercent are decimal strings
	// for status.observed ("" when not measured).
	ObservedLatencyP95Ms     string
	ObservedErrorRatePercent string
}

// Allowed reports whether a release may go ahead.
func (r Result) Allowed() bool { return r.Decision != v1.DecisionBlock }

// Decide is the release gate. A breach is observed > objective in exact
// decimal arithmetic, so exactly at the objective is within it.
func Decide(in Input) Result {
	res := Result{}
	slo := evaluateSLO(in, &res)
	blocking, reason, msg := slo.blocking(in.NoData)
	if !blocking && in.Incident != nil {
		blocking, reason = true, v1.ReasonOpenIncident
		msg = fmt.Sprintf("Incident %s (%s) is open", in.Incident.Name, in.Incident.Severity)
	} else if in.Incident != nil {
		msg += fmt.Sprintf("; Incident %s (%s) is open", in.Incident.Name, in.Incident.Severity)
	}
	res.Reason, res.Message = reason, msg
	switch {
	case !blocking || in.Mode == v1.GateOff:
		res.Decision = v1.DecisionAllow
	case in.Mode == v1.GateWarn:
		res.Decision = v1.DecisionWarn
	default:
		res.Decision = v1.DecisionBlock
	}
	if in.BypassActive && res.Decision != v1.DecisionAllow {
		res.Decision, res.Reason = v1.DecisionAllow, v1.ReasonBypassed
		res.Message = "emergency bypass in force; without it: " + msg
	}
	return res
}

type sloOutcome struct {
	invalid     error
	unavailable error
	breaches    []string
	breachKind  string
	noData      []string
}

// checkBudgets adds the error-budget checks to o: a budget below
// MinBudgetPercent (ErrorBudgetLow) and a burn-rate condition the gate
// blocks on (ErrorBudgetBurning) are breaches, after the instant ones.
func (o *sloOutcome) checkBudgets(in Input) {
	for _, ev := range in.Observed.Budgets {
		name := ev.Objective.Name
		if in.MinBudgetPercent != nil {
			left := ev.RemainingPercent()
			switch {
			case left == nil:
				o.noData = append(o.noData, name+" error budget")
			case left.Cmp(in.MinBudgetPercent) < 0:
				o.breach(v1.ReasonErrorBudgetLow, fmt.Sprintf("%s error budget %s%% left < minErrorBudgetPercent %s",
					name, FormatDecimal(left), FormatDecimal(in.MinBudgetPercent)))
			}
		}
		for _, c := range ev.Burning {
			if c == v1.BurnPage && (in.BlockOnBurn == v1.BurnPage || in.BlockOnBurn == v1.BurnTicket) ||
				c == v1.BurnTicket && in.BlockOnBurn == v1.BurnTicket {
				o.breach(v1.ReasonErrorBudgetBurning, fmt.Sprintf("%s error budget burning (%s): %s", name, c, ev.BurnSummary(c)))
			}
		}
	}
}

func (o *sloOutcome) breach(reason, msg string) {
	o.breaches = append(o.breaches, msg)
	if o.breachKind == "" {
		o.breachKind = reason
	}
}

func (o sloOutcome) blocking(noData v1.NoDataPolicy) (bool, string, string) {
	switch {
	case o.invalid != nil:
		return true, v1.ReasonInvalidObjectives, o.invalid.Error()
	case o.unavailable != nil:
		return true, v1.ReasonSourceUnavailable, "source unavailable: " + o.unavailable.Error()
	case len(o.breaches) > 0:
		return true, o.breachKind, strings.Join(o.breaches, "; ")
	case len(o.noData) > 0:
		return noData != v1.NoDataAllow, v1.ReasonNoData, "no data for " + strings.Join(o.noData, " and ")
	}
	return false, v1.ReasonWithinObjectives, "within objectives"
}

func evaluateSLO(in Input, res *Result) sloOutcome {
	var o sloOutcome
	if in.Observed.SpecErr != nil {
		o.invalid = in.Observed.SpecErr
		res.SLOMet, res.SLOMetReason, res.SLOMetMessage = metav1.ConditionUnknown, v1.ReasonInvalidObjectives, clip.Mark(in.Observed.SpecErr.Error(), 1024)
		return o
	}
	if in.Observed.SourceErr != nil {
		o.unavailable = in.Observed.SourceErr
		res.SLOMet, res.SLOMetReason, res.SLOMetMessage = metav1.ConditionUnknown, v1.ReasonSourceUnavailable, clip.Mark(in.Observed.SourceErr.Error(), 1024)
		return o
	}
	check := func(name string, m Measurement, scale, objective *big.Rat, reason string) string {
		if objective == nil {
			return ""
		}
		if m.NoData() {
			o.noData = append(o.noData, name)
			return ""
		}
		obs := "+Inf"
		if !m.Inf {
			v := new(big.Rat).Mul(m.Value, scale)
			obs = FormatDecimal(v)
			if v.Cmp(objective) <= 0 {
				return obs
			}
		}
		o.breaches = append(o.breaches, fmt.Sprintf("%s %s > objective %s", name, obs, FormatDecimal(objective)))
		if o.breachKind == "" {
			o.breachKind = reason
		}
		return obs
	}
	res.ObservedLatencyP95Ms = check("latencyP95Ms", in.Observed.Latency, thousand, in.Objectives.LatencyP95Ms, v1.ReasonLatencyP95Exceeded)
	res.ObservedErrorRatePercent = check("errorRatePercent", in.Observed.ErrorRate, hundred, in.Objectives.ErrorRatePercent, v1.ReasonErrorRateExceeded)
	o.checkBudgets(in)
	_, reason, msg := o.blocking(in.NoData)
	res.SLOMetReason, res.SLOMetMessage = reason, clip.Mark(msg, 1024)
	switch {
	case len(o.breaches) > 0:
		res.SLOMet = metav1.ConditionFalse
	case len(o.noData) > 0:
		res.SLOMet = metav1.ConditionUnknown
	default:
		res.SLOMet = metav1.ConditionTrue
	}
	return o
}

// FormatDecimal prints r as a plain decimal with at most 6 fractional
// digits and no trailing zeros, short enough for status.observed.
func FormatDecimal(r *big.Rat) string {
	s := r.FloatString(6)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if len(s) > 32 {
		f, _ := r.Float64()
		s = strconv.FormatFloat(f, 'g', 6, 64)
	}
	return s
}

// BypassRequest is the emergency bypass as written in the annotations.
type BypassRequest struct {
	Until  time.Time
	Reason string
	By     string
}

// ParseBypass reads the bypass annotations; nil when there are none.
func ParseBypass(ann map[string]string) (*BypassRequest, error) {
	until, hasUntil := ann[v1.BypassUntilAnnotation]
	reason := strings.TrimSpace(ann[v1.BypassReasonAnnotation])
	if !hasUntil && reason == "" {
		return nil, nil
	}
	if !hasUntil {
		return nil, fmt.Errorf("annotation %s is missing", v1.BypassUntilAnnotation)
	}
	if reason == "" {
		return nil, fmt.Errorf("annotation %s is required for a bypass", v1.BypassReasonAnnotation)
	}
	t, err := time.Parse(time.RFC3339, until)
	if err != nil {
		return nil, fmt.Errorf("annotation %s is not an RFC 3339 time: %w", v1.BypassUntilAnnotation, err)
	}
	return &BypassRequest{Until: t, Reason: reason, By: ann[v1.BypassByAnnotation]}, nil
}

// ResolveBypass turns the requested bypass into status. until is capped at
// maxBypass from when the operator first saw this request; the same request
// (annotation until, reason and caller) keeps its cap, so a bypass never
// extends itself, while a new `slo bypass` (a new until) starts a new one.
// Without a request, an active bypass ends.
func ResolveBypass(req *BypassRequest, prev *v1.BypassStatus, maxBypass time.Duration, now time.Time) *v1.BypassStatus {
	if req == nil {
		if prev == nil {
			return nil
		}
		out := prev.DeepCopy()
		out.Active = false
		return out
	}
	requested := metav1.NewTime(req.Until.Truncate(time.Second))
	limit := now.Add(maxBypass)
	if prev != nil && prev.Until != nil && prev.RequestedUntil != nil && prev.RequestedUntil.Equal(&requested) &&
		prev.Reason == req.Reason && prev.By == req.By {
		limit = prev.Until.Time
	}
	until := requested.Time
	if until.After(limit) {
		until = limit
	}
	return &v1.BypassStatus{
		Active:         now.Before(until),
		Until:          &metav1.Time{Time: until.Truncate(time.Second)},
		RequestedUntil: &requested,
		Reason:         req.Reason,
		By:             req.By,
	}
}

// ErrNotEvaluated is the Stale message for a policy never evaluated.
var ErrNotEvaluated = errors.New("not evaluated yet")

// View is the gate as a consumer (CLI, HTTP) should act on it.
type View struct {
	Decision v1.GateDecision
	Reason   string
	Message  string
	Stale    bool
}

// Allowed reports whether a release may go ahead.
func (v View) Allowed() bool { return v.Decision != v1.DecisionBlock }

// Interval is the policy's evaluation interval, at least
// MinEvaluationInterval.
func Interval(p *v1.SLOPolicy) time.Duration {
	if p.Spec.EvaluationInterval != nil && p.Spec.EvaluationInterval.Duration > 0 {
		return max(p.Spec.EvaluationInterval.Duration, MinEvaluationInterval)
	}
	return DefaultEvaluationInterval
}

// Effective reads the gate from status for a consumer at now. A status
// older than StaleAfter evaluation intervals (or none) is Stale: Block in
// Strict mode, so a stopped operator never leaves a gate open; an unexpired
// bypass recorded in status still allows.
func Effective(p *v1.SLOPolicy, now time.Time) View {
	st := p.Status
	bypassLive := st.Bypass != nil && st.Bypass.Active && st.Bypass.Until != nil && now.Before(st.Bypass.Until.Time)
	var staleMsg string
	switch {
	case st.LastEvaluatedAt == nil || st.Gate == nil:
		staleMsg = ErrNotEvaluated.Error()
	case now.Sub(st.LastEvaluatedAt.Time) > StaleAfter*Interval(p):
		staleMsg = fmt.Sprintf("last evaluated at %s, more than %d evaluation intervals (%s) ago", st.LastEvaluatedAt.UTC().Format(time.RFC3339), StaleAfter, Interval(p))
	case st.Gate.Reason == v1.ReasonBypassed && !bypassLive:
		staleMsg = "the bypass has expired and the policy is not re-evaluated yet"
	default:
		return View{Decision: st.Gate.Decision, Reason: st.Gate.Reason, Message: st.Gate.Message}
	}
	if bypassLive {
		return View{Decision: v1.DecisionAllow, Reason: v1.ReasonBypassed, Message: "emergency bypass in force; gate is stale: " + staleMsg, Stale: true}
	}
	v := View{Reason: v1.ReasonStale, Message: staleMsg, Stale: true}
	switch p.Spec.Gate.Mode {
	case v1.GateOff:
		v.Decision = v1.DecisionAllow
	case v1.GateWarn:
		v.Decision = v1.DecisionWarn
	default:
		v.Decision = v1.DecisionBlock
	}
	return v
}
