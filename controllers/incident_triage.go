package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/incident"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// webhookTokenKey is the key of the webhook Secret holding the bearer token.
const webhookTokenKey = "token"

// outcome is what one triage action did; pending means it is not done yet
// (a webhook delivery waiting for its next attempt).
type outcome struct {
	ok      bool
	pending bool
	reason  string
	message string
}

// dispatchTriage carries out the pending triage run: the Job (only as a
// ServiceAccount the namespace admin marked for triage) and/or one
// webhook delivery attempt, or the record that no action is configured.
// A failed delivery is recorded in status.triage.webhook and retried by a
// later reconcile (RequeueAfter), never by waiting here; the run is marked
// dispatched once the Job is made and the webhook delivered or given up.
// The Job step repeats on each attempt: its Create is idempotent (the name
// is the run's), and it announces problems only on the run's first pass.
func (r *IncidentReconciler) dispatchTriage(ctx context.Context, cached *v1.Incident, pol policy.Policy) (ctrl.Result, error) {
	// Read around the cache: a stale copy would repeat a delivered run.
	var inc v1.Incident
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), &inc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	run := incident.PendingRun(&inc)
	if run == nil {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	if wait := incident.WebhookWait(&inc, now); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	orig := inc.DeepCopy()
	delivery := incident.Delivery(&inc, run.Run)
	firstPass := delivery.Attempts == 0 && delivery.LastError == ""
	var results []outcome
	tp := pol.Spec.Triage
	if tp != nil && tp.JobTemplate != nil {
		res, err := r.createJob(ctx, &inc, tp, run, firstPass)
		if err != nil {
			return ctrl.Result{}, err
		}
		results = append(results, res)
	}
	if tp != nil && tp.Webhook != nil && tp.Webhook.URL != "" {
		res, err := r.deliverWebhook(ctx, &inc, tp.Webhook, run, delivery, now)
		if err != nil {
			return ctrl.Result{}, err
		}
		results = append(results, res)
		inc.Status.Triage.Webhook = delivery
	}
	cond := triageCondition(results, inc.Generation)
	meta.SetStatusCondition(&inc.Status.Conditions, cond)
	// A webhook waiting for its next attempt keeps the run pending, whatever
	// the Job step said.
	dispatched := !slices.ContainsFunc(results, func(o outcome) bool { return o.pending })
	if dispatched {
		inc.Status.Triage.DispatchedRuns = inc.Status.Triage.Runs
	}
	if _, err := incident.PatchStatus(ctx, r.Client, orig, &inc, r.MirrorEnabled); err != nil {
		return ctrl.Result{}, fmt.Errorf("failed to record triage run %s of Incident %s: %w", run.Run, klog.KObj(&inc), err)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("run", run.Run, "reason", cond.Reason)
	if !dispatched {
		log.V(1).Info("Triage webhook attempt failed; retrying later", "attempts", delivery.Attempts, "nextAttemptAt", delivery.NextAttemptAt)
		return ctrl.Result{RequeueAfter: max(delivery.NextAttemptAt.Sub(now), time.Millisecond)}, nil
	}
	metrics.TriageRuns.Inc()
	r.Recorder.Eventf(&inc, nil, corev1.EventTypeNormal, EventTriageStarted, "Triage", "Triage run %s: %s", run.Run, cond.Message)
	log.V(1).Info("Triage run dispatched")
	return ctrl.Result{}, nil
}

func triageCondition(results []outcome, gen int64) metav1.Condition {
	c := metav1.Condition{Type: v1.IncidentConditionTriageConfigured, ObservedGeneration: gen, Status: metav1.ConditionTrue}
	if len(results) == 0 {
		c.Status, c.Reason = metav1.ConditionFalse, v1.ReasonNoTriageAction
		c.Message = "no triage action is configured: the AlertRoutingPolicy sets neither spec.triage.jobTemplate nor spec.triage.webhook.url; the run is recorded only"
		return c
	}
	var msgs, reasons []string
	for _, o := range results {
		msgs = append(msgs, o.message)
		switch {
		case o.pending && c.Status == metav1.ConditionTrue:
			c.Status, c.Reason = metav1.ConditionUnknown, o.reason
		case !o.ok && !o.pending:
			c.Status, c.Reason = metav1.ConditionFalse, o.reason
		}
		reasons = append(reasons, o.reason)
	}
	if c.Status == metav1.ConditionTrue {
		c.Reason = reasons[0]
		if len(reasons) == 2 {
			c.Reason = v1.ReasonJobAndWebhook
		}
	}
	c.Message = strings.Join(msgs, "; ")
	return c
}

// createJob creates the run's Job, owned by the Incident, running as the
// policy's ServiceAccount only if the namespace admin marked it for triage.
// Bad configuration is an outcome (condition + Warning Event), not an error.
func (r *IncidentReconciler) createJob(ctx context.Context, inc *v1.Incident, tp *v1.TriagePolicy, run *incident.Run, announce bool) (outcome, error) {
	saName := tp.ServiceAccountName
	if saName == "" {
		saName = defaultTriageServiceAcc
	}
	var sa corev1.ServiceAccount
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inc.Namespace, Name: saName}, &sa)
	if err := r.Grants.notGranted(err, inc.Namespace, "run triage Jobs", TriageJobsRole); isNotGranted(err) {
		return r.notGranted(inc, err, announce), nil
	}
	if client.IgnoreNotFound(err) != nil {
		return outcome{}, fmt.Errorf("failed to read ServiceAccount %s/%s: %w", inc.Namespace, saName, err)
	}
	if err != nil || sa.Annotations[v1.TriageServiceAccountAnnotation] != "true" {
		msg := fmt.Sprintf("no triage Job: ServiceAccount %q (spec.triage.serviceAccountName) does not exist or is not annotated %s: \"true\" by the namespace admin",
			saName, v1.TriageServiceAccountAnnotation)
		if announce {
			r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageNotAllowed, "Triage", "%s", msg)
		}
		return outcome{reason: v1.ReasonServiceAccountNotAllowed, message: msg}, nil
	}
	job := incident.BuildJob(tp.JobTemplate, run, saName)
	if err := controllerutil.SetControllerReference(inc, job, r.Scheme()); err != nil {
		return outcome{}, fmt.Errorf("failed to own triage Job %s: %w", klog.KObj(job), err)
	}
	err = r.Create(ctx, job)
	switch {
	case apierrors.IsForbidden(err):
		return r.notGranted(inc, r.Grants.notGranted(err, inc.Namespace, "run triage Jobs", TriageJobsRole), announce), nil
	case err == nil || apierrors.IsAlreadyExists(err):
		return outcome{ok: true, reason: v1.ReasonJobCreated, message: "triage Job " + job.Name + " created"}, nil
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		msg := fmt.Sprintf("no triage Job: spec.triage.jobTemplate is invalid: %v", err)
		if announce {
			r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageInvalidJob, "Triage", "%s", msg)
		}
		return outcome{reason: v1.ReasonInvalidJobTemplate, message: msg}, nil
	}
	return outcome{}, fmt.Errorf("failed to create triage Job %s: %w", klog.KObj(job), err)
}

