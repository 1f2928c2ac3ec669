// Package intake counts alert occurrences that arrive over the HTTP API.
// Under a storm, thousands of occurrences of a few fingerprints arrive per
// second; creating an Alert for each and letting the controller fold it
// costs several API writes per occurrence. Instead the intake queues
// occurrences per fingerprint and commits whatever accumulated while the
// previous write was in flight as one status write on the canonical Alert
// (group commit). An occurrence is acknowledged only after the write that
// counts it succeeded, so an acknowledged occurrence survives any restart.
//
// The intake never decides an Alert. When the fingerprint has a canonical
// Alert (fingerprint.Canonical, the controller's own rule) it counts into it;
// when it has none it creates an Alert for one occurrence and waits for the
// controller to decide it, then counts the rest. Every write carries the
// resourceVersion it read, so the controller's folds and the intake's
// counts serialise in the API server.
package intake

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Request is one occurrence to count.
type Request struct {
	Namespace string       `json:"namespace"`
	Spec      v1.AlertSpec `json:"spec"`
	// Caller is the authenticated user who sent the occurrence. Keys are
	// scoped to it: one caller can neither replay nor suppress another's.
	Caller string `json:"caller"`
	// Key makes the request idempotent: a request whose key was already
	// counted (by the same Caller) within alertstate.KeyWindow counts
	// nothing and is answered with Replayed. Empty: no key.
	Key string `json:"key,omitempty"`
	// Firing says Key names a firing instance of the source (Alertmanager's
	// fingerprint and startsAt) that a later Resolve ends.
	Firing bool `json:"firing,omitempty"`
	// Annotations are set on an Alert this request creates.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Labels are set on an Alert this request creates, beside the
	// fingerprint label (e.g. the operator's own origin label).
	Labels map[string]string `json:"labels,omitempty"`
}

// Result is what the caller is told, per occurrence.
type Result struct {
	Accepted    bool   `json:"accepted"`
	Deduped     bool   `json:"deduped"`
	AlertRef    string `json:"alertRef"`
	Occurrences int64  `json:"occurrences"`
	Replayed    bool   `json:"replayed,omitempty"`
}

// ErrBusy says the occurrence was not counted because the fingerprint has
// more pending work than the intake takes (its queue, or the idempotency
// keys of the last KeyWindow, is full): retry later, with the same key.
var ErrBusy = errors.New("too many occurrences of this fingerprint are waiting; retry later")

// Intake counts occurrences; the zero value is not usable, see the fields.
type Intake struct {
	// Client writes (uncached by nature).
	Client client.Client
	// Cache lists Alerts by fingerprint (the fingerprint index registered).
	Cache client.Reader
	// APIReader reads around the cache after a conflict.
	APIReader client.Reader
	Clock     clock.PassiveClock
	// MaxBatch bounds the occurrences one write counts (default 1000).
	MaxBatch int
	// MaxPending bounds the occurrences waiting on one fingerprint
	// (default 20000); beyond it Ingest answers ErrBusy at once.
	MaxPending int

	mu     sync.Mutex
	queues map[queueKey]*queue
}

type queueKey struct{ namespace, fingerprint string }

type queue struct {
	pending []*waiter
	running bool
	// created is the Alert this intake created last (at createdAt): until
	// the cache shows the controller's decision on it, batches wait for it.
	created   string
	createdAt time.Time
	// lastWritten is the canonical as our last write left it: the next batch
	// writes on it directly and reads only after a conflict.
	lastWritten *v1.Alert
	// stale says a write conflicted: the next read goes around the cache.
	stale    bool
	lastUsed time.Time
}

type waiter struct {
	req  Request
	key  string // HashKey(req.Caller, req.Key)
	done chan outcome
}

type outcome struct {
	res Result
	err error
}

