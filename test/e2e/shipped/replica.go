package shipped

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Replica is one operator process, a pod of the Deployment.
type Replica struct {
	// Name is the pod name it stands for (DEPLOYMENT-N).
	Name string
	// Args and Env are what the process runs with.
	Args []string
	Env  []string
	// ProbeURL, APIURL and MetricsURL are the base URLs of the health
	// probes, the HTTP API (https unless --api-insecure) and the metrics
	// endpoint ("" when off).
	ProbeURL, APIURL, MetricsURL string
	// PprofURL is the base URL of /debug/pprof, with Options.Profile.
	PprofURL string
	// LogPath is where its stdout and stderr go.
	LogPath string

	binary string
	// logStart is where the current run's output starts in LogPath.
	logStart int64
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
}

// Shutdown budget: the Deployment's terminationGracePeriodSeconds, after
// which the kubelet kills.
const defaultGracePeriod = 30 * time.Second

// newReplica derives replica i's command line from Deployment d (the
// controller manager's or the HTTP API's): its container's arguments, its
// ServiceAccount's kubeconfig.
func (e *Env) newReplica(ctx context.Context, d *appsv1.Deployment, i int) (*Replica, error) {
	c := container(d)
	r := &Replica{
		Name:    fmt.Sprintf("%s-%d", d.Name, i),
		LogPath: filepath.Join(e.Dir, fmt.Sprintf("%s-%d.log", d.Name, i)),
		binary:  e.Binary,
	}
	kubeconfig, serves := e.operator, []string{"health-probe"}
	if d == e.APIDeployment {
		kubeconfig, serves = e.api, []string{"api", "health-probe"}
	}
	in := c.Args
	if e.opts.Profile {
		in = append(slices.Clone(in), "--pprof-bind-address=:6060")
	}
	args, addrs, err := bindLoopback(in, serves)
	if err != nil {
		return nil, err
	}
	args = append(args, "--kubeconfig="+kubeconfig)
	r.Args = args
	insecure := hasFlag(c.Args, "--api-insecure")
	if a := addrs["api"]; a != "" {
		r.APIURL = map[bool]string{true: "http://", false: "https://"}[insecure] + a
	}
	if a := addrs["health-probe"]; a != "" {
		r.ProbeURL = "http://" + a
	}
	if a := addrs["pprof"]; a != "" {
		r.PprofURL = "http://" + a
	}
	if a := addrs["metrics"]; a != "" {
		scheme := "https://"
		if v, ok := flagValue(c.Args, "--metrics-secure"); ok && v == "false" {
			scheme = "http://"
		}
		r.MetricsURL = scheme + a
	}
	if r.Env, err = e.containerEnv(ctx, d, r.Name); err != nil {
		return nil, err
	}
	return r, nil
}

// bindLoopback gives every --*-bind-address a free loopback port, and adds
// those of serves (e.g. api, which `alertbridge serve` leaves at its
// default :8090, and health-probe) when absent: two replicas on one host
// cannot share a port. Addresses set to 0 (off) stay off. It returns the
// new arguments and the address of each endpoint by flag name (api,
// health-probe, metrics).
func bindLoopback(in, serves []string) ([]string, map[string]string, error) {
	out := make([]string, 0, len(in)+2)
	addrs := map[string]string{}
	for i := 0; i < len(in); i++ {
		arg := in[i]
		name, value, hasValue := strings.Cut(arg, "=")
		if !strings.HasPrefix(name, "--") || !strings.HasSuffix(name, "-bind-address") {
			out = append(out, arg)
			continue
		}
		if !hasValue {
			rest := in[i+1:]
			if len(rest) == 0 {
				return nil, nil, fmt.Errorf("%s has no value", name)
			}
			value = rest[0]
			i++
		}
		key := strings.TrimSuffix(strings.TrimPrefix(name, "--"), "-bind-address")
		if value == "0" || value == "" {
			out = append(out, name+"=0")
			addrs[key] = ""
			continue
		}
		a, err := freeLoopback()
		if err != nil {
			return nil, nil, err
		}
		out = append(out, name+"="+a)
		addrs[key] = a
	}
	for _, key := range serves {
		if _, ok := addrs[key]; ok {
			continue
		}
		a, err := freeLoopback()
		if err != nil {
			return nil, nil, err
		}
		out = append(out, "--"+key+"-bind-address="+a)
		addrs[key] = a
	}
	return out, addrs, nil
}

func hasFlag(args []string, flag string) bool {
	v, ok := flagValue(args, flag)
	return ok && v != "false"
}

func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag {
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				return args[i+1], true
			}
			return "true", true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// freeLoopback is a loopback address for a replica to bind. The port is
