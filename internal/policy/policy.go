// Package policy resolves the effective settings of a namespace: a CLI flag
// beats the namespace's AlertRoutingPolicy, which beats the built-in default.
package policy

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Built-in defaults.
const (
	DedupeTTL         = 30 * time.Minute
	ProcessingLockTTL = 10 * time.Minute
	MaxLeaseDuration  = time.Hour
	RetryAfter        = 5 * time.Minute
	TriageCooldown    = 15 * time.Minute
	IncidentDedupe    = 60 * time.Minute
	ResolvedInCluster = 24 * time.Hour
	DatabaseRetention = 720 * time.Hour
)

// Policy is a namespace's AlertRoutingPolicy spec; the zero value means
// "no policy", and every accessor falls back to the built-in default.
type Policy struct {
	Spec v1.AlertRoutingPolicySpec
}

// Get reads the namespace's policy named default; a missing one is not an
// error.
func Get(ctx context.Context, c client.Reader, namespace string) (Policy, error) {
	var p v1.AlertRoutingPolicy
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v1.RoutingPolicyName}, &p)
	if apierrors.IsNotFound(err) {
		return Policy{}, nil
	}
	if err != nil {
		return Policy{}, err
	}
	return Policy{Spec: p.Spec}, nil
}

func or(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}

// DedupeTTL is the effective dedupe TTL of an Alert.
func (p Policy) DedupeTTL(a *v1.Alert) time.Duration {
	if a.Spec.DedupeTTL != nil && a.Spec.DedupeTTL.Duration > 0 {
		return a.Spec.DedupeTTL.Duration
	}
	return or(p.Spec.DedupeTTL, DedupeTTL)
}

// ProcessingLockTTL is the default claim lease.
func (p Policy) ProcessingLockTTL() time.Duration {
	return or(p.Spec.ProcessingLockTTL, ProcessingLockTTL)
}

// MaxLeaseDuration is the longest lease of the namespace, in one claim or
// one renewal.
func (p Policy) MaxLeaseDuration() time.Duration {
	return or(p.Spec.MaxLeaseDuration, MaxLeaseDuration)
}

// RetryAfter is the default delay before a Failed Alert is New again.
func (p Policy) RetryAfter() time.Duration { return or(p.Spec.RetryAfter, RetryAfter) }

// TriageCooldown is the per-signature triage cooldown.
func (p Policy) TriageCooldown() time.Duration { return or(p.Spec.TriageCooldown, TriageCooldown) }

// ResolvedInCluster is how long terminal objects stay in the cluster.
func (p Policy) ResolvedInCluster() time.Duration {
	if p.Spec.Retention == nil {
		return ResolvedInCluster
	}
	return or(p.Spec.Retention.ResolvedInCluster, ResolvedInCluster)
}

// DatabaseRetention is how long mirrored rows stay in PostgreSQL.
func (p Policy) DatabaseRetention() time.Duration {
	if p.Spec.Retention == nil {
		return DatabaseRetention
	}
	return or(p.Spec.Retention.Database, DatabaseRetention)
}

// KindAllowed reports whether the policy lets Alerts of kind in.
func (p Policy) KindAllowed(kind string) bool {
	if len(p.Spec.AllowedKinds) == 0 {
		return true
	}
	for _, k := range p.Spec.AllowedKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Flag returns flag when it was set (non-zero), else def: a CLI flag beats
// the policy.
func Flag(flag, def time.Duration) time.Duration {
	if flag > 0 {
		return flag
	}
	return def
}

// SilenceMaxDuration is the longest a Silence of the namespace may last;
// zero means the built-in default (internal/silence.DefaultMaxDuration).
func (p Policy) SilenceMaxDuration() time.Duration {
	if p.Spec.Silences == nil || p.Spec.Silences.MaxDuration == nil {
		return 0
	}
	return p.Spec.Silences.MaxDuration.Duration
}
