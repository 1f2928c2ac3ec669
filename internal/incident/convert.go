package incident

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// DefaultSeverityCap is the built-in incident severity cap.
const DefaultSeverityCap = v1.SeverityP1

// maxConvertAttempts bounds re-decisions after the cached list missed the
// target, the Incident chosen stopped being open under us, or another
// conversion of the Alert linked it elsewhere, for callers without a work
// queue; each re-decision follows progress by another writer, so none
// sleeps. A reconciler (Options.Queued) decides at most twice: on the
// cached list, then on a consistent one; a race after that goes back to
// its work queue.
const maxConvertAttempts = 8

// appendBackoff paces the conflict retries of a conversion's status write
// for callers without a work queue. Every conversion of a signature writes
// its one Incident, so an alert storm makes it the hottest object there
// is, and winners go straight on to their next Alert while losers wait:
// under the controllers suite's storm (10 goroutines converting 50 Alerts
// of one signature; about 500 conversions measured with this backoff) a
// conversion took 2-3 attempts at the median, 6 at the 95th percentile and
// 10 at worst (about 3 s), each further attempt about half as likely. The
// few attempts of kube.ConflictBackoff would answer one conversion in 20
// of such a storm with 503 / exit 5 (busy: try again); 20 attempts, waits
// doubling from 25 ms to 400 ms with full jitter (at most about 13 s),
// let a storm's conversions through and still end in a clear error.
var appendBackoff = wait.Backoff{Steps: 20, Duration: 25 * time.Millisecond, Factor: 2, Jitter: 1, Cap: 400 * time.Millisecond}

// errNotOpen makes Convert decide again: the Incident it chose left the
// open states before the append landed.
var errNotOpen = errors.New("incident is no longer open")

// errNoTarget makes Convert decide again on a consistent list: the cached
// list found no open Incident to append to.
var errNoTarget = errors.New("no open incident in the cached list")

// errRelinked makes Convert follow the Alert's link: another conversion of
// the same Alert linked it between our read and our write.
var errRelinked = errors.New("the Alert was linked to another Incident meanwhile")

// Options tune a conversion; zero values fall back to the namespace's
// AlertRoutingPolicy, then to the built-in defaults.
type Options struct {
	// SeverityCap: the Incident is never worse than this.
	SeverityCap v1.Severity
	// DedupeWindow: an open Incident of the signature active within it
	// absorbs the Alert.
	DedupeWindow time.Duration
	// Signature overrides the Alert's computed signature.
	Signature string
	// Clock is injected so tests control time; nil is the real clock.
	Clock clock.PassiveClock
	// Caller is the Kubernetes user the conversion is for: it authors the
	// AlertAppended entry, and a Processing Alert someone else holds is
	// not converted for it (the admission policy alertbridge-alert-status
	// refuses anyone but the holder a change to it, the link included).
	// The CLI passes the user the API server names it, the HTTP API the
	// caller it authenticated and authorised. Empty is the operator's own
	// conversion (automatic conversion): no author, and no holder rule.
	Caller string
	// Queued is for reconcilers: a conflict or a lost race is returned for
	// the work queue to retry. Callers without a work queue (the CLI, the
	// HTTP API) leave it false: a conflict is retried with jittered backoff
	// (appendBackoff), then returned as a *kube.ContendedError.
	Queued bool
}

// Result says what a conversion did. Whether the Alert starts a triage run
// is not in it: the operator decides that when it sees the new ref
// (status.triage; status.triage.observedAlertCount below alertCount means
// it has not looked yet).
type Result struct {
	Incident *v1.Incident `json:"incident"`
	// Created is true when this call created the Incident.
	Created bool `json:"created"`
	// Appended is true when this call appended the Alert (false when the
	// Incident recorded it already).
	Appended bool `json:"appended"`
}

