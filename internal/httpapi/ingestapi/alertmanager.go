package ingestapi

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertmanager"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/metrics"
	"github.com/alertbridge/alertbridge/internal/policy"
)

// ResolvedBy is recorded as ack.by on an Alert acked because Alertmanager
// said it resolved.
const ResolvedBy = "alertmanager"

// AlertmanagerResult is the answer for one alert of a webhook message.
type AlertmanagerResult struct {
	// Fingerprint and Status are Alertmanager's, so its logs and ours match.
	Fingerprint string `json:"fingerprint"`
	Status      string `json:"status"`
	Namespace   string `json:"namespace,omitempty"`
	ItemResult
}

// AlertmanagerResponse answers a webhook message, one result per alert.
type AlertmanagerResponse struct {
	Results []AlertmanagerResult `json:"results"`
}

// nsPlan is what one namespace of a message gets: whether the caller may
// create Alerts there (and read them, which the answer's detail needs), and
// the items mapped with its policy's rules.
type nsPlan struct {
	allowed bool
	reveal  bool
	pol     policy.Policy
	items   []alertmanager.Item
}

// serveAlertmanager is POST /v1/alertmanager (webhook payload version 4).
// Alertmanager drops a batch answered 4xx and retries one answered 5xx, so
// 4xx is kept for a body that is unusable as a whole (or a caller allowed
// nowhere), per-alert problems are per-item results, and a cluster that
// cannot be reached gets 503 — a retry counts nothing twice, as each firing
// instance is keyed by Alertmanager's fingerprint and startsAt. A message
// whose alerts span more than base.MaxReviewedNamespaces namespaces is refused
// with 400 before any access check: it would be refused again however often
// it came back, so Alertmanager is right to drop it.
func (s *Receiver) serveAlertmanager(w http.ResponseWriter, r *http.Request) {
	u, ok := s.Auth.Authenticate(w, r, false)
	if !ok {
		return
	}
	data, ok := readBody(w, r, metrics.PathAlertmanager)
	if !ok {
		return
	}
	msg, err := alertmanager.Decode(bytes.NewReader(data))
	if err != nil {
		metrics.IngestRejected.WithLabelValues(metrics.PathAlertmanager).Inc()
		code := http.StatusBadRequest
		var tooMany *alertmanager.TooManyError
		if errors.As(err, &tooMany) {
			code = http.StatusRequestEntityTooLarge
		}
		base.WriteError(w, code, err.Error())
		return
	}
	ctx := r.Context()
	if msg.TruncatedAlerts > 0 {
		ctrl.LoggerFrom(ctx).Info("Alertmanager truncated a webhook batch; raise max_alerts to receive every alert",
			"receiver", msg.Receiver, "groupKey", msg.GroupKey, "truncatedAlerts", msg.TruncatedAlerts)
	}
	query := r.URL.Query().Get("namespace")
	mapped := alertmanager.Rules{}.Map(msg)
	nsOf := make([]string, len(mapped))
	for i, it := range mapped {
		nsOf[i] = cmp.Or(query, it.Namespace, s.DefaultNamespace, "default")
	}
	if n := len(slices.Compact(slices.Sorted(slices.Values(nsOf)))); n > base.MaxReviewedNamespaces {
		metrics.IngestRejected.WithLabelValues(metrics.PathAlertmanager).Inc()
		base.WriteError(w, http.StatusBadRequest, fmt.Sprintf("alerts[].labels.namespace: the message spans %d namespaces, more than the %d one message may; "+
			"group the route by namespace (group_by: [namespace, ...]) or give each namespace its own receiver with ?namespace=", n, base.MaxReviewedNamespaces))
		return
	}
	plans := map[string]*nsPlan{}
	for i := range mapped {
		if plans[nsOf[i]] != nil {
			continue
		}
		p, code, err := s.planNamespace(ctx, u, nsOf[i], msg, mapped)
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to prepare an Alertmanager batch", "namespace", nsOf[i])
			base.WriteError(w, code, err.Error())
			return
		}
		plans[nsOf[i]] = p
	}
	if denied := deniedNamespaces(plans); len(plans) > 0 && len(denied) == len(plans) {
		base.WriteError(w, http.StatusForbidden, "user "+u.Username+" cannot create alerts in namespace "+strings.Join(denied, ", "))
		return
	}

	ictx, cancel := context.WithTimeout(ctx, ingestTimeout)
	defer cancel()
	results := make([]AlertmanagerResult, len(mapped))
	codes := make([]int, len(mapped))
	forEach(len(mapped), func(i int) {
		p := plans[nsOf[i]]
		it := p.items[i]
		results[i] = AlertmanagerResult{Fingerprint: msg.Alerts[i].Fingerprint, Status: msg.Alerts[i].Status, Namespace: nsOf[i]}
		results[i].ItemResult, codes[i] = s.amItem(ictx, u, nsOf[i], p, it)
	})
	code := http.StatusOK
	for _, c := range codes {
		if c >= http.StatusInternalServerError {
			code = c
		}
	}
	base.WriteJSON(w, code, AlertmanagerResponse{Results: results})
}

