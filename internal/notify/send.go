package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/outbound"
)

// Result is the outcome of one attempt.
type Result struct {
	// Err is nil when the receiver accepted the message (2xx); otherwise
	// it is in our words with the HTTP status code, never the receiver's
	// text (nor, for Slack, the webhook URL, which is the credential).
	Err error
	// Retryable says a later attempt may succeed: no answer, 408, 429 and
	// 5xx, or a credential that is not there yet.
	Retryable bool
	// RetryAfter is the receiver's Retry-After (seconds) on 429 or 503.
	RetryAfter time.Duration
}

// Failed is a Result that did not reach the receiver.
func Failed(err error, retryable bool) Result { return Result{Err: err, Retryable: retryable} }

// maxRetryAfter bounds how long a receiver's Retry-After is honoured.
const maxRetryAfter = MaxBackoff

// Send POSTs m once with hc, following redirects only within m.URL's
// origin (the credential goes nowhere else), and reads at most 64 KiB of
// the answer, which it never repeats. typ names the receiver in errors.
func Send(ctx context.Context, hc *http.Client, typ v1.ReceiverType, m *Message) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		// The URL may be a Slack webhook URL: never repeat it.
		return Failed(fmt.Errorf("%s: the receiver's URL is not valid", typ), false)
	}
	for k, vs := range m.Header {
		req.Header[k] = vs
	}
	resp, err := outbound.Client(hc).Do(req)
	if err != nil {
		var redirect *outbound.RedirectError
		return Failed(fmt.Errorf("%s not reached: %w", typ, outbound.Wrap(err)), !errors.As(err, &redirect))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{}
	}
	res := Result{
		Err:       fmt.Errorf("%s %w", typ, &outbound.StatusError{Code: resp.StatusCode}),
		Retryable: resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests,
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 && res.Retryable {
		res.RetryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return res
}

// Backoff is the wait after the attempts-th failed attempt: first,
// doubled after each further one, capped at MaxBackoff.
func Backoff(first time.Duration, attempts int32) time.Duration {
	d := first
	for i := int32(1); i < attempts && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// maxError matches the CRD bound on lastError.
const maxError = 512

// RecordAttempt records one attempt's result in d: delivered, due again
// after the backoff (or the receiver's Retry-After, whichever is later),
// or given up (not retryable, or Attempts spent). It reports whether d is
// finished.
func RecordAttempt(d *v1.DeliveryAttempts, now time.Time, first time.Duration, res Result) (finished bool) {
	at := metav1.NewTime(now)
	d.Attempts++
	d.LastAttemptAt = &at
	d.NextAttemptAt = nil
	if res.Err == nil {
		d.DeliveredAt, d.LastError = &at, ""
		return true
	}
	d.LastError = clip(res.Err.Error(), maxError)
	if !res.Retryable || d.Attempts >= Attempts {
		return true
	}
	// Status times have whole seconds: round up, so the attempt is never
	// due before its wait has passed.
	next := now.Add(max(Backoff(first, d.Attempts), res.RetryAfter))
	if t := next.Truncate(time.Second); !t.Equal(next) {
		next = t.Add(time.Second)
	}
	d.NextAttemptAt = &metav1.Time{Time: next}
	return false
}

// Due marks d as due at t without counting an attempt (a new notification
// or digest waiting for its first).
func Due(d *v1.DeliveryAttempts, t time.Time) {
	d.NextAttemptAt = &metav1.Time{Time: t}
}
