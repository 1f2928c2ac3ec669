package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/alertstate"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
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
		a := testbuild.MakeAlert("", ns).Host(host).Severity(sev).Obj()
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

	// No operator runs here: nothing has decided triage yet, and the CLI
	// says who will.
	code, out, stderr = runCLI(t, kubeconfig, "-n", ns, "incidents", "convert", second)
	if code != ExitOK || !strings.Contains(out, "appended to incident/"+inc.Name) ||
		!strings.Contains(out, "triage: the operator decides when it sees the Alert (0 runs so far)") {
		t.Fatalf("second convert: exit %d, out %q, err %q", code, out, stderr)
	}

	// An Alert someone else holds is refused before anything is written
	// (exit 3, naming the holder), as the API server would refuse the link.
	held := newAlert("n3", v1.SeverityP0)
	op, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(a *v1.Alert) error{
		func(a *v1.Alert) error {
			alertstate.MarkCanonical(&a.Status, "fp-held", a.CreationTimestamp, a.Generation)
			return nil
		},
		func(a *v1.Alert) error {
			return alertstate.Claim(&a.Status, alertstate.Caller{Owner: "triage-supervisor", User: "system:serviceaccount:ops:supervisor"}, time.Hour, time.Now())
		},
	} {
		var a v1.Alert
		if err := op.Get(ctx, client.ObjectKey{Namespace: ns, Name: held}, &a); err != nil {
			t.Fatal(err)
		}
		orig := a.DeepCopy()
		if err := step(&a); err != nil {
			t.Fatal(err)
		}
		if err := op.Status().Patch(ctx, &a, client.MergeFrom(orig)); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr = runCLI(t, kubeconfig, "-n", ns, "incidents", "convert", held)
	if code != ExitNotHolder || !strings.Contains(stderr, "is held by system:serviceaccount:ops:supervisor (owner triage-supervisor)") ||
		!strings.Contains(stderr, "only the holder may convert it") {
		t.Fatalf("converting a held Alert: exit %d, out %q, err %q", code, out, stderr)
	}
	var heldAlert v1.Alert
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: held}, &heldAlert); err != nil || heldAlert.Status.IncidentRef != nil {
		t.Fatalf("a refused conversion linked the Alert: %v %+v", err, heldAlert.Status.IncidentRef)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"open lists it", []string{"incidents", "open", "--service", "gateway"}, ExitOK, inc.Name},
		{"open filters by service", []string{"incidents", "open", "--service", "billing"}, ExitOK, "No Incidents found."},
		{"wide adds the signature", []string{"incidents", "open", "-o", "wide"}, ExitOK, "SIGNATURE"},
		{"list -A shows namespaces", []string{"incidents", "list", "-A"}, ExitOK, ns},
		{"unknown alert is not found", []string{"incidents", "convert", "nope"}, ExitNotFound, "not found"},
		{"bad cap is a usage error", []string{"incidents", "convert", first, "--severity-cap", "P9"}, ExitUsage, "--severity-cap"},
		{"bad output is a usage error", []string{"incidents", "list", "-o", "xml"}, ExitUsage, "--output"},
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
	// The entries name who wrote them, as the API server authenticated them.
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		t.Fatal(err)
	}
	notes := 0
	for _, e := range inc.Status.Timeline {
		if e.Type == v1.TimelineNote && e.Message == "rolled back v42" && e.Author == review.Status.UserInfo.Username {
			notes++
		}
		if e.Type == v1.TimelineAlertAppended && e.Author != review.Status.UserInfo.Username {
			t.Errorf("entry %d names %q", e.Seq, e.Author)
		}
	}
	if notes != 1 {
		t.Fatalf("want one Note entry by %s, got %d: %+v", review.Status.UserInfo.Username, notes, inc.Status.Timeline)
	}
}
