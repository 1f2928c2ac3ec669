package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertindex"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Event reasons of the Alert controller.
const (
	EventAccepted     = "Accepted"
	EventDeduplicated = "Deduplicated"
	EventOccurrences  = "OccurrencesFolded"
	EventLeaseExpired = v1.ReasonLeaseExpired
	EventRetryDue     = v1.ReasonRetryDue
)

// maxFoldBatch matches the CRD bound on status.pendingFolds.
const maxFoldBatch = 256

// needsFold reports whether anything is left to decide: an Alert without a
// phase, or a canonical with an unfinished fold journal.
func needsFold(alerts []*v1.Alert) bool {
	return slices.ContainsFunc(alerts, func(a *v1.Alert) bool {
		return a.Status.Phase == "" || len(a.Status.PendingFolds) > 0
	})
}

// fold decides every undecided Alert of one fingerprint: each either becomes
// the canonical (New, one occurrence) or is counted into the newest live
// canonical and marked Deduplicated.
//
// A fold is two writes on two objects, so it is journalled: the canonical's
// status write adds the duplicates to occurrences and to pendingFolds in one
// step (under its resourceVersion), then each duplicate is marked, then the
// journal is cleared. A crash anywhere leaves the journal, and the next run
// finishes the marks without counting again.
//
// It returns the Alerts with the decided ones replaced by what was written.
func (r *AlertReconciler) fold(ctx context.Context, pol policy.Policy, cached []*v1.Alert, now time.Time) ([]*v1.Alert, error) {
	// The cache may lag our own writes: re-read everything whose decision is
	// still open, so that nothing is counted twice or against a stale count.
	fresh := make([]*v1.Alert, 0, len(cached))
	for _, c := range cached {
		if c.Status.Phase != "" && !c.Status.Phase.Absorbing() && len(c.Status.PendingFolds) == 0 {
			fresh = append(fresh, c)
			continue
		}
		var a v1.Alert
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(c), &a); err != nil {
			if isGone(err) {
				continue
			}
			return nil, fmt.Errorf("failed to read Alert %s: %w", klog.KObj(c), err)
		}
		if a.UID != c.UID {
			continue
		}
		fresh = append(fresh, &a)
	}

	byUID := make(map[types.UID]*v1.Alert, len(fresh))
	for _, a := range fresh {
		byUID[a.UID] = a
	}
	for _, c := range fresh {
		if len(c.Status.PendingFolds) > 0 {
			if err := r.finishFolds(ctx, c, byUID, now); err != nil {
				return nil, err
			}
		}
	}

	var canon *v1.Alert
	for _, a := range fresh {
		if a.Status.Phase.Absorbing() && (canon == nil || byCreation(canon, a) < 0) {
			canon = a
		}
	}
	var batch []*v1.Alert
	var lastSeen time.Time
	if canon != nil {
		lastSeen = canon.Status.LastSeenAt.Time
	}
	for _, a := range fresh {
		if a.Status.Phase != "" {
			continue
		}
		if canon != nil && !a.CreationTimestamp.After(lastSeen.Add(pol.DedupeTTL(canon))) {
			if len(batch) == maxFoldBatch {
				if err := r.foldInto(ctx, canon, batch, byUID, now); err != nil {
					return nil, err
				}
				batch = nil
			}
			batch = append(batch, a)
			lastSeen = later(lastSeen, a.CreationTimestamp.Time)
			continue
		}
		if err := r.foldInto(ctx, canon, batch, byUID, now); err != nil {
			return nil, err
		}
		batch = nil
		if err := r.makeCanonical(ctx, a); err != nil {
			return nil, err
		}
		canon, lastSeen = a, a.CreationTimestamp.Time
	}
	if err := r.foldInto(ctx, canon, batch, byUID, now); err != nil {
		return nil, err
	}
	return fresh, nil
}