// planNamespace checks access to ns and maps the message with ns's rules.
func (s *Receiver) planNamespace(ctx context.Context, u *base.User, ns string, msg *alertmanager.Message, mapped []alertmanager.Item) (*nsPlan, int, error) {
	allowed, err := s.Auth.Allowed(ctx, u, "create", v1.GroupVersion.Group, "alerts", ns, "")
	if err != nil {
		return nil, http.StatusServiceUnavailable, errUnavailable("cannot check access now")
	}
	p := &nsPlan{allowed: allowed, items: mapped}
	if !allowed {
		return p, 0, nil
	}
	p.reveal = s.mayRead(ctx, u, ns)
	if p.pol, err = policy.Get(ctx, s.Reader, ns); err != nil {
		return nil, http.StatusServiceUnavailable, errUnavailable("cannot read the AlertRoutingPolicy of namespace " + ns)
	}
	if p.pol.Spec.Alertmanager != nil {
		p.items = alertmanager.RulesFrom(p.pol.Spec.Alertmanager).Map(msg)
	}
	return p, 0, nil
}

type errUnavailable string

func (e errUnavailable) Error() string { return string(e) }

func deniedNamespaces(plans map[string]*nsPlan) []string {
	var out []string
	for ns, p := range plans {
		if !p.allowed {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return out
}

// amItem counts a firing instance or resolves the Alert that counted it.
func (s *Receiver) amItem(ctx context.Context, u *base.User, ns string, p *nsPlan, it alertmanager.Item) (ItemResult, int) {
	switch {
	case !p.allowed:
		return ItemResult{Error: "user " + u.Username + " cannot create alerts in namespace " + ns}, http.StatusForbidden
	case it.Err != nil:
		metrics.IngestRejected.WithLabelValues(metrics.PathAlertmanager).Inc()
		return ItemResult{Error: it.Err.Error()}, http.StatusBadRequest
	case !p.pol.KindAllowed(it.Spec.Kind):
		metrics.IngestRejected.WithLabelValues(metrics.PathAlertmanager).Inc()
		return ItemResult{Error: "labels.alertname: kind " + it.Spec.Kind + " is not in the AlertRoutingPolicy's allowedKinds"}, http.StatusBadRequest
	case it.Resolved:
		at := it.EndsAt
		if at.IsZero() {
			at = s.Clock.Now()
		}
		res, err := s.Intake.Resolve(ctx, ns, it.Spec, u.Username, it.Instance.Key(), ResolvedBy, at)
		if apierrors.IsNotFound(err) {
			return ItemResult{IngestResult: IngestResult{Accepted: true}}, http.StatusOK // the Alert is gone: nothing to resolve
		}
		if err != nil {
			return s.itemResult(ctx, metrics.PathAlertmanager, res, err, p.reveal)
		}
		return ItemResult{IngestResult: ingestResult(res, p.reveal)}, http.StatusOK
	}
	res, err := s.Intake.Ingest(ctx, intake.Request{
		Namespace: ns, Spec: it.Spec, Caller: u.Username, Key: it.Instance.Key(), Firing: true,
		Annotations: map[string]string{v1.AlertmanagerFingerprintAnnotation: it.Instance.Fingerprint},
	})
	return s.itemResult(ctx, metrics.PathAlertmanager, res, err, p.reveal)
}
