package chart_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/chart"
	"github.com/alertbridge/alertbridge/internal/installer"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

func render(t *testing.T, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	manifest, err := chart.Render(testenv.Root(), "alertbridge", namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func kustomize(t *testing.T, o installer.Options) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testenv.Installer(o)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// comparable drops what the chart may add or set differently: Helm's own
// labels beside config/'s, the image (the chart's appVersion), comments.
func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	c.SetLabels(nil)
	c.SetAnnotations(nil)
	if c.GetKind() == "Deployment" {
		containers, _, _ := unstructured.NestedSlice(c.Object, "spec", "template", "spec", "containers")
		for _, ct := range containers {
			delete(ct.(map[string]any), "image")
		}
		_ = unstructured.SetNestedSlice(c.Object, containers, "spec", "template", "spec", "containers")
	}
	return c.Object
}

// TestChartAgreesWithConfig keeps the chart in step with config/: for
// each choice the chart offers that config/ ships as a kustomization or
// component, the rendered objects are config/'s, field for field (Helm's
// labels aside), except the Namespace, which `helm install
// --create-namespace` makes.
func TestChartAgreesWithConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		namespace string
		values    map[string]any
		config    installer.Options
	}{
		{"defaults are config/default", installer.DefaultNamespace, nil, installer.Options{}},
		{"mirror off is config/without-mirror", installer.DefaultNamespace,
			map[string]any{"mirror": map[string]any{"mode": "off"}},
			installer.Options{Kustomization: testenv.WithoutMirrorInstall}},
		{"NetworkPolicy and cert-manager are the components", installer.DefaultNamespace,
			map[string]any{"networkPolicy": map[string]any{"enabled": true}, "tls": map[string]any{"mode": "cert-manager"}},
			installer.Options{Components: []string{"config/components/network-policy", "config/components/cert-manager"}}},
		{"monitoring is config/prometheus and config/grafana", installer.DefaultNamespace,
			map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}, "grafanaDashboard": map[string]any{"enabled": true}},
			installer.Options{Components: []string{"config/prometheus", "config/grafana"}}},
		{"another namespace is the installer's", "ops-alerting", nil, installer.Options{Namespace: "ops-alerting"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]*unstructured.Unstructured{}
			for _, u := range render(t, tc.namespace, tc.values) {
				got[testenv.ID(u)] = u
			}
			want := map[string]*unstructured.Unstructured{}
			for _, u := range kustomize(t, tc.config) {
				if u.GetKind() != "Namespace" {
					want[testenv.ID(u)] = u
				}
			}
			for _, k := range slices.Sorted(maps.Keys(want)) {
				g := got[k]
				if g == nil {
					t.Errorf("%s: in config/, not in the chart", k)
					continue
				}
				if !reflect.DeepEqual(comparable(g), comparable(want[k])) {
					t.Errorf("%s differs:\nchart  %v\nconfig %v", k, comparable(g), comparable(want[k]))
				}
				for l, v := range want[k].GetLabels() {
					if g.GetLabels()[l] != v {
						t.Errorf("%s: the chart's labels %v lack config/'s %s=%s", k, g.GetLabels(), l, v)
					}
				}
			}
			for k := range got {
				if want[k] == nil {
					t.Errorf("%s: in the chart, not in config/", k)
				}
			}
		})
	}
}

// nonDefault changes every value the chart has that a dry-run can judge
// (cert-manager's and prometheus-operator's kinds need their CRDs, which
// this cluster does not have; TestChartAgreesWithConfig and
// config/prometheus's tests check those).
var nonDefault = map[string]any{
	"image":            map[string]any{"repository": "registry.example.com/platform/alertbridge", "tag": "v1.2.3", "pullPolicy": "Always"},
	"imagePullSecrets": []any{map[string]any{"name": "registry"}},
	"replicas":         3,
	"resources":        map[string]any{"requests": map[string]any{"cpu": "200m", "memory": "256Mi"}, "limits": map[string]any{"memory": "1Gi"}},
	"mirror":           map[string]any{"mode": "optional", "database": map[string]any{"secretName": "pg", "secretKey": "dsn"}},
	"tls":              map[string]any{"secretName": "api-cert"},
	"api": map[string]any{
		"replicas":      4,
		"gateAnonymous": true, "dashboardAnonymous": true,
		"audiences": []any{"alertbridge", "https://oidc.example.com"},
		"database":  map[string]any{"secretName": "pg-reader", "secretKey": "dsn"},
		"extraArgs": []any{"--default-namespace=alerts"},
	},
	"extraArgs":           []any{"--alert-concurrency=8", "--duplicate-gc-delay=1m"},
	"podDisruptionBudget": map[string]any{"maxUnavailable": 2},
	"networkPolicy":       map[string]any{"enabled": true},
	"flowControl":         map[string]any{"enabled": true},
	"nodeSelector":        map[string]any{"kubernetes.io/os": "linux"},
	"tolerations":         []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}},
	"podAnnotations":      map[string]any{"example.com/team": "sre"},
}

