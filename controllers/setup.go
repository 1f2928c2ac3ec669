package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/intake"
)

// Options tune the reconcilers; zero values mean the defaults.
type Options struct {
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.PassiveClock
	// DuplicateGCDelay is how long folded duplicates stay visible.
	DuplicateGCDelay time.Duration
	// AlertConcurrency is the number of fingerprints folded in parallel.
	AlertConcurrency int
	// MirrorEnabled says the PostgreSQL mirror runs (internal/operator
	// sets it when the mirror of controllers/mirror is on): Incident
	// timelines then only lose entries the mirror has written.
	MirrorEnabled bool
	// TriageWebhookBackoff is the first delay between triage webhook
	// retries; zero means the default.
	TriageWebhookBackoff time.Duration
}

// SetupAll registers every reconciler with mgr. The mirror's reconcilers
// are controllers/mirror; internal/operator sets up both, for main.go and
// the test suites alike, so tests run the operator exactly as it ships.
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
	if err := setupIncidents(mgr, opts, clk); err != nil {
		return err
	}
	slos := &SLOPolicyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("alertbridge-slopolicy"),
		Clock:     clk,
		Intake:    &intake.Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clk},
	}
	if err := slos.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the SLOPolicy controller: %w", err)
	}
	return nil
}

func setupIncidents(mgr ctrl.Manager, opts Options, clk clock.PassiveClock) error {
	incidents := &IncidentReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("alertbridge-incident"),
		Clock:          clk,
		WebhookBackoff: opts.TriageWebhookBackoff,
		MirrorEnabled:  opts.MirrorEnabled,
	}
	if err := incidents.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the Incident controller: %w", err)
	}
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("failed to create a direct client: %w", err)
	}
	auto := &AutoIncidentReconciler{Client: mgr.GetClient(), Direct: direct, Clock: clk, MirrorEnabled: opts.MirrorEnabled}
	if err := auto.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the automatic Incident conversion: %w", err)
	}
	return nil
}