// makeCanonical labels a and makes it New with one occurrence.
func (r *AlertReconciler) makeCanonical(ctx context.Context, a *v1.Alert) error {
	if err := r.ensureFingerprintLabel(ctx, a); err != nil {
		return err
	}
	alertstate.MarkCanonical(&a.Status, alertindex.Effective(a), a.CreationTimestamp, a.Generation)
	firedBy(&a.Status, a)
	if err := r.Status().Update(ctx, a); err != nil {
		return fmt.Errorf("failed to accept Alert %s: %w", klog.KObj(a), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Alert accepted as canonical", "alert", klog.KObj(a))
	r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, EventAccepted, "Accept",
		"New canonical Alert for fingerprint %s", a.Status.Fingerprint)
	return nil
}

func (r *AlertReconciler) ensureFingerprintLabel(ctx context.Context, a *v1.Alert) error {
	want := AlertFingerprint(a)
	if a.Labels[v1.FingerprintLabel] == want {
		return nil
	}
	// Optimistic lock: the patch answers with the whole object, and deciding
	// from a status someone else wrote since our read (the HTTP intake may
	// have decided and counted this very Alert) would overwrite their count.
	patch := client.MergeFromWithOptions(a.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	a.Labels[v1.FingerprintLabel] = want
	if err := r.Patch(ctx, a, patch); err != nil {
		return fmt.Errorf("failed to label Alert %s: %w", klog.KObj(a), err)
	}
	return nil
}

// foldInto counts batch into canon and journals it in one write, then marks
// the duplicates and clears the journal.
func (r *AlertReconciler) foldInto(ctx context.Context, canon *v1.Alert, batch []*v1.Alert, byUID map[types.UID]*v1.Alert, now time.Time) error {
	if canon == nil || len(batch) == 0 {
		return nil
	}
	for _, d := range batch {
		canon.Status.Occurrences++
		canon.Status.PendingFolds = append(canon.Status.PendingFolds, string(d.UID))
		// The key of the HTTP request that created d moves with its
		// occurrence, so a retry of that request still counts once.
		alertstate.AddIngestKeys(&canon.Status, d.Annotations[v1.IngestKeyAnnotation])
		firedBy(&canon.Status, d)
		if canon.Status.LastSeenAt == nil || d.CreationTimestamp.After(canon.Status.LastSeenAt.Time) {
			canon.Status.LastSeenAt = d.CreationTimestamp.DeepCopy()
		}
		if canon.Status.FirstSeenAt == nil || d.CreationTimestamp.Before(canon.Status.FirstSeenAt) {
			canon.Status.FirstSeenAt = d.CreationTimestamp.DeepCopy()
		}
	}
	canon.Status.ObservedGeneration = canon.Generation
	if err := r.Status().Update(ctx, canon); err != nil {
		return fmt.Errorf("failed to count %d occurrences into Alert %s: %w", len(batch), klog.KObj(canon), err)
	}
	metrics.Folds.Add(float64(len(batch)))
	r.Recorder.Eventf(canon, nil, corev1.EventTypeNormal, EventOccurrences, "Fold",
		"Folded %d repeat(s); %d occurrences in all", len(batch), canon.Status.Occurrences)
	return r.finishFolds(ctx, canon, byUID, now)
}

// finishFolds marks every journalled duplicate of canon that is still
// undecided, then clears the journal. Idempotent: run it again after any
// crash.
func (r *AlertReconciler) finishFolds(ctx context.Context, canon *v1.Alert, byUID map[types.UID]*v1.Alert, now time.Time) error {
	for _, uid := range canon.Status.PendingFolds {
		d := byUID[types.UID(uid)]
		switch {
		case d == nil, d.Status.Phase == v1.AlertDeduplicated && d.Status.DuplicateOf == canon.Name:
			continue // gone, or already marked: counted here either way
		case d.Status.Phase != "":
			// Another writer (the HTTP intake of any replica) decided it
			// between our count and our mark, so it is counted where that
			// writer put it: take our count back.
			canon.Status.Occurrences--
			continue
		}
		alertstate.MarkDuplicate(&d.Status, alertindex.Effective(d), canon.Name, d.CreationTimestamp, d.Generation, now)
		if err := r.Status().Update(ctx, d); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("failed to mark Alert %s as a duplicate of %s: %w", klog.KObj(d), canon.Name, err)
		}
		r.Recorder.Eventf(d, canon, corev1.EventTypeNormal, EventDeduplicated, "Fold",
			"Folded into canonical Alert %s", canon.Name)
	}
	canon.Status.PendingFolds = nil
	if err := r.Status().Update(ctx, canon); err != nil {
		return fmt.Errorf("failed to clear the fold journal of Alert %s: %w", klog.KObj(canon), err)
	}
	return nil
}

// firedBy records in s the Alertmanager firing instance that created a, if
// one did (the intake marks such an Alert with Alertmanager's fingerprint).
func firedBy(s *v1.AlertStatus, a *v1.Alert) {
	if a.Annotations[v1.AlertmanagerFingerprintAnnotation] != "" {
		alertstate.Fired(s, a.Annotations[v1.IngestKeyAnnotation])
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
