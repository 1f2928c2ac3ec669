// Package testoperator starts the real operator for tests that need it
// running. It is apart from testenv, which packages below controllers use.
package testoperator

import (
	"context"
	"fmt"
	"net"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/alertbridge/alertbridge/controllers"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/operator"
	"github.com/alertbridge/alertbridge/internal/serve"
)

// Operator is the real manager with every controller, started the way
// `alertbridge run` starts it, for tests that need the operator running.
type Operator struct {
	Manager ctrl.Manager
	// ProbeURL is the base URL of the health probes (/readyz, /healthz)
	// when started with StartServingProbes.
	ProbeURL string
	cancel   context.CancelFunc
	done     chan error
}

// Option changes how Start runs the operator.
type Option func(*operator.Options)

// WithMirror runs the PostgreSQL mirror with m. Without it the mirror runs
// as `alertbridge run` without a database URL: --mirror=optional, so off
// (it removes leftover finalizers and applies the in-cluster retention).
func WithMirror(m mirrorctrl.Options) Option {
	return func(o *operator.Options) { o.Mirror = m }
}

// WithCertificates has the operator keep the HTTP API's certificate, as
// `alertbridge run` does with --api-tls-secret.
func WithCertificates(c certs.Options) Option {
	return func(o *operator.Options) { o.Certificates = &c }
}

// Start starts the operator against cfg and returns once its cache
// has synced.
func Start(cfg *rest.Config, opts controllers.Options, with ...Option) (*Operator, error) {
	return start(cfg, options(opts, with), "0")
}

func options(opts controllers.Options, with []Option) operator.Options {
	o := operator.Options{Controllers: opts}
	for _, w := range with {
		w(&o)
	}
	return o
}

// StartServingProbes is Start with the health probes served on a free
// loopback port, at ProbeURL, for tests of the operator's readiness.
func StartServingProbes(cfg *rest.Config, opts controllers.Options, with ...Option) (*Operator, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return nil, err
	}
	o, err := start(cfg, options(opts, with), addr)
	if err != nil {
		return nil, err
	}
	o.ProbeURL = "http://" + addr
	return o, nil
}

func start(cfg *rest.Config, opts operator.Options, probeAddr string) (*Operator, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 kube.NewScheme(),
		Cache:                  kube.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: probeAddr,
		// Tests start the operator more than once in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := operator.Setup(ctx, mgr, opts); err != nil {
		cancel()
		return nil, err
	}
	o := &Operator{Manager: mgr, cancel: cancel, done: make(chan error, 1)}
	go func() { o.done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		_ = o.Stop(time.Minute)
		return nil, fmt.Errorf("the operator's cache did not sync")
	}
	return o, nil
}

// Stop stops the operator and waits up to timeout for it to finish.
func (o *Operator) Stop(timeout time.Duration) error {
	o.cancel()
	select {
	case err := <-o.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("the operator did not stop within %s", timeout)
	}
}

// API is the HTTP API on a manager of its own, started the way `alertbridge
// serve` starts it (internal/serve), for tests that call it: as the HTTP
// API's ServiceAccount (testenv.Env.API), beside an operator started as
// the controller manager's.
type API struct {
	Manager ctrl.Manager
	// Server is the API; tests serve its Handler (httptest) unless
	// Options.HTTP.Addr made it listen itself.
	Server *httpapi.Server
	cancel context.CancelFunc
	done   chan error
}

// StartAPI starts the HTTP API against cfg and returns once its cache has
// synced. Each of with may set options from the API's own manager before
// the API is set up on it (a test's intake built on that manager).
func StartAPI(cfg *rest.Config, o serve.Options, with ...func(ctrl.Manager, *serve.Options)) (*API, error) {
	mgr, err := serve.NewManager(cfg, serve.ManagerOptions{SkipNameValidation: true})
	if err != nil {
		return nil, err
	}
	for _, f := range with {
		f(mgr, &o)
	}
	srv, err := serve.Setup(mgr, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &API{Manager: mgr, Server: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		_ = a.Stop(time.Minute)
		return nil, fmt.Errorf("the HTTP API's cache did not sync")
	}
	return a, nil
}

// Stop stops the API and waits up to timeout for it to finish.
func (a *API) Stop(timeout time.Duration) error {
	a.cancel()
	return a.Wait(timeout)
}

// Cancel tells the API to stop, as SIGTERM does, without waiting.
func (a *API) Cancel() { a.cancel() }

// Wait waits up to timeout for the API to finish, once told to stop.
func (a *API) Wait(timeout time.Duration) error {
	select {
	case err, ok := <-a.done:
		if !ok {
			return nil
		}
		close(a.done)
		return err
	case <-time.After(timeout):
		return fmt.Errorf("the HTTP API did not stop within %s", timeout)
	}
}
