// Package mirror is the PostgreSQL side of alertbridge: the versioned schema
// and its migrations, the conversion of Alerts, Incidents and SLOPolicies
// into rows, idempotent upserts guarded by resourceVersion order, and the
// batched retention of old rows. It knows nothing of reconcilers.
package mirror

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// MigrationsTable records the applied schema versions.
const MigrationsTable = "alertbridge_schema_migrations"

// advisoryLockKey serialises migrations across processes (two operator
// replicas starting with --migrate, or the CLI beside a running operator).
// It is the first 8 bytes of sha256("alertbridge-migrate").
const advisoryLockKey int64 = 0x2b1f5c7a9e3d4061

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS ` + MigrationsTable + ` (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);`

// Migration is one versioned schema change.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// Migrations returns the embedded migrations, oldest first. Files are named
// NNNN_name.sql.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("failed to read the embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: want NNNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: version %q is not a positive number", e.Name(), num)
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("failed to read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: name, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("two migrations have version %d", out[i].Version)
		}
	}
	return out, nil
}

// MigrateOptions tune Migrate.
type MigrateOptions struct {
	// DryRun prints the SQL that would run to Out and changes nothing.
	DryRun bool
	// Out receives the dry-run SQL and one line per applied migration; nil
	// discards it.
	Out io.Writer
}

// Migrate applies the pending migrations in one transaction under an
// advisory lock and returns the versions it applied (or, in a dry run,
// would apply). Re-running it is a no-op. A migration whose embedded SQL no
// longer matches the checksum recorded when it was applied is an error:
// applied migrations are never edited, a new one is added instead.
func Migrate(ctx context.Context, conn *pgx.Conn, o MigrateOptions) ([]int, error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return dryRun(ctx, conn, all, out)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to begin the migration transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryLockKey); err != nil {
		return nil, fmt.Errorf("failed to take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", MigrationsTable, err)
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return nil, err
	}
	pending, err := pendingOf(all, applied)
	if err != nil {
		return nil, err
	}
	var done []int
	for _, m := range pending {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("failed to apply migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+MigrationsTable+" (version, name, checksum) VALUES ($1, $2, $3)",
			m.Version, m.Name, m.Checksum); err != nil {
			return nil, fmt.Errorf("failed to record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		done = append(done, m.Version)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("failed to commit the migrations: %w", err)
	}
	for _, m := range pending {
		_, _ = fmt.Fprintf(out, "applied %04d_%s\n", m.Version, m.Name)
	}
	return done, nil
}

func dryRun(ctx context.Context, conn *pgx.Conn, all []Migration, out io.Writer) ([]int, error) {
	applied := map[int]string{}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", MigrationsTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("failed to look for %s: %w", MigrationsTable, err)
	}
	if exists {
		var err error
		if applied, err = appliedVersions(ctx, conn); err != nil {
			return nil, err
		}
	} else {
		_, _ = fmt.Fprintf(out, "-- create the migrations table\n%s\n\n", createMigrationsTable)
	}
	pending, err := pendingOf(all, applied)
	if err != nil {
		return nil, err
	}
	var versions []int
	for _, m := range pending {
		_, _ = fmt.Fprintf(out, "-- migration %04d_%s\n%s\n", m.Version, m.Name, m.SQL)
		versions = append(versions, m.Version)
	}
	if len(pending) == 0 {
		_, _ = fmt.Fprintln(out, "-- the schema is current; nothing to do")
	}
	return versions, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func appliedVersions(ctx context.Context, q querier) (map[int]string, error) {
	rows, err := q.Query(ctx, "SELECT version, checksum FROM "+MigrationsTable)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", MigrationsTable, err)
	}
	applied := map[int]string{}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", MigrationsTable, err)
		}
		applied[v] = sum
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", MigrationsTable, err)
	}
	return applied, nil
}

// ErrChecksum reports an applied migration whose SQL was edited since.
var ErrChecksum = errors.New("an applied migration was modified")

func pendingOf(all []Migration, applied map[int]string) ([]Migration, error) {
	var pending []Migration
	for _, m := range all {
		sum, ok := applied[m.Version]
		switch {
		case !ok:
			pending = append(pending, m)
		case sum != m.Checksum:
			return nil, fmt.Errorf("%w: %04d_%s (recorded checksum %s, embedded %s)", ErrChecksum, m.Version, m.Name, sum, m.Checksum)
		}
	}
	return pending, nil
}

// GrantRead lets role read every table of the mirror, those migrations add
// later included (default privileges of the user that migrates), and
// nothing more: the HTTP API reads history with such a role, so that the
// process open to the network cannot rewrite what the mirror recorded. The
// role must exist; granting again is a no-op.
func GrantRead(ctx context.Context, conn *pgx.Conn, role string) error {
	if role == "" {
		return errors.New("no role to grant reading to")
	}
	id := pgx.Identifier{role}.Sanitize()
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("failed to read the current schema: %w", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	for _, stmt := range []string{
		"GRANT USAGE ON SCHEMA " + s + " TO " + id,
		"GRANT SELECT ON ALL TABLES IN SCHEMA " + s + " TO " + id,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + s + " GRANT SELECT ON TABLES TO " + id,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("failed to let role %s read the mirror (%s): %w", role, stmt, err)
		}
	}
	return nil
}
