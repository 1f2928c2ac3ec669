package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/notify"
)

// recheckReady is how often a Receiver's Secret is read again while it is
// not Ready (the operator cannot watch Secrets), and recheckReadyOK while
// it is.
const (
	recheckReady   = 30 * time.Second
	recheckReadyOK = 10 * time.Minute
)

// ReceiverReconciler keeps a Receiver's Ready condition (does its Secret
// hold what its type needs, and may it be sent?) and, for a Receiver with
// spec.alerts, announces new Alerts in digests (internal/notify): one
// digest per groupInterval at most, whatever the storm, recorded in
// status.alerts before the watermark moves, so a restart neither skips nor
// doubles an Alert.
type ReceiverReconciler struct {
	client.Client
	APIReader    client.Reader
	Recorder     events.EventRecorder
	Clock        clock.PassiveClock
	HTTPClient   *http.Client
	Backoff      time.Duration
	DashboardURL string
	Gates        *notify.Gates
	// Grants says how a namespace lets the operator read its Secrets.
	Grants  Grants
	pending *pendingSet

	mu sync.Mutex
	// checked is when each Receiver's Secret was last read.
	checked map[types.UID]checkedAt
	// sent holds each Receiver's alert status after an attempt, until the
	// cache shows it (see NotificationReconciler.sent).
	sent map[types.UID]v1.ReceiverAlertsStatus
}

type checkedAt struct {
	generation int64
	at         time.Time
}

// The Receiver controller records the Ready condition and the digest of
// new Alerts in a Receiver's status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=receivers/status,verbs=patch
// The Receiver controller reads Alerts to announce new ones (spec.alerts).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get;list;watch

