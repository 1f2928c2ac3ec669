// Package ingestapi is the HTTP API's intake of alerts: POST /v1/alerts
// (one alert or a batch, with an Idempotency-Key) and POST
// /v1/alertmanager (Alertmanager's webhook receiver), both counted by an
// intake.Counter, plus the one-alert ingest the tool endpoint calls.
package ingestapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/ingest"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// Receiver serves the ingest endpoints.
type Receiver struct {
	// Intake counts ingested occurrences.
	Intake intake.Counter
	// Reader reads the namespaces' AlertRoutingPolicies (the cache).
	Reader client.Reader
	Auth   *base.Authenticator
	Clock  clock.PassiveClock
	// DefaultNamespace receives alerts whose request names no namespace
	// (default "default").
	DefaultNamespace string
}

// Routes serve POST /v1/alerts and POST /v1/alertmanager.
func (s *Receiver) Routes(m base.Mux) {
	m.Handle("POST /v1/alerts", s.Auth.Require(base.Access{
		Group: v1.GroupVersion.Group, Resource: "alerts", Verb: "create",
		Namespace: s.ingestNamespace, Name: noName,
	}, http.HandlerFunc(s.serveIngest)))
	m.Handle("POST /v1/alertmanager", http.HandlerFunc(s.serveAlertmanager))
}

// maxIdempotencyKey bounds the header, as the IETF draft suggests keys be
// UUID-sized; the key is stored only as a hash.
const maxIdempotencyKey = 255

// ingestTimeout bounds how long a request waits for its occurrences to be
// durable; it stays below the server's write timeout so the caller gets an
// answer (503: retry with the same Idempotency-Key) rather than a reset.
const ingestTimeout = 10 * time.Second

// maxParallelItems bounds the items of one request counted at once.
const maxParallelItems = 64

// FieldErrorBody is a 400 answer: the usual error body plus every field error.
type FieldErrorBody struct {
	base.ErrorBody
	Errors []base.FieldError `json:"errors"`
}

// IngestResult is what an ingest answers for one occurrence it counted.
// Which Alert counted it, that Alert's count and whether it was folded into
// an existing one are told only to a caller who may get Alerts in that
// namespace: a monitor (which may only create Alerts) learns that its
// occurrence was accepted, and whether a retry was replayed, never the names
// or counts of Alerts it may not read.
type IngestResult struct {
	Accepted bool `json:"accepted"`
	// Deduped, AlertRef and Occurrences: for callers who may get Alerts.
	Deduped     *bool  `json:"deduped,omitempty"`
	AlertRef    string `json:"alertRef,omitempty"`
	Occurrences *int64 `json:"occurrences,omitempty"`
	// Replayed: this Idempotency-Key (or Alertmanager instance) was
	// counted before, and was not counted again.
	Replayed bool `json:"replayed,omitempty"`
}

// ItemResult is the answer for one ingested alert.
type ItemResult struct {
	IngestResult
	// Error says why this item was not counted.
	Error string `json:"error,omitempty"`
}

// ingestResult is res as told to a caller who may (reveal) or may not get
// Alerts in its namespace.
func ingestResult(res intake.Result, reveal bool) IngestResult {
	out := IngestResult{Accepted: res.Accepted, Replayed: res.Replayed}
	if reveal {
		out.Deduped, out.AlertRef, out.Occurrences = &res.Deduped, res.AlertRef, &res.Occurrences
	}
	return out
}

// mayRead says whether u may get Alerts in ns, and so be told which Alert
// counted an occurrence (one SubjectAccessReview, cached). When it cannot be
// asked, the answer tells less.
func (s *Receiver) mayRead(ctx context.Context, u *base.User, ns string) bool {
	ok, err := s.Auth.Allowed(ctx, u, "get", v1.GroupVersion.Group, "alerts", ns, "")
	if err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("Cannot tell whether the caller may read Alerts; the ingest answer says less", "namespace", ns, "error", err.Error())
		return false
	}
	return ok
}

// BatchResult answers {"alerts": [...]}, one result per alert in order.
type BatchResult struct {
	Results []ItemResult `json:"results"`
}