func TestChartLints(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults": nil, "non-default": nonDefault,
		"cert-manager and monitoring": {
			"tls":              map[string]any{"mode": "cert-manager", "certManager": map[string]any{"issuerRef": map[string]any{"kind": "ClusterIssuer", "name": "corp-ca"}}},
			"serviceMonitor":   map[string]any{"enabled": true},
			"prometheusRule":   map[string]any{"enabled": true},
			"grafanaDashboard": map[string]any{"enabled": true},
		},
	} {
		t.Run(name, func(t *testing.T) {
			for _, p := range chart.Lint(testenv.Root(), "ops-alerting", values) {
				t.Error(p)
			}
		})
	}
	// A value outside its choices is refused with the value named.
	for _, bad := range []map[string]any{
		{"mirror": map[string]any{"mode": "sometimes"}},
		{"tls": map[string]any{"mode": "letsencrypt"}},
	} {
		_, err := chart.Render(testenv.Root(), "alertbridge", "ops-alerting", bad)
		if err == nil || !strings.Contains(err.Error(), ".mode") {
			t.Errorf("values %v: got %v, want an error naming the field", bad, err)
		}
	}
}

func TestChartRendersTheValues(t *testing.T) {
	objs := render(t, "ops-alerting", nonDefault)
	deployments := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		if u.GetKind() == "Deployment" {
			deployments[u.GetName()] = u
		}
	}
	for name, want := range map[string]struct {
		args     []string
		env      []string
		replicas string
	}{
		"alertbridge-manager": {
			args:     []string{"run", "--mirror=optional", "--api-tls-secret=api-cert", "--alert-concurrency=8", "--duplicate-gc-delay=1m"},
			env:      []string{"name:pg", "key:dsn", "optional:true"},
			replicas: "3",
		},
		"alertbridge-api": {
			args: []string{"serve", "--api-tls-secret=api-cert", "--gate-anonymous", "--dashboard-anonymous",
				"--api-audiences=alertbridge,https://oidc.example.com", "--default-namespace=alerts"},
			env:      []string{"name:pg-reader", "key:dsn", "optional:true"},
			replicas: "4",
		},
	} {
		dep := deployments[name]
		if dep == nil {
			t.Fatalf("no Deployment %s", name)
		}
		containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
		c := containers[0].(map[string]any)
		if c["image"] != "registry.example.com/platform/alertbridge:v1.2.3" {
			t.Errorf("%s: image %v", name, c["image"])
		}
		args := fmt.Sprint(c["args"])
		for _, w := range want.args {
			if !strings.Contains(args, w) {
				t.Errorf("%s: args %s lack %s", name, args, w)
			}
		}
		env := fmt.Sprint(c["env"])
		for _, w := range want.env {
			if !strings.Contains(env, w) {
				t.Errorf("%s: env %s lacks %s", name, env, w)
			}
		}
		if r, _, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); fmt.Sprint(r) != want.replicas {
			t.Errorf("%s: replicas %v, want %s", name, r, want.replicas)
		}
	}
	// The mirror finalizer policy is there exactly when the mirror may run.
	for mode, want := range map[string]bool{"required": true, "optional": true, "off": false} {
		objs := render(t, "ops-alerting", map[string]any{"mirror": map[string]any{"mode": mode}})
		has := slices.ContainsFunc(objs, func(u *unstructured.Unstructured) bool {
			return u.GetKind() == "MutatingAdmissionPolicy" && u.GetName() == "alertbridge-mirror-finalizer"
		})
		if has != want {
			t.Errorf("mirror %s: mirror finalizer policy installed %v, want %v", mode, has, want)
		}
	}
}

