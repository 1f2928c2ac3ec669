package gitops

import (
	"testing"

	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

func TestManaged(t *testing.T) {
	cases := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        bool
	}{
		{"plain", nil, nil, false},
		{"unrelated", map[string]string{"app": "x"}, map[string]string{"note": "y"}, false},
		{"argo annotation", nil, map[string]string{"argocd.argoproj.io/tracking-id": "app:ops.alertbridge.io/Alert:prod/a"}, true},
		{"flux kustomization", map[string]string{"kustomize.toolkit.fluxcd.io/name": "alerts"}, nil, true},
		{"flux helm", map[string]string{"helm.toolkit.fluxcd.io/name": "alerts"}, nil, true},
	}
	for _, c := range cases {
		a := testbuild.MakeAlert("a", "prod").MetaLabels(c.labels).Annotations(c.annotations).Obj()
		if got := Managed(a); got != c.want {
			t.Errorf("%s: Managed = %v, want %v", c.name, got, c.want)
		}
	}
}
