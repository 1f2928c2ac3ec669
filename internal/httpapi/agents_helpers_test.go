package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// agentAPI is the real operator (its ServiceAccount) with the HTTP API in
// front of it, built as `alertbridge serve` builds it (internal/serve, its
// own ServiceAccount), served over TLS as shipped (httptest's certificate;
// client trusts it).
type agentAPI struct {
	srv    *httptest.Server
	server *httpapi.Server
	url    string
	client *http.Client
}

func startAgentAPI(t testing.TB) *agentAPI {
	t.Helper()
	return startAgentAPIWith(t, httpapi.Config{DefaultNamespace: "default"})
}

func startAgentAPIWith(t testing.TB, cfg httpapi.Config) *agentAPI {
	t.Helper()
	quietLogs.Do(func() { logf.SetLogger(logr.Discard()) })
	op, err := testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: time.Minute})
	must(t, err)
	api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: cfg})
	must(t, err)
	s := api.Server
	srv := httptest.NewTLSServer(s.Handler())
	t.Cleanup(func() {
		srv.Close()
		must(t, api.Stop(settle))
		must(t, op.Stop(settle))
	})
	return &agentAPI{srv: srv, server: s, url: srv.URL, client: srv.Client()}
}

// caller is a ServiceAccount bound to a shipped role in a namespace, with a
// token bound to the API's audience.
type caller struct {
	ns, name, user, token string
}

// roleCaller creates ServiceAccount name in ns bound to alertbridge-<role>
// and waits until RBAC grants it.
func roleCaller(t testing.TB, ns, name, role string) caller {
	t.Helper()
	ctx := context.Background()
	must(t, k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-" + role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}))
	c := caller{ns: ns, name: name, user: "system:serviceaccount:" + ns + ":" + name, token: token(t, ns, name)}
	verb := "list"
	if role == "monitor" {
		verb = "create"
	}
	gomega.NewWithT(t).Eventually(func() error {
		sar, err := opCS.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: c.user, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: v1.GroupVersion.Group, Resource: "alerts",
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("%s is not yet allowed to %s alerts", c.user, verb)
		}
		return nil
	}, settle, poll).Should(gomega.Succeed())
	return c
}

// call sends a JSON body (nil: none) as c and decodes the JSON answer into out.
func (a *agentAPI) call(t testing.TB, c caller, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		must(t, err)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, a.url+path, r)
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := a.client.Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	must(t, err)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// newAlerts creates n Alerts of distinct fingerprints in ns (as a monitor
// would through kubectl) and waits until the operator made them New.
func newAlerts(t testing.TB, ns string, n int) []string {
	t.Helper()
	ctx := context.Background()
	names := make([]string, n)
	forEachParallel(n, 16, func(i int) {
		a := testbuild.MakeAlert("", ns).Env("prod").Severity(v1.SeverityP2).Host(fmt.Sprintf("h%d", i)).Obj()
		if err := k8s.Create(ctx, a); err != nil {
			t.Error(err)
			return
		}
		names[i] = a.Name
	})
	gomega.NewWithT(t).Eventually(func() error {
		var list v1.AlertList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		decided := 0
		for _, a := range list.Items {
			if a.Status.Phase == v1.AlertNew {
				decided++
			}
		}
		if decided < n {
			return fmt.Errorf("%d of %d Alerts are New", decided, n)
		}
		return nil
	}, 5*time.Minute, poll).Should(gomega.Succeed())
	return names
}

func forEachParallel(n, width int, f func(int)) {
	sem := make(chan struct{}, width)
	done := make(chan struct{}, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			f(i)
		}()
	}
	for range n {
		<-done
	}
}

func getAlert(t testing.TB, ns, name string) *v1.Alert {
	t.Helper()
	var a v1.Alert
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &a))
	return &a
}
