package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestRetryConflicts(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "ops.alertbridge.io", Resource: "incidents"}, "inc-1", errors.New("the object has been modified"))
	calls := 0
	err := RetryConflicts(context.Background(), "Incident prod/inc-1", func() error {
		calls++
		if calls < 3 {
			return conflict
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("want success on the third attempt, got %v after %d", err, calls)
	}

	calls = 0
	err = RetryConflicts(context.Background(), "Incident prod/inc-1", func() error { calls++; return conflict })
	var contended *ContendedError
	if !errors.As(err, &contended) || calls != ConflictBackoff.Steps || !apierrors.IsConflict(err) {
		t.Fatalf("want a ContendedError (still a conflict) after %d attempts, got %v after %d", ConflictBackoff.Steps, err, calls)
	}
	for _, want := range []string{"Incident prod/inc-1 kept changing", "try again in a moment"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%q lacks %q", err, want)
		}
	}

	calls = 0
	other := errors.New("forbidden")
	if err := RetryConflicts(context.Background(), "x", func() error { calls++; return other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("anything but a conflict is returned at once: %v after %d", err, calls)
	}
}
