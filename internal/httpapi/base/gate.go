package base

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// Gate is the release-gate JSON. An Argo Rollouts web metric reads it with
// jsonPath "{$.allowed}" and successCondition "result == true".
type Gate struct {
	Namespace       string           `json:"namespace"`
	Policy          string           `json:"policy"`
	Service         string           `json:"service"`
	Env             string           `json:"env"`
	Allowed         bool             `json:"allowed"`
	Decision        v1.GateDecision  `json:"decision"`
	Reason          string           `json:"reason"`
	Message         string           `json:"message,omitempty"`
	Stale           bool             `json:"stale"`
	Since           *metav1.Time     `json:"since,omitempty"`
	LastEvaluatedAt *metav1.Time     `json:"lastEvaluatedAt,omitempty"`
	Observed        *v1.ObservedSLIs `json:"observed,omitempty"`
	Bypass          *v1.BypassStatus `json:"bypass,omitempty"`
}

// GateOf is the gate JSON of p at now.
func GateOf(p *v1.SLOPolicy, now time.Time) Gate {
	v := slo.Effective(p, now)
	g := Gate{
		Namespace: p.Namespace, Policy: p.Name, Service: p.Spec.Service, Env: p.Spec.Env,
		Allowed: v.Allowed(), Decision: v.Decision, Reason: v.Reason, Message: v.Message, Stale: v.Stale,
		LastEvaluatedAt: p.Status.LastEvaluatedAt, Observed: p.Status.Observed, Bypass: p.Status.Bypass,
	}
	if p.Status.Gate != nil {
		g.Since = p.Status.Gate.Since
	}
	return g
}
