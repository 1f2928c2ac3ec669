package shipped

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// withoutAddresses drops what the harness may change: bind addresses and
// --kubeconfig.
func withoutAddresses(args []string) []string {
	return slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		name, _, _ := strings.Cut(a, "=")
		return strings.HasSuffix(name, "-bind-address") || name == "--kubeconfig"
	})
}

// errNotCounted is a 503 of the intake: retry.
var errNotCounted = errors.New("503: not counted")

// TestStartsAsShipped runs config/default's Deployments as the benchmarks
// do: two manager processes and two HTTP API processes with their
// arguments, each as its own ServiceAccount, all ready, one leader, each
// API replica serving the HTTP API over TLS to a monitor, all stopping
// cleanly on SIGTERM.
func TestStartsAsShipped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = e.Stop()
		}
	}()

	if len(e.Replicas) != 2 || len(e.APIReplicas) != 2 {
		t.Fatalf("%d manager and %d API replicas running, the Deployments ship 2 each", len(e.Replicas), len(e.APIReplicas))
	}
	for _, p := range []struct {
		c        *corev1.Container
		replicas []*Replica
		kube     string
	}{{e.ManagerContainer(), e.Replicas, "operator.kubeconfig"}, {e.APIContainer(), e.APIReplicas, "api.kubeconfig"}} {
		for _, r := range p.replicas {
			if got, want := withoutAddresses(r.Args), withoutAddresses(p.c.Args); !slices.Equal(got, want) {
				t.Errorf("%s runs %v, the Deployment %v", r.Name, got, want)
			}
			if !slices.ContainsFunc(r.Args, func(a string) bool { return strings.HasSuffix(a, "/"+p.kube) }) {
				t.Errorf("%s does not run as its Deployment's ServiceAccount (%s): %v", r.Name, p.kube, r.Args)
			}
			if !slices.Contains(r.Env, "POD_NAMESPACE=alertbridge-system") {
				t.Errorf("%s lacks POD_NAMESPACE in its environment %v", r.Name, r.Env)
			}
		}
	}
	for _, r := range e.Replicas {
		if !slices.Contains(r.Env, "ALERT_DATABASE_URL="+e.PG.DSN()) {
			t.Errorf("%s lacks the mirror's database in its environment", r.Name)
		}
	}
	for _, r := range e.APIReplicas {
		i := slices.IndexFunc(r.Env, func(v string) bool { return strings.HasPrefix(v, "ALERT_DATABASE_URL=") })
		if i < 0 || strings.Contains(r.Env[i], "//postgres:") {
			t.Errorf("%s must read history as a role that may only read, not the superuser: %v", r.Name, r.Env)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return e.Leader() != nil, nil
	}); err != nil {
		t.Fatalf("no replica became leader:\n%s", e.Logs(20))
	}

	ns, tok := monitor(ctx, t, e, "shipped-")
	hc, err := e.APIClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, err := e.APIServerRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, url := range e.APIURLs() {
		body := fmt.Sprintf(`{"service":"gateway","kind":"latency","title":"p95","labels":{"replica":"%d"}}`, i)
		var status string
		var b []byte
		// A 503 says the occurrence was not counted and asks for a retry:
		// right after an install the API server's mutating admission
		// policies may not know the CRD yet, as a sender would see too.
		err := retry.OnError(RetryBackoff, func(err error) bool { return errors.Is(err, errNotCounted) }, func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/alerts?namespace="+ns, bytes.NewBufferString(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			b, _ = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			status = resp.Status
			if resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(b, []byte("was not counted")) {
				return errNotCounted
			}
			return nil
		})
		if err != nil && !errors.Is(err, errNotCounted) {
			t.Fatalf("replica %d: %v", i, err)
		}
		if status != "200 OK" {
			t.Errorf("replica %d answered %s: %s", i, status, b)
		}
	}
	after, err := e.APIServerRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	created := after.Sub(before).Filter(func(r Request) bool { return r.Verb == "POST" && r.Resource == "alerts" && !r.Failed() }).Total()
	if created < 2 {
		t.Errorf("the API server counted %v Alert creates, want at least 2", created)
	}
	smoke(ctx, t, e)
	if u, err := e.Replicas[0].Usage(); err != nil || u.RSS == 0 {
		t.Errorf("usage %+v: %v", u, err)
	}

	stopped = true
	if err := e.Stop(); err != nil {
		t.Errorf("the replicas did not stop cleanly on SIGTERM: %v", err)
	}
}
