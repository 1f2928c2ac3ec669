// Package claim is the agents' side of the Alert work queue: claim the
// oldest claimable Alerts under a lease, then renew, ack or fail them. It is
// the Kubernetes replacement for `SELECT … FOR UPDATE SKIP LOCKED`: every
// write carries the resourceVersion it read, so the API server lets exactly
// one of N racing claimers win and answers the others 409 Conflict.
//
// Its Client must read from the API server: every write is computed from
// an Alert read through it or as a write returned it. Candidates may be
// listed from a cache (Lister): a stale entry costs a 409, and the
// stripes keep claimers off each other's Alerts anyway.
package claim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/policy"
	"github.com/alertbridge/alertbridge/internal/query"
)

// maxSpread bounds how far past the oldest remaining candidates a
// contended claimer looks: 32 × the batch still needed.
const maxSpread = 32

// A claim lists again after a conflict, at most maxLists times in all and
// after at least relistAfter attempts since the last list: enough to see
// claimers that started together with it. A LIST of a queue of a few
// hundred Alerts costs the API server about as much CPU as a dozen status
// writes, so reading the one Alert lost (learn) is the cheaper lesson once
// the lists are spent; with only that, eight claimers that start together
// took three times as many conflicts to learn each other.
const (
	maxLists    = 4
	relistAfter = 4
)

// ErrNothingToClaim is returned by Claim when no Alert could be taken.
var ErrNothingToClaim = errors.New("nothing to claim")

// Claimer claims, renews, acks and fails Alerts.
type Claimer struct {
	// Client must read from the API server, not a cache.
	Client client.Client
	// Lister, when set, is where candidates are listed from instead of
	// Client: an informer cache that holds every Alert of the namespaces
	// claimed in (the HTTP API's), so a claim costs the API server no LIST.
	// What it lists is only read; the Alert a claim writes is a copy.
	Lister client.Reader
	// User is the Kubernetes user Client authenticates as: claims record it
	// in claim.holderUser and acks in ack.by, as the API server requires.
	// Empty: asked once from the API server (SelfSubjectReview).
	User string
	// Clock is injected so tests control time; nil means the real clock.
	Clock clock.PassiveClock
	// Admit, when set, is asked before every write whether the caller may
	// make it: op (claim, renew, ack or fail) on the Alert as just read. The
	// HTTP API writes as the operator, whom the admission policies exempt,
	// so it applies their rules for its caller here; an error refuses the
	// write and is returned as it is.
	Admit func(ctx context.Context, op string, a *v1.Alert) error
	// Seen remembers the Alerts this Claimer claimed, so their renew, ack
	// and fail need no read first; several Claimers may share one (the
	// HTTP API's, one per request, do). Nil: each Claimer has its own.
	Seen *Seen

	ownSeen sync.Once
}

// Seen is what claimers remember between calls. The Alerts they hold, as
// the API server answered the claim or renewal: the next write to one
// carries that resourceVersion without reading it again, and a copy gone
// stale (another writer changed the Alert since) costs a 409 and a read,
// as a write without it would have cost the read. And the other claimers
// seen holding leases, which decide the stripes a claim takes first.
type Seen struct {
	cache *lru.Cache

	mu sync.Mutex
	// holders are the claimers seen holding a lease, where, and when last.
	holders map[seenHolder]time.Time
	// taking are the Alerts a claim sharing this Seen is writing now.
	taking map[client.ObjectKey]struct{}
}

type seenHolder struct{ ns, holder string }

// claimerMemory is how long a claimer is counted after it was last seen
// holding a lease: long enough to span the gap between its batches.
const claimerMemory = time.Minute

// DefaultSeen is how many Alerts a Claimer's own Seen holds; one agent
// rarely holds more at once, and a miss costs only the read.
const DefaultSeen = 256

// NewSeen holds up to size Alerts, the least recently used going first.
func NewSeen(size int) *Seen {
	return &Seen{cache: lru.New(size), holders: map[seenHolder]time.Time{}, taking: map[client.ObjectKey]struct{}{}}
}

