package mirror

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/gitops"
	mirrordb "github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// DefaultMaxBackoff caps the retry delay of a failed mirror write: a
// PostgreSQL outage delays the mirror, and it catches up within this long of
// the database returning (the default limiter's cap is 1000 s).
const DefaultMaxBackoff = 2 * time.Second

// EventRetentionExpired is the Event reason when the mirror deletes a
// finished object past its in-cluster retention.
const EventRetentionExpired = "RetentionExpired"

// kindSpec is what differs between the kinds the mirror writes.
type kindSpec[T client.Object] struct {
	name   string
	newObj func() T
	// write puts obj's state into the database.
	write func(ctx context.Context, c client.Client, s *mirrordb.Store, obj T) error
	// deletableAt is when the in-cluster retention may delete obj, given
	// the namespace's resolvedInCluster; false while obj is not finished.
	// nil: the kind is never deleted by retention.
	deletableAt func(obj T, retention time.Duration) (time.Time, bool)
}

// Reconciler writes one kind's objects to PostgreSQL. It owns the
// mirror finalizer: present from creation (the admission policy adds it;
// this reconciler adds it to objects created before the policy took effect)
// until the final state is written. With the mirror off (Store nil) it
// removes leftover finalizers so deletions never hang. In both modes it
// applies the in-cluster retention: finished objects leave the cluster
// once past the namespace's resolvedInCluster (and, with the mirror on,
// once mirrored).
type Reconciler[T client.Object] struct {
	client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Store is the database; nil means the mirror is off.
	Store *mirrordb.Store
	// Health is told of every failed and successful write.
	Health *Health
	// MaxBackoff caps the retry delay after a failed write.
	MaxBackoff time.Duration
	// MaxConcurrentReconciles bounds parallel writes.
	MaxConcurrentReconciles int

	kind kindSpec[T]
	// mirrored remembers the resourceVersion last written per object, so an
	// unchanged object costs no database round trip.
	mu       sync.Mutex
	mirrored map[types.NamespacedName]mirroredAt
}

type mirroredAt struct {
	uid types.UID
	rv  string
}

// The mirror writes every Alert, Incident and SLOPolicy to PostgreSQL and
// holds each with its finalizer until the final row is written.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts;incidents;slopolicies,verbs=get;list;watch;patch
// The in-cluster retention deletes finished Alerts and Closed Incidents
// past the namespace's resolvedInCluster.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts;incidents,verbs=delete
// The mirror records how far an Incident's timeline is mirrored
// (status.mirroredTimelineSeq), so only mirrored entries are trimmed.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch

// Reconcile mirrors one object: finalizer → write → release or retain.
func (r *Reconciler[T]) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	obj := r.kind.newObj()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("failed to get %s %s: %w", r.kind.name, req, err)
	}
	deleting := !obj.GetDeletionTimestamp().IsZero()
	if r.Store == nil {
		if err := r.removeFinalizer(ctx, obj); err != nil || deleting {
			return reconcile.Result{}, err
		}
		return r.retain(ctx, obj)
	}
	if !deleting && !controllerutil.ContainsFinalizer(obj, v1.MirrorFinalizer) {
		if err := r.patchFinalizer(ctx, obj, controllerutil.AddFinalizer); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.mirror(ctx, req.NamespacedName, obj); err != nil {
		return reconcile.Result{}, err
	}
	if deleting {
		return reconcile.Result{}, r.removeFinalizer(ctx, obj)
	}
	return r.retain(ctx, obj)
}

