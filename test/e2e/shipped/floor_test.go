package shipped

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// TestSmokeOnFloorVersion installs config/default on the oldest
// Kubernetes alertbridge supports (testenv.FloorK8sVersion, Chart.yaml's
// kubeVersion) and runs the Deployments on it as shipped: every object
// applies, the admission policies are served, and an Alert goes the
// whole way through the shipped roles (smoke). TestStartsAsShipped runs
// the same smoke on the current version.
func TestSmokeOnFloorVersion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{K8sVersion: testenv.FloorK8sVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Stop() }()
	sv, err := e.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if want := "v" + testenv.FloorK8sVersion; sv != want {
		t.Fatalf("the control plane reports %s, want %s", sv, want)
	}
	smoke(ctx, t, e)
}

// ServerVersion is the control plane's gitVersion, as `kubectl version`
// reports it.
func (e *Env) ServerVersion() (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(e.Control.Admin)
	if err != nil {
		return "", err
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// smoke is what a new install must do before anything else: a monitor
// creates an Alert with kubectl's path, the operator makes it New, an
// agent claims and acks it with bin/alertbridge, each through its shipped
// ClusterRole bound in a namespace of its own.
func smoke(ctx context.Context, t *testing.T, e *Env) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-"}}
	if err := e.Admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	mon, err := e.User(ctx, ns.Name, "monitor", "alertbridge-monitor")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := e.User(ctx, ns.Name, "agent", "alertbridge-agent")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := mon.Client()
	if err != nil {
		t.Fatal(err)
	}
	a := testbuild.MakeAlert("", ns.Name).Obj()
	// Right after an install the API server may not yet serve the CRD to
	// its admission policies; a monitor retries as it would.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := mc.Create(ctx, a); err != nil {
			t.Logf("create as the monitor: %v", err)
			return false, nil
		}
		return true, nil
	}); err != nil {
		t.Fatalf("the monitor could not create an Alert: %v", err)
	}
	phase := func(want v1.AlertPhase) {
		t.Helper()
		var got v1.Alert
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			if err := e.Admin.Get(ctx, client.ObjectKeyFromObject(a), &got); err != nil {
				return false, err
			}
			return got.Status.Phase == want, nil
		}); err != nil {
			t.Fatalf("Alert %s is %q, want %s:\n%s", a.Name, got.Status.Phase, want, e.Logs(20))
		}
	}
	phase(v1.AlertNew)

	out, err := e.cli(ctx, "alerts", "claim", "--kubeconfig", agent.Kubeconfig, "-n", ns.Name, "--owner", "smoke-agent", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var claimed struct{ Items []v1.Alert }
	if err := json.Unmarshal(out, &claimed); err != nil {
		t.Fatalf("alerts claim -o json printed %q: %v", out, err)
	}
	if len(claimed.Items) != 1 || claimed.Items[0].Name != a.Name {
		t.Fatalf("the agent claimed %d Alerts, want only %s: %s", len(claimed.Items), a.Name, out)
	}
	phase(v1.AlertProcessing)
	if _, err := e.cli(ctx, "alerts", "ack", "--kubeconfig", agent.Kubeconfig, "-n", ns.Name, "--owner", "smoke-agent", "--note", "smoke", a.Name); err != nil {
		t.Fatal(err)
	}
	phase(v1.AlertAcked)
}

// cli runs bin/alertbridge and returns its standard output.
func (e *Env) cli(ctx context.Context, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, e.Binary, args...).Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return out, fmt.Errorf("alertbridge %v: %w: %s", args, err, ee.Stderr)
	}
	return out, err
}