// begin reserves listed for one claim among those sharing s; false says
// one of them holds a live lease on a newer version of it than was listed
// (the list is behind) or is writing it now: a write would only be
// refused. end releases the reservation.
func (s *Seen) begin(listed *v1.Alert, now time.Time) bool {
	key := client.ObjectKeyFromObject(listed)
	if v, ok := s.cache.Get(key); ok {
		held := v.(*v1.Alert)
		// Only a list that is behind our copy is doubted: the Alert may
		// have moved on without us since (acked or failed elsewhere).
		newer, err := resourceversion.CompareResourceVersion(held.ResourceVersion, listed.ResourceVersion)
		if err == nil && newer > 0 && alertstate.LeaseLive(&held.Status, now) {
			return false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.taking[key]; busy {
		return false
	}
	s.taking[key] = struct{}{}
	return true
}

func (s *Seen) end(key client.ObjectKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.taking, key)
}

// noteHolders remembers the holders of the live leases among items.
func (s *Seen) noteHolders(items []v1.Alert, now time.Time) {
	for i := range items {
		if st := &items[i].Status; alertstate.LeaseLive(st, now) {
			s.noteHolder(items[i].Namespace, holderKey(st.Claim.HolderUser, st.Claim.HolderIdentity), now)
		}
	}
}

// noteHolder remembers that holder held a lease in ns at now.
func (s *Seen) noteHolder(ns, holder string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := seenHolder{ns: ns, holder: holder}
	if now.After(s.holders[k]) {
		s.holders[k] = now
	}
}

// claimers counts the claimers seen in namespaces (none: anywhere) within
// claimerMemory of now, and self; rank is self's place among them in a
// fixed order, so claimers that have seen the same ones agree on it
// without talking to each other.
func (s *Seen) claimers(self string, namespaces []string, now time.Time) (n, rank int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := []string{self}
	for k, at := range s.holders {
		switch {
		case now.Sub(at) > claimerMemory:
			delete(s.holders, k)
		case k.holder != self && (len(namespaces) == 0 || slices.Contains(namespaces, k.ns)):
			all = append(all, k.holder)
		}
	}
	// By a hash, not by name: claimers that have seen the same few others
	// then fall at different places among them, not all last.
	slices.SortFunc(all, func(a, b string) int { return cmp.Or(cmp.Compare(hashOf(a), hashOf(b)), cmp.Compare(a, b)) })
	all = slices.Compact(all)
	return len(all), slices.Index(all, self)
}

func (s *Seen) get(key client.ObjectKey) *v1.Alert {
	if v, ok := s.cache.Get(key); ok {
		return v.(*v1.Alert).DeepCopy()
	}
	return nil
}

// put keeps a while it is held; an Alert that left Processing is dropped,
// as no holder writes it again.
func (s *Seen) put(a *v1.Alert) {
	key := client.ObjectKeyFromObject(a)
	if a.Status.Phase != v1.AlertProcessing {
		s.cache.Remove(key)
		return
	}
	kept := a.DeepCopy()
	kept.ManagedFields = nil // no write computed from the copy needs them
	s.cache.Add(key, kept)
}

func (c *Claimer) seen() *Seen {
	c.ownSeen.Do(func() {
		if c.Seen == nil {
			c.Seen = NewSeen(DefaultSeen)
		}
	})
	return c.Seen
}

// Request is one claim: its window, limit, owner and lease.
type Request struct {
	// Namespace to claim in; empty means every namespace the caller may
	// list, or those of Namespaces.
	Namespace string
	// Window keeps Alerts last seen within it; zero means no window.
	Window time.Duration
	// Limit is the most Alerts taken; at least 1.
	Limit int
	// Owner becomes claim.holderIdentity.
	Owner string
	// LockTTL is the lease; zero means the namespace's policy, else 10m.
	// Longer than a namespace's maxLeaseDuration is refused
	// (*LeaseTooLongError) before anything is taken.
	LockTTL time.Duration
	// Env and Service, when set, keep only Alerts of that env and service.
	Env, Service string
	// Namespaces, when set (and Namespace is not), are the namespaces to
	// claim in, listed one by one: the HTTP API claims for a caller who may
	// not claim cluster-wide only where it found the caller may, without a
	// cluster-wide LIST.
	Namespaces []string
}

func (c *Claimer) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock.Now()
}

// liveAlerts asks the API server only for Alerts that can still move.
var liveAlerts = fields.AndSelectors(
	fields.OneTermNotEqualSelector("status.phase", string(v1.AlertAcked)),
	fields.OneTermNotEqualSelector("status.phase", string(v1.AlertDeduplicated)),
)

