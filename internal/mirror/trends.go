package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/query"
)

// The read side of the dashboard's trends: the Incidents resolved in a
// window (MTTR) and the recorded gate evaluations (decisions over time).
// The Alerts come from Alerts, as for the dashboard.

const selectResolvedIncidentsSQL = `SELECT uid, namespace, name, state, opened_at, resolved_at, closed_at, created_at
FROM incidents
WHERE ($1::text[] IS NULL OR namespace = ANY($1))
  AND coalesce(resolved_at, closed_at) >= $2
ORDER BY coalesce(resolved_at, closed_at) DESC
LIMIT $3`

// ResolvedIncidents returns the Incidents (including deleted ones) resolved,
// or closed without being resolved, at or after since, of namespaces (nil:
// all), with the fields MTTR needs.
func (s *Store) ResolvedIncidents(ctx context.Context, namespaces []string, since time.Time) ([]v1.Incident, error) {
	rows, err := s.pool.Query(ctx, selectResolvedIncidentsSQL, namespaces, since.UTC(), MaxHistoryRows)
	if err != nil {
		return nil, fmt.Errorf("failed to read resolved incidents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (v1.Incident, error) {
		var (
			in                       v1.Incident
			uid, state               string
			opened, resolved, closed *time.Time
			created                  time.Time
		)
		if err := row.Scan(&uid, &in.Namespace, &in.Name, &state, &opened, &resolved, &closed, &created); err != nil {
			return in, err
		}
		in.UID, in.Spec.State, in.CreationTimestamp = types.UID(uid), v1.IncidentState(state), metav1.NewTime(created)
		in.Status.OpenedAt, in.Status.ResolvedAt, in.Status.ClosedAt = mt(opened), mt(resolved), mt(closed)
		return in, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read resolved incidents: %w", err)
	}
	return out, nil
}

const selectEvaluationsSQL = `SELECT namespace, name, service, env, evaluated_at, decision, reason
FROM slo_evaluations
WHERE ($1::text[] IS NULL OR namespace = ANY($1))
  AND evaluated_at >= $2
ORDER BY evaluated_at DESC
LIMIT $3`

// GateEvaluations returns the SLOPolicy evaluations recorded at or after
// since, of namespaces (nil: all), newest first.
func (s *Store) GateEvaluations(ctx context.Context, namespaces []string, since time.Time) ([]query.GateEvaluation, error) {
	rows, err := s.pool.Query(ctx, selectEvaluationsSQL, namespaces, since.UTC(), MaxHistoryRows)
	if err != nil {
		return nil, fmt.Errorf("failed to read gate evaluations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (query.GateEvaluation, error) {
		var e query.GateEvaluation
		err := row.Scan(&e.Namespace, &e.Name, &e.Service, &e.Env, &e.At, &e.Decision, &e.Reason)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read gate evaluations: %w", err)
	}
	return out, nil
}
