package mirror

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// Store writes the mirror's rows through a connection pool.
type Store struct {
	pool *pgxpool.Pool
}

// DefaultConnectTimeout bounds a connection attempt, so a database that is
// down fails a write quickly and the controller's backoff takes over.
const DefaultConnectTimeout = 3 * time.Second

// Open creates a pool for dsn. It does not connect: the operator starts
// and serves everything else while the database is down.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the database URL: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// Connections broken by an outage are dropped on their next use; a
	// periodic health check finds idle ones before a write does.
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create the database pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close releases the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Migrate applies pending migrations on a pooled connection.
func (s *Store) Migrate(ctx context.Context, o MigrateOptions) ([]int, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the database: %w", err)
	}
	defer c.Release()
	return Migrate(ctx, c.Conn(), o)
}

// PendingMigrations returns the embedded migrations the database has not
// applied yet, oldest first, changing nothing: empty means the schema is
// current. An applied migration whose SQL was edited since is ErrChecksum.
func (s *Store) PendingMigrations(ctx context.Context) ([]Migration, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", MigrationsTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("failed to look for %s: %w", MigrationsTable, err)
	}
	applied := map[int]string{}
	if exists {
		if applied, err = appliedVersions(ctx, s.pool); err != nil {
			return nil, err
		}
	}
	return pendingOf(all, applied)
}

var alertCols = []string{
	"uid", "namespace", "name", "resource_version",
	"fingerprint", "service", "env", "kind", "severity",
	"title", "message", "source", "labels",
	"phase", "occurrences", "first_seen_at", "last_seen_at", "duplicate_of",
	"holder", "attempts", "last_error", "retry_after", "ack_by", "ack_note", "acked_at",
	"resolved_at", "incident_name", "created_at", "deleted_at",
}

var incidentCols = []string{
	"uid", "namespace", "name", "resource_version",
	"service", "env", "severity", "title", "signature",
	"state", "note",
	"opened_at", "mitigating_at", "resolved_at", "closed_at", "last_activity_at",
	"alert_count", "alert_refs", "triage_runs", "last_triage_at", "cooldown_until", "postmortem_ref",
	"created_at", "deleted_at",
}

// upsertSQL inserts a row or replaces it only when the incoming
// resourceVersion is newer: one statement, so two racing writers cannot
// interleave a read and a write.
func upsertSQL(table string, cols []string) string {
	ph := make([]string, len(cols))
	set := make([]string, 0, len(cols))
	for i, c := range cols {
		ph[i] = fmt.Sprintf("$%d", i+1)
		if c == "resource_version" {
			ph[i] += "::numeric"
		}
		if c != "uid" {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	set = append(set, "mirrored_at = now()")
	return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (uid) DO UPDATE SET %s WHERE %s.resource_version < EXCLUDED.resource_version",
		table, strings.Join(cols, ", "), strings.Join(ph, ", "), strings.Join(set, ", "), table)
}

var (
	upsertAlertSQL    = upsertSQL("alerts", alertCols)
	upsertIncidentSQL = upsertSQL("incidents", incidentCols)
)

// UpsertAlert writes the Alert's row unless a newer one is there already.
// It reports whether the row changed.
func (s *Store) UpsertAlert(ctx context.Context, a *v1.Alert) (bool, error) {
	args, err := alertArgs(a)
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, upsertAlertSQL, args...)
	if err != nil {
		return false, fmt.Errorf("failed to upsert the row of alert %s/%s: %w", a.Namespace, a.Name, err)
	}
	return tag.RowsAffected() > 0, nil
}

const insertEventSQL = `INSERT INTO incident_events (incident_uid, seq, namespace, incident_name, at, type, message, alert_ref, author)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (incident_uid, seq) DO NOTHING`

const insertTriageSQL = `INSERT INTO triage_runs (incident_uid, seq, namespace, incident_name, signature, service, started_at, message, alert_ref)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (incident_uid, seq) DO NOTHING`

// UpsertIncident writes the Incident's row and appends its timeline entries
// above afterSeq (each exactly once: the key is (incident_uid, seq)), with
// who wrote each (author), and one triage_runs row per TriageStarted entry,
// in one transaction. It
// returns the highest seq now in the database.
func (s *Store) UpsertIncident(ctx context.Context, in *v1.Incident, afterSeq int64) (int64, error) {
	args, err := incidentArgs(in)
	if err != nil {
		return 0, err
	}
	maxSeq := afterSeq
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, upsertIncidentSQL, args...); err != nil {
			return fmt.Errorf("failed to upsert the row of incident %s/%s: %w", in.Namespace, in.Name, err)
		}
		var b pgx.Batch
		for _, e := range in.Status.Timeline {
			if e.Seq <= afterSeq {
				continue
			}
			at := e.At.UTC()
			b.Queue(insertEventSQL, string(in.UID), e.Seq, in.Namespace, in.Name, at, string(e.Type), e.Message, e.AlertRef, e.Author)
			if e.Type == v1.TimelineTriageStarted {
				b.Queue(insertTriageSQL, string(in.UID), e.Seq, in.Namespace, in.Name, in.Spec.Signature, in.Spec.Service, at, e.Message, e.AlertRef)
			}
			maxSeq = max(maxSeq, e.Seq)
		}
		if b.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("failed to append the timeline of incident %s/%s: %w", in.Namespace, in.Name, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return maxSeq, nil
}

const insertEvaluationSQL = `INSERT INTO slo_evaluations (slo_uid, namespace, name, service, env, evaluated_at, latency_p95_ms, error_rate_percent, decision, reason, message)
VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8::numeric, $9, $10, $11) ON CONFLICT (slo_uid, evaluated_at) DO NOTHING`

const insertBypassSQL = `INSERT INTO gate_bypasses (slo_uid, namespace, name, service, env, until_at, reason, set_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (slo_uid, until_at, reason, set_by) DO NOTHING`

// RecordSLOPolicy writes the SLOPolicy's latest evaluation (one row per
// distinct lastEvaluatedAt) and its bypass (one row per distinct bypass).
// Re-recording the same status is a no-op.
func (s *Store) RecordSLOPolicy(ctx context.Context, p *v1.SLOPolicy) error {
	var b pgx.Batch
	st := &p.Status
	if at := ts(st.LastEvaluatedAt); at != nil {
		var lat, errRate *string
		if st.Observed != nil {
			lat, errRate = decimal(st.Observed.LatencyP95Ms), decimal(st.Observed.ErrorRatePercent)
		}
		var decision, reason, msg string
		if st.Gate != nil {
			decision, reason, msg = string(st.Gate.Decision), st.Gate.Reason, st.Gate.Message
		}
		b.Queue(insertEvaluationSQL, string(p.UID), p.Namespace, p.Name, p.Spec.Service, p.Spec.Env, *at, lat, errRate, decision, reason, msg)
	}
	if by := st.Bypass; by != nil && by.Until != nil && by.Reason != "" {
		b.Queue(insertBypassSQL, string(p.UID), p.Namespace, p.Name, p.Spec.Service, p.Spec.Env, by.Until.UTC(), by.Reason, by.By)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("failed to record SLOPolicy %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}
