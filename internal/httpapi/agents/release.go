package agents

import (
	"context"
	"fmt"
	"net/http"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
)

// resSLOPolicies is the resource the release check authorises against.
const resSLOPolicies = "slopolicies"

// ReleaseCheckRequest is `alertbridge release-check` as a tool input.
type ReleaseCheckRequest struct {
	Namespace string `json:"namespace" jsonschema:"namespace of the SLOPolicies"`
	Service   string `json:"service,omitempty" jsonschema:"service to release (required unless policy is given)"`
	Env       string `json:"env,omitempty" jsonschema:"env of the service (default prod)"`
	Policy    string `json:"policy,omitempty" jsonschema:"check only this SLOPolicy"`
}

// ReleaseCheckResult is the verdict: allowed unless a gate blocks.
type ReleaseCheckResult struct {
	Allowed bool        `json:"allowed"`
	Message string      `json:"message"`
	Gates   []base.Gate `json:"gates"`
}

// releaseCheck reads the gates of a service (or one policy), as
// `alertbridge release-check` does.
func (s *Protocols) releaseCheck(ctx context.Context, u *base.User, r ReleaseCheckRequest) (*ReleaseCheckResult, error) {
	errs := base.DNSLabel(field.NewPath("namespace"), r.Namespace, true)
	if r.Service == "" && r.Policy == "" {
		errs = append(errs, field.Required(field.NewPath("service"), "service (or policy) is required"))
	}
	errs = append(errs, base.TooLong(field.NewPath("service"), r.Service, 63)...)
	errs = append(errs, base.TooLong(field.NewPath("env"), r.Env, 63)...)
	errs = append(errs, base.TooLong(field.NewPath("policy"), r.Policy, 253)...)
	if len(errs) > 0 {
		return nil, base.Invalid(errs)
	}
	env := r.Env
	if env == "" {
		env = "prod"
	}
	var policies []v1.SLOPolicy
	if r.Policy != "" {
		if err := s.Auth.Check(ctx, u, base.NeedOf("get", resSLOPolicies, r.Namespace, r.Policy)); err != nil {
			return nil, err
		}
		var p v1.SLOPolicy
		if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Policy}, &p); err != nil {
			return nil, err
		}
		policies = append(policies, p)
	} else {
		if err := s.Auth.Check(ctx, u, base.NeedOf("list", resSLOPolicies, r.Namespace, "")); err != nil {
			return nil, err
		}
		var list v1.SLOPolicyList
		if err := s.Reader.List(ctx, &list, client.InNamespace(r.Namespace)); err != nil {
			return nil, err
		}
		for _, p := range list.Items {
			if p.Spec.Service == r.Service && p.Spec.Env == env {
				policies = append(policies, p)
			}
		}
		if len(policies) == 0 {
			return nil, base.Refuse(http.StatusNotFound, fmt.Sprintf("no SLOPolicy for service %q env %q in namespace %s", r.Service, env, r.Namespace))
		}
	}
	res := &ReleaseCheckResult{Allowed: true, Message: "allowed", Gates: []base.Gate{}}
	now := s.Clock.Now()
	for i := range policies {
		g := base.GateOf(&policies[i], now)
		res.Gates = append(res.Gates, g)
		if !g.Allowed && res.Allowed {
			res.Allowed = false
			res.Message = fmt.Sprintf("release blocked by slopolicy/%s: %s: %s", g.Policy, g.Reason, g.Message)
		}
	}
	return res, nil
}
