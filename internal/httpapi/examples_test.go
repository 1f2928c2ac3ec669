package httpapi_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/onsi/gomega"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// The agent examples (examples/agents), run as a user runs them against the
// real operator: the Go loop built and run with a token and the API's CA,
// and the curl script with bash. Each claims, acks what it handles and
// fails the rest for a retry.
func TestAgentExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the examples need %s", tool)
		}
	}
	api := startAgentAPI(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.srv.Certificate().Raw}), 0o600))
	bin := filepath.Join(dir, "go-agent")
	build := exec.CommandContext(context.Background(), "go", "build", "-o", bin, "./examples/agents/go-agent")
	build.Dir = testenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}

	for _, ex := range []struct {
		name string
		cmd  func(ns string) *exec.Cmd
	}{
		{"go-agent", func(ns string) *exec.Cmd {
			c := exec.CommandContext(context.Background(), bin)
			c.Env = append(c.Env, "ALERTBRIDGE_NAMESPACE="+ns, "ALERTBRIDGE_OWNER=go-loop")
			return c
		}},
		{"agent.sh", func(string) *exec.Cmd {
			c := exec.CommandContext(context.Background(), "bash", filepath.Join(testenv.Root(), "examples/agents/agent.sh"))
			c.Env = append(c.Env, "ALERTBRIDGE_OWNER=shell-loop", "PATH="+os.Getenv("PATH"))
			return c
		}},
	} {
		t.Run(ex.name, func(t *testing.T) {
			ns := testbuild.Namespace(gomega.NewWithT(t), k8s, "agents-")
			agent := roleCaller(t, ns, "supervisor", "agent")
			handled := newAlerts(t, ns, 5)
			unhandled := newTitledAlert(t, ns, "unhandled: disk full")
			cmd := ex.cmd(ns)
			cmd.Env = append(cmd.Env, "ALERTBRIDGE_URL="+api.url, "ALERTBRIDGE_TOKEN="+agent.token, "ALERTBRIDGE_CA="+ca, "ALERTBRIDGE_ONCE=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", ex.name, err, out)
			}
			for _, name := range handled {
				a := getAlert(t, ns, name)
				if a.Status.Phase != v1.AlertAcked || a.Status.Ack.By != agent.user {
					t.Fatalf("%s: %s is %s: %+v\n%s", ex.name, name, a.Status.Phase, a.Status.Ack, out)
				}
			}
			if a := getAlert(t, ns, unhandled); a.Status.Phase != v1.AlertFailed || a.Status.LastError == "" || a.Status.RetryAfter == nil {
				t.Fatalf("%s: the unhandled Alert is %s (%q)\n%s", ex.name, a.Status.Phase, a.Status.LastError, out)
			}
		})
	}
}

// newTitledAlert creates one Alert with title and waits until it is New.
func newTitledAlert(t testing.TB, ns, title string) string {
	t.Helper()
	a := testbuild.MakeAlert("", ns).Service("storage").Env("prod").Kind("disk_full").Title(title).Obj()
	must(t, k8s.Create(context.Background(), a))
	gomega.NewWithT(t).Eventually(func() error {
		got := getAlert(t, ns, a.Name)
		if got.Status.Phase != v1.AlertNew {
			return fmt.Errorf("%s is %q, not New yet", a.Name, got.Status.Phase)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	return a.Name
}
