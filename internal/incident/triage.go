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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
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

// Webhook delivery: one POST per attempt, at most WebhookAttempts, the
// waits between them doubling from the controller's first backoff up to
// WebhookMaxBackoff (with the default 2s: about four minutes in all).
const (
	WebhookAttempts   = 8
	WebhookMaxBackoff = 2 * time.Minute
)

// WebhookBackoff is the wait after the attempts-th failed attempt: first,
// doubled after each further one, capped at WebhookMaxBackoff.
func WebhookBackoff(first time.Duration, attempts int32) time.Duration {
	d := first
	for i := int32(1); i < attempts && d < WebhookMaxBackoff; i++ {
		d *= 2
	}
	return min(d, WebhookMaxBackoff)
}

// Delivery is the record of run's webhook delivery in inc's status: the
// one there when it is about run, else a new one.
func Delivery(inc *v1.Incident, run string) *v1.WebhookDelivery {
	if t := inc.Status.Triage; t != nil && t.Webhook != nil && t.Webhook.Run == run {
		return t.Webhook.DeepCopy()
	}
	return &v1.WebhookDelivery{Run: run}
}

// WebhookWait is how long the pending run's next webhook attempt is off;
// zero when it is due (or there is no record of the run yet).
func WebhookWait(inc *v1.Incident, now time.Time) time.Duration {
	run := PendingRun(inc)
	if run == nil {
		return 0
	}
	d := Delivery(inc, run.Run)
	if d.NextAttemptAt == nil || d.DeliveredAt != nil {
		return 0
	}
	return max(d.NextAttemptAt.Sub(now), 0)
}

// RecordAttempt records the outcome of one attempt in d: delivered (err
// nil), due again after the backoff (a retryable failure with attempts
// left), or given up. It reports whether the delivery is finished.
func RecordAttempt(d *v1.WebhookDelivery, now time.Time, first time.Duration, retryable bool, err error) (finished bool) {
	at := metav1.NewTime(now)
	d.Attempts++
	d.LastAttemptAt = &at
	d.NextAttemptAt = nil
	if err == nil {
		d.DeliveredAt, d.LastError = &at, ""
		return true
	}
	d.LastError = clip.Mark(err.Error(), maxMessage)
	if !retryable || d.Attempts >= WebhookAttempts {
		return true
	}
	// Status times have whole seconds: round up, so the attempt is never
	// due before its backoff has passed.
	next := now.Add(WebhookBackoff(first, d.Attempts))
	if t := next.Truncate(time.Second); !t.Equal(next) {
		next = t.Add(time.Second)
	}
	d.NextAttemptAt = &metav1.Time{Time: next}
	return false
}

// PostWebhook POSTs run as JSON once; a failure says whether it is worth
// retrying (transport errors, 408, 429 and 5xx). The Idempotency-Key
// header (the run's name) lets the receiver count retries once. The token
// and headers go only to url's origin: a redirect elsewhere is refused
// (and not retryable), whatever hc would do. Errors are in our words with
// the HTTP status code, never the receiver's text.
func PostWebhook(ctx context.Context, hc *http.Client, url, token string, run *Run) (retryable bool, err error) {
	body, err := json.Marshal(run)
	if err != nil {
		return false, fmt.Errorf("failed to encode triage run %s: %w", run.Run, err)
	}
	return post(ctx, outbound.Client(hc), url, token, run.Run, body)
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
