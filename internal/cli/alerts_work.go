package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/claim"
	"github.com/alertbridge/alertbridge/internal/query"
)

// defaultWindow keeps Alerts last seen in the past four hours.
const defaultWindow = 240 * time.Minute

type listOptions struct {
	allNamespaces bool
	window        time.Duration
	statusIn      []string
	env, source   string
	service       string
	output        outputFlags
}

func newAlertsListCommand(app *App) *cobra.Command {
	o := listOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Alerts last seen inside a window, newest first",
		Example: `  alertbridge alerts list --window 240m --status-in new,failed
  alertbridge alerts list -A --source monitor@node1 --window 60m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, app) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list across every namespace you may list")
	f.DurationVar(&o.window, "window", defaultWindow, "only Alerts last seen inside this window; 0 for all")
	f.StringSliceVar(&o.statusIn, "status-in", nil, "only these phases, e.g. New,Failed (case-insensitive)")
	f.StringVar(&o.env, "env", "", "only this env")
	f.StringVar(&o.source, "source", "", "only this source, e.g. monitor@node1")
	f.StringVar(&o.service, "service", "", "only this service")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func (o *listOptions) run(cmd *cobra.Command, app *App) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	phases, err := parsePhases(o.statusIn)
	if err != nil {
		return err
	}
	c, err := app.client()
	if err != nil {
		return err
	}
	ns := ""
	if !o.allNamespaces {
		if ns, err = app.namespace(); err != nil {
			return err
		}
	}
	var list v1.AlertList
	if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	now := time.Now()
	out := query.Alerts(list.Items, query.AlertFilter{
		Window: o.window, Phases: phases, Env: o.env, Source: o.source, Service: o.service,
	}, now)
	return printAlerts(app.Out, o.output, out, false, o.allNamespaces, now)
}

type claimOptions struct {
	allNamespaces bool
	owner         string
	limit         int
	window        time.Duration
	lockTTL       time.Duration
	output        outputFlags
}

func newAlertsClaimCommand(app *App) *cobra.Command {
	o := claimOptions{}
	cmd := &cobra.Command{
		Use:   "claim",
		Short: "Claim the oldest claimable Alerts under a lease (exit 2 when there is nothing to claim)",
		Long: `Claims up to --limit of the oldest claimable Alerts (New and not silenced)
last seen inside --window. Failed Alerts become New again once their
retryAfter passes, and Processing ones once their lease expires: the
operator moves them, so they are claimable from then on.
Each is taken with an optimistic-lock status write, so of several racing
claimers exactly one gets each Alert. Prints exactly the Alerts this call took.`,
		Example: `  alertbridge alerts claim --owner triage-supervisor --limit 25 --window 240m --lock-ttl 10m -o json`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return o.run(cmd, app) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "claim across every namespace you may list")
	f.StringVar(&o.owner, "owner", "", "lease holder identity (default: your user name)")
	f.IntVar(&o.limit, "limit", 25, "most Alerts to claim")
	f.DurationVar(&o.window, "window", defaultWindow, "only Alerts last seen inside this window; 0 for all")
	f.DurationVar(&o.lockTTL, "lock-ttl", 0, "lease duration (default: the AlertRoutingPolicy's processingLockTTL, else 10m)")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func (o *claimOptions) run(cmd *cobra.Command, app *App) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if o.limit < 1 {
		return Exit(ExitUsage, errors.New("--limit must be at least 1"))
	}
	c, err := app.client()
	if err != nil {
		return err
	}
	ns := ""
	if !o.allNamespaces {
		if ns, err = app.namespace(); err != nil {
			return err
		}
	}
	cl, owner, err := claimer(cmd.Context(), c, o.owner)
	if err != nil {
		return err
	}
	got, err := cl.Claim(cmd.Context(), claim.Request{
		Namespace: ns, Window: o.window, Limit: o.limit, Owner: owner, LockTTL: o.lockTTL,
	})
	if errors.Is(err, claim.ErrNothingToClaim) {
		if perr := printAlerts(app.Out, o.output.afterWrite(app.Err), nil, false, o.allNamespaces, time.Now()); perr != nil {
			return perr
		}
		return Exit(ExitNothing, err)
	}
	if len(got) > 0 {
		// Print what was taken even if the batch stopped on an error: the
		// caller holds these leases.
		if perr := printAlerts(app.Out, o.output.afterWrite(app.Err), got, false, o.allNamespaces, time.Now()); perr != nil {
			return perr
		}
	}
	return err
}

type leaseOptions struct {
	owner      string
	note       string
	lastError  string
	reason     string
	retryAfter time.Duration
	lockTTL    time.Duration
	output     outputFlags
}

func newAlertsRenewCommand(app *App) *cobra.Command {
	o := leaseOptions{}
	cmd := &cobra.Command{
		Use:   "renew NAME...",
		Short: "Extend your lease on Processing Alerts (exit 3 if you do not hold one)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, app, args, func(cl *claim.Claimer, key client.ObjectKey, owner string) (*v1.Alert, error) {
				return cl.Renew(cmd.Context(), key, owner, o.lockTTL)
			})
		},
	}
	cmd.Flags().StringVar(&o.owner, "owner", "", "lease holder identity (default: your user name)")
	cmd.Flags().DurationVar(&o.lockTTL, "lock-ttl", 0, "new lease duration from now (default: keep the current one)")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func newAlertsAckCommand(app *App) *cobra.Command {
	o := leaseOptions{}
	cmd := &cobra.Command{
		Use:   "ack NAME...",
		Short: "Ack Alerts: yours if Processing, or any New or Failed one (a false positive)",
		Example: `  alertbridge alerts ack gateway-latency-x7k2p --note "false positive"
  alertbridge alerts ack gateway-latency-x7k2p gateway-latency-q4m8d --note "fixed by the rollback"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, app, args, func(cl *claim.Claimer, key client.ObjectKey, owner string) (*v1.Alert, error) {
				return cl.Ack(cmd.Context(), key, owner, o.note)
			})
		},
	}
	cmd.Flags().StringVar(&o.owner, "owner", "", "who acks: the lease holder (default: your user name)")
	cmd.Flags().StringVar(&o.note, "note", "", "why, e.g. \"false positive\"")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func newAlertsFailCommand(app *App) *cobra.Command {
	o := leaseOptions{}
	cmd := &cobra.Command{
		Use:     "fail NAME...",
		Short:   "Fail your Processing Alerts; they are claimable again after --retry-after",
		Example: `  alertbridge alerts fail gateway-latency-x7k2p --error "gateway timeout" --retry-after 5m`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, app, args, func(cl *claim.Claimer, key client.ObjectKey, owner string) (*v1.Alert, error) {
				return cl.Fail(cmd.Context(), key, owner, o.lastError, o.retryAfter)
			})
		},
	}
	cmd.Flags().StringVar(&o.owner, "owner", "", "lease holder identity (default: your user name)")
	cmd.Flags().StringVar(&o.lastError, "error", "", "what went wrong (recorded as status.lastError)")
	cmd.Flags().DurationVar(&o.retryAfter, "retry-after", 0, "delay before a retry (default: the AlertRoutingPolicy's retryAfter, else 5m)")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func newAlertsRequeueCommand(app *App) *cobra.Command {
	o := leaseOptions{}
	cmd := &cobra.Command{
		Use:   "requeue NAME...",
		Short: "Move Processing (whoever holds them) or Failed Alerts back to New, with a reason (on-call: the requeue verb)",
		Long: `Frees stuck work: a Processing Alert's lease is released (its claim cleared)
whoever holds it, and a Failed Alert is retried now instead of after its
retryAfter. status.requeued records you, the reason and the time. The API
server allows it only with the virtual verb requeue on alerts/status (the
alertbridge-oncall role); attempts is kept.`,
		Example: `  alertbridge alerts requeue gateway-latency-x7k2p --reason "worker hung on a dead node"`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(o.reason) == "" {
				return Exit(ExitUsage, errors.New("--reason is required: say why the Alerts are requeued"))
			}
			return o.run(cmd, app, args, func(cl *claim.Claimer, key client.ObjectKey, _ string) (*v1.Alert, error) {
				return cl.Requeue(cmd.Context(), key, o.reason)
			})
		},
	}
	cmd.Flags().StringVar(&o.reason, "reason", "", "why (required), recorded as status.requeued.reason")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

