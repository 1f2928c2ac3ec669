package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// MaxHistoryRows bounds one history read, so an unbounded window over a
// large table cannot exhaust the operator's memory; the newest rows win.
const MaxHistoryRows = 20000

// The read side rebuilds v1.Alert and v1.Incident values from rows, with
// the fields internal/query reads, so the HTTP API answers from history in
// exactly the shape it answers from the cluster.

const selectAlertsSQL = `SELECT uid, namespace, name, resource_version::text,
  fingerprint, service, env, kind, severity, title, message, source, labels,
  phase, occurrences, first_seen_at, last_seen_at, duplicate_of,
  holder, attempts, last_error, retry_after, ack_by, ack_note, acked_at,
  resolved_at, incident_name, created_at, deleted_at
FROM alerts
WHERE ($1::text[] IS NULL OR namespace = ANY($1))
  AND coalesce(last_seen_at, created_at) >= $2
ORDER BY coalesce(last_seen_at, created_at) DESC, namespace, name
LIMIT $3`

// Alerts returns the Alerts (including deleted ones) last seen at or after
// since (zero: all), of namespaces (nil: all), newest first.
func (s *Store) Alerts(ctx context.Context, namespaces []string, since time.Time) ([]v1.Alert, error) {
	rows, err := s.pool.Query(ctx, selectAlertsSQL, namespaces, since.UTC(), MaxHistoryRows)
	if err != nil {
		return nil, fmt.Errorf("failed to read alert history: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanAlert)
	if err != nil {
		return nil, fmt.Errorf("failed to read alert history: %w", err)
	}
	return out, nil
}

func scanAlert(row pgx.CollectableRow) (v1.Alert, error) {
	var (
		a                                              v1.Alert
		uid, severity, phase, holder, ackBy, ackNote   string
		incident                                       string
		labels                                         map[string]string
		first, last, retry, acked, resolved, deletedAt *time.Time
		created                                        time.Time
	)
	s := &a.Status
	err := row.Scan(&uid, &a.Namespace, &a.Name, &a.ResourceVersion,
		&s.Fingerprint, &a.Spec.Service, &a.Spec.Env, &a.Spec.Kind, &severity, &a.Spec.Title, &a.Spec.Message, &a.Spec.Source, &labels,
		&phase, &s.Occurrences, &first, &last, &s.DuplicateOf,
		&holder, &s.Attempts, &s.LastError, &retry, &ackBy, &ackNote, &acked,
		&resolved, &incident, &created, &deletedAt)
	if err != nil {
		return a, err
	}
	a.UID, a.Spec.Severity, s.Phase = types.UID(uid), v1.Severity(severity), v1.AlertPhase(phase)
	a.CreationTimestamp = metav1.NewTime(created)
	if len(labels) > 0 {
		a.Spec.Labels = labels
	}
	s.FirstSeenAt, s.LastSeenAt, s.RetryAfter, s.ResolvedAt = mt(first), mt(last), mt(retry), mt(resolved)
	a.DeletionTimestamp = mt(deletedAt)
	if holder != "" {
		s.Claim = &v1.AlertClaim{HolderIdentity: holder}
	}
	if ackBy != "" || acked != nil {
		s.Ack = &v1.AlertAck{By: ackBy, Note: ackNote}
		if acked != nil {
			s.Ack.At = metav1.NewTime(*acked)
		}
	}
	if incident != "" {
		s.IncidentRef = &v1.LocalObjectReference{Name: incident}
	}
	return a, nil
}

// Open incidents still in the cluster: a row deleted while Open keeps its
// last state, and is history rather than an open incident.
const selectOpenIncidentsSQL = `SELECT uid, namespace, name, resource_version::text,
  service, env, severity, title, signature, state, note,
  opened_at, mitigating_at, last_activity_at, alert_count, triage_runs, last_triage_at, cooldown_until, created_at
FROM incidents
WHERE ($1::text[] IS NULL OR namespace = ANY($1))
  AND state IN ('Open', 'Mitigating') AND deleted_at IS NULL
ORDER BY created_at DESC
LIMIT $2`

// OpenIncidents returns the Open and Mitigating Incidents of namespaces
// (nil: all).
func (s *Store) OpenIncidents(ctx context.Context, namespaces []string) ([]v1.Incident, error) {
	rows, err := s.pool.Query(ctx, selectOpenIncidentsSQL, namespaces, MaxHistoryRows)
	if err != nil {
		return nil, fmt.Errorf("failed to read incident history: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanIncident)
	if err != nil {
		return nil, fmt.Errorf("failed to read incident history: %w", err)
	}
	return out, nil
}

func scanIncident(row pgx.CollectableRow) (v1.Incident, error) {
	var (
		in                           v1.Incident
		uid, severity, state         string
		opened, mitigating, activity *time.Time
		lastTriage, cooldown         *time.Time
		runs                         int32
		created                      time.Time
	)
	s := &in.Status
	err := row.Scan(&uid, &in.Namespace, &in.Name, &in.ResourceVersion,
		&in.Spec.Service, &in.Spec.Env, &severity, &in.Spec.Title, &in.Spec.Signature, &state, &in.Spec.Note,
		&opened, &mitigating, &activity, &s.AlertCount, &runs, &lastTriage, &cooldown, &created)
	if err != nil {
		return in, err
	}
	in.UID, in.Spec.Severity, in.Spec.State = types.UID(uid), v1.Severity(severity), v1.IncidentState(state)
	in.CreationTimestamp = metav1.NewTime(created)
	s.OpenedAt, s.MitigatingAt, s.LastActivityAt = mt(opened), mt(mitigating), mt(activity)
	if runs > 0 || lastTriage != nil || cooldown != nil {
		s.Triage = &v1.TriageStatus{Runs: runs, LastTriageAt: mt(lastTriage), CooldownUntil: mt(cooldown)}
	}
	return in, nil
}

func mt(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	m := metav1.NewTime(*t)
	return &m
}
