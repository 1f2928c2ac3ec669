// Package mirror holds the reconcilers of the PostgreSQL mirror: one per
// kind it writes (Alert, Incident, SLOPolicy), the Mirrored condition of
// AlertRoutingPolicies, the check of the finalizer policy, the readiness of
// --mirror=required, the migration at start and the database retention.
// The database itself (schema, upserts, reads) is internal/mirror.
//
// It shares no state with package controllers and imports nothing of it:
// the wiring (internal/operator) sets both up on one manager and hands the
// mirror its Health.
package mirror

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	mirrordb "github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Defaults of Options.
const (
	DefaultPruneInterval = time.Hour
	DefaultConcurrency   = 4
	// DefaultProbeNamespace is the operator's namespace as config/default
	// installs it, for when POD_NAMESPACE is not set.
	DefaultProbeNamespace = "alertbridge-system"
)

// Options configure the PostgreSQL mirror.
type Options struct {
	// Mode is --mirror; "" means Optional.
	Mode Mode
	// Store is the database; nil turns the mirror off (and, with
	// Required, keeps the operator from running at all).
	Store *mirrordb.Store
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.PassiveClock
	// Migrate applies pending schema migrations at start (retrying while
	// the database is unreachable).
	Migrate bool
	// Concurrency is the number of parallel writes per kind.
	Concurrency int
	// MaxBackoff caps the retry delay of a failed write.
	MaxBackoff time.Duration
	// PruneInterval is how often rows past the database retention are deleted.
	PruneInterval time.Duration
	// ProbeNamespace is the operator's own namespace, where it dry-runs an
	// Alert to check the finalizer policy; default DefaultProbeNamespace.
	ProbeNamespace string
	// PolicyCheckInterval is how often it checks; default
	// DefaultPolicyCheckInterval.
	PolicyCheckInterval time.Duration
}

// On says whether the mirror runs.
func (o Options) On() bool { return o.Store != nil && o.Mode != Off }

// SetupReadiness adds the mirror's readiness check. It reports false when
// the operator must not run at all: --mirror=required without a database,
// where running would mean running without durable history.
func SetupReadiness(ctx context.Context, mgr ctrl.Manager, o Options) (bool, error) {
	ready := newReadiness(o)
	if err := mgr.AddReadyzCheck(ReadyzName, ready.Check); err != nil {
		return false, fmt.Errorf("failed to add the mirror readiness check: %w", err)
	}
	if ready == nil {
		return true, nil
	}
	if o.Store == nil {
		ctrl.LoggerFrom(ctx).WithName("mirror").Error(errNoDatabase, "Not ready, and no controller runs: the PostgreSQL mirror is required and has no database")
		return false, nil
	}
	if err := mgr.Add(ready); err != nil {
		return false, fmt.Errorf("failed to add the mirror readiness runnable: %w", err)
	}
	return true, nil
}

