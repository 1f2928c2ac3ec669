package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/query"
)

func newAlertsCommand(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "alerts",
		Aliases: []string{"alert", "alrt"},
		Short:   "Ingest, list, claim, renew, ack, fail and requeue Alerts",
	}
	cmd.AddCommand(
		newAlertsListCommand(app),
		newAlertsClaimCommand(app),
		newAlertsRenewCommand(app),
		newAlertsAckCommand(app),
		newAlertsFailCommand(app),
		newAlertsRequeueCommand(app),
		newAlertsIngestCommand(app),
		newToIncidentCommand(app),
	)
	return cmd
}

var cliScheme = kube.NewScheme()

// restConfig is the kubeconfig the flags name, with the CLI's client limits.
func (a *App) restConfig() (*rest.Config, error) {
	cfg, err := a.Kube.ToRESTConfig()
	if err != nil {
		return nil, Exit(ExitUsage, fmt.Errorf("failed to load kubeconfig: %w", err))
	}
	return kube.WithCLILimits(cfg), nil
}

// client is an uncached client for the kubeconfig the flags name: claims
// must never read a cache.
func (a *App) client() (client.Client, error) {
	cfg, err := a.restConfig()
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	mapper, err := kube.NewRESTMapper(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: cliScheme, HTTPClient: hc, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	return c, nil
}

// namespace is -n, else the kubeconfig context's namespace, else default.
func (a *App) namespace() (string, error) {
	ns, _, err := a.Kube.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", Exit(ExitUsage, fmt.Errorf("failed to read the namespace from kubeconfig: %w", err))
	}
	return ns, nil
}

// whoami is the caller's user name, as the API server authenticated it.
func whoami(ctx context.Context, c client.Client) (string, error) {
	r := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil {
		return "", fmt.Errorf("failed to ask the API server who you are (pass --owner): %w", err)
	}
	if r.Status.UserInfo.Username == "" {
		return "", Exit(ExitUsage, errors.New("the API server did not name you: pass --owner"))
	}
	return r.Status.UserInfo.Username, nil
}

// claimer is a Claimer acting as the caller (asked once from the API
// server), and the owner name: --owner, else the caller's user name.
func claimer(ctx context.Context, c client.Client, owner string) (*claim.Claimer, string, error) {
	user, err := whoami(ctx, c)
	if err != nil {
		return nil, "", err
	}
	return &claim.Claimer{Client: c, User: user}, cmp.Or(owner, user), nil
}

// leaseError maps the state machine's refusals to the documented exit codes:
// a refusal the API server's admission policy gave because someone else
// holds the Alert is "not the holder" too.
func leaseError(err error) error {
	var nh *alertstate.NotHolderError
	var pe *alertstate.PhaseError
	switch {
	case errors.As(err, &nh), apierrors.IsForbidden(err) && strings.Contains(err.Error(), "only the holder may"):
		return Exit(ExitNotHolder, err)
	case errors.As(err, &pe):
		return Exit(ExitUsage, err)
	}
	return err
}

// printAlerts prints Alerts as kubectl get does; single prints one Alert
// as itself rather than in a List.
func printAlerts(w io.Writer, output outputFlags, alerts []v1.Alert, single, withNamespace bool, now time.Time) error {
	return printObjects(w, output, ptrs(alerts), single, withNamespace, func() *metav1.Table {
		t := newTable("Name", "Phase", "Service", "Env", "Kind", "Severity", "Occurrences", "Holder", "Attempts", "Last Seen", "Title",
			"Source:wide", "Fingerprint:wide", "Incident:wide", "Last Error:wide")
		for i := range alerts {
			a := &alerts[i]
			holder := "<none>"
			if alertstate.LeaseLive(&a.Status, now) {
				holder = a.Status.Claim.HolderIdentity
			}
			incident := "<none>"
			if a.Status.IncidentRef != nil {
				incident = a.Status.IncidentRef.Name
			}
			addRow(t, a, a.Name, phaseOf(a), a.Spec.Service, a.Spec.Env, a.Spec.Kind, string(a.Spec.Severity),
				fmt.Sprint(a.Status.Occurrences), holder, fmt.Sprint(a.Status.Attempts),
				duration.HumanDuration(now.Sub(query.LastSeen(a))), clip.Mark(a.Spec.Title, 60),
				orNone(a.Spec.Source), orNone(a.Status.Fingerprint), incident, orNone(clip.Mark(a.Status.LastError, 60)))
		}
		return t
	}, "No Alerts found.")
}

// ptrs is items as the pointers client.Object needs.
func ptrs[T any, P interface {
	*T
	client.Object
}](items []T) []P {
	out := make([]P, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func phaseOf(a *v1.Alert) string {
	if a.Status.Phase == "" {
		return "<pending>"
	}
	return string(a.Status.Phase)
}

// parsePhases reads --status-in case-insensitively (new = New).
func parsePhases(list []string) ([]v1.AlertPhase, error) {
	phases, err := query.ParsePhases(list)
	if err != nil {
		return nil, Exit(ExitUsage, fmt.Errorf("--status-in: %w", err))
	}
	return phases, nil
}
