package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/testbuild"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

// runCLI runs the real root command with args and returns the exit code
// and what it printed.
func runCLI(t *testing.T, kubeconfig string, args ...string) (int, string, string) {
	t.Helper()
	root, app := NewRoot()
	var out, errOut bytes.Buffer
	app.Out, app.Err = &out, &errOut
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	return Execute(root), out.String(), errOut.String()
}

func TestIncidentsCLI(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	root, app := NewRoot()
	_ = root
	app.Kube.KubeConfig = &kubeconfig
	c, _, err := incidentClient(app)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := testbuild.Namespace(gomega.NewWithT(t), c, "cli-")
	newAlert := func(host string, sev v1.Severity) string {
		a := testbuild.Alert(ns, testbuild.Host(host), testbuild.Severity(sev))
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		return a.Name
	}
	first, second := newAlert("n1", v1.SeverityP0), newAlert("n2", v1.SeverityP0)

	code, out, stderr := runCLI(t, kubeconfig, "-n", ns, "incidents", "convert", first, "--severity-cap", "P1", "--dedupe-window", "60m", "-o", "json")
	if code != ExitOK {
		t.Fatalf("convert: exit %d: %s", code, stderr)
	}
	var inc v1.Incident
	if err := json.Unmarshal([]byte(out), &inc); err != nil {
		t.Fatalf("convert -o json: %v\n%s", err, out)
	}
	if inc.Kind != "Incident" || inc.Spec.Severity != v1.SeverityP1 || inc.Status.AlertCount != 1 {
		t.Fatalf("convert: want a P1 Incident with one alert, got %s %s %d", inc.Kind, inc.Spec.Severity, inc.Status.AlertCount)
	}

	code, out, stderr = runCLI(t, kubeconfig, "-n", ns, "incidents", "convert", second)
	if code != ExitOK || !strings.Contains(out, "appended to incident/"+inc.Name) || !strings.Contains(out, "triage skipped") {
		t.Fatalf("second convert: exit %d, out %q, err %q", code, out, stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"open lists it", []string{"incidents", "open", "--service", "gateway"}, ExitOK, inc.Name},
		{"open filters by service", []string{"incidents", "open", "--service", "billing"}, ExitOK, "NAME"},
		{"list -A shows namespaces", []string{"incidents", "list", "-A"}, ExitOK, ns},
		{"unknown alert is not found", []string{"incidents", "convert", "nope"}, ExitNotFound, "not found"},
		{"bad cap is a usage error", []string{"incidents", "convert", first, "--severity-cap", "P9"}, ExitUsage, "--severity-cap"},
		{"bad output is a usage error", []string{"incidents", "list", "-o", "yaml"}, ExitUsage, "--output"},
		{"close needs a note", []string{"incidents", "close", inc.Name}, ExitUsage, "--note is required"},
		{"note", []string{"incidents", "note", inc.Name, "--note", "rolled back v42"}, ExitOK, "noted"},
		{"close", []string{"incidents", "close", inc.Name, "--note", "fixed by rollback"}, ExitOK, "closed"},
		{"closed is terminal", []string{"incidents", "close", inc.Name, "--note", "again"}, ExitUsage, "already Closed"},
		{"a closed incident still takes notes", []string{"incidents", "note", inc.Name, "--note", "postmortem on Monday"}, ExitOK, "noted"},
		{"unknown incident is not found", []string{"incidents", "close", "nope", "--note", "x"}, ExitNotFound, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, kubeconfig, append([]string{"-n", ns}, tc.args...)...)
			if code != tc.code || !strings.Contains(out+stderr, tc.want) {
				t.Fatalf("exit %d (want %d), out %q, err %q (want %q)", code, tc.code, out, stderr, tc.want)
			}
		})
	}

	code, out, _ = runCLI(t, kubeconfig, "-n", ns, "incidents", "open", "-o", "json")
	var list struct {
		Kind  string        `json:"kind"`
		Items []v1.Incident `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != ExitOK || err != nil || list.Kind != "List" || len(list.Items) != 0 {
		t.Fatalf("open after close: exit %d, %v, %s", code, err, out)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(&inc), &inc); err != nil {
		t.Fatal(err)
	}
	if inc.Spec.State != v1.IncidentClosed || inc.Spec.Note != "fixed by rollback" {
		t.Fatalf("want Closed with the note, got %s %q", inc.Spec.State, inc.Spec.Note)
	}
	notes := 0
	for _, e := range inc.Status.Timeline {
		if e.Type == v1.TimelineNote && strings.Contains(e.Message, "rolled back v42") {
			notes++
		}
	}
	if notes != 1 {
		t.Fatalf("want one Note entry, got %d: %+v", notes, inc.Status.Timeline)
	}
}