// ForManager returns an Intake that writes as mgr's identity and lists
// Alerts by fingerprint from its cache (fingerprint.RegisterIndex must
// have run on it before the cache starts).
func ForManager(mgr manager.Manager) *Intake {
	return &Intake{Client: mgr.GetClient(), Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
}

// resolveBackoff paces the retries of a resolution that met a conflict: it
// races the counting writes of its fingerprint, which a storm makes
// frequent, so it tries as often as a batch does.
var resolveBackoff = wait.Backoff{Steps: maxAttempts, Duration: 2 * time.Millisecond, Factor: 2, Jitter: 1, Cap: maxBackoff}

// errUndecided: the Alert a resolution names has no phase yet.
var errUndecided = errors.New("the controller has not decided the Alert yet")

// defaultMaxPending bounds the occurrences waiting on one fingerprint.
const defaultMaxPending = 20000

// Bounds of one batch: attempts after conflicts (with jittered backoff) and
// while the controller has not decided the fingerprint's new Alert.
const (
	maxAttempts   = 12
	commitTimeout = 30 * time.Second
	decisionPoll  = 5 * time.Millisecond
	maxBackoff    = 200 * time.Millisecond
	// decisionWait bounds how long the occurrence that created an Alert
	// waits to be told the controller's decision; it is durable from the
	// create on, so past this it is answered with what is known.
	decisionWait = 5 * time.Second
)

// HashKey is how a caller's key is stored in status.ingestKeys,
// status.firing and annotations: hashed together with the caller, so equal
// keys of two callers never meet.
func HashKey(caller, key string) string {
	if key == "" {
		return ""
	}
	return fingerprint.Hash("ingest:" + caller + "\x00" + key)[:alertstate.KeyLen]
}

// The HTTP intake creates an Alert, as its own identity, for a caller a
// SubjectAccessReview allowed to create it (docs/security.md).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch;create
// The HTTP intake counts occurrences into the canonical Alert's status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts/status,verbs=patch

// Ingest counts one occurrence and returns once it is durable.
func (in *Intake) Ingest(ctx context.Context, req Request) (Result, error) {
	w := &waiter{req: req, key: HashKey(req.Caller, req.Key), done: make(chan outcome, 1)}
	k := queueKey{req.Namespace, fingerprint.KeyOfSpec(&req.Spec)}
	in.mu.Lock()
	if in.queues == nil {
		in.queues = map[queueKey]*queue{}
	}
	q := in.queues[k]
	if q == nil {
		in.pruneLocked()
		q = &queue{}
		in.queues[k] = q
	}
	limit := in.MaxPending
	if limit <= 0 {
		limit = defaultMaxPending
	}
	if len(q.pending) >= limit {
		in.mu.Unlock()
		return Result{}, ErrBusy
	}
	q.pending = append(q.pending, w)
	start := !q.running
	q.running = true
	in.mu.Unlock()
	if start {
		// The batch outlives this caller: others wait on it too, and an
		// occurrence already being written must be answered to whoever waits.
		go in.drain(k, q) //nolint:gosec // G118: deliberately not the caller's context
	}
	select {
	case o := <-w.done:
		return o.res, o.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// pruneLocked forgets idle queues once there are many.
func (in *Intake) pruneLocked() {
	if len(in.queues) < 4096 {
		return
	}
	cutoff := in.Clock.Now().Add(-time.Minute)
	for k, q := range in.queues {
		if !q.running && q.lastUsed.Before(cutoff) {
			delete(in.queues, k)
		}
	}
}

// drain commits the queue's batches until it is empty. Whatever arrives
// while a batch is being written forms the next batch.
func (in *Intake) drain(k queueKey, q *queue) {
	maxBatch := in.MaxBatch
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	for {
		in.mu.Lock()
		n := min(len(q.pending), maxBatch)
		if n == 0 {
			q.running = false
			q.lastUsed = in.Clock.Now()
			in.mu.Unlock()
			return
		}
		b := newBatch(q.pending[:n:n])
		q.pending = q.pending[n:]
		in.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		start := time.Now()
		in.commit(ctx, k, q, b)
		metrics.IntakeCommitSeconds.Observe(time.Since(start).Seconds())
		cancel()
		b.answer()
	}
}

// commit counts a batch of one fingerprint, one step (and at most one
// write) at a time, until every waiter has its answer or the attempts run
// out.
func (in *Intake) commit(ctx context.Context, k queueKey, q *queue, b *batch) {
	var lastErr error
	for attempt := 0; (b.open() || b.awaitingDecision(in.Clock.Now())) && attempt < maxAttempts; attempt++ {
		wait, err := in.step(ctx, k, q, b, attempt == 0)
		switch {
		case err == nil && wait == 0:
			attempt-- // progress: the answered ones are done, the rest go on
			continue
		case err == nil:
			attempt-- // the controller has not decided yet: not a failed attempt
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			q.lastWritten, q.stale = nil, true // someone else wrote first: read again
			wait = backoff(attempt)
		default:
			b.fail(err)
			return
		}
		lastErr = err
		select {
		case <-ctx.Done():
			b.fail(fmt.Errorf("failed to count the occurrence: %w", ctx.Err()))
			return
		case <-time.After(wait):
		}
	}
	if b.open() {
		if lastErr == nil {
			lastErr = errors.New("too much contention on this fingerprint")
		}
		b.fail(fmt.Errorf("failed to count the occurrence: %w", lastErr))
	}
}

// backoff is the jittered delay before the attempt after a conflict.
func backoff(attempt int) time.Duration {
	d := min(time.Millisecond<<min(attempt, 8), maxBackoff)
	return d/2 + rand.N(d/2+1) //nolint:gosec // G404: jitter needs no unpredictability
}

// step makes one decision for the open waiters of b: answer replays, then
// count into the canonical, or wait for the controller to decide the
// fingerprint's undecided Alert, or create an Alert for the first waiter.
// A positive wait asks to come back after it.
func (in *Intake) step(ctx context.Context, k queueKey, q *queue, b *batch, first bool) (time.Duration, error) {
	var alerts []*v1.Alert
	if first && q.lastWritten != nil && !b.keyed() {
		// Under a storm: no key to look up, so no read at all; a conflict
		// sends the next attempt to the cache and the API server.
		alerts = []*v1.Alert{q.lastWritten}
	} else {
		var err error
		if alerts, err = in.alertsOf(ctx, k, q); err != nil {
			return 0, err
		}
		b.learnDecision(alerts)
		b.replays(alerts)
		if !b.open() {
			if b.awaitingDecision(in.Clock.Now()) {
				return decisionPoll, nil
			}
			return 0, nil
		}
	}
	pol, err := policy.Get(ctx, in.Cache, k.namespace)
	if err != nil {
		return 0, err
	}
	now := in.Clock.Now()
	if canon := fingerprint.Canonical(alerts, pol, now); canon != nil {
		return 0, in.countInto(ctx, q, canon, b, now)
	}
	if in.awaitingDecision(ctx, k.namespace, q, alerts) {
		return decisionPoll, nil // only the controller decides a new Alert
	}
	return 0, in.create(ctx, q, b)
}

// alertsOf lists the fingerprint's Alerts from the cache, with our own last
// write where the cache has not caught up with it, and forgets the Alert we
// created once the cache shows it decided.
func (in *Intake) alertsOf(ctx context.Context, k queueKey, q *queue) ([]*v1.Alert, error) {
	items, err := fingerprint.List(ctx, in.Cache, k.namespace, k.fingerprint)
	if err != nil {
		return nil, err
	}
	out := make([]*v1.Alert, 0, len(items)+1)
	for i := range items {
		a := &items[i]
		if w := q.lastWritten; w != nil && w.UID == a.UID && newer(w, a) {
			a = w.DeepCopy()
		}
		if a.Name == q.created && a.Status.Phase != "" {
			q.created = ""
		}
		out = append(out, a)
	}
	if q.stale {
		q.stale = false
		// After a conflict, read the Alerts a write may depend on around
		// the cache: one GET per live or undecided Alert of one fingerprint.
		for i, a := range out {
			if a.Status.Phase != "" && !a.Status.Phase.Absorbing() {
				continue
			}
			var fresh v1.Alert
			if err := in.APIReader.Get(ctx, client.ObjectKeyFromObject(a), &fresh); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("failed to read Alert %s/%s: %w", a.Namespace, a.Name, err)
			}
			out[i] = &fresh
		}
	}
	return out, nil
}

// createdLag is how long the cache may take to show an Alert we created
// before we ask the API server whether it still exists.
const createdLag = 2 * time.Second

// awaitingDecision reports whether the fingerprint has an Alert the
// controller has not decided yet (ours, or anyone's), so that the batch
// must wait rather than create another.
func (in *Intake) awaitingDecision(ctx context.Context, namespace string, q *queue, alerts []*v1.Alert) bool {
	if slices.ContainsFunc(alerts, func(a *v1.Alert) bool { return a.Status.Phase == "" }) {
		return true
	}
	if q.created == "" || slices.ContainsFunc(alerts, func(a *v1.Alert) bool { return a.Name == q.created }) {
		return q.created != ""
	}
	if in.Clock.Since(q.createdAt) < createdLag {
		return true // not in the cache yet
	}
	// Long missing from the cache: decided and deleted, or deleted by
	// someone; either way there is nothing to wait for.
	var a v1.Alert
	err := in.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: q.created}, &a)
	if apierrors.IsNotFound(err) || (err == nil && a.Status.Phase != "") {
		q.created = ""
		return false
	}
	return true
}

