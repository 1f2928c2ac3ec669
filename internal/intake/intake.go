// Package intake counts alert occurrences that arrive over the HTTP API.
// Under a storm, thousands of occurrences of a few fingerprints arrive per
// second; creating an Alert for each and letting the controller fold it
// costs several API writes per occurrence. Instead the intake queues
// occurrences per fingerprint and commits whatever accumulated while the
// previous write was in flight as one status write on the canonical Alert
// (group commit). An occurrence is acknowledged only after the write that
// counts it succeeded, so an acknowledged occurrence survives any restart.
//
// It shares the Alert controller's rules: the canonical is the newest Alert
// of the fingerprint in New, Processing or Failed whose lastSeenAt is within
// its dedupe TTL; every write carries the resourceVersion it read, so the
// controller's folds and the intake's counts serialise in the API server.
package intake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertindex"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Request is one occurrence to count.
type Request struct {
	Namespace string
	Spec      v1.AlertSpec
	// Caller is the authenticated user who sent the occurrence. Keys are
	// scoped to it: one caller can neither replay nor suppress another's.
	Caller string
	// Key makes the request idempotent: a request whose key was already
	// counted (by the same Caller) counts nothing and is answered with
	// Replayed. Empty: no key.
	Key string
	// Firing says Key names a firing instance of the source (Alertmanager's
	// fingerprint and startsAt) that a later Resolve ends.
	Firing bool
	// Annotations are set on an Alert this request creates.
	Annotations map[string]string
}

// Result is what the caller is told, per occurrence.
type Result struct {
	Accepted    bool   `json:"accepted"`
	Deduped     bool   `json:"deduped"`
	AlertRef    string `json:"alertRef"`
	Occurrences int64  `json:"occurrences"`
	Replayed    bool   `json:"replayed,omitempty"`
}

// Intake counts occurrences; the zero value is not usable, see the fields.
type Intake struct {
	// Client writes (uncached by nature).
	Client client.Client
	// Cache lists Alerts by fingerprint (alertindex registered).
	Cache client.Reader
	// APIReader reads around the cache before a write.
	APIReader client.Reader
	Clock     clock.PassiveClock
	// MaxBatch bounds the occurrences one write counts (default 1000).
	MaxBatch int

	mu     sync.Mutex
	queues map[queueKey]*queue
}

type queueKey struct{ namespace, fingerprint string }

type queue struct {
	pending []*waiter
	running bool
	// last is the Alert this intake last counted into or created: the
	// cache may not show it yet when the next batch comes.
	last types.NamespacedName
	// lastWritten is the canonical as our last write left it: the next batch
	// writes on it directly and reads only if someone else wrote since.
	lastWritten *v1.Alert
	lastUsed    time.Time
}

type waiter struct {
	req  Request
	key  string // hashed Request.Key
	done chan outcome
}

type outcome struct {
	res Result
	err error
}

// maxAttempts bounds the retries of one batch on conflicts.
const maxAttempts = 50

// commitTimeout bounds one batch's writes; callers may give up earlier.
const commitTimeout = 30 * time.Second

// HashKey is how a caller's key is stored in status.ingestKeys,
// status.firing and annotations: hashed together with the caller, so equal
// keys of two callers never meet.
func HashKey(caller, key string) string {
	if key == "" {
		return ""
	}
	return fingerprint.Hash("ingest:" + caller + "\x00" + key)
}

// The HTTP intake creates an Alert for a caller allowed to create it
// (SubjectAccessReview), as the operator (DECISIONS D1).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch;create
// The HTTP intake counts occurrences into the canonical Alert's status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts/status,verbs=update

// Ingest counts one occurrence and returns once it is durable.
func (in *Intake) Ingest(ctx context.Context, req Request) (Result, error) {
	w := &waiter{req: req, key: HashKey(req.Caller, req.Key), done: make(chan outcome, 1)}
	k := queueKey{req.Namespace, alertindex.KeyOfSpec(&req.Spec)}
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
		batch := q.pending[:n:n]
		q.pending = q.pending[n:]
		in.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		results, errs := in.commit(ctx, k, q, batch)
		cancel()
		for i, w := range batch {
			w.done <- outcome{results[i], errs[i]}
		}
	}
}

