package mirror

import (
	"context"
	"fmt"
	"time"
)

// DefaultPruneBatch is how many rows one retention DELETE removes, so a
// large backlog never holds long locks or bloats one transaction.
const DefaultPruneBatch = 1000

// Retention is how long rows stay, per namespace; namespaces not listed get
// Default.
type Retention struct {
	Default     time.Duration
	ByNamespace map[string]time.Duration
}

// pruneTarget says which rows of a table are old: those written before the
// cutoff that describe a finished object (terminal, or gone from the
// cluster), or, for append-only tables, those recorded before it.
type pruneTarget struct {
	table, key, where string
}

var pruneTargets = []pruneTarget{
	{"alerts", "uid", "mirrored_at < $1 AND (deleted_at IS NOT NULL OR phase IN ('Acked', 'Deduplicated'))"},
	// incident_events and triage_runs go with their incident (ON DELETE CASCADE).
	{"incidents", "uid", "mirrored_at < $1 AND (deleted_at IS NOT NULL OR state = 'Closed')"},
	{"slo_evaluations", "ctid", "evaluated_at < $1"},
	{"gate_bypasses", "ctid", "recorded_at < $1"},
}

// Prune deletes rows older than the retention, batch rows per statement,
// and returns how many it deleted.
func (s *Store) Prune(ctx context.Context, r Retention, now time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = DefaultPruneBatch
	}
	var total int64
	listed := make([]string, 0, len(r.ByNamespace))
	for ns, d := range r.ByNamespace {
		listed = append(listed, ns)
		n, err := s.prune(ctx, "namespace = $2", ns, now.Add(-d), batch)
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := s.prune(ctx, "NOT (namespace = ANY($2))", listed, now.Add(-r.Default), batch)
	return total + n, err
}

func (s *Store) prune(ctx context.Context, nsCond string, nsArg any, cutoff time.Time, batch int) (int64, error) {
	var total int64
	for _, t := range pruneTargets {
		q := fmt.Sprintf("DELETE FROM %[1]s WHERE %[2]s IN (SELECT %[2]s FROM %[1]s WHERE %[3]s AND %[4]s LIMIT %[5]d)",
			t.table, t.key, t.where, nsCond, batch)
		for {
			tag, err := s.pool.Exec(ctx, q, cutoff, nsArg)
			if err != nil {
				return total, fmt.Errorf("failed to prune %s: %w", t.table, err)
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < int64(batch) {
				break
			}
		}
	}
	return total, nil
}