// newer reports whether a is a later version of the same object than b.
func newer(a, b *v1.Alert) bool {
	c, err := resourceversion.CompareResourceVersion(a.ResourceVersion, b.ResourceVersion)
	return err == nil && c > 0
}

// countInto counts the open waiters of b into canon with one status patch
// under canon's resourceVersion.
func (in *Intake) countInto(ctx context.Context, q *queue, canon *v1.Alert, b *batch, now time.Time) error {
	c := canon.DeepCopy()
	counted := b.record(&c.Status, now)
	if len(counted) == 0 {
		return nil // every open waiter was refused (the key log is full)
	}
	c.Status.Occurrences += int64(len(counted))
	if c.Status.LastSeenAt == nil || now.After(c.Status.LastSeenAt.Time) {
		c.Status.LastSeenAt = &metav1.Time{Time: now}
	}
	// One attempt: on a conflict the fingerprint's queue reads again and
	// counts the batch anew (commit).
	if err := (alertstate.Writer{Client: in.Client}).Patch(ctx, c, canon); err != nil {
		return err
	}
	q.lastWritten = c.DeepCopy()
	metrics.IntakeBatchOccurrences.Observe(float64(len(counted)))
	for _, i := range counted {
		b.done(i, Result{Accepted: true, Deduped: true, AlertRef: c.Name, Occurrences: c.Status.Occurrences}, nil)
	}
	return nil
}

