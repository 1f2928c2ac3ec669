package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/alertbridge/alertbridge/controllers"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/mirror"
	"github.com/alertbridge/alertbridge/internal/operator"
	"github.com/alertbridge/alertbridge/internal/version"
)

type runOptions struct {
	metricsAddr      string
	probeAddr        string
	apiTLS           apiTLSFlags
	leaderElect      bool
	leaderElectionNS string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	secureMetrics    bool
	duplicateGCDelay time.Duration
	alertConcurrency int
	dashboardURL     string
	notifyBackoff    time.Duration
	mirror           mirrorFlags
	process          processFlags
}

// apiTLSFlags say which certificate the manager keeps for the HTTP API.
type apiTLSFlags struct {
	secret      string
	namespace   string
	caSecret    string
	caConfigMap string
	service     string
	extraNames  []string
	manage      bool
}

// mirrorFlags configure the PostgreSQL mirror.
type mirrorFlags struct {
	mode           string
	databaseURL    string
	migrate        bool
	concurrency    int
	pruneInterval  time.Duration
	probeNamespace string
}

func newRunCommand(app *cli.App) *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the operator's controllers (and keep the HTTP API's certificate)",
		Long: "Run the controllers of Alerts, Incidents, SLOPolicies, Silences and Receivers, the PostgreSQL mirror, " +
			"and the issuer of the HTTP API's certificate. The HTTP API itself runs apart (alertbridge serve), " +
			"as another ServiceAccount, so the process open to the network holds none of these rights.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return o.run(app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "address of the metrics endpoint (:8443 for HTTPS, :8080 for HTTP); 0 turns it off")
	f.BoolVar(&o.secureMetrics, "metrics-secure", true, "serve metrics over HTTPS with Kubernetes authn/authz")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the health probes")
	f.StringVar(&o.apiTLS.secret, "api-tls-secret", "alertbridge-api-tls", "Secret the HTTP API serves its certificate from (tls.crt, tls.key, ca.crt): the leader issues and renews it; empty issues nothing")
	f.StringVar(&o.apiTLS.namespace, "api-tls-secret-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), defaultNamespace), "namespace of --api-tls-secret, --api-ca-secret, --api-ca-configmap and of the Service the certificate is for")
	f.StringVar(&o.apiTLS.caSecret, "api-ca-secret", "alertbridge-api-ca", "Secret holding the HTTP API's CA (ca.crt, ca.key), read by the leader alone")
	f.StringVar(&o.apiTLS.caConfigMap, "api-ca-configmap", "alertbridge-api-ca", "ConfigMap the CA certificate (ca.crt, no key) is published in for clients")
	f.StringVar(&o.apiTLS.service, "api-tls-service", "alertbridge-api", "Service whose DNS names (NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local) the certificate carries")
	f.StringSliceVar(&o.apiTLS.extraNames, "api-tls-extra-names", nil, "more DNS names or IP addresses the certificate carries (an Ingress host, another cluster domain)")
	f.BoolVar(&o.apiTLS.manage, "api-tls-manage-secret", true, "the leader creates a self-signed CA and serving certificate and renews them; false leaves --api-tls-secret to another tool (cert-manager) and only publishes its ca.crt")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "enable leader election so only one replica is active")
	f.StringVar(&o.leaderElectionNS, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader election Lease; default $POD_NAMESPACE, else the namespace of the pod's ServiceAccount")
	// Shorter than controller-runtime's 15s/10s/2s: a standby takes over
	// within about 12 s of the leader's death (make chaos measured 15–22 s
	// with the defaults), and a leader slower than 8 s to renew steps down.
	f.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 10*time.Second, "how long a standby waits after the leader's last renewal before taking over")
	f.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 8*time.Second, "how long the leader tries to renew before it gives up leading (and exits)")
	f.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second, "how often replicas try to renew or take the lease")
	f.DurationVar(&o.duplicateGCDelay, "duplicate-gc-delay", controllers.DefaultDuplicateGCDelay, "how long a folded duplicate Alert stays before the operator deletes it")
	f.IntVar(&o.alertConcurrency, "alert-concurrency", 4, "fingerprints folded in parallel")
	f.StringVar(&o.dashboardURL, "dashboard-url", "", "external URL of the dashboard page (e.g. https://alertbridge.example.com), linked from notifications; empty sends no links")
	f.DurationVar(&o.notifyBackoff, "notification-backoff", 2*time.Second, "wait before a failed notification's second attempt; it doubles after each further failure, up to 5m, for 24 attempts")
	f.StringVar(&o.mirror.mode, "mirror", string(mirrorctrl.Optional), "PostgreSQL mirror: required (not ready until the database answers with a current schema; never runs without it), optional (on when a database URL is set) or off")
	f.StringVar(&o.mirror.databaseURL, "database-url", "", "PostgreSQL URL of the mirror; default $ALERT_DATABASE_URL, then $DATABASE_URL")
	f.BoolVar(&o.mirror.migrate, "migrate", false, "apply pending database migrations at start")
	f.IntVar(&o.mirror.concurrency, "mirror-concurrency", mirrorctrl.DefaultConcurrency, "parallel mirror writes per kind")
	f.DurationVar(&o.mirror.pruneInterval, "mirror-prune-interval", mirrorctrl.DefaultPruneInterval, "how often rows past the database retention are deleted")
	f.StringVar(&o.mirror.probeNamespace, "mirror-probe-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), mirrorctrl.DefaultProbeNamespace), "the operator's own namespace ($POD_NAMESPACE), where it dry-runs an Alert to check the mirror finalizer policy")
	o.process.bind(f)
	return cmd
}

