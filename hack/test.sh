#!/usr/bin/env bash
# The test command of the README and CI: every package's tests against a real
# kube-apiserver + etcd (built once by hack/envtest-binaries.sh) and the real
# PostgreSQL, Prometheus, Alertmanager and Chromium from Debian's packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBEBUILDER_ASSETS="$(hack/envtest-binaries.sh)"
export KUBEBUILDER_ASSETS
hack/ensure-packages.sh

# -p 1: the envtest suites each start a control plane and measure timers in
# seconds; on two cores they are steadier one package at a time.
go test -count=1 -p 1 -timeout 60m "$@" ./...