// create makes a new Alert for the first open waiter of b and answers it;
// the controller decides the Alert, and the rest of the batch waits for
// that decision.
func (in *Intake) create(ctx context.Context, q *queue, b *batch) error {
	i := b.first()
	a := newAlert(b.waiters[i])
	err := in.Client.Create(ctx, a)
	// NotFound from a create is the namespace: no retry will find it.
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		b.done(i, Result{}, err)
		return nil
	}
	if err != nil {
		return err
	}
	q.created, q.createdAt = a.Name, in.Clock.Now()
	// Durable from here on; the answer waits (a bounded while) for the
	// controller's decision, so that it says where the occurrence counts.
	b.done(i, Result{Accepted: true, AlertRef: a.Name, Occurrences: 1}, nil)
	b.creator, b.created, b.createdAt = i, a.Name, q.createdAt
	return nil
}

func newAlert(w *waiter) *v1.Alert {
	name := strings.Trim(strings.ReplaceAll(w.req.Spec.Service+"-"+w.req.Spec.Kind, "_", "-"), "-")
	if len(name) > 200 {
		name = name[:200]
	}
	a := &v1.Alert{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: name + "-",
			Namespace:    w.req.Namespace,
			Annotations:  map[string]string{},
		},
		Spec: w.req.Spec,
	}
	// Labelled at creation, so the controller need not patch the label in.
	a.Labels = map[string]string{}
	for k, v := range w.req.Labels {
		a.Labels[k] = v
	}
	a.Labels[v1.FingerprintLabel] = fingerprint.Key(a)
	for k, v := range w.req.Annotations {
		a.Annotations[k] = v
	}
	if w.key != "" {
		a.Annotations[v1.IngestKeyAnnotation] = w.key
	}
	if len(a.Annotations) == 0 {
		a.Annotations = nil
	}
	return a
}

