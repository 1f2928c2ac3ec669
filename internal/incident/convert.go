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
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// DefaultSeverityCap is the built-in incident severity cap.
const DefaultSeverityCap = v1.SeverityP1

// maxConvertAttempts bounds re-decisions after a lost Create race or an
// Incident that stopped being open under us, for callers without a work
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
// of such a storm with 503 / exit 5 (DECISIONS D6); 20 attempts, waits
// doubling from 25 ms to 400 ms with full jitter (at most about 13 s),
// let a storm's conversions through and still end in a clear error.
var appendBackoff = wait.Backoff{Steps: 20, Duration: 25 * time.Millisecond, Factor: 2, Jitter: 1, Cap: 400 * time.Millisecond}

// errNotOpen makes Convert decide again: the Incident it chose left the
// open states (or the dedupe window) before the append landed.
var errNotOpen = errors.New("incident is no longer open")

// errNoTarget makes Convert decide again on a consistent list: the cached
// list found no open Incident to append to.
var errNoTarget = errors.New("no open incident in the cached list")

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
	// MirrorOn says the PostgreSQL mirror runs: only mirrored timeline
	// entries may be trimmed. Callers that cannot know leave it true.
	MirrorOn bool
	// Queued is for reconcilers: a conflict or a lost race is returned for
	// the work queue to retry. Callers without a work queue (the CLI, the
	// HTTP API) leave it false: a conflict is retried with jittered backoff
	// (appendBackoff), then returned as a *kube.ContendedError.
	Queued bool
}

// Result says what a conversion did.
type Result struct {
	Incident *v1.Incident `json:"incident"`
	// Created is true when this call created the Incident.
	Created bool `json:"created"`
	// Appended is true when this call linked the Alert (false when it was
	// already linked).
	Appended bool `json:"appended"`
	// TriageStarted is true when this call's write started a triage run.
	TriageStarted bool `json:"triageStarted"`
}

// Convert is the runbook's alert_to_incident: the Alert is appended to the
// open Incident of its signature active inside the dedupe window, or a new
// Incident is created with the Alert's severity capped. Incident names are
// deterministic (signature hash + the signature's Incident counter), so
// racing conversions create one Incident: the loser of the Create re-reads
// and appends. The Alert's status.incidentRef records the result; converting
// an already converted Alert returns its Incident.
//
// c must read from the API server, not a cache: decisions depend on fresh
// state.
func Convert(ctx context.Context, c client.Client, alert client.ObjectKey, opts Options) (*Result, error) {
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	var a v1.Alert
	if err := c.Get(ctx, alert, &a); err != nil {
		return nil, fmt.Errorf("failed to read Alert %s: %w", alert, err)
	}
	if a.Status.IncidentRef != nil {
		var inc v1.Incident
		err := c.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Status.IncidentRef.Name}, &inc)
		if err == nil {
			return &Result{Incident: &inc}, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("failed to read Incident %s: %w", a.Status.IncidentRef.Name, err)
		}
	}
	pol, err := policy.Get(ctx, c, a.Namespace)
	if err != nil {
		return nil, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", a.Namespace, err)
	}
	sig := opts.Signature
	if sig == "" {
		sig = Signature(&a, pol.Spec.SignatureLabels)
	}
	window := policy.Flag(opts.DedupeWindow, policyDedupeWindow(pol))
	capSev := opts.SeverityCap
	if capSev == "" {
		capSev = policySeverityCap(pol)
	}

	// The first decision reads the API server's watch cache (resourceVersion
	// 0): a consistent list waits for etcd progress notifications, ~100ms,
	// and a storm is mostly appends, which re-check the chosen Incident on
	// the fresh read inside their optimistic write anyway. Creating an
	// Incident (and inheriting a cooldown) is decided on a consistent list.
	w := Writer{Client: c, MirrorOn: opts.MirrorOn}
	if !opts.Queued {
		w.Retry = appendBackoff
	}
	attempts := maxConvertAttempts
	if opts.Queued {
		attempts = 2
	}
	consistent := false
	var lost error
	for range attempts {
		res, err := convertOnce(ctx, w, &a, sig, capSev, window, pol.TriageCooldown(), clk, consistent)
		if errors.Is(err, errNotOpen) || errors.Is(err, errNoTarget) || apierrors.IsAlreadyExists(err) {
			consistent, lost = true, err
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := linkAlert(ctx, w, &a, res.Incident.Name); err != nil {
			return nil, err
		}
		return res, nil
	}
	return nil, fmt.Errorf("failed to convert Alert %s: the signature's Incidents kept changing: %w", klog.KObj(&a), lost)
}

