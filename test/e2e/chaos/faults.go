package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/e2e/shipped"
)

// FaultKind is one way production fails.
type FaultKind string

// The faults a run injects.
const (
	KillLeader   FaultKind = "kill-9-leader"
	KillFollower FaultKind = "kill-9-follower"
	// KillAPI kills an HTTP API replica (the Deployment alertbridge-api).
	KillAPI FaultKind = "kill-9-api"
	// SIGTERM stops any replica, the manager's or the API's, as a rollout.
	SIGTERM   FaultKind = "sigterm-replica"
	PGOutage  FaultKind = "postgres-immediate-stop"
	APIServer FaultKind = "kube-apiserver-stop"
	EtcdStop  FaultKind = "etcd-kill-9"
)

// Fault is one scheduled fault.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// At is its offset from the storm's start.
	At time.Duration `json:"at"`
	// For is how long PostgreSQL, the API server or etcd stay down.
	For time.Duration `json:"for,omitempty"`
	// Replica picks the replica of a SIGTERM (among all, manager's first)
	// or of a KillAPI (among the API's): an index, modulo their number.
	Replica int `json:"replica,omitempty"`
}

func (f Fault) String() string {
	s := fmt.Sprintf("+%s %s", f.At.Round(time.Second), f.Kind)
	if f.For > 0 {
		s += fmt.Sprintf(" for %s", f.For.Round(100*time.Millisecond))
	}
	if f.Kind == SIGTERM || f.Kind == KillAPI {
		s += fmt.Sprintf(" (replica %d)", f.Replica)
	}
	return s
}

// Schedule derives the faults of a run from its seed: the leader's kill
// and a PostgreSQL outage first (in seeded order), then every other kind
// in seeded order, then seeded picks, one fault per slot of the storm.
// A run of at least 5 minutes holds PostgreSQL down for 60 s once.
func Schedule(seed int64, d time.Duration) []Fault {
	rng := seeded(seed, 0x5eed)
	// Short runs (chaos-many's 90 s) inject every kind once.
	slot := 12 * time.Second
	if d >= 5*time.Minute {
		slot = 25 * time.Second
	}
	n := max(3, int(d/slot))
	slot = d / time.Duration(n)
	head := []FaultKind{KillLeader, PGOutage}
	rest := []FaultKind{KillFollower, SIGTERM, KillAPI, APIServer, EtcdStop}
	rng.Shuffle(len(head), func(i, j int) { head[i], head[j] = head[j], head[i] })
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	kinds := slices.Concat(head, rest)
	all := []FaultKind{KillLeader, KillFollower, SIGTERM, KillAPI, PGOutage, APIServer, EtcdStop}
	var out []Fault
	longPG := d >= 5*time.Minute
	var at time.Duration
	for i := range n {
		k := all[rng.IntN(len(all))]
		if i < len(kinds) {
			k = kinds[i]
		}
		f := Fault{Kind: k, At: at + time.Duration(rng.Int64N(int64(slot/4)))}
		if f.At >= d {
			break
		}
		switch k {
		case PGOutage:
			f.For = 5*time.Second + time.Duration(rng.Int64N(int64(10*time.Second)))
			if longPG {
				f.For, longPG = 60*time.Second, false
			}
		case APIServer, EtcdStop:
			f.For = 2*time.Second + time.Duration(rng.Int64N(int64(5*time.Second)))
		case SIGTERM:
			f.Replica = rng.IntN(4)
		case KillAPI:
			f.Replica = rng.IntN(2)
		}
		out = append(out, f)
		at = max(at+slot, f.At+f.For+slot/2)
		if at >= d {
			break
		}
	}
	return out
}

// Injected is what a fault did and how long the system took to recover.
type Injected struct {
	Fault
	// Started is the wall-clock time it was injected.
	Started time.Time `json:"started"`
	// Target says which replica (and whether it led).
	Target string `json:"target,omitempty"`
	// Failover is from a leader's death to another run taking the Lease.
	Failover time.Duration `json:"failover,omitempty"`
	// CatchUp is from PostgreSQL's restart to every Alert change made
	// before it being in the mirror.
	CatchUp time.Duration `json:"catchUp,omitempty"`
	// Down is how long PostgreSQL, the API server or etcd did not answer:
	// from the stop to healthy again; Stopping is the part a graceful
	// stop took to exit.
	Down     time.Duration `json:"down,omitempty"`
	Stopping time.Duration `json:"stopping,omitempty"`
	// Ready is from the fault's end (the kill, the SIGTERMed replica's
	// exit, the restart of PostgreSQL, the API server or etcd) to every
	// replica answering /readyz again.
	Ready time.Duration `json:"ready,omitempty"`
	Err   string        `json:"err,omitempty"`
	// InFlight counts the journal's requests to the replica that were in
	// flight at its kill or SIGTERM or sent while it drained, until it
	// exited.
	InFlight int `json:"inFlight,omitempty"`

	url    string
	exited time.Time
}