// run applies op to each named Alert with one client and one question of
// who the caller is. Like kubectl with several names, it goes on past a
// refusal: what succeeded is printed, every refusal is returned with its
// Alert's name, and the exit status is the first refusal's.
func (o *leaseOptions) run(cmd *cobra.Command, app *App, names []string, op func(*claim.Claimer, client.ObjectKey, string) (*v1.Alert, error)) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	c, err := app.client()
	if err != nil {
		return err
	}
	ns, err := app.namespace()
	if err != nil {
		return err
	}
	cl, owner, err := claimer(cmd.Context(), c, o.owner)
	if err != nil {
		return err
	}
	var done []v1.Alert
	var first error
	var refused []error // each named, for several names
	for _, name := range names {
		a, err := op(cl, client.ObjectKey{Namespace: ns, Name: name}, owner)
		if err != nil {
			err = leaseError(err)
			if first == nil {
				first = err
			}
			refused = append(refused, fmt.Errorf("%s: %w", name, err))
			continue
		}
		done = append(done, *a)
	}
	if len(done) > 0 {
		if err := printAlerts(app.Out, o.output.afterWrite(app.Err), done, len(names) == 1, false, time.Now()); err != nil {
			return err
		}
	}
	if first == nil || len(names) == 1 {
		return first
	}
	return Exit(ExitCode(first), errors.Join(refused...))
}
