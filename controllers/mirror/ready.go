package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	mirrordb "github.com/alertbridge/alertbridge/internal/mirror"
)

// Mode says whether the operator runs the PostgreSQL mirror
// (`alertbridge run --mirror`).
type Mode string

// Mirror modes.
const (
	// Required: the mirror must run. At start the operator is not
	// ready until PostgreSQL has answered once and its schema is current;
	// after that an outage only delays the mirror (the Mirrored condition
	// and the alertbridge_mirror_* metrics say it is behind). Without a
	// database URL the operator runs nothing and is never ready.
	Required Mode = "required"
	// Optional: the mirror runs when a database URL is set.
	Optional Mode = "optional"
	// Off: no mirror, even with a database URL.
	Off Mode = "off"
)

// Modes lists the modes, for flags and messages.
var Modes = []Mode{Required, Optional, Off}

// ParseMode reads a --mirror value.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", fmt.Errorf("--mirror: %q is not one of required, optional, off", s)
}

// ReadyzName is the name of the mirror's readiness check: /readyz/mirror
// answers why the operator is not ready.
const ReadyzName = "mirror"

// readinessPoll is how often a waiting replica looks at the database again.
const readinessPoll = time.Second

// errNoDatabase is the readiness answer of --mirror=required without a
// database URL.
var errNoDatabase = errors.New("--mirror=required but no database URL is set: set ALERT_DATABASE_URL or DATABASE_URL " +
	"(the shipped Deployment reads Secret alertbridge-database, key url) or --database-url; " +
	"an install without durable history uses --mirror=off (config/without-mirror)")

// readiness is the mirror's part of /readyz. With --mirror=required
// it fails until PostgreSQL has answered once and the schema is current,
// then passes for good: a later outage delays the mirror but never makes
// the operator unready, so ingest, claims and gates go on. Every replica
// runs it (not only the leader), since every replica serves.
type readiness struct {
	store *mirrordb.Store

	mu     sync.Mutex
	ready  bool
	reason string
}

// newReadiness is nil when the mode has nothing to wait for.
func newReadiness(o Options) *readiness {
	if o.Mode != Required {
		return nil
	}
	return &readiness{store: o.Store, reason: "waiting for the first check of PostgreSQL"}
}

// Check is the readiness check.
func (r *readiness) Check(*http.Request) error {
	if r == nil {
		return nil
	}
	if r.store == nil {
		return errNoDatabase
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready {
		return nil
	}
	return errors.New(r.reason)
}

// NeedLeaderElection: every replica decides its own readiness.
func (r *readiness) NeedLeaderElection() bool { return false }

// Start looks at the database until it answers with a current schema,
// logging each new reason to wait.
func (r *readiness) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("mirror")
	_ = wait.PollUntilContextCancel(ctx, readinessPoll, true, func(ctx context.Context) (bool, error) {
		reason := r.waitingFor(ctx)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		r.mu.Lock()
		changed := reason != r.reason
		r.ready, r.reason = reason == "", reason
		r.mu.Unlock()
		switch {
		case reason == "":
			log.Info("Ready: PostgreSQL answered and the schema is current (--mirror=required)")
			return true, nil
		case changed:
			log.Info("Not ready yet: --mirror=required waits for PostgreSQL", "reason", reason)
		}
		return false, nil
	})
	return nil
}

// waitingFor is why the operator cannot be ready yet; "" when it can.
func (r *readiness) waitingFor(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, mirrordb.DefaultConnectTimeout+time.Second)
	defer cancel()
	if err := r.store.Ping(ctx); err != nil {
		return fmt.Sprintf("PostgreSQL does not answer: %v", err)
	}
	pending, err := r.store.PendingMigrations(ctx)
	if err != nil {
		return fmt.Sprintf("cannot read the schema version: %v", err)
	}
	if len(pending) > 0 {
		names := make([]string, len(pending))
		for i, m := range pending {
			names[i] = fmt.Sprintf("%04d_%s", m.Version, m.Name)
		}
		return fmt.Sprintf("the database schema is behind this binary (not applied: %s): run `alertbridge migrate`, or start with --migrate",
			strings.Join(names, ", "))
	}
	return ""
}

var _ manager.LeaderElectionRunnable = &readiness{}
