package pgcluster

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartRestartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	exec := func() error {
		conn, err := pgx.Connect(ctx, c.DSN())
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(ctx) }()
		_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS t (v int); INSERT INTO t VALUES (1)")
		return err
	}
	if err := exec(); err != nil {
		t.Fatalf("first connection: %v\n%s", err, c.Log())
	}
	if err := c.Halt(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec(); err == nil {
		t.Fatal("a halted cluster accepted a connection")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	conn, err := pgx.Connect(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows survived the restart: n=%d err=%v", n, err)
	}
}

// TestDurable: a durable cluster flushes every commit, as production does.
func TestDurable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartWith(ctx, Options{Durable: true, MaxConnections: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	conn, err := pgx.Connect(ctx, c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	for setting, want := range map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "max_connections": "300"} {
		var got string
		if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %s, want %s", setting, got, want)
		}
	}
}
