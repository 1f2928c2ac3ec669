package shipped

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Faults a chaos run injects into the control plane and the database.
// envtest's own Stop removes the data and certificate directories (it is
// made to tear down, not to restart), so a component is stopped here by
// signalling its process and started again from the very command line it
// ran with: same ports, same certificates, same etcd data directory.

// ControlComponent is a process of the control plane.
type ControlComponent string

// The control plane's processes.
const (
	KubeAPIServer ControlComponent = "kube-apiserver"
	Etcd          ControlComponent = "etcd"
)

// controlProcs are control plane processes started again by StartControl;
// Stop ends them before envtest removes their directories.
type controlProcs struct {
	mu    sync.Mutex
	procs map[ControlComponent]*controlProc
}

type controlProc struct {
	argv []string
	env  []string
	// cmd is our restart, nil while envtest's own process runs.
	cmd  *exec.Cmd
	done chan struct{}
}

// StopControl stops component with sig (SIGTERM: a graceful stop; SIGKILL:
// a crash) and waits until it exited. StartControl starts it again.
func (e *Env) StopControl(c ControlComponent, sig syscall.Signal) error {
	e.control.mu.Lock()
	defer e.control.mu.Unlock()
	if e.control.procs == nil {
		e.control.procs = map[ControlComponent]*controlProc{}
	}
	p := e.control.procs[c]
	var pid int
	if p != nil && p.cmd != nil {
		pid = p.cmd.Process.Pid
	} else {
		var err error
		if pid, err = childProcess(string(c)); err != nil {
			return err
		}
		argv, env, err := commandOf(pid)
		if err != nil {
			return err
		}
		p = &controlProc{argv: argv, env: env}
		e.control.procs[c] = p
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("failed to signal %s (pid %d): %w", c, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for processAlive(pid, p) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(10 * time.Second)
		}
		time.Sleep(20 * time.Millisecond) // polling a process that has no exit channel we own
	}
	return nil
}

// processAlive says whether pid runs: our restart's channel when it is
// ours, else /proc (envtest reaps its own child).
func processAlive(pid int, p *controlProc) bool {
	if p.cmd != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// StartControl starts a component StopControl stopped, with its command
// line, and waits until it answers its health check.
func (e *Env) StartControl(ctx context.Context, c ControlComponent) error {
	e.control.mu.Lock()
	p := e.control.procs[c]
	if p == nil {
		e.control.mu.Unlock()
		return fmt.Errorf("%s was not stopped", c)
	}
	log, err := os.OpenFile(filepath.Join(e.Dir, string(c)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.control.mu.Unlock()
		return err
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...) // #nosec G204 -- the command line envtest started it with
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		e.control.mu.Unlock()
		_ = log.Close()
		return fmt.Errorf("failed to start %s again: %w", c, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	e.control.mu.Unlock()
	return e.waitHealthy(ctx, c, done)
}

func (e *Env) waitHealthy(ctx context.Context, c ControlComponent, done <-chan struct{}) error {
	var probe func(context.Context) error
	switch c {
	case Etcd:
		u := e.Control.ControlPlane.Etcd.URL.String() + "/health"
		probe = func(ctx context.Context) error { return getOK(ctx, http.DefaultClient, u) }
	case KubeAPIServer:
		probe = func(ctx context.Context) error {
			_, err := e.APIServerRequests(ctx)
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err := probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting again (log: %s)", c, filepath.Join(e.Dir, string(c)+".log"))
		case <-ctx.Done():
			return fmt.Errorf("%s did not become healthy again: %w", c, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func getOK(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// stopControl ends our restarts of control plane processes (envtest's
// Stop only knows its own).
func (e *Env) stopControl() {
	e.control.mu.Lock()
	defer e.control.mu.Unlock()
	// The API server first, as envtest stops them.
	for _, c := range []ControlComponent{KubeAPIServer, Etcd} {
		p := e.control.procs[c]
		if p == nil || p.cmd == nil {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// childProcess finds the one running child of this process named name.
func childProcess(name string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	var found []int
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) < 2 || s[open+1:closing] != name || f[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("found %d running %s children of this process, want one", len(found), name)
	}
	return found[0], nil
}

// commandOf reads a process's command line and environment.
func commandOf(pid int) (argv, env []string, err error) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, nil, err
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, nil, err
	}
	split := func(b []byte) []string {
		var out []string
		for part := range bytes.SplitSeq(bytes.TrimRight(b, "\x00"), []byte{0}) {
			out = append(out, string(part))
		}
		return out
	}
	argv = split(cmdline)
	if len(argv) == 0 || argv[0] == "" {
		return nil, nil, errors.New("empty command line")
	}
	return argv, split(environ), nil
}

// HaltPostgres stops PostgreSQL at once (pg_ctl stop -m immediate), as a
// crash would; RestartPostgres brings it back on the same port and data.
func (e *Env) HaltPostgres(ctx context.Context) error {
	if e.PG == nil {
		return errors.New("this install runs no PostgreSQL")
	}
	return e.PG.Halt(ctx)
}

// RestartPostgres starts PostgreSQL again after HaltPostgres.
func (e *Env) RestartPostgres(ctx context.Context) error {
	if e.PG == nil {
		return errors.New("this install runs no PostgreSQL")
	}
	return e.PG.Restart(ctx)
}

// Terminate sends SIGTERM without waiting for the exit: a pod deleted while
// it serves requests. Done says when it exited.
func (r *Replica) Terminate() error {
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-r.Done():
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// ExitErr is how the last run ended (nil: exit 0, or still running).
func (r *Replica) ExitErr() error { return r.exitErr() }

// LeaseAcquiredAt is when this run took the leader election Lease (from
// its log), false when it has not.
func (r *Replica) LeaseAcquiredAt() (time.Time, bool) { return r.acquiredLease() }