// kubelet restarts a replica that exited, after restartDelay, as the
// kubelet restarts a container (the first restarts are immediate there;
// two seconds keeps a crash loop cheap).
const restartDelay = 2 * time.Second

type kubelet struct {
	mu       sync.Mutex
	restarts map[string]int
	reasons  []string
}

func (k *kubelet) supervise(ctx context.Context, r *shipped.Replica, wg *sync.WaitGroup) {
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.Done():
			}
			reason := "exit"
			if err := r.ExitErr(); err != nil {
				reason = err.Error()
			}
			if strings.Contains(r.Tail(30), "leader election lost") {
				reason += " (leader election lost)"
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(restartDelay):
			}
			k.mu.Lock()
			k.restarts[r.Name]++
			k.reasons = append(k.reasons, fmt.Sprintf("%s %s: %s", time.Now().UTC().Format(time.TimeOnly), r.Name, reason))
			k.mu.Unlock()
			if err := r.Start(); err != nil {
				k.mu.Lock()
				k.reasons = append(k.reasons, fmt.Sprintf("%s: restart failed: %v", r.Name, err))
				k.mu.Unlock()
			}
		}
	})
}

// inject runs f's fault and measures the recovery.
func (rn *runner) inject(ctx context.Context, f Fault, wg *sync.WaitGroup) *Injected {
	in := &Injected{Fault: f, Started: time.Now()}
	rn.mu.Lock()
	rn.injected = append(rn.injected, in)
	rn.mu.Unlock()
	fail := func(err error) *Injected {
		if err != nil {
			in.Err = err.Error()
		}
		return in
	}
	e := rn.env
	var end time.Time // when the fault ended: the kill, or the restart
	switch f.Kind {
	case KillLeader, KillFollower, SIGTERM, KillAPI:
		leader := e.Leader()
		var target *shipped.Replica
		switch f.Kind {
		case KillLeader:
			target = leader
		case KillFollower:
			for _, r := range e.Replicas {
				if r != leader {
					target = r
				}
			}
		case KillAPI:
			target = e.APIReplicas[f.Replica%len(e.APIReplicas)]
		default:
			all := e.All()
			target = all[f.Replica%len(all)]
		}
		if target == nil {
			return fail(fmt.Errorf("no replica to hit (leader %v)", leader))
		}
		led := target == leader
		in.Target, in.url = target.Name, target.APIURL
		if led {
			in.Target += " (leader)"
		}
		t0 := time.Now()
		var err error
		if f.Kind == SIGTERM {
			err = target.Terminate()
		} else {
			err = target.Kill()
		}
		if err != nil {
			return fail(err)
		}
		end = time.Now()
		in.exited = end
		if f.Kind == SIGTERM {
			// Readiness is measured from the exit: until then the replica
			// drains (unready) and may still answer its last probes.
			select {
			case <-target.Done():
			case <-time.After(time.Minute):
			}
			end = time.Now()
			in.exited = end
		}
		if led {
			wg.Go(func() { in.Failover = rn.waitFailover(context.WithoutCancel(ctx), t0) })
		}
	case PGOutage:
		t0 := time.Now()
		if err := e.HaltPostgres(ctx); err != nil {
			return fail(err)
		}
		sleep(context.WithoutCancel(ctx), f.For) // an outage lasts its time even past the storm's end
		if err := e.RestartPostgres(context.WithoutCancel(ctx)); err != nil {
			return fail(err)
		}
		restarted := time.Now()
		end = restarted
		in.Down = restarted.Sub(t0)
		// The backlog: every Alert as the API server holds it now.
		snap, err := rn.snapshot(context.WithoutCancel(ctx))
		if err != nil {
			return fail(err)
		}
		wg.Go(func() { in.CatchUp = rn.waitMirrored(context.WithoutCancel(ctx), snap, restarted) })
	case APIServer, EtcdStop:
		c, sig := shipped.KubeAPIServer, syscall.SIGTERM
		if f.Kind == EtcdStop {
			c, sig = shipped.Etcd, syscall.SIGKILL
		}
		t0 := time.Now()
		if err := e.StopControl(c, sig); err != nil {
			return fail(err)
		}
		in.Stopping = time.Since(t0)
		sleep(context.WithoutCancel(ctx), f.For) // an outage lasts its time even past the storm's end
		end = time.Now()
		if err := e.StartControl(context.WithoutCancel(ctx), c); err != nil {
			return fail(err)
		}
		in.Down = time.Since(t0)
	}
	in.Ready = rn.waitReady(ctx, end)
	return in
}

