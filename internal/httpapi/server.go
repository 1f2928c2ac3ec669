// Package httpapi is the operator's HTTP API: a small http.ServeMux server
// with timeouts, request size limits, JSON errors, TLS (plain HTTP only when
// asked for), a graceful shutdown, Kubernetes authentication (TokenReview
// with the API's own audiences) and authorisation (SubjectAccessReview). It
// serves the release gates and the OpenAPI document itself, and mounts the
// jobs, each a package of its own: the dashboard and read endpoints
// (dashboard), ingest and the Alertmanager receiver (ingestapi), the work
// queue (work), and MCP and the tool endpoint (agents). What they share is
// in package base; they never import each other.
package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/internal/httpapi/agents"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/httpapi/dashboard"
	"github.com/alertbridge/alertbridge/internal/httpapi/ingestapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/work"
	"github.com/alertbridge/alertbridge/internal/intake"
)

// Limits of the server.
const (
	// MaxRequestBytes bounds a request's body.
	MaxRequestBytes   = base.MaxRequestBytes
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 90 * time.Second
)

// Shutdown defaults: together they stay within the Deployment's
// terminationGracePeriodSeconds.
const (
	// DefaultShutdownDelay is how long the server keeps serving after it is
	// told to stop, while its readiness fails, so that Services and load
	// balancers stop sending it new requests first.
	DefaultShutdownDelay = 5 * time.Second
	// DefaultShutdownTimeout bounds the wait for in-flight requests after
	// that; it is the write timeout, which no answer outlives anyway.
	DefaultShutdownTimeout = writeTimeout
)

// Config is how the server listens and who may call it.
type Config struct {
	// Addr is the listen address, e.g. :8090.
	Addr string
	// DashboardAnonymous lets callers without a token read the dashboard
	// JSON (and so the page's data), across all namespaces.
	DashboardAnonymous bool
	// History, when set (the PostgreSQL mirror), answers the list,
	// dashboard and open-incidents endpoints instead of the cache.
	History History
	// GetCertificate serves TLS with the certificate it returns (a
	// certs.Source: the Secret's, reloaded on change).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// CertFile and KeyFile serve TLS from files read at start, when
	// GetCertificate is nil.
	CertFile string
	KeyFile  string
	// Insecure serves plain HTTP. It must be asked for: without it and
	// without a certificate the server does not start.
	Insecure bool
	// ShutdownDelay is how long the server goes on serving, unready, once
	// told to stop (none when zero; `alertbridge run` defaults to
	// DefaultShutdownDelay). ShutdownTimeout bounds the wait for requests
	// in flight after that (zero: DefaultShutdownTimeout).
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
	// GateAnonymous lets callers without a token read gates (Flagger's
	// webhooks send none).
	GateAnonymous bool
	// DefaultNamespace receives ingested alerts whose request names no
	// namespace (default "default").
	DefaultNamespace string
	// Intake counts ingested occurrences; nil turns the ingest endpoints off.
	Intake intake.Counter
	// Client is an uncached client with the operator's identity: the work
	// queue (claim, renew, ack, fail, to-incident, the incident actions),
	// the tool endpoint and MCP write through it for callers they have
	// authorised. Nil turns those endpoints off.
	Client client.Client
	// Audiences are those a caller's token must be bound to (ForManager's
	// Authenticator); empty means DefaultAudience.
	Audiences []string
}

// History is the PostgreSQL mirror's read side (*mirror.Store); see
// dashboard.History.
type History = dashboard.History

// Server is the HTTP API; it is a manager.Runnable.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	routes []string
	reader client.Reader
	auth   *base.Authenticator
	clock  clock.PassiveClock
	// state is where Start is: starting, serving or draining.
	state atomic.Int32
	// doc is the OpenAPI document, built on first request.
	docOnce sync.Once
	doc     []byte
}

// Server states, for ReadyCheck.
const (
	stateStarting int32 = iota
	stateServing
	stateDraining
)

// newServer builds the server. reader reads the resources served (the
// manager's cache); auth checks callers. Only ForManager calls it, so
// neither a test nor another package can build a server that is wired
// otherwise than `alertbridge serve` wires it.
func newServer(cfg Config, reader client.Reader, auth *base.Authenticator) *Server {
	s := &Server{cfg: cfg, mux: http.NewServeMux(), reader: reader, auth: auth, clock: clock.RealClock{}}
	s.register()
	return s
}

// handle serves pattern with h and records it in Routes.
func (s *Server) handle(pattern string, h http.Handler) {
	_, path := RoutePath(pattern)
	s.mux.Handle(pattern, instrument(path, h))
	s.routes = append(s.routes, pattern)
}

// Routes are the patterns the server serves ("METHOD /path"), in the order
// they were registered; documentation and tests walk them.
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

// mux is where the jobs mount their routes (base.Mux): on the server's.
type mux struct{ s *Server }

func (m mux) Handle(pattern string, h http.Handler) { m.s.handle(pattern, h) }

