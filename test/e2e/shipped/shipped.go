// Package shipped runs alertbridge the way it ships, for benchmarks, the
// "as shipped" tests and chaos runs: bin/alertbridge built from this
// checkout and started as separate processes, as many as each Deployment's
// replicas — the controller manager (`alertbridge run`, leader election and
// all) and the HTTP API (`alertbridge serve`) — with exactly the arguments
// and environment of their containers in the kustomization
// (config/default). Only what a laptop cannot give every pod changes: bind
// addresses get free loopback ports, and --kubeconfig points at a
// kubeconfig with a token of the Deployment's ServiceAccount (a pod gets it
// mounted).
//
// Around the processes it does what an installer does: a control plane with
// the kustomization installed (test/integration/testenv), a throwaway PostgreSQL
// with durable settings, the database Secrets the Deployments read (the
// manager's, and the HTTP API's read-only role), and `alertbridge migrate
// --grant-read-to` before the first replica starts.
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
	"github.com/alertbridge/alertbridge/test/integration/pgcluster"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// Options say what to run; the zero value runs config/default as shipped.
type Options struct {
	// Install is the kustomization (relative to the module root) that is
	// installed and whose Deployment is run; default testenv.DefaultInstall.
	Install string
	// Replicas overrides the manager Deployment's spec.replicas (0: as
	// shipped); APIReplicas the HTTP API's.
	Replicas, APIReplicas int
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
	// K8sVersion runs the control plane of that Kubernetes version (see
	// testenv.AssetsDirFor); default the one every suite runs,
	// KUBEBUILDER_ASSETS when set.
	K8sVersion string
	// Profile serves /debug/pprof on every replica (a loopback port, see
	// Replica.PprofURL), for profiling a benchmark. The Deployments do
	// not ship it.
	Profile bool
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
	// Deployment is the controller manager's Deployment as the
	// kustomization renders it; APIDeployment the HTTP API's.
	Deployment, APIDeployment *appsv1.Deployment
	// Replicas are the controller manager's processes, one per replica;
	// APIReplicas the HTTP API's.
	Replicas, APIReplicas []*Replica
	// Admin is a cluster administrator's client, for setup and assertions.
	Admin client.Client

	opts Options
	// operator and api are the kubeconfigs of the two ServiceAccounts.
	operator, api string
	control       controlProcs
	stopOnce      sync.Once
	// The token ReplicaMetrics scrapes with, made once.
	scraperOnce  sync.Once
	scraperToken string
	scraperErr   error
}

// Timeouts of the setup. The build is CGO_ENABLED=0 and -trimpath, as
// `make build` and the release's linux/amd64 binary (so they share the
// build cache), a configuration no test binary shares: on a machine whose
// build cache is cold it compiles the whole module graph again while the
// other test streams compile theirs, which took over 5 minutes on 2 cores.
const (
	buildTimeout   = 30 * time.Minute
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
	if e.Deployment, e.APIDeployment, err = deploymentsOf(filepath.Join(testenv.Root(), opts.Install)); err != nil {
		return nil, err
	}
	assets, err := testenv.AssetsDir()
	if opts.K8sVersion != "" {
		assets, err = testenv.AssetsDirFor(opts.K8sVersion)
	}
	if err != nil {
		return nil, err
	}
	if e.Control, err = testenv.StartOn(assets, opts.Install); err != nil {
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
	if kc, err = testenv.Kubeconfig(e.Control.API, e.Control.Install.APIServiceAccount); err != nil {
		return nil, err
	}
	e.api = filepath.Join(e.Dir, "api.kubeconfig")
	if err := os.WriteFile(e.api, kc, 0o600); err != nil {
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
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join("bin", "alertbridge"), ".") // #nosec G204 -- fixed arguments
	cmd.Dir = testenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build bin/alertbridge: %w\n%s", err, out)
	}
	return nil
}

// deploymentsOf renders the kustomization and returns its two Deployments:
// the controller manager's and the HTTP API's.
func deploymentsOf(dir string) (manager, api *appsv1.Deployment, err error) {
	objs, err := testenv.Build(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
			return nil, nil, fmt.Errorf("failed to read Deployment %s: %w", u.GetName(), err)
		}
		switch d.Name {
		case testenv.ManagerDeployment:
			manager = d
		case testenv.APIDeployment:
			api = d
		default:
			return nil, nil, fmt.Errorf("%s renders an unknown Deployment %s", dir, d.Name)
		}
	}
	if manager == nil || api == nil {
		return nil, nil, fmt.Errorf("%s must render the Deployments %s and %s", dir, testenv.ManagerDeployment, testenv.APIDeployment)
	}
	return manager, api, nil
}

