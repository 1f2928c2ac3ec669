package shipped

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

func TestBindLoopback(t *testing.T) {
	in := []string{"serve", "--metrics-bind-address=:8443", "--health-probe-bind-address", ":8081", "--other=x", "--pprof-bind-address=0"}
	out, addrs, err := bindLoopback(in, []string{"api", "health-probe"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in)-1+1 { // the two-argument form becomes one, --api-bind-address is added
		t.Fatalf("got %v", out)
	}
	for _, keep := range []string{"serve", "--other=x", "--pprof-bind-address=0"} {
		if !slices.Contains(out, keep) {
			t.Errorf("%s was not kept: %v", keep, out)
		}
	}
	for _, key := range []string{"metrics", "health-probe", "api"} {
		a := addrs[key]
		if !strings.HasPrefix(a, "127.0.0.1:") || a == "127.0.0.1:0" {
			t.Errorf("%s: address %q, want a loopback port", key, a)
		}
		if !slices.Contains(out, "--"+key+"-bind-address="+a) {
			t.Errorf("%s: %v lacks its address %s", key, out, a)
		}
	}
	run, addrs, err := bindLoopback([]string{"run", "--metrics-bind-address=:8443"}, []string{"health-probe"})
	if err != nil || len(run) != 3 || addrs["api"] != "" {
		t.Errorf("the manager gets a probe address and no API address: %v %v %v", run, addrs, err)
	}
	if _, _, err := bindLoopback([]string{"--metrics-bind-address"}, nil); err == nil {
		t.Error("a flag without its value was accepted")
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"--a=1", "--b", "2", "--c", "--d=false"}
	for flag, want := range map[string]string{"--a": "1", "--b": "2", "--c": "true", "--d": "false"} {
		if got, ok := flagValue(args, flag); !ok || got != want {
			t.Errorf("%s = %q (%t), want %q", flag, got, ok, want)
		}
	}
	if _, ok := flagValue(args, "--e"); ok {
		t.Error("--e found")
	}
	if hasFlag(args, "--d") || !hasFlag(args, "--c") {
		t.Error("hasFlag is wrong")
	}
}

// TestShippedDeployments: the harness runs config/default's two
// Deployments, the controller manager's `run` and the HTTP API's `serve`,
// each as shipped, two replicas each.
func TestShippedDeployments(t *testing.T) {
	m, api, err := deploymentsOf(filepath.Join(testenv.Root(), testenv.DefaultInstall))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Deployment: m, APIDeployment: api}
	if c := e.ManagerContainer(); c.Name != "manager" || len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("manager container %q runs %v", c.Name, c.Args)
	}
	if c := e.APIContainer(); c.Name != "api" || len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("API container %q runs %v", c.Name, c.Args)
	}
	for _, d := range []*appsv1.Deployment{m, api} {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			t.Errorf("the shipped Deployment %s has %v replicas; benchmarks and chaos run two", d.Name, d.Spec.Replicas)
		}
	}
	if m.Spec.Template.Spec.ServiceAccountName == api.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("the manager and the HTTP API run as the same ServiceAccount %s", m.Spec.Template.Spec.ServiceAccountName)
	}
	if e.Namespace() != "alertbridge-system" || e.APIServerName() != "alertbridge-api.alertbridge-system.svc" {
		t.Errorf("namespace %s, API server name %s", e.Namespace(), e.APIServerName())
	}
}

func TestProcessUsage(t *testing.T) {
	u, err := ProcessUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS <= 0 || u.PeakRSS < u.RSS {
		t.Errorf("usage %+v", u)
	}
}
