package alertstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
)

var key = client.ObjectKey{Namespace: "prod", Name: "gateway-latency"}

// racing is an API server where someone else writes the Alert between
// each of our reads and our write, `races` times; patches counts the
// status patches that reached it.
func racing(t *testing.T, races int) (c client.Client, patches *int) {
	t.Helper()
	a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Status: v1.AlertStatus{Phase: v1.AlertNew, Occurrences: 1}}
	patches = new(int)
	c = fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithStatusSubresource(&v1.Alert{}).WithObjects(a).
		WithInterceptorFuncs(interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			*patches++
			if races > 0 {
				races--
				var other v1.Alert
				if err := c.Get(ctx, key, &other); err != nil {
					return err
				}
				other.Status.Occurrences++
				if err := c.Status().Update(ctx, &other); err != nil {
					return err
				}
			}
			return c.Status().Patch(ctx, obj, p, opts...)
		}}).Build()
	return c, patches
}

func count(a *v1.Alert) (bool, error) {
	a.Status.Occurrences++
	return true, nil
}

var fast = wait.Backoff{Steps: 3, Duration: time.Millisecond}

func TestPatchNeverOverwritesAnotherWrite(t *testing.T) {
	c, _ := racing(t, 1)
	var a v1.Alert
	if err := c.Get(context.Background(), key, &a); err != nil {
		t.Fatal(err)
	}
	orig := a.DeepCopy()
	a.Status.Occurrences = 7
	err := alertstate.Writer{Client: c}.Patch(context.Background(), &a, orig)
	if !apierrors.IsConflict(err) {
		t.Fatalf("a write on a copy someone changed since: got %v, want a conflict", err)
	}
}

func TestQueuedCallersGetTheFirstConflict(t *testing.T) {
	c, patches := racing(t, 1)
	_, err := alertstate.Writer{Client: c}.Update(context.Background(), key, nil, count)
	if !apierrors.IsConflict(err) || *patches != 1 {
		t.Fatalf("got %v after %d patches, want the first conflict after 1", err, *patches)
	}
}

func TestUnqueuedCallersRetryOnAFreshRead(t *testing.T) {
	c, patches := racing(t, 2)
	a, err := alertstate.Writer{Client: c, Retry: fast}.Update(context.Background(), key, nil, count)
	if err != nil {
		t.Fatal(err)
	}
	// 1, two other writers' counts, then ours on what they left: nothing lost.
	if a.Status.Occurrences != 4 || *patches != 3 {
		t.Fatalf("occurrences %d after %d patches, want 4 after 3", a.Status.Occurrences, *patches)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	c, patches := racing(t, 5)
	_, err := alertstate.Writer{Client: c, Retry: fast}.Update(context.Background(), key, nil, count)
	var contended *kube.ContendedError
	if !errors.As(err, &contended) || !apierrors.IsConflict(err) || *patches != fast.Steps {
		t.Fatalf("got %v after %d patches, want a ContendedError (a conflict) after %d", err, *patches, fast.Steps)
	}
}

func TestAStaleCopyIsDecidedAgain(t *testing.T) {
	c, patches := racing(t, 0)
	stale := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, ResourceVersion: "1"},
		Status: v1.AlertStatus{Phase: v1.AlertAcked}}
	claim := func(a *v1.Alert) (bool, error) {
		if a.Status.Phase != v1.AlertNew {
			return false, errors.New("not New")
		}
		a.Status.Phase = v1.AlertProcessing
		return true, nil
	}
	// Queued or not, a refusal on the caller's copy is decided again on
	// the API server's.
	a, err := alertstate.Writer{Client: c}.Update(context.Background(), key, stale, claim)
	if err != nil || a.Status.Phase != v1.AlertProcessing || *patches != 1 {
		t.Fatalf("got %v, phase %q after %d patches; want Processing after 1", err, a.Status.Phase, *patches)
	}
}

func TestNothingToWriteSendsNothing(t *testing.T) {
	c, patches := racing(t, 0)
	_, err := alertstate.Writer{Client: c}.Update(context.Background(), key, nil, func(*v1.Alert) (bool, error) { return false, nil })
	if err != nil || *patches != 0 {
		t.Fatalf("got %v after %d patches, want nothing sent", err, *patches)
	}
}
