package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/gitops"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// EventLeaseClamped is the Event reason when the operator shortens a lease
// that would otherwise end later than it allows.
const EventLeaseClamped = v1.ReasonLeaseClamped

// runTimers returns due Alerts to New (expired leases, passed retryAfter),
// shortens leases that end later than the operator allows, deletes folded
// duplicates after their delay, and returns the earliest moment something
// else falls due (zero when nothing does).
func (r *AlertReconciler) runTimers(ctx context.Context, pol policy.Policy, alerts []*v1.Alert, now time.Time) (time.Time, error) {
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, a := range alerts {
		switch a.Status.Phase {
		case v1.AlertDeduplicated:
			due := alertstate.DeduplicatedAt(&a.Status).Add(r.DuplicateGCDelay)
			if now.Before(due) {
				soonest(due)
				continue
			}
			if err := r.deleteDuplicate(ctx, a); err != nil {
				return time.Time{}, err
			}
		case v1.AlertProcessing, v1.AlertFailed:
			if err := r.requeueIfDue(ctx, a, now); err != nil {
				return time.Time{}, err
			}
			if err := r.clampLease(ctx, a, pol.MaxLeaseDuration(), now); err != nil {
				return time.Time{}, err
			}
			soonest(alertstate.NextDeadline(&a.Status))
		}
	}
	return next, nil
}

// requeueIfDue writes Processing → New or Failed → New when its time came.
// The write carries the resourceVersion we read, so a renew or an ack that
// raced us wins and we simply look again.
func (r *AlertReconciler) requeueIfDue(ctx context.Context, a *v1.Alert, now time.Time) error {
	holder := ""
	if a.Status.Claim != nil {
		holder = a.Status.Claim.HolderIdentity
	}
	orig := a.DeepCopy()
	reason := alertstate.Requeue(&a.Status, a.Generation, now)
	if reason == "" {
		return nil
	}
	if err := r.patchStatus(ctx, a, orig); err != nil {
		return fmt.Errorf("failed to requeue Alert %s: %w", klog.KObj(a), err)
	}
	metrics.Requeues.WithLabelValues(reason).Inc()
	ctrl.LoggerFrom(ctx).V(1).Info("Alert requeued", "alert", klog.KObj(a), "reason", reason)
	if reason == v1.ReasonLeaseExpired {
		r.Recorder.Eventf(a, nil, corev1.EventTypeWarning, EventLeaseExpired, "Requeue",
			"Lease of %s expired; the Alert is New again", holder)
	} else {
		r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, EventRetryDue, "Requeue",
			"retryAfter passed; the Alert is New again (attempts so far: %d)", a.Status.Attempts)
	}
	return nil
}

// clampLease shortens the lease of a Processing Alert that would end later
// than the operator allows: its renewTime lies ahead of the operator's clock
// (the API server, having no clock, cannot refuse that), or it is longer
// than the namespace's maxLeaseDuration (where the namespace has no
// AlertRoutingPolicy, the API server has no ceiling to refuse it by). The
// lease then ends at most maxLease from now, and never later than it did;
// the timer returns it to New at its end. The write carries the
// resourceVersion we read, so a renewal that raced us is looked at again.
func (r *AlertReconciler) clampLease(ctx context.Context, a *v1.Alert, maxLease time.Duration, now time.Time) error {
	orig := a.DeepCopy()
	why := alertstate.Clamp(&a.Status, maxLease, now)
	if why == "" {
		return nil
	}
	if err := r.patchStatus(ctx, a, orig); err != nil {
		return fmt.Errorf("failed to shorten the lease of Alert %s: %w", klog.KObj(a), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Lease shortened", "alert", klog.KObj(a), "holder", a.Status.Claim.HolderUser)
	r.Recorder.Eventf(a, nil, corev1.EventTypeWarning, EventLeaseClamped, "Clamp",
		"Lease of %s: %s", alertstate.Holder(&a.Status), why)
	return nil
}

// heldAlertsOf maps an AlertRoutingPolicy to the fingerprint keys of the
// Processing Alerts of its namespace, from the cache, so that a lowered
// maxLeaseDuration shortens the leases held now, not only the next ones.
func (r *AlertReconciler) heldAlertsOf(ctx context.Context, p *v1.AlertRoutingPolicy) []FingerprintKey {
	var list v1.AlertList
	if err := r.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list the Alerts held under a policy", "policy", klog.KObj(p))
		return nil
	}
	seen := map[FingerprintKey]bool{}
	var keys []FingerprintKey
	for i := range list.Items {
		a := &list.Items[i]
		if a.Status.Phase != v1.AlertProcessing {
			continue
		}
		if k := (FingerprintKey{Namespace: a.Namespace, Fingerprint: fingerprint.Key(a)}); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// deleteDuplicate removes a folded duplicate ourselves: envtest and some
// clusters run no garbage collector. GitOps-tracked objects are left alone.
func (r *AlertReconciler) deleteDuplicate(ctx context.Context, a *v1.Alert) error {
	if gitops.Managed(a) {
		return nil
	}
	uid := types.UID(a.UID)
	err := r.Delete(ctx, a, client.Preconditions{UID: &uid})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete duplicate Alert %s: %w", klog.KObj(a), err)
	}
	return nil
}