// Convert is alert_to_incident: the Alert is appended to the open Incident
// of its signature active inside the dedupe window, or to a new Incident
// created with the Alert's severity capped. It makes only the writes anyone
// allowed to convert may make, in this order:
//
//  1. the Alert's status.incidentRef names the Incident chosen (its
//     deterministic name, for a new one), so a link the API server refuses
//     (the Alert is held by someone else) leaves nothing behind;
//  2. a new Incident is created, spec only; the operator opens it;
//  3. the ref is appended to status.alertRefs, alertCount+1, with one
//     AlertAppended entry in opts.Caller's name (AppendAlert).
//
// The operator then decides triage on the new ref (ApplyTriage). Incident
// names are deterministic (signature hash + the signature's Incident
// counter), so racing conversions create one Incident: the losers of the
// Create append to the winner's. Each append is an optimistic write that
// re-checks the Incident on a fresh read, so every Alert is counted once.
// Converting an Alert that is linked already finishes an interrupted
// conversion (the append) or returns its Incident; one linked to an
// Incident that is gone or closed without recording it is converted again.
//
// c must read from the API server, not a cache: decisions depend on fresh
// state.
func Convert(ctx context.Context, c client.Client, alert client.ObjectKey, opts Options) (*Result, error) {
	cv := &converter{Writer: Writer{Client: c}, opts: opts, clk: opts.Clock}
	if cv.clk == nil {
		cv.clk = clock.RealClock{}
	}
	if !opts.Queued {
		cv.Retry = appendBackoff
	}
	var a v1.Alert
	if err := c.Get(ctx, alert, &a); err != nil {
		return nil, fmt.Errorf("failed to read Alert %s: %w", alert, err)
	}
	if err := cv.mayLink(&a); err != nil {
		return nil, err
	}
	// The first decision reads the API server's watch cache (resourceVersion
	// 0): a consistent list waits for etcd progress notifications, ~100ms,
	// and a storm is mostly appends, which re-check the chosen Incident on
	// the fresh read inside their optimistic write anyway. Creating an
	// Incident (and so naming it) is decided on a consistent list.
	attempts := maxConvertAttempts
	if opts.Queued {
		attempts = 2
	}
	consistent := false
	var lost error
	for range attempts {
		res, err := cv.once(ctx, &a, consistent)
		if !errors.Is(err, errNotOpen) && !errors.Is(err, errNoTarget) && !errors.Is(err, errRelinked) {
			return res, err
		}
		consistent, lost = true, err
		a = v1.Alert{}
		if err := c.Get(ctx, alert, &a); err != nil {
			return nil, fmt.Errorf("failed to read Alert %s: %w", alert, err)
		}
	}
	return nil, fmt.Errorf("failed to convert Alert %s: the signature's Incidents kept changing: %w", klog.KObj(&a), lost)
}

// converter is one conversion's state.
type converter struct {
	Writer
	opts Options
	clk  clock.PassiveClock
	pol  *policy.Policy
}

// once makes one decision and its writes: follow the Alert's link if it
// has one that still counts, else choose (or name) the Incident, link,
// create and append.
func (cv *converter) once(ctx context.Context, a *v1.Alert, consistent bool) (*Result, error) {
	if ref := a.Status.IncidentRef; ref != nil {
		res, err := cv.resume(ctx, a, ref.Name)
		if res != nil || err != nil {
			return res, err
		}
	}
	target, create, err := cv.decide(ctx, a, consistent)
	if err != nil {
		return nil, err
	}
	linked, err := cv.link(ctx, a, target)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if create != nil {
		switch err := cv.Client.Create(ctx, create); {
		case err == nil:
			res.Created = true
		case !apierrors.IsAlreadyExists(err): // a racing conversion created it: append to it
			return nil, fmt.Errorf("failed to create Incident %s: %w", klog.KObj(create), err)
		}
	}
	res.Incident, res.Appended, err = cv.append(ctx, a, target, linked)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// resume follows an Alert linked to the Incident name: the Incident when it
// records the Alert, after appending it when it is open and does not. It
// returns nil (decide again) when the Incident is gone, or left the open
// states without recording the Alert.
func (cv *converter) resume(ctx context.Context, a *v1.Alert, name string) (*Result, error) {
	var inc v1.Incident
	err := cv.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: name}, &inc)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to read Incident %s: %w", name, err)
	case Recorded(&inc, a.Name):
		return &Result{Incident: &inc}, nil
	case !inc.Spec.State.IsOpen():
		return nil, nil
	}
	got, appended, err := cv.append(ctx, a, name, false)
	if errors.Is(err, errNotOpen) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Result{Incident: got, Appended: appended}, nil
}

