package ingestapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/ingest"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// IngestOne counts one alert (raw, its fields) in ns for u, as the tool
// endpoint's ingest does: through the same intake, kind check and
// authorisation (create alerts) as POST /v1/alerts, with key as its
// Idempotency-Key. The bool says whether u may get Alerts in ns, and so be
// told which Alert counted it; a refusal is a *base.Refusal.
func (s *Receiver) IngestOne(ctx context.Context, u *base.User, ns, key string, raw map[string]json.RawMessage) (intake.Result, bool, error) {
	if len(key) > maxIdempotencyKey {
		return intake.Result{}, false, base.Invalid(field.ErrorList{field.TooLong(field.NewPath("header", base.IdempotencyKeyHeader), "", maxIdempotencyKey)})
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("create", "alerts", ns, "")); err != nil {
		return intake.Result{}, false, err
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return intake.Result{}, false, base.Invalid(field.ErrorList{field.Invalid(field.NewPath("body"), "", err.Error())})
	}
	specs, errs := ingest.Decode(data)
	if len(errs) == 0 {
		pol, err := policy.Get(ctx, s.Reader, ns)
		if err != nil {
			return intake.Result{}, false, base.Unavailable("cannot read the AlertRoutingPolicy of namespace " + ns + ": " + err.Error())
		}
		errs = checkKinds(pol, specs, false)
	}
	if len(errs) > 0 {
		metrics.IngestRejected.WithLabelValues(metrics.PathAPI).Inc()
		return intake.Result{}, false, base.Invalid(errs)
	}
	ictx, cancel := context.WithTimeout(ctx, ingestTimeout)
	defer cancel()
	got, err := s.Intake.Ingest(ictx, intake.Request{Namespace: ns, Spec: specs[0], Caller: u.Username, Key: key})
	reveal := s.mayRead(ctx, u, ns)
	item, code := s.itemResult(ictx, metrics.PathAPI, got, err, reveal)
	if code != http.StatusOK {
		p := base.Refuse(code, item.Error)
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			p.RetryAfter = time.Second
		}
		if code == http.StatusBadRequest {
			p.Errors = []base.FieldError{{Field: "body", Type: string(field.ErrorTypeInvalid), Detail: item.Error}}
		}
		ctrl.LoggerFrom(ctx).V(1).Info("Tool ingest refused", "code", code, "error", item.Error)
		return intake.Result{}, false, p
	}
	return got, reveal, nil
}