// below the kernel's ephemeral range: a port from that range, free when
// picked, can be taken by any outgoing connection (the storm's clients
// make thousands) before the replica binds it, or while a killed one is
// restarted on it. Ports are not handed out twice by one process.
func freeLoopback() (string, error) {
	lo, hi := portsBelowEphemeral()
	for range 200 {
		port := lo + rand.IntN(hi-lo) //nolint:gosec // G404: a port number needs no unpredictability
		if !handedOut.claim(port) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return l.Addr().String(), nil
	}
	return "", errors.New("no free loopback port below the ephemeral range")
}

// handedOut are the ports freeLoopback gave out in this process.
var handedOut = portSet{m: map[int]bool{}}

type portSet struct {
	mu sync.Mutex
	m  map[int]bool
}

func (s *portSet) claim(port int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[port] {
		return false
	}
	s.m[port] = true
	return true
}

// portsBelowEphemeral is [10000, the ephemeral range's first port): Linux
// says where that range starts; elsewhere 32768, Linux's default.
func portsBelowEphemeral() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
				hi = n
			}
		}
	}
	return lo, hi
}

// containerEnv resolves the container's environment as the kubelet would:
// values, the downward API, and keys of Secrets and ConfigMaps read from
// the cluster. A missing Secret fails as CreateContainerConfigError would.
// HOME is the only variable added (a container has one too).
func (e *Env) containerEnv(ctx context.Context, d *appsv1.Deployment, pod string) ([]string, error) {
	c := container(d)
	env := []string{"HOME=" + e.Dir}
	for _, v := range c.Env {
		val, ok, err := e.envValue(ctx, d, v, pod)
		if !ok {
			continue // an optional Secret or key that is not there
		}
		if err != nil {
			return nil, fmt.Errorf("container %s, env %s: %w", c.Name, v.Name, err)
		}
		env = append(env, v.Name+"="+val)
	}
	if len(c.EnvFrom) > 0 {
		return nil, errors.New("envFrom is not supported: name each variable")
	}
	return env, nil
}

// envValue is v's value, and whether the variable is set at all (an
// optional Secret or ConfigMap key that is missing leaves it unset).
func (e *Env) envValue(ctx context.Context, d *appsv1.Deployment, v corev1.EnvVar, pod string) (string, bool, error) {
	src := v.ValueFrom
	switch {
	case src == nil:
		return v.Value, true, nil
	case src.FieldRef != nil:
		switch src.FieldRef.FieldPath {
		case "metadata.namespace":
			return e.Namespace(), true, nil
		case "metadata.name":
			return pod, true, nil
		case "spec.serviceAccountName":
			return d.Spec.Template.Spec.ServiceAccountName, true, nil
		case "status.podIP", "status.hostIP":
			return "127.0.0.1", true, nil
		}
		return "", true, fmt.Errorf("fieldRef %s is not supported", src.FieldRef.FieldPath)
	case src.ResourceFieldRef != nil:
		return resourceValue(container(d), src.ResourceFieldRef)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		var s corev1.Secret
		if err := e.Admin.Get(ctx, client.ObjectKey{Namespace: e.Namespace(), Name: ref.Name}, &s); err != nil {
			if optional && apierrors.IsNotFound(err) {
				return "", false, nil
			}
			return "", true, fmt.Errorf("CreateContainerConfigError: Secret %q: %w", ref.Name, err)
		}
		val, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", true, fmt.Errorf("CreateContainerConfigError: couldn't find key %s in Secret %s/%s", ref.Key, e.Namespace(), ref.Name)
		}
		return string(val), true, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		var cm corev1.ConfigMap
		if err := e.Admin.Get(ctx, client.ObjectKey{Namespace: e.Namespace(), Name: ref.Name}, &cm); err != nil {
			return "", true, fmt.Errorf("CreateContainerConfigError: ConfigMap %q: %w", ref.Name, err)
		}
		val, ok := cm.Data[ref.Key]
		if !ok {
			return "", true, fmt.Errorf("CreateContainerConfigError: couldn't find key %s in ConfigMap %s/%s", ref.Key, e.Namespace(), ref.Name)
		}
		return val, true, nil
	}
	return "", true, errors.New("unsupported valueFrom")
}

// Start starts the process (again, after Stop or Kill), appending to its log.
func (r *Replica) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && !r.exited() {
		return fmt.Errorf("%s is running", r.Name)
	}
	log, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if st, err := log.Stat(); err == nil {
		r.logStart = st.Size()
	}
	cmd := exec.Command(r.binary, r.Args...) // #nosec G204 -- our own binary with the Deployment's arguments
	cmd.Env = r.Env
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("failed to start %s: %w", r.Name, err)
	}
	r.cmd, r.done, r.err = cmd, make(chan struct{}), nil
	go func(done chan struct{}) {
		err := cmd.Wait()
		_ = log.Close()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
	}(r.done)
	return nil
}

