// Package chart renders the Helm chart charts/alertbridge with the Helm
// Go SDK, as `helm template` would, for the tests that keep it in step
// with config/ and apply it to a real API server.
package chart

import (
	"fmt"
	"path/filepath"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// Dir is the chart's directory under the module root.
const Dir = "charts/alertbridge"

// KubeVersion is the Kubernetes version the chart is rendered for: the
// control plane the tests run.
var KubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}

// Render is `helm template RELEASE DIR --namespace NS --include-crds -f values`.
func Render(root, release, namespace string, values map[string]any) (string, error) {
	return RenderFor(KubeVersion, root, release, namespace, values)
}

// RenderFor is Render with `--kube-version`: Helm refuses a Kubernetes
// version outside the chart's kubeVersion.
func RenderFor(kv *chartutil.KubeVersion, root, release, namespace string, values map[string]any) (string, error) {
	ch, err := loader.Load(filepath.Join(root, Dir))
	if err != nil {
		return "", err
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = release
	install.Namespace = namespace
	install.KubeVersion = kv
	rel, err := install.Run(ch, values)
	if err != nil {
		return "", fmt.Errorf("failed to render %s: %w", Dir, err)
	}
	return rel.Manifest, nil
}

// Lint is `helm lint --strict`: every message of warning severity or
// above, as text.
func Lint(root, namespace string, values map[string]any) []string {
	l := lint.AllWithKubeVersion(filepath.Join(root, Dir), values, namespace, KubeVersion)
	var problems []string
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			problems = append(problems, m.Error())
		}
	}
	return problems
}
