package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/notify"
)

// Defaults of the notification controllers.
const (
	defaultNotificationBackoff = 2 * time.Second
	defaultNotificationTimeout = 10 * time.Second
	notificationReconcilers    = 4
)

// NotificationReconciler tells a namespace's Receivers about its
// Incidents: what each Receiver is owed is decided from the Incident and
// the record of what it was told (internal/notify), sent with one POST per
// Receiver, the Receivers of one Incident in parallel, and recorded in
// status.notifications. A failed POST is retried on a timer (RequeueAfter),
// never by waiting here. It is its own controller, so the Incident
// controller, ingest and the gate never wait for a receiver.
type NotificationReconciler struct {
	client.Client
	// APIReader reads Secrets by name (the operator has no list or watch
	// on them, so they are not cached).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// HTTPClient sends notifications (through internal/outbound).
	HTTPClient *http.Client
	// Grants says how a namespace lets the operator read its Secrets.
	Grants Grants
	// Backoff is the wait before a failed notification's second attempt;
	// it doubles after each further failure (notify.Backoff).
	Backoff time.Duration
	// DashboardURL is linked from notifications ("" for no links).
	DashboardURL string
	// MirrorEnabled: only timeline entries the mirror wrote are trimmed
	// (incident.PatchStatus bounds the timeline on every write).
	MirrorEnabled bool
	// Gates are the Receivers' token buckets and health, shared with the
	// Receiver controller.
	Gates   *notify.Gates
	pending *pendingSet

	// sent holds, per Incident, notifications attempted whose record is
	// not in the cached Incident yet (its status write conflicted, or the
	// cache has not caught up): they count as recorded, so a conflict never
	// sends one twice. Entries go once the cache shows them.
	mu   sync.Mutex
	sent map[types.NamespacedName]sentRecord
}

type sentRecord struct {
	uid     types.UID
	entries map[string]v1.IncidentNotification // by Receiver
}

// The notification controller reads Incidents and records deliveries in
// their status.notifications.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=get;list;watch
// The notification controller records each delivery to a Receiver in the
// Incident's status.notifications.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch
// The notification controllers read the namespace's Receivers.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=receivers,verbs=get;list;watch
// A Receiver's Secret is read only in namespaces that grant it (the
// ClusterRole alertbridge-credentials bound there).
//
// The notification controllers record a notification given up as an Event.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile sends every Receiver of the namespace what it is owed about
// the Incident now, and records it; what is owed later (a retry, the end
// of a groupInterval, a token) is a timer.
func (r *NotificationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var inc v1.Incident
	if err := r.Get(ctx, req.NamespacedName, &inc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var list v1.ReceiverList
	if err := r.List(ctx, &list, client.InNamespace(inc.Namespace)); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to list Receivers of %s: %w", inc.Namespace, err)
	}
	receivers := list.Items
	slices.SortFunc(receivers, func(a, b v1.Receiver) int { return strings.Compare(a.Name, b.Name) })
	receivers = receivers[:min(len(receivers), notify.MaxReceivers)]
	now := r.Clock.Now()
	entries := r.withSent(&inc)
	var (
		wait    time.Duration
		jobs    []notificationJob
		planned = map[string]bool{}
	)
	later := func(d time.Duration) {
		if d > 0 && (wait == 0 || d < wait) {
			wait = d
		}
	}
	for i := range receivers {
		rcv := &receivers[i]
		p := notify.PlanFor(&inc, entries, rcv, now)
		key := r.pendingKey(req.NamespacedName, rcv.Name)
		if p.Entry == nil {
			if p.Superseded != 0 {
				entries = notify.Drop(entries, rcv.Name, p.Superseded)
			}
			r.pending.set(key, rcv.Spec.Type, false)
			continue
		}
		r.pending.set(key, rcv.Spec.Type, true)
		planned[key] = true
		if p.Due.After(now) {
			later(p.Due.Sub(now))
			continue
		}
		if !r.Gates.Begin(rcv, now) { // a POST to it is on the wire
			later(notify.InFlightRecheck)
			continue
		}
		if d := r.Gates.Take(rcv, now); d > 0 {
			r.Gates.End(rcv)
			later(d)
			continue
		}
		_, told := notify.Latest(entries, rcv.Name)
		jobs = append(jobs, notificationJob{receiver: rcv, plan: p, told: told.DeepCopy()})
	}
	entries = giveUpOrphans(entries, receivers)
	r.pending.retain(r.pendingKey(req.NamespacedName, ""), func(k string) bool { return planned[k] })
	r.deliver(ctx, &inc, jobs, now)
	if err := ctx.Err(); err != nil {
		return ctrl.Result{}, err
	}
	for _, j := range jobs {
		e := j.plan.Entry
		entries = notify.Upsert(entries, *e, j.plan.Superseded)
		r.remember(&inc, *e)
		if notify.Pending(&e.DeliveryAttempts) {
			later(e.NextAttemptAt.Sub(now))
		} else {
			r.pending.set(r.pendingKey(req.NamespacedName, j.receiver.Name), j.receiver.Spec.Type, false)
		}
	}
	if err := r.record(ctx, &inc, notify.Bound(entries)); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: wait}, nil
}

