// Package controllers holds one reconciler per kind. They are thin: the
// logic they call lives in internal/.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// DefaultDuplicateGCDelay is how long a folded duplicate stays visible before
// the operator deletes it.
const DefaultDuplicateGCDelay = 30 * time.Second

// FingerprintKey is the unit of Alert work. Keying the queue by fingerprint
// instead of by object means one worker folds one fingerprint at a time, so
// racing duplicates never race inside the operator.
type FingerprintKey struct {
	Namespace   string
	Fingerprint string
}

func (k FingerprintKey) String() string { return k.Namespace + "/" + k.Fingerprint }

// AlertReconciler folds duplicates into canonical Alerts and runs the
// state machine's timers (lease expiry, retryAfter, duplicate clean-up).
type AlertReconciler struct {
	client.Client
	// APIReader reads around the cache where a stale read could double or
	// lose an occurrence.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// DuplicateGCDelay is how long a Deduplicated Alert stays before deletion.
	DuplicateGCDelay time.Duration
	// MaxConcurrentReconciles bounds parallel work across fingerprints.
	MaxConcurrentReconciles int
}

// RBAC of the Alert controller. The comment above each marker is its
// reason, which `make manifests` copies into config/rbac/role.yaml.
//
// The Alert controller folds Alerts by fingerprint: it labels each with its
// fingerprint and deletes folded duplicates after --duplicate-gc-delay.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch;patch;delete
// The Alert controller writes what the operator owns in an Alert's status:
// the count, the fold journal, the first decision, the timers.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts/status,verbs=patch
// The Alert controller reads each namespace's AlertRoutingPolicy (dedupe
// TTL, retry defaults).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alertroutingpolicies,verbs=get;list;watch
// The Alert controller reads the Silences of a namespace to set each
// Alert's Silenced condition (and to find the Alerts a Silence matches).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=silences,verbs=get;list;watch
// The Alert controller records Events on Alerts (folds, requeues, silencing).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile folds the undecided Alerts of one fingerprint, then moves due
// Alerts along, applies the Silences of the namespace, and schedules the
// next timer.
func (r *AlertReconciler) Reconcile(ctx context.Context, key FingerprintKey) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("namespace", key.Namespace, "fingerprint", key.Fingerprint)
	ctx = ctrl.LoggerInto(ctx, log)

	items, err := fingerprint.List(ctx, r.Client, key.Namespace, key.Fingerprint)
	if err != nil {
		return reconcile.Result{}, err
	}
	alerts := make([]*v1.Alert, 0, len(items))
	for i := range items {
		alerts = append(alerts, &items[i])
	}
	if len(alerts) == 0 {
		return reconcile.Result{}, nil
	}
	slices.SortFunc(alerts, fingerprint.ByCreation)

	var pol policy.Policy
	pol, err = policy.Get(ctx, r.Client, key.Namespace)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", key.Namespace, err)
	}
	silences, err := r.silenceRules(ctx, key.Namespace, pol)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := r.Clock.Now()
	if needsFold(alerts) {
		if alerts, err = r.fold(ctx, pol, silences, alerts, now); err != nil {
			return reconcile.Result{}, err
		}
	}
	next, err := r.runTimers(ctx, pol, alerts, now)
	if err != nil {
		return reconcile.Result{}, err
	}
	silenceChange, err := r.applySilences(ctx, alerts, silences, now)
	if next = earliest(next, silenceChange); err != nil || next.IsZero() {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: max(next.Sub(r.Clock.Now()), time.Millisecond)}, nil
}

// SetupWithManager registers the fingerprint index and the controller,
// which watches Alerts, the Silences that match them, and the
// AlertRoutingPolicy whose ceiling bounds the leases held on them.
func (r *AlertReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.DuplicateGCDelay <= 0 {
		r.DuplicateGCDelay = DefaultDuplicateGCDelay
	}
	if err := fingerprint.RegisterIndex(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	toKey := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, a *v1.Alert) []FingerprintKey {
		return []FingerprintKey{{Namespace: a.Namespace, Fingerprint: fingerprint.Key(a)}}
	})
	return builder.TypedControllerManagedBy[FingerprintKey](mgr).
		Named("alert").
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &v1.Alert{}, toKey)).
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &v1.Silence{},
			handler.TypedEnqueueRequestsFromMapFunc(r.alertsOfSilence))).
		WatchesRawSource(source.TypedKind(mgr.GetCache(), &v1.AlertRoutingPolicy{},
			handler.TypedEnqueueRequestsFromMapFunc(r.heldAlertsOf),
			predicate.TypedGenerationChangedPredicate[*v1.AlertRoutingPolicy]{})).
		WithOptions(controller.TypedOptions[FingerprintKey]{
			MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1),
			// Conflicts are routine here; retry them quickly rather than with
			// the default limiter's slow token bucket.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[FingerprintKey](5*time.Millisecond, 10*time.Second),
			LogConstructor: func(key *FingerprintKey) logr.Logger {
				l := mgr.GetLogger().WithValues("controller", "alert")
				if key != nil {
					l = l.WithValues("fingerprintKey", klog.KRef(key.Namespace, key.Fingerprint))
				}
				return l
			},
		}).
		Complete(r)
}

func isGone(err error) bool { return apierrors.IsNotFound(err) }
