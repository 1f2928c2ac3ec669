package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/slo"
)

func newRulesCommand(app *App) *cobra.Command {
	var ruleFile bool
	cmd := &cobra.Command{
		Use:   "rules NAME",
		Short: "Print an SLOPolicy's error-budget objectives as Prometheus recording and alerting rules",
		Long: `Prints a PrometheusRule (prometheus-operator) with the same math the
operator evaluates: a recording rule of the error ratio per objective and
window (slo:error_ratio:rate<window>) and the multiwindow, multi-burn-rate
alerting rules (SLOErrorBudgetBurn, severity critical for page and warning
for ticket), as Sloth and Pyrra generate. --rule-file prints a plain
Prometheus rule file instead.`,
		Example: `  alertbridge slo rules checkout | kubectl apply -f -
  alertbridge slo rules checkout --rule-file > /etc/prometheus/rules/checkout.yml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRules(cmd.Context(), app, args[0], ruleFile)
		},
	}
	cmd.Flags().BoolVar(&ruleFile, "rule-file", false, "print a Prometheus rule file (groups:) instead of a PrometheusRule")
	return cmd
}

func runRules(ctx context.Context, app *App, name string, ruleFile bool) error {
	k, err := app.sloKube()
	if err != nil {
		return err
	}
	var p v1.SLOPolicy
	if err := k.c.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: name}, &p); err != nil {
		return fmt.Errorf("failed to get SLOPolicy %s/%s: %w", k.namespace, name, err)
	}
	render := slo.RulesYAML
	if ruleFile {
		render = slo.RuleFileYAML
	}
	out, err := render(&p)
	if err != nil {
		return Exit(ExitUsage, err)
	}
	_, err = app.Out.Write(out)
	return err
}