// commit counts a batch of one fingerprint and returns a result or an
// error per waiter.
func (in *Intake) commit(ctx context.Context, k queueKey, q *queue, batch []*waiter) ([]Result, []error) {
	res := make([]Result, len(batch))
	errs := make([]error, len(batch))
	// A key seen twice in one batch counts once: the later ones replay.
	todo := make([]int, 0, len(batch))
	replayOf := map[int]int{}
	firstWithKey := map[string]int{}
	for i, w := range batch {
		if j, ok := firstWithKey[w.key]; ok && w.key != "" {
			replayOf[i] = j
			continue
		}
		firstWithKey[w.key] = i
		todo = append(todo, i)
	}

	var lastErr, err error
	var done bool
	st := &batchState{created: -1}
	for attempt := 0; len(todo) > 0 && attempt < maxAttempts; attempt++ {
		var alerts []*v1.Alert
		if attempt == 0 && q.lastWritten != nil && st.created < 0 && len(keysOf(batch, todo)) == 0 {
			// Fast path under a storm: no key to check, so no read; a
			// conflict sends the next attempt to a full read.
			alerts = []*v1.Alert{q.lastWritten}
		} else if alerts, err = in.alertsOf(ctx, k, q); err != nil {
			lastErr = err
			break
		}
		if st.created < 0 {
			todo = in.answerReplays(alerts, batch, todo, res)
			if len(todo) == 0 {
				break
			}
		}
		done, err = in.countInto(ctx, k, q, alerts, batch, todo, st, res, errs)
		switch {
		case err == nil && done:
			todo = nil
		case errors.Is(err, errInvalidFirst):
			todo = todo[1:]
		case err == nil, apierrors.IsConflict(err), apierrors.IsNotFound(err):
			lastErr = err // someone else wrote first: read again
		default:
			lastErr = err
			attempt = maxAttempts
		}
	}
	if len(todo) > 0 {
		if lastErr == nil {
			lastErr = errors.New("too much contention on this fingerprint")
		}
		for _, i := range todo {
			errs[i] = fmt.Errorf("failed to count the occurrence: %w", lastErr)
		}
	}
	for i, j := range replayOf {
		res[i], errs[i] = res[j], errs[j]
		if errs[i] == nil {
			res[i].Replayed = true
			res[i].Deduped = true
		}
	}
	return res, errs
}

// alertsOf lists the fingerprint's Alerts from the cache and re-reads the
// ones a decision depends on (live canonicals, undecided ones and the one
// this intake wrote last) from the API server.
func (in *Intake) alertsOf(ctx context.Context, k queueKey, q *queue) ([]*v1.Alert, error) {
	items, err := alertindex.List(ctx, in.Cache, k.namespace, k.fingerprint)
	if err != nil {
		return nil, err
	}
	byName := map[string]*v1.Alert{}
	var out []*v1.Alert
	for i := range items {
		a := &items[i]
		byName[a.Name] = a
		out = append(out, a)
	}
	if q.last.Name != "" && byName[q.last.Name] == nil {
		a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Name: q.last.Name, Namespace: q.last.Namespace}}
		byName[a.Name] = a
		out = append(out, a)
	}
	fresh := out[:0]
	for _, a := range out {
		if a.Status.Phase != "" && !a.Status.Phase.Absorbing() && a.Name != q.last.Name {
			fresh = append(fresh, a)
			continue
		}
		var f v1.Alert
		if err := in.APIReader.Get(ctx, client.ObjectKeyFromObject(a), &f); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("failed to read Alert %s/%s: %w", a.Namespace, a.Name, err)
		}
		fresh = append(fresh, &f)
		if f.Name == q.last.Name && f.Status.DuplicateOf != "" && byName[f.Status.DuplicateOf] == nil {
			// Our Alert was folded into a canonical the cache does not show yet.
			var c v1.Alert
			if err := in.APIReader.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: f.Status.DuplicateOf}, &c); err == nil {
				fresh = append(fresh, &c)
			}
		}
	}
	return fresh, nil
}