type notificationJob struct {
	receiver *v1.Receiver
	plan     notify.Plan
	told     *v1.IncidentNotification
	result   notify.Result
}

// deliver makes one attempt of each job, in parallel (each bounded by the
// HTTP client's timeout), and records it in the job's entry; each job's
// Receiver was claimed with Gates.Begin and is released here.
func (r *NotificationReconciler) deliver(ctx context.Context, inc *v1.Incident, jobs []notificationJob, now time.Time) {
	var wg sync.WaitGroup
	for i := range jobs {
		j := &jobs[i]
		wg.Go(func() {
			defer r.Gates.End(j.receiver)
			j.result = r.attempt(ctx, inc, j, now)
			// Before End: the next message to a failing receiver waits.
			r.Gates.Observe(j.receiver, now, r.Backoff, j.result)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	for i := range jobs {
		j := &jobs[i]
		e := j.plan.Entry
		finished := notify.RecordAttempt(&e.DeliveryAttempts, now, r.Backoff, j.result)
		countAttempt(j.receiver.Spec.Type, j.result, finished)
		log := ctrl.LoggerFrom(ctx).WithValues("receiver", j.receiver.Name, "event", e.Event, "key", e.Key, "attempts", e.Attempts)
		switch {
		case j.result.Err == nil:
			log.V(1).Info("Notification delivered")
		case finished:
			r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventNotificationFailed, "Notify",
				"Notification %s to Receiver %s given up after %s: %s", e.Event, j.receiver.Name, attempts(e.Attempts), e.LastError)
		default:
			log.V(1).Info("Notification attempt failed; retrying later", "error", e.LastError, "nextAttemptAt", e.NextAttemptAt)
		}
	}
}

func (r *NotificationReconciler) attempt(ctx context.Context, inc *v1.Incident, j *notificationJob, now time.Time) notify.Result {
	cred, cerr := credential(ctx, r.APIReader, r.Grants, j.receiver)
	if cerr != nil {
		return notify.Failed(cerr, cerr.retryable)
	}
	msg, err := notify.IncidentMessage(notify.Target{Receiver: j.receiver, Credential: cred, DashboardURL: r.DashboardURL, Now: now},
		inc, j.plan.Entry, j.told)
	if err != nil {
		return notify.Failed(err, false)
	}
	return notify.Send(ctx, r.HTTPClient, j.receiver.Spec.Type, msg)
}

func attempts(n int32) string {
	if n == 1 {
		return "1 attempt"
	}
	return fmt.Sprintf("%d attempts", n)
}

// giveUpOrphans gives up the pending notifications of Receivers that are
// gone: nobody is left to send them to.
func giveUpOrphans(entries []v1.IncidentNotification, receivers []v1.Receiver) []v1.IncidentNotification {
	var out []v1.IncidentNotification
	for i := range entries {
		e := &entries[i]
		if !notify.Pending(&e.DeliveryAttempts) || slices.ContainsFunc(receivers, func(r v1.Receiver) bool { return r.Name == e.Receiver }) {
			continue
		}
		if out == nil {
			out = slices.Clone(entries)
		}
		out[i].NextAttemptAt = nil
		out[i].LastError = fmt.Sprintf("given up: Receiver %s no longer exists (or is not among the first %d of the namespace)", e.Receiver, notify.MaxReceivers)
	}
	if out == nil {
		return entries
	}
	return out
}

// record writes entries as the Incident's status.notifications under the
// resourceVersion read, when they changed; a conflict goes back to the
// work queue (what was sent is remembered meanwhile).
func (r *NotificationReconciler) record(ctx context.Context, inc *v1.Incident, entries []v1.IncidentNotification) error {
	if len(entries) == 0 {
		entries = nil
	}
	if equality.Semantic.DeepEqual(entries, inc.Status.Notifications) {
		return nil
	}
	orig := inc.DeepCopy()
	inc.Status.Notifications = entries
	if _, err := incident.PatchStatus(ctx, r.Client, orig, inc, r.MirrorEnabled); err != nil {
		return fmt.Errorf("failed to record notifications of Incident %s: %w", klog.KObj(inc), err)
	}
	return nil
}

// withSent is the Incident's record of notifications with what this
// replica sent since that the record does not show yet.
func (r *NotificationReconciler) withSent(inc *v1.Incident) []v1.IncidentNotification {
	entries := slices.Clone(inc.Status.Notifications)
	r.mu.Lock()
	defer r.mu.Unlock()
	key := client.ObjectKeyFromObject(inc)
	rec, ok := r.sent[key]
	if !ok {
		return entries
	}
	if rec.uid != inc.UID { // another Incident of the same name
		delete(r.sent, key)
		return entries
	}
	for name, m := range rec.entries {
		latest, _ := notify.Latest(entries, name)
		i := slices.IndexFunc(entries, func(e v1.IncidentNotification) bool { return e.Receiver == name && e.Seq == m.Seq })
		if (i >= 0 && entries[i].Attempts >= m.Attempts) || (latest != nil && latest.Seq > m.Seq) {
			delete(rec.entries, name) // the record has caught up
			continue
		}
		var superseded int32
		if latest != nil && latest.Seq < m.Seq && notify.Pending(&latest.DeliveryAttempts) {
			superseded = latest.Seq
		}
		entries = notify.Upsert(entries, m, superseded)
	}
	if len(rec.entries) == 0 {
		delete(r.sent, key)
	}
	return entries
}

func (r *NotificationReconciler) remember(inc *v1.Incident, e v1.IncidentNotification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[types.NamespacedName]sentRecord{}
	}
	key := client.ObjectKeyFromObject(inc)
	rec, ok := r.sent[key]
	if !ok || rec.uid != inc.UID {
		rec = sentRecord{uid: inc.UID, entries: map[string]v1.IncidentNotification{}}
		r.sent[key] = rec
	}
	rec.entries[e.Receiver] = e
}

func (r *NotificationReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.sent, key)
	r.mu.Unlock()
	r.pending.forget(r.pendingKey(key, ""))
}