func (r *Replica) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// PID is the process id, 0 when not started.
func (r *Replica) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Done is closed when the process exits.
func (r *Replica) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// WaitReady polls /readyz until it answers 200; it fails early when the
// process exits.
func (r *Replica) WaitReady(ctx context.Context) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	done := r.Done()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.ProbeURL+"/readyz?verbose", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = body.String()
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready: %v\n%s", r.Name, r.exitErr(), r.Tail(40))
		case <-ctx.Done():
			return fmt.Errorf("%s was not ready in time: %s\n%s", r.Name, last, r.Tail(40))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *Replica) exitErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stop sends SIGTERM, as the kubelet does, and waits for the process to
// exit within the Deployment's grace period, after which it is killed.
func (r *Replica) Stop() error { return r.signal(syscall.SIGTERM, defaultGracePeriod+10*time.Second) }

// Kill ends the process at once (SIGKILL), as a crash or an OOM kill would.
func (r *Replica) Kill() error { return r.signal(syscall.SIGKILL, 10*time.Second) }

func (r *Replica) signal(sig syscall.Signal, grace time.Duration) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within %s after %s; killed", r.Name, grace, sig)
	}
	if sig == syscall.SIGTERM {
		if err := r.exitErr(); err != nil {
			return fmt.Errorf("%s exited with %w after SIGTERM\n%s", r.Name, err, r.Tail(20))
		}
	}
	return nil
}

// Log is the output of the current (or last) run.
func (r *Replica) Log() string {
	data, err := os.ReadFile(r.LogPath)
	if err != nil {
		return err.Error()
	}
	r.mu.Lock()
	start := r.logStart
	r.mu.Unlock()
	if start > int64(len(data)) {
		start = 0
	}
	return string(data[start:])
}

// Tail returns the last n lines of the current run's log.
func (r *Replica) Tail(n int) string {
	data := r.Log()
	lines := strings.Split(strings.TrimRight(data, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Usage is a process's memory and CPU from /proc.
type Usage struct {
	// RSS and PeakRSS (VmHWM) in bytes.
	RSS, PeakRSS int64
	// CPU is user plus system time since the process started.
	CPU time.Duration
}

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat times (100 on
// every Linux architecture Go runs on).
const userHZ = 100

// Usage reads the process's memory and CPU.
func (r *Replica) Usage() (Usage, error) {
	pid := r.PID()
	if pid == 0 {
		return Usage{}, fmt.Errorf("%s is not running", r.Name)
	}
	return ProcessUsage(pid)
}

// ProcessUsage reads pid's memory and CPU from /proc.
func ProcessUsage(pid int) (Usage, error) {
	var u Usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			u.RSS = kb << 10
		case "VmHWM":
			u.PeakRSS = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) may hold spaces; the rest follows its ')'.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return u, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	// utime and stime are fields 14 and 15, the 12th and 13th after ')'.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, err
	}
	u.CPU = time.Duration(ut+st) * time.Second / userHZ
	return u, nil
}

// acquiredLease says whether this run took the leader election Lease, and
// when (from the line client-go's leader election logs).
func (r *Replica) acquiredLease() (time.Time, bool) {
	log := r.Log()
	i := strings.LastIndex(strings.ToLower(log), "successfully acquired lease")
	if i < 0 {
		return time.Time{}, false
	}
	line := log[strings.LastIndexByte(log[:i], '\n')+1:]
	line, _, _ = strings.Cut(line, "\n")
	var entry struct {
		TS time.Time `json:"ts"`
	}
	_ = json.Unmarshal([]byte(line), &entry) // zap's JSON; the zero time otherwise
	return entry.TS, true
}

// resourceValue is a resourceFieldRef's value as the kubelet gives it: the
// container's request or limit divided by the divisor (1 by default),
// rounded up. A limit the container does not set would be the node's
// allocatable; the harness has no node, so that is refused.
func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, bool, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", true, fmt.Errorf("resourceFieldRef of container %s: only the container's own is supported", ref.ContainerName)
	}
	kind, name, _ := strings.Cut(ref.Resource, ".")
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return "", true, fmt.Errorf("resourceFieldRef %s: the container sets none (the node's allocatable would be used; the harness has no node)", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	return strconv.FormatInt(int64(math.Ceil(q.AsApproximateFloat64()/divisor.AsApproximateFloat64())), 10), true, nil
}
