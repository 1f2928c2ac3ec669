package installer_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/installer"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

const networkPolicy = "config/components/network-policy"

func render(t *testing.T, o installer.Options) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testenv.Installer(o)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// startBare starts a control plane with nothing installed, as a new
// cluster is before `kubectl apply -f dist/install.yaml`.
func startBare(t *testing.T) *rest.Config {
	t.Helper()
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	return startBareOn(t, assets)
}

// startBareOn is startBare with the control plane binaries in assets.
func startBareOn(t *testing.T, assets string) *rest.Config {
	t.Helper()
	env := &envtest.Environment{}
	testenv.UseBinaries(env, assets)
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return kube.WithCLILimits(rest.CopyConfig(cfg))
}

// TestInstallYAML renders dist/install.yaml as `make build-installer`
// does (freshly: no committed copy can be stale) and applies it with
// server-side dry-run to a new cluster of the current Kubernetes and of
// the oldest one supported: not one error or warning.
func TestInstallYAML(t *testing.T) {
	const image = "registry.example.com/platform/alertbridge:v1.2.3"
	objs := render(t, installer.Options{Image: image, Components: []string{networkPolicy}})

	// Everything config/default ships, plus the NetworkPolicy, nothing else.
	want := map[string]bool{}
	for _, dir := range []string{testenv.DefaultInstall, networkPolicy} {
		built, err := testenv.Build(filepath.Join(testenv.Root(), dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range built {
			want[testenv.ID(u)] = true
		}
	}
	got := map[string]bool{}
	for _, u := range objs {
		got[testenv.ID(u)] = true
		if !want[testenv.ID(u)] {
			t.Errorf("%s is not in config/default", testenv.ID(u))
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("%s is missing from install.yaml", k)
		}
	}
	for _, kind := range []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ValidatingAdmissionPolicy", "MutatingAdmissionPolicy", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "FlowSchema"} {
		if !slices.ContainsFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == kind }) {
			t.Errorf("install.yaml has no %s", kind)
		}
	}
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			t.Fatal(err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != image {
			t.Errorf("the Deployment runs %q, want the IMG given, %q", img, image)
		}
	}

	for _, version := range []string{testenv.K8sVersion, testenv.FloorK8sVersion} {
		t.Run(version, func(t *testing.T) {
			assets, err := testenv.AssetsDirFor(version)
			if err != nil {
				t.Fatal(err)
			}
			cfg := startBareOn(t, assets)
			dc, err := discovery.NewDiscoveryClientForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if sv, err := dc.ServerVersion(); err != nil || sv.GitVersion != "v"+version {
				t.Fatalf("the control plane reports %v (%v), want v%s", sv, err, version)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// A dry-run Namespace is not created, and the namespaced
			// objects need it: create it for real first, as kubectl
			// would have by then.
			c, err := client.New(cfg, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := testenv.Apply(ctx, c, objs[0]); err != nil || objs[0].GetKind() != "Namespace" {
				t.Fatalf("the Namespace must come first and apply (%s): %v", testenv.ID(objs[0]), err)
			}
			problems, err := testenv.DryRunApply(ctx, cfg, objs)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Error(p)
			}
		})
	}
}