// notGranted is the outcome of a triage Job the namespace has not let the
// operator run (or whose ServiceAccount it may not read).
func (r *IncidentReconciler) notGranted(inc *v1.Incident, err error, announce bool) outcome {
	msg := "no triage Job: " + err.Error()
	if announce {
		r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, v1.ReasonNotGranted, "Triage", "%s", msg)
	}
	return outcome{reason: v1.ReasonNotGranted, message: msg}
}

// deliverWebhook makes one delivery attempt of run and records it in d:
// delivered, due again at d.nextAttemptAt, or given up after
// incident.WebhookAttempts attempts or a failure not worth retrying. A
// webhook that cannot be called (its Secret missing or refused) is given
// up at once. A Warning Event marks giving up, not each attempt.
func (r *IncidentReconciler) deliverWebhook(ctx context.Context, inc *v1.Incident, wh *v1.TriageWebhook, run *incident.Run,
	d *v1.WebhookDelivery, now time.Time) (outcome, error) {
	if d.DeliveredAt != nil {
		return outcome{ok: true, reason: v1.ReasonWebhookDelivered, message: "triage webhook delivered"}, nil
	}
	if d.Attempts > 0 && d.NextAttemptAt == nil { // given up already
		return outcome{reason: v1.ReasonWebhookFailed, message: webhookFailure(d)}, nil
	}
	giveUp := func(reason, msg string) outcome {
		d.LastError, d.NextAttemptAt = msg, nil
		r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, reason, "Triage", "%s", msg)
		return outcome{reason: reason, message: msg}
	}
	token := ""
	if wh.SecretRef != nil && wh.SecretRef.Name != "" {
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inc.Namespace, Name: wh.SecretRef.Name}, &s); err != nil {
			if err := r.Grants.notGranted(err, inc.Namespace, "read Secrets", CredentialsRole); isNotGranted(err) {
				return giveUp(v1.ReasonNotGranted, "triage webhook not called: spec.triage.webhook.secretRef: "+err.Error()), nil
			}
			if client.IgnoreNotFound(err) != nil {
				return outcome{}, fmt.Errorf("failed to read webhook Secret %s/%s: %w", inc.Namespace, wh.SecretRef.Name, err)
			}
			return giveUp(EventTriageWebhookFail, fmt.Sprintf("triage webhook not called: Secret %q (spec.triage.webhook.secretRef) not found", wh.SecretRef.Name)), nil
		}
		if err := refuseCredentials(&s, "spec.triage.webhook.secretRef"); err != nil {
			return giveUp(EventTriageBadSecret, "triage webhook not called: "+err.Error()), nil
		}
		token = strings.TrimSpace(string(s.Data[webhookTokenKey]))
	}
	retryable, err := incident.PostWebhook(ctx, r.HTTPClient, wh.URL, token, run)
	if err != nil && ctx.Err() != nil {
		return outcome{}, ctx.Err()
	}
	if !incident.RecordAttempt(d, now, r.WebhookBackoff, retryable, err) {
		return outcome{pending: true, reason: v1.ReasonWebhookRetrying, message: fmt.Sprintf(
			"triage webhook attempt %d of %d failed (%s); next attempt at %s",
			d.Attempts, incident.WebhookAttempts, d.LastError, d.NextAttemptAt.UTC().Format(time.RFC3339))}, nil
	}
	if err == nil {
		return outcome{ok: true, reason: v1.ReasonWebhookDelivered, message: "triage webhook delivered"}, nil
	}
	msg := webhookFailure(d)
	r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageWebhookFail, "Triage", "%s", msg)
	return outcome{reason: v1.ReasonWebhookFailed, message: msg}, nil
}

