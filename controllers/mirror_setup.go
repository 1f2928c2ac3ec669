package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Defaults of MirrorOptions.
const (
	DefaultPruneInterval     = time.Hour
	DefaultMirrorConcurrency = 4
	DefaultProbeNamespace    = "default"
)

// MirrorOptions configure the PostgreSQL mirror.
type MirrorOptions struct {
	// Store is the database; nil turns the mirror off.
	Store *mirror.Store
	// Migrate applies pending schema migrations at start (retrying while
	// the database is unreachable).
	Migrate bool
	// Concurrency is the number of parallel writes per kind.
	Concurrency int
	// MaxBackoff caps the retry delay of a failed write.
	MaxBackoff time.Duration
	// PruneInterval is how often rows past the database retention are deleted.
	PruneInterval time.Duration
	// ProbeNamespace is where the operator dry-runs an Alert create to see
	// the finalizer policy take effect.
	ProbeNamespace string
	// AdmissionWait bounds that wait.
	AdmissionWait time.Duration
}

// setupMirror installs (or, with the mirror off, removes) the finalizer
// policy and registers the mirror controllers and the retention loop.
func setupMirror(ctx context.Context, mgr ctrl.Manager, o MirrorOptions, clk clock.PassiveClock) error {
	log := ctrl.LoggerFrom(ctx).WithName("mirror")
	on := o.Store != nil
	health.reset(on, clk.Now)
	if on {
		if o.Migrate {
			if err := mgr.Add(&migrateRunnable{store: o.Store}); err != nil {
				return fmt.Errorf("failed to add the migration runnable: %w", err)
			}
		}
		if o.ProbeNamespace == "" {
			o.ProbeNamespace = DefaultProbeNamespace
		}
		if err := InstallFinalizerPolicy(ctx, mgr.GetClient(), o.ProbeNamespace, max(o.AdmissionWait, DefaultAdmissionWait)); err != nil {
			return err
		}
		if err := mgr.Add(&pruneRunnable{store: o.Store, reader: mgr.GetClient(), clock: clk, every: o.PruneInterval}); err != nil {
			return fmt.Errorf("failed to add the retention runnable: %w", err)
		}
	} else {
		log.Info("WARNING: neither ALERT_DATABASE_URL nor DATABASE_URL is set: the PostgreSQL mirror is off and history is not kept beyond the cluster")
		if err := RemoveFinalizerPolicy(ctx, mgr.GetClient()); err != nil {
			return err
		}
	}
	if err := (&MirrorStatusReconciler{Client: mgr.GetClient(), Store: o.Store}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the mirror status controller: %w", err)
	}
	conc := o.Concurrency
	if conc <= 0 {
		conc = DefaultMirrorConcurrency
	}
	rec := mgr.GetEventRecorder("alertbridge-mirror")
	for _, setup := range []func(ctrl.Manager) error{
		(&MirrorReconciler[*v1.Alert]{Client: mgr.GetClient(), Recorder: rec, Clock: clk, Store: o.Store, MaxBackoff: o.MaxBackoff, MaxConcurrentReconciles: conc, kind: alertMirror, health: health}).SetupWithManager,
		(&MirrorReconciler[*v1.Incident]{Client: mgr.GetClient(), Recorder: rec, Clock: clk, Store: o.Store, MaxBackoff: o.MaxBackoff, MaxConcurrentReconciles: conc, kind: incidentMirror, health: health}).SetupWithManager,
		(&MirrorReconciler[*v1.SLOPolicy]{Client: mgr.GetClient(), Recorder: rec, Clock: clk, Store: o.Store, MaxBackoff: o.MaxBackoff, MaxConcurrentReconciles: conc, kind: sloPolicyMirror, health: health}).SetupWithManager,
	} {
		if err := setup(mgr); err != nil {
			return fmt.Errorf("failed to set up a mirror controller: %w", err)
		}
	}
	return nil
}

// migrateRunnable applies the schema at start, retrying with a capped
// backoff while the database is unreachable; the mirror controllers retry
// their writes meanwhile.
type migrateRunnable struct{ store *mirror.Store }

func (m *migrateRunnable) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("mirror")
	backoff := wait.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Cap: 10 * time.Second, Steps: 1 << 30}
	return wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		applied, err := m.store.Migrate(ctx, mirror.MigrateOptions{})
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
	store  *mirror.Store
	reader client.Reader
	clock  clock.PassiveClock
	every  time.Duration
}

// NeedLeaderElection: one replica prunes.
func (p *pruneRunnable) NeedLeaderElection() bool { return true }

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
	r := mirror.Retention{Default: policy.DatabaseRetention, ByNamespace: map[string]time.Duration{}}
	for i := range list.Items {
		arp := &list.Items[i]
		if arp.Name != v1.RoutingPolicyName {
			continue
		}
		r.ByNamespace[arp.Namespace] = policy.Policy{Spec: arp.Spec}.DatabaseRetention()
	}
	return p.store.Prune(ctx, r, p.clock.Now(), mirror.DefaultPruneBatch)
}

var _ manager.LeaderElectionRunnable = &pruneRunnable{}
