package controllers

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/slo"
	"github.com/alertbridge/alertbridge/internal/slo/budget"
)

// BurnCaller scopes the firing-instance keys of slo_burn Alerts (see
// intake.HashKey); BurnResolvedBy is the ack.by of an Alert whose burn
// stopped, as "alertmanager" is for Alertmanager's resolutions.
const (
	BurnCaller     = "system:alertbridge:slopolicy"
	BurnResolvedBy = "alertbridge-slopolicy"
)

// BurnIntake raises and resolves slo_burn Alerts through the same intake
// as HTTP and Alertmanager occurrences, so dedupe, claims, incidents,
// cooldown, silences and notifications apply to them as to any Alert.
type BurnIntake interface {
	Ingest(ctx context.Context, req intake.Request) (intake.Result, error)
	Resolve(ctx context.Context, namespace string, spec v1.AlertSpec, caller, key, by string, at time.Time) (intake.Result, error)
	ResolveInstance(ctx context.Context, namespace string, spec v1.AlertSpec, hashed, by string, at time.Time) (intake.Result, error)
}

// The SLOPolicy controller raises slo_burn Alerts on its own account (the
// intake creates them labelled as the operator's, exempt from allowedKinds)
// and counts into them.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch;create
// The SLOPolicy controller resolves the slo_burn Alerts it raised once the
// burn stops, as Alertmanager's resolutions do.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts/status,verbs=patch

// budgetGate is the policy's budget gate settings in the decision's terms.
func budgetGate(p *v1.SLOPolicy) (*big.Rat, v1.BurnCondition) {
	var minLeft *big.Rat
	if s := p.Spec.Gate.MinErrorBudgetPercent; s != nil {
		minLeft, _ = new(big.Rat).SetString(*s) // the CRD's pattern makes it a decimal
	}
	block := v1.BurnPage
	if p.Spec.Gate.BlockOnBurn != nil {
		block = *p.Spec.Gate.BlockOnBurn
	}
	return minLeft, block
}

// setBudgetStatus writes the objectives' SLI, budget left and burn rates.
// Without an observation (source down) the last values stay.
func setBudgetStatus(p *v1.SLOPolicy, obs slo.Observation) {
	st := &p.Status
	if obs.SourceErr != nil {
		return
	}
	st.Objectives, st.ErrorBudgetRemainingPercent = nil, ""
	var least *big.Rat
	for _, ev := range obs.Budgets {
		o := ev.Objective
		os := v1.ObjectiveStatus{Name: o.Name, Target: slo.FormatDecimal(o.Target), Window: o.WindowName, Burning: ev.Burning}
		if ev.ErrorRatio != nil {
			os.SLIPercent = slo.FormatDecimal(new(big.Rat).Mul(new(big.Rat).Sub(big.NewRat(1, 1), ev.ErrorRatio), big.NewRat(100, 1)))
			left := ev.RemainingPercent()
			os.ErrorBudgetRemainingPercent = slo.FormatDecimal(left)
			minutes := new(big.Rat).Mul(budget.Minutes(o.Target, o.Window), new(big.Rat).Quo(left, big.NewRat(100, 1)))
			os.ErrorBudgetRemainingMinutes = slo.FormatDecimal(minutes)
			if least == nil || left.Cmp(least) < 0 {
				least = left
			}
		}
		for _, w := range o.AlertWindows() {
			br := v1.BurnRateStatus{Window: w}
			if r := ev.BurnRate(w); r != nil {
				br.Rate = slo.FormatDecimal(r)
			}
			os.BurnRates = append(os.BurnRates, br)
		}
		st.Objectives = append(st.Objectives, os)
	}
	if least != nil {
		st.ErrorBudgetRemainingPercent = slo.FormatDecimal(least)
	}
}

// burnKey is the firing instance of one objective's condition that started
// at since; the same firing always has the same key, so a retried raise
// counts once.
func burnKey(p *v1.SLOPolicy, b v1.BurnAlertStatus) string {
	return fmt.Sprintf("%s/%s/%s/%s", p.UID, b.Objective, b.Condition, b.Since.UTC().Format(time.RFC3339))
}