// answerReplays answers the waiters whose key an Alert already holds.
func (in *Intake) answerReplays(alerts []*v1.Alert, batch []*waiter, todo []int, res []Result) []int {
	rest := todo[:0]
	for _, i := range todo {
		if h := holderOf(alerts, batch[i].key); h != nil {
			res[i] = Result{Accepted: true, Deduped: true, AlertRef: canonicalName(h), Occurrences: h.Status.Occurrences, Replayed: true}
			continue
		}
		rest = append(rest, i)
	}
	return rest
}

func holderOf(alerts []*v1.Alert, key string) *v1.Alert {
	if key == "" {
		return nil
	}
	for _, a := range alerts {
		if slices.Contains(a.Status.IngestKeys, key) || a.Annotations[v1.IngestKeyAnnotation] == key ||
			(a.Status.Firing != nil && slices.Contains(a.Status.Firing.Instances, key)) {
			return a
		}
	}
	return nil
}

func canonicalName(a *v1.Alert) string {
	if a.Status.DuplicateOf != "" {
		return a.Status.DuplicateOf
	}
	return a.Name
}

// countInto makes one write: it counts the batch into the live canonical,
// or decides the intake's own new Alert as canonical, or creates that Alert
// (whose own occurrence is counted by whoever decides it). It reports
// whether the batch is done.
func (in *Intake) countInto(ctx context.Context, k queueKey, q *queue, alerts []*v1.Alert,
	batch []*waiter, todo []int, st *batchState, res []Result, errs []error) (bool, error) {
	now := in.Clock.Now()
	extra := int64(len(todo)) // occurrences this write adds
	if st.created >= 0 {
		extra-- // the created Alert counts itself when it is decided
	}
	canon := newestLive(alerts)
	if canon != nil {
		pol, err := policy.Get(ctx, in.Cache, k.namespace)
		if err != nil {
			return false, err
		}
		if now.After(canon.Status.LastSeenAt.Add(pol.DedupeTTL(canon))) {
			canon = nil // too old to absorb: the next firing is a new Alert
		}
	}
	own := undecidedOwn(alerts, q)
	switch {
	case canon != nil && (own == nil || st.created < 0):
		c := canon.DeepCopy()
		c.Status.Occurrences += extra
		c.Status.LastSeenAt = &metav1.Time{Time: later(c.Status.LastSeenAt.Time, now)}
		counted(&c.Status, batch, todo)
		if extra > 0 || !slices.Equal(c.Status.IngestKeys, canon.Status.IngestKeys) {
			if err := in.Client.Status().Update(ctx, c); err != nil {
				return false, err
			}
		}
		in.finish(q, c, todo, st, res)
		return true, nil
	case own != nil && st.created >= 0:
		// Our new Alert is still undecided: decide it ourselves and count the
		// batch into it. Should the controller decide it first, this write
		// conflicts and the next attempt sees what it decided.
		c := own.DeepCopy()
		alertstate.MarkCanonical(&c.Status, alertindex.Effective(c), c.CreationTimestamp, c.Generation)
		c.Status.Occurrences += extra
		c.Status.LastSeenAt = &metav1.Time{Time: later(c.CreationTimestamp.Time, now)}
		counted(&c.Status, batch, todo)
		if err := in.Client.Status().Update(ctx, c); err != nil {
			return false, err
		}
		in.finish(q, c, todo, st, res)
		return true, nil
	case st.created >= 0:
		// Our Alert was decided elsewhere but no live canonical shows yet
		// (the cache lags): read again.
		return false, nil
	}
	// No live canonical: the first waiter's request becomes a new Alert.
	first := todo[0]
	a := newAlert(batch[first])
	if err := in.Client.Create(ctx, a); err != nil {
		// NotFound from a create is the namespace: no retry will find it.
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) {
			errs[first] = err
			res[first] = Result{}
			return false, errInvalidFirst
		}
		return false, err
	}
	q.last = types.NamespacedName{Namespace: a.Namespace, Name: a.Name}
	st.created, st.createdName = first, a.Name
	return false, nil
}

// errInvalidFirst says the request that was to create the Alert was refused;
// the rest of the batch goes on without it.
var errInvalidFirst = errors.New("invalid request")

// batchState is what one batch has done so far.
type batchState struct {
	// created is the waiter whose request created createdName, or -1.
	created     int
	createdName string
}

