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
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// AutoIncidentReconciler converts Alerts into Incidents when the
// namespace's AlertRoutingPolicy asks for it (spec.incident.auto, off by
// default): a live canonical Alert with at least minOccurrences at or above
// minSeverity is converted once, and its status.incidentRef set.
type AutoIncidentReconciler struct {
	client.Client
	// Direct reads and writes around the cache; conversions decide on fresh
	// state.
	Direct        client.Client
	Clock         clock.PassiveClock
	MirrorEnabled bool
}

// Automatic conversion (AlertRoutingPolicy incident.auto) reads Alerts.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch
// Automatic conversion links a converted Alert to its Incident
// (status.incidentRef).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts/status,verbs=patch
// Automatic conversion opens the Incident of a signature when none is active.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=get;list;watch;create
// Automatic conversion appends the Alert to its Incident (alertRefs,
// timeline, triage cooldown).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch

// Reconcile converts one Alert when it qualifies.
func (r *AutoIncidentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a v1.Alert
	if err := r.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if a.Status.IncidentRef != nil || !a.Status.Phase.Absorbing() {
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
	res, err := incident.Convert(ctx, r.Direct, req.NamespacedName, incident.Options{Clock: r.Clock, MirrorOn: r.MirrorEnabled, Queued: true})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to convert Alert %s: %w", klog.KObj(&a), err)
	}
	if res.Appended && !res.TriageStarted { // linked inside the signature's cooldown
		metrics.TriageCooldownSkips.Inc()
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Alert converted", "incident", klog.KObj(res.Incident), "created", res.Created)
	return ctrl.Result{}, nil
}

// Qualifies reports whether the policy's auto conversion takes the Alert.
func Qualifies(a *v1.Alert, pol policy.Policy) bool {
	ip := pol.Spec.Incident
	if ip == nil || ip.Auto == nil || ip.Auto.MinOccurrences <= 0 {
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
