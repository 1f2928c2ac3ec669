package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/clip"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/internal/query"
	"github.com/alertbridge/alertbridge/internal/silence"
)

// newSilencesCommand is amtool's `silence` for alertbridge's Silences:
// the same matcher syntax, the same flags where they mean the same.
func newSilencesCommand(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "silences",
		Aliases: []string{"silence", "sil"},
		Short:   "Add, list, expire and import Silences, and preview what a matcher set would silence",
		Long: `Silences mute the Alerts of a namespace that their matchers match, from
startsAt to endsAt, as Alertmanager's do: the Alerts are still ingested,
deduplicated and counted, and carry the condition Silenced naming the
Silence, but nobody claims or converts them until the Silence ends.
Matchers are written as in amtool: service=gateway 'env=~"prod|staging"'
'kind!="latency"', or several in braces '{service="gateway", env="prod"}'.`,
	}
	cmd.AddCommand(
		newSilencesAddCommand(app),
		newSilencesListCommand(app),
		newSilencesExpireCommand(app),
		newSilencesQueryCommand(app),
		newSilencesImportCommand(app),
	)
	return cmd
}

// parseMatchers reads amtool-style matchers and refuses a set that would
// silence everything, in Alertmanager's words.
func parseMatchers(args []string) ([]v1.SilenceMatcher, error) {
	if len(args) == 0 {
		return nil, Exit(ExitUsage, errors.New("give at least one matcher, e.g. service=gateway"))
	}
	ms, err := silence.Parse(args)
	if err != nil {
		return nil, Exit(ExitUsage, err)
	}
	if len(ms) > v1.MaxSilenceMatchers {
		return nil, Exit(ExitUsage, fmt.Errorf("%d matchers: a Silence takes at most %d", len(ms), v1.MaxSilenceMatchers))
	}
	compiled, err := silence.Compile(ms)
	if err != nil {
		return nil, Exit(ExitUsage, err)
	}
	if silence.MatchesEverything(compiled) {
		return nil, Exit(ExitUsage, fmt.Errorf("matchers %s: at least one matcher must not match the empty string (as in Alertmanager), "+
			"or the Silence would silence every Alert of the namespace", silence.String(ms)))
	}
	return ms, nil
}

type silencesAddOptions struct {
	duration   time.Duration
	start, end string
	comment    string
	name       string
	wait       time.Duration
	output     outputFlags
}

func newSilencesAddCommand(app *App) *cobra.Command {
	o := silencesAddOptions{}
	cmd := &cobra.Command{
		Use:   "add MATCHER... --comment TEXT [--duration 1h | --end TIME] [--start TIME]",
		Short: "Create a Silence of the Alerts the matchers match (amtool silence add)",
		Long: `Creates a Silence in the namespace and prints its name. The API server
records you as spec.createdBy. The operator then judges it against the
namespace's AlertRoutingPolicy spec.silences.maxDuration (default 168h);
add waits up to --wait for that and fails (exit 1) when it does not apply
the Silence, saying why.`,
		Example: `  alertbridge silences add service=gateway env=prod --duration 2h --comment "deploy of gateway 1.42"
  alertbridge silences add 'route=~"/v1/(chat|embed)"' kind!=latency --end 2026-12-01T06:00:00Z --comment "migration"`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, app, args)
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&o.duration, "duration", "d", time.Hour, "how long the Silence lasts from its start (ignored with --end)")
	f.StringVar(&o.start, "start", "", "when it starts, RFC3339 (default: now)")
	f.StringVar(&o.end, "end", "", "when it ends, RFC3339 (instead of --duration)")
	f.StringVarP(&o.comment, "comment", "c", "", "why (required), e.g. the change or ticket")
	f.StringVar(&o.name, "name", "", "the Silence's name (default: generated, silence-xxxxx)")
	f.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the operator to accept the Silence (0: do not wait)")
	addOutputFlag(cmd, &o.output)
	return cmd
}

// window is [start, end) from the flags; start is nil for "now".
func (o *silencesAddOptions) window(cmd *cobra.Command, now time.Time) (*metav1.Time, metav1.Time, error) {
	var start *metav1.Time
	from := now
	if o.start != "" {
		t, err := time.Parse(time.RFC3339, o.start)
		if err != nil {
			return nil, metav1.Time{}, fmt.Errorf("--start %q: want RFC3339, e.g. 2026-12-01T06:00:00Z", o.start)
		}
		start, from = &metav1.Time{Time: t}, t
	}
	end := from.Add(o.duration)
	switch {
	case o.end != "" && cmd.Flags().Changed("duration"):
		return nil, metav1.Time{}, errors.New("give --end or --duration, not both")
	case o.end != "":
		t, err := time.Parse(time.RFC3339, o.end)
		if err != nil {
			return nil, metav1.Time{}, fmt.Errorf("--end %q: want RFC3339, e.g. 2026-12-01T06:00:00Z", o.end)
		}
		end = t
	case o.duration <= 0:
		return nil, metav1.Time{}, fmt.Errorf("--duration %s: want a positive duration, e.g. 2h", o.duration)
	}
	if !end.After(now) {
		return nil, metav1.Time{}, fmt.Errorf("the Silence would end at %s, which is past", end.UTC().Format(time.RFC3339))
	}
	if !end.After(from) {
		return nil, metav1.Time{}, errors.New("the Silence must end after it starts")
	}
	return start, metav1.NewTime(end.Truncate(time.Second)), nil
}

