// Package serve runs the HTTP API on a manager of its own, as `alertbridge
// serve` runs it in the alertbridge-api Deployment: a cache of the kinds the
// API reads, the fingerprint index its intake needs, the certificate it
// serves, the API itself, and readiness. No controller runs here, and none
// of the controllers' rights are needed: the process open to the network
// holds the HTTP API's ServiceAccount only (docs/security.md). Tests start
// the API through this package too, so they serve what users are served.
package serve

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/metrics"
)

// ManagerOptions are the process-level settings of `alertbridge serve`.
type ManagerOptions struct {
	// MetricsAddr serves /metrics ("0" turns it off); SecureMetrics serves
	// them over HTTPS behind the API server's authentication and
	// authorisation.
	MetricsAddr   string
	SecureMetrics bool
	// ProbeAddr serves /healthz and /readyz ("0" or empty: off).
	ProbeAddr string
	// PprofAddr serves /debug/pprof ("0" or empty: off).
	PprofAddr string
	// ShutdownBudget bounds the manager's graceful shutdown; the HTTP API's
	// own drain (delay + timeout) must fit in it.
	ShutdownBudget time.Duration
	// SkipNameValidation lets one test process start several managers.
	SkipNameValidation bool
}

// NewManager returns the HTTP API's manager for cfg (the API's identity,
// with the binary's client limits). Every replica serves, so there is no
// leader election.
func NewManager(cfg *rest.Config, o ManagerOptions) (manager.Manager, error) {
	metricsOpts := metricsserver.Options{
		BindAddress:   o.MetricsAddr,
		SecureServing: o.SecureMetrics,
		// HTTP/2 is off: it is exposed to the HTTP/2 Rapid Reset and Stream
		// Cancellation CVEs, and metrics do not need it.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if o.MetricsAddr == "" {
		metricsOpts.BindAddress = "0"
	}
	if o.SecureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	opts := ctrl.Options{
		Scheme:                 kube.NewScheme(),
		Cache:                  kube.CacheOptions(),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.ProbeAddr,
	}
	if opts.HealthProbeBindAddress == "" {
		opts.HealthProbeBindAddress = "0"
	}
	if o.PprofAddr != "" {
		opts.PprofBindAddress = o.PprofAddr
	}
	if o.ShutdownBudget > 0 {
		opts.GracefulShutdownTimeout = ptr.To(o.ShutdownBudget)
	}
	if o.SkipNameValidation {
		opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to create the HTTP API's manager: %w", err)
	}
	return mgr, nil
}

// Options say what the HTTP API serves and how.
type Options struct {
	// HTTP is the server's configuration. With an empty Addr the server is
	// built but not started (tests serve its Handler themselves).
	HTTP httpapi.Config
	// TLSSecret, when set and HTTP carries no certificate of its own (no
	// files, not Insecure), is the serving Secret the API watches and
	// serves from.
	TLSSecret types.NamespacedName
	// Peers, when its BindAddress is set, makes the replicas elect one of
	// them to count every occurrence and send it theirs (intake.Router).
	Peers Peers
}

// Peers say how the HTTP API's replicas reach each other.
type Peers struct {
	// BindAddress is the peer port's address ("" or "0": each replica
	// counts what it is sent).
	BindAddress string
	// Host is this replica's address as the others reach it (its pod IP),
	// used when BindAddress names no host.
	Host string
	// Lease names the Lease the replicas elect the owner with; Name is this
	// replica's name in it (its pod).
	Lease types.NamespacedName
	Name  string
}

func (p Peers) enabled() bool { return p.BindAddress != "" && p.BindAddress != "0" }

// Setup adds the HTTP API to mgr: the certificate Source (with TLSSecret),
// the server and their readiness checks. It returns the server.
func Setup(mgr manager.Manager, o Options) (*httpapi.Server, error) {
	cfg := o.HTTP
	log := ctrl.Log.WithName("setup")
	if cfg.Addr != "" && !cfg.Insecure && cfg.CertFile == "" && cfg.GetCertificate == nil {
		if o.TLSSecret.Name == "" {
			return nil, fmt.Errorf("the HTTP API has no certificate: name its Secret (--api-tls-secret), give it files (--api-tls-cert-file, --api-tls-key-file), or ask for plain HTTP (--api-insecure)")
		}
		cs, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return nil, fmt.Errorf("failed to create the client of the HTTP API: %w", err)
		}
		src, err := certs.AddSource(mgr, cs, o.TLSSecret)
		if err != nil {
			return nil, err
		}
		cfg.GetCertificate = src.GetCertificate
		if err := mgr.AddReadyzCheck("api-certificate", src.Ready); err != nil {
			return nil, fmt.Errorf("failed to add the HTTP API's certificate check: %w", err)
		}
		log.Info("The HTTP API serves TLS from a Secret", "secret", o.TLSSecret.String())
		if o.Peers.enabled() {
			if cfg.Intake, err = addPeers(mgr, cs, src, o.Peers); err != nil {
				return nil, err
			}
		}
	} else if o.Peers.enabled() {
		return nil, fmt.Errorf("the intake's peer port needs the certificate from a Secret: replicas prove to each other that they hold its key")
	}
	if err := metrics.RegisterAPI(); err != nil {
		return nil, fmt.Errorf("failed to register the HTTP API's metrics: %w", err)
	}
	srv, err := httpapi.ForManager(mgr, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		return srv, nil
	}
	if err := mgr.Add(srv); err != nil {
		return nil, fmt.Errorf("failed to add the HTTP API: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("failed to add the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("api", srv.ReadyCheck); err != nil {
		return nil, fmt.Errorf("failed to add the HTTP API's ready check: %w", err)
	}
	return srv, nil
}

// addPeers adds the peer port and the owner's election to mgr, and returns
// the Router the HTTP API counts through.
func addPeers(mgr manager.Manager, cs kubernetes.Interface, src *certs.Source, p Peers) (*intake.Router, error) {
	l, err := net.Listen("tcp", p.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on the intake's peer address %s: %w", p.BindAddress, err)
	}
	host, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if host = p.Host; host == "" {
			return nil, fmt.Errorf("the intake's peer address %s names no host, and the pod's IP is unknown (POD_IP)", p.BindAddress)
		}
	}
	serverTLS, clientTLS := intake.PeerTLS(src)
	router := &intake.Router{
		Local: intake.ForManager(mgr),
		Peers: intake.NewPeerClient(clientTLS),
	}
	el := &intake.Elector{Client: cs, Lease: p.Lease, Name: p.Name, Address: net.JoinHostPort(host, port)}
	router.Owner = el.Owner
	if err := mgr.Add(el); err != nil {
		return nil, fmt.Errorf("failed to add the intake's election: %w", err)
	}
	if err := mgr.Add(&intake.PeerServer{Listener: l, TLS: serverTLS, Handler: router.PeerHandler(), ShutdownTimeout: peerShutdown}); err != nil {
		return nil, fmt.Errorf("failed to add the intake's peer port: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Replicas send occurrences to the one that counts them", "peerAddress", el.Address, "lease", p.Lease.String())
	return router, nil
}

// peerShutdown bounds how long forwarded occurrences in flight may take on
// shutdown: about one commit.
const peerShutdown = 30 * time.Second