func (s *Receiver) ingestNamespace(r *http.Request) string {
	return cmp.Or(r.URL.Query().Get("namespace"), s.DefaultNamespace, "default")
}

func noName(*http.Request) string { return "" }

// serveIngest is POST /v1/alerts: one alert, or {"alerts": [...]}.
func (s *Receiver) serveIngest(w http.ResponseWriter, r *http.Request) {
	ns := s.ingestNamespace(r)
	key := r.Header.Get(base.IdempotencyKeyHeader)
	if len(key) > maxIdempotencyKey {
		metrics.IngestRejected.WithLabelValues(metrics.PathAPI).Inc()
		writeFieldErrors(w, field.ErrorList{field.TooLong(field.NewPath("header", base.IdempotencyKeyHeader), "", maxIdempotencyKey)})
		return
	}
	data, ok := readBody(w, r, metrics.PathAPI)
	if !ok {
		return
	}
	specs, batch, errs := ingest.DecodeRequest(data)
	if len(errs) == 0 {
		pol, err := policy.Get(r.Context(), s.Reader, ns)
		if err != nil {
			ctrl.LoggerFrom(r.Context()).Error(err, "Failed to read the AlertRoutingPolicy", "namespace", ns)
			base.WriteError(w, http.StatusServiceUnavailable, "cannot read the AlertRoutingPolicy of namespace "+ns)
			return
		}
		errs = checkKinds(pol, specs, batch)
	}
	if len(errs) > 0 {
		metrics.IngestRejected.WithLabelValues(metrics.PathAPI).Inc()
		writeFieldErrors(w, errs)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ingestTimeout)
	defer cancel()
	u := base.UserFrom(r.Context()) // Require let only authenticated callers in
	reveal := s.mayRead(ctx, u, ns)
	results := make([]ItemResult, len(specs))
	codes := make([]int, len(specs))
	forEach(len(specs), func(i int) {
		k := key
		if batch && key != "" {
			k = key + "#" + strconv.Itoa(i)
		}
		res, err := s.Intake.Ingest(ctx, intake.Request{Namespace: ns, Spec: specs[i], Caller: u.Username, Key: k})
		results[i], codes[i] = s.itemResult(ctx, metrics.PathAPI, res, err, reveal)
	})
	code := http.StatusOK
	for _, c := range codes {
		code = max(code, c)
	}
	if slices.Contains(codes, http.StatusTooManyRequests) {
		w.Header().Set("Retry-After", "1")
	}
	if !batch {
		if results[0].Error != "" {
			base.WriteError(w, code, results[0].Error)
			return
		}
		base.WriteJSON(w, code, results[0].IngestResult)
		return
	}
	if code < http.StatusInternalServerError {
		// Refused items are reported per item; the others were counted.
		code = http.StatusOK
	}
	base.WriteJSON(w, code, BatchResult{Results: results})
}

// checkKinds refuses kinds the namespace's AlertRoutingPolicy does not allow.
func checkKinds(pol policy.Policy, specs []v1.AlertSpec, batch bool) field.ErrorList {
	var errs field.ErrorList
	for i, spec := range specs {
		if pol.KindAllowed(spec.Kind) {
			continue
		}
		p := field.NewPath("kind")
		if batch {
			p = field.NewPath("alerts").Index(i).Child("kind")
		}
		errs = append(errs, field.NotSupported(p, spec.Kind, pol.Spec.AllowedKinds))
	}
	return errs
}

