package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/policy"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// maxMatchersText matches the CRD bound on status.matchers.
const maxMatchersText = 20000

// SilenceReconciler keeps a Silence's status: its state (Pending, Active,
// Expired, or Invalid when the operator does not apply it), its matchers
// in Alertmanager's syntax for `kubectl get silences`, and the Accepted
// condition, which says why an Invalid Silence is not applied (a matcher
// that does not compile, or a window longer than the namespace allows).
// The state moves on its own timers (startsAt, endsAt). Which Alerts a
// Silence silences is the Alert controller's decision (alert_silence.go),
// made from the same rules, so neither waits for the other.
type SilenceReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
}

// The Silence controller reads Silences (and each namespace's
// AlertRoutingPolicy, spec.silences.maxDuration).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=silences,verbs=get;list;watch
// The Silence controller writes a Silence's state, its matchers in
// Alertmanager's syntax and the Accepted condition.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=silences/status,verbs=patch
// The Silence controller records Events on Silences (started, ended, not
// applied).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile judges one Silence, writes its status when it changed, and
// requeues at its next start or end.
func (r *SilenceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s v1.Silence
	if err := r.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	pol, err := policy.Get(ctx, r.Client, s.Namespace)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", s.Namespace, err)
	}
	now := r.Clock.Now()
	rule := silence.Judge(&s, pol.SilenceMaxDuration())
	orig := s.DeepCopy()
	s.Status.ObservedGeneration = s.Generation
	s.Status.State = rule.State(now)
	s.Status.Matchers = clip.To(silence.String(s.Spec.Matchers), maxMatchersText)
	s.Status.StartsAt = &metav1.Time{Time: rule.Start}
	cond := metav1.Condition{Type: v1.SilenceConditionAccepted, Status: metav1.ConditionTrue, Reason: v1.ReasonSilenceValid,
		Message:            "the operator applies this Silence to the matching Alerts of the namespace",
		ObservedGeneration: s.Generation, LastTransitionTime: metav1.NewTime(now)}
	if rule.Invalid != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, rule.Invalid.Reason, rule.Invalid.Message
	}
	meta.SetStatusCondition(&s.Status.Conditions, cond)
	if !equality.Semantic.DeepEqual(orig.Status, s.Status) {
		patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
		if err := r.Status().Patch(ctx, &s, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("failed to write the status of Silence %s: %w", klog.KObj(&s), err)
		}
		r.recordTransition(&s, orig.Status.State, rule)
	}
	if next := rule.Next(now); !next.IsZero() {
		return ctrl.Result{RequeueAfter: max(next.Sub(r.Clock.Now()), time.Millisecond)}, nil
	}
	return ctrl.Result{}, nil
}

// recordTransition records an Event when the state changed.
func (r *SilenceReconciler) recordTransition(s *v1.Silence, was v1.SilenceState, rule silence.Rule) {
	if s.Status.State == was {
		return
	}
	switch s.Status.State {
	case v1.SilenceActive:
		r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, string(v1.SilenceActive), "Silence",
			"Silencing the Alerts matching %s until %s", s.Status.Matchers, rule.End.UTC().Format(time.RFC3339))
	case v1.SilenceExpired:
		r.Recorder.Eventf(s, nil, corev1.EventTypeNormal, string(v1.SilenceExpired), "Silence",
			"Ended at %s; the Alerts it silenced are back in play", rule.End.UTC().Format(time.RFC3339))
	case v1.SilenceInvalid:
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, rule.Invalid.Reason, "Silence", "Not applied: %s", rule.Invalid.Message)
	}
}

// SetupWithManager watches Silences, and each namespace's policy, whose
// spec.silences.maxDuration decides which Silences apply.
func (r *SilenceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("silence").
		For(&v1.Silence{}).
		Watches(&v1.AlertRoutingPolicy{}, handler.EnqueueRequestsFromMapFunc(r.silencesOfPolicy)).
		Complete(r)
}

func (r *SilenceReconciler) silencesOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.SilenceList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list Silences for the AlertRoutingPolicy", "policy", klog.KObj(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