// register mounts the jobs, each given what it reads and writes with.
func (s *Server) register() {
	m := mux{s}
	board := &dashboard.Board{
		Reader: s.reader, Auth: s.auth, Clock: s.clock,
		History: s.cfg.History, Anonymous: s.cfg.DashboardAnonymous, Client: s.cfg.Client,
	}
	board.Routes(m) // list, dashboard, open incidents, trends, the page
	gate := s.auth.Require(GateAccess(s.cfg.GateAnonymous), http.HandlerFunc(s.serveGate))
	s.handle("GET "+GatePath, gate)
	s.handle("POST "+GatePath, gate)
	var ingester agents.Ingester
	if s.cfg.Intake != nil {
		receiver := &ingestapi.Receiver{
			Intake: s.cfg.Intake, Reader: s.reader, Auth: s.auth, Clock: s.clock, DefaultNamespace: s.cfg.DefaultNamespace,
		}
		receiver.Routes(m) // POST /v1/alerts, POST /v1/alertmanager
		ingester = receiver
	}
	if s.cfg.Client != nil {
		queue := work.New(work.Queue{Client: s.cfg.Client, Reader: s.reader, Auth: s.auth, Clock: s.clock})
		queue.Routes(m)       // claim, renew, ack, fail, to-incident, incidents
		board.ActionRoutes(m) // the page's permissions and bypass
		protocols := &agents.Protocols{
			Reader: s.reader, Auth: s.auth, Clock: s.clock, DefaultNamespace: s.cfg.DefaultNamespace,
			Work: queue, Reads: board, Ingest: ingester,
		}
		protocols.Routes(m) // the tool endpoint, MCP
	}
	s.handle("GET /openapi.json", http.HandlerFunc(s.serveOpenAPI))
	// Unmatched paths get a JSON error like every other answer.
	s.mux.Handle("/", instrument(unmatchedRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base.WriteError(w, http.StatusNotFound, "no endpoint "+r.Method+" "+r.URL.Path)
	})))
}

// Handler is the full handler chain: size limit, then routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		s.mux.ServeHTTP(w, r)
	})
}

// NeedLeaderElection is false: every replica serves reads from its cache.
func (*Server) NeedLeaderElection() bool { return false }

// ReadyCheck is a healthz.Checker: ready while the server accepts requests
// and is not shutting down. It fails first when the server is told to stop.
func (s *Server) ReadyCheck(*http.Request) error {
	switch s.state.Load() {
	case stateServing:
		return nil
	case stateDraining:
		return errors.New("the HTTP API is shutting down")
	default:
		return errors.New("the HTTP API is not serving yet")
	}
}

// Start serves until ctx ends, then shuts down gracefully: readiness fails
// at once, the server keeps serving for ShutdownDelay (without keep-alive,
// so clients reconnect elsewhere), then it stops accepting connections and
// waits up to ShutdownTimeout for in-flight requests. Requests do not run
// under ctx, so the manager stopping does not cancel them; only requests
// that outlast ShutdownTimeout are cancelled.
func (s *Server) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("httpapi")
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	base, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		// Failed handshakes (probes, clients without the CA) are detail.
		ErrorLog:  stdlog.New(serverErrors{log}, "", 0),
		TLSConfig: tlsConfig,
		// HTTP/2 is off for the same CVEs as the metrics server.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.cfg.Addr, err)
	}
	certFile, keyFile := s.cfg.CertFile, s.cfg.KeyFile
	if s.cfg.GetCertificate != nil {
		certFile, keyFile = "", ""
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(l, certFile, keyFile)
		} else {
			errc <- srv.Serve(l)
		}
	}()
	s.state.Store(stateServing)
	log.Info("Serving the HTTP API", "address", l.Addr().String(), "tls", tlsConfig != nil)
	select {
	case err := <-errc:
		s.state.Store(stateDraining)
		return fmt.Errorf("failed to serve the HTTP API: %w", err)
	case <-ctx.Done():
	}
	s.state.Store(stateDraining)
	srv.SetKeepAlivesEnabled(false)
	delay, timeout := s.cfg.ShutdownDelay, s.shutdownTimeout()
	log.Info("Shutting down the HTTP API: not ready, still serving", "for", delay.String())
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("failed to serve the HTTP API: %w", err)
		}
	}
	log.Info("Shutting down the HTTP API: no new connections, waiting for requests in flight", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cancelRequests()
		_ = srv.Close()
		return fmt.Errorf("failed to shut down the HTTP API within %s: %w", timeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to serve the HTTP API: %w", err)
	}
	log.Info("The HTTP API stopped")
	return nil
}

// serverErrors sends net/http's own error log to the logger, at V(1).
type serverErrors struct{ log logr.Logger }

func (w serverErrors) Write(p []byte) (int, error) {
	w.log.V(1).Info("HTTP server error", "error", strings.TrimSpace(string(p)))
	return len(p), nil
}

// tlsConfig is the server's TLS configuration, nil for plain HTTP.
func (s *Server) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	switch {
	case s.cfg.GetCertificate != nil:
		c.GetCertificate = s.cfg.GetCertificate
		return c, nil
	case s.cfg.CertFile != "" && s.cfg.KeyFile != "":
		return c, nil
	case s.cfg.Insecure:
		return nil, nil
	default:
		return nil, errors.New("the HTTP API has no certificate: give it one, or ask for plain HTTP (--api-insecure)")
	}
}

func (s *Server) shutdownTimeout() time.Duration {
	if s.cfg.ShutdownTimeout <= 0 {
		return DefaultShutdownTimeout
	}
	return s.cfg.ShutdownTimeout
}

// GatePath is the release gate's route.
const GatePath = "/v1/gates/{namespace}/{slopolicy}"

// GateAccess is who may read a release gate: whoever may get the
// SLOPolicy, as kubectl would need it (anyone, with anonymous).
func GateAccess(anonymous bool) base.Access {
	return base.Access{
		Group: "ops.alertbridge.io", Resource: "slopolicies", Verb: "get",
		Namespace: pathValue("namespace"), Name: pathValue("slopolicy"),
		AllowAnonymous: anonymous,
	}
}

func pathValue(name string) func(*http.Request) string {
	return func(r *http.Request) string { return r.PathValue(name) }
}