// batch is the waiters one commit answers. A key seen twice in one batch
// counts once: the later waiters replay the first one's answer.
type batch struct {
	waiters []*waiter
	results []Result
	errs    []error
	closed  []bool
	replay  map[int]int // waiter → the earlier waiter with its key
	// creator is the waiter whose occurrence created the Alert created (at
	// createdAt) and whose answer waits for its decision; -1 for none.
	creator   int
	created   string
	createdAt time.Time
}

func newBatch(ws []*waiter) *batch {
	b := &batch{waiters: ws, results: make([]Result, len(ws)), errs: make([]error, len(ws)),
		closed: make([]bool, len(ws)), replay: map[int]int{}, creator: -1}
	firstWithKey := map[string]int{}
	for i, w := range ws {
		if w.key == "" {
			continue
		}
		if j, ok := firstWithKey[w.key]; ok {
			b.replay[i] = j
			b.closed[i] = true
			continue
		}
		firstWithKey[w.key] = i
	}
	return b
}

func (b *batch) open() bool { return slices.Contains(b.closed, false) }

func (b *batch) first() int { return slices.Index(b.closed, false) }

func (b *batch) keyed() bool {
	for i, w := range b.waiters {
		if !b.closed[i] && w.key != "" {
			return true
		}
	}
	return false
}

// awaitingDecision reports whether the creator's answer still waits for
// the controller's decision.
func (b *batch) awaitingDecision(now time.Time) bool {
	return b.creator >= 0 && now.Sub(b.createdAt) < decisionWait
}

// learnDecision answers the creator once alerts show its Alert decided:
// canonical, or folded into another (a replica created one too).
func (b *batch) learnDecision(alerts []*v1.Alert) {
	if b.creator < 0 {
		return
	}
	i := slices.IndexFunc(alerts, func(a *v1.Alert) bool { return a.Name == b.created })
	if i < 0 || alerts[i].Status.Phase == "" {
		return
	}
	a := alerts[i]
	r := Result{Accepted: true, AlertRef: a.Name, Occurrences: a.Status.Occurrences}
	if a.Status.Phase == v1.AlertDeduplicated {
		r.Deduped, r.AlertRef, r.Occurrences = true, a.Status.DuplicateOf, 0
		if c := slices.IndexFunc(alerts, func(c *v1.Alert) bool { return c.Name == a.Status.DuplicateOf }); c >= 0 {
			r.Occurrences = alerts[c].Status.Occurrences
		}
	}
	b.results[b.creator] = r
	b.creator = -1
}

func (b *batch) done(i int, r Result, err error) {
	b.results[i], b.errs[i], b.closed[i] = r, err, true
}

// fail answers every open waiter with err.
func (b *batch) fail(err error) {
	for i := range b.waiters {
		if !b.closed[i] {
			b.done(i, Result{}, err)
		}
	}
}

// replays answers the open waiters whose key an Alert already holds.
func (b *batch) replays(alerts []*v1.Alert) {
	for i, w := range b.waiters {
		if b.closed[i] || w.key == "" {
			continue
		}
		if h := holderOf(alerts, w.key); h != nil {
			b.done(i, Result{Accepted: true, Deduped: true, AlertRef: alertstate.CanonicalName(h), Occurrences: h.Status.Occurrences, Replayed: true}, nil)
		}
	}
}

// record adds the open waiters' keys (and firing instances) to s and
// returns the waiters to count. A waiter whose key the log cannot take
// (alertstate.MaxKeys kept in the window) is answered ErrBusy.
func (b *batch) record(s *v1.AlertStatus, now time.Time) []int {
	var counted, keyed []int
	var keys []string
	for i, w := range b.waiters {
		switch {
		case b.closed[i]:
		case w.key == "":
			counted = append(counted, i)
		default:
			keyed = append(keyed, i)
			keys = append(keys, w.key)
		}
	}
	taken := alertstate.AddKeys(s, now, keys...)
	for n, i := range keyed {
		if n >= taken {
			b.done(i, Result{}, ErrBusy)
			continue
		}
		if b.waiters[i].req.Firing {
			alertstate.Fired(s, b.waiters[i].key)
		}
		counted = append(counted, i)
	}
	slices.Sort(counted)
	return counted
}

