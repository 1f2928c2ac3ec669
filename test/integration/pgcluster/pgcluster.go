// Package pgcluster starts a throwaway PostgreSQL cluster from the installed
// server binaries (initdb + pg_ctl in a temporary directory, on a free
// loopback port) for tests and the local dev environment, and removes it
// afterwards. initdb refuses to run as root, so as root the cluster is run
// as the postgres user. Every connection needs a password (scram-sha-256),
// made at random for each cluster: a throwaway cluster on a shared machine
// must not trust every local user.
package pgcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Cluster is a running throwaway PostgreSQL.
type Cluster struct {
	Dir  string
	Port int
	// Password is the postgres superuser's.
	Password string
	opts     Options
	bin      string
	as       *user.User // nil: run as ourselves
}

// Options say how the server runs.
type Options struct {
	// Durable runs with fsync, synchronous_commit and full_page_writes on,
	// as a production database would: benchmarks and the "as shipped"
	// tests measure against it. Off (the default for tests), commits are
	// not flushed to disk, which is safe for a throwaway cluster (a halted
	// server still replays its WAL from the page cache) and much faster.
	Durable bool
	// MaxConnections is the server's max_connections (default 200).
	MaxConnections int
}

// defaultMaxConnections is enough for the suites' pools.
const defaultMaxConnections = 200

// DSN is the connection string of the alertbridge database, as the
// superuser.
func (c *Cluster) DSN() string { return c.DSNFor("postgres", c.Password, "alertbridge") }

// DSNFor is the connection string of database as user with password.
func (c *Cluster) DSNFor(user, password, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates another database, owned by the superuser.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return c.run(ctx, "createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", name)
}

// CreateRole creates a login role with a random password and no rights of
// its own, and returns the connection string of the alertbridge database
// as that role.
func (c *Cluster) CreateRole(ctx context.Context, name string) (string, error) {
	password, err := randomPassword()
	if err != nil {
		return "", err
	}
	// The name is the caller's constant; the password is hex.
	sql := fmt.Sprintf(`CREATE ROLE %q LOGIN PASSWORD '%s'`, name, password)
	if err := c.run(ctx, "psql", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-d", "alertbridge",
		"-v", "ON_ERROR_STOP=1", "-c", sql); err != nil {
		return "", err
	}
	return c.DSNFor(name, password, "alertbridge"), nil
}

func randomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// BinDir finds the PostgreSQL server binaries (pg_ctl, initdb).
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries found: install the postgresql package (hack/test.sh does)")
}

// Start initialises and starts a cluster under a new temporary directory,
// with the fast settings for tests.
func Start(ctx context.Context) (*Cluster, error) { return StartWith(ctx, Options{}) }

// StartWith is Start with options.
func StartWith(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "alertbridge-pg-")
	if err != nil {
		return nil, err
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = defaultMaxConnections
	}
	c := &Cluster{Dir: dir, opts: opts, bin: bin}
	if c.Password, err = randomPassword(); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if c.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(c.as.Uid)
		gid, _ := strconv.Atoi(c.as.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if c.as != nil {
		uid, _ := strconv.Atoi(c.as.Uid)
		gid, _ := strconv.Atoi(c.as.Gid)
		if err := os.Chown(pwfile, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	err = c.run(ctx, "initdb", "-D", c.data(), "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pwfile, "--encoding=UTF8", "--no-sync")
	_ = os.Remove(pwfile)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Restart(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.CreateDatabase(ctx, "alertbridge"); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) data() string { return filepath.Join(c.Dir, "data") }

// Restart starts the server (again), on the same port once it has one.
func (c *Cluster) Restart(ctx context.Context) error {
	if c.Port == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.Port = port
	}
	// fsync=off is safe for a throwaway cluster: a halted server still
	// replays its WAL from the page cache, so no committed row is lost.
	durability := "-c fsync=off -c full_page_writes=off"
	if c.opts.Durable {
		durability = "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 %s -c max_connections=%d", c.Port, c.Dir, durability, c.opts.MaxConnections)
	return c.run(ctx, "pg_ctl", "-D", c.data(), "-l", filepath.Join(c.Dir, "server.log"), "-o", opts, "-w", "-t", "60", "start")
}

// Halt stops the server immediately, as a crash or an outage would, keeping
// its data for Restart.
func (c *Cluster) Halt(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
}

// Stop stops the server and removes everything it wrote.
func (c *Cluster) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.run(ctx, "pg_ctl", "-D", c.data(), "-m", "fast", "-w", "stop")
	_ = os.RemoveAll(c.Dir)
}

// Log returns the server log, for test failure output.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	return string(b)
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	if _, err := os.Stat(path); err != nil {
		if p, lerr := exec.LookPath(name); lerr == nil {
			path = p
		}
	}
	// The binaries are the machine's PostgreSQL and every argument is built
	// in this file.
	var cmd *exec.Cmd
	if c.as != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.as.Username, "--", path}, args...)...) //nolint:gosec // see above
	} else {
		cmd = exec.CommandContext(ctx, path, args...) //nolint:gosec // see above
	}
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "PGPASSWORD="+c.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