// decide chooses the open Incident of the Alert's signature active within
// the dedupe window, or names a new one (returned to be created).
func (cv *converter) decide(ctx context.Context, a *v1.Alert, consistent bool) (string, *v1.Incident, error) {
	if cv.pol == nil {
		pol, err := policy.Get(ctx, cv.Client, a.Namespace)
		if err != nil {
			return "", nil, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", a.Namespace, err)
		}
		cv.pol = &pol
	}
	sig := cv.opts.Signature
	if sig == "" {
		sig = Signature(a, cv.pol.Spec.SignatureLabels)
	}
	window := policy.Flag(cv.opts.DedupeWindow, policyDedupeWindow(*cv.pol))
	capSev := cv.opts.SeverityCap
	if capSev == "" {
		capSev = policySeverityCap(*cv.pol)
	}
	var listOpts []client.ListOption
	if !consistent {
		listOpts = append(listOpts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}})
	}
	siblings, err := List(ctx, cv.Client, a.Namespace, sig, listOpts...)
	if err != nil {
		return "", nil, err
	}
	now := cv.clk.Now()
	var target *v1.Incident
	var maxSeq int64
	for i := range siblings {
		s := &siblings[i]
		maxSeq = max(maxSeq, Seq(s))
		if !s.Spec.State.IsOpen() || now.Sub(LastActivity(s)) > window {
			continue
		}
		if target == nil || LastActivity(s).After(LastActivity(target)) {
			target = s
		}
	}
	switch {
	case target != nil:
		return target.Name, nil, nil
	case !consistent:
		return "", nil, errNoTarget
	}
	inc := newIncident(a, sig, maxSeq+1, capSev)
	return inc.Name, inc, nil
}

// mayLink refuses a conversion for the caller of an Alert someone else
// holds, in the words of the holder rule: the admission policy refuses
// such a link to anyone but the operator, and the HTTP API, which writes
// as the operator, must refuse it to its caller the same.
func (cv *converter) mayLink(a *v1.Alert) error {
	caller := cv.opts.Caller
	if caller == "" || a.Status.Phase != v1.AlertProcessing {
		return nil
	}
	e := &alertstate.NotHolderError{Alert: a.Name, Caller: alertstate.Caller{User: caller}, Op: "convert", Phase: a.Status.Phase}
	if cl := a.Status.Claim; cl != nil {
		if cl.HolderUser == caller {
			return nil
		}
		e.Holder = alertstate.Caller{Owner: cl.HolderIdentity, User: cl.HolderUser}
		e.Until = alertstate.LeaseExpiry(&a.Status)
		e.Expired = !cv.clk.Now().Before(e.Until)
	}
	return e
}

// link records the Incident in the Alert's status.incidentRef without
// touching its phase: a patch of this one field under the resourceVersion
// read (the patch verb is what the on-call role holds on alerts/status).
// It replaces only the link a is known to have: another conversion that
// linked the Alert elsewhere meanwhile is followed (errRelinked), not
// overwritten. It reports whether this call made the link (false: the
// Alert was linked there already).
func (cv *converter) link(ctx context.Context, a *v1.Alert, incident string) (bool, error) {
	key := client.ObjectKeyFromObject(a)
	known := refName(a.Status.IncidentRef)
	linked := false
	w := alertstate.Writer{Client: cv.Client, Reader: cv.reader(), Retry: cv.Retry}
	got, err := w.Update(ctx, key, nil, func(a *v1.Alert) (bool, error) {
		linked = false
		if err := cv.mayLink(a); err != nil {
			return false, err
		}
		switch refName(a.Status.IncidentRef) {
		case incident:
			return false, nil
		case known:
		default:
			return false, errRelinked
		}
		a.Status.IncidentRef = &v1.LocalObjectReference{Name: incident}
		linked = true
		return true, nil
	})
	if got != nil {
		*a = *got
	}
	if err != nil {
		if errors.Is(err, errRelinked) {
			return false, err
		}
		return false, fmt.Errorf("failed to record incidentRef on Alert %s: %w", key, err)
	}
	return linked, nil
}

// append appends the Alert to the Incident name, which must be open; it
// reports whether this call appended it (false: it was there already).
// After its own link (linked), the call knows the Alert was not appended
// before: what the Incident shows decides (Appended). Following a link it
// found, it goes by Recorded, which never counts an Alert twice. A
// reconciler that has linked the Alert retries a conflicting append a few
// times on fresh reads rather than return it to its queue: the next
// reconcile would find the link, and could not always tell the append is
// missing.
func (cv *converter) append(ctx context.Context, a *v1.Alert, name string, linked bool) (*v1.Incident, bool, error) {
	w := cv.Writer
	if linked && cv.opts.Queued {
		w.Retry = kube.ConflictBackoff
	}
	appended := false
	inc, err := w.Append(ctx, client.ObjectKey{Namespace: a.Namespace, Name: name}, func(inc *v1.Incident) (bool, error) {
		appended = false
		if Appended(inc, a.Name) || (!linked && Recorded(inc, a.Name)) {
			return false, nil
		}
		if !inc.Spec.State.IsOpen() {
			return false, errNotOpen
		}
		appended = AppendAlert(inc, a.Name, cv.clk.Now(), cv.opts.Caller)
		return appended, nil
	})
	if err != nil {
		return nil, false, err
	}
	return inc, appended, nil
}