// finish answers the waiters counted by a write on c. Every occurrence
// folded into an existing Alert is deduped; the one that created c is not.
func (in *Intake) finish(q *queue, c *v1.Alert, todo []int, st *batchState, res []Result) {
	q.last = types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	q.lastWritten = c.DeepCopy()
	for _, i := range todo {
		res[i] = Result{Accepted: true, Deduped: i != st.created || c.Name != st.createdName, AlertRef: c.Name, Occurrences: c.Status.Occurrences}
	}
}

func newestLive(alerts []*v1.Alert) *v1.Alert {
	var best *v1.Alert
	for _, a := range alerts {
		if !a.Status.Phase.Absorbing() || a.Status.LastSeenAt == nil {
			continue
		}
		if best == nil || a.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			(a.CreationTimestamp.Equal(&best.CreationTimestamp) && a.Name > best.Name) {
			best = a
		}
	}
	return best
}

func undecidedOwn(alerts []*v1.Alert, q *queue) *v1.Alert {
	for _, a := range alerts {
		if a.Name == q.last.Name && a.Status.Phase == "" {
			return a
		}
	}
	return nil
}

// counted records the keys of the waiters a write counts: every key as an
// idempotency key, and the firing instances as still firing.
func counted(s *v1.AlertStatus, batch []*waiter, todo []int) {
	alertstate.AddIngestKeys(s, keysOf(batch, todo)...)
	for _, i := range todo {
		if batch[i].req.Firing {
			alertstate.Fired(s, batch[i].key)
		}
	}
}

func keysOf(batch []*waiter, todo []int) []string {
	var keys []string
	for _, i := range todo {
		if batch[i].key != "" {
			keys = append(keys, batch[i].key)
		}
	}
	return keys
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
	// Labelled at creation, so the controller need not patch the label in
	// while the intake may be deciding and counting into this Alert.
	a.Labels = map[string]string{v1.FingerprintLabel: alertindex.Key(a)}
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

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Resolve records that the source ended the firing instance that caller
// counted with key (an Alertmanager fingerprint and startsAt). The Alert
// that counted it is resolved at source (resolvedAt, the Resolved condition,
// an ack by `by` if nobody holds it) once every occurrence it counted came
// from such an instance and all of them resolved (alertstate.Resolve). A
// resolution for a firing never seen is answered with an empty AlertRef.
func (in *Intake) Resolve(ctx context.Context, namespace string, spec v1.AlertSpec, caller, key, by string, at time.Time) (Result, error) {
	hashed := HashKey(caller, key)
	var res Result
	for attempt := 0; attempt < maxAttempts; attempt++ {
		items, err := alertindex.List(ctx, in.Cache, namespace, alertindex.KeyOfSpec(&spec))
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
			if h, err = in.liveHolder(ctx, namespace, alertindex.KeyOfSpec(&spec), hashed); err != nil || h == nil {
				return Result{Accepted: true}, err
			}
		}
		var a v1.Alert
		if err := in.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: canonicalName(h)}, &a); err != nil {
			return Result{}, fmt.Errorf("failed to read Alert %s/%s: %w", namespace, canonicalName(h), err)
		}
		res = Result{Accepted: true, Deduped: true, AlertRef: a.Name, Occurrences: a.Status.Occurrences}
		if !alertstate.Resolve(&a.Status, hashed, alertstate.Caller{User: by}, at, in.Clock.Now()) {
			return res, nil
		}
		err = in.Client.Status().Update(ctx, &a)
		if err == nil || !apierrors.IsConflict(err) {
			return res, err
		}
	}
	return Result{}, errors.New("failed to resolve the Alert: too much contention")
}

// liveHolder finds, reading the API server, the Alert of a fingerprint that
// holds key. Every Alert that can hold a key carries the fingerprint label:
// the intake labels what it creates, the controller what it decides.
func (in *Intake) liveHolder(ctx context.Context, namespace, fp, key string) (*v1.Alert, error) {
	var list v1.AlertList
	if err := in.APIReader.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{v1.FingerprintLabel: fp}); err != nil {
		return nil, fmt.Errorf("failed to list Alerts of fingerprint %s/%s: %w", namespace, fp, err)
	}
	alerts := make([]*v1.Alert, 0, len(list.Items))
	for i := range list.Items {
		alerts = append(alerts, &list.Items[i])
	}
	return holderOf(alerts, key), nil
}
