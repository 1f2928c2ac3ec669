package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo"
)

type releaseCheckOptions struct {
	service string
	env     string
	policy  string
	output  string
}

// gateResult is one policy's verdict, printed by -o json.
type gateResult struct {
	Namespace string          `json:"namespace"`
	Policy    string          `json:"policy"`
	Allowed   bool            `json:"allowed"`
	Decision  v1.GateDecision `json:"decision"`
	Reason    string          `json:"reason"`
	Message   string          `json:"message,omitempty"`
	Stale     bool            `json:"stale"`
}

func newReleaseCheckCommand(app *App) *cobra.Command {
	o := releaseCheckOptions{}
	cmd := &cobra.Command{
		Use:   "release-check --service S --env E [--policy NAME]",
		Short: "Exit 0 when the release gate allows (Allow or Warn), 4 when it blocks",
		Long: `Reads the gate of the SLOPolicies of a service and env (or the one named by
--policy). A status older than three evaluation intervals counts as Stale
(Block in Strict mode), so a stopped operator never leaves the gate open.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), app)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.service, "service", "", "service to release (required unless --policy)")
	f.StringVar(&o.env, "env", "prod", "env of the service")
	f.StringVar(&o.policy, "policy", "", "check only this SLOPolicy")
	addDataOutputFlag(cmd, &o.output, "a line per policy")
	return cmd
}

func (o *releaseCheckOptions) run(ctx context.Context, app *App) error {
	if o.service == "" && o.policy == "" {
		return Exit(ExitUsage, errors.New("--service (or --policy) is required"))
	}
	if err := checkDataOutput(o.output); err != nil {
		return err
	}
	k, err := app.sloKube()
	if err != nil {
		return err
	}
	policies, err := o.policies(ctx, k)
	if err != nil {
		return err
	}
	now := time.Now()
	var results []gateResult
	var blocked *gateResult
	for i := range policies {
		p := &policies[i]
		v := slo.Effective(p, now)
		r := gateResult{Namespace: p.Namespace, Policy: p.Name, Allowed: v.Allowed(), Decision: v.Decision, Reason: v.Reason, Message: v.Message, Stale: v.Stale}
		results = append(results, r)
		if !r.Allowed && blocked == nil {
			blocked = &results[len(results)-1]
		}
	}
	if err := printData(app.Out, o.output, results, func() error {
		for _, r := range results {
			fmt.Fprintf(app.Out, "slopolicy/%s\t%s\t%s\t%s\n", r.Policy, r.Decision, r.Reason, r.Message)
		}
		return nil
	}); err != nil {
		return err
	}
	if blocked != nil {
		return Exit(ExitBlocked, fmt.Errorf("release blocked by slopolicy/%s: %s: %s", blocked.Policy, blocked.Reason, blocked.Message))
	}
	return nil
}

func (o *releaseCheckOptions) policies(ctx context.Context, k *sloKube) ([]v1.SLOPolicy, error) {
	if o.policy != "" {
		var p v1.SLOPolicy
		if err := k.c.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: o.policy}, &p); err != nil {
			return nil, fmt.Errorf("failed to get SLOPolicy %s/%s: %w", k.namespace, o.policy, err)
		}
		return []v1.SLOPolicy{p}, nil
	}
	var list v1.SLOPolicyList
	if err := k.c.List(ctx, &list, client.InNamespace(k.namespace)); err != nil {
		return nil, fmt.Errorf("failed to list SLOPolicies in %s: %w", k.namespace, err)
	}
	var out []v1.SLOPolicy
	for _, p := range list.Items {
		if p.Spec.Service == o.service && p.Spec.Env == o.env {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, Exit(ExitNotFound, fmt.Errorf("no SLOPolicy for service %q env %q in namespace %s", o.service, o.env, k.namespace))
	}
	return out, nil
}