// Setup registers the mirror controllers (which, with the mirror off,
// remove leftover finalizers and apply the in-cluster retention), the check
// of the finalizer policy, the migration and the database retention. They
// report to health, which belongs to mgr alone (NewHealth(o.On(), o.Clock)).
func Setup(ctx context.Context, mgr ctrl.Manager, o Options, health *Health) error {
	log := ctrl.LoggerFrom(ctx).WithName("mirror")
	clk := o.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	on := o.On()
	if !on {
		o.Store = nil
	}
	if on {
		if o.Migrate {
			if err := mgr.Add(&migrateRunnable{store: o.Store}); err != nil {
				return fmt.Errorf("failed to add the migration runnable: %w", err)
			}
		}
		if err := mgr.Add(&pruneRunnable{store: o.Store, reader: mgr.GetClient(), clock: clk, every: o.PruneInterval}); err != nil {
			return fmt.Errorf("failed to add the retention runnable: %w", err)
		}
	} else {
		log.Info("WARNING: the PostgreSQL mirror is off: history is not kept beyond the cluster", "reason", disabledReason(o.Mode))
	}
	policy := &finalizerPolicyCheck{Client: mgr.GetClient(), Namespace: cmp.Or(o.ProbeNamespace, DefaultProbeNamespace), MirrorOn: on, Interval: o.PolicyCheckInterval}
	if err := mgr.Add(policy); err != nil {
		return fmt.Errorf("failed to add the finalizer policy check: %w", err)
	}
	if err := (&StatusReconciler{Client: mgr.GetClient(), Store: o.Store, Mode: o.Mode, Policy: policy, Health: health}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the mirror status controller: %w", err)
	}
	conc := o.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	rec := mgr.GetEventRecorder("alertbridge-mirror")
	for _, setup := range []func(ctrl.Manager) error{
		(&Reconciler[*v1.Alert]{Client: mgr.GetClient(), Recorder: rec, Clock: clk, Store: o.Store, Health: health, MaxBackoff: o.MaxBackoff, MaxConcurrentReconciles: conc, kind: alertKind}).SetupWithManager,
		(&Reconciler[*v1.Incident]{Client: mgr.GetClient(), Recorder: rec, Clock: clk, Store: o.Store, Health: health, MaxBackoff: o.MaxBackoff, MaxConcurrentReconciles: conc, kind: incidentKind}).SetupWithManager,
		(&Reconciler[*v1.SLOPolicy]{Client: mgr.GetClient(), Recorder: rec, Clock: clk, Store: o.Store, Health: health, MaxBackoff: o.MaxBackoff, MaxConcurrentReconciles: conc, kind: sloPolicyKind}).SetupWithManager,
	} {
		if err := setup(mgr); err != nil {
			return fmt.Errorf("failed to set up a mirror controller: %w", err)
		}
	}
	return nil
}

// disabledReason says why the mirror is off.
func disabledReason(m Mode) string {
	if m == Off {
		return "--mirror=off"
	}
	return "neither ALERT_DATABASE_URL nor DATABASE_URL is set (--mirror=optional)"
}

// migrateRunnable applies the schema at start, retrying with a capped
// backoff while the database is unreachable; the mirror controllers retry
// their writes meanwhile.
type migrateRunnable struct{ store *mirrordb.Store }

func (m *migrateRunnable) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("mirror")
	backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Cap: 10 * time.Second, Steps: 1 << 30}
	return wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		applied, err := m.store.Migrate(ctx, mirrordb.MigrateOptions{})
		if err != nil {
			log.Error(err, "Schema migration failed; retrying")
			return false, nil
		}
		log.Info("Schema is current", "applied", applied)
		return true, nil
	})
}

// pruneRunnable deletes rows past each namespace's database retention.
type pruneRunnable struct {
	store  *mirrordb.Store
	reader client.Reader
	clock  clock.PassiveClock
	every  time.Duration
}

// NeedLeaderElection: one replica prunes.
func (p *pruneRunnable) NeedLeaderElection() bool { return true }

// The database retention reads each namespace's retention.database.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alertroutingpolicies,verbs=get;list;watch

func (p *pruneRunnable) Start(ctx context.Context) error {
	every := p.every
	if every <= 0 {
		every = DefaultPruneInterval
	}
	log := ctrl.LoggerFrom(ctx).WithName("mirror-retention")
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		n, err := p.pruneOnce(ctx)
		if err != nil {
			log.Error(err, "Database retention failed; retrying at the next interval")
			return
		}
		log.V(1).Info("Database retention done", "deleted", n)
	}, every)
	return nil
}

func (p *pruneRunnable) pruneOnce(ctx context.Context) (int64, error) {
	var list v1.AlertRoutingPolicyList
	if err := p.reader.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("failed to list AlertRoutingPolicies: %w", err)
	}
	r := mirrordb.Retention{Default: policy.DatabaseRetention, ByNamespace: map[string]time.Duration{}}
	for i := range list.Items {
		arp := &list.Items[i]
		if arp.Name != v1.RoutingPolicyName {
			continue
		}
		r.ByNamespace[arp.Namespace] = policy.Policy{Spec: arp.Spec}.DatabaseRetention()
	}
	return p.store.Prune(ctx, r, p.clock.Now(), mirrordb.DefaultPruneBatch)
}

var _ manager.LeaderElectionRunnable = &pruneRunnable{}