// answer sends every waiter its answer; replays of a key in the batch get
// the answer of the waiter that counted it.
func (b *batch) answer() {
	for i, j := range b.replay {
		b.results[i], b.errs[i] = b.results[j], b.errs[j]
		if b.errs[i] == nil {
			b.results[i].Replayed, b.results[i].Deduped = true, true
		}
	}
	for i, w := range b.waiters {
		w.done <- outcome{b.results[i], b.errs[i]}
	}
}

func holderOf(alerts []*v1.Alert, key string) *v1.Alert {
	if key == "" {
		return nil
	}
	for _, a := range alerts {
		if alertstate.HoldsKey(a, key) {
			return a
		}
	}
	return nil
}

// Resolve records that the source ended the firing instance that caller
// counted with key (an Alertmanager fingerprint and startsAt). The Alert
// that counted it is resolved at source (resolvedAt, the Resolved condition,
// an ack by `by` if nobody holds it) once every occurrence it counted came
// from such an instance and all of them resolved (alertstate.Resolve). A
// resolution for a firing never seen is answered with an empty AlertRef.
func (in *Intake) Resolve(ctx context.Context, namespace string, spec v1.AlertSpec, caller, key, by string, at time.Time) (Result, error) {
	return in.ResolveInstance(ctx, namespace, spec, HashKey(caller, key), by, at)
}

// ResolveInstance is Resolve for a firing instance named by its hash, as
// status.firing.instances holds it: for a source that no longer knows the
// key it counted with (an SLOPolicy deleted while it burned).
func (in *Intake) ResolveInstance(ctx context.Context, namespace string, spec v1.AlertSpec, hashed, by string, at time.Time) (Result, error) {
	fp := fingerprint.KeyOfSpec(&spec)
	for attempt := range maxAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-time.After(backoff(attempt)):
			}
		}
		items, err := fingerprint.List(ctx, in.Cache, namespace, fp)
		if err != nil {
			return Result{}, err
		}
		alerts := make([]*v1.Alert, 0, len(items))
		for i := range items {
			alerts = append(alerts, &items[i])
		}
		h := holderOf(alerts, hashed)
		if h == nil {
			// The cache may not show the count of a firing that was
			// acknowledged a moment ago: ask the API server before
			// answering that the instance was never seen.
			if h, err = in.liveHolder(ctx, namespace, fp, hashed); err != nil || h == nil {
				return Result{Accepted: true}, err
			}
		}
		key := client.ObjectKey{Namespace: namespace, Name: alertstate.CanonicalName(h)}
		w := alertstate.Writer{Client: in.Client, Reader: in.APIReader, Retry: resolveBackoff}
		a, err := w.Update(ctx, key, nil, func(a *v1.Alert) (bool, error) {
			if a.Status.Phase == "" {
				return false, errUndecided
			}
			return alertstate.Resolve(&a.Status, hashed, alertstate.Caller{User: by}, at, in.Clock.Now()), nil
		})
		switch {
		case errors.Is(err, errUndecided):
			continue // the controller has not decided it yet: its firing is recorded then
		case err != nil:
			return Result{}, fmt.Errorf("failed to resolve Alert %s: %w", key, err)
		}
		return Result{Accepted: true, Deduped: true, AlertRef: a.Name, Occurrences: a.Status.Occurrences}, nil
	}
	return Result{}, errors.New("failed to resolve the Alert: the controller has not decided it yet")
}

// liveHolder finds, reading the API server, the Alert of a fingerprint that
// holds key: a decided one (deciding writes status.fingerprint, which the
// API server selects by) or one the intake created and the controller has
// not decided yet (the intake labels what it creates).
func (in *Intake) liveHolder(ctx context.Context, namespace, fp, key string) (*v1.Alert, error) {
	var alerts []*v1.Alert
	for _, sel := range []client.ListOption{client.MatchingFields{v1.FingerprintField: fp}, client.MatchingLabels{v1.FingerprintLabel: fp}} {
		var list v1.AlertList
		if err := in.APIReader.List(ctx, &list, client.InNamespace(namespace), sel); err != nil {
			return nil, fmt.Errorf("failed to list Alerts of fingerprint %s/%s: %w", namespace, fp, err)
		}
		for i := range list.Items {
			alerts = append(alerts, &list.Items[i])
		}
	}
	return holderOf(alerts, key), nil
}