// Claim takes up to r.Limit of the oldest New Alerts inside the window, and
// returns exactly the ones it took, oldest first. An Alert another claimer
// wins is skipped and the batch keeps filling. With nothing taken it
// returns ErrNothingToClaim.
func (c *Claimer) Claim(ctx context.Context, r Request) ([]v1.Alert, error) {
	if r.Owner == "" {
		return nil, errors.New("owner is required")
	}
	if r.Limit < 1 {
		return nil, fmt.Errorf("limit must be at least 1, not %d", r.Limit)
	}
	who, err := c.caller(ctx, r.Owner)
	if err != nil {
		return nil, err
	}
	items, err := c.list(ctx, r)
	if err != nil {
		return nil, err
	}
	items = r.keep(items)
	now := c.now()
	candidates := Candidates(items, r.Window, now)
	policies := map[string]policy.Policy{}
	if r.LockTTL > 0 {
		// Refuse a lease a namespace does not allow before taking any
		// Alert, not halfway through the batch.
		for _, a := range candidates {
			if _, err := c.lease(ctx, policies, a.Namespace, r.LockTTL); err != nil {
				return nil, err
			}
		}
	}
	seen := c.seen()
	seen.noteHolders(items, now)
	self := holderKey(who.User, who.Owner)
	pending := hashed(candidates)
	var got []v1.Alert
	spread := 1
	lists, sinceList := 1, relistAfter
	for len(got) < r.Limit && len(pending) > 0 {
		// Racing claimers would all reach for the oldest Alerts. Each takes
		// its stripe of them first (see next), among the claimers it has
		// seen. What its stripe does not fill (a claimer that stopped, or
		// one not seen yet) it picks at random among the oldest need×spread
		// of the rest; every conflict there doubles spread, so claimers that
		// meet there fan out instead of colliding again.
		need := r.Limit - len(got)
		n, rank := seen.claimers(self, r.scope(), now)
		i, own := next(pending, r.Limit, need, n, rank, spread)
		a := pending[i].alert.DeepCopy() // what was listed may be a cache's own object
		pending = slices.Delete(pending, i, i+1)
		key := client.ObjectKeyFromObject(a)
		if !seen.begin(a, now) {
			// Claims sharing this Seen (an HTTP API replica's) hold it or
			// are taking it: no write, and nothing to learn.
			continue
		}
		ttl, err := c.lease(ctx, policies, a.Namespace, r.LockTTL)
		if err != nil {
			seen.end(key)
			return got, err
		}
		ok, err := c.take(ctx, a, who, ttl)
		seen.end(key)
		sinceList++
		switch {
		case err != nil:
			return got, err
		case ok:
			got = append(got, *a)
			continue
		case !own:
			spread = min(spread*2, maxSpread)
		}
		// A conflict says the list is stale and another claimer is at
		// work: list again (a few times a claim at most) to see who holds
		// what now, so the stripes are cut among everyone claiming; past
		// that, read the Alert lost in its own stripe to learn who took it.
		switch {
		case lists >= maxLists || sinceList < relistAfter:
			if own {
				c.learn(ctx, client.ObjectKeyFromObject(a), self)
			}
		default:
			items, err := c.list(ctx, r)
			if err != nil {
				return got, err
			}
			now = c.now()
			seen.noteHolders(items, now)
			pending = hashed(Candidates(r.keep(items), r.Window, now))
			lists, sinceList = lists+1, 0
		}
	}
	if len(got) == 0 {
		return nil, ErrNothingToClaim
	}
	slices.SortFunc(got, func(a, b v1.Alert) int { return oldestFirst(&a, &b) })
	return got, nil
}

// holderKey names a claimer: its user and owner.
func holderKey(user, owner string) string { return user + "\x00" + owner }

// candidate is a claimable Alert with the hash that places it in a stripe.
type candidate struct {
	alert *v1.Alert
	hash  uint32
}

// hashed pairs each candidate with the hash of its namespace and name:
// stable whenever and by whomever it is listed.
func hashed(alerts []*v1.Alert) []candidate {
	out := make([]candidate, len(alerts))
	for i, a := range alerts {
		out[i] = candidate{alert: a, hash: hashOf(a.Namespace + "/" + a.Name)}
	}
	return out
}