func webhookFailure(d *v1.WebhookDelivery) string {
	attempts := fmt.Sprintf("%d attempts", d.Attempts)
	if d.Attempts == 1 {
		attempts = "1 attempt"
	}
	return fmt.Sprintf("triage webhook failed after %s: %s", attempts, d.LastError)
}

// draftPostmortem stores the Markdown draft of a closed Incident in a
// ConfigMap it owns and references it from status.
func (r *IncidentReconciler) draftPostmortem(ctx context.Context, inc *v1.Incident) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: incident.PostmortemName(inc), Namespace: inc.Namespace,
			Labels: map[string]string{v1.SignatureLabel: inc.Labels[v1.SignatureLabel]},
		},
		Data: map[string]string{incident.PostmortemKey: incident.Postmortem(inc)},
	}
	if err := controllerutil.SetControllerReference(inc, cm, r.Scheme()); err != nil {
		return fmt.Errorf("failed to own postmortem ConfigMap %s: %w", klog.KObj(cm), err)
	}
	// The name is deterministic and Closed is terminal: a draft left by a
	// run that stopped before the status write is the same draft.
	if err := r.Create(ctx, cm); client.IgnoreAlreadyExists(err) != nil {
		return fmt.Errorf("failed to create postmortem ConfigMap %s: %w", klog.KObj(cm), err)
	}
	orig := inc.DeepCopy()
	inc.Status.PostmortemRef = &v1.LocalObjectReference{Name: cm.Name}
	if _, err := incident.PatchStatus(ctx, r.Client, orig, inc, r.MirrorEnabled); err != nil {
		return fmt.Errorf("failed to reference the postmortem of Incident %s: %w", klog.KObj(inc), err)
	}
	r.Recorder.Eventf(inc, nil, corev1.EventTypeNormal, EventPostmortemDrafted, "Postmortem",
		"Postmortem draft in ConfigMap %s", cm.Name)
	return nil
}
