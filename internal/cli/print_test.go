package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// listFlags parses args as a list command's output flags.
func listFlags(t *testing.T, args ...string) outputFlags {
	t.Helper()
	var out outputFlags
	cmd := &cobra.Command{Use: "list"}
	addListOutputFlags(cmd, &out)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}

func printed(t *testing.T, out outputFlags, alerts []v1.Alert) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	err := printAlerts(&buf, out, alerts, false, false, time.Now())
	return buf.String(), err
}

func threeAlerts() []v1.Alert {
	now := time.Now()
	mk := func(name string, occurrences int64, age time.Duration, host string) v1.Alert {
		return testbuild.MakeAlert(name, "ns").Created(now.Add(-age)).MetaLabel(v1.FingerprintLabel, "fp-"+name).MetaLabel("team", "t-"+host).
			Host(host).Phase(v1.AlertNew).Occurrences(occurrences).Val()
	}
	return []v1.Alert{mk("b", 3, time.Hour, "h2"), mk("c", 1, 2*time.Hour, "h3"), mk("a", 2, 3*time.Hour, "h1")}
}

// rowNames is the first field of each line of a table without headers.
func rowNames(s string) []string {
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

func TestSortByOrdersTableRowsAndListItems(t *testing.T) {
	for _, tc := range []struct {
		field string
		want  string
	}{
		{".status.occurrences", "c a b"},
		{"{.metadata.name}", "a b c"},
		{"metadata.creationTimestamp", "a c b"},
		{".spec.labels.host", "a b c"},
	} {
		out, err := printed(t, listFlags(t, "--sort-by", tc.field, "--no-headers"), threeAlerts())
		if err != nil {
			t.Fatalf("--sort-by %s: %v", tc.field, err)
		}
		if got := strings.Join(rowNames(out), " "); got != tc.want {
			t.Errorf("--sort-by %s: table rows %s, want %s", tc.field, got, tc.want)
		}
		for _, format := range []string{"json", "name"} {
			out, err := printed(t, listFlags(t, "--sort-by", tc.field, "-o", format), threeAlerts())
			if err != nil {
				t.Fatalf("--sort-by %s -o %s: %v", tc.field, format, err)
			}
			var got []string
			if format == "json" {
				var l struct{ Items []v1.Alert }
				if err := json.Unmarshal([]byte(out), &l); err != nil {
					t.Fatal(err)
				}
				for _, a := range l.Items {
					got = append(got, a.Name)
				}
			} else {
				for _, n := range strings.Fields(out) {
					got = append(got, strings.TrimPrefix(n, "alert.ops.alertbridge.io/"))
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("--sort-by %s -o %s: items %v, want %s", tc.field, format, got, tc.want)
			}
		}
	}
	out, err := printed(t, listFlags(t, "--no-headers"), threeAlerts())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rowNames(out), " "); got != "b c a" {
		t.Errorf("without --sort-by the rows keep the command's order, got %s", got)
	}
}

func TestLabelColumns(t *testing.T) {
	out, err := printed(t, listFlags(t, "-L", v1.FingerprintLabel, "--label-columns", "team", "--show-labels"), threeAlerts())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if !strings.HasSuffix(strings.Join(strings.Fields(lines[0]), " "), "TITLE FINGERPRINT TEAM LABELS") {
		t.Errorf("header %q: want the label columns, then LABELS", lines[0])
	}
	if f := strings.Fields(lines[1]); f[0] != "b" || strings.Join(f[len(f)-3:], " ") != "fp-b t-h2 "+v1.FingerprintLabel+"=fp-b,team=t-h2" {
		t.Errorf("row %q: want b's label values and its labels", lines[1])
	}
}

func TestBadListFlagsAreRefusedNamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sort-by", "{.metadata.name"}, "--sort-by"},
		{[]string{"--sort-by", ".status.occurrences[", "-o", "json"}, "--sort-by"},
		{[]string{"--show-labels", "-o", "json"}, "--show-labels cannot be used with -o json"},
		{[]string{"--show-labels", "-o", "name"}, "--show-labels"},
		{[]string{"-L", "team", "-o", "custom-columns=NAME:.metadata.name"}, "--label-columns"},
	} {
		err := checkOutput(listFlags(t, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitUsage {
			t.Errorf("%v: got %v, want an exit-1 error with %q", tc.args, err, tc.want)
		}
	}
	for _, tc := range []struct {
		field, want string
	}{
		{".spec.nothing", `--sort-by ".spec.nothing": no Alert printed has this field`},
		{".metadata.labels", "holds an object, not a string or a number"},
		{".spec.labels", "holds an object"},
	} {
		for _, format := range []string{"", "json"} {
			_, err := printed(t, listFlags(t, "--sort-by", tc.field, "-o", format), threeAlerts())
			if err == nil || !strings.Contains(err.Error(), tc.want) || ExitCode(err) != ExitUsage {
				t.Errorf("--sort-by %s -o %q: got %v, want an exit-1 error with %q", tc.field, format, err, tc.want)
			}
		}
	}
	// After a write (claim, renew, ack, fail) the result is printed all the
	// same, in the command's order, with a warning.
	var warned bytes.Buffer
	out, err := printed(t, listFlags(t, "--sort-by", ".spec.nothing", "--no-headers").afterWrite(&warned), threeAlerts())
	if err != nil || strings.Join(rowNames(out), " ") != "b c a" ||
		warned.String() != "warning: --sort-by \".spec.nothing\": no Alert printed has this field; printed unsorted\n" {
		t.Errorf("after a write: %v, rows %q, warning %q", err, out, warned.String())
	}
	// Nothing to sort, nothing to refuse: kubectl get says so too.
	if _, err := printed(t, listFlags(t, "--sort-by", ".spec.nothing"), nil); err != nil {
		t.Errorf("an empty list: %v", err)
	}
	// -o wide and --show-labels go together.
	if err := checkOutput(listFlags(t, "--show-labels", "-o", "wide", "-L", "team")); err != nil {
		t.Error(err)
	}
}

// TestListFlagsAreOnEveryListingCommand: the commands that print tables of
// Alerts, Incidents or Silences take kubectl get's label and sort flags.
func TestListFlagsAreOnEveryListingCommand(t *testing.T) {
	root, _ := NewRoot()
	for _, path := range [][]string{
		{"alerts", "list"}, {"alerts", "claim"}, {"alerts", "renew"}, {"alerts", "ack"}, {"alerts", "fail"},
		{"incidents", "list"}, {"incidents", "open"},
		{"silences", "list"}, {"silences", "query"},
	} {
		cmd, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"show-labels", "label-columns", "sort-by", "output", "no-headers"} {
			if cmd.Flags().Lookup(name) == nil {
				t.Errorf("%s: no --%s", strings.Join(path, " "), name)
			}
		}
		if f := cmd.Flags().ShorthandLookup("L"); f == nil || f.Name != "label-columns" {
			t.Errorf("%s: -L is not --label-columns", strings.Join(path, " "))
		}
	}
}
