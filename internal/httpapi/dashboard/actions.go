package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// The page's actions. Ack, convert, note, resolve and close go through the
// work-queue endpoints (package work); this file adds what the page needs
// besides: which buttons a token's user may see, and the emergency bypass.
// Both judge the caller as kubectl would (see docs/adr/two-identities.md): the buttons are the
// answers of SubjectAccessReviews the server makes for the token's user, the
// bypass needs what `alertbridge slo bypass` needs, and the operator writes
// it as itself with the same library as the CLI, under the same admission
// policies.

// Permissions is GET /v1/permissions: for each namespace asked, the actions
// the caller may take there.
type Permissions struct {
	User       string                      `json:"user"`
	Namespaces map[string]NamespaceActions `json:"namespaces"`
}

// NamespaceActions are the page's buttons in one namespace, each true when
// every verb the action needs is allowed.
type NamespaceActions struct {
	// Ack: patch and acknowledge alerts/status (ack an Alert nobody holds).
	Ack bool `json:"ack"`
	// Convert: get alerts, list and create incidents, patch
	// incidents/status, patch alerts/status.
	Convert bool `json:"convert"`
	// Note: patch incidents and patch incidents/status.
	Note bool `json:"note"`
	// State: patch incidents (resolve, close).
	State bool `json:"state"`
	// Bypass: get and patch slopolicies.
	Bypass bool `json:"bypass"`
}

// BypassRequest sets or clears the emergency bypass of an SLOPolicy's gate,
// as `alertbridge slo bypass` does.
type BypassRequest struct {
	Reason string `json:"reason,omitempty" jsonschema:"why the gate is bypassed (required unless clear)"`
	For    string `json:"for,omitempty" jsonschema:"how long, e.g. 2h (required unless clear; capped by the policy's gate.maxBypass)"`
	Clear  bool   `json:"clear,omitempty" jsonschema:"end the bypass now"`
}

// BypassResult says what was written.
type BypassResult struct {
	PolicyRef string     `json:"policyRef"`
	Active    bool       `json:"active"`
	Until     *time.Time `json:"until,omitempty"`
	// Capped is true when for exceeded gate.maxBypass.
	Capped  bool   `json:"capped,omitempty"`
	Message string `json:"message"`
}

// actionNeeds are the SubjectAccessReviews of each button in ns, each list
// checked in order up to its first refusal. The write each action needs
// comes first, so a caller who may write nothing here (a viewer, a
// stranger) costs three reviews per namespace — patch alerts/status, patch
// incidents, patch slopolicies — and one who may do everything nine; the
// cache answers a question asked twice.
func actionNeeds(ns string) map[string][]base.Need {
	return map[string][]base.Need{
		"ack": {base.NeedOf("patch", "alerts/status", ns, ""), base.NeedOf("acknowledge", "alerts/status", ns, "")},
		"convert": {base.NeedOf("patch", "alerts/status", ns, ""), base.NeedOf("create", "incidents", ns, ""), base.NeedOf("patch", "incidents/status", ns, ""),
			base.NeedOf("list", "incidents", ns, ""), base.NeedOf("get", "alerts", ns, "")},
		"note":   {base.NeedOf("patch", "incidents", ns, ""), base.NeedOf("patch", "incidents/status", ns, "")},
		"state":  {base.NeedOf("patch", "incidents", ns, "")},
		"bypass": {base.NeedOf("patch", resSLOPolicies, ns, ""), base.NeedOf("get", resSLOPolicies, ns, "")},
	}
}

// actionOrder is the order the buttons are checked in, so the reviews a
// call makes do not depend on map order.
var actionOrder = []string{"ack", "convert", "note", "state", "bypass"}

// ActionRoutes serve the page's permissions and the bypass.
func (s *Board) ActionRoutes(m base.Mux) {
	m.Handle("GET /v1/permissions", base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
		return s.permissions(ctx, u, r.URL.Query()["namespace"])
	}))
	m.Handle("POST /v1/slopolicies/{namespace}/{name}/bypass", base.Action(s.Auth, func(ctx context.Context, u *base.User, r *http.Request) (any, error) {
		var req BypassRequest
		if err := base.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		return s.bypass(ctx, u, base.PathRef(r), req)
	}))
}

