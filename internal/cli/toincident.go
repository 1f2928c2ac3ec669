package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/incident"
)

// newToIncidentCommand is `alerts to-incident NAME`; it is also
// registered as `incidents convert`.
func newToIncidentCommand(app *App) *cobra.Command {
	var (
		capFlag string
		window  time.Duration
		sig     string
		out     outputFlags
	)
	cmd := &cobra.Command{
		Use:   "to-incident ALERT",
		Short: "Convert an Alert into an Incident (or append it to the open Incident of its signature)",
		Long: `Appends the Alert to the open Incident of its signature that was active
within the dedupe window, or creates a new Incident with the Alert's severity
capped. The Alert is linked first (status.incidentRef), so an Alert someone
else holds is refused (exit 3) before anything is created. The operator then
decides whether the Alert starts a triage run: it does unless the signature
is inside its cooldown.
Unset flags fall back to the namespace's AlertRoutingPolicy, then to the
built-in defaults (cap P1, window 60m).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if capFlag != "" && v1.Severity(capFlag).Rank() > v1.SeverityP4.Rank() {
				return Exit(ExitUsage, fmt.Errorf("--severity-cap must be one of P0..P4, not %q", capFlag))
			}
			if window < 0 {
				return Exit(ExitUsage, fmt.Errorf("--dedupe-window must not be negative"))
			}
			if len(sig) > 256 {
				return Exit(ExitUsage, fmt.Errorf("--signature must be at most 256 characters"))
			}
			if err := checkOutput(out); err != nil {
				return err
			}
			c, ns, err := incidentClient(app)
			if err != nil {
				return err
			}
			// The AlertAppended entry names who converted, as the API
			// server authenticated them (the admission policy checks it).
			user, err := whoami(cmd.Context(), c)
			if err != nil {
				return err
			}
			res, err := incident.Convert(cmd.Context(), c, client.ObjectKey{Namespace: ns, Name: args[0]}, incident.Options{
				SeverityCap: v1.Severity(capFlag), DedupeWindow: window, Signature: sig, Caller: user,
			})
			if err != nil {
				return leaseError(err)
			}
			if !isTable(out) {
				return printObjects(app.Out, out, []*v1.Incident{res.Incident}, true, false, nil, "")
			}
			verb := "appended to"
			switch {
			case res.Created:
				verb = "opened"
			case !res.Appended:
				verb = "already in"
			}
			fmt.Fprintf(app.Out, "alert/%s %s incident/%s (%s, %d alerts); %s\n", args[0], verb, res.Incident.Name,
				res.Incident.Spec.Severity, res.Incident.Status.AlertCount, triageLine(res.Incident, time.Now()))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&capFlag, "severity-cap", "", "the Incident is never worse than this (P0..P4; default: policy, else P1)")
	f.DurationVar(&window, "dedupe-window", 0, "an open Incident active within this window absorbs the Alert (default: policy, else 60m)")
	f.StringVar(&sig, "signature", "", "override the signature (default: service/env/kind plus the policy's signatureLabels)")
	addOutputFlag(cmd, &out)
	return cmd
}

// triageLine says what the Incident's status told about triage when it was
// read: the operator decides on a new Alert when it sees it, so a
// conversion can only say whether it has yet.
func triageLine(inc *v1.Incident, now time.Time) string {
	t := inc.Status.Triage
	var runs int32
	if t != nil {
		runs = t.Runs
	}
	switch {
	case incident.RefsUnseen(inc) && incident.InCooldown(t, now):
		return fmt.Sprintf("triage: none while the signature is in cooldown, until %s", t.CooldownUntil.UTC().Format(time.RFC3339))
	case incident.RefsUnseen(inc):
		return fmt.Sprintf("triage: the operator decides when it sees the Alert (%d runs so far)", runs)
	case t != nil && t.LastRunRef != nil:
		return fmt.Sprintf("triage: %d runs, the last %s for alert/%s", runs, t.LastRunRef.Name, t.LastRunAlertRef)
	}
	return "triage: no run so far"
}
