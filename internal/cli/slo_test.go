package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/cli"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

var (
	gateK8s        client.Client
	restConfig     *rest.Config
	gateKubeconfig string

	shared struct {
		once sync.Once
		env  *testenv.Env
		dir  string
		err  error
	}
)

// TestMain stops the control plane the plain tests share, if one of them
// started it.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		_ = shared.env.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// gateEnv starts, on its first call, the real kube-apiserver and etcd the
// plain tests share and fills in gateK8s, restConfig and gateKubeconfig.
// A process that runs only the Ginkgo suite (which starts its own) starts
// none.
func gateEnv(t *testing.T) {
	t.Helper()
	shared.once.Do(func() { shared.err = startGateEnv() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
}

func startGateEnv() error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	shared.env = env
	restConfig = env.Admin
	if gateK8s, err = client.New(restConfig, client.Options{Scheme: kube.NewScheme()}); err != nil {
		return err
	}
	if shared.dir, err = os.MkdirTemp("", "cli-test-"); err != nil {
		return err
	}
	gateKubeconfig = filepath.Join(shared.dir, "kubeconfig")
	return os.WriteFile(gateKubeconfig, env.KubeConfig, 0o600)
}

// run executes the CLI in-process and returns its exit code and output.
func runGateCLI(t *testing.T, ns string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	root, app := cli.NewRoot()
	var out, errb bytes.Buffer
	app.Out, app.Err = &out, &errb
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"--kubeconfig", gateKubeconfig, "-n", ns}, args...))
	code = cli.Execute(root)
	return code, out.String(), errb.String()
}

func policy(t *testing.T, ns, name string, mode v1.GateMode) *v1.SLOPolicy {
	t.Helper()
	p := testbuild.MakeSLOPolicy(name, ns).Env("staging").GateMode(mode).MaxBypass(time.Hour).EvaluationInterval(15 * time.Second).Obj()
	if err := gateK8s.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func setGate(t *testing.T, p *v1.SLOPolicy, evaluatedAgo time.Duration, d v1.GateDecision, reason string) {
	t.Helper()
	at := metav1.NewTime(time.Now().Add(-evaluatedAgo))
	p.Status.LastEvaluatedAt = &at
	p.Status.Gate = &v1.GateStatus{Decision: d, Reason: reason, Message: "test says " + reason, Since: &at}
	if err := gateK8s.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseCheck(t *testing.T) {
	gateEnv(t)
	ns := testbuild.Namespace(gomega.NewWithT(t), gateK8s, "cli-")
	p := policy(t, ns, "gateway", v1.GateStrict)
	check := []string{"release-check", "--service", "gateway", "--env", "staging"}

	if code, _, errOut := runGateCLI(t, ns, check...); code != cli.ExitBlocked || !strings.Contains(errOut, v1.ReasonStale) {
		t.Fatalf("never evaluated: exit %d, %q; want %d and Stale", code, errOut, cli.ExitBlocked)
	}
	setGate(t, p, time.Second, v1.DecisionAllow, v1.ReasonWithinObjectives)
	if code, out, errOut := runGateCLI(t, ns, check...); code != cli.ExitOK || !strings.Contains(out, "Allow") {
		t.Fatalf("allowed: exit %d, %q %q", code, out, errOut)
	}
	setGate(t, p, time.Second, v1.DecisionBlock, v1.ReasonLatencyP95Exceeded)
	if code, _, errOut := runGateCLI(t, ns, check...); code != cli.ExitBlocked || !strings.Contains(errOut, v1.ReasonLatencyP95Exceeded) {
		t.Fatalf("blocked: exit %d, %q", code, errOut)
	}
	// 46s > 3 × 15s: the operator is presumed stopped.
	setGate(t, p, 46*time.Second, v1.DecisionAllow, v1.ReasonWithinObjectives)
	if code, _, errOut := runGateCLI(t, ns, check...); code != cli.ExitBlocked || !strings.Contains(errOut, v1.ReasonStale) {
		t.Fatalf("stale: exit %d, %q", code, errOut)
	}

	w := policy(t, ns, "warned", v1.GateWarn)
	setGate(t, w, time.Second, v1.DecisionWarn, v1.ReasonErrorRateExceeded)
	if code, out, _ := runGateCLI(t, ns, "release-check", "--policy", "warned", "-o", "json"); code != cli.ExitOK || !strings.Contains(out, `"reason": "ErrorRateExceeded"`) {
		t.Fatalf("warn: exit %d, %q", code, out)
	}
	if code, _, _ := runGateCLI(t, ns, "release-check", "--service", "nope", "--env", "staging"); code != cli.ExitNotFound {
		t.Fatalf("no policy: exit %d, want %d", code, cli.ExitNotFound)
	}
	if code, _, _ := runGateCLI(t, ns, "release-check"); code != cli.ExitUsage {
		t.Fatalf("no service: exit %d, want %d", code, cli.ExitUsage)
	}
}

func TestSLOBypass(t *testing.T) {
	gateEnv(t)
	ctx := context.Background()
	ns := testbuild.Namespace(gomega.NewWithT(t), gateK8s, "cli-")
	p := policy(t, ns, "gateway", v1.GateStrict)
	get := func() map[string]string {
		t.Helper()
		var got v1.SLOPolicy
		if err := gateK8s.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
			t.Fatal(err)
		}
		return got.Annotations
	}

	if code, _, errOut := runGateCLI(t, ns, "slo", "bypass", "gateway", "--for", "2h"); code != cli.ExitUsage || !strings.Contains(errOut, "--reason") {
		t.Fatalf("no reason: exit %d, %q", code, errOut)
	}
	if _, ok := get()[v1.BypassUntilAnnotation]; ok {
		t.Fatal("a bypass without a reason was written")
	}
	if code, _, _ := runGateCLI(t, ns, "slo", "bypass", "missing", "--for", "1h", "--reason", "r"); code != cli.ExitNotFound {
		t.Fatalf("missing policy: exit %d", code)
	}

	before := time.Now()
	code, out, errOut := runGateCLI(t, ns, "slo", "bypass", "gateway", "--for", "48h", "--reason", "hotfix for INC-42")
	if code != cli.ExitOK || !strings.Contains(errOut, "capped") {
		t.Fatalf("bypass: exit %d, %q %q", code, out, errOut)
	}
	ann := get()
	until, err := time.Parse(time.RFC3339, ann[v1.BypassUntilAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	if until.Before(before.Add(time.Hour-2*time.Second)) || until.After(time.Now().Add(time.Hour)) {
		t.Fatalf("until %s is not capped at maxBypass 1h", until)
	}
	if ann[v1.BypassReasonAnnotation] != "hotfix for INC-42" || ann[v1.BypassByAnnotation] == "" {
		t.Fatalf("annotations %v", ann)
	}

	if code, _, errOut := runGateCLI(t, ns, "slo", "bypass", "gateway", "--clear"); code != cli.ExitOK {
		t.Fatalf("clear: exit %d, %q", code, errOut)
	}
	for _, k := range []string{v1.BypassUntilAnnotation, v1.BypassReasonAnnotation, v1.BypassByAnnotation} {
		if _, ok := get()[k]; ok {
			t.Fatalf("%s left after --clear", k)
		}
	}
}
