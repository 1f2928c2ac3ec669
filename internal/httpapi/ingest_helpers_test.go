package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/controllers"
	"github.com/alertbridge/alertbridge/internal/httpapi"
	"github.com/alertbridge/alertbridge/internal/intake"
	"github.com/alertbridge/alertbridge/internal/serve"
	"github.com/alertbridge/alertbridge/test/integration/testoperator"
)

// Bounds of the ingest specs.
const (
	settle = 60 * time.Second
	poll   = 100 * time.Millisecond
)

var (
	quietLogs sync.Once
	// cfg reaches the control plane TestMain started.
	cfg *rest.Config
)

// operator is the real operator (every controller) with the HTTP API in
// front of it, wired as `alertbridge run` wires them.
type operator struct {
	srv    *httptest.Server
	intake *intake.Intake
	// reader is the operator's cache-backed client.
	reader client.Reader
	// writes counts the API writes the intake made.
	writes atomic.Int64
}

type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	panic("not used")
}

func startAPI(t testing.TB) *operator {
	t.Helper()
	quietLogs.Do(func() { logf.SetLogger(logr.Discard()) })
	started, err := testoperator.Start(env.Operator, controllers.Options{DuplicateGCDelay: time.Second})
	must(t, err)
	// The HTTP API's own manager, as its ServiceAccount (alertbridge
	// serve); the intake is built on it with a client that counts writes.
	op := &operator{}
	api, err := testoperator.StartAPI(env.API, serve.Options{HTTP: httpapi.Config{DefaultNamespace: "default"}}, func(mgr ctrl.Manager, o *serve.Options) {
		op.reader = mgr.GetClient()
		op.intake = countingIntake(mgr, op)
		o.HTTP.Intake = op.intake
	})
	must(t, err)
	op.srv = httptest.NewServer(api.Server.Handler())
	t.Cleanup(func() {
		op.srv.Close()
		must(t, api.Stop(settle))
		must(t, started.Stop(settle))
	})
	return op
}

// countingIntake is the intake on mgr, with a client that counts its writes
// in op.writes.
func countingIntake(mgr ctrl.Manager, op *operator) *intake.Intake {
	writer := interceptor.NewClient(noWatch{mgr.GetClient()}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			op.writes.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			op.writes.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			op.writes.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
	return &intake.Intake{Client: writer, Cache: mgr.GetCache(), APIReader: mgr.GetAPIReader(), Clock: clock.RealClock{}}
}

// monitorRole installs the shipped alertbridge-monitor ClusterRole.
func monitorRole(t testing.TB) {
	t.Helper()
	data, err := os.ReadFile("../../config/rbac/monitor_role.yaml")
	must(t, err)
	var role rbacv1.ClusterRole
	must(t, yaml.Unmarshal(data, &role))
	if err := k8s.Create(context.Background(), &role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// monitorToken mints a token of a ServiceAccount bound to the shipped
// alertbridge-monitor role in ns.
func monitorToken(t testing.TB, ns string) string {
	t.Helper()
	monitorRole(t)
	must(t, k8s.Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "monitor", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "alertbridge-monitor"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "monitor", Namespace: ns}},
	}))
	return token(t, ns, "monitor")
}

// readerToken mints a token of a ServiceAccount bound to the shipped
// alertbridge-monitor and alertbridge-viewer roles in ns: a monitor that may
// also read Alerts, and so is told which Alert counted its occurrence.
func readerToken(t testing.TB, ns string) string {
	t.Helper()
	monitorRole(t)
	for _, role := range []string{"alertbridge-monitor", "alertbridge-viewer"} {
		must(t, k8s.Create(context.Background(), &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "reader-" + role, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}},
		}))
	}
	return token(t, ns, "reader")
}

// post sends body with tok (and extra headers) and decodes the JSON answer.
func post(t testing.TB, c *http.Client, url, tok string, body []byte, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	must(t, err)
	defer func() { _ = resp.Body.Close() }()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("POST %s: content type %q", url, ct)
	}
	var out map[string]any
	must(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func alerts(t testing.TB, ns string) []v1.Alert {
	t.Helper()
	var list v1.AlertList
	must(t, k8s.List(context.Background(), &list, client.InNamespace(ns)))
	return list.Items
}
