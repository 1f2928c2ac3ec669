package httpapi

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/httpapi/base"
	"github.com/alertbridge/alertbridge/internal/intake"
)

// ForManager builds the server as `alertbridge serve` wires it: it reads
// the manager's cache, reviews tokens and access with the manager's
// identity (the HTTP API's ServiceAccount), and counts ingested
// occurrences through one Intake per process (which group-commits the
// occurrences of a fingerprint, finding them by the fingerprint index it
// registers on the cache). The work queue, the tool endpoint and MCP write
// through an uncached client of that identity, for callers they authorise.
// Tests build it the same way, so they serve what users are served.
func ForManager(mgr manager.Manager, cfg Config) (*Server, error) {
	if err := fingerprint.RegisterIndex(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("failed to create the client of the HTTP API: %w", err)
	}
	if cfg.Client == nil {
		// The work queue decides on fresh state (claim.Claimer and
		// incident.Convert must not read a cache).
		if cfg.Client, err = client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()}); err != nil {
			return nil, fmt.Errorf("failed to create the work-queue client of the HTTP API: %w", err)
		}
	}
	if cfg.Intake == nil {
		cfg.Intake = intake.ForManager(mgr)
	}
	return newServer(cfg, mgr.GetClient(), &base.Authenticator{Client: cs, Audiences: cfg.Audiences}), nil
}
