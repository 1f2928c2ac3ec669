package slo

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo/budget"
)

// Default selectors of the error-budget objectives: counters of the same
// http_requests_total and request-duration histogram as the instant checks.
const (
	DefaultAvailabilityErrorQuery = `http_requests_total{service="${service}",env="${env}",code=~"5.."}`
	DefaultAvailabilityTotalQuery = `http_requests_total{service="${service}",env="${env}"}`
	// DefaultLatencyGoodQuery has a ${le} placeholder: thresholdMs in
	// seconds, as client libraries write the bucket's bound.
	DefaultLatencyGoodQuery  = `http_request_duration_seconds_bucket{service="${service}",env="${env}",le="${le}"}`
	DefaultLatencyTotalQuery = `http_request_duration_seconds_count{service="${service}",env="${env}"}`
)

// Objective is one error-budget objective of a policy, parsed, with the
// PromQL of its error ratio and its burn-rate conditions.
type Objective struct {
	Name   string
	Target *big.Rat
	// Window is the budget's window (WindowName as written).
	Window     time.Duration
	WindowName v1.SLOWindow
	// errorSel or goodSel (one of them) and totalSel are series selectors.
	errorSel, goodSel, totalSel string
	// Conditions are page and ticket, in that order.
	Conditions []Condition
}

// Condition is a page or ticket: it holds while any of its windows does.
type Condition struct {
	Name     v1.BurnCondition
	Windows  []budget.Window
	Severity v1.Severity
	// Alert is false when the condition raises no Alert (disabled).
	Alert bool
}

// ErrorRatioQuery is the PromQL of the share of bad events over window:
// sum(rate(errors[w])) / sum(rate(total[w])). A service without any error
// yet has no error series, hence `or vector(0)`; a service without traffic
// yields no data.
func (o *Objective) ErrorRatioQuery(window v1.SLOWindow) string {
	if o.goodSel != "" {
		return fmt.Sprintf(`1 - (sum(rate(%s[%s])) / sum(rate(%s[%s])))`, o.goodSel, window, o.totalSel, window)
	}
	return fmt.Sprintf(`(sum(rate(%s[%s])) or vector(0)) / sum(rate(%s[%s]))`, o.errorSel, window, o.totalSel, window)
}

// AlertWindows are the distinct windows of the conditions, shortest first.
func (o *Objective) AlertWindows() []v1.SLOWindow {
	seen := map[v1.SLOWindow]time.Duration{}
	for _, c := range o.Conditions {
		for _, w := range c.Windows {
			seen[w.LongName], seen[w.ShortName] = w.Long, w.Short
		}
	}
	out := make([]v1.SLOWindow, 0, len(seen))
	for w := range seen {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b v1.SLOWindow) int {
		if d := seen[a] - seen[b]; d != 0 {
			return int(d / time.Second)
		}
		return strings.Compare(string(a), string(b))
	})
	return out
}