// burnSpec is the slo_burn Alert of a policy's condition: one fingerprint
// per policy and condition (service, env, kind and the two labels), so a
// page of both objectives is one Alert with two firing instances.
func burnSpec(p *v1.SLOPolicy, cond slo.Condition, msg string) v1.AlertSpec {
	return v1.AlertSpec{
		Service:  p.Spec.Service,
		Env:      p.Spec.Env,
		Kind:     v1.AlertKindSLOBurn,
		Severity: cond.Severity,
		Title:    clip.Mark(fmt.Sprintf("%s: error budget burning (%s)", p.Spec.Service, cond.Name), 256),
		Message:  clip.Mark(msg, 4096),
		Source:   clip.Mark("slopolicy/"+p.Namespace+"/"+p.Name, 253),
		Labels:   map[string]string{v1.SLOBurnPolicyLabel: p.Name, v1.SLOBurnConditionLabel: string(cond.Name)},
	}
}

func conditionOf(obs slo.Observation, objective string, name v1.BurnCondition) (slo.BudgetEval, slo.Condition, bool) {
	for _, ev := range obs.Budgets {
		if ev.Objective.Name != objective {
			continue
		}
		for _, c := range ev.Objective.Conditions {
			if c.Name == name {
				return ev, c, true
			}
		}
	}
	return slo.BudgetEval{}, slo.Condition{}, false
}

// resolveBurnAlerts ends the firings whose condition no longer holds and
// returns the burn alerts to keep, with the conditions that newly hold
// (since now, not raised yet). A source outage changes nothing: a burn is
// neither started nor ended on no answer.
func (r *SLOPolicyReconciler) resolveBurnAlerts(ctx context.Context, p *v1.SLOPolicy, obs slo.Observation, now time.Time) ([]v1.BurnAlertStatus, error) {
	prev := p.Status.BurnAlerts
	if obs.SourceErr != nil || obs.SpecErr != nil {
		return prev, nil
	}
	var keep []v1.BurnAlertStatus
	for _, b := range prev {
		ev, cond, ok := conditionOf(obs, b.Objective, b.Condition)
		if ok && cond.Alert && slices.Contains(ev.Burning, b.Condition) {
			keep = append(keep, b)
			continue
		}
		spec := burnSpec(p, condOrName(cond, b.Condition, ok), "")
		if _, err := r.Intake.Resolve(ctx, p.Namespace, spec, BurnCaller, burnKey(p, b), BurnResolvedBy, now); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("failed to resolve the slo_burn Alert of SLOPolicy %s (%s, %s): %w", klog.KObj(p), b.Objective, b.Condition, err)
		}
	}
	since := metav1.NewTime(now.Truncate(time.Second))
	for _, ev := range obs.Budgets {
		for _, c := range ev.Objective.Conditions {
			if !c.Alert || !slices.Contains(ev.Burning, c.Name) {
				continue
			}
			if !slices.ContainsFunc(keep, func(b v1.BurnAlertStatus) bool { return b.Objective == ev.Objective.Name && b.Condition == c.Name }) {
				keep = append(keep, v1.BurnAlertStatus{Objective: ev.Objective.Name, Condition: c.Name, Since: since})
			}
		}
	}
	return keep, nil
}

// condOrName is the condition as configured, or (when the objective is
// gone from the spec) one with the name only: the fingerprint needs no more.
func condOrName(c slo.Condition, name v1.BurnCondition, ok bool) slo.Condition {
	if ok {
		return c
	}
	return slo.Condition{Name: name}
}