func convertOnce(ctx context.Context, w Writer, a *v1.Alert, sig string, capSev v1.Severity, window, cooldown time.Duration,
	clk clock.PassiveClock, consistent bool) (*Result, error) {
	c := w.Client
	var listOpts []client.ListOption
	if !consistent {
		listOpts = append(listOpts, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}})
	}
	siblings, err := List(ctx, c, a.Namespace, sig, listOpts...)
	if err != nil {
		return nil, err
	}
	now := clk.Now()
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
	res := &Result{}
	if target == nil && !consistent {
		return nil, errNoTarget
	}
	if target == nil {
		target = newIncident(a, sig, maxSeq+1, capSev)
		if err := c.Create(ctx, target); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return nil, err // a racing conversion won: decide again
			}
			return nil, fmt.Errorf("failed to create Incident %s: %w", klog.KObj(target), err)
		}
		res.Created = true
	}
	key := client.ObjectKeyFromObject(target)
	res.Incident, err = w.Status(ctx, key, func(inc *v1.Incident) (bool, error) {
		res.Appended, res.TriageStarted = false, false
		first := inc.Annotations[FirstAlertAnnotation]
		opened := inc.Status.OpenedAt == nil
		if opened {
			sibs, err := List(ctx, c, inc.Namespace, sig)
			if err != nil {
				return false, err
			}
			res.TriageStarted = ApplyOpen(inc, clk.Now(), cooldown, first, Inherited(sibs, inc.Name))
			res.Appended = first == a.Name
		}
		if !inc.Spec.State.IsOpen() || (!opened && clk.Now().Sub(LastActivity(inc)) > window) {
			return false, errNotOpen
		}
		appended, triaged := ApplyAppend(inc, a.Name, clk.Now(), cooldown)
		res.Appended = res.Appended || appended
		res.TriageStarted = res.TriageStarted || triaged
		return opened || appended, nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func newIncident(a *v1.Alert, sig string, seq int64, capSev v1.Severity) *v1.Incident {
	sev := a.Spec.Severity
	if sev == "" {
		sev = v1.SeverityP3
	}
	return &v1.Incident{
		ObjectMeta: metav1.ObjectMeta{
			Name:        Name(sig, seq),
			Namespace:   a.Namespace,
			Labels:      map[string]string{v1.SignatureLabel: SignatureHash(sig), SeqLabel: fmt.Sprint(seq)},
			Annotations: map[string]string{FirstAlertAnnotation: a.Name},
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

// linkAlert records the Incident in the Alert's status.incidentRef without
// touching its phase: a patch of this one field under the resourceVersion
// read (the patch verb is what the on-call role holds on alerts/status).
func linkAlert(ctx context.Context, w Writer, a *v1.Alert, incident string) error {
	key := client.ObjectKeyFromObject(a)
	write := func() error {
		*a = v1.Alert{}
		if err := w.Client.Get(ctx, key, a); err != nil {
			return err
		}
		if a.Status.IncidentRef != nil && a.Status.IncidentRef.Name == incident {
			return nil
		}
		orig := a.DeepCopy()
		a.Status.IncidentRef = &v1.LocalObjectReference{Name: incident}
		return w.Client.Status().Patch(ctx, a, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	}
	if err := w.do(ctx, "Alert "+key.String(), write); err != nil {
		return fmt.Errorf("failed to record incidentRef on Alert %s: %w", key, err)
	}
	return nil
}

// AddNote records a note: a Note timeline entry, and spec.note. It is for
// callers without a work queue: conflicts are retried a few times.
func AddNote(ctx context.Context, c client.Client, key client.ObjectKey, note, by string, clk clock.PassiveClock, mirrorOn bool) (*v1.Incident, error) {
	if clk == nil {
		clk = clock.RealClock{}
	}
	w := Writer{Client: c, Retry: kube.ConflictBackoff, MirrorOn: mirrorOn}
	if _, err := w.Status(ctx, key, func(inc *v1.Incident) (bool, error) {
		ApplyNote(inc, clk.Now(), note, by)
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
