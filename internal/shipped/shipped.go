// Package shipped runs alertbridge the way it ships, for benchmarks, the
// "as shipped" tests and chaos runs: bin/alertbridge built from this
// checkout and started as separate processes, as many as the Deployment's
// replicas, with exactly the arguments and environment of the Deployment's
// manager container in the kustomization (config/default), leader election
// and all. Only what a laptop cannot give every pod changes: bind addresses
// get free loopback ports, and --kubeconfig points at a kubeconfig with a
// token of the operator's ServiceAccount (a pod gets it mounted).
//
// Around the processes it does what an installer does: a control plane with
// the kustomization installed (internal/testenv), a throwaway PostgreSQL
// with durable settings, the database Secret the Deployment reads, and
// `alertbridge migrate` before the first replica starts.
package shipped

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/pgcluster"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

// Options say what to run; the zero value runs config/default as shipped.
type Options struct {
	// Install is the kustomization (relative to the module root) that is
	// installed and whose Deployment is run; default testenv.DefaultInstall.
	Install string
	// Replicas overrides the Deployment's spec.replicas (0: as shipped).
	Replicas int
	// PostgresMaxConnections is the database's max_connections (default
	// 300: the operator's pools plus a benchmark's own connections).
	PostgresMaxConnections int
	// Dir holds kubeconfigs and the replicas' logs; default a new
	// temporary directory, removed by Stop unless KeepDir.
	Dir     string
	KeepDir bool
	// NoOperators prepares everything but starts no replica (call
	// StartOperators): a benchmark measures the bare API server first.
	NoOperators bool
}

// Env is a control plane with alertbridge installed and running as shipped.
type Env struct {
	// Control is the control plane: Admin, Operator and Install.
	Control *testenv.Env
	// PG is the database, nil when the Deployment reads none.
	PG *pgcluster.Cluster
	// Binary is bin/alertbridge, built from this checkout.
	Binary string
	// Dir holds kubeconfigs and logs.
	Dir string
	// Deployment is the Deployment as the kustomization renders it.
	Deployment *appsv1.Deployment
	// Replicas are the operator processes, one per replica.
	Replicas []*Replica
	// Admin is a cluster administrator's client, for setup and assertions.
	Admin client.Client

	opts     Options
	operator string // the operator's kubeconfig
	control  controlProcs
	stopOnce sync.Once
}

// Timeouts of the setup.
const (
	buildTimeout   = 5 * time.Minute
	migrateTimeout = time.Minute
	readyTimeout   = 3 * time.Minute
)

// Start builds the binary, starts the control plane and PostgreSQL,
// creates the database Secret, migrates, and (unless NoOperators) starts
// the replicas and waits until each is ready. On error everything started
// is stopped again.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Install == "" {
		opts.Install = testenv.DefaultInstall
	}
	if opts.PostgresMaxConnections == 0 {
		opts.PostgresMaxConnections = 300
	}
	e := &Env{opts: opts, Binary: filepath.Join(testenv.Root(), "bin", "alertbridge"), Dir: opts.Dir}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	if e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "alertbridge-shipped-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(e.Dir, 0o750); err != nil {
		return nil, err
	}
	if err := Build(ctx); err != nil {
		return nil, err
	}
	if e.Deployment, err = deploymentOf(filepath.Join(testenv.Root(), opts.Install)); err != nil {
		return nil, err
	}
	if e.Control, err = testenv.StartWith(opts.Install); err != nil {
		return nil, err
	}
	if e.Admin, err = client.New(e.Control.Admin, client.Options{Scheme: kube.NewScheme()}); err != nil {
		return nil, err
	}
	if err := e.installDatabase(ctx); err != nil {
		return nil, err
	}
	kc, err := testenv.Kubeconfig(e.Control.Operator, e.Control.Install.ServiceAccount)
	if err != nil {
		return nil, err
	}
	e.operator = filepath.Join(e.Dir, "operator.kubeconfig")
	if err := os.WriteFile(e.operator, kc, 0o600); err != nil {
		return nil, err
	}
	if !opts.NoOperators {
		if err := e.StartOperators(ctx); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Build builds bin/alertbridge as `make build` does.
func Build(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join("bin", "alertbridge"), ".") // #nosec G204 -- fixed arguments
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build bin/alertbridge: %w\n%s", err, out)
	}
	return nil
}

