package testenv

import (
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

func build(t *testing.T, dir string) map[string]*unstructured.Unstructured {
	t.Helper()
	objs, err := Build(filepath.Join(Root(), dir))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		byID[u.GetKind()+" "+u.GetNamespace()+"/"+u.GetName()] = u
	}
	return byID
}

func deployment(t *testing.T, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return nil
	}
	return &c.Env[i]
}

// TestWithoutMirrorIsDefaultMinusTheMirror keeps config/without-mirror in
// step with config/default: the same objects except the mirror finalizer
// component, the same manager Deployment except --mirror=off and no
// database Secret, and the same HTTP API Deployment except no history
// database Secret.
func TestWithoutMirrorIsDefaultMinusTheMirror(t *testing.T) {
	def, off := build(t, DefaultInstall), build(t, WithoutMirrorInstall)
	component := build(t, MirrorFinalizerComponent)
	if len(component) != 2 {
		t.Fatalf("the mirror finalizer component has %d objects, want the policy and its binding", len(component))
	}
	for id := range component {
		if def[id] == nil {
			t.Errorf("%s: config/default must include the mirror finalizer component", id)
		}
		if off[id] != nil {
			t.Errorf("%s: config/without-mirror must leave the mirror finalizer component out", id)
		}
		delete(def, id)
	}
	const dep, apiDep = "Deployment alertbridge-system/alertbridge-manager", "Deployment alertbridge-system/alertbridge-api"
	for _, d := range []string{dep, apiDep} {
		if def[d] == nil || off[d] == nil {
			t.Fatalf("both installs need %s", d)
		}
	}
	shipped, mirrorOff := deployment(t, def[dep]), deployment(t, off[dep])
	api, apiOff := deployment(t, def[apiDep]), deployment(t, off[apiDep])
	for _, d := range []string{dep, apiDep} {
		delete(def, d)
		delete(off, d)
	}
	for id := range def {
		if !reflect.DeepEqual(def[id], off[id]) {
			t.Errorf("%s differs between config/default and config/without-mirror", id)
		}
	}
	for id := range off {
		if def[id] == nil {
			t.Errorf("%s is in config/without-mirror only", id)
		}
	}

	c := shipped.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--mirror=required") {
		t.Errorf("the shipped Deployment runs %v, want --mirror=required", c.Args)
	}
	db := envVar(c, "ALERT_DATABASE_URL")
	switch {
	case db == nil || db.ValueFrom == nil || db.ValueFrom.SecretKeyRef == nil:
		t.Errorf("the shipped Deployment must read ALERT_DATABASE_URL from a Secret")
	case db.ValueFrom.SecretKeyRef.Optional != nil && *db.ValueFrom.SecretKeyRef.Optional:
		t.Errorf("with --mirror=required the database Secret must not be optional")
	}
	ns := envVar(c, "POD_NAMESPACE")
	if ns == nil || ns.ValueFrom == nil || ns.ValueFrom.FieldRef == nil || ns.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("the shipped Deployment must set POD_NAMESPACE from the downward API (metadata.namespace)")
	}

	// Turn the shipped Deployment into the mirror-off one; nothing else may differ.
	want := shipped.DeepCopy()
	wc := &want.Spec.Template.Spec.Containers[0]
	wc.Args[slices.Index(wc.Args, "--mirror=required")] = "--mirror=off"
	wc.Env = slices.DeleteFunc(wc.Env, func(e corev1.EnvVar) bool { return e.Name == "ALERT_DATABASE_URL" })
	if !reflect.DeepEqual(want, mirrorOff) {
		t.Errorf("config/without-mirror's Deployment must differ from config/default's only by --mirror=off and no ALERT_DATABASE_URL:\ngot  %+v\nwant %+v", mirrorOff.Spec.Template.Spec, want.Spec.Template.Spec)
	}

	// The HTTP API reads history with a role that may only read, if its
	// Secret is there; without the mirror it reads none.
	ac := api.Spec.Template.Spec.Containers[0]
	reader := envVar(ac, "ALERT_DATABASE_URL")
	switch {
	case reader == nil || reader.ValueFrom == nil || reader.ValueFrom.SecretKeyRef == nil:
		t.Errorf("the shipped HTTP API must read ALERT_DATABASE_URL from a Secret")
	case reader.ValueFrom.SecretKeyRef.Name == db.ValueFrom.SecretKeyRef.Name:
		t.Errorf("the HTTP API reads the manager's database Secret %s; it must read a role that may only read", db.ValueFrom.SecretKeyRef.Name)
	case reader.ValueFrom.SecretKeyRef.Optional == nil || !*reader.ValueFrom.SecretKeyRef.Optional:
		t.Errorf("the HTTP API's history Secret must be optional")
	}
	wantAPI := api.DeepCopy()
	wac := &wantAPI.Spec.Template.Spec.Containers[0]
	wac.Env = slices.DeleteFunc(wac.Env, func(e corev1.EnvVar) bool { return e.Name == "ALERT_DATABASE_URL" })
	if !reflect.DeepEqual(wantAPI, apiOff) {
		t.Errorf("config/without-mirror's HTTP API must differ from config/default's only by no ALERT_DATABASE_URL")
	}
}