// permissions answers which buttons u sees in each namespace.
func (s *Board) permissions(ctx context.Context, u *base.User, nss []string) (*Permissions, error) {
	var errs field.ErrorList
	if len(nss) == 0 {
		errs = append(errs, field.Required(field.NewPath("namespace"), "name one or more namespaces"))
	}
	if len(nss) > base.MaxReviewedNamespaces {
		errs = append(errs, field.TooMany(field.NewPath("namespace"), len(nss), base.MaxReviewedNamespaces))
	}
	for _, ns := range nss {
		errs = append(errs, base.DNSLabel(field.NewPath("namespace"), ns, true)...)
	}
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	out := &Permissions{User: u.Username, Namespaces: map[string]NamespaceActions{}}
	for _, ns := range nss {
		var a NamespaceActions
		needs := actionNeeds(ns)
		for _, name := range actionOrder {
			ok, err := s.Auth.May(ctx, u, needs[name]...)
			if err != nil {
				return nil, err
			}
			switch name {
			case "ack":
				a.Ack = ok
			case "convert":
				a.Convert = ok
			case "note":
				a.Note = ok
			case "state":
				a.State = ok
			case "bypass":
				a.Bypass = ok
			}
		}
		out.Namespaces[ns] = a
	}
	return out, nil
}

// The HTTP API writes the emergency bypass annotations on SLOPolicies for a caller allowed to patch them (SubjectAccessReview), as the operator (see docs/adr/two-identities.md).
// +kubebuilder:rbac:groups=ops.alertbridge.io,resources=slopolicies,verbs=patch

// bypass is POST /v1/slopolicies/{namespace}/{name}/bypass: what
// `alertbridge slo bypass` needs (get and patch the SLOPolicy), the bypass
// recorded in the caller's name.
func (s *Board) bypass(ctx context.Context, u *base.User, at base.Ref, r BypassRequest) (*BypassResult, error) {
	errs := at.Validate(field.NewPath("slopolicy"))
	var d time.Duration
	switch {
	case r.Clear && (r.Reason != "" || r.For != ""):
		errs = append(errs, field.Invalid(field.NewPath("clear"), true, "takes neither reason nor for"))
	case !r.Clear:
		if strings.TrimSpace(r.Reason) == "" {
			errs = append(errs, field.Required(field.NewPath("reason"), "a bypass must say why"))
		}
		errs = append(errs, base.TooLong(field.NewPath("reason"), r.Reason, 1024)...)
		if r.For == "" {
			errs = append(errs, field.Required(field.NewPath("for"), "how long the bypass lasts, e.g. 2h"))
		} else {
			var ferr *field.Error
			if d, ferr = base.Duration(field.NewPath("for"), r.For, time.Minute, 30*24*time.Hour); ferr != nil {
				errs = append(errs, ferr)
			}
		}
	}
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	if err := s.Auth.Check(ctx, u, base.NeedOf("get", resSLOPolicies, at.Namespace, at.Name), base.NeedOf("patch", resSLOPolicies, at.Namespace, at.Name)); err != nil {
		return nil, err
	}
	res := &BypassResult{PolicyRef: at.String()}
	var ann map[string]string
	if r.Clear {
		res.Message = fmt.Sprintf("slopolicy/%s: bypass cleared by %s", at.Name, u.Username)
	} else {
		var p v1.SLOPolicy
		if err := s.Client.Get(ctx, at.Key(), &p); err != nil {
			return nil, err
		}
		if limit := slo.MaxBypass(&p); d > limit {
			d, res.Capped = limit, true
		}
		until := s.Clock.Now().Add(d).UTC().Truncate(time.Second)
		ann = slo.BypassAnnotations(until, r.Reason, u.Username)
		res.Active, res.Until = true, &until
		res.Message = fmt.Sprintf("slopolicy/%s: release gate bypassed until %s by %s: %s", at.Name, until.Format(time.RFC3339), u.Username, r.Reason)
		if res.Capped {
			res.Message += " (capped at gate.maxBypass " + d.String() + ")"
		}
	}
	if _, err := slo.WriteBypass(ctx, s.Client, at.Key(), ann); err != nil {
		return nil, err
	}
	return res, nil
}
