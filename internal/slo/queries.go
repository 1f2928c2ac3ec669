// Package slo evaluates a service's SLIs from a Prometheus-compatible HTTP
// API and turns them into a release-gate decision. The decision is a pure
// function of what was observed, so it is table-tested without a cluster.
package slo

import (
	"context"
	"strings"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Placeholders a query template may use; service and env are DNS labels
// (the CRD enforces it), so they are safe inside PromQL string literals.
const (
	ServicePlaceholder = "${service}"
	EnvPlaceholder     = "${env}"
)

// Default query templates. Latency is the p95 of the request-duration
// histogram in seconds; the error rate is the 5xx share of requests, 0..1.
// A service without any 5xx yet has no 5xx series, hence `or vector(0)`;
// a service without traffic still yields no data.
const (
	DefaultLatencyP95Query = `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{service="${service}",env="${env}"}[5m])))`
	DefaultErrorRateQuery  = `(sum(rate(http_requests_total{service="${service}",env="${env}",code=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total{service="${service}",env="${env}"}[5m]))`
)

// Render fills a query template (the default when tmpl is empty) with the
// service and env.
func Render(tmpl, def, service, env string) string {
	if strings.TrimSpace(tmpl) == "" {
		tmpl = def
	}
	return strings.NewReplacer(ServicePlaceholder, service, EnvPlaceholder, env).Replace(tmpl)
}

// Observe queries the SLIs the policy has objectives for at the given time.
// A source failure is part of the observation (SourceUnavailable), not an
// error of the caller.
func Observe(ctx context.Context, src Source, p *v1.SLOPolicy, at time.Time) Observation {
	prom := p.Spec.Source.Prometheus
	var obs Observation
	var err error
	if p.Spec.Objectives.LatencyP95Ms != nil {
		q := Render(prom.LatencyP95Query, DefaultLatencyP95Query, p.Spec.Service, p.Spec.Env)
		if obs.Latency, err = src.Query(ctx, q, at); err != nil {
			return Observation{SourceErr: err}
		}
	}
	if p.Spec.Objectives.ErrorRatePercent != nil {
		q := Render(prom.ErrorRateQuery, DefaultErrorRateQuery, p.Spec.Service, p.Spec.Env)
		if obs.ErrorRate, err = src.Query(ctx, q, at); err != nil {
			return Observation{SourceErr: err}
		}
	}
	objectives, err := ParseBudgetObjectives(p)
	if err != nil {
		return Observation{SpecErr: err}
	}
	if obs.Budgets, err = EvaluateBudgets(ctx, src, objectives, at); err != nil {
		return Observation{SourceErr: err}
	}
	return obs
}
