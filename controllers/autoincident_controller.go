package controllers

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// AutoIncidentReconciler converts Alerts into Incidents when the
// namespace's AlertRoutingPolicy asks for it (spec.incident.auto, off by
// default): a live canonical Alert with at least minOccurrences at or above
// minSeverity is converted once, and its status.incidentRef set; not while
// a Silence silences it.
type AutoIncidentReconciler struct {
	client.Client
	// Direct reads and writes around the cache; conversions decide on fresh
	// state.
	Direct client.Client
	Clock  clock.PassiveClock
}

// Automatic conversion (AlertRoutingPolicy incident.auto) reads Alerts.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch
// Automatic conversion links a converted Alert to its Incident
// (status.incidentRef).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts/status,verbs=patch
// Automatic conversion creates the Incident of a signature when none is
// active (spec only: the Incident controller opens it).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=get;list;watch;create
// Automatic conversion appends the Alert to its Incident (alertRefs,
// alertCount, an AlertAppended entry); the Incident controller decides
// triage.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch

// Reconcile converts one Alert when it qualifies.
func (r *AutoIncidentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a v1.Alert
	if err := r.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !a.Status.Phase.Absorbing() || r.converted(ctx, &a) {
		return ctrl.Result{}, nil
	}
	pol, err := policy.Get(ctx, r.Client, a.Namespace)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", a.Namespace, err)
	}
	if !Qualifies(&a, pol) {
		return ctrl.Result{}, nil
	}
	// A reconciler: a conflict or a lost race goes back to the work queue.
	res, err := incident.Convert(ctx, r.Direct, req.NamespacedName, incident.Options{Clock: r.Clock, Queued: true})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to convert Alert %s: %w", klog.KObj(&a), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Alert converted", "incident", klog.KObj(res.Incident), "created", res.Created)
	return ctrl.Result{}, nil
}

// converted reports whether the Alert's conversion is done: it is linked
// to an Incident that records it (cached read; a stale one costs a no-op
// Convert). A conversion links the Alert before it appends the ref, so an
// interrupted one (a conflict returned to the queue) is finished here; an
// Alert linked to an Incident that is gone is left alone, as before.
func (r *AutoIncidentReconciler) converted(ctx context.Context, a *v1.Alert) bool {
	if a.Status.IncidentRef == nil {
		return false
	}
	var inc v1.Incident
	if err := r.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Status.IncidentRef.Name}, &inc); err != nil {
		return true
	}
	return !inc.Spec.State.IsOpen() || incident.Recorded(&inc, a.Name)
}

// Qualifies reports whether the policy's auto conversion takes the Alert.
// A silenced Alert does not qualify while its Silence is active; when the
// Silence ends the operator clears the condition, and that update brings
// the Alert back here.
func Qualifies(a *v1.Alert, pol policy.Policy) bool {
	ip := pol.Spec.Incident
	if ip == nil || ip.Auto == nil || ip.Auto.MinOccurrences <= 0 || alertstate.Silenced(&a.Status) {
		return false
	}
	minSev := ip.Auto.MinSeverity
	if minSev == "" {
		minSev = v1.SeverityP2
	}
	sev := a.Spec.Severity
	if sev == "" {
		sev = v1.SeverityP3
	}
	return a.Status.Occurrences >= ip.Auto.MinOccurrences && sev.AtLeast(minSev)
}

// SetupWithManager watches Alerts, and the policy so that turning auto
// conversion on takes the Alerts that already qualify.
func (r *AutoIncidentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("autoincident").
		For(&v1.Alert{}).
		Watches(&v1.AlertRoutingPolicy{}, handler.EnqueueRequestsFromMapFunc(r.alertsOfPolicy)).
		Complete(r)
}

func (r *AutoIncidentReconciler) alertsOfPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.AlertList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list Alerts for the AlertRoutingPolicy", "policy", klog.KObj(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].Status.IncidentRef == nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
