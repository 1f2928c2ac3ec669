package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/incident"
)

// newIncidentsCommand is `incidents list|open|state|close|note|convert`.
func newIncidentsCommand(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "incidents",
		Aliases: []string{"incident", "inc"},
		Short:   "List, close and annotate Incidents",
	}
	convert := newToIncidentCommand(app)
	convert.Use = "convert ALERT"
	convert.Aliases = []string{"to-incident"}
	cmd.AddCommand(
		newIncidentListCommand(app, "list", "List Incidents", false),
		newIncidentListCommand(app, "open", "List open (Open or Mitigating) Incidents", true),
		newIncidentStateCommand(app),
		newIncidentCloseCommand(app),
		newIncidentNoteCommand(app),
		convert,
	)
	return cmd
}

func newIncidentListCommand(app *App, use, short string, openOnly bool) *cobra.Command {
	var (
		service, env string
		out          outputFlags
		all          bool
	)
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			c, ns, err := incidentClient(app)
			if err != nil {
				return err
			}
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			var list v1.IncidentList
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("failed to list Incidents: %w", err)
			}
			items := list.Items[:0]
			for _, inc := range list.Items {
				if (service == "" || inc.Spec.Service == service) && (env == "" || inc.Spec.Env == env) &&
					(!openOnly || inc.Spec.State.IsOpen()) {
					items = append(items, inc)
				}
			}
			slices.SortFunc(items, func(a, b v1.Incident) int {
				if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
					return c
				}
				return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
			})
			return printIncidents(app.Out, out, items, all)
		},
	}
	f := cmd.Flags()
	f.StringVar(&service, "service", "", "only this service")
	f.StringVar(&env, "env", "", "only this env")
	f.BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	addListOutputFlags(cmd, &out)
	return cmd
}

func newIncidentCloseCommand(app *App) *cobra.Command {
	var note string
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "close NAME",
		Short: "Close an Incident (a note is required; Closed is terminal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(note) == "" {
				return Exit(ExitUsage, fmt.Errorf("--note is required to close an Incident"))
			}
			if err := checkOutput(out); err != nil {
				return err
			}
			c, ns, err := incidentClient(app)
			if err != nil {
				return err
			}
			inc, err := incident.Close(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]}, note)
			if errors.Is(err, incident.ErrAlreadyClosed) {
				return Exit(ExitUsage, fmt.Errorf("incident/%s: %w", args[0], err))
			}
			if err != nil {
				return err
			}
			if !isTable(out) {
				return printObjects(app.Out, out, []*v1.Incident{inc}, true, false, nil, "")
			}
			fmt.Fprintf(app.Out, "incident/%s closed; the postmortem draft will be in configmap/%s\n", inc.Name, incident.PostmortemName(inc))
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why it is closed (required)")
	addOutputFlag(cmd, &out)
	return cmd
}

func newIncidentStateCommand(app *App) *cobra.Command {
	var note string
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "state NAME Open|Mitigating|Resolved|Closed",
		Short: "Move an Incident to another state (Closed needs --note)",
		Example: `  alertbridge incidents state inc-3f9c-1 Mitigating --note "rolled back"
  alertbridge incidents state inc-3f9c-1 Resolved`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			state, ok := parseState(args[1])
			if !ok {
				return Exit(ExitUsage, fmt.Errorf("state %q: must be one of Open, Mitigating, Resolved, Closed", args[1]))
			}
			if state == v1.IncidentClosed && strings.TrimSpace(note) == "" {
				return Exit(ExitUsage, fmt.Errorf("--note is required to close an Incident"))
			}
			if err := checkOutput(out); err != nil {
				return err
			}
			c, ns, err := incidentClient(app)
			if err != nil {
				return err
			}
			inc, err := incident.SetState(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]}, state, note)
			if errors.Is(err, incident.ErrSameState) || errors.Is(err, incident.ErrAlreadyClosed) {
				return Exit(ExitUsage, fmt.Errorf("incident/%s: %w", args[0], err))
			}
			if err != nil {
				return err
			}
			if !isTable(out) {
				return printObjects(app.Out, out, []*v1.Incident{inc}, true, false, nil, "")
			}
			fmt.Fprintf(app.Out, "incident/%s is %s\n", inc.Name, inc.Spec.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "why (required for Closed)")
	addOutputFlag(cmd, &out)
	return cmd
}

// parseState reads a state name in any case.
func parseState(s string) (v1.IncidentState, bool) {
	for _, st := range []v1.IncidentState{v1.IncidentOpen, v1.IncidentMitigating, v1.IncidentResolved, v1.IncidentClosed} {
		if strings.EqualFold(s, string(st)) {
			return st, true
		}
	}
	return "", false
}

func newIncidentNoteCommand(app *App) *cobra.Command {
	var note string
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "note NAME",
		Short: "Add a note to an Incident's timeline (and spec.note)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(note) == "" {
				return Exit(ExitUsage, fmt.Errorf("--note is required"))
			}
			if len(note) > 1024 {
				return Exit(ExitUsage, fmt.Errorf("--note must be at most 1024 characters"))
			}
			if err := checkOutput(out); err != nil {
				return err
			}
			c, ns, err := incidentClient(app)
			if err != nil {
				return err
			}
			// The Note entry names its author, as the API server
			// authenticated them (the admission policy checks it).
			user, err := whoami(cmd.Context(), c)
			if err != nil {
				return err
			}
			inc, err := incident.AddNote(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]}, note, user, nil)
			if err != nil {
				return err
			}
			if !isTable(out) {
				return printObjects(app.Out, out, []*v1.Incident{inc}, true, false, nil, "")
			}
			fmt.Fprintf(app.Out, "incident/%s noted\n", inc.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "the note (required)")
	addOutputFlag(cmd, &out)
	return cmd
}

// incidentClient is a direct (uncached) client and the namespace the
// kubectl flags select.
func incidentClient(app *App) (client.Client, string, error) {
	c, err := app.client()
	if err != nil {
		return nil, "", err
	}
	ns, err := app.namespace()
	return c, ns, err
}

func printIncidents(w io.Writer, output outputFlags, items []v1.Incident, withNamespace bool) error {
	now := time.Now()
	return printObjects(w, output, ptrs(items), false, withNamespace, func() *metav1.Table {
		t := newTable("Name", "State", "Severity", "Service", "Env", "Alerts", "Triage Runs", "Cooldown Until", "Age", "Title",
			"Signature:wide", "Note:wide")
		for i := range items {
			inc := &items[i]
			runs, until := int32(0), "-"
			if tr := inc.Status.Triage; tr != nil {
				runs = tr.Runs
				if tr.CooldownUntil != nil && tr.CooldownUntil.After(now) {
					until = tr.CooldownUntil.UTC().Format(time.RFC3339)
				}
			}
			addRow(t, inc, inc.Name, string(inc.Spec.State), string(inc.Spec.Severity), inc.Spec.Service, inc.Spec.Env,
				fmt.Sprint(inc.Status.AlertCount), fmt.Sprint(runs), until, duration.HumanDuration(now.Sub(inc.CreationTimestamp.Time)),
				clip.Mark(inc.Spec.Title, 60), orNone(inc.Spec.Signature), orNone(clip.Mark(inc.Spec.Note, 60)))
		}
		return t
	}, "No Incidents found.")
}
