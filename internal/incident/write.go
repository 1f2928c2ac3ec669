package incident

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/metrics"
)

// Writer is the one way Incidents are written: a JSON merge patch carrying
// the resourceVersion it was computed from, so the API server refuses it
// (409) when anyone wrote in between and nothing is overwritten with stale
// data. The patch verb is all a writer needs, on the object and on status.
type Writer struct {
	Client client.Client
	// Reader is where each attempt reads the Incident; nil means Client.
	// It must not be a cache when a stale read would cost a conflict on
	// every write.
	Reader client.Reader
	// Retry is for callers without a work queue (the CLI, the HTTP API):
	// it paces the retries of a conflict, each on a fresh read (usually
	// kube.ConflictBackoff). Reconcilers leave it zero: the first conflict
	// is returned and the work queue retries.
	Retry wait.Backoff
	// MirrorOn says the PostgreSQL mirror runs (see Trim).
	MirrorOn bool
}

func (w Writer) reader() client.Reader {
	if w.Reader != nil {
		return w.Reader
	}
	return w.Client
}

// do runs write once, or for callers without a work queue until it meets
// no conflict (w.Retry's attempts); what names the object for the error.
func (w Writer) do(ctx context.Context, what string, write func() error) error {
	if w.Retry.Steps <= 1 {
		return write()
	}
	return kube.RetryConflictsWith(ctx, w.Retry, what, write)
}

// Status is the operator's status write: it reads the Incident, applies
// mutate and writes its status (PatchStatus, which trims and folds the
// timeline); mutate returns false when nothing is to be written. Every
// attempt starts from a fresh read, so mutate re-decides on it.
func (w Writer) Status(ctx context.Context, key client.ObjectKey, mutate func(*v1.Incident) (bool, error)) (*v1.Incident, error) {
	return w.status(ctx, key, mutate, func(orig, inc *v1.Incident) error {
		_, err := PatchStatus(ctx, w.Client, orig, inc, w.MirrorOn)
		return err
	})
}

// Append is the status write anyone allowed to patch incidents/status may
// make, and the one conversions and notes make whoever runs them: mutate
// may only append (AppendAlert, ApplyNote), and nothing is trimmed or
// folded (that is the operator's, which alertbridge-incident-status
// enforces). While the timeline holds as many entries as the CRD allows,
// the write waits, as for a conflict, for the operator to fold it.
func (w Writer) Append(ctx context.Context, key client.ObjectKey, mutate func(*v1.Incident) (bool, error)) (*v1.Incident, error) {
	full := false
	inc, err := w.status(ctx, key, mutate, func(orig, inc *v1.Incident) error {
		full = len(inc.Status.Timeline) > TimelineItems
		if full {
			return apierrors.NewConflict(v1.GroupVersion.WithResource("incidents").GroupResource(), key.Name, ErrTimelineFull)
		}
		return w.Client.Status().Patch(ctx, inc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil && full {
		// Still a conflict underneath: the CLI and the HTTP API say "try again".
		return nil, fmt.Errorf("%w; %w", ErrTimelineFull, err)
	}
	return inc, err
}

// ErrTimelineFull says why an append waits.
var ErrTimelineFull = fmt.Errorf("the timeline holds %d entries, as many as it may, until the alertbridge operator folds the oldest (it does so on its next write)", TimelineItems)

func (w Writer) status(ctx context.Context, key client.ObjectKey, mutate func(*v1.Incident) (bool, error),
	write func(orig, inc *v1.Incident) error) (*v1.Incident, error) {
	var inc v1.Incident
	err := w.do(ctx, "Incident "+key.String(), func() error {
		inc = v1.Incident{}
		if err := w.reader().Get(ctx, key, &inc); err != nil {
			return err
		}
		orig := inc.DeepCopy()
		changed, err := mutate(&inc)
		if err != nil || !changed {
			return err
		}
		return write(orig, &inc)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to update status of Incident %s: %w", key, err)
	}
	return &inc, nil
}

// Spec reads the Incident, applies mutate and writes it (spec and
// metadata) as a merge patch under the resourceVersion it read.
func (w Writer) Spec(ctx context.Context, key client.ObjectKey, mutate func(*v1.Incident) error) (*v1.Incident, error) {
	var inc v1.Incident
	err := w.do(ctx, "Incident "+key.String(), func() error {
		inc = v1.Incident{}
		if err := w.reader().Get(ctx, key, &inc); err != nil {
			return err
		}
		orig := inc.DeepCopy()
		if err := mutate(&inc); err != nil {
			return err
		}
		return w.Client.Patch(ctx, &inc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return nil, fmt.Errorf("failed to update Incident %s: %w", key, err)
	}
	return &inc, nil
}

// PatchStatus is the operator's write of inc's status: it bounds the
// timeline (Trim), keeps status.observedTimelineSeq on the newest entry
// when orig had nothing unseen (the operator has seen its own entries),
// and writes inc's status as a merge patch from orig under orig's
// resourceVersion; it writes nothing when the status equals orig's. A
// conflict is returned as it is. Entries the bound folded into a Summary
// are counted once the write lands.
func PatchStatus(ctx context.Context, c client.Client, orig, inc *v1.Incident, mirrorOn bool) (bool, error) {
	folded := Trim(inc, mirrorOn)
	if orig.Status.OpenedAt != nil && orig.Status.ObservedTimelineSeq == orig.Status.TimelineSeq {
		inc.Status.ObservedTimelineSeq = inc.Status.TimelineSeq
	}
	if equality.Semantic.DeepEqual(orig.Status, inc.Status) {
		return false, nil
	}
	if err := c.Status().Patch(ctx, inc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, err
	}
	metrics.TimelineSummarised.Add(float64(folded))
	return true, nil
}