// catchUpLimit bounds a catch-up measurement; the oracle judges what is
// still missing at the end.
const catchUpLimit = 5 * time.Minute

// waitFailover returns how long after t0 a replica's run took the Lease.
func (rn *runner) waitFailover(ctx context.Context, t0 time.Time) time.Duration {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, r := range rn.env.Replicas {
			if at, ok := r.LeaseAcquiredAt(); ok && at.After(t0) {
				return at.Sub(t0)
			}
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return -1
}

func (rn *runner) waitReady(ctx context.Context, t0 time.Time) time.Duration {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	for _, r := range rn.env.All() {
		for wctx.Err() == nil {
			// The kubelet restarts a replica that exited; WaitReady gives
			// up on an exit, so it is asked again.
			if r.WaitReady(wctx) == nil {
				break
			}
			sleep(wctx, 500*time.Millisecond)
		}
	}
	if wctx.Err() != nil {
		return -1
	}
	return time.Since(t0)
}

// snapshot is every Alert's resourceVersion in the run's namespace.
func (rn *runner) snapshot(ctx context.Context) (map[string]string, error) {
	var list v1.AlertList
	var err error
	for range 60 {
		if err = rn.env.Admin.List(ctx, &list, client.InNamespace(rn.ns)); err == nil {
			break
		}
		sleep(ctx, time.Second)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(list.Items))
	for i := range list.Items {
		out[string(list.Items[i].UID)] = list.Items[i].ResourceVersion
	}
	return out, nil
}

// waitMirrored returns how long after t0 every Alert of snap had a row at
// least as new as snap's resourceVersion (-1: not within catchUpLimit).
func (rn *runner) waitMirrored(ctx context.Context, snap map[string]string, t0 time.Time) time.Duration {
	deadline := t0.Add(catchUpLimit)
	for time.Now().Before(deadline) {
		rows, err := rn.mirrorRows(ctx)
		if err == nil && caughtUp(snap, rows) {
			return time.Since(t0)
		}
		sleep(ctx, 250*time.Millisecond)
	}
	return -1
}

func caughtUp(snap map[string]string, rows map[string]mirrorRow) bool {
	for uid, rv := range snap {
		r, ok := rows[uid]
		if !ok || rvLess(r.rv, rv) {
			return false
		}
	}
	return true
}

// rvLess compares resourceVersions as the decimal numbers etcd gives.
func rvLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

type mirrorRow struct {
	rv, phase string
	deleted   bool
}

// mirrorRows reads the mirror's Alert rows of the run's namespace.
func (rn *runner) mirrorRows(ctx context.Context) (map[string]mirrorRow, error) {
	return rn.rows(ctx, "SELECT uid, resource_version::text, phase, deleted_at IS NOT NULL FROM alerts WHERE namespace = $1")
}

// incidentRows reads the mirror's Incident rows.
func (rn *runner) incidentRows(ctx context.Context) (map[string]mirrorRow, error) {
	return rn.rows(ctx, "SELECT uid, resource_version::text, state, deleted_at IS NOT NULL FROM incidents WHERE namespace = $1")
}

func (rn *runner) rows(ctx context.Context, query string) (map[string]mirrorRow, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, rn.env.PG.DSN())
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(cctx, query, rn.ns)
	if err != nil {
		return nil, err
	}
	out := map[string]mirrorRow{}
	for rows.Next() {
		var uid string
		var r mirrorRow
		if err := rows.Scan(&uid, &r.rv, &r.phase, &r.deleted); err != nil {
			return nil, err
		}
		out[uid] = r
	}
	return out, rows.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// seeded is the run's random stream number stream: a run is reproduced
// from its seed, which is the point (not secrecy).
func seeded(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream)) //nolint:gosec // G404: reproducible by design, see above
}