// TestChartAppliesToTheAPIServer applies `helm template` of the default
// and non-default values to a new cluster with server-side dry-run (no
// error, no warning), then installs the non-default one for real, in
// another namespace, and checks that the admission policies know its
// operator.
func TestChartAppliesToTheAPIServer(t *testing.T) {
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	bare := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := bare.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bare.Stop() })
	cfg = kube.WithCLILimits(rest.CopyConfig(cfg))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		namespace string
		values    map[string]any
	}{{installer.DefaultNamespace, nil}, {"ops-alerting", nonDefault}} {
		if err := testenv.Apply(ctx, c, namespace(tc.namespace)); err != nil {
			t.Fatal(err)
		}
		problems, err := testenv.DryRunApply(ctx, cfg, render(t, tc.namespace, tc.values))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("namespace %s: %s", tc.namespace, p)
		}
	}

	const ns = "ops-alerting"
	env, err := testenv.StartWithObjects(append([]*unstructured.Unstructured{namespace(ns)}, render(t, ns, nonDefault)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	if env.Install.Namespace != ns {
		t.Fatalf("installed into %q, want %q", env.Install.Namespace, ns)
	}
	op, err := client.New(env.Operator, client.Options{Scheme: kube.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	a := testbuild.MakeAlert("", metav1.NamespaceDefault).GenerateName("keyed-").Annotation(v1.IngestKeyAnnotation, "k1").Obj()
	if err := testenv.CreateOnceKindsAreKnown(ctx, op, a, client.DryRunAll); err != nil {
		t.Fatalf("the chart's operator in %s is not recognised by the admission policies: %v", ns, err)
	}
}

func namespace(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	u.SetLabels(map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	return u
}

// TestChartGrantsWhereListed: the chart binds the grant roles to the
// manager's ServiceAccount in the namespaces its values list, and nowhere
// else (with none listed, nowhere: config/default binds none).
func TestChartGrantsWhereListed(t *testing.T) {
	objs := render(t, "ops-alerting", map[string]any{"grants": map[string]any{
		"credentials": []any{"prod", "staging"}, "triageJobs": []any{"prod"},
	}})
	got := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() != "RoleBinding" || !strings.HasPrefix(u.GetName(), "alertbridge-credentials") && !strings.HasPrefix(u.GetName(), "alertbridge-triage-jobs") {
			continue
		}
		role, _, _ := unstructured.NestedString(u.Object, "roleRef", "name")
		subjects, _, _ := unstructured.NestedSlice(u.Object, "subjects")
		if len(subjects) != 1 || fmt.Sprint(subjects[0]) != "map[kind:ServiceAccount name:alertbridge-manager namespace:ops-alerting]" {
			t.Errorf("%s/%s binds %v, want the manager's ServiceAccount alone", u.GetNamespace(), u.GetName(), subjects)
		}
		got[role+" in "+u.GetNamespace()] = true
	}
	want := map[string]bool{"alertbridge-credentials in prod": true, "alertbridge-credentials in staging": true, "alertbridge-triage-jobs in prod": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("grants %v, want %v", got, want)
	}
	for _, u := range render(t, "ops-alerting", nil) {
		if u.GetKind() == "RoleBinding" && (u.GetName() == "alertbridge-credentials" || u.GetName() == "alertbridge-triage-jobs") {
			t.Errorf("the defaults grant %s in %s", u.GetName(), u.GetNamespace())
		}
	}
}

// TestChartKubeVersionIsTheFloor: Chart.yaml's kubeVersion admits the
// oldest Kubernetes the install tests run (whose MutatingAdmissionPolicies
// are served as admissionregistration.k8s.io/v1) and refuses the minor
// before it, which does not serve them.
func TestChartKubeVersionIsTheFloor(t *testing.T) {
	floor, err := version.ParseGeneric(testenv.FloorK8sVersion)
	if err != nil {
		t.Fatal(err)
	}
	kv := func(minor uint) *chartutil.KubeVersion {
		return &chartutil.KubeVersion{Version: fmt.Sprintf("v%d.%d.0", floor.Major(), minor), Major: fmt.Sprint(floor.Major()), Minor: fmt.Sprint(minor)}
	}
	if _, err := chart.RenderFor(kv(floor.Minor()), testenv.Root(), "alertbridge", "alertbridge-system", nil); err != nil {
		t.Errorf("the chart refuses Kubernetes %s, the floor the tests run: %v", kv(floor.Minor()).Version, err)
	}
	if _, err := chart.RenderFor(kv(floor.Minor()-1), testenv.Root(), "alertbridge", "alertbridge-system", nil); err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("the chart renders for Kubernetes %s, below the floor %s (error %v)", kv(floor.Minor()-1).Version, testenv.FloorK8sVersion, err)
	}
}