// ParseBudgetObjectives reads the policy's error-budget objectives (none
// when it has none), with the alerting windows or the workbook's defaults.
// Errors name the field.
func ParseBudgetObjectives(p *v1.SLOPolicy) ([]Objective, error) {
	conds, err := parseConditions(p.Spec.Alerting)
	if err != nil {
		return nil, err
	}
	render := func(tmpl, def, le string) string {
		return strings.ReplaceAll(Render(tmpl, def, p.Spec.Service, p.Spec.Env), "${le}", le)
	}
	var out []Objective
	add := func(name string, b v1.BudgetObjective, errSel, goodSel, totalSel string) error {
		field := "spec.objectives." + name
		t, err := budget.ParseTarget(b.Target)
		if err != nil {
			return fmt.Errorf("%s.target: %w", field, err)
		}
		wn := b.Window
		if wn == "" {
			wn = "28d"
		}
		w, err := budget.ParseWindow(wn)
		if err != nil {
			return fmt.Errorf("%s.window: %w", field, err)
		}
		for _, c := range conds {
			for _, cw := range c.Windows {
				if cw.Long > w {
					return fmt.Errorf("%s.window %s is shorter than the %s window %s of spec.alerting", field, wn, c.Name, cw.LongName)
				}
			}
		}
		out = append(out, Objective{Name: name, Target: t, Window: w, WindowName: wn,
			errorSel: errSel, goodSel: goodSel, totalSel: totalSel, Conditions: conds})
		return nil
	}
	if a := p.Spec.Objectives.Availability; a != nil {
		var errSel, goodSel string
		if strings.TrimSpace(a.GoodQuery) != "" {
			goodSel = render(a.GoodQuery, "", "")
		} else {
			errSel = render(a.ErrorQuery, DefaultAvailabilityErrorQuery, "")
		}
		if err := add(v1.ObjectiveAvailability, a.BudgetObjective, errSel, goodSel, render(a.TotalQuery, DefaultAvailabilityTotalQuery, "")); err != nil {
			return nil, err
		}
	}
	if l := p.Spec.Objectives.Latency; l != nil {
		le := FormatDecimal(big.NewRat(l.ThresholdMs, 1000))
		if err := add(v1.ObjectiveLatency, l.BudgetObjective, "", render(l.GoodQuery, DefaultLatencyGoodQuery, le), render(l.TotalQuery, DefaultLatencyTotalQuery, le)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parseConditions(a *v1.BurnRateAlerting) ([]Condition, error) {
	var page, ticket *v1.BurnRateCondition
	if a != nil {
		page, ticket = a.Page, a.Ticket
	}
	var out []Condition
	for _, c := range []struct {
		name v1.BurnCondition
		spec *v1.BurnRateCondition
		def  []v1.BurnRateWindow
		sev  v1.Severity
	}{
		{v1.BurnPage, page, budget.DefaultPage, v1.SeverityP1},
		{v1.BurnTicket, ticket, budget.DefaultTicket, v1.SeverityP3},
	} {
		cond := Condition{Name: c.name, Severity: c.sev, Alert: true}
		var spec []v1.BurnRateWindow
		if c.spec != nil {
			spec = c.spec.Windows
			cond.Alert = !c.spec.Disabled
			if c.spec.Severity != nil {
				cond.Severity = *c.spec.Severity
			}
		}
		ws, err := budget.Windows(spec, c.def)
		if err != nil {
			return nil, fmt.Errorf("spec.alerting.%s.%w", c.name, err)
		}
		cond.Windows = ws
		out = append(out, cond)
	}
	return out, nil
}

// BudgetEval is one objective as evaluated at one instant.
type BudgetEval struct {
	Objective *Objective
	// ErrorRatio is the share of bad events over the budget's window; nil
	// without data.
	ErrorRatio *big.Rat
	// Ratios are the error ratios per alerting window (nil: no data).
	Ratios map[v1.SLOWindow]*big.Rat
	// Burning lists the conditions that hold.
	Burning []v1.BurnCondition
}

// RemainingPercent is the share of the budget left in percent; nil without
// data.
func (e BudgetEval) RemainingPercent() *big.Rat {
	if e.ErrorRatio == nil {
		return nil
	}
	return new(big.Rat).Mul(budget.Remaining(e.ErrorRatio, e.Objective.Target), big.NewRat(100, 1))
}

// BurnRate over window; nil without data.
func (e BudgetEval) BurnRate(w v1.SLOWindow) *big.Rat {
	r := e.Ratios[w]
	if r == nil {
		return nil
	}
	return budget.BurnRate(r, e.Objective.Target)
}

// Holds reports whether condition c holds on these ratios.
func (e BudgetEval) Holds(c Condition) bool {
	return slices.ContainsFunc(c.Windows, func(w budget.Window) bool {
		return w.Holds(e.Ratios[w.LongName], e.Ratios[w.ShortName], e.Objective.Target)
	})
}

// EvaluateBudgets queries the error ratio of every objective over its
// budget window and every alerting window at the given time.
func EvaluateBudgets(ctx context.Context, src Source, objectives []Objective, at time.Time) ([]BudgetEval, error) {
	out := make([]BudgetEval, 0, len(objectives))
	for i := range objectives {
		o := &objectives[i]
		ev := BudgetEval{Objective: o, Ratios: map[v1.SLOWindow]*big.Rat{}}
		m, err := src.Query(ctx, o.ErrorRatioQuery(o.WindowName), at)
		if err != nil {
			return nil, err
		}
		ev.ErrorRatio = ratio(m)
		for _, w := range o.AlertWindows() {
			m, err := src.Query(ctx, o.ErrorRatioQuery(w), at)
			if err != nil {
				return nil, err
			}
			ev.Ratios[w] = ratio(m)
		}
		for _, c := range o.Conditions {
			if ev.Holds(c) {
				ev.Burning = append(ev.Burning, c.Name)
			}
		}
		out = append(out, ev)
	}
	return out, nil
}

// ratio reads a measurement as a 0..1 error ratio: +Inf (no good events
// over a window with traffic, in the good/total form) counts as all bad.
func ratio(m Measurement) *big.Rat {
	switch {
	case m.Inf:
		return big.NewRat(1, 1)
	case m.Value == nil:
		return nil
	case m.Value.Sign() < 0:
		return new(big.Rat)
	}
	return m.Value
}

// BurnSummary names the windows of condition c that hold, e.g.
// "burn rate 20 over 1h and 20 over 5m > 14.4".
func (e BudgetEval) BurnSummary(name v1.BurnCondition) string {
	var parts []string
	for _, c := range e.Objective.Conditions {
		if c.Name != name {
			continue
		}
		for _, w := range c.Windows {
			if w.Holds(e.Ratios[w.LongName], e.Ratios[w.ShortName], e.Objective.Target) {
				parts = append(parts, fmt.Sprintf("burn rate %s over %s and %s over %s > %s",
					FormatDecimal(e.BurnRate(w.LongName)), w.LongName, FormatDecimal(e.BurnRate(w.ShortName)), w.ShortName, FormatDecimal(w.Factor)))
			}
		}
	}
	return strings.Join(parts, ", ")
}
