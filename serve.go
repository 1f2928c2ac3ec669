package main

import (
	"cmp"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/internal/version"
)

// serveOptions are `alertbridge serve`'s flags.
type serveOptions struct {
	metricsAddr   string
	probeAddr     string
	secureMetrics bool
	api           httpapi.Config
	tlsSecret     string
	tlsNamespace  string
	databaseURL   string
	peers         serve.Peers
	process       processFlags
}

func newServeCommand(app *cli.App) *cobra.Command {
	o := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (ingest, Alertmanager, agents, MCP, dashboard, release gates)",
		Long: "Serve the HTTP API. It runs apart from the controllers (alertbridge run), as its own ServiceAccount, " +
			"which may write only alertbridge's kinds, for callers it has authenticated and authorised.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return o.run(app) },
	}
	f := cmd.Flags()
	f.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "address of the metrics endpoint (:8443 for HTTPS, :8080 for HTTP); 0 turns it off")
	f.BoolVar(&o.secureMetrics, "metrics-secure", true, "serve metrics over HTTPS with Kubernetes authn/authz")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the health probes")
	f.StringVar(&o.api.Addr, "api-bind-address", ":8090", "address of the HTTP API")
	f.BoolVar(&o.api.GateAnonymous, "gate-anonymous", false, "let callers without a token read release gates (Flagger webhooks send none)")
	f.BoolVar(&o.api.DashboardAnonymous, "dashboard-anonymous", false, "let callers without a token read the dashboard JSON and page (all namespaces)")
	f.BoolVar(&o.api.Insecure, "api-insecure", false, "serve plain HTTP (tokens cross the network in clear text; for local development)")
	f.StringSliceVar(&o.api.Audiences, "api-audiences", []string{base.DefaultAudience}, "audiences a caller's token must be bound to (kubectl create token NAME --audience alertbridge); add the API server's audience to accept people's OIDC tokens")
	f.StringVar(&o.tlsSecret, "api-tls-secret", "alertbridge-api-tls", "Secret holding the certificate (tls.crt, tls.key), read through the API and reloaded on change")
	f.StringVar(&o.tlsNamespace, "api-tls-secret-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), defaultNamespace), "namespace of --api-tls-secret")
	f.StringVar(&o.api.CertFile, "api-tls-cert-file", "", "serve TLS from this certificate file instead of --api-tls-secret (read once at start)")
	f.StringVar(&o.api.KeyFile, "api-tls-key-file", "", "private key of --api-tls-cert-file")
	f.DurationVar(&o.api.ShutdownDelay, "api-shutdown-delay", httpapi.DefaultShutdownDelay, "on SIGTERM, how long the API goes on serving while readiness fails, so Services stop sending it requests")
	f.DurationVar(&o.api.ShutdownTimeout, "api-shutdown-timeout", httpapi.DefaultShutdownTimeout, "on SIGTERM, after --api-shutdown-delay, how long requests in flight may take to finish")
	f.StringVar(&o.api.DefaultNamespace, "default-namespace", "default", "namespace of ingested alerts whose request names none (no ?namespace= and no namespace label)")
	f.StringVar(&o.databaseURL, "database-url", "", "PostgreSQL URL the list, dashboard and trends read history from (a role that may only SELECT); default $ALERT_DATABASE_URL, then $DATABASE_URL; none: the cluster alone")
	f.StringVar(&o.peers.BindAddress, "intake-peer-bind-address", "0",
		"address of the port the replicas send each other occurrences on (mutual TLS with the --api-tls-secret certificate): "+
			"one replica, elected with a Lease, counts them all, so that two never write the same Alert; 0 turns it off and each replica counts what it is sent")
	f.StringVar(&o.peers.Lease.Name, "intake-lease", "alertbridge-api-intake", "Lease the replicas elect the one that counts occurrences with")
	f.StringVar(&o.peers.Lease.Namespace, "intake-lease-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), defaultNamespace), "namespace of --intake-lease")
	f.StringVar(&o.peers.Host, "intake-peer-host", os.Getenv("POD_IP"), "this replica's address as the others reach it, when --intake-peer-bind-address names no host (default $POD_IP)")
	o.process.bind(f)
	return cmd
}

func (o *serveOptions) run(app *cli.App) error {
	o.process.setup()
	if err := o.validate(); err != nil {
		return cli.Exit(cli.ExitUsage, err)
	}
	cfg, err := o.process.restConfig(app)
	if err != nil {
		return err
	}
	log := ctrl.Log.WithName("setup")
	mgr, err := serve.NewManager(cfg, serve.ManagerOptions{
		MetricsAddr: o.metricsAddr, SecureMetrics: o.secureMetrics, ProbeAddr: o.probeAddr, PprofAddr: o.process.pprofAddr,
		ShutdownBudget: max(defaultGracefulShutdown, o.api.ShutdownDelay+o.api.ShutdownTimeout+stopAfterAPI),
	})
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	if dsn, from := mirror.ResolveDSN(o.databaseURL, os.Getenv); dsn != "" {
		store, err := mirror.Open(ctx, dsn)
		if err != nil {
			return cli.Exit(cli.ExitUsage, fmt.Errorf("failed to configure history from %s: %w", from, err))
		}
		defer store.Close()
		o.api.History = store
		log.Info("History is read from PostgreSQL", "from", from)
	}
	switch {
	case o.api.Insecure:
		log.Info("The HTTP API serves plain HTTP (--api-insecure): tokens cross the network in clear text")
	case o.api.CertFile != "":
		log.Info("The HTTP API serves TLS from files", "cert", o.api.CertFile)
	}
	o.peers.Name = cmp.Or(os.Getenv("POD_NAME"), hostname())
	if _, err := serve.Setup(mgr, serve.Options{
		HTTP:      o.api,
		TLSSecret: types.NamespacedName{Namespace: o.tlsNamespace, Name: o.tlsSecret},
		Peers:     o.peers,
	}); err != nil {
		return err
	}
	v := version.Get()
	log.Info("Starting the HTTP API", "version", v.Version, "commit", v.Commit, "goVersion", v.GoVersion)
	return mgr.Start(ctx)
}

func (o *serveOptions) validate() error {
	switch {
	case o.api.Addr == "" || o.api.Addr == "0":
		return fmt.Errorf("--api-bind-address must be an address: serving the HTTP API is what alertbridge serve does")
	case (o.api.CertFile == "") != (o.api.KeyFile == ""):
		return fmt.Errorf("--api-tls-cert-file and --api-tls-key-file go together")
	case o.api.Insecure && o.api.CertFile != "":
		return fmt.Errorf("--api-insecure and --api-tls-cert-file exclude each other")
	case o.api.ShutdownDelay < 0 || o.api.ShutdownTimeout <= 0:
		return fmt.Errorf("--api-shutdown-delay must not be negative and --api-shutdown-timeout must be positive")
	}
	return nil
}

// hostname names this replica in the intake's Lease when POD_NAME is unset
// (a pod's hostname is its name).
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "alertbridge-api"
	}
	return h
}

// Shutdown budget of `alertbridge serve` (the Deployment's
// terminationGracePeriodSeconds is above it).
const (
	// defaultGracefulShutdown is controller-runtime's default.
	defaultGracefulShutdown = 30 * time.Second
	// stopAfterAPI is left for the cache and probes, which stop after the
	// HTTP API.
	stopAfterAPI = 10 * time.Second
)
