package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/query"
)

// minWatchInterval keeps --watch from hammering the API server.
const minWatchInterval = time.Second

type dashboardOptions struct {
	window   time.Duration
	all      bool
	watch    bool
	interval time.Duration
	output   string
}

func newDashboardCommand(app *App) *cobra.Command {
	o := dashboardOptions{}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Show the operational dashboard: counts by status, top signatures, latest alerts, open incidents, silences, gates",
		Long: `Show the operational dashboard from the cluster — the same
answer as GET /v1/alerts/dashboard and the page the operator serves.`,
		Example: `  alertbridge dashboard -n prod --window 240m
  alertbridge dashboard -A --watch
  alertbridge dashboard -n prod -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), app)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.window, "window", defaultWindow, "only Alerts last seen inside this window; 0 for all")
	f.BoolVarP(&o.all, "all-namespaces", "A", false, "across all namespaces")
	f.BoolVarP(&o.watch, "watch", "w", false, "redraw every --interval until interrupted")
	f.DurationVar(&o.interval, "interval", 2*time.Second, "refresh interval of --watch")
	addDataOutputFlag(cmd, &o.output, "tables")
	return cmd
}

func (o *dashboardOptions) run(ctx context.Context, app *App) error {
	if err := checkDataOutput(o.output); err != nil {
		return err
	}
	if o.window < 0 {
		return Exit(ExitUsage, fmt.Errorf("--window must not be negative, got %s", o.window))
	}
	if o.watch && o.interval < minWatchInterval {
		return Exit(ExitUsage, fmt.Errorf("--interval must be at least %s, got %s", minWatchInterval, o.interval))
	}
	c, err := app.client()
	if err != nil {
		return err
	}
	ns := ""
	if !o.all {
		if ns, err = app.namespace(); err != nil {
			return err
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		d, err := readDashboard(ctx, c, ns, o.window, time.Now())
		if err != nil {
			return err
		}
		if o.watch && o.output == outputTable {
			fmt.Fprint(app.Out, "\033[H\033[2J") // clear the terminal
		}
		err = printData(app.Out, o.output, d, func() error { return printDashboard(app.Out, d, o.all) })
		if err != nil || !o.watch {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
	}
}

// readDashboard lists what the dashboard shows straight from the API server.
func readDashboard(ctx context.Context, c client.Client, ns string, window time.Duration, now time.Time) (query.Dashboard, error) {
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	var (
		alerts    v1.AlertList
		incidents v1.IncidentList
		policies  v1.SLOPolicyList
		silences  v1.SilenceList
	)
	for _, l := range []struct {
		what     string
		list     client.ObjectList
		optional bool
	}{{"Alerts", &alerts, false}, {"Incidents", &incidents, true}, {"SLOPolicies", &policies, true}, {"Silences", &silences, true}} {
		err := c.List(ctx, l.list, opts...)
		if l.optional && apierrors.IsForbidden(err) {
			continue // as the HTTP dashboard: incidents, gates and silences only where the caller may list them
		}
		if err != nil {
			return query.Dashboard{}, fmt.Errorf("failed to list %s: %w", l.what, err)
		}
	}
	return query.BuildDashboard(alerts.Items, incidents.Items, policies.Items, silences.Items, ns, window, now), nil
}

func printDashboard(w io.Writer, d query.Dashboard, withNamespace bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	scope := "namespace " + d.Namespace
	if d.Namespace == "" {
		scope = "all namespaces"
	}
	window := "all time"
	if d.WindowMinutes > 0 {
		window = "last " + (time.Duration(d.WindowMinutes) * time.Minute).String()
	}
	fmt.Fprintf(tw, "ALERTBRIDGE DASHBOARD — %s, %s, %d occurrences\n\n", scope, window, d.Occurrences)

	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	nsCol := func(ns string, cells ...string) []string {
		if withNamespace {
			return append([]string{ns}, cells...)
		}
		return cells
	}
	var phases, counts []string
	for _, p := range query.Phases {
		phases = append(phases, strings.ToUpper(string(p)))
		counts = append(counts, fmt.Sprint(d.Counts[string(p)]))
	}
	row(phases...)
	row(counts...)

	fmt.Fprintln(tw, "\nTOP SIGNATURES")
	if len(d.TopSignatures) == 0 {
		fmt.Fprintln(tw, "No alerts in the window.")
	} else {
		row("SIGNATURE", "ALERTS", "OCCURRENCES")
		for _, s := range d.TopSignatures {
			row(s.Signature, fmt.Sprint(s.Alerts), fmt.Sprint(s.Occurrences))
		}
	}

	fmt.Fprintln(tw, "\nLATEST ALERTS")
	if len(d.Latest) == 0 {
		fmt.Fprintln(tw, "No alerts in the window.")
	} else {
		row(nsCol("NAMESPACE", "NAME", "PHASE", "SEVERITY", "SERVICE", "ENV", "KIND", "OCCURRENCES", "HOLDER", "LAST SEEN", "TITLE")...)
		for _, a := range d.Latest {
			row(nsCol(a.Namespace, a.Name, a.Phase, a.Severity, a.Service, a.Env, a.Kind, fmt.Sprint(a.Occurrences),
				orNone(a.Holder), duration.HumanDuration(d.GeneratedAt.Sub(a.LastSeenAt)), clip.Mark(a.Title, 60))...)
		}
	}

	fmt.Fprintln(tw, "\nOPEN INCIDENTS")
	if len(d.OpenIncidents) == 0 {
		fmt.Fprintln(tw, "No open incidents.")
	} else {
		row(nsCol("NAMESPACE", "NAME", "SEVERITY", "STATE", "SERVICE", "ENV", "ALERTS", "LAST ACTIVITY", "LAST NOTIFICATION", "TITLE")...)
		for _, i := range d.OpenIncidents {
			row(nsCol(i.Namespace, i.Name, i.Severity, i.State, i.Service, i.Env, fmt.Sprint(i.AlertCount),
				duration.HumanDuration(d.GeneratedAt.Sub(i.LastActivityAt)), notificationCell(i.LastNotification, d.GeneratedAt),
				clip.Mark(i.Title, 60))...)
		}
	}

	fmt.Fprintf(tw, "\nSILENCES (%d alerts silenced)\n", d.Silenced)
	if len(d.Silences) == 0 {
		fmt.Fprintln(tw, "No active or pending Silences.")
	} else {
		row(nsCol("NAMESPACE", "NAME", "STATE", "MATCHERS", "ALERTS", "CREATED BY", "ENDS", "COMMENT")...)
		for _, s := range d.Silences {
			row(nsCol(s.Namespace, s.Name, s.State, clip.Mark(s.Matchers, 60), fmt.Sprint(s.Alerts), s.CreatedBy,
				"in "+duration.HumanDuration(s.EndsAt.Sub(d.GeneratedAt)), clip.Mark(s.Comment, 40))...)
		}
	}

	fmt.Fprintln(tw, "\nRELEASE GATES")
	if len(d.Gates) == 0 {
		fmt.Fprintln(tw, "No SLOPolicies.")
	} else {
		row(nsCol("NAMESPACE", "NAME", "SERVICE", "ENV", "DECISION", "REASON")...)
		for _, g := range d.Gates {
			row(nsCol(g.Namespace, g.Name, g.Service, g.Env, orNone(g.Decision), orNone(g.Reason))...)
		}
	}
	return tw.Flush()
}

// notificationCell says in a few words what an Incident's Receivers were
// last told: "pagerduty Opened delivered 2m ago", "slack StateChanged
// pending (3 attempts)", "hook Resolved failed (1 attempt)". Why one
// failed is in the Incident's status.notifications and its Events.
func notificationCell(n *query.NotificationInfo, now time.Time) string {
	if n == nil {
		return "<none>"
	}
	s := n.Receiver + " " + n.Event + " " + n.Result
	switch {
	case n.Result == query.NotificationDelivered && n.At != nil:
		return s + " " + duration.HumanDuration(now.Sub(*n.At)) + " ago"
	case n.Attempts == 0:
		return s
	case n.Attempts == 1:
		return s + " (1 attempt)"
	}
	return fmt.Sprintf("%s (%d attempts)", s, n.Attempts)
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
