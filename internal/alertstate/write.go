package alertstate

import (
	"context"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
)

// Writer is the one way alertbridge writes an Alert's status, whoever the
// writer is (the controller, the intake, a claimer, a conversion): a JSON
// merge patch from the copy the change was computed on, carrying that
// copy's resourceVersion. Only the fields that changed are sent, and a
// write anyone made since the read is refused (409 Conflict), never
// overwritten. The patch verb on alerts/status is all a writer needs.
//
// There is one conflict policy. A caller with a work queue (a reconciler,
// the intake's per-fingerprint queue, a claim choosing among candidates)
// leaves Retry zero and gets the first conflict back: its queue decides
// again on a fresh read. A caller without one (a CLI command, an HTTP
// request) sets Retry, usually kube.ConflictBackoff: Update then retries a
// conflict on a fresh read, a bounded number of times, and reports a
// *kube.ContendedError when the attempts are spent.
type Writer struct {
	Client client.Client
	// Reader is where Update reads the Alert; nil means Client. It must
	// not be a cache when a stale read would cost a conflict on every
	// write.
	Reader client.Reader
	// Retry paces Update's retries of a conflict; zero returns the first.
	Retry wait.Backoff
}

// Patch writes a's status, changed from orig, in one attempt. A conflict
// is returned as the API server gave it.
func (w Writer) Patch(ctx context.Context, a, orig *v1.Alert) error {
	return w.Client.Status().Patch(ctx, a, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// Update applies change to the Alert key and writes what it changed;
// change reports false when there is nothing to write, and its error ends
// the write unsent. Each attempt reads the Alert afresh, so change decides
// on what the API server holds now. The first attempt may start from
// known instead (a copy the caller holds, which may be stale): only a
// write that lands stands on it; any other answer (a refusal, nothing to
// write, a conflict) is decided again on a fresh read. Update returns the Alert as last read or written.
func (w Writer) Update(ctx context.Context, key client.ObjectKey, known *v1.Alert,
	change func(*v1.Alert) (bool, error)) (*v1.Alert, error) {
	attempt := func(a *v1.Alert) (bool, error) {
		orig := a.DeepCopy()
		changed, err := change(a)
		if err != nil || !changed {
			return false, err
		}
		return true, w.Patch(ctx, a, orig)
	}
	if known != nil {
		a := known.DeepCopy()
		if wrote, err := attempt(a); wrote && err == nil {
			return a, nil
		}
	}
	var a *v1.Alert
	write := func() error {
		a = &v1.Alert{}
		if err := w.reader().Get(ctx, key, a); err != nil {
			return err
		}
		_, err := attempt(a)
		return err
	}
	var err error
	if w.Retry.Steps <= 1 {
		err = write()
	} else {
		err = kube.RetryConflictsWith(ctx, w.Retry, "Alert "+key.String(), write)
	}
	return a, err
}

func (w Writer) reader() client.Reader {
	if w.Reader != nil {
		return w.Reader
	}
	return w.Client
}