// raiseBurnAlerts counts each recorded firing without an Alert yet into
// its slo_burn Alert, after status recorded its since (so a retry uses the
// same key), and reports whether it set any alertRef.
func (r *SLOPolicyReconciler) raiseBurnAlerts(ctx context.Context, p *v1.SLOPolicy, obs slo.Observation) (bool, error) {
	changed := false
	for i := range p.Status.BurnAlerts {
		b := &p.Status.BurnAlerts[i]
		if b.AlertRef != "" {
			continue
		}
		ev, cond, ok := conditionOf(obs, b.Objective, b.Condition)
		if !ok {
			continue
		}
		msg := fmt.Sprintf("SLOPolicy %s/%s: the %s error budget (target %s%% over %s) is burning: %s",
			p.Namespace, p.Name, b.Objective, slo.FormatDecimal(ev.Objective.Target), ev.Objective.WindowName, ev.BurnSummary(b.Condition))
		res, err := r.Intake.Ingest(ctx, intake.Request{
			Namespace: p.Namespace, Spec: burnSpec(p, cond, msg), Caller: BurnCaller, Key: burnKey(p, *b), Firing: true,
			Labels: map[string]string{v1.OriginLabel: v1.OriginOperator},
		})
		if err != nil {
			return changed, fmt.Errorf("failed to raise the slo_burn Alert of SLOPolicy %s (%s, %s): %w", klog.KObj(p), b.Objective, b.Condition, err)
		}
		if res.AlertRef != "" {
			b.AlertRef, changed = res.AlertRef, true
		}
	}
	return changed, nil
}

// writeBurnAlertRefs records the Alerts raised, on top of the status just
// written.
func (r *SLOPolicyReconciler) writeBurnAlertRefs(ctx context.Context, p *v1.SLOPolicy, obs slo.Observation) error {
	before := p.DeepCopy()
	changed, err := r.raiseBurnAlerts(ctx, p, obs)
	if changed {
		if perr := r.Status().Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); perr != nil && err == nil {
			err = fmt.Errorf("failed to record the slo_burn Alerts of SLOPolicy %s: %w", klog.KObj(p), perr)
		}
	}
	return err
}

// sweepBurnAlerts resolves the firing instances of the slo_burn Alerts of
// the policy ns/name that its status does not record: all of them once the
// policy is gone (p nil), whose firing keys went with its status; those of
// an earlier policy of the same name once it is recreated. Without it a
// policy deleted while burning would leave its page firing for good.
func (r *SLOPolicyReconciler) sweepBurnAlerts(ctx context.Context, ns, name string, p *v1.SLOPolicy, now time.Time) error {
	var list v1.AlertList
	if err := r.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1.OriginLabel: v1.OriginOperator}); err != nil {
		return fmt.Errorf("failed to list the slo_burn Alerts of SLOPolicy %s/%s: %w", ns, name, err)
	}
	keep := map[string]bool{}
	if p != nil {
		for _, b := range p.Status.BurnAlerts {
			keep[intake.HashKey(BurnCaller, burnKey(p, b))] = true
		}
	}
	for i := range list.Items {
		a := &list.Items[i]
		if !isBurnAlertOf(a, name) {
			continue
		}
		for _, inst := range a.Status.Firing.Instances {
			if keep[inst] {
				continue
			}
			if _, err := r.Intake.ResolveInstance(ctx, ns, a.Spec, inst, BurnResolvedBy, now); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("failed to resolve the slo_burn Alert %s of SLOPolicy %s/%s: %w", klog.KObj(a), ns, name, err)
			}
		}
	}
	return nil
}

// isBurnAlertOf reports whether a is an slo_burn Alert the operator raised
// for the policy name that still has a firing instance.
func isBurnAlertOf(a *v1.Alert, name string) bool {
	return a.Labels[v1.OriginLabel] == v1.OriginOperator && a.Spec.Kind == v1.AlertKindSLOBurn &&
		a.Spec.Labels[v1.SLOBurnPolicyLabel] == name && a.Status.Firing != nil && len(a.Status.Firing.Instances) > 0
}

// policyOfOrphanBurn maps an slo_burn Alert still firing for a policy that
// no longer exists to that policy, so that the sweep resolves it: after a
// restart the deletion itself is never seen again, the Alert is. Alerts of
// existing policies map to nothing (their evaluations sweep them).
func (r *SLOPolicyReconciler) policyOfOrphanBurn(ctx context.Context, o client.Object) []reconcile.Request {
	a, ok := o.(*v1.Alert)
	if !ok || !isBurnAlertOf(a, a.Spec.Labels[v1.SLOBurnPolicyLabel]) {
		return nil
	}
	key := client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Labels[v1.SLOBurnPolicyLabel]}
	if err := r.Get(ctx, key, &v1.SLOPolicy{}); !apierrors.IsNotFound(err) {
		return nil
	}
	return []reconcile.Request{{NamespacedName: key}}
}