// ManagerContainer is the controller manager's container.
func (e *Env) ManagerContainer() *corev1.Container { return container(e.Deployment) }

// APIContainer is the HTTP API's container.
func (e *Env) APIContainer() *corev1.Container { return container(e.APIDeployment) }

// container is d's only container.
func container(d *appsv1.Deployment) *corev1.Container { return &d.Spec.Template.Spec.Containers[0] }

// Namespace is where the operator runs.
func (e *Env) Namespace() string { return e.Deployment.Namespace }

// installDatabase does what docs/install.md asks of an installer when the
// Deployments read a database URL: a PostgreSQL, the Secret holding the
// manager's URL, `alertbridge migrate` before the operator starts, and, for
// the HTTP API, a role that may only read (migrate --grant-read-to) and the
// Secret holding its URL.
func (e *Env) installDatabase(ctx context.Context) error {
	ref, err := databaseSecret(e.ManagerContainer())
	if err != nil || ref == nil {
		return err // a mirror-off install reads no database
	}
	if e.PG, err = pgcluster.StartWith(ctx, pgcluster.Options{Durable: true, MaxConnections: e.opts.PostgresMaxConnections}); err != nil {
		return err
	}
	if err := e.createSecret(ctx, ref, e.PG.DSN()); err != nil {
		return err
	}
	migrate := []string{"migrate", "--dsn", e.PG.DSN()}
	reader, err := databaseSecret(e.APIContainer())
	if err != nil {
		return err
	}
	if reader != nil {
		dsn, err := e.PG.CreateRole(ctx, readerRole)
		if err != nil {
			return err
		}
		if err := e.createSecret(ctx, reader, dsn); err != nil {
			return err
		}
		migrate = append(migrate, "--grant-read-to", readerRole)
	}
	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	out, err := exec.CommandContext(mctx, e.Binary, migrate...).CombinedOutput() // #nosec G204 -- our own binary
	if err != nil {
		return fmt.Errorf("alertbridge migrate: %w\n%s", err, out)
	}
	return nil
}

// readerRole is the PostgreSQL role the HTTP API reads history as.
const readerRole = "alertbridge_reader"

// databaseSecret is where c reads ALERT_DATABASE_URL from; nil when it
// reads none.
func databaseSecret(c *corev1.Container) (*corev1.SecretKeySelector, error) {
	i := slices.IndexFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == "ALERT_DATABASE_URL" })
	if i < 0 {
		return nil, nil
	}
	ref := c.Env[i].ValueFrom
	if ref == nil || ref.SecretKeyRef == nil {
		return nil, fmt.Errorf("container %s sets ALERT_DATABASE_URL without a secretKeyRef; an installer would not know where to put the URL", c.Name)
	}
	return ref.SecretKeyRef, nil
}

func (e *Env) createSecret(ctx context.Context, ref *corev1.SecretKeySelector, value string) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: e.Namespace()},
		StringData: map[string]string{ref.Key: value},
	}
	if err := e.Admin.Create(ctx, secret); err != nil {
		return fmt.Errorf("failed to create the database Secret %s: %w", ref.Name, err)
	}
	return nil
}

// StartOperators starts both Deployments' replicas, the controller
// manager's first, and waits until each answers /readyz.
func (e *Env) StartOperators(ctx context.Context) error {
	for _, p := range []struct {
		d        *appsv1.Deployment
		override int
		into     *[]*Replica
	}{
		{e.Deployment, e.opts.Replicas, &e.Replicas},
		{e.APIDeployment, e.opts.APIReplicas, &e.APIReplicas},
	} {
		n := p.override
		if n == 0 {
			n = 1
			if r := p.d.Spec.Replicas; r != nil {
				n = int(*r)
			}
		}
		for i := range n {
			r, err := e.newReplica(ctx, p.d, i)
			if err != nil {
				return err
			}
			*p.into = append(*p.into, r)
			if err := r.Start(); err != nil {
				return err
			}
		}
	}
	return e.WaitReady(ctx)
}

// All are every process: the manager's replicas, then the API's.
func (e *Env) All() []*Replica { return slices.Concat(e.Replicas, e.APIReplicas) }

// WaitReady waits until every running replica answers /readyz.
func (e *Env) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	all := e.All()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for i, r := range all {
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
		all := e.All()
		stopErrs := make([]error, len(all))
		for i, r := range all {
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
	for _, r := range e.All() {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", r.Name, r.LogPath, r.Tail(lines))
	}
	return b.String()
}