// TestNetworkPolicyComponentFitsTheDeployments keeps the NetworkPolicy
// component in step with the Deployments: one policy per Deployment,
// selecting its pods and admitting exactly the ports its container serves
// to the network (the HTTP API's and the metrics', not the probes').
func TestNetworkPolicyComponentFitsTheDeployments(t *testing.T) {
	policies := map[string]networkingv1.NetworkPolicy{}
	for _, u := range build(t, "config/components/network-policy") {
		var np networkingv1.NetworkPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &np); err != nil {
			t.Fatal(err)
		}
		policies[np.Name] = np
	}
	def := build(t, DefaultInstall)
	for _, name := range []string{ManagerDeployment, APIDeployment} {
		d := deployment(t, def["Deployment alertbridge-system/"+name])
		np, ok := policies[name]
		if !ok {
			t.Fatalf("no NetworkPolicy %s for the Deployment %s", name, name)
		}
		if np.Namespace != d.Namespace {
			t.Fatalf("NetworkPolicy in %q, the Deployment in %q", np.Namespace, d.Namespace)
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Fatalf("the NetworkPolicy %s does not select the Deployment's pods (%v)", name, err)
		}
		for _, other := range []string{ManagerDeployment, APIDeployment} {
			o := deployment(t, def["Deployment alertbridge-system/"+other])
			if other != name && sel.Matches(labels.Set(o.Spec.Template.Labels)) {
				t.Errorf("the NetworkPolicy %s also selects the pods of %s", name, other)
			}
		}
		want, peers := map[int32]bool{}, int32(0)
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			switch p.Name {
			case "api", "metrics":
				want[p.ContainerPort] = true
			case "peers":
				want[p.ContainerPort], peers = true, p.ContainerPort
			}
		}
		got := map[int32]bool{}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				got[p.Port.IntVal] = true
				// The replicas' peer port takes connections from the same
				// Deployment's pods only.
				if p.Port.IntVal == peers && (len(rule.From) != 1 || rule.From[0].PodSelector == nil ||
					rule.From[0].NamespaceSelector != nil || !reflect.DeepEqual(rule.From[0].PodSelector.MatchLabels, np.Spec.PodSelector.MatchLabels)) {
					t.Errorf("%s: the peer port %d is admitted from %+v, want the Deployment's own pods only", name, peers, rule.From)
				}
			}
		}
		if !reflect.DeepEqual(got, want) || len(want) == 0 {
			t.Errorf("%s: ingress ports %v, want the container's api, metrics and peer ports %v", name, got, want)
		}
	}
}
