package notify

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Gates hold, in memory, what the operator knows of each Receiver between
// attempts: its token bucket (spec.rateLimit), and whether it is failing,
// so that an outage costs one attempt per backoff instead of one per
// Incident, and deliveries to a receiver that is down never take the
// workers other receivers need. A restart forgets them, which costs at
// most one burst. The zero value is ready to use.
type Gates struct {
	mu    sync.Mutex
	gates map[types.UID]*gate
}

type gate struct {
	limiter   *rate.Limiter
	perMinute int32
	burst     int32
	failures  int32
	retryAt   time.Time
	// sending says a POST to the receiver is on the wire (Begin/End).
	sending bool
}

func (g *Gates) get(r *v1.Receiver, now time.Time) *gate {
	if g.gates == nil {
		g.gates = map[types.UID]*gate{}
	}
	perMinute, burst := r.Spec.RateLimit.PerMinute, r.Spec.RateLimit.Burst
	if perMinute <= 0 {
		perMinute = 30
	}
	if burst <= 0 {
		burst = 10
	}
	x := g.gates[r.UID]
	if x == nil {
		x = &gate{limiter: rate.NewLimiter(rate.Limit(float64(perMinute)/60), int(burst)), perMinute: perMinute, burst: burst}
		g.gates[r.UID] = x
	}
	if x.perMinute != perMinute || x.burst != burst {
		x.limiter.SetLimitAt(now, rate.Limit(float64(perMinute)/60))
		x.limiter.SetBurstAt(now, int(burst))
		x.perMinute, x.burst = perMinute, burst
	}
	return x
}

// Take asks to send one message to r at now: zero means go (a token was
// taken); otherwise how long to wait, because r is failing (until its
// next retry) or its token bucket is empty.
func (g *Gates) Take(r *v1.Receiver, now time.Time) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	x := g.get(r, now)
	if now.Before(x.retryAt) {
		return x.retryAt.Sub(now)
	}
	res := x.limiter.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

// Observe records the result of an attempt to r: a failure worth
// retrying holds r's other messages back for the backoff (or the
// receiver's Retry-After); a success, or a refusal that says the receiver
// is up, releases them.
func (g *Gates) Observe(r *v1.Receiver, now time.Time, first time.Duration, res Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	x := g.get(r, now)
	if res.Err == nil || !res.Retryable {
		x.failures, x.retryAt = 0, time.Time{}
		return
	}
	x.failures++
	x.retryAt = now.Add(max(Backoff(first, x.failures), res.RetryAfter))
}

// Forget drops what is known of a deleted Receiver.
func (g *Gates) Forget(uid types.UID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.gates, uid)
}

// InFlightRecheck is how soon a message that found its receiver busy
// (Begin false) is tried again.
const InFlightRecheck = 500 * time.Millisecond

// Begin claims r for one POST: false while another is on the wire. One
// POST at a time per Receiver means a receiver that hangs until the HTTP
// timeout holds up one of the controller's workers, never all of them, so
// the other receivers' messages keep going. A true Begin is followed by
// End once the attempt is over.
func (g *Gates) Begin(r *v1.Receiver, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	x := g.get(r, now)
	if x.sending {
		return false
	}
	x.sending = true
	return true
}

// End releases r after the attempt Begin allowed.
func (g *Gates) End(r *v1.Receiver) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if x := g.gates[r.UID]; x != nil {
		x.sending = false
	}
}