func hashOf(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// next picks the candidate to try (index into pending, oldest first) and
// says whether it was the claimer's by the stripes, the way SKIP LOCKED
// spreads racing transactions over a table. The window is the oldest
// limit×n×5/4 candidates, cut into n stripes by hash; each claimer's share
// is the oldest limit of its stripe, and what a stripe holds beyond that
// (the surplus, oldest first) is dealt round-robin among the n claimers,
// for those whose stripe falls short. So n claimers that agree on n take
// disjoint Alerts, oldest first within each share. Alone (n is 1) a
// claimer's stripe is the window: it takes exactly the oldest. With no
// share left, the pick is a random one among the oldest need×spread
// candidates, need being what the batch still lacks.
func next(pending []candidate, limit, need, n, rank, spread int) (int, bool) {
	window := min(len(pending), (limit*n*5+3)/4)
	counts := make([]int, n)
	surplus, dealt := -1, 0
	for i := range window {
		k := int(pending[i].hash % uint32(n)) //nolint:gosec // G115: n counts claimers, far below 2^31
		counts[k]++
		share := limit
		if k == rank {
			// What it took is no longer pending: its share is what
			// remains of the oldest limit, need of them.
			share = need
		}
		switch {
		case counts[k] <= share && k == rank:
			return i, true
		case counts[k] > share:
			if surplus < 0 && dealt%n == rank {
				surplus = i
			}
			dealt++
		}
	}
	if surplus >= 0 {
		return surplus, true
	}
	return rand.IntN(min(len(pending), need*spread)), false //nolint:gosec // G404: spreading claimers needs no unpredictability
}

// learn reads an Alert whose claim in the claimer's own stripe was refused
// and remembers who took it: a claimer this one had not counted. A read
// that fails teaches nothing.
func (c *Claimer) learn(ctx context.Context, key client.ObjectKey, self string) {
	var a v1.Alert
	if err := c.Client.Get(ctx, key, &a); err != nil || a.Status.Claim == nil {
		return
	}
	if k := holderKey(a.Status.Claim.HolderUser, a.Status.Claim.HolderIdentity); k != self {
		c.seen().noteHolder(key.Namespace, k, c.now())
	}
}

// list reads the Alerts that can still move in the request's namespaces.
func (c *Claimer) list(ctx context.Context, r Request) ([]v1.Alert, error) {
	namespaces := r.scope()
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var items []v1.Alert
	for _, ns := range namespaces {
		var list v1.AlertList
		var err error
		if c.Lister != nil {
			// A cache filters by exact-match fields only: Candidates leaves
			// out what cannot be claimed. Nothing listed is written to.
			err = c.Lister.List(ctx, &list, client.InNamespace(ns), client.UnsafeDisableDeepCopy)
		} else {
			err = c.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFieldsSelector{Selector: liveAlerts})
		}
		if err != nil {
			return nil, fmt.Errorf("failed to list Alerts: %w", err)
		}
		items = append(items, list.Items...)
	}
	return items, nil
}

// scope is the namespaces the request claims in; none means every one.
func (r Request) scope() []string {
	if r.Namespace != "" {
		return []string{r.Namespace}
	}
	return r.Namespaces
}

// keep filters items by the request's env and service.
func (r Request) keep(items []v1.Alert) []v1.Alert {
	if r.Env == "" && r.Service == "" {
		return items
	}
	out := items[:0:0]
	for i := range items {
		a := &items[i]
		if (r.Env != "" && a.Spec.Env != r.Env) || (r.Service != "" && a.Spec.Service != r.Service) {
			continue
		}
		out = append(out, *a)
	}
	return out
}

