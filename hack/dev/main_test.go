package main

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// TestSamplesReadDevPrometheus: the kustomization make dev applies is
// config/samples with only the SLOPolicy's source changed, to the
// Prometheus make dev started.
func TestSamplesReadDevPrometheus(t *testing.T) {
	root := testenv.Root()
	policy, err := readSampleSLOPolicy(root)
	if err != nil {
		t.Fatal(err)
	}
	const promURL = "http://127.0.0.1:45678"
	dir, err := writeSamples(root, t.TempDir(), policy, promURL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := testenv.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := testenv.Build(filepath.Join(root, "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("make dev applies %d objects, config/samples has %d", len(got), len(want))
	}
	for i, u := range got {
		url, _, _ := unstructured.NestedString(u.Object, "spec", "source", "prometheus", "url")
		isPolicy := u.GetKind() == "SLOPolicy" && u.GetName() == policy.Name && u.GetNamespace() == policy.Namespace
		switch {
		case isPolicy && url != promURL:
			t.Errorf("the sample SLOPolicy reads %q, want make dev's Prometheus %q", url, promURL)
		case isPolicy:
			unstructured.RemoveNestedField(u.Object, "spec", "source", "prometheus", "url")
			unstructured.RemoveNestedField(want[i].Object, "spec", "source", "prometheus", "url")
			fallthrough
		default:
			if testenv.ID(u) != testenv.ID(want[i]) || !equal(u, want[i]) {
				t.Errorf("make dev changed %s beyond the SLOPolicy's URL", testenv.ID(want[i]))
			}
		}
	}
}

func equal(a, b *unstructured.Unstructured) bool {
	ja, errA := a.MarshalJSON()
	jb, errB := b.MarshalJSON()
	return errA == nil && errB == nil && string(ja) == string(jb)
}
