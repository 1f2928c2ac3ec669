package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/metrics"
	mirrordb "github.com/alertbridge/alertbridge/internal/mirror"
)

// The Mirrored condition on every AlertRoutingPolicy tells users in the
// namespace whether their history reaches PostgreSQL.
const (
	ConditionMirrored         = "Mirrored"
	ReasonCaughtUp            = "CaughtUp"
	ReasonDisabled            = "MirrorDisabled"
	ReasonDatabaseUnavailable = "DatabaseUnavailable"
	// ReasonFinalizerPolicyMissing: the mirror runs but the admission
	// policy that puts its finalizer on new objects is not in effect.
	ReasonFinalizerPolicyMissing = "FinalizerPolicyMissing"
	statusFieldOwner             = "alertbridge-mirror"
	DefaultStatusInterval        = 2 * time.Second
)

// mirrorState is the mirror's condition, the same for every namespace.
type mirrorState struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

func stateOf(mode Mode, enabled bool, pingErr error, pending int, policy policyState) mirrorState {
	switch {
	case !enabled:
		msg := "The PostgreSQL mirror is off (" + disabledReason(mode) + "): history is not kept in PostgreSQL"
		if policy.active {
			msg += "; yet the mirror finalizer policy " + FinalizerPolicyName + " is installed, so every new object gains a finalizer the operator then removes: install config/without-mirror"
		}
		return mirrorState{metav1.ConditionFalse, ReasonDisabled, msg}
	case policy.checked && !policy.active:
		return mirrorState{metav1.ConditionFalse, ReasonFinalizerPolicyMissing, "The mirror finalizer policy " + FinalizerPolicyName +
			" is not in effect (" + policy.detail + "): an object deleted right after its creation may leave no row in PostgreSQL; " +
			"install config/components/mirror-finalizer (config/default includes it)"}
	case pingErr != nil || pending > 0:
		return mirrorState{metav1.ConditionFalse, ReasonDatabaseUnavailable, "PostgreSQL is unreachable or behind; records wait in the cluster (see alertbridge_mirror_lag_seconds)"}
	}
	return mirrorState{metav1.ConditionTrue, ReasonCaughtUp, "Every record is in PostgreSQL"}
}

// StatusReconciler keeps the Mirrored condition of AlertRoutingPolicies
// current. A probe checks the database (and reads the last check of the
// finalizer policy) every Interval and, when the state changes, requeues
// every policy.
type StatusReconciler struct {
	client.Client
	// Store is the database; nil means the mirror is off.
	Store *mirrordb.Store
	// Mode is --mirror, for the message of a disabled mirror.
	Mode Mode
	// Policy is the check of the finalizer policy; nil reads as not checked.
	Policy *finalizerPolicyCheck
	// Health says how many writes are pending.
	Health   *Health
	Interval time.Duration

	mu      sync.Mutex
	state   mirrorState
	changed chan event.TypedGenericEvent[*v1.AlertRoutingPolicy]
}

// The mirror's state reaches users as the Mirrored condition of each
// namespace's AlertRoutingPolicy.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alertroutingpolicies/status,verbs=patch

// Reconcile applies the current condition when it differs.
func (r *StatusReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var p v1.AlertRoutingPolicy
	if err := r.Get(ctx, req.NamespacedName, &p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	r.mu.Lock()
	want := r.state
	r.mu.Unlock()
	if c := meta.FindStatusCondition(p.Status.Conditions, ConditionMirrored); c != nil &&
		c.Status == want.status && c.Reason == want.reason && c.Message == want.message && c.ObservedGeneration == p.Generation {
		return reconcile.Result{}, nil
	}
	conds := append([]metav1.Condition(nil), p.Status.Conditions...)
	meta.SetStatusCondition(&conds, metav1.Condition{Type: ConditionMirrored, Status: want.status, Reason: want.reason, Message: want.message, ObservedGeneration: p.Generation})
	c := meta.FindStatusCondition(conds, ConditionMirrored)
	// Server-side apply of our one condition: conditions are a map list, so
	// other writers' conditions are left alone.
	patch := map[string]any{
		"apiVersion": v1.GroupVersion.String(), "kind": "AlertRoutingPolicy",
		"metadata": map[string]any{"name": p.Name, "namespace": p.Namespace},
		"status": map[string]any{"conditions": []any{map[string]any{
			"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": c.Message,
			"observedGeneration": c.ObservedGeneration, "lastTransitionTime": c.LastTransitionTime.UTC().Format(time.RFC3339),
		}}},
	}
	if err := r.Status().Patch(ctx, &p, client.RawPatch("application/apply-patch+yaml", mustJSON(patch)), client.FieldOwner(statusFieldOwner), client.ForceOwnership); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to set the Mirrored condition of %s: %w", klog.KObj(&p), err)
	}
	return reconcile.Result{}, nil
}

// Start probes the database and signals changes of state.
func (r *StatusReconciler) Start(ctx context.Context) error {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		var pingErr error
		if r.Store != nil {
			pctx, cancel := context.WithTimeout(ctx, r.Interval)
			pingErr = r.Store.Ping(pctx)
			cancel()
		}
		pending, _ := r.Health.Lag()
		s := stateOf(r.Mode, r.Store != nil, pingErr, pending, r.policyState())
		metrics.MirrorUp.Set(boolGauge(s.status == metav1.ConditionTrue))
		r.mu.Lock()
		changed := s != r.state
		r.state = s
		r.mu.Unlock()
		if changed {
			select {
			case r.changed <- event.TypedGenericEvent[*v1.AlertRoutingPolicy]{Object: &v1.AlertRoutingPolicy{}}:
			case <-ctx.Done():
			}
		}
	}, r.Interval)
	return nil
}

func (r *StatusReconciler) policyState() policyState {
	if r.Policy == nil {
		return policyState{}
	}
	return r.Policy.State()
}

// SetupWithManager registers the probe and the controller.
func (r *StatusReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Interval <= 0 {
		r.Interval = DefaultStatusInterval
	}
	if r.Health == nil {
		r.Health = NewHealth(r.Store != nil, nil)
	}
	r.state = stateOf(r.Mode, r.Store != nil, nil, 0, policyState{})
	r.changed = make(chan event.TypedGenericEvent[*v1.AlertRoutingPolicy])
	if err := mgr.Add(r); err != nil {
		return fmt.Errorf("failed to add the mirror probe: %w", err)
	}
	allPolicies := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, _ *v1.AlertRoutingPolicy) []reconcile.Request {
		var list v1.AlertRoutingPolicyList
		if err := r.List(ctx, &list); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list AlertRoutingPolicies for the Mirrored condition")
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return reqs
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("mirror-status").
		For(&v1.AlertRoutingPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.changed, allPolicies)).
		Complete(r)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and numbers always encode
	}
	return b
}
