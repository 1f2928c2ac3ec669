package controllers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
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

// IncidentReconciler records an Incident's state transitions, carries out
// the triage runs its status asks for, bounds its timeline and drafts the
// postmortem on close. Deciding whether triage runs happens in the status
// write that opens the Incident or appends an Alert (internal/incident), so
// the cooldown holds however many writers race.
type IncidentReconciler struct {
	client.Client
	// APIReader reads around the cache where a stale read could repeat a
	// triage run.
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
// The Incident controller records the lifecycle, the timeline and the
// triage runs in status.
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=incidents/status,verbs=patch
// The Incident controller reads the namespace's AlertRoutingPolicy (triage,
// cooldown).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=alertroutingpolicies,verbs=get;list;watch
// Triage Jobs (create jobs, get serviceaccounts) and the webhook's Secret
// (get secrets) are not here: the operator holds those rights only in the
// namespaces that grant them (the ClusterRoles alertbridge-triage-jobs and
// alertbridge-credentials of config/rbac/grants_roles.yaml, bound there).
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
	case inc.Status.OpenedAt == nil:
		return ctrl.Result{}, r.open(ctx, &inc, pol)
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

// open records an Incident nobody opened yet (made with kubectl, or a
// conversion that stopped between create and status write).
func (r *IncidentReconciler) open(ctx context.Context, inc *v1.Incident, pol policy.Policy) error {
	opened, skipped := false, false
	got, err := r.writer().Status(ctx, client.ObjectKeyFromObject(inc), func(fresh *v1.Incident) (bool, error) {
		if fresh.Status.OpenedAt != nil {
			return false, nil
		}
		var inherited *v1.TriageStatus
		if fresh.Spec.Signature != "" {
			sibs, err := incident.List(ctx, r.APIReader, fresh.Namespace, fresh.Spec.Signature)
			if err != nil {
				return false, err
			}
			inherited = incident.Inherited(sibs, fresh.Name)
		}
		skipped = !incident.ApplyOpen(fresh, r.Clock.Now(), pol.TriageCooldown(), fresh.Annotations[incident.FirstAlertAnnotation], inherited)
		setReady(fresh)
		opened = true
		return true, nil
	})
	if err != nil {
		return err
	}
	if opened && skipped {
		metrics.TriageCooldownSkips.Inc()
	}
	if opened {
		r.Recorder.Eventf(got, nil, corev1.EventTypeNormal, EventOpened, "Open", "Incident opened (%s)", got.Spec.Severity)
	}
	return nil
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
