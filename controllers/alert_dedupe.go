package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// Event reasons of the Alert controller. Decisions and folds make no Event:
// in a storm that would be one per Alert, and the phase and occurrences say
// it; Events are kept for the transitions a person reads.
const (
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

// fold decides every undecided Alert of one fingerprint, oldest first: the
// canonical fingerprint.Canonical names for its creation time absorbs it (its
// count grows, it becomes Deduplicated), or it becomes the canonical (New,
// one occurrence). The controller is the only one that decides Alerts.
//
// A fold is two writes on two objects, so it is journalled: the canonical's
// status write adds the duplicates to occurrences and to pendingFolds in one
// step (under its resourceVersion), then each duplicate is marked, then the
// journal is cleared. A crash anywhere leaves the journal, and the next run
// finishes the marks without counting again.
//
// It returns the Alerts with the decided ones replaced by what was written.
func (r *AlertReconciler) fold(ctx context.Context, pol policy.Policy, silences []silence.Rule, cached []*v1.Alert, now time.Time) ([]*v1.Alert, error) {
	// The cache may lag our own writes: re-read the canonicals a count or a
	// journal depends on, so that nothing is counted against a stale count.
	// A lone undecided Alert is re-read only before it is counted: making it
	// canonical is a write under its own resourceVersion, which a stale copy
	// only turns into a conflict. Several undecided ones are all re-read
	// first: one of them may be a canonical an earlier run of ours decided
	// whose write the cache does not show yet, and if another one sorted
	// before it (same second, name order) it would be made a second
	// canonical instead of folding into it.
	undecided := 0
	for _, c := range cached {
		if c.Status.Phase == "" {
			undecided++
		}
	}
	fresh := make([]*v1.Alert, 0, len(cached))
	readNow := map[types.UID]bool{}
	for _, c := range cached {
		reread := c.Status.Phase.Absorbing() || len(c.Status.PendingFolds) > 0 || (c.Status.Phase == "" && undecided > 1)
		if !reread {
			fresh = append(fresh, c)
			continue
		}
		a, err := r.readFresh(ctx, c)
		if err != nil {
			return nil, err
		}
		if a != nil {
			fresh = append(fresh, a)
			readNow[a.UID] = true
		}
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

	var canon, orig *v1.Alert // the canonical of the batch, and as it was read
	var batch []*v1.Alert
	for _, a := range fresh {
		if a.Status.Phase != "" {
			continue
		}
		if h := keyHolder(fresh, a); h != nil {
			// The holder's count must be durable before a retry is folded
			// on its word: write the batch first.
			if err := r.foldInto(ctx, canon, orig, batch, byUID, now); err != nil {
				return nil, err
			}
			canon, batch = nil, nil
			if err := r.foldRetry(ctx, a, h, readNow[a.UID], now); err != nil {
				return nil, err
			}
			continue
		}
		target := fingerprint.Canonical(fresh, pol, a.CreationTimestamp.Time)
		if target != canon || len(batch) == maxFoldBatch {
			if err := r.foldInto(ctx, canon, orig, batch, byUID, now); err != nil {
				return nil, err
			}
			canon, batch = target, nil
			if target != nil {
				orig = target.DeepCopy()
			}
		}
		if target == nil {
			if err := r.makeCanonical(ctx, a, silences, now); err != nil {
				return nil, err
			}
			continue
		}
		if undecided, err := r.stillUndecided(ctx, a, readNow[a.UID]); err != nil || !undecided {
			if err != nil {
				return nil, err
			}
			continue
		}
		// Counted in memory now, so the rule sees the new lastSeenAt for the
		// next Alert; written by foldInto with the whole batch.
		count(target, a)
		batch = append(batch, a)
	}
	if err := r.foldInto(ctx, canon, orig, batch, byUID, now); err != nil {
		return nil, err
	}
	return fresh, nil
}

// keyHolder returns the decided Alert that counted the occurrence undecided
// a was created for, if one did: a retry that an intake created a new Alert
// for because its view did not show the first count (another replica's
// cache lagging, or the Alert that counted it left the live set since).
// Counting a again would count one occurrence twice, whether a would fold
// into a canonical or become one.
func keyHolder(alerts []*v1.Alert, a *v1.Alert) *v1.Alert {
	key := a.Annotations[v1.IngestKeyAnnotation]
	if key == "" {
		return nil
	}
	for _, h := range alerts {
		if h.UID != a.UID && h.Status.Phase != "" && alertstate.HoldsKey(h, key) {
			return h
		}
	}
	return nil
}

// foldRetry marks a, a retry of an occurrence h counted, Deduplicated into
// h's canonical without counting anything: one write, no journal.
func (r *AlertReconciler) foldRetry(ctx context.Context, a, h *v1.Alert, read bool, now time.Time) error {
	if undecided, err := r.stillUndecided(ctx, a, read); err != nil || !undecided {
		return err
	}
	orig := a.DeepCopy()
	alertstate.MarkDuplicate(&a.Status, fingerprint.Of(a), alertstate.CanonicalName(h), a.CreationTimestamp, a.Generation, now)
	if err := r.patchStatus(ctx, a, orig); err != nil {
		return fmt.Errorf("failed to fold Alert %s, a retry of an occurrence %s counted: %w", klog.KObj(a), h.Name, err)
	}
	metrics.Folds.Inc()
	return nil
}

// stillUndecided re-reads a (unless read says it was just read) before a
// decision is written on it: the cache may show undecided an Alert an
// earlier run of ours decided already. a is updated in place; false when
// it is gone or decided.
func (r *AlertReconciler) stillUndecided(ctx context.Context, a *v1.Alert, read bool) (bool, error) {
	if read {
		return a.Status.Phase == "", nil
	}
	current, err := r.readFresh(ctx, a)
	if err != nil || current == nil {
		return false, err
	}
	*a = *current
	return a.Status.Phase == "", nil
}

// readFresh reads c from the API server; nil when it is gone (or was
// replaced by another object of the same name).
func (r *AlertReconciler) readFresh(ctx context.Context, c *v1.Alert) (*v1.Alert, error) {
	var a v1.Alert
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(c), &a); err != nil {
		if isGone(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to read Alert %s: %w", klog.KObj(c), err)
	}
	if a.UID != c.UID {
		return nil, nil
	}
	return &a, nil
}

// makeCanonical makes a New with one occurrence and its fingerprint in
// status (a selectable field, so the API server finds an Alert by
// fingerprint without a label patch: a new Alert costs its create and this
// one status write), silenced in the same write when a Silence is active:
// nobody may claim, convert or notify it in between.
func (r *AlertReconciler) makeCanonical(ctx context.Context, a *v1.Alert, silences []silence.Rule, now time.Time) error {
	orig := a.DeepCopy()
	alertstate.MarkCanonical(&a.Status, fingerprint.Of(a), a.CreationTimestamp, a.Generation)
	quiet := silence.Decide(a, silences, now)
	silence.SetCondition(a, quiet, now)
	firedBy(&a.Status, a)
	if err := r.patchStatus(ctx, a, orig); err != nil {
		return fmt.Errorf("failed to accept Alert %s: %w", klog.KObj(a), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Alert accepted as canonical", "alert", klog.KObj(a))
	r.recordSilencing(a, orig, quiet)
	return nil
}

// count adds duplicate d to canon's status in memory: one occurrence, its
// times, its journal entry, and the key or firing instance that created it
// (so a retry of that request, or a re-send of that firing, still counts
// once). A duplicate whose key canon holds already is a retry that two
// replicas' intakes both created an Alert for: it is folded, not counted.
func count(canon, d *v1.Alert) {
	key := d.Annotations[v1.IngestKeyAnnotation]
	if key == "" || (!alertstate.HasKey(&canon.Status, key) && canon.Annotations[v1.IngestKeyAnnotation] != key) {
		canon.Status.Occurrences++
	}
	canon.Status.PendingFolds = append(canon.Status.PendingFolds, string(d.UID))
	alertstate.ForceAddKeys(&canon.Status, d.CreationTimestamp.Time, key)
	firedBy(&canon.Status, d)
	if canon.Status.LastSeenAt == nil || d.CreationTimestamp.After(canon.Status.LastSeenAt.Time) {
		canon.Status.LastSeenAt = d.CreationTimestamp.DeepCopy()
	}
	if canon.Status.FirstSeenAt == nil || d.CreationTimestamp.Before(canon.Status.FirstSeenAt) {
		canon.Status.FirstSeenAt = d.CreationTimestamp.DeepCopy()
	}
}

// foldInto writes the batch count already made on canon since orig
// (occurrences and journal) in one write, then marks the duplicates and
// clears the journal.
func (r *AlertReconciler) foldInto(ctx context.Context, canon, orig *v1.Alert, batch []*v1.Alert, byUID map[types.UID]*v1.Alert, now time.Time) error {
	if canon == nil || len(batch) == 0 {
		return nil
	}
	canon.Status.ObservedGeneration = canon.Generation
	if err := r.patchStatus(ctx, canon, orig); err != nil {
		return fmt.Errorf("failed to count %d occurrences into Alert %s: %w", len(batch), klog.KObj(canon), err)
	}
	metrics.Folds.Add(float64(len(batch)))
	return r.finishFolds(ctx, canon, byUID, now)
}

// finishFolds marks every journalled duplicate of canon that is still
// undecided, then clears the journal. Idempotent: run it again after any
// crash.
func (r *AlertReconciler) finishFolds(ctx context.Context, canon *v1.Alert, byUID map[types.UID]*v1.Alert, now time.Time) error {
	for _, uid := range canon.Status.PendingFolds {
		d := byUID[types.UID(uid)]
		if d == nil || d.Status.Phase != "" {
			continue // gone, or marked by an earlier run: counted here either way
		}
		orig := d.DeepCopy()
		alertstate.MarkDuplicate(&d.Status, fingerprint.Of(d), canon.Name, d.CreationTimestamp, d.Generation, now)
		if err := r.patchStatus(ctx, d, orig); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("failed to mark Alert %s as a duplicate of %s: %w", klog.KObj(d), canon.Name, err)
		}
	}
	orig := canon.DeepCopy()
	canon.Status.PendingFolds = nil
	if err := r.patchStatus(ctx, canon, orig); err != nil {
		return fmt.Errorf("failed to clear the fold journal of Alert %s: %w", klog.KObj(canon), err)
	}
	return nil
}

// patchStatus writes a's status, changed from orig, through the one Alert
// status writer: a conflict goes back to the work queue.
func (r *AlertReconciler) patchStatus(ctx context.Context, a, orig *v1.Alert) error {
	return alertstate.Writer{Client: r.Client}.Patch(ctx, a, orig)
}

// firedBy records in s the firing instance that created a, if one did: an
// Alertmanager firing (the intake marks such an Alert with Alertmanager's
// fingerprint) or a burn the operator raised on its own account (its
// slo_burn Alerts carry the operator's origin label). Either way the key is
// the ingest-key annotation, which only the operator may write.
func firedBy(s *v1.AlertStatus, a *v1.Alert) {
	if a.Annotations[v1.AlertmanagerFingerprintAnnotation] != "" || a.Labels[v1.OriginLabel] == v1.OriginOperator {
		alertstate.Fired(s, a.Annotations[v1.IngestKeyAnnotation])
	}
}
