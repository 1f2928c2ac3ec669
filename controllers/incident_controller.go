package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Event reasons of the Incident controller.
const (
	EventOpened             = "Opened"
	EventStateChanged       = "StateChanged"
	EventClosed             = "Closed"
	EventTriageStarted      = "TriageStarted"
	EventTriageNotAllowed   = v1.ReasonServiceAccountNotAllowed
	EventTriageInvalidJob   = v1.ReasonInvalidJobTemplate
	EventTriageWebhookFail  = v1.ReasonWebhookFailed
	EventTriageBadSecret    = v1.ReasonSecretNotAllowed
	EventPostmortemDrafted  = "PostmortemDrafted"
	defaultWebhookBackoff   = 2 * time.Second
	defaultWebhookTimeout   = 5 * time.Second
	incidentReconcilers     = 4
	defaultTriageServiceAcc = "default"
)

// IncidentReconciler opens Incidents, decides and carries out their triage
// runs, records their state transitions, bounds their timeline and drafts
// the postmortem on close. Conversions only append Alert refs and entries;
// the controller alone decides triage, in the optimistic write that moves
// its cursor past the new refs (status.triage.observedAlertCount), so one
// run starts per cooldown however many conversions race, and a run's
// name, Alert and times are only ever the operator's.
type IncidentReconciler struct {
	client.Client
	// APIReader reads around the cache where a stale read could repeat a
	// triage run or miss an Alert's fresh link.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// HTTPClient posts triage runs to webhooks.
	HTTPClient *http.Client
	// WebhookBackoff is the wait before a triage webhook's second attempt;
	// it doubles after each further failure (incident.WebhookBackoff).
	WebhookBackoff time.Duration
	// MirrorEnabled: only timeline entries the mirror wrote are trimmed.
	MirrorEnabled bool
	// Grants says how a namespace lets the operator read its Secrets and
	// run triage Jobs.
	Grants Grants
}

// The Incident controller labels Incidents made with kubectl with their
// signature.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents,verbs=get;list;watch;patch
// The Incident controller opens Incidents and records the lifecycle, the
// timeline and the triage runs in status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch
// The Incident controller reads the namespace's AlertRoutingPolicy (triage,
// cooldown).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alertroutingpolicies,verbs=get;list;watch
// Triage starts only for an appended Alert that exists and is linked to
// the Incident, which the controller reads (by name).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alerts,verbs=get
//
// Triage Jobs (create jobs, get serviceaccounts) and the webhook's Secret
// (get secrets) are not here: the operator holds those rights only in the
// namespaces that grant them (the ClusterRoles alertbridge-triage-jobs and
// alertbridge-credentials of config/rbac/grants_roles.yaml, bound there).
//
// The Incident controller writes a closed Incident's postmortem draft into
// a new ConfigMap.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=create
// The Incident controller records Events on Incidents.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile takes the next step the Incident needs; each step is one write
// whose watch event brings the next. Every write carries the
// resourceVersion it was computed from; a conflict goes back to the work
// queue. A triage webhook waiting for its next attempt is a timer
// (RequeueAfter), not a step.
func (r *IncidentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var inc v1.Incident
	if err := r.Get(ctx, req.NamespacedName, &inc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("incident", klog.KObj(&inc))
	ctx = ctrl.LoggerInto(ctx, log)
	pol, err := policy.Get(ctx, r.Client, inc.Namespace)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to read AlertRoutingPolicy of %s: %w", inc.Namespace, err)
	}
	wait := incident.WebhookWait(&inc, r.Clock.Now())
	switch {
	case inc.Spec.Signature != "" && inc.Labels[v1.SignatureLabel] != incident.SignatureHash(inc.Spec.Signature):
		return ctrl.Result{}, r.labelSignature(ctx, &inc)
	case incident.Unseen(&inc):
		return ctrl.Result{}, r.observe(ctx, &inc, pol)
	case inc.Spec.State != inc.Status.ObservedState:
		return ctrl.Result{}, r.recordState(ctx, &inc)
	case incident.PendingRun(&inc) != nil && wait == 0:
		return r.dispatchTriage(ctx, &inc, pol)
	case inc.Spec.State == v1.IncidentClosed && inc.Status.PostmortemRef == nil:
		return ctrl.Result{RequeueAfter: wait}, r.draftPostmortem(ctx, &inc)
	}
	return ctrl.Result{RequeueAfter: wait}, r.tidy(ctx, &inc)
}

// labelSignature sets the signature label on Incidents made without it
// (kubectl), so conversions and cooldown inheritance find them.
func (r *IncidentReconciler) labelSignature(ctx context.Context, inc *v1.Incident) error {
	base := inc.DeepCopy()
	if inc.Labels == nil {
		inc.Labels = map[string]string{}
	}
	inc.Labels[v1.SignatureLabel] = incident.SignatureHash(inc.Spec.Signature)
	if err := r.Patch(ctx, inc, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to label Incident %s with its signature: %w", klog.KObj(inc), err)
	}
	return nil
}

