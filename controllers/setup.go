package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/notify"
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
	// NotificationBackoff is the first delay between notification retries
	// (--notification-backoff); zero means the default.
	NotificationBackoff time.Duration
	// DashboardURL is the dashboard's external URL, linked from
	// notifications (--dashboard-url); empty means no links.
	DashboardURL string
	// Grants says how a namespace lets the operator read the Secrets its
	// objects name and run triage Jobs (internal/operator fills in the
	// operator's ServiceAccount).
	Grants Grants
	// Only limits SetupAll to these controllers; empty means every one, as
	// shipped. A spec of one controller runs it without the others, so a
	// failure points at that controller.
	Only []Controller
}

// Controller names a group of reconcilers SetupAll registers.
type Controller string

// The controllers of SetupAll.
const (
	// AlertController drives the Alert state machine: decisions, folds,
	// leases, retries, retention and the Silenced condition.
	AlertController Controller = "alert"
	// IncidentController keeps Incidents, runs triage and converts Alerts
	// automatically.
	IncidentController Controller = "incident"
	// SLOPolicyController evaluates SLOPolicies and decides their gates.
	SLOPolicyController Controller = "slopolicy"
	// SilenceController keeps Silences' state.
	SilenceController Controller = "silence"
	// NotificationController tells Receivers about Incidents and Alerts,
	// and keeps Receivers' state.
	NotificationController Controller = "notification"
)

func (o Options) runs(c Controller) bool { return len(o.Only) == 0 || slices.Contains(o.Only, c) }

// SetupAll registers every reconciler with mgr. The mirror's reconcilers
// are controllers/mirror; internal/operator sets up both, for main.go and
// the test suites alike, so tests run the operator exactly as it ships.
func SetupAll(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	setups := []struct {
		c     Controller
		setup func() error
	}{
		{AlertController, func() error { return setupAlerts(ctx, mgr, opts, clk) }},
		{IncidentController, func() error { return setupIncidents(mgr, opts, clk) }},
		{SLOPolicyController, func() error { return setupSLOPolicies(mgr, opts, clk) }},
		{SilenceController, func() error { return setupSilences(mgr, clk) }},
		{NotificationController, func() error { return setupNotifications(mgr, opts, clk) }},
	}
	for _, s := range setups {
		if !opts.runs(s.c) {
			continue
		}
		if err := s.setup(); err != nil {
			return err
		}
	}
	return nil
}

func setupAlerts(ctx context.Context, mgr ctrl.Manager, opts Options, clk clock.PassiveClock) error {
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
	return nil
}

func setupSLOPolicies(mgr ctrl.Manager, opts Options, clk clock.PassiveClock) error {
	slos := &SLOPolicyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("alertbridge-slopolicy"),
		Clock:     clk,
		Intake:    &intake.Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clk},
		Grants:    opts.Grants,
	}
	if err := slos.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the SLOPolicy controller: %w", err)
	}
	return nil
}

func setupSilences(mgr ctrl.Manager, clk clock.PassiveClock) error {
	silences := &SilenceReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("alertbridge-silence"),
		Clock:    clk,
	}
	if err := silences.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the Silence controller: %w", err)
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
		Grants:         opts.Grants,
	}
	if err := incidents.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the Incident controller: %w", err)
	}
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return fmt.Errorf("failed to create a direct client: %w", err)
	}
	auto := &AutoIncidentReconciler{Client: mgr.GetClient(), Direct: direct, Clock: clk}
	if err := auto.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the automatic Incident conversion: %w", err)
	}
	return nil
}

// setupNotifications registers the controllers that tell Receivers about
// Incidents and new Alerts; they share the Receivers' rate limits and
// health.
func setupNotifications(mgr ctrl.Manager, opts Options, clk clock.PassiveClock) error {
	gates, pending := &notify.Gates{}, &pendingSet{}
	n := &NotificationReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("alertbridge-notification"),
		Clock: clk, Backoff: opts.NotificationBackoff, DashboardURL: opts.DashboardURL, MirrorEnabled: opts.MirrorEnabled,
		Gates: gates, Grants: opts.Grants, pending: pending,
	}
	if err := n.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the notification controller: %w", err)
	}
	rc := &ReceiverReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("alertbridge-receiver"),
		Clock: clk, Backoff: opts.NotificationBackoff, DashboardURL: opts.DashboardURL, Gates: gates, Grants: opts.Grants, pending: pending,
	}
	if err := rc.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the Receiver controller: %w", err)
	}
	return nil
}
