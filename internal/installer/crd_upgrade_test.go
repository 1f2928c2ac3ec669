package installer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// objectsOf reads every YAML file matching pattern (under the module root).
func objectsOf(t *testing.T, patterns ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, p := range patterns {
		files, err := filepath.Glob(filepath.Join(testenv.Root(), p))
		if err != nil || len(files) == 0 {
			t.Fatalf("no files %s (%v)", p, err)
		}
		for _, f := range files {
			o, err := testenv.Objects(f)
			if err != nil {
				t.Fatal(err)
			}
			objs = append(objs, o...)
		}
	}
	return objs
}

// applyCRDs applies crds and returns once each is established, its names
// accepted, and v1alpha1 its only storage version.
func applyCRDs(ctx context.Context, t *testing.T, c client.Client, crds []*unstructured.Unstructured) {
	t.Helper()
	if err := testenv.Apply(ctx, c, crds...); err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(crd.GroupVersionKind())
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), u); err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			ok := map[string]bool{}
			for _, cond := range conds {
				m := cond.(map[string]any)
				ok[fmt.Sprint(m["type"])] = m["status"] == "True"
			}
			return ok["Established"] && ok["NamesAccepted"], nil
		})
		if err != nil {
			t.Fatalf("CRD %s not established: %v", crd.GetName(), err)
		}
	}
}

// TestCRDUpgrade installs the previous release's CRDs
// (testdata/crd-previous), creates objects of every kind, applies the
// current CRDs (config/crd/bases) and proves that every object still reads,
// that a no-op update of it and of its status succeeds, and that it
// validates in full under the new schema (a dry-run create of a copy: CRD
// validation ratcheting lets unchanged fields of an update through, so an
// update alone would not show that).
func TestCRDUpgrade(t *testing.T) {
	cfg := startBare(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	previous := objectsOf(t, "internal/installer/testdata/crd-previous/*.yaml")
	current := objectsOf(t, "config/crd/bases/*.yaml")
	// A release may add kinds; it never drops one.
	for _, p := range previous {
		if !slices.ContainsFunc(current, func(c *unstructured.Unstructured) bool { return c.GetName() == p.GetName() }) {
			t.Fatalf("CRD %s of the previous release is gone: a CRD is never dropped", p.GetName())
		}
	}
	applyCRDs(ctx, t, c, previous)

	samples := objectsOf(t, "config/samples/namespaces.yaml", "config/samples/alertroutingpolicy.yaml",
		"config/samples/incident.yaml", "config/samples/slopolicy.yaml", "config/samples/alert.yaml")
	var created []*unstructured.Unstructured
	for _, u := range samples {
		u = u.DeepCopy()
		if err := testenv.CreateOnceKindsAreKnown(ctx, c, u); err != nil {
			t.Fatalf("%s %s under the previous CRDs: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() != "Namespace" {
			created = append(created, u)
		}
	}
	if len(created) < 4 {
		t.Fatalf("created %d objects, want one of each kind", len(created))
	}

	applyCRDs(ctx, t, c, current)
	checkNS := &unstructured.Unstructured{}
	checkNS.SetAPIVersion("v1")
	checkNS.SetKind("Namespace")
	checkNS.SetName("upgrade-check")
	if err := c.Create(ctx, checkNS); err != nil {
		t.Fatal(err)
	}
	for _, crd := range current {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(crd.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(crd), u); err != nil {
			t.Fatal(err)
		}
		stored, _, _ := unstructured.NestedStringSlice(u.Object, "status", "storedVersions")
		if fmt.Sprint(stored) != "[v1alpha1]" {
			t.Errorf("CRD %s stores %v, want [v1alpha1]", crd.GetName(), stored)
		}
	}
	for _, obj := range created {
		name := fmt.Sprintf("%s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(obj.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
			t.Errorf("%s does not read after the upgrade: %v", name, err)
			continue
		}
		if err := c.Update(ctx, got.DeepCopy()); err != nil {
			t.Errorf("%s: a no-op update fails after the upgrade: %v", name, err)
		}
		if err := c.Status().Update(ctx, got.DeepCopy()); err != nil {
			t.Errorf("%s: a no-op status update fails after the upgrade: %v", name, err)
		}
		// The copy keeps its name (an AlertRoutingPolicy must be named
		// default) in a namespace of its own.
		fresh := got.DeepCopy()
		fresh.SetNamespace(checkNS.GetName())
		for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "finalizers"} {
			unstructured.RemoveNestedField(fresh.Object, "metadata", f)
		}
		delete(fresh.Object, "status")
		if err := c.Create(ctx, fresh, client.DryRunAll); err != nil {
			t.Errorf("%s no longer validates under the new CRDs: %v", name, err)
		}
	}
}
