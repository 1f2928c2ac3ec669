package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
)

// schemaState is everything migrate may change: the tables and the
// migrations it recorded, with their times.
func schemaState(t *testing.T, ctx context.Context, dsn string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var state string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') FROM pg_tables WHERE schemaname = 'public'`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", mirror.MigrationsTable).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		var applied string
		if err := conn.QueryRow(ctx, `SELECT string_agg(version || '@' || applied_at::text, ',' ORDER BY version) FROM `+mirror.MigrationsTable).Scan(&applied); err != nil {
			t.Fatal(err)
		}
		state += " | " + applied
	}
	return state
}

func TestMigrateTwiceIsANoOpAndDryRunChangesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgcluster.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	dsn := pg.DSN()
	t.Setenv("ALERT_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")

	empty := schemaState(t, ctx, dsn)
	out, code := runMigrate(t, "migrate", "--dsn", dsn, "--dry-run")
	if code != 0 || !strings.Contains(out, "CREATE TABLE alerts") {
		t.Fatalf("dry run: exit %d, output:\n%s", code, out)
	}
	if got := schemaState(t, ctx, dsn); got != empty {
		t.Fatalf("--dry-run changed the database: %q → %q", empty, got)
	}

	// The DSN from the environment, the fallback after ALERT_DATABASE_URL.
	t.Setenv("DATABASE_URL", dsn)
	out, code = runMigrate(t, "migrate")
	if code != 0 || !strings.Contains(out, "applied 0001_tables") {
		t.Fatalf("first migrate: exit %d, output:\n%s", code, out)
	}
	migrated := schemaState(t, ctx, dsn)
	if !strings.Contains(migrated, "alerts,gate_bypasses,incident_events,incidents,slo_evaluations,triage_runs") {
		t.Fatalf("tables after migrate: %s", migrated)
	}

	out, code = runMigrate(t, "migrate")
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second migrate: exit %d, output:\n%s", code, out)
	}
	if got := schemaState(t, ctx, dsn); got != migrated {
		t.Fatalf("second migrate changed the database: %q → %q", migrated, got)
	}
	out, code = runMigrate(t, "migrate", "--dry-run")
	if code != 0 || strings.Contains(out, "CREATE TABLE") {
		t.Fatalf("dry run on a current schema: exit %d, output:\n%s", code, out)
	}
	if got := schemaState(t, ctx, dsn); got != migrated {
		t.Fatalf("--dry-run changed a current database: %q → %q", migrated, got)
	}
}

func TestMigrateNeedsADatabase(t *testing.T) {
	t.Setenv("ALERT_DATABASE_URL", "")
	t.Setenv("DATABASE_URL", "")
	if out, code := runMigrate(t, "migrate"); code != cli.ExitUsage || !strings.Contains(out, "ALERT_DATABASE_URL") {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if _, code := runMigrate(t, "migrate", "--dsn", "postgres://postgres@127.0.0.1:1/x?connect_timeout=2"); code != cli.ExitUnreachable {
		t.Fatalf("unreachable database: exit %d, want %d", code, cli.ExitUnreachable)
	}
}

func runMigrate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root, app := cli.NewRoot()
	var out bytes.Buffer
	app.Out = &out
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		out.WriteString("error: " + err.Error())
	}
	return out.String(), cli.ExitCode(err)
}