func (r *NotificationReconciler) pendingKey(inc types.NamespacedName, receiver string) string {
	return "incident/" + inc.Namespace + "/" + inc.Name + "/" + receiver
}

// SetupWithManager registers the controller: Incidents, and the Receivers
// of their namespace (a new or changed Receiver re-decides the Incidents
// that are open or still have something to deliver).
func (r *NotificationReconciler) SetupWithManager(mgr ctrl.Manager) error {
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
	return ctrl.NewControllerManagedBy(mgr).
		Named("notification").
		For(&v1.Incident{}).
		Watches(&v1.Receiver{}, handler.EnqueueRequestsFromMapFunc(r.incidentsOfReceiver)).
		WithOptions(controller.Options{MaxConcurrentReconciles: notificationReconcilers}).
		Complete(r)
}

func (r *NotificationReconciler) incidentsOfReceiver(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.IncidentList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list Incidents for the Receiver", "receiver", klog.KObj(o))
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		inc := &list.Items[i]
		if inc.Spec.State.IsOpen() || slices.ContainsFunc(inc.Status.Notifications, func(e v1.IncidentNotification) bool {
			return e.Receiver == o.GetName() && notify.Pending(&e.DeliveryAttempts)
		}) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(inc)})
		}
	}
	return reqs
}
