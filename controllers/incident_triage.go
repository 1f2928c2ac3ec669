package controllers

import (
	"context"
	"fmt"
	"strings"

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

// outcome is what one triage action did.
type outcome struct {
	ok      bool
	reason  string
	message string
}

// dispatchTriage carries out the pending triage run: the Job (only as a
// ServiceAccount the namespace admin marked for triage) and/or the webhook,
// or the record that no action is configured; then marks it dispatched.
func (r *IncidentReconciler) dispatchTriage(ctx context.Context, cached *v1.Incident, pol policy.Policy) error {
	// Read around the cache: a stale copy would repeat a delivered run.
	var inc v1.Incident
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), &inc); err != nil {
		return client.IgnoreNotFound(err)
	}
	run := incident.PendingRun(&inc)
	if run == nil {
		return nil
	}
	runs := inc.Status.Triage.Runs
	var results []outcome
	tp := pol.Spec.Triage
	if tp != nil && tp.JobTemplate != nil {
		res, err := r.createJob(ctx, &inc, tp, run)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	if tp != nil && tp.Webhook != nil && tp.Webhook.URL != "" {
		res, err := r.postWebhook(ctx, &inc, tp.Webhook, run)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	cond := triageCondition(results, inc.Generation)
	dispatched := false
	_, err := incident.UpdateStatus(ctx, r.APIReader, r.Client, client.ObjectKeyFromObject(&inc), func(fresh *v1.Incident) (bool, error) {
		dispatched = false
		if fresh.Status.Triage == nil || fresh.Status.Triage.DispatchedRuns >= runs {
			return false, nil
		}
		dispatched = true
		fresh.Status.Triage.DispatchedRuns = runs
		meta.SetStatusCondition(&fresh.Status.Conditions, cond)
		return true, nil
	})
	if err != nil {
		return err
	}
	if dispatched {
		metrics.TriageRuns.Inc()
	}
	r.Recorder.Eventf(&inc, nil, corev1.EventTypeNormal, EventTriageStarted, "Triage", "Triage run %s: %s", run.Run, cond.Message)
	ctrl.LoggerFrom(ctx).V(1).Info("Triage run dispatched", "run", run.Run, "reason", cond.Reason)
	return nil
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
		if !o.ok {
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
func (r *IncidentReconciler) createJob(ctx context.Context, inc *v1.Incident, tp *v1.TriagePolicy, run *incident.Run) (outcome, error) {
	saName := tp.ServiceAccountName
	if saName == "" {
		saName = defaultTriageServiceAcc
	}
	var sa corev1.ServiceAccount
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inc.Namespace, Name: saName}, &sa)
	if client.IgnoreNotFound(err) != nil {
		return outcome{}, fmt.Errorf("failed to read ServiceAccount %s/%s: %w", inc.Namespace, saName, err)
	}
	if err != nil || sa.Annotations[v1.TriageServiceAccountAnnotation] != "true" {
		msg := fmt.Sprintf("no triage Job: ServiceAccount %q (spec.triage.serviceAccountName) does not exist or is not annotated %s: \"true\" by the namespace admin",
			saName, v1.TriageServiceAccountAnnotation)
		r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageNotAllowed, "Triage", "%s", msg)
		return outcome{reason: v1.ReasonServiceAccountNotAllowed, message: msg}, nil
	}
	job := incident.BuildJob(tp.JobTemplate, run, saName)
	if err := controllerutil.SetControllerReference(inc, job, r.Scheme()); err != nil {
		return outcome{}, fmt.Errorf("failed to own triage Job %s: %w", klog.KObj(job), err)
	}
	err = r.Create(ctx, job)
	switch {
	case err == nil || apierrors.IsAlreadyExists(err):
		return outcome{ok: true, reason: v1.ReasonJobCreated, message: "triage Job " + job.Name + " created"}, nil
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		msg := fmt.Sprintf("no triage Job: spec.triage.jobTemplate is invalid: %v", err)
		r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageInvalidJob, "Triage", "%s", msg)
		return outcome{reason: v1.ReasonInvalidJobTemplate, message: msg}, nil
	}
	return outcome{}, fmt.Errorf("failed to create triage Job %s: %w", klog.KObj(job), err)
}

// postWebhook delivers the run with bounded retries; a failure after them
// is recorded, not retried forever.
func (r *IncidentReconciler) postWebhook(ctx context.Context, inc *v1.Incident, wh *v1.TriageWebhook, run *incident.Run) (outcome, error) {
	token := ""
	if wh.SecretRef != nil && wh.SecretRef.Name != "" {
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: inc.Namespace, Name: wh.SecretRef.Name}, &s); err != nil {
			if client.IgnoreNotFound(err) != nil {
				return outcome{}, fmt.Errorf("failed to read webhook Secret %s/%s: %w", inc.Namespace, wh.SecretRef.Name, err)
			}
			msg := fmt.Sprintf("triage webhook not called: Secret %q (spec.triage.webhook.secretRef) not found", wh.SecretRef.Name)
			r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageWebhookFail, "Triage", "%s", msg)
			return outcome{reason: v1.ReasonWebhookFailed, message: msg}, nil
		}
		if err := refuseCredentials(&s, "spec.triage.webhook.secretRef"); err != nil {
			msg := "triage webhook not called: " + err.Error()
			r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageBadSecret, "Triage", "%s", msg)
			return outcome{reason: v1.ReasonSecretNotAllowed, message: msg}, nil
		}
		token = strings.TrimSpace(string(s.Data[webhookTokenKey]))
	}
	if err := incident.PostWebhook(ctx, r.HTTPClient, wh.URL, token, run, r.WebhookBackoff); err != nil {
		if ctx.Err() != nil {
			return outcome{}, ctx.Err()
		}
		msg := fmt.Sprintf("triage webhook failed: %v", err)
		r.Recorder.Eventf(inc, nil, corev1.EventTypeWarning, EventTriageWebhookFail, "Triage", "%s", msg)
		return outcome{reason: v1.ReasonWebhookFailed, message: msg}, nil
	}
	return outcome{ok: true, reason: v1.ReasonWebhookDelivered, message: "triage webhook delivered"}, nil
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
	inc.Status.PostmortemRef = &v1.LocalObjectReference{Name: cm.Name}
	if err := r.Status().Update(ctx, inc); err != nil {
		return fmt.Errorf("failed to reference the postmortem of Incident %s: %w", klog.KObj(inc), err)
	}
	r.Recorder.Eventf(inc, nil, corev1.EventTypeNormal, EventPostmortemDrafted, "Postmortem",
		"Postmortem draft in ConfigMap %s", cm.Name)
	return nil
}