// mirror writes obj unless its resourceVersion is already in the database.
func (r *Reconciler[T]) mirror(ctx context.Context, key types.NamespacedName, obj T) error {
	r.mu.Lock()
	last, ok := r.mirrored[key]
	r.mu.Unlock()
	if ok && last.uid == obj.GetUID() {
		newer, err := mirrordb.Newer(obj.GetResourceVersion(), last.rv)
		if err != nil {
			return err
		}
		if !newer {
			return nil
		}
	}
	// Remember the version we write: write may patch status (Incidents),
	// and that newer version still needs its own row.
	rv := obj.GetResourceVersion()
	if err := r.kind.write(ctx, r.Client, r.Store, obj); err != nil {
		r.Health.failed(r.kind.name, key, r.Clock.Now())
		return fmt.Errorf("failed to mirror %s %s: %w", r.kind.name, klog.KObj(obj), err)
	}
	r.Health.written(r.kind.name, key)
	r.mu.Lock()
	r.mirrored[key] = mirroredAt{uid: obj.GetUID(), rv: rv}
	r.mu.Unlock()
	return nil
}

func (r *Reconciler[T]) forget(key types.NamespacedName) {
	r.Health.forget(r.kind.name, key)
	r.mu.Lock()
	delete(r.mirrored, key)
	r.mu.Unlock()
}

// retain deletes a finished object once its retention passed (with the
// mirror on, reconcile calls it only after the object's state is written),
// and otherwise schedules the moment it will.
func (r *Reconciler[T]) retain(ctx context.Context, obj T) (reconcile.Result, error) {
	if r.kind.deletableAt == nil || gitops.Managed(obj) {
		return reconcile.Result{}, nil
	}
	pol, err := policy.Get(ctx, r.Client, obj.GetNamespace())
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", obj.GetNamespace(), err)
	}
	due, ok := r.kind.deletableAt(obj, pol.ResolvedInCluster())
	if !ok {
		return reconcile.Result{}, nil
	}
	if now := r.Clock.Now(); now.Before(due) {
		return reconcile.Result{RequeueAfter: due.Sub(now)}, nil
	}
	// The preconditions make sure we delete exactly the state we mirrored;
	// a change since then conflicts, and the next reconcile writes it first.
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	if err := r.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &rv}); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, fmt.Errorf("failed to delete retained %s %s: %w", r.kind.name, klog.KObj(obj), err)
	}
	note := "Mirrored to PostgreSQL and past its in-cluster retention (%s); deleted"
	if r.Store == nil {
		note = "Past its in-cluster retention (%s); deleted (the PostgreSQL mirror is off: no history is kept)"
	}
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, EventRetentionExpired, "Delete", note, pol.ResolvedInCluster())
	return reconcile.Result{}, nil
}

func (r *Reconciler[T]) removeFinalizer(ctx context.Context, obj T) error {
	if !controllerutil.ContainsFinalizer(obj, v1.MirrorFinalizer) {
		return nil
	}
	return client.IgnoreNotFound(r.patchFinalizer(ctx, obj, controllerutil.RemoveFinalizer))
}

// patchFinalizer adds or removes the finalizer with an optimistic lock: a
// removal must not release a state newer than the one just written.
func (r *Reconciler[T]) patchFinalizer(ctx context.Context, obj T, edit func(client.Object, string) bool) error {
	base := obj.DeepCopyObject().(client.Object)
	edit(obj, v1.MirrorFinalizer)
	if err := r.Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to update the mirror finalizer of %s %s: %w", r.kind.name, klog.KObj(obj), err)
	}
	return nil
}

// SetupWithManager registers the controller with a bounded backoff.
func (r *Reconciler[T]) SetupWithManager(mgr ctrl.Manager) error {
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.Health == nil {
		r.Health = NewHealth(r.Store != nil, r.Clock)
	}
	r.mirrored = map[types.NamespacedName]mirroredAt{}
	name := "mirror-" + r.kind.name
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(r.kind.newObj()).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1),
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](20*time.Millisecond, r.MaxBackoff),
			LogConstructor: func(req *reconcile.Request) logr.Logger {
				l := mgr.GetLogger().WithValues("controller", name)
				if req != nil {
					l = l.WithValues(r.kind.name, klog.KRef(req.Namespace, req.Name))
				}
				return l
			},
		}).
		Complete(r)
}