func newIncident(a *v1.Alert, sig string, seq int64, capSev v1.Severity) *v1.Incident {
	sev := a.Spec.Severity
	if sev == "" {
		sev = v1.SeverityP3
	}
	return &v1.Incident{
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(sig, seq),
			Namespace: a.Namespace,
			Labels:    map[string]string{v1.SignatureLabel: SignatureHash(sig), SeqLabel: fmt.Sprint(seq)},
		},
		Spec: v1.IncidentSpec{
			Service:   a.Spec.Service,
			Env:       a.Spec.Env,
			Severity:  CapSeverity(sev, capSev),
			Title:     a.Spec.Title,
			Signature: sig,
			State:     v1.IncidentOpen,
		},
	}
}

// List returns the Incidents of a signature in a namespace.
func List(ctx context.Context, r client.Reader, namespace, sig string, opts ...client.ListOption) ([]v1.Incident, error) {
	var list v1.IncidentList
	opts = append(opts, client.InNamespace(namespace), client.MatchingLabels{v1.SignatureLabel: SignatureHash(sig)})
	if err := r.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("failed to list Incidents of signature %q: %w", sig, err)
	}
	return list.Items, nil
}

// AddNote records a note: a Note timeline entry in author's name (the
// user the API server authenticated, or the caller the HTTP API writes
// for), and spec.note. It is for callers without a work queue: conflicts
// are retried a few times.
func AddNote(ctx context.Context, c client.Client, key client.ObjectKey, note, author string, clk clock.PassiveClock) (*v1.Incident, error) {
	if clk == nil {
		clk = clock.RealClock{}
	}
	w := Writer{Client: c, Retry: kube.ConflictBackoff}
	if _, err := w.Append(ctx, key, func(inc *v1.Incident) (bool, error) {
		ApplyNote(inc, clk.Now(), note, author)
		return true, nil
	}); err != nil {
		return nil, err
	}
	return w.Spec(ctx, key, func(inc *v1.Incident) error {
		if inc.Spec.State != v1.IncidentClosed { // the closing note stays as it was
			inc.Spec.Note = note
		}
		return nil
	})
}

// ErrAlreadyClosed is returned when closing a Closed Incident: Closed is
// terminal and its closing note is part of the record.
var ErrAlreadyClosed = errors.New("the Incident is already Closed")

// Close sets spec.state to Closed with the note; the API server refuses a
// close without one, and a close from a state that does not allow it.
func Close(ctx context.Context, c client.Client, key client.ObjectKey, note string) (*v1.Incident, error) {
	return Writer{Client: c, Retry: kube.ConflictBackoff}.Spec(ctx, key, func(inc *v1.Incident) error {
		if inc.Spec.State == v1.IncidentClosed {
			return ErrAlreadyClosed
		}
		inc.Spec.State = v1.IncidentClosed
		inc.Spec.Note = note
		return nil
	})
}

// ErrSameState is returned when an Incident is already in the state asked for.
var ErrSameState = errors.New("the Incident is already in that state")

// SetState moves spec.state (Open, Mitigating, Resolved; Closed through
// Close, which needs a note); a non-empty note is recorded as spec.note.
// The API server refuses the transitions the design does not allow; the
// controller records the change in status and the timeline.
func SetState(ctx context.Context, c client.Client, key client.ObjectKey, state v1.IncidentState, note string) (*v1.Incident, error) {
	if state == v1.IncidentClosed {
		return Close(ctx, c, key, note)
	}
	return Writer{Client: c, Retry: kube.ConflictBackoff}.Spec(ctx, key, func(inc *v1.Incident) error {
		if inc.Spec.State == state {
			return ErrSameState
		}
		inc.Spec.State = state
		if note != "" {
			inc.Spec.Note = note
		}
		return nil
	})
}

func policyDedupeWindow(p policy.Policy) time.Duration {
	if ip := p.Spec.Incident; ip != nil && ip.DedupeWindow != nil && ip.DedupeWindow.Duration > 0 {
		return ip.DedupeWindow.Duration
	}
	return policy.IncidentDedupe
}

func policySeverityCap(p policy.Policy) v1.Severity {
	if ip := p.Spec.Incident; ip != nil && ip.SeverityCap != "" {
		return ip.SeverityCap
	}
	return DefaultSeverityCap
}
