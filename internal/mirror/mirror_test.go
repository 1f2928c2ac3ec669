package mirror_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

var pg *pgcluster.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var err error
	pg, err = pgcluster.Start(ctx)
	cancel()
	if err != nil {
		panic(err)
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// freshDB creates an empty database for one test.
func freshDB(t *testing.T, ctx context.Context) string {
	t.Helper()
	admin, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close(ctx) }()
	name := "t_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(pg.DSN(), "/alertbridge?", "/"+name+"?", 1)
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func tables(t *testing.T, ctx context.Context, c *pgx.Conn) []string {
	t.Helper()
	rows, err := c.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestMigrateIdempotentAndDryRun(t *testing.T) {
	ctx := context.Background()
	c := connect(t, ctx, freshDB(t, ctx))

	var out bytes.Buffer
	would, err := mirror.Migrate(ctx, c, mirror.MigrateOptions{DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(would) == 0 || !strings.Contains(out.String(), "CREATE TABLE alerts") {
		t.Fatalf("dry run should print the pending SQL; got versions %v and\n%s", would, out.String())
	}
	if got := tables(t, ctx, c); len(got) != 0 {
		t.Fatalf("dry run created tables: %v", got)
	}

	applied, err := mirror.Migrate(ctx, c, mirror.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(would) {
		t.Fatalf("applied %v, the dry run announced %v", applied, would)
	}
	want := []string{"alertbridge_schema_migrations", "alerts", "gate_bypasses", "incident_events", "incidents", "slo_evaluations", "triage_runs"}
	if got := tables(t, ctx, c); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("tables = %v, want %v", got, want)
	}
	var appliedAt time.Time
	if err := c.QueryRow(ctx, "SELECT max(applied_at) FROM "+mirror.MigrationsTable).Scan(&appliedAt); err != nil {
		t.Fatal(err)
	}

	again, err := mirror.Migrate(ctx, c, mirror.MigrateOptions{})
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %v (err %v); want a no-op", again, err)
	}
	var n int
	var appliedAt2 time.Time
	if err := c.QueryRow(ctx, "SELECT count(*), max(applied_at) FROM "+mirror.MigrationsTable).Scan(&n, &appliedAt2); err != nil {
		t.Fatal(err)
	}
	if n != len(applied) || !appliedAt2.Equal(appliedAt) {
		t.Fatalf("second migrate changed the migrations table: %d rows, applied_at %v → %v", n, appliedAt, appliedAt2)
	}
	out.Reset()
	if would, err := mirror.Migrate(ctx, c, mirror.MigrateOptions{DryRun: true, Out: &out}); err != nil || len(would) != 0 {
		t.Fatalf("dry run on a current schema: %v, %v", would, err)
	}
	if !strings.Contains(out.String(), "nothing to do") {
		t.Fatalf("dry run on a current schema printed %q", out.String())
	}
}

func TestPendingMigrations(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t, ctx)
	s, err := mirror.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := mirror.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	pending, err := s.PendingMigrations(ctx)
	if err != nil || len(pending) != len(all) {
		t.Fatalf("an empty database: %d pending (err %v), want all %d", len(pending), err, len(all))
	}
	if got := tables(t, ctx, connect(t, ctx, dsn)); len(got) != 0 {
		t.Fatalf("PendingMigrations created tables: %v", got)
	}
	if _, err := s.Migrate(ctx, mirror.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if pending, err := s.PendingMigrations(ctx); err != nil || len(pending) != 0 {
		t.Fatalf("a migrated database: %v pending (err %v), want none", pending, err)
	}
}

func TestMigrateRefusesAnEditedMigration(t *testing.T) {
	ctx := context.Background()
	c := connect(t, ctx, freshDB(t, ctx))
	if _, err := mirror.Migrate(ctx, c, mirror.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "UPDATE "+mirror.MigrationsTable+" SET checksum = 'x' WHERE version = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.Migrate(ctx, c, mirror.MigrateOptions{}); err == nil || !strings.Contains(err.Error(), "modified") {
		t.Fatalf("want a checksum error, got %v", err)
	}
}

func openStore(t *testing.T, ctx context.Context) (*mirror.Store, *pgx.Conn) {
	t.Helper()
	dsn := freshDB(t, ctx)
	s, err := mirror.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(ctx, mirror.MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	return s, connect(t, ctx, dsn)
}

// version is the Alert prod/a (always one UID) at resourceVersion rv, as
// the mirror is handed it.
func version(rv string) *testbuild.AlertWrapper {
	return testbuild.MakeAlert("a", "prod").UID("11111111-1111-1111-1111-111111111111").ResourceVersion(rv).Created(time.Now()).
		Env("prod").Severity(v1.SeverityP2).Title("t").Occurrences(1)
}

func TestUpsertNeverMovesBackwards(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t, ctx)
	rowPhase := func() (string, string) {
		var phase, rv string
		if err := c.QueryRow(ctx, "SELECT phase, resource_version::text FROM alerts").Scan(&phase, &rv); err != nil {
			t.Fatal(err)
		}
		return phase, rv
	}
	for _, step := range []struct {
		rv          string
		phase       v1.AlertPhase
		wantChanged bool
		wantPhase   string
		wantRV      string
	}{
		{"9", v1.AlertNew, true, "New", "9"},
		{"100", v1.AlertAcked, true, "Acked", "100"},       // 100 > 9 although "100" < "9" as text
		{"42", v1.AlertProcessing, false, "Acked", "100"},  // late, out-of-order reconcile
		{"100", v1.AlertProcessing, false, "Acked", "100"}, // replay of the same version
	} {
		changed, err := s.UpsertAlert(ctx, version(step.rv).Phase(step.phase).Obj())
		if err != nil {
			t.Fatal(err)
		}
		phase, rv := rowPhase()
		if changed != step.wantChanged || phase != step.wantPhase || rv != step.wantRV {
			t.Fatalf("after rv %s: changed=%v row=(%s,%s), want changed=%v row=(%s,%s)", step.rv, changed, phase, rv, step.wantChanged, step.wantPhase, step.wantRV)
		}
	}
	if _, err := s.UpsertAlert(ctx, version("01").Phase(v1.AlertNew).Obj()); err == nil {
		t.Fatal("a malformed resourceVersion was accepted")
	}
}

func TestIncidentTimelineExactlyOnce(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t, ctx)
	now := metav1.NowMicro()
	in := testbuild.MakeIncident("inc", "prod").UID("22222222-2222-2222-2222-222222222222").ResourceVersion("5").Created(time.Now()).
		Env("prod").Severity(v1.SeverityP1).Title("t").Signature("gateway/prod/latency").State(v1.IncidentOpen).
		Timeline(v1.TimelineEntry{Seq: 1, At: now, Type: v1.TimelineOpened}, v1.TimelineEntry{Seq: 2, At: now, Type: v1.TimelineTriageStarted, AlertRef: "a"}).
		Obj()
	seq, err := s.UpsertIncident(ctx, in, 0)
	if err != nil || seq != 2 {
		t.Fatalf("seq=%d err=%v", seq, err)
	}
	// A replay from seq 0 and a newer state with a trimmed timeline.
	if _, err := s.UpsertIncident(ctx, in, 0); err != nil {
		t.Fatal(err)
	}
	in.ResourceVersion = "6"
	in.Status.Timeline = []v1.TimelineEntry{{Seq: 2, At: now, Type: v1.TimelineTriageStarted},
		{Seq: 3, At: now, Type: v1.TimelineNote, Message: "n", Author: "alice@example.com"}}
	if seq, err = s.UpsertIncident(ctx, in, 1); err != nil || seq != 3 {
		t.Fatalf("seq=%d err=%v", seq, err)
	}
	var events, distinct, runs int
	if err := c.QueryRow(ctx, "SELECT count(*), count(DISTINCT seq), (SELECT count(*) FROM triage_runs) FROM incident_events").Scan(&events, &distinct, &runs); err != nil {
		t.Fatal(err)
	}
	if events != 3 || distinct != 3 || runs != 1 {
		t.Fatalf("events=%d distinct=%d triage runs=%d, want 3, 3, 1", events, distinct, runs)
	}
	var authors []string
	rows, err := c.Query(ctx, "SELECT author FROM incident_events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	if authors, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || strings.Join(authors, ",") != ",,alice@example.com" {
		t.Fatalf("authors %q (err %v): the note's author, none for the operator's entries", authors, err)
	}
}

// TestTimelineAuthorMigration: a database at the previous schema, with
// entries mirrored then, takes the author column by Migrate alone; the old
// entries keep their rows (no author), new ones record theirs, and the
// migration's SQL is harmless to run again.
func TestTimelineAuthorMigration(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t, ctx)
	c := connect(t, ctx, dsn)
	all, err := mirror.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	// The previous schema, as Migrate left it before the author column.
	first := all[0]
	for _, sql := range []string{
		first.SQL,
		"CREATE TABLE " + mirror.MigrationsTable + " (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "INSERT INTO "+mirror.MigrationsTable+" (version, name, checksum) VALUES ($1, $2, $3)", first.Version, first.Name, first.Checksum); err != nil {
		t.Fatal(err)
	}
	const uid = "33333333-3333-3333-3333-333333333333"
	if _, err := c.Exec(ctx, `INSERT INTO incidents (uid, namespace, name, resource_version, service, env, severity, title, state, created_at)
		VALUES ($1, 'prod', 'inc', 5, 'gateway', 'prod', 'P1', 't', 'Open', now())`, uid); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO incident_events (incident_uid, seq, namespace, incident_name, at, type, message)
		VALUES ($1, 1, 'prod', 'inc', now(), 'Note', 'alice: from before')`, uid); err != nil {
		t.Fatal(err)
	}

	s, err := mirror.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	applied, err := s.Migrate(ctx, mirror.MigrateOptions{})
	if err != nil || !slices.Equal(applied, []int{2}) {
		t.Fatalf("from the previous schema: applied %v (err %v), want [2]", applied, err)
	}
	if _, err := c.Exec(ctx, all[1].SQL); err != nil {
		t.Fatalf("the migration run again: %v", err)
	}
	now := metav1.NowMicro()
	in := testbuild.MakeIncident("inc", "prod").UID(uid).ResourceVersion("6").Created(time.Now()).
		Env("prod").Severity(v1.SeverityP1).Title("t").State(v1.IncidentOpen).
		TimelineSeq(2).Timeline(v1.TimelineEntry{Seq: 2, At: now, Type: v1.TimelineNote, Message: "after", Author: "alice@example.com"}).Obj()
	if _, err := s.UpsertIncident(ctx, in, 1); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "SELECT message || '|' || author FROM incident_events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(got, ",") != "alice: from before|,after|alice@example.com" {
		t.Fatalf("events %q (err %v)", got, err)
	}
}

func TestSLOPolicyRowsOncePerEvaluationAndBypass(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t, ctx)
	at := metav1.NewTime(time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC))
	until := metav1.NewTime(at.Add(time.Hour))
	p := testbuild.MakeSLOPolicy("gw", "prod").UID("33333333-3333-3333-3333-333333333333").Env("prod").
		LastEvaluated(at.Time).Observed("312.5", "garbage").Gate(v1.DecisionBlock, v1.ReasonLatencyP95Exceeded).
		Bypass(&v1.BypassStatus{Active: true, Until: &until, Reason: "hotfix", By: "alice"}).Obj()
	for range 3 {
		if err := s.RecordSLOPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	later := metav1.NewTime(at.Add(time.Minute))
	p.Status.LastEvaluatedAt = &later
	if err := s.RecordSLOPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	var evals, bypasses int
	var lat *string
	var errRate *string
	if err := c.QueryRow(ctx, "SELECT (SELECT count(*) FROM slo_evaluations), (SELECT count(*) FROM gate_bypasses), (SELECT latency_p95_ms::text FROM slo_evaluations ORDER BY evaluated_at LIMIT 1), (SELECT error_rate_percent::text FROM slo_evaluations LIMIT 1)").Scan(&evals, &bypasses, &lat, &errRate); err != nil {
		t.Fatal(err)
	}
	if evals != 2 || bypasses != 1 || lat == nil || *lat != "312.5" || errRate != nil {
		t.Fatalf("evaluations=%d bypasses=%d latency=%v errorRate=%v", evals, bypasses, lat, errRate)
	}
}

func TestPruneDeletesOldFinishedRowsInBatches(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t, ctx)
	// 25 acked alerts in ns "old", 5 live ones, 10 acked in "kept".
	for i := range 40 {
		a := version("1").UID(strings.Repeat("0", 8) + "-0000-0000-0000-" + leftPad(i)).Phase(v1.AlertAcked).Obj()
		switch {
		case i < 25:
			a.Namespace = "old"
		case i < 30:
			a.Namespace, a.Status.Phase = "old", v1.AlertNew
		default:
			a.Namespace = "kept"
		}
		if _, err := s.UpsertAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "UPDATE alerts SET mirrored_at = now() - interval '40 days'"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, mirror.Retention{Default: 30 * 24 * time.Hour, ByNamespace: map[string]time.Duration{"kept": 90 * 24 * time.Hour}}, time.Now(), 7)
	if err != nil {
		t.Fatal(err)
	}
	var left, leftOld int
	if err := c.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE namespace = 'old') FROM alerts").Scan(&left, &leftOld); err != nil {
		t.Fatal(err)
	}
	if n != 25 || left != 15 || leftOld != 5 {
		t.Fatalf("pruned %d, left %d (%d in old); want 25 pruned, 15 left, 5 live ones in old", n, left, leftOld)
	}
}

func leftPad(i int) string { return fmt.Sprintf("%012d", i) }

func TestResolveDSN(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	if dsn, _ := mirror.ResolveDSN("", get); dsn != "" {
		t.Fatalf("no DSN anywhere gave %q", dsn)
	}
	env["DATABASE_URL"] = "db"
	if dsn, from := mirror.ResolveDSN("", get); dsn != "db" || from != "DATABASE_URL" {
		t.Fatalf("got %q from %s", dsn, from)
	}
	env["ALERT_DATABASE_URL"] = "alert"
	if dsn, _ := mirror.ResolveDSN("", get); dsn != "alert" {
		t.Fatalf("ALERT_DATABASE_URL should win, got %q", dsn)
	}
	if dsn, _ := mirror.ResolveDSN("flag", get); dsn != "flag" {
		t.Fatalf("the flag should win, got %q", dsn)
	}
}
