package dashboard

import (
	"context"
	"net/http"
	"time"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/query"
)

// TrendHistory is the part of the mirror's read side (*mirror.Store) the
// trends need beyond History: Incidents resolved in the window (MTTR) and
// the recorded gate evaluations (decisions over time). With it the trends
// answer from the database, else from the cluster.
type TrendHistory interface {
	ResolvedIncidents(ctx context.Context, namespaces []string, since time.Time) ([]v1.Incident, error)
	GateEvaluations(ctx context.Context, namespaces []string, since time.Time) ([]query.GateEvaluation, error)
}

// Sources of the trends.
const (
	trendsFromMirror  = "mirror"
	trendsFromCluster = "cluster"
)

// trendRoutes serves GET /v1/alerts/trends, authorised as the dashboard is.
func (s *Board) trendRoutes(m base.Mux) {
	m.Handle("GET /v1/alerts/trends", http.HandlerFunc(s.serveTrends))
}

func (s *Board) serveTrends(w http.ResponseWriter, r *http.Request) {
	p, c, ok := s.begin(w, r, resAlerts, s.Anonymous)
	if !ok {
		return
	}
	t, err := s.trends(r.Context(), c, p, s.Clock.Now())
	if err != nil {
		unavailable(w, r, err, "cannot read the trends now")
		return
	}
	base.WriteJSON(w, http.StatusOK, t)
}

// trends reads what the window needs, each kind where the caller may list
// it: from the mirror when it is on, else from the cluster.
func (s *Board) trends(ctx context.Context, c *caller, p readParams, now time.Time) (query.Trends, error) {
	span := p.filter.Window
	if span <= 0 {
		span = query.DefaultTrendSpan
	}
	since := now.Add(-span)
	rp := p
	rp.filter.Window = span
	alerts, err := s.readAlerts(ctx, c, rp, now)
	if err != nil {
		return query.Trends{}, err
	}
	policies, err := s.readPolicies(ctx, c, p.namespace)
	if err != nil {
		return query.Trends{}, err
	}
	in := query.TrendInput{Alerts: alerts, Policies: policies}
	source := trendsFromCluster
	if h, ok := s.History.(TrendHistory); ok {
		source = trendsFromMirror
		if in.Incidents, err = h.ResolvedIncidents(ctx, namespaces(p.namespace), since); err != nil {
			return query.Trends{}, err
		}
		evals, err := h.GateEvaluations(ctx, namespaces(p.namespace), since)
		if err != nil {
			return query.Trends{}, err
		}
		if in.Evaluations, err = visible(ctx, c, resSLOPolicies, "", evals, func(e *query.GateEvaluation) string { return e.Namespace }); err != nil {
			return query.Trends{}, err
		}
	} else {
		var list v1.IncidentList
		if err := s.Reader.List(ctx, &list, inNamespace(p.namespace)...); err != nil {
			return query.Trends{}, err
		}
		in.Incidents = list.Items
	}
	if in.Incidents, err = visible(ctx, c, resIncidents, "", in.Incidents, func(i *v1.Incident) string { return i.Namespace }); err != nil {
		return query.Trends{}, err
	}
	return query.BuildTrends(in, p.namespace, source, p.filter.Window, now), nil
}