func (o *runOptions) run(app *cli.App) error {
	o.process.setup()
	if u, err := url.Parse(o.dashboardURL); o.dashboardURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return cli.Exit(cli.ExitUsage, fmt.Errorf("--dashboard-url %q must be an http or https URL", o.dashboardURL))
	}
	cfg, err := o.process.restConfig(app)
	if err != nil {
		return err
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.secureMetrics,
		// HTTP/2 is off: it is exposed to the HTTP/2 Rapid Reset and Stream
		// Cancellation CVEs, and metrics do not need it.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if o.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 kube.NewScheme(),
		Cache:                  kube.CacheOptions(),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.probeAddr,
		PprofBindAddress:       o.process.pprofAddr,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       "alertbridge.ops.alertbridge.io",
		// In a pod POD_NAMESPACE is the ServiceAccount's namespace, which
		// controller-runtime would read from the mounted token; outside a
		// cluster (the benchmarks run the binary so) nothing is mounted.
		LeaderElectionNamespace: o.leaderElectionNS,
		LeaseDuration:           &o.leaseDuration,
		RenewDeadline:           &o.renewDeadline,
		RetryPeriod:             &o.retryPeriod,
		// The process exits as soon as the manager stops, so handing the
		// lease over on SIGTERM is safe, and a rolling update does not wait
		// out a lease nobody renews.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("failed to create the manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	mirrorOpts, err := o.mirror.options(ctx)
	if err != nil {
		return err
	}
	if mirrorOpts.Store != nil {
		defer mirrorOpts.Store.Close()
	}
	if err := operator.Setup(ctx, mgr, operator.Options{
		Controllers: controllers.Options{
			DuplicateGCDelay:    o.duplicateGCDelay,
			AlertConcurrency:    o.alertConcurrency,
			DashboardURL:        o.dashboardURL,
			NotificationBackoff: o.notifyBackoff,
		},
		Mirror:       mirrorOpts,
		Certificates: o.certificates(),
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add the ready check: %w", err)
	}
	v := version.Get()
	ctrl.Log.WithName("setup").Info("Starting the operator", "version", v.Version, "commit", v.Commit, "goVersion", v.GoVersion)
	return mgr.Start(ctx)
}

// options resolves the DSN and opens the pool (without connecting: the
// operator starts while the database is down).
func (m *mirrorFlags) options(ctx context.Context) (mirrorctrl.Options, error) {
	mode, err := mirrorctrl.ParseMode(m.mode)
	if err != nil {
		return mirrorctrl.Options{}, cli.Exit(cli.ExitUsage, err)
	}
	o := mirrorctrl.Options{Mode: mode, Migrate: m.migrate, Concurrency: m.concurrency, PruneInterval: m.pruneInterval, ProbeNamespace: m.probeNamespace}
	dsn, from := mirror.ResolveDSN(m.databaseURL, os.Getenv)
	if dsn == "" || mode == mirrorctrl.Off {
		return o, nil
	}
	store, err := mirror.Open(ctx, dsn)
	if err != nil {
		return o, cli.Exit(cli.ExitUsage, fmt.Errorf("failed to configure the mirror from %s: %w", from, err))
	}
	ctrl.Log.WithName("setup").Info("PostgreSQL mirror is on", "from", from)
	o.Store = store
	return o, nil
}

// certificates says how the leader keeps the HTTP API's certificate: it
// issues and renews it (or, with --api-tls-manage-secret=false, leaves
// that to another tool) and publishes the CA certificate for clients. The
// HTTP API (alertbridge serve) only reads the serving Secret. Nil with an
// empty --api-tls-secret.
func (o *runOptions) certificates() *certs.Options {
	t := o.apiTLS
	if t.secret == "" {
		return nil
	}
	names := slices.Concat(certs.ServiceNames(t.service, t.namespace), t.extraNames)
	ctrl.Log.WithName("setup").Info("The leader keeps the HTTP API's certificate", "secret", klog.KRef(t.namespace, t.secret),
		"managed", t.manage, "names", names, "caConfigMap", klog.KRef(t.namespace, t.caConfigMap))
	return &certs.Options{
		Secret:      types.NamespacedName{Namespace: t.namespace, Name: t.secret},
		CASecret:    types.NamespacedName{Namespace: t.namespace, Name: t.caSecret},
		CAConfigMap: types.NamespacedName{Namespace: t.namespace, Name: t.caConfigMap},
		Names:       names, Manage: t.manage,
	}
}

// defaultNamespace is where config/default installs the operator; the
// Deployments set POD_NAMESPACE to the namespace they run in.
const defaultNamespace = "alertbridge-system"