// Reconcile checks the Receiver's Secret and sends the digest of new
// Alerts that is due; one status write.
func (r *ReceiverReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var rcv v1.Receiver
	if err := r.Get(ctx, req.NamespacedName, &rcv); err != nil {
		if apierrors.IsNotFound(err) {
			r.pending.forget(r.pendingKey(req.NamespacedName))
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("receiver", klog.KObj(&rcv))
	ctx = ctrl.LoggerInto(ctx, log)
	now := r.Clock.Now()
	orig := rcv.DeepCopy()
	recheck := r.checkReady(ctx, &rcv, now)
	wait, err := r.announce(ctx, &rcv, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !equality.Semantic.DeepEqual(orig.Status, rcv.Status) {
		if err := r.Status().Patch(ctx, &rcv, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("failed to update status of Receiver %s: %w", klog.KObj(&rcv), err)
		}
	}
	if wait == 0 || recheck < wait {
		wait = recheck
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

// checkReady reads the Receiver's Secret when its spec changed, or its
// last check is old, and sets Ready; it returns when to check again.
func (r *ReceiverReconciler) checkReady(ctx context.Context, rcv *v1.Receiver, now time.Time) time.Duration {
	ready := meta.FindStatusCondition(rcv.Status.Conditions, v1.ReceiverConditionReady)
	every := recheckReadyOK
	if ready == nil || ready.Status != metav1.ConditionTrue {
		every = recheckReady
	}
	r.mu.Lock()
	last, ok := r.checked[rcv.UID]
	r.mu.Unlock()
	if ok && last.generation == rcv.Generation && ready != nil && ready.ObservedGeneration == rcv.Generation && now.Sub(last.at) < every {
		return every - now.Sub(last.at)
	}
	c := metav1.Condition{Type: v1.ReceiverConditionReady, Status: metav1.ConditionTrue, Reason: v1.ReasonReceiverReady, ObservedGeneration: rcv.Generation}
	_, err := credential(ctx, r.APIReader, r.Grants, rcv)
	credentialsCondition(rcv, err)
	if err != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, err.reason, err.msg+"; nothing is sent until it is fixed"
		if err.reason == v1.ReasonSecretNotAllowed && (ready == nil || ready.Reason != err.reason) {
			r.Recorder.Eventf(rcv, nil, corev1.EventTypeWarning, v1.ReasonSecretNotAllowed, "Check", "%s", err.msg)
		}
		every = recheckReady
	} else {
		c.Message = fmt.Sprintf("%s receiver; its credential is key %s of Secret %s", rcv.Spec.Type, secretKey(rcv), rcv.Spec.SecretRef.Name)
		every = recheckReadyOK
	}
	meta.SetStatusCondition(&rcv.Status.Conditions, c)
	rcv.Status.ObservedGeneration = rcv.Generation
	r.mu.Lock()
	if r.checked == nil {
		r.checked = map[types.UID]checkedAt{}
	}
	r.checked[rcv.UID] = checkedAt{generation: rcv.Generation, at: now}
	r.mu.Unlock()
	return every
}

// announce sends the digest of new Alerts that is due, if any, and
// returns when to look again. The watermark (notifiedThrough) moves only
// once a digest is finished (delivered, or given up), and a digest's
// cutoff is in status before anything is sent, so every attempt and a
// restart send the same digest under the same key.
func (r *ReceiverReconciler) announce(ctx context.Context, rcv *v1.Receiver, now time.Time) (time.Duration, error) {
	key := r.pendingKey(client.ObjectKeyFromObject(rcv))
	if rcv.Spec.Alerts == nil {
		r.pending.set(key, rcv.Spec.Type, false)
		return 0, nil
	}
	st := r.alertsStatus(rcv)
	var alerts v1.AlertList
	if err := r.List(ctx, &alerts, client.InNamespace(rcv.Namespace)); err != nil {
		return 0, fmt.Errorf("failed to list Alerts of %s: %w", rcv.Namespace, err)
	}
	d := st.Digest
	if d == nil || !notify.Pending(&d.DeliveryAttempts) {
		through := notify.Cutoff(alerts.Items, now)
		items := notify.InDigest(alerts.Items, rcv, st.NotifiedThrough.Time, through)
		if len(items) == 0 {
			r.pending.set(key, rcv.Spec.Type, false)
			return untilNext(notify.NextIncluded(alerts.Items, rcv, notify.Later(through, st.NotifiedThrough.Time)), now), nil
		}
		r.pending.set(key, rcv.Spec.Type, true)
		if d != nil && d.LastAttemptAt != nil {
			if due := d.LastAttemptAt.Add(notify.GroupInterval(rcv)); due.After(now) {
				return due.Sub(now), nil
			}
		}
		d = notify.NewDigest(string(rcv.UID), through, len(items), now)
		st.Digest = d
	}
	r.pending.set(key, rcv.Spec.Type, true)
	if d.NextAttemptAt.After(now) {
		return d.NextAttemptAt.Sub(now), nil
	}
	if wait := r.Gates.Take(rcv, now); wait > 0 {
		return wait, nil
	}
	items := notify.InDigest(alerts.Items, rcv, st.NotifiedThrough.Time, d.Through.Time)
	if len(items) == 0 { // acked, silenced or gone before it went out
		st.Digest, st.NotifiedThrough = nil, d.Through.DeepCopy()
		r.remember(rcv, st)
		r.pending.set(key, rcv.Spec.Type, false)
		return 0, nil
	}
	res := r.attempt(ctx, rcv, d, items, now)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	finished := notify.RecordAttempt(&d.DeliveryAttempts, now, r.Backoff, res)
	r.Gates.Observe(rcv, now, r.Backoff, res)
	countAttempt(rcv.Spec.Type, res, finished)
	if !finished {
		r.remember(rcv, st)
		return d.NextAttemptAt.Sub(now), nil
	}
	st.NotifiedThrough = d.Through.DeepCopy()
	r.remember(rcv, st)
	r.pending.set(key, rcv.Spec.Type, false)
	if res.Err != nil {
		r.Recorder.Eventf(rcv, nil, corev1.EventTypeWarning, EventNotificationFailed, "Notify",
			"Digest of %d new Alerts given up after %s: %s", d.Alerts, attempts(d.Attempts), d.LastError)
	}
	return untilNext(notify.NextIncluded(alerts.Items, rcv, d.Through.Time), now), nil
}

func (r *ReceiverReconciler) attempt(ctx context.Context, rcv *v1.Receiver, d *v1.AlertDigest, items []v1.Alert, now time.Time) notify.Result {
	cred, cerr := credential(ctx, r.APIReader, r.Grants, rcv)
	if cerr != nil {
		return notify.Failed(cerr, cerr.retryable)
	}
	msg, err := notify.AlertsMessage(notify.Target{Receiver: rcv, Credential: cred, DashboardURL: r.DashboardURL, Now: now},
		d, items[:min(len(items), notify.MaxDigestItems)], len(items))
	if err != nil {
		return notify.Failed(err, false)
	}
	return notify.Send(ctx, r.HTTPClient, rcv.Spec.Type, msg)
}

// alertsStatus is rcv's status.alerts, with what this replica sent that
// the cache does not show yet, started when there is none.
func (r *ReceiverReconciler) alertsStatus(rcv *v1.Receiver) *v1.ReceiverAlertsStatus {
	st := rcv.Status.Alerts
	r.mu.Lock()
	sent, ok := r.sent[rcv.UID]
	if ok && (st == nil || st.NotifiedThrough == nil || ahead(&sent, st)) {
		st = sent.DeepCopy()
	} else if ok {
		delete(r.sent, rcv.UID) // the cache has caught up
	}
	r.mu.Unlock()
	if st == nil || st.NotifiedThrough == nil {
		// From the Receiver's creation on, its second included (times are
		// whole seconds), or from now when spec.alerts came later.
		start := metav1.NewTime(rcv.CreationTimestamp.Add(-time.Second))
		if rcv.Generation > 1 {
			start = metav1.NewTime(r.Clock.Now().Truncate(time.Second))
		}
		st = &v1.ReceiverAlertsStatus{NotifiedThrough: &start}
	}
	rcv.Status.Alerts = st
	return st
}

// ahead reports whether a is a later state of the announcements than b:
// the watermark, then the digest's cutoff, then its attempts only grow.
func ahead(a, b *v1.ReceiverAlertsStatus) bool {
	if c := a.NotifiedThrough.Compare(b.NotifiedThrough.Time); c != 0 {
		return c > 0
	}
	through := func(s *v1.ReceiverAlertsStatus) (time.Time, int32) {
		if s.Digest == nil {
			return time.Time{}, 0
		}
		return s.Digest.Through.Time, s.Digest.Attempts
	}
	at, aa := through(a)
	bt, ba := through(b)
	if c := at.Compare(bt); c != 0 {
		return c > 0
	}
	return aa > ba
}

func (r *ReceiverReconciler) remember(rcv *v1.Receiver, st *v1.ReceiverAlertsStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[types.UID]v1.ReceiverAlertsStatus{}
	}
	r.sent[rcv.UID] = *st.DeepCopy()
}

func (r *ReceiverReconciler) pendingKey(rcv types.NamespacedName) string {
	return "receiver/" + rcv.Namespace + "/" + rcv.Name
}

// untilNext is how long until at, when an Alert beyond the last cutoff
// may go into a digest; zero (no timer) when there is none. An Alert that
// should be includable already is held back by one the Alert controller
// has not decided yet: its decision wakes this controller, and a deleted
// one is noticed within Settle.
func untilNext(at, now time.Time) time.Duration {
	if at.IsZero() {
		return 0
	}
	if !at.After(now) {
		return notify.Settle
	}
	return at.Sub(now)
}

// SetupWithManager registers the controller: Receivers, and the Alerts of
// their namespace for those with spec.alerts (only the changes that can
// bring an Alert into play: its first decision and its Silence).
func (r *ReceiverReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Timeout: defaultNotificationTimeout}
	}
	if r.Backoff <= 0 {
		r.Backoff = defaultNotificationBackoff
	}
	if r.Gates == nil {
		r.Gates = &notify.Gates{}
	}
	if r.pending == nil {
		r.pending = &pendingSet{}
	}
	intoPlay := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld.(*v1.Alert), e.ObjectNew.(*v1.Alert)
			return o.Status.Phase != n.Status.Phase || !equality.Semantic.DeepEqual(
				meta.FindStatusCondition(o.Status.Conditions, v1.AlertConditionSilenced),
				meta.FindStatusCondition(n.Status.Conditions, v1.AlertConditionSilenced))
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("receiver").
		For(&v1.Receiver{}).
		Watches(&v1.Alert{}, handler.EnqueueRequestsFromMapFunc(r.receiversOfAlert), builder.WithPredicates(intoPlay)).
		Complete(r)
}

func (r *ReceiverReconciler) receiversOfAlert(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.ReceiverList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list Receivers for the Alert", "alert", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].Spec.Alerts != nil {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// credentialsCondition keeps the Receiver's CredentialsAvailable: True
// once its Secret was read, False when it could not be for a reason that
// is the namespace's to fix (not granted, missing, not allowed); a passing
// failure leaves it as it was.
func credentialsCondition(rcv *v1.Receiver, err *credentialError) {
	c := metav1.Condition{Type: v1.ConditionCredentialsAvailable, Status: metav1.ConditionFalse, ObservedGeneration: rcv.Generation}
	switch {
	case err == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1.ReasonCredentialsRead, "Secret "+rcv.Spec.SecretRef.Name+" read"
	case err.reason == v1.ReasonNotGranted || err.reason == v1.ReasonSecretNotAllowed ||
		(err.reason == v1.ReasonSecretMissing && strings.HasSuffix(err.msg, "not found")):
		c.Reason, c.Message = err.reason, err.msg
	case err.reason == v1.ReasonKeyMissing || err.reason == v1.ReasonInvalidSecret:
		// The Secret was read; what it holds is Ready's to report.
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1.ReasonCredentialsRead, "Secret "+rcv.Spec.SecretRef.Name+" read"
	default:
		return
	}
	meta.SetStatusCondition(&rcv.Status.Conditions, c)
}