// itemResult turns an intake answer into an item result and the HTTP status
// it calls for, counting it in the metrics. Unless reveal, the result and
// the refusals name no Alert (a refusal of the API server's names the
// object it refused, which may be the canonical Alert).
func (s *Receiver) itemResult(ctx context.Context, path string, res intake.Result, err error, reveal bool) (ItemResult, int) {
	if err == nil {
		switch {
		case res.Replayed:
			metrics.IngestReplays.WithLabelValues(path).Inc()
		case res.Accepted && res.AlertRef != "":
			metrics.IngestOccurrences.WithLabelValues(path, strconv.FormatBool(res.Deduped)).Inc()
		}
		return ItemResult{IngestResult: ingestResult(res, reveal)}, http.StatusOK
	}
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		metrics.IngestRejected.WithLabelValues(path).Inc()
		if !reveal {
			return ItemResult{Error: invalidCauses(err)}, http.StatusBadRequest
		}
		return ItemResult{Error: err.Error()}, http.StatusBadRequest
	}
	if errors.Is(err, intake.ErrBusy) {
		// Nothing was counted: retry later with the same key. Alertmanager
		// drops a batch answered 4xx, so it is told 503.
		code := http.StatusTooManyRequests
		if path == metrics.PathAlertmanager {
			code = http.StatusServiceUnavailable
		}
		return ItemResult{Error: err.Error()}, code
	}
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota") {
		// The namespace holds as many Alerts as its ResourceQuota allows:
		// nothing was counted, and room comes back as retention deletes
		// finished Alerts. A sender backs off (429); Alertmanager, which
		// drops a batch answered 4xx, is told 503 and retries.
		metrics.IngestRejected.WithLabelValues(path).Inc()
		code := http.StatusTooManyRequests
		if path == metrics.PathAlertmanager {
			code = http.StatusServiceUnavailable
		}
		msg := "the occurrence was not counted: the namespace holds as many Alerts as its ResourceQuota allows; retry later"
		if reveal {
			msg += " (" + err.Error() + ")"
		}
		return ItemResult{Error: msg}, code
	}
	if apierrors.IsNotFound(err) {
		// The only thing a create finds missing is the namespace.
		metrics.IngestRejected.WithLabelValues(path).Inc()
		if !reveal {
			return ItemResult{Error: "namespace: not found"}, http.StatusNotFound
		}
		return ItemResult{Error: "namespace: " + err.Error()}, http.StatusNotFound
	}
	ctrl.LoggerFrom(ctx).Error(err, "Failed to count an ingested occurrence", "path", path)
	msg := "the occurrence was not counted: " + err.Error() + "; retry (with the same Idempotency-Key to count it once)"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		msg = "the occurrence was not confirmed in time; retry with the same Idempotency-Key to count it once"
	case !reveal:
		msg = "the occurrence was not counted; retry (with the same Idempotency-Key to count it once)"
	}
	return ItemResult{Error: msg}, http.StatusServiceUnavailable
}

// invalidCauses is the API server's refusal of an invalid Alert told by its
// field causes only, without the object name its message starts with.
func invalidCauses(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil || len(status.Status().Details.Causes) == 0 {
		return "the alert is invalid"
	}
	causes := make([]string, 0, len(status.Status().Details.Causes))
	for _, c := range status.Status().Details.Causes {
		causes = append(causes, c.Field+": "+c.Message)
	}
	return "the alert is invalid: " + strings.Join(causes, "; ")
}

// readBody reads the (size-limited) body: 413 when it is too large, 400 when
// it cannot be read.
func readBody(w http.ResponseWriter, r *http.Request, path string) ([]byte, bool) {
	data, err := io.ReadAll(r.Body)
	if err == nil {
		return data, true
	}
	metrics.IngestRejected.WithLabelValues(path).Inc()
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		base.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: must be at most %d bytes", tooLarge.Limit))
		return nil, false
	}
	base.WriteError(w, http.StatusBadRequest, "body: cannot be read: "+err.Error())
	return nil, false
}

func writeFieldErrors(w http.ResponseWriter, errs field.ErrorList) {
	out := make([]base.FieldError, 0, len(errs))
	for _, e := range errs {
		out = append(out, base.FieldError{Field: e.Field, Type: string(e.Type), Detail: e.ErrorBody()})
	}
	base.WriteJSON(w, http.StatusBadRequest, FieldErrorBody{
		ErrorBody: base.ErrorBody{Code: http.StatusBadRequest, Reason: http.StatusText(http.StatusBadRequest), Message: errs.ToAggregate().Error()},
		Errors:    out,
	})
}

// forEach runs f(0..n-1) with bounded parallelism: items of different
// fingerprints are counted side by side, those of one fingerprint share a
// write.
func forEach(n int, f func(int)) {
	sem := make(chan struct{}, maxParallelItems)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
