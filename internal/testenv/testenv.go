// Package testenv starts the real kube-apiserver and etcd that hack/ built,
// with alertbridge's CRDs installed, for the envtest suites.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the control plane hack/envtest-binaries.sh builds.
const K8sVersion = "1.37.2"

// Root is the module root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir is where the control plane binaries are: KUBEBUILDER_ASSETS
// when set, else bin/k8s/<version>-<os>-<arch>.
func AssetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	d := filepath.Join(Root(), "bin", "k8s", fmt.Sprintf("%s-%s-%s", K8sVersion, runtime.GOOS, runtime.GOARCH))
	if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no kube-apiserver in %s: run `make envtest` (or hack/envtest-binaries.sh) first", d)
	}
	return d, nil
}

// Start starts a control plane with the CRDs from config/crd/bases.
func Start() (*envtest.Environment, *rest.Config, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(Root(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to start envtest: %w", err)
	}
	// Racing claimers and storms issue many requests; the client-side
	// limiter would measure itself instead of the operator.
	cfg.QPS, cfg.Burst = 1000, 2000
	return env, cfg, nil
}
