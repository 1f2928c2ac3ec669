package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Options tune the reconcilers; zero values mean the defaults.
type Options struct {
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.PassiveClock
	// DuplicateGCDelay is how long folded duplicates stay visible.
	DuplicateGCDelay time.Duration
	// AlertConcurrency is the number of fingerprints folded in parallel.
	AlertConcurrency int
}

// SetupAll registers every reconciler with mgr. main.go and the test suites
// share it, so tests run the operator exactly as it ships.
func SetupAll(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	alerts := &AlertReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("alertbridge-alert"),
		Clock:                   clk,
		DuplicateGCDelay:        opts.DuplicateGCDelay,
		MaxConcurrentReconciles: opts.AlertConcurrency,
	}
	if err := alerts.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("failed to set up the Alert controller: %w", err)
	}
	slos := &SLOPolicyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("alertbridge-slopolicy"),
		Clock:     clk,
	}
	if err := slos.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the SLOPolicy controller: %w", err)
	}
	return nil
}
