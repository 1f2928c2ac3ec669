package dashboard

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/query"
)

// readQuery is a tool's read input as the read endpoints' query, so both
// are checked by the same code with the same messages.
func readQuery(ns string, window *int64, statusIn []string, env, source, service string) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("namespace", ns)
	if window != nil {
		q.Set("windowMinutes", strconv.FormatInt(*window, 10))
	}
	set("statusIn", strings.Join(statusIn, ","))
	set("env", env)
	set("source", source)
	set("service", service)
	return q
}

// beginRead parses q and checks that u may list resource in the namespace
// it names, as the read endpoints do.
func (s *Board) beginRead(ctx context.Context, u *base.User, q url.Values, resource string) (readParams, *caller, error) {
	p, err := parseReadParams(q)
	var pe *paramError
	if errors.As(err, &pe) {
		return p, nil, base.Invalid(field.ErrorList{field.Invalid(field.NewPath(pe.name), q.Get(pe.name), pe.msg)})
	}
	if err != nil {
		return p, nil, err
	}
	if p.namespace != "" {
		if err := s.Auth.Check(ctx, u, base.NeedOf("list", resource, p.namespace, "")); err != nil {
			return p, nil, err
		}
	}
	return p, &caller{auth: s.Auth, user: u}, nil
}

// ListAlerts is GET /v1/alerts for a tool.
func (s *Board) ListAlerts(ctx context.Context, u *base.User, r base.ListRequest) (*query.AlertList, error) {
	p, c, err := s.beginRead(ctx, u, readQuery(r.Namespace, r.WindowMinutes, r.StatusIn, r.Env, r.Source, r.Service), resAlerts)
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	alerts, err := s.readAlerts(ctx, c, p, now)
	if err != nil {
		return nil, err
	}
	l := query.ListAlerts(alerts, p.filter, p.namespace, now)
	return &l, nil
}

// Dashboard is GET /v1/alerts/dashboard for a tool.
func (s *Board) Dashboard(ctx context.Context, u *base.User, r base.DashboardRequest) (*query.Dashboard, error) {
	p, c, err := s.beginRead(ctx, u, readQuery(r.Namespace, r.WindowMinutes, nil, "", "", ""), resAlerts)
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	alerts, err := s.readAlerts(ctx, c, p, now)
	if err != nil {
		return nil, err
	}
	incidents, err := s.readOpenIncidents(ctx, c, p.namespace, "")
	if err != nil {
		return nil, err
	}
	policies, err := s.readPolicies(ctx, c, p.namespace)
	if err != nil {
		return nil, err
	}
	silences, err := s.readSilences(ctx, c, p.namespace)
	if err != nil {
		return nil, err
	}
	d := query.BuildDashboard(alerts, incidents, policies, silences, p.namespace, p.filter.Window, now)
	return &d, nil
}

// OpenIncidents is GET /v1/incidents/open for a tool.
func (s *Board) OpenIncidents(ctx context.Context, u *base.User, r base.IncidentsOpenRequest) (*query.IncidentList, error) {
	p, c, err := s.beginRead(ctx, u, readQuery(r.Namespace, nil, nil, "", "", r.Service), resIncidents)
	if err != nil {
		return nil, err
	}
	incidents, err := s.readOpenIncidents(ctx, c, p.namespace, p.namespace)
	if err != nil {
		return nil, err
	}
	l := query.ListOpenIncidents(incidents, p.namespace, p.filter.Service)
	return &l, nil
}
