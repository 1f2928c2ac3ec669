package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Elector elects, among the HTTP API's replicas, the one that counts every
// occurrence (Router's owner), with a Lease as controller-runtime elects
// the controller manager's leader. Every replica is a candidate; the
// holder's identity carries its peer address, so the others learn where to
// send occurrences from the Lease they watch to take over.
type Elector struct {
	Client kubernetes.Interface
	// Lease is the Lease's namespace and name.
	Lease types.NamespacedName
	// Name is this replica's name (its pod), Address its peer address
	// (host:port) as the other replicas reach it.
	Name, Address string

	elector atomic.Pointer[leaderelection.LeaderElector]
}

// Lease timing: controller-runtime's defaults for a leader, so a dead
// owner's occurrences are counted locally by the others (see Router) for at
// most LeaseDuration before a new owner takes them.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// NeedLeaderElection is false: every replica is a candidate.
func (*Elector) NeedLeaderElection() bool { return false }

// Owner is Router.Owner.
func (e *Elector) Owner() (string, bool) {
	le := e.elector.Load()
	if le == nil {
		return "", false
	}
	if le.IsLeader() {
		return e.Address, true
	}
	addr := addressOf(le.GetLeader())
	if addr == e.Address {
		return "", false // an earlier run of this replica: not known to lead now
	}
	return addr, false
}

// identity is NAME_ADDRESS_NONCE: unique per run of a replica, readable in
// `kubectl get lease`, and carrying the peer address.
func (e *Elector) identity() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return e.Name + "_" + e.Address + "_" + hex.EncodeToString(b)
}

func addressOf(identity string) string {
	parts := strings.Split(identity, "_")
	if len(parts) < 3 {
		return ""
	}
	return parts[len(parts)-2]
}

// Start stands for the Lease until ctx ends, and again after each loss.
func (e *Elector) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("intake-owner").WithValues("lease", e.Lease.String())
	for ctx.Err() == nil {
		id := e.identity()
		lock, err := resourcelock.New(resourcelock.LeasesResourceLock, e.Lease.Namespace, e.Lease.Name,
			e.Client.CoreV1(), e.Client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
		if err != nil {
			return fmt.Errorf("failed to make the intake's Lease lock: %w", err)
		}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, Name: e.Lease.Name,
			LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			// On shutdown the Lease is given up at once, so the next owner
			// takes over without waiting for it to expire.
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { log.Info("This replica counts every occurrence", "identity", id) },
				OnStoppedLeading: func() { log.Info("This replica no longer counts every occurrence", "identity", id) },
				OnNewLeader: func(holder string) {
					if holder != id {
						log.Info("Occurrences go to another replica", "owner", holder)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("failed to elect the intake's owner: %w", err)
		}
		e.elector.Store(le)
		le.Run(ctx)
	}
	return nil
}
