package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo"
)

// sloKube is what the slo and release-check commands talk to.
type sloKube struct {
	cfg       *rest.Config
	c         client.Client
	namespace string
}

func (a *App) sloKube() (*sloKube, error) {
	cfg, err := a.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	ns, err := a.namespace()
	if err != nil {
		return nil, err
	}
	return &sloKube{cfg: cfg, c: c, namespace: ns}, nil
}

type bypassOptions struct {
	reason string
	dur    time.Duration
	clear  bool
}

func newSLOCommand(app *App) *cobra.Command {
	cmd := &cobra.Command{Use: "slo", Short: "SLO policies and their release gate"}
	cmd.AddCommand(newBypassCommand(app), newRulesCommand(app))
	return cmd
}

func newBypassCommand(app *App) *cobra.Command {
	var o bypassOptions
	cmd := &cobra.Command{
		Use:   "bypass NAME --reason TEXT --for DURATION | bypass NAME --clear",
		Short: "Open the release gate of an SLOPolicy for a while, audited (the emergency bypass)",
		Long: `Writes the bypass annotations on the SLOPolicy: until (capped by the
policy's gate.maxBypass), the reason, and you (from SelfSubjectReview). The
operator records the bypass in status and an Event and ends it at until on
its own. No Rollout or GitOps-managed spec is edited.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), app, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.reason, "reason", "", "why the gate is bypassed (required; recorded in status, an Event and the mirror)")
	f.DurationVar(&o.dur, "for", 0, "how long the bypass lasts, e.g. 2h (capped by gate.maxBypass)")
	f.BoolVar(&o.clear, "clear", false, "end the bypass now")
	return cmd
}

func (o *bypassOptions) validate() error {
	switch {
	case o.clear && (o.reason != "" || o.dur != 0):
		return errors.New("--clear takes neither --reason nor --for")
	case o.clear:
		return nil
	case strings.TrimSpace(o.reason) == "":
		return errors.New("--reason is required: a bypass must say why")
	case len(o.reason) > 1024:
		return errors.New("--reason must be at most 1024 characters")
	case o.dur <= 0:
		return errors.New("--for must be a positive duration, e.g. 2h")
	}
	return nil
}

func (o *bypassOptions) run(ctx context.Context, app *App, name string) error {
	if err := o.validate(); err != nil {
		return Exit(ExitUsage, err)
	}
	k, err := app.sloKube()
	if err != nil {
		return err
	}
	key := client.ObjectKey{Namespace: k.namespace, Name: name}
	var p v1.SLOPolicy
	if err := k.c.Get(ctx, key, &p); err != nil {
		return fmt.Errorf("failed to get SLOPolicy %s/%s: %w", k.namespace, name, err)
	}
	var (
		ann map[string]string
		msg string
	)
	if o.clear {
		msg = fmt.Sprintf("slopolicy/%s: bypass cleared\n", name)
	} else {
		by, err := caller(ctx, k.cfg)
		if err != nil {
			return err
		}
		limit := slo.MaxBypass(&p)
		d := o.dur
		if d > limit {
			fmt.Fprintf(app.Err, "warning: --for %s is capped at gate.maxBypass %s\n", o.dur, limit)
			d = limit
		}
		until := time.Now().Add(d).UTC().Truncate(time.Second)
		ann = slo.BypassAnnotations(until, o.reason, by)
		msg = fmt.Sprintf("slopolicy/%s: release gate bypassed until %s by %s: %s\n", name, until.Format(time.RFC3339), by, o.reason)
	}
	if _, err := slo.WriteBypass(ctx, k.c, key, ann); err != nil {
		return err
	}
	fmt.Fprint(app.Out, msg)
	return nil
}

// caller names the user the API server authenticated, for the audit trail.
func caller(ctx context.Context, cfg *rest.Config) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("failed to create the client: %w", err)
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to ask the API server who you are (SelfSubjectReview): %w", err)
	}
	return r.Status.UserInfo.Username, nil
}