// deploymentOf renders the kustomization and returns its one Deployment.
func deploymentOf(dir string) (*appsv1.Deployment, error) {
	objs, err := testenv.Build(dir)
	if err != nil {
		return nil, err
	}
	var found []*appsv1.Deployment
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
			return nil, fmt.Errorf("failed to read Deployment %s: %w", u.GetName(), err)
		}
		found = append(found, d)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%s renders %d Deployments, want one", dir, len(found))
	}
	return found[0], nil
}

// ManagerContainer is the Deployment's operator container.
func (e *Env) ManagerContainer() *corev1.Container {
	cs := e.Deployment.Spec.Template.Spec.Containers
	i := slices.IndexFunc(cs, func(c corev1.Container) bool { return c.Name == "manager" })
	if i < 0 {
		i = 0
	}
	return &cs[i]
}

// Namespace is where the operator runs.
func (e *Env) Namespace() string { return e.Deployment.Namespace }

// installDatabase does what the README asks of an installer when the
// Deployment reads a database URL: a PostgreSQL, the Secret holding its
// URL, and `alertbridge migrate` before the operator starts.
func (e *Env) installDatabase(ctx context.Context) error {
	c := e.ManagerContainer()
	i := slices.IndexFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == "ALERT_DATABASE_URL" })
	if i < 0 {
		return nil // a mirror-off install
	}
	ref := c.Env[i].ValueFrom
	if ref == nil || ref.SecretKeyRef == nil {
		return fmt.Errorf("the Deployment sets ALERT_DATABASE_URL without a secretKeyRef; an installer would not know where to put the URL")
	}
	var err error
	if e.PG, err = pgcluster.StartWith(ctx, pgcluster.Options{Durable: true, MaxConnections: e.opts.PostgresMaxConnections}); err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ref.SecretKeyRef.Name, Namespace: e.Namespace()},
		StringData: map[string]string{ref.SecretKeyRef.Key: e.PG.DSN()},
	}
	if err := e.Admin.Create(ctx, secret); err != nil {
		return fmt.Errorf("failed to create the database Secret: %w", err)
	}
	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	out, err := exec.CommandContext(mctx, e.Binary, "migrate", "--dsn", e.PG.DSN()).CombinedOutput() // #nosec G204 -- our own binary
	if err != nil {
		return fmt.Errorf("alertbridge migrate: %w\n%s", err, out)
	}
	return nil
}

// StartOperators starts the Deployment's replicas and waits until each
// answers /readyz.
func (e *Env) StartOperators(ctx context.Context) error {
	n := e.opts.Replicas
	if n == 0 {
		n = 1
		if r := e.Deployment.Spec.Replicas; r != nil {
			n = int(*r)
		}
	}
	for i := range n {
		r, err := e.newReplica(ctx, i)
		if err != nil {
			return err
		}
		e.Replicas = append(e.Replicas, r)
		if err := r.Start(); err != nil {
			return err
		}
	}
	return e.WaitReady(ctx)
}

// WaitReady waits until every running replica answers /readyz.
func (e *Env) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(e.Replicas))
	for i, r := range e.Replicas {
		wg.Go(func() { errs[i] = r.WaitReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Stop stops the replicas (SIGTERM, as the kubelet does), PostgreSQL and
// the control plane, and removes Dir unless KeepDir.
func (e *Env) Stop() error {
	var errs []error
	e.stopOnce.Do(func() {
		var wg sync.WaitGroup
		stopErrs := make([]error, len(e.Replicas))
		for i, r := range e.Replicas {
			wg.Go(func() { stopErrs[i] = r.Stop() })
		}
		wg.Wait()
		errs = append(errs, stopErrs...)
		if e.PG != nil {
			e.PG.Stop()
		}
		if e.Control != nil {
			e.stopControl()
			errs = append(errs, e.Control.Stop())
		}
		if e.Dir != "" && !e.opts.KeepDir && e.opts.Dir == "" {
			errs = append(errs, os.RemoveAll(e.Dir))
		}
	})
	return errors.Join(errs...)
}

// Logs returns the last lines of every replica's log, for failure output.
func (e *Env) Logs(lines int) string {
	var b strings.Builder
	for _, r := range e.Replicas {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", r.Name, r.LogPath, r.Tail(lines))
	}
	return b.String()
}