func (o *silencesAddOptions) run(cmd *cobra.Command, app *App, args []string) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	ms, err := parseMatchers(args)
	if err != nil {
		return err
	}
	if strings.TrimSpace(o.comment) == "" {
		return Exit(ExitUsage, errors.New("--comment is required: a Silence must say why"))
	}
	start, end, err := o.window(cmd, time.Now())
	if err != nil {
		return Exit(ExitUsage, err)
	}
	c, err := app.client()
	if err != nil {
		return err
	}
	ns, err := app.namespace()
	if err != nil {
		return err
	}
	s := &v1.Silence{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: o.name},
		Spec:       v1.SilenceSpec{Matchers: ms, StartsAt: start, EndsAt: end, Comment: o.comment},
	}
	if o.name == "" {
		s.GenerateName = "silence-"
	}
	if err := c.Create(ctx, s); err != nil {
		return fmt.Errorf("failed to create the Silence of %s in %s: %w", silence.String(ms), ns, err)
	}
	if o.wait > 0 {
		if err := waitAccepted(ctx, c, s, o.wait); err != nil {
			return err
		}
		if s.Status.ObservedGeneration != s.Generation {
			fmt.Fprintf(app.Err, "warning: the operator did not judge silence/%s within %s; is it running?\n", s.Name, o.wait)
		}
	}
	if !isTable(o.output) {
		return printObjects(app.Out, o.output, []*v1.Silence{s}, true, false, nil, "")
	}
	_, err = fmt.Fprintln(app.Out, s.Name)
	return err
}

// waitAccepted waits (bounded) until the operator judged s's generation,
// and refuses (exit 1) a Silence it does not apply.
func waitAccepted(ctx context.Context, c client.Client, s *v1.Silence, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
			return false, err
		}
		return s.Status.ObservedGeneration == s.Generation && s.Status.State != "", nil
	})
	if err != nil && !wait.Interrupted(err) {
		return fmt.Errorf("failed to read silence/%s: %w", s.Name, err)
	}
	if s.Status.State == v1.SilenceInvalid && s.Status.ObservedGeneration == s.Generation {
		msg := "not applied"
		if cond := meta.FindStatusCondition(s.Status.Conditions, v1.SilenceConditionAccepted); cond != nil {
			msg = cond.Message
		}
		return Exit(ExitUsage, fmt.Errorf("silence/%s was created but the operator does not apply it: %s "+
			"(change spec.endsAt, or `alertbridge silences expire %s`)", s.Name, msg, s.Name))
	}
	return nil
}

type silencesListOptions struct {
	expired       bool
	allNamespaces bool
	output        outputFlags
}

