// Package httpapi is the operator's HTTP API: a small http.ServeMux server
// with timeouts, request size limits, JSON errors, optional TLS and
// Kubernetes authentication (TokenReview) and authorisation
// (SubjectAccessReview). It serves the release gates; the other endpoints of
// DESIGN.md add their routes the same way.
package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/intake"
)

// Limits of the server.
const (
	MaxRequestBytes   = 1 << 20
	maxHeaderBytes    = 64 << 10
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 90 * time.Second
	shutdownTimeout   = 10 * time.Second
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
	// CertFile and KeyFile turn on TLS when both are set.
	CertFile string
	KeyFile  string
	// GateAnonymous lets callers without a token read gates (Flagger's
	// webhooks send none).
	GateAnonymous bool
	// DefaultNamespace receives ingested alerts whose request names no
	// namespace (default "default").
	DefaultNamespace string
	// Intake counts ingested occurrences; nil turns the ingest endpoints off.
	Intake *intake.Intake
}

// Server is the HTTP API; it is a manager.Runnable.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	routes []string
	reader client.Reader
	auth   *Authenticator
	clock  clock.PassiveClock
}

// New builds the server. reader reads the resources served (the manager's
// cache in the operator); auth checks callers.
func New(cfg Config, reader client.Reader, auth *Authenticator, clk clock.PassiveClock) *Server {
	if clk == nil {
		clk = clock.RealClock{}
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), reader: reader, auth: auth, clock: clk}
	s.register()
	return s
}

// handle serves pattern with h and records it in Routes.
func (s *Server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
	s.routes = append(s.routes, pattern)
}

// Routes are the patterns the server serves ("METHOD /path"), in the order
// they were registered; documentation and tests walk them.
func (s *Server) Routes() []string { return slices.Clone(s.routes) }

func (s *Server) register() {
	s.readRoutes() // list, dashboard, open incidents, the page
	gate := s.auth.Require(Access{
		Group: "ops.alertbridge.io", Resource: "slopolicies", Verb: "get",
		Namespace: pathValue("namespace"), Name: pathValue("slopolicy"),
		AllowAnonymous: s.cfg.GateAnonymous,
	}, http.HandlerFunc(s.serveGate))
	s.handle("GET /v1/gates/{namespace}/{slopolicy}", gate)
	s.handle("POST /v1/gates/{namespace}/{slopolicy}", gate)
	if s.cfg.Intake != nil {
		s.handle("POST /v1/alerts", s.auth.Require(Access{
			Group: v1.GroupVersion.Group, Resource: "alerts", Verb: "create",
			Namespace: s.ingestNamespace, Name: noName,
		}, http.HandlerFunc(s.serveIngest)))
		s.handle("POST /v1/alertmanager", http.HandlerFunc(s.serveAlertmanager))
	}
	// Unmatched paths get a JSON error like every other answer.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "no endpoint "+r.Method+" "+r.URL.Path)
	})
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

// Start serves until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("httpapi")
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		// HTTP/2 is off for the same CVEs as the metrics server.
		TLSConfig:    &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.cfg.Addr, err)
	}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.CertFile != "" && s.cfg.KeyFile != "" {
			errc <- srv.ServeTLS(l, s.cfg.CertFile, s.cfg.KeyFile)
		} else {
			errc <- srv.Serve(l)
		}
	}()
	log.Info("Serving the HTTP API", "address", l.Addr().String(), "tls", s.cfg.CertFile != "")
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve the HTTP API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("failed to shut down the HTTP API: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("failed to serve the HTTP API: %w", err)
	}
	return nil
}

// ErrorBody is every error response.
type ErrorBody struct {
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// WriteError answers with a JSON error body.
func WriteError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, ErrorBody{Code: code, Reason: http.StatusText(code), Message: msg})
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func pathValue(name string) func(*http.Request) string {
	return func(r *http.Request) string { return r.PathValue(name) }
}
