// Package promtest starts a real, throwaway Prometheus server (Debian's
// prometheus package) for tests: a free loopback port, a temporary TSDB and
// a 1s scrape interval over the targets the test names.
package promtest

import (
	"context"
	"errors"
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

// Server is a running Prometheus.
type Server struct {
	cmd  *exec.Cmd
	dir  string
	addr string
	done chan struct{}
	err  error
}

// Binary finds the prometheus executable (PROMETHEUS_BIN overrides).
func Binary() (string, error) {
	if b := os.Getenv("PROMETHEUS_BIN"); b != "" {
		return b, nil
	}
	b, err := exec.LookPath("prometheus")
	if err != nil {
		return "", errors.New("prometheus not found: run hack/ensure-packages.sh (Debian package prometheus)")
	}
	return b, nil
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
	dir, err := os.MkdirTemp("", "promtest-")
	if err != nil {
		return nil, fmt.Errorf("failed to create the Prometheus directory: %w", err)
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
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, addr: addr, done: make(chan struct{})}
	// #nosec G204 -- the binary and arguments are the test's own.
	s.cmd = exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	log, err := os.Create(filepath.Join(dir, "prometheus.log")) // #nosec G304 -- our own temporary directory.
	if err != nil {
		return nil, fmt.Errorf("failed to create the Prometheus log: %w", err)
	}
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start prometheus: %w", err)
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
			out, _ := os.ReadFile(filepath.Join(s.dir, "prometheus.log"))
			return fmt.Errorf("prometheus exited (%v): %s", s.err, out)
		case <-ctx.Done():
			return fmt.Errorf("prometheus at %s not ready: %w", s.addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop ends Prometheus and removes its data. Safe to call twice.
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