func newSilencesListCommand(app *App) *cobra.Command {
	o := silencesListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the active, pending and invalid Silences (amtool silence query), or the expired ones with --expired",
		Example: `  alertbridge silences list -n prod
  alertbridge silences list -A --expired -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), app) },
	}
	f := cmd.Flags()
	f.BoolVarP(&o.expired, "expired", "e", false, "show the expired Silences instead")
	f.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list across every namespace you may list")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func (o *silencesListOptions) run(ctx context.Context, app *App) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	c, err := app.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !o.allNamespaces {
		ns, err := app.namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var list v1.SilenceList
	if err := c.List(ctx, &list, opts...); err != nil {
		return fmt.Errorf("failed to list Silences: %w", err)
	}
	now := time.Now()
	var out []v1.Silence
	for _, s := range list.Items {
		if (silence.StateOf(&s, now) == v1.SilenceExpired) == o.expired {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b v1.Silence) int {
		if c := a.Spec.EndsAt.Compare(b.Spec.EndsAt.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return printSilences(app.Out, o.output, out, o.allNamespaces, now)
}

func printSilences(w io.Writer, output outputFlags, items []v1.Silence, withNamespace bool, now time.Time) error {
	return printObjects(w, output, ptrs(items), false, withNamespace, func() *metav1.Table {
		t := newTable("Name", "State", "Matchers", "Starts", "Ends", "Created By", "Comment", "Starts At:wide", "Ends At:wide")
		for i := range items {
			s := &items[i]
			addRow(t, s, s.Name, string(silence.StateOf(s, now)), clip.Mark(silence.String(s.Spec.Matchers), 80),
				relative(silence.Start(s), now), relative(s.Spec.EndsAt.Time, now), s.Spec.CreatedBy, clip.Mark(s.Spec.Comment, 60),
				silence.Start(s).UTC().Format(time.RFC3339), s.Spec.EndsAt.UTC().Format(time.RFC3339))
		}
		return t
	}, "No Silences found.")
}

// relative is t from now, kubectl's way: "in 2h", "5m ago".
func relative(t, now time.Time) string {
	if t.After(now) {
		return "in " + duration.HumanDuration(t.Sub(now))
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

func newSilencesExpireCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "expire NAME...",
		Short: "End Silences now (amtool silence expire): their Alerts are back in play at once",
		Long: `Sets spec.endsAt to now (and spec.startsAt too, for a Silence that has not
started), under the resourceVersion read, so a change made meanwhile is
never overwritten unseen. The Silence stays, Expired, as a record.`,
		Example: `  alertbridge silences expire silence-7x2kq`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := app.client()
			if err != nil {
				return err
			}
			ns, err := app.namespace()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := expireSilence(cmd.Context(), app.Out, c, client.ObjectKey{Namespace: ns, Name: name}); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func expireSilence(ctx context.Context, w io.Writer, c client.Client, key client.ObjectKey) error {
	msg := ""
	err := kube.RetryConflicts(ctx, "Silence "+key.String(), func() error {
		var s v1.Silence
		if err := c.Get(ctx, key, &s); err != nil {
			return err
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		if !s.Spec.EndsAt.After(now.Time) {
			msg = fmt.Sprintf("silence/%s already ended at %s\n", s.Name, s.Spec.EndsAt.UTC().Format(time.RFC3339))
			return nil
		}
		orig := s.DeepCopy()
		s.Spec.EndsAt = now
		if silence.Start(&s).After(now.Time) {
			// Not started yet: it starts and ends now (endsAt may not be
			// before startsAt), as amtool expires a pending silence.
			s.Spec.StartsAt = &now
		}
		msg = fmt.Sprintf("silence/%s expired\n", s.Name)
		return c.Patch(ctx, &s, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return fmt.Errorf("failed to expire Silence %s: %w", key, err)
	}
	_, err = fmt.Fprint(w, msg)
	return err
}

type silencesQueryOptions struct {
	allNamespaces bool
	output        outputFlags
}

func newSilencesQueryCommand(app *App) *cobra.Command {
	o := silencesQueryOptions{}
	cmd := &cobra.Command{
		Use:   "query MATCHER...",
		Short: "Show which Alerts a matcher set would silence, before you create the Silence",
		Long: `Lists the Alerts still in play (New, Processing, Failed) that the matchers
match now, with Alertmanager's matching, and the Silence already silencing
each, if any. An Alert's labels for matching are its spec.labels plus
service, env, kind, severity, alertname (= kind) and namespace.`,
		Example: `  alertbridge silences query service=gateway env=prod
  alertbridge silences query 'route=~"/v1/.*"' -o json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), app, args) },
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "match the Alerts of every namespace you may list")
	addListOutputFlags(cmd, &o.output)
	return cmd
}

func (o *silencesQueryOptions) run(ctx context.Context, app *App, args []string) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	ms, err := parseMatchers(args)
	if err != nil {
		return err
	}
	rule := silence.Judge(&v1.Silence{Spec: v1.SilenceSpec{Matchers: ms}}, silence.AbsoluteMaxDuration)
	c, err := app.client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !o.allNamespaces {
		ns, err := app.namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var list v1.AlertList
	if err := c.List(ctx, &list, opts...); err != nil {
		return fmt.Errorf("failed to list Alerts: %w", err)
	}
	var out []v1.Alert
	for _, a := range list.Items {
		if a.Status.Phase.Absorbing() && rule.Matches(silence.Labels(&a)) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b v1.Alert) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	now := time.Now()
	if err := printObjects(app.Out, o.output, ptrs(out), false, o.allNamespaces, func() *metav1.Table {
		t := newTable("Name", "Phase", "Service", "Env", "Kind", "Severity", "Occurrences", "Silenced",
			"Holder:wide", "Last Seen:wide", "Title:wide", "Source:wide", "Fingerprint:wide")
		for i := range out {
			a := &out[i]
			holder := "<none>"
			if alertstate.LeaseLive(&a.Status, now) {
				holder = a.Status.Claim.HolderIdentity
			}
			addRow(t, a, a.Name, phaseOf(a), a.Spec.Service, a.Spec.Env, a.Spec.Kind, string(a.Spec.Severity),
				fmt.Sprint(a.Status.Occurrences), cmp.Or(silence.SilencedBy(&a.Status), "-"),
				holder, duration.HumanDuration(now.Sub(query.LastSeen(a))), clip.Mark(a.Spec.Title, 60),
				orNone(a.Spec.Source), orNone(a.Status.Fingerprint))
		}
		return t
	}, fmt.Sprintf("No Alerts in play match %s.", silence.String(ms))); err != nil {
		return err
	}
	// The count and the matcher set as read go to stderr, as kubectl get
	// says "No resources found", so that stdout holds only the table.
	if isTable(o.output) && len(out) > 0 {
		fmt.Fprintf(app.Err, "Alerts in play that %s matches: %d\n", silence.String(ms), len(out))
	}
	return nil
}