// take writes the claim with the resourceVersion it read; false means
// another writer got there first.
func (c *Claimer) take(ctx context.Context, a *v1.Alert, who alertstate.Caller, ttl time.Duration) (bool, error) {
	// A silenced Alert (the state machine's or Admit's SilencedError) is
	// skipped like a lost race: Candidates left silenced ones out, so this
	// one was silenced since the list.
	var se *alertstate.SilencedError
	if c.Admit != nil {
		if err := c.Admit(ctx, "claim", a); errors.As(err, &se) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	orig := a.DeepCopy()
	if err := alertstate.Claim(&a.Status, who, ttl, c.now()); errors.As(err, &se) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	// One attempt: a conflict means another claimer took it first, and the
	// claim moves on to another candidate.
	err := alertstate.Writer{Client: c.Client}.Patch(ctx, a, orig)
	switch {
	case err == nil:
		c.seen().put(a)
		return true, nil
	case apierrors.IsConflict(err), apierrors.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("failed to claim Alert %s: %w", klog.KObj(a), err)
}

// LeaseTooLongError refuses a lockTTL longer than a namespace allows: its
// AlertRoutingPolicy's spec.maxLeaseDuration, 1h without one. It is
// returned before anything is written: the API server would refuse such a
// claim or renewal, or the operator shorten it.
type LeaseTooLongError struct {
	// Namespace is the namespace whose ceiling was exceeded.
	Namespace string
	// LockTTL is the lease asked for.
	LockTTL time.Duration
	// Max is the namespace's ceiling.
	Max time.Duration
}

// Field is the refusal as an error of the request field at path.
func (e *LeaseTooLongError) Field(path *field.Path) *field.Error {
	return field.Invalid(path, e.LockTTL.String(), fmt.Sprintf(
		"longer than namespace %s allows: a lease lasts at most %s there (its AlertRoutingPolicy's spec.maxLeaseDuration)", e.Namespace, e.Max))
}

func (e *LeaseTooLongError) Error() string { return e.Field(field.NewPath("lockTTL")).Error() }

// lease is the lease to take or renew in ns: asked, or when zero the
// namespace's processingLockTTL, and never longer than its ceiling. The
// namespace's policy is read once per call (cache).
func (c *Claimer) lease(ctx context.Context, cache map[string]policy.Policy, ns string, asked time.Duration) (time.Duration, error) {
	p, ok := cache[ns]
	if !ok {
		var err error
		if p, err = policy.Get(ctx, c.Client, ns); err != nil {
			return 0, fmt.Errorf("failed to read the AlertRoutingPolicy of %s: %w", ns, err)
		}
		cache[ns] = p
	}
	if asked > p.MaxLeaseDuration() {
		return 0, &LeaseTooLongError{Namespace: ns, LockTTL: asked, Max: p.MaxLeaseDuration()}
	}
	if asked == 0 {
		asked = p.ProcessingLockTTL()
	}
	// In whole seconds, as leaseDurationSeconds holds it, within the ceiling
	// (a policy older than the ceiling may have a longer default).
	return min(asked, ceiling(p)), nil
}

// ceiling is the longest lease p allows, in whole seconds.
func ceiling(p policy.Policy) time.Duration {
	return time.Duration(alertstate.CapSeconds(p.MaxLeaseDuration())) * time.Second
}

// Candidates are the claimable Alerts of items last seen inside window
// (zero: any), oldest first.
func Candidates(items []v1.Alert, window time.Duration, now time.Time) []*v1.Alert {
	out := make([]*v1.Alert, 0, len(items))
	for i := range items {
		a := &items[i]
		if a.DeletionTimestamp != nil || !alertstate.Claimable(&a.Status) {
			continue
		}
		if window > 0 && query.LastSeen(a).Before(now.Add(-window)) {
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, oldestFirst)
	return out
}

// ClaimableNamespaces are the namespaces of items that hold a claimable
// Alert, the one whose newest claimable Alert is newest first: a namespace
// whose New Alerts only age is likely one no claimer serves, so a claim
// that can look at a few namespaces only looks at it last.
func ClaimableNamespaces(items []v1.Alert) []string {
	newest := map[string]time.Time{}
	for _, a := range Candidates(items, 0, time.Time{}) {
		if t, ok := newest[a.Namespace]; !ok || a.CreationTimestamp.After(t) {
			newest[a.Namespace] = a.CreationTimestamp.Time
		}
	}
	out := make([]string, 0, len(newest))
	for ns := range newest {
		out = append(out, ns)
	}
	slices.SortFunc(out, func(a, b string) int {
		if c := newest[b].Compare(newest[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return out
}

// WorkedNamespaces are the namespaces of items where user holds an Alert's
// lease or acked one, sorted: where user has claimed before, and so likely
// may claim again.
func WorkedNamespaces(items []v1.Alert, user string) []string {
	var out []string
	for i := range items {
		s := &items[i].Status
		if (s.Claim != nil && s.Claim.HolderUser == user) || (s.Ack != nil && s.Ack.By == user) {
			out = append(out, items[i].Namespace)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// oldestFirst orders by creation; the namespace and name break ties, since
// creationTimestamp has second resolution.
func oldestFirst(a, b *v1.Alert) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

// Renew extends owner's lease on the Alert by ttl from now (zero keeps its
// duration, shortened to the namespace's ceiling if that was lowered
// since). A ttl longer than the namespace allows is refused
// (*LeaseTooLongError) without a write.
func (c *Claimer) Renew(ctx context.Context, key client.ObjectKey, owner string, ttl time.Duration) (*v1.Alert, error) {
	p, err := policy.Get(ctx, c.Client, key.Namespace)
	if err != nil {
		return nil, fmt.Errorf("failed to read the AlertRoutingPolicy of %s: %w", key.Namespace, err)
	}
	if ttl > p.MaxLeaseDuration() {
		return nil, &LeaseTooLongError{Namespace: key.Namespace, LockTTL: ttl, Max: p.MaxLeaseDuration()}
	}
	limit := ceiling(p)
	return c.update(ctx, key, "renew", owner, func(a *v1.Alert, who alertstate.Caller, now time.Time) error {
		d := min(ttl, limit)
		if d == 0 && a.Status.Claim != nil && time.Duration(a.Status.Claim.LeaseDurationSeconds)*time.Second > limit {
			d = limit
		}
		return alertstate.Renew(&a.Status, who, d, now)
	})
}

// Ack closes the Alert with note, recorded as acked by this Claimer's user.
// A Processing Alert only by the holder of its lease (owner), until the
// operator returns it to New; a New or Failed one by anyone the API server
// allows (the on-call role).
func (c *Claimer) Ack(ctx context.Context, key client.ObjectKey, owner, note string) (*v1.Alert, error) {
	return c.update(ctx, key, "ack", owner, func(a *v1.Alert, who alertstate.Caller, now time.Time) error {
		return alertstate.Ack(&a.Status, who, note, now)
	})
}

// Fail records lastError and hands the Alert back for a retry after
// retryAfter (zero: the namespace's policy, else 5m).
func (c *Claimer) Fail(ctx context.Context, key client.ObjectKey, owner, lastError string, retryAfter time.Duration) (*v1.Alert, error) {
	if retryAfter <= 0 {
		p, err := policy.Get(ctx, c.Client, key.Namespace)
		if err != nil {
			return nil, fmt.Errorf("failed to read the AlertRoutingPolicy of %s: %w", key.Namespace, err)
		}
		retryAfter = p.RetryAfter()
	}
	return c.update(ctx, key, "fail", owner, func(a *v1.Alert, who alertstate.Caller, now time.Time) error {
		return alertstate.Fail(&a.Status, who, lastError, retryAfter, now)
	})
}

// Requeue moves a Processing Alert (whoever holds it: the lease is released)
// or a Failed one (retry now) back to New, recorded as requeued by this
// Claimer's user with reason. The API server allows it only to users with
// the virtual verb requeue on alerts/status (on-call).
func (c *Claimer) Requeue(ctx context.Context, key client.ObjectKey, reason string) (*v1.Alert, error) {
	return c.update(ctx, key, "requeue", "", func(a *v1.Alert, who alertstate.Caller, now time.Time) error {
		return alertstate.RequeueBy(&a.Status, who, reason, now)
	})
}

// caller is owner with the Kubernetes user this Claimer acts as.
func (c *Claimer) caller(ctx context.Context, owner string) (alertstate.Caller, error) {
	if c.User == "" {
		r := &authenticationv1.SelfSubjectReview{}
		if err := c.Client.Create(ctx, r); err != nil {
			return alertstate.Caller{}, fmt.Errorf("failed to ask the API server who you are: %w", err)
		}
		if r.Status.UserInfo.Username == "" {
			return alertstate.Caller{}, errors.New("the API server did not name you")
		}
		c.User = r.Status.UserInfo.Username
	}
	return alertstate.Caller{Owner: owner, User: c.User}, nil
}

// update applies op and writes with the resourceVersion it read, checking
// the holder again on every attempt: a lease lost between two attempts is
// refused, never overwritten. A conflict is retried on a fresh read
// (kube.ConflictBackoff: a command or a request has no work queue). The
// first attempt starts from the Alert as Seen holds it, when it does.
func (c *Claimer) update(ctx context.Context, key client.ObjectKey, verb, owner string,
	op func(*v1.Alert, alertstate.Caller, time.Time) error) (*v1.Alert, error) {
	who, err := c.caller(ctx, owner)
	if err != nil {
		return nil, err
	}
	w := alertstate.Writer{Client: c.Client, Retry: kube.ConflictBackoff}
	a, err := w.Update(ctx, key, c.seen().get(key), func(a *v1.Alert) (bool, error) {
		if c.Admit != nil {
			if err := c.Admit(ctx, verb, a); err != nil {
				return false, err
			}
		}
		if err := op(a, who, c.now()); err != nil {
			var nh *alertstate.NotHolderError
			if errors.As(err, &nh) {
				nh.Alert = a.Name
			}
			return false, err
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to %s Alert %s: %w", verb, key, err)
	}
	c.seen().put(a)
	return a, nil
}