// observe takes in what the controller has not seen yet, in one write: it
// opens a new Incident (openedAt, the Opened entry, a cooldown inherited
// from the signature's previous Incidents), decides triage on the Alert
// refs appended since its last look, and moves lastActivityAt when refs or
// entries were appended. An Incident opened before the controller kept its
// cursors is only adopted: its refs were triaged when they came.
func (r *IncidentReconciler) observe(ctx context.Context, inc *v1.Incident, pol policy.Policy) error {
	var opened, triaged bool
	var skipped int
	got, err := r.writer().Status(ctx, client.ObjectKeyFromObject(inc), func(fresh *v1.Incident) (bool, error) {
		opened, triaged, skipped = false, false, 0
		if !incident.Unseen(fresh) {
			return false, nil
		}
		now := r.Clock.Now()
		if incident.Legacy(fresh) {
			incident.Adopt(fresh)
			return true, nil
		}
		if fresh.Status.OpenedAt == nil {
			var inherited *v1.TriageStatus
			if fresh.Spec.Signature != "" {
				sibs, err := incident.List(ctx, r.APIReader, fresh.Namespace, fresh.Spec.Signature)
				if err != nil {
					return false, err
				}
				inherited = incident.Inherited(sibs, fresh.Name)
			}
			incident.ApplyOpen(fresh, now, inherited)
			opened = true
		}
		if incident.RefsUnseen(fresh) {
			refs, alert := incident.NewRefs(fresh), ""
			switch {
			case !fresh.Spec.State.IsOpen():
			case incident.InCooldown(fresh.Status.Triage, now):
				skipped = len(refs)
			default:
				var err error
				if alert, err = r.newestLinked(ctx, fresh, refs); err != nil {
					return false, err
				}
			}
			triaged = incident.ApplyTriage(fresh, now, pol.TriageCooldown(), alert)
		}
		incident.Observe(fresh, now)
		setReady(fresh)
		return true, nil
	})
	if err != nil {
		return err
	}
	metrics.TriageCooldownSkips.Add(float64(skipped))
	if opened {
		r.Recorder.Eventf(got, nil, corev1.EventTypeNormal, EventOpened, "Open", "Incident opened (%s)", got.Spec.Severity)
	}
	if triaged {
		ctrl.LoggerFrom(ctx).V(1).Info("Triage run decided", "run", got.Status.Triage.LastRunRef.Name, "alert", got.Status.Triage.LastRunAlertRef)
	}
	return nil
}

// newestLinked is the newest of refs naming an Alert that exists and whose
// status.incidentRef names inc, read around the cache (a conversion links
// the Alert just before it appends the ref); empty when none does. A ref
// anyone appended to an Alert that is not linked here starts nothing.
func (r *IncidentReconciler) newestLinked(ctx context.Context, inc *v1.Incident, refs []string) (string, error) {
	for _, name := range slices.Backward(refs) {
		var a v1.Alert
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inc.Namespace, Name: name}, &a)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("failed to read Alert %s/%s: %w", inc.Namespace, name, err)
		}
		if a.Status.IncidentRef != nil && a.Status.IncidentRef.Name == inc.Name {
			return name, nil
		}
	}
	return "", nil
}

// recordState records a spec.state transition: timestamp, timeline, Event.
func (r *IncidentReconciler) recordState(ctx context.Context, inc *v1.Incident) error {
	var from v1.IncidentState
	got, err := r.writer().Status(ctx, client.ObjectKeyFromObject(inc), func(fresh *v1.Incident) (bool, error) {
		from = incident.ApplyState(fresh, r.Clock.Now())
		if from == "" {
			return false, nil
		}
		setReady(fresh)
		return true, nil
	})
	if err != nil || from == "" {
		return err
	}
	if got.Spec.State == v1.IncidentClosed {
		r.Recorder.Eventf(got, nil, corev1.EventTypeNormal, EventClosed, "Close", "Incident closed (was %s)", from)
	} else {
		r.Recorder.Eventf(got, nil, corev1.EventTypeNormal, EventStateChanged, "Transition", "State changed from %s to %s", from, got.Spec.State)
	}
	return nil
}

// tidy keeps the timeline bounded and observedGeneration and Ready current;
// it writes only when something changed.
func (r *IncidentReconciler) tidy(ctx context.Context, inc *v1.Incident) error {
	want := inc.DeepCopy()
	setReady(want)
	if _, err := incident.PatchStatus(ctx, r.Client, inc, want, r.MirrorEnabled); err != nil {
		return fmt.Errorf("failed to update status of Incident %s: %w", klog.KObj(inc), err)
	}
	return nil
}

// writer writes the Incident's status on a fresh read of the API server
// (a cached read would conflict whenever a conversion just wrote), once: a
// conflict goes back to the work queue.
func (r *IncidentReconciler) writer() incident.Writer {
	return incident.Writer{Client: r.Client, Reader: r.APIReader, MirrorOn: r.MirrorEnabled}
}

func setReady(inc *v1.Incident) {
	inc.Status.ObservedGeneration = inc.Generation
	meta.SetStatusCondition(&inc.Status.Conditions, metav1.Condition{
		Type: v1.IncidentConditionReady, Status: metav1.ConditionTrue, Reason: string(inc.Spec.State),
		Message: "spec.state " + string(inc.Spec.State) + " is recorded", ObservedGeneration: inc.Generation,
	})
}

// SetupWithManager registers the controller.
func (r *IncidentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Timeout: defaultWebhookTimeout}
	}
	if r.WebhookBackoff <= 0 {
		r.WebhookBackoff = defaultWebhookBackoff
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("incident").
		For(&v1.Incident{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: incidentReconcilers}).
		Complete(r)
}