// TestInstallIntoAnotherNamespace: the operator's identity follows
// the namespace it is installed in. Installed into ops-alerting, its
// ServiceAccount is bound to its roles, the admission policies recognise
// it as the operator and refuse others, and API Priority and Fairness
// puts its requests in its own FlowSchema.
func TestInstallIntoAnotherNamespace(t *testing.T) {
	const ns = "ops-alerting"
	objs := render(t, installer.Options{Namespace: ns, Components: []string{networkPolicy}})
	for _, u := range objs {
		if u.GetNamespace() == installer.DefaultNamespace || (u.GetKind() == "Namespace" && u.GetName() != ns) {
			t.Errorf("%s is still in %s", testenv.ID(u), installer.DefaultNamespace)
		}
	}
	env, err := testenv.StartWithObjects(objs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if env.Install.Namespace != ns {
		t.Fatalf("the operator was installed into %q, want %q", env.Install.Namespace, ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := client.New(env.Admin, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}

	// Only the operator may set the intake's idempotency annotation.
	const user = "monitor@example.com"
	if err := admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "monitor", Namespace: metav1.NamespaceDefault},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-monitor"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}); err != nil {
		t.Fatal(err)
	}
	keyed := func() *v1.Alert {
		return testbuild.MakeAlert("", metav1.NamespaceDefault).GenerateName("keyed-").Annotation(v1.IngestKeyAnnotation, "k1").Obj()
	}
	operator, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateOnceKindsAreKnown(ctx, operator, keyed(), client.DryRunAll); err != nil {
		t.Errorf("the operator installed in %s is not recognised by the admission policies: %v", ns, err)
	}
	api, err := client.New(env.API, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateOnceKindsAreKnown(ctx, api, keyed(), client.DryRunAll); err != nil {
		t.Errorf("the HTTP API installed in %s is not recognised by the admission policies: %v", ns, err)
	}
	monitor, err := client.New(env.As(user), client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	err = onceBound(ctx, func() error { return monitor.Create(ctx, keyed(), client.DryRunAll) })
	if err == nil || !strings.Contains(err.Error(), "set only by the alertbridge operator") {
		t.Errorf("a monitor setting %s: got %v, want the policy's refusal", v1.IngestKeyAnnotation, err)
	}
	// The names of the default namespace are nobody's operator here: a
	// ServiceAccount alertbridge-manager made in alertbridge-system is
	// refused like any other caller.
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: installer.DefaultNamespace}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "alertbridge-manager", Namespace: installer.DefaultNamespace}}); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "impostor", Namespace: metav1.NamespaceDefault},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "alertbridge-manager"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "alertbridge-manager", Namespace: installer.DefaultNamespace}},
	}); err != nil {
		t.Fatal(err)
	}
	impostorCfg, err := env.ServiceAccountConfig(installer.DefaultNamespace, "alertbridge-manager")
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := client.New(impostorCfg, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	err = onceBound(ctx, func() error { return impostor.Create(ctx, keyed(), client.DryRunAll) })
	if err == nil || !strings.Contains(err.Error(), "set only by the alertbridge operator") {
		t.Errorf("alertbridge-manager of %s, with the manager's ClusterRole, setting %s: got %v, want the policy's refusal",
			installer.DefaultNamespace, v1.IngestKeyAnnotation, err)
	}

	// Each identity's requests land in the FlowSchema made for them: the
	// manager's, the HTTP API's, and the reviews the API makes for its
	// callers, which a flood of made-up tokens fills apart from both.
	for _, c := range []struct {
		who        string
		cfg        *rest.Config
		method     string
		path, body string
		schema     string
	}{
		{"the manager", env.Operator, http.MethodGet, "/apis/ops.alertbridge.io/v1alpha1/alerts?limit=1", "", "alertbridge"},
		{"the HTTP API", env.API, http.MethodGet, "/apis/ops.alertbridge.io/v1alpha1/alerts?limit=1", "", "alertbridge-api"},
		{"the HTTP API's TokenReview", env.API, http.MethodPost, "/apis/authentication.k8s.io/v1/tokenreviews",
			`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"made-up","audiences":["alertbridge"]}}`, "alertbridge-reviews"},
		{"the HTTP API's SubjectAccessReview", env.API, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews",
			`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"someone","resourceAttributes":{"verb":"get","resource":"pods"}}}`, "alertbridge-reviews"},
	} {
		var fs flowcontrolv1.FlowSchema
		if err := admin.Get(ctx, client.ObjectKey{Name: c.schema}, &fs); err != nil {
			t.Fatal(err)
		}
		if got := fs.Spec.Rules[0].Subjects[0].ServiceAccount.Namespace; got != ns {
			t.Fatalf("the FlowSchema %s's subject is in %q, want %q", c.schema, got, ns)
		}
		hc, err := rest.HTTPClientFor(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, c.method, c.cfg.Host+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got := resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID"); got != string(fs.UID) {
			t.Errorf("%s's request was classified by FlowSchema %q (HTTP %d), want %s's %q", c.who, got, resp.StatusCode, c.schema, fs.UID)
		}
	}
}

// onceBound calls create until RBAC stops refusing it (a RoleBinding reaches
// the authorizer through informers, within a minute) and returns its last
// answer: what the admission policies say.
func onceBound(ctx context.Context, create func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := create()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "is forbidden: User") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
