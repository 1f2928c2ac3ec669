package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/fingerprint"
	"github.com/alertbridge/alertbridge/internal/ingest"
)

// IngestResult is what ingest reports per alert, as the HTTP ingest does.
type IngestResult struct {
	// Accepted is true once the API server stored the Alert.
	Accepted bool `json:"accepted"`
	// Deduped is true when the operator folded it into an existing Alert.
	Deduped bool `json:"deduped"`
	// AlertRef names the canonical Alert: the new one, or the one it folded into.
	AlertRef string `json:"alertRef"`
	// Occurrences is the canonical's count after this firing.
	Occurrences int64 `json:"occurrences"`
}

type ingestOptions struct {
	file        string
	spec        v1.AlertSpec
	severity    string
	labels      []string
	dedupeTTL   time.Duration
	wait        time.Duration
	output      string
	flagsGiven  bool
	dedupeGiven bool
}

func newAlertsIngestCommand(app *App) *cobra.Command {
	o := ingestOptions{}
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Report a firing: create an Alert and print the dedupe decision",
		Long: `Creates an Alert from flags, or from the HTTP ingest JSON (one alert or
{"alerts": [...]}) with -f - for stdin or -f FILE, then waits for the
operator's dedupe decision and prints {accepted, deduped, alertRef, occurrences}.`,
		Example: `  alertbridge alerts ingest --service gateway --kind latency --severity P2 --title "p95 above 300ms" --label route=/v1/chat
  echo '{"service":"gateway","kind":"latency","title":"p95 above 300ms","dedupe_ttl_minutes":30}' | alertbridge alerts ingest -f - -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			for _, n := range []string{"service", "env", "kind", "severity", "title", "message", "source", "label", "fingerprint", "dedupe-ttl"} {
				o.flagsGiven = o.flagsGiven || f.Changed(n)
			}
			o.dedupeGiven = f.Changed("dedupe-ttl")
			return o.run(cmd.Context(), cmd.InOrStdin(), app)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", "read the HTTP ingest JSON from this file, - for stdin")
	f.StringVar(&o.spec.Service, "service", "", "affected service (required)")
	f.StringVar(&o.spec.Env, "env", "", "environment (default prod)")
	f.StringVar(&o.spec.Kind, "kind", "", "alert kind, e.g. latency (required)")
	f.StringVar(&o.severity, "severity", "", "P0 (worst) .. P4 (default P3)")
	f.StringVar(&o.spec.Title, "title", "", "one-line summary (required)")
	f.StringVar(&o.spec.Message, "message", "", "free-text body")
	f.StringVar(&o.spec.Source, "source", "", "reporter, e.g. monitor@node1")
	f.StringArrayVar(&o.labels, "label", nil, "label k=v (repeatable)")
	f.StringVar(&o.spec.Fingerprint, "fingerprint", "", "fingerprint override")
	f.DurationVar(&o.dedupeTTL, "dedupe-ttl", 0, "dedupe TTL (default: the AlertRoutingPolicy's, else 30m)")
	f.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the operator's dedupe decision")
	addDataOutputFlag(cmd, &o.output, "a table")
	return cmd
}

func (o *ingestOptions) specs(stdin io.Reader) ([]v1.AlertSpec, error) {
	if o.file != "" {
		if o.flagsGiven {
			return nil, Exit(ExitUsage, errors.New("give either -f or the alert flags, not both"))
		}
		var data []byte
		var err error
		if o.file == "-" {
			data, err = io.ReadAll(io.LimitReader(stdin, 8<<20))
		} else {
			data, err = os.ReadFile(o.file)
		}
		if err != nil {
			return nil, Exit(ExitUsage, fmt.Errorf("failed to read %s: %w", o.file, err))
		}
		specs, errs := ingest.Decode(data)
		if len(errs) > 0 {
			return nil, Exit(ExitUsage, errs.ToAggregate())
		}
		return specs, nil
	}
	s := o.spec
	s.Severity = v1.Severity(strings.ToUpper(o.severity))
	for _, kv := range o.labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, Exit(ExitUsage, fmt.Errorf("--label %q: want key=value", kv))
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	if o.dedupeGiven {
		s.DedupeTTL = &metav1.Duration{Duration: o.dedupeTTL}
	}
	names := map[string]string{"dedupeTTL": "dedupe-ttl", "labels": "label"}
	if errs := ingest.Validate(&s, nil, names); len(errs) > 0 {
		return nil, Exit(ExitUsage, flagErrors(errs))
	}
	return []v1.AlertSpec{s}, nil
}

// flagErrors says --service where the field error says service.
func flagErrors(errs field.ErrorList) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, "--"+e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (o *ingestOptions) run(ctx context.Context, stdin io.Reader, app *App) error {
	if err := checkDataOutput(o.output); err != nil {
		return err
	}
	specs, err := o.specs(stdin)
	if err != nil {
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
	results := make([]IngestResult, 0, len(specs))
	var undecided []string
	for _, s := range specs {
		a := &v1.Alert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: generateName(&s)}, Spec: s}
		// Labelled at creation, as the HTTP intake does, so the operator
		// need not write the label in before its decision.
		a.Labels = map[string]string{v1.FingerprintLabel: fingerprint.Key(a)}
		if err := c.Create(ctx, a); err != nil {
			return fmt.Errorf("failed to create the Alert: %w", err)
		}
		r, decided, err := decision(ctx, c, a, o.wait)
		if apierrors.IsForbidden(err) {
			// The monitor role creates Alerts and reads nothing: the Alert
			// is reported, its decision is not ours to see.
			results = append(results, IngestResult{Accepted: true, AlertRef: a.Name})
			continue
		}
		if err != nil {
			return err
		}
		if !decided {
			undecided = append(undecided, a.Name)
		}
		results = append(results, r)
	}
	if err := printIngest(app.Out, o.output, results); err != nil {
		return err
	}
	if len(undecided) > 0 {
		fmt.Fprintf(app.Err, "warning: the operator did not decide on %s within %s; is it running?\n", strings.Join(undecided, ", "), o.wait)
	}
	return nil
}

// generateName is service-kind-, as the design's examples name Alerts.
func generateName(s *v1.AlertSpec) string {
	base := strings.ReplaceAll(s.Service+"-"+s.Kind, "_", "-")
	if len(base) > 57 {
		base = strings.TrimRight(base[:57], "-")
	}
	return base + "-"
}

// decision waits (bounded) for the controller's first decision on a and
// reports the canonical Alert's name and occurrences.
func decision(ctx context.Context, c client.Client, a *v1.Alert, timeout time.Duration) (IngestResult, bool, error) {
	r := IngestResult{Accepted: true, AlertRef: a.Name}
	key := client.ObjectKeyFromObject(a)
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, key, a); err != nil {
			return false, err
		}
		switch a.Status.Phase {
		case "":
			return false, nil
		case v1.AlertDeduplicated:
			canonical := &v1.Alert{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Status.DuplicateOf}, canonical); err != nil {
				return false, err
			}
			r.Deduped, r.AlertRef, r.Occurrences = true, canonical.Name, canonical.Status.Occurrences
		default:
			r.Occurrences = a.Status.Occurrences
		}
		return true, nil
	})
	if wait.Interrupted(err) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("failed to read the dedupe decision on Alert %s: %w", key, err)
	}
	return r, true, nil
}

func printIngest(w io.Writer, output string, results []IngestResult) error {
	var v any = map[string][]IngestResult{"results": results}
	if len(results) == 1 {
		v = results[0]
	}
	return printData(w, output, v, func() error {
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "ACCEPTED\tDEDUPED\tALERT\tOCCURRENCES")
		for _, r := range results {
			fmt.Fprintf(tw, "%t\t%t\t%s\t%d\n", r.Accepted, r.Deduped, r.AlertRef, r.Occurrences)
		}
		return tw.Flush()
	})
}
