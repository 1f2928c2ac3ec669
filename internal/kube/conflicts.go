package kube

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
)

// ConflictBackoff paces the retries of a write that met a 409 Conflict on
// a path without a work queue (the CLI, the HTTP API, MCP):
// a few attempts, each wait doubling and spread by full jitter so racing
// callers do not collide again in step (at most ~0.75 s of waiting in
// all). Reconcilers never use it: they return the conflict and the work
// queue retries.
var ConflictBackoff = wait.Backoff{Steps: 5, Duration: 25 * time.Millisecond, Factor: 2, Jitter: 1, Cap: 400 * time.Millisecond}

// ContendedError is a write that still met a conflict after its attempts
// (ConflictBackoff's, or the caller's own backoff): other writers kept
// changing the object.
// It unwraps to the last 409, so apierrors.IsConflict holds; the CLI exits
// 5 and the HTTP API answers 503 for it.
type ContendedError struct {
	// What names the object, e.g. "Incident prod/inc-3f9c-1".
	What     string
	Attempts int
	Err      error
}

func (e *ContendedError) Error() string {
	return fmt.Sprintf("%s kept changing under other writers (%d attempts, each on a fresh read): "+
		"this write did not land; try again in a moment", e.What, e.Attempts)
}

func (e *ContendedError) Unwrap() error { return e.Err }

// RetryConflicts runs write until it returns anything but a conflict, at
// most ConflictBackoff.Steps times; write must read the object afresh and
// write under the resourceVersion it read. When the attempts are spent it
// returns a *ContendedError naming what.
func RetryConflicts(ctx context.Context, what string, write func() error) error {
	return RetryConflictsWith(ctx, ConflictBackoff, what, write)
}

// RetryConflictsWith is RetryConflicts paced by b (at least one attempt).
func RetryConflictsWith(ctx context.Context, b wait.Backoff, what string, write func() error) error {
	steps := max(b.Steps, 1)
	for attempt := 1; ; attempt++ {
		err := write()
		if !apierrors.IsConflict(err) {
			return err
		}
		if attempt >= steps {
			return &ContendedError{What: what, Attempts: attempt, Err: err}
		}
		t := time.NewTimer(b.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
