package incident

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/outbound"
)

// Env vars a triage Job's containers get.
const (
	EnvIncident  = "ALERTBRIDGE_INCIDENT"
	EnvNamespace = "ALERTBRIDGE_NAMESPACE"
	EnvSignature = "ALERTBRIDGE_SIGNATURE"
	EnvAlert     = "ALERTBRIDGE_ALERT"
	EnvRun       = "ALERTBRIDGE_TRIAGE_RUN"
)

// RunLabel marks the objects of a triage run with the run's name.
const RunLabel = "ops.alertbridge.io/triage-run"

// Run is what a triage run is about; it is also the webhook's JSON payload.
type Run struct {
	Run       string      `json:"run"`
	Namespace string      `json:"namespace"`
	Incident  string      `json:"incident"`
	Signature string      `json:"signature"`
	Alert     string      `json:"alert,omitempty"`
	Service   string      `json:"service"`
	Env       string      `json:"env"`
	Severity  v1.Severity `json:"severity"`
	Title     string      `json:"title"`
	StartedAt time.Time   `json:"startedAt"`
}

// PendingRun is the triage run the Incident's status asks for and the
// controller has not carried out yet; nil when there is none.
func PendingRun(inc *v1.Incident) *Run {
	t := inc.Status.Triage
	if t == nil || t.Runs <= t.DispatchedRuns || t.LastRunRef == nil {
		return nil
	}
	r := &Run{
		Run: t.LastRunRef.Name, Namespace: inc.Namespace, Incident: inc.Name, Signature: inc.Spec.Signature,
		Alert: t.LastRunAlertRef, Service: inc.Spec.Service, Env: inc.Spec.Env, Severity: inc.Spec.Severity, Title: inc.Spec.Title,
	}
	if t.LastTriageAt != nil {
		r.StartedAt = t.LastTriageAt.Time
	}
	return r
}

// BuildJob makes the triage Job of run from the policy's template: the
// run's deterministic name, the run's env vars in every container, and
// serviceAccount as the only identity it runs as (whatever the template
// says). The owner reference is the caller's to set.
func BuildJob(tmpl *batchv1.JobTemplateSpec, run *Run, serviceAccount string) *batchv1.Job {
	job := &batchv1.Job{}
	tmpl.ObjectMeta.DeepCopyInto(&job.ObjectMeta)
	tmpl.Spec.DeepCopyInto(&job.Spec)
	job.Name, job.GenerateName, job.Namespace = run.Run, "", run.Namespace
	job.ResourceVersion, job.UID, job.OwnerReferences = "", "", nil
	if job.Labels == nil {
		job.Labels = map[string]string{}
	}
	job.Labels[RunLabel] = run.Run
	pod := &job.Spec.Template.Spec
	pod.ServiceAccountName = serviceAccount
	pod.DeprecatedServiceAccount = ""
	env := []corev1.EnvVar{
		{Name: EnvIncident, Value: run.Incident},
		{Name: EnvNamespace, Value: run.Namespace},
		{Name: EnvSignature, Value: run.Signature},
		{Name: EnvAlert, Value: run.Alert},
		{Name: EnvRun, Value: run.Run},
	}
	for i := range pod.InitContainers {
		pod.InitContainers[i].Env = append(pod.InitContainers[i].Env, env...)
	}
	for i := range pod.Containers {
		pod.Containers[i].Env = append(pod.Containers[i].Env, env...)
	}
	return job
}

// WebhookAttempts bounds the POSTs of one triage run to the webhook.
const WebhookAttempts = 4

// PostWebhook POSTs run as JSON, retrying transport errors, 408, 429 and
// 5xx with exponential backoff starting at backoff; the Idempotency-Key
// header (the run's name) lets the receiver count retries once. The token
// and headers go only to url's origin: a redirect elsewhere is refused
// (and not retried), whatever hc would do. Errors are in our words with
// the HTTP status code, never the receiver's text.
func PostWebhook(ctx context.Context, hc *http.Client, url, token string, run *Run, backoff time.Duration) error {
	body, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("failed to encode triage run %s: %w", run.Run, err)
	}
	hc = outbound.Client(hc)
	var (
		last     error
		attempts int
	)
	for attempts < WebhookAttempts {
		if attempts > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff << (attempts - 1)):
			}
		}
		attempts++
		retryable, err := post(ctx, hc, url, token, run.Run, body)
		if err == nil {
			return nil
		}
		last = err
		if !retryable {
			break
		}
	}
	return fmt.Errorf("failed to deliver triage run %s to the webhook (%d attempts): %w", run.Run, attempts, last)
}

func post(ctx context.Context, hc *http.Client, url, token, key string, body []byte) (retryable bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("spec.triage.webhook.url is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var redirect *outbound.RedirectError
		return !errors.As(err, &redirect), outbound.Wrap(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	retryable = resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
	// resp.Status is the receiver's own reason phrase: only the code is kept.
	return retryable, fmt.Errorf("webhook %w", &outbound.StatusError{Code: resp.StatusCode})
}
