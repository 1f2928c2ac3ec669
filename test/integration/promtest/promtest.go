// Package promtest starts a real, throwaway Prometheus server (Debian's
// prometheus package) for tests: a free loopback port, a temporary TSDB and
// a 1s scrape interval over the targets the test names; and, the same way,
// a real Alertmanager (Debian's prometheus-alertmanager).
package promtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ScrapeInterval is how often the server scrapes its targets.
const ScrapeInterval = time.Second

const readyTimeout = 60 * time.Second

// Server is a running Prometheus or Alertmanager.
type Server struct {
	name string
	cmd  *exec.Cmd
	dir  string
	addr string
	done chan struct{}
	err  error
}

// Binary finds the prometheus executable (PROMETHEUS_BIN overrides).
func Binary() (string, error) { return binary("PROMETHEUS_BIN", "prometheus") }

// binary finds the executable of Debian's package name, or the one the
// environment variable env names.
func binary(env, name string) (string, error) {
	if b := os.Getenv(env); b != "" {
		return b, nil
	}
	b, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: run hack/ensure-packages.sh (Debian package %s)", name, name)
	}
	return b, nil
}

// workspace is a new temporary directory for a server and a free loopback
// address for it to listen on.
func workspace(name string) (dir, addr string, err error) {
	if dir, err = os.MkdirTemp("", name+"-"); err != nil {
		return "", "", fmt.Errorf("failed to create the %s directory: %w", name, err)
	}
	if addr, err = freeAddr(); err != nil {
		_ = os.RemoveAll(dir)
		return "", "", err
	}
	return dir, addr, nil
}

// Start runs Prometheus scraping targets (host:port) every ScrapeInterval
// and returns once it answers /-/ready.
func Start(ctx context.Context, targets ...string) (*Server, error) {
	return StartWithRules(ctx, "", targets...)
}

// StartWithRules is Start with a rule file (Prometheus rule groups YAML, or
// "" for none) evaluated every ScrapeInterval.
func StartWithRules(ctx context.Context, rules string, targets ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, addr, err := workspace("prometheus")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: test
    scrape_interval: %[1]s
    scrape_timeout: 900ms
    static_configs:
      - targets: ['%[2]s']
`, ScrapeInterval, strings.Join(targets, "', '"))
	if rules != "" {
		rulesFile := filepath.Join(dir, "rules.yml")
		if err := os.WriteFile(rulesFile, []byte(rules), 0o600); err != nil {
			return nil, fmt.Errorf("failed to write the Prometheus rules: %w", err)
		}
		cfg += "rule_files: ['" + rulesFile + "']\n"
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the Prometheus config: %w", err)
	}
	return start(ctx, "prometheus", dir, addr, bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
}

// AlertmanagerBinary finds the prometheus-alertmanager executable
// (ALERTMANAGER_BIN overrides).
func AlertmanagerBinary() (string, error) {
	return binary("ALERTMANAGER_BIN", "prometheus-alertmanager")
}

// StartAlertmanager runs Alertmanager with conf (alertmanager.yml), alone
// (no cluster peers), and returns once it answers /-/ready.
func StartAlertmanager(ctx context.Context, conf string) (*Server, error) {
	bin, err := AlertmanagerBinary()
	if err != nil {
		return nil, err
	}
	dir, addr, err := workspace("alertmanager")
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgFile, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the Alertmanager config: %w", err)
	}
	return start(ctx, "alertmanager", dir, addr, bin,
		"--config.file="+cfgFile,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	)
}

// start runs bin with args, its output in dir's name.log, and waits until
// it answers /-/ready on addr.
func start(ctx context.Context, name, dir, addr, bin string, args ...string) (*Server, error) {
	s := &Server{name: name, dir: dir, addr: addr, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...) // #nosec G204 -- the binary and arguments are the test's own.
	log, err := os.Create(s.logFile()) // #nosec G304 -- our own temporary directory.
	if err != nil {
		return nil, fmt.Errorf("failed to create the %s log: %w", name, err)
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	cmd := s.cmd
	go func() {
		s.err = cmd.Wait()
		_ = log.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) logFile() string { return filepath.Join(s.dir, s.name+".log") }

// Log is what the server printed so far, for a failed test to show.
func (s *Server) Log() string {
	out, _ := os.ReadFile(s.logFile())
	return string(out)
}

// URL is the API root, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return "http://" + s.addr }

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/-/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s exited (%v): %s", s.name, s.err, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("%s at %s not ready: %w", s.name, s.addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop ends the server and removes its data. Safe to call twice.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		s.cmd = nil
	}
	_ = os.RemoveAll(s.dir)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("failed to find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}
