#!/usr/bin/env bash
# The test command of the README and CI: every package's tests against a real
# kube-apiserver + etcd (built once by hack/envtest-binaries.sh) and the real
# PostgreSQL, Prometheus, Alertmanager and Chromium from Debian's packages.
#
# Most of the suites' time is waiting (for controllers, timers, Prometheus
# scrapes), not computing, so three streams run side by side:
#   - the Ginkgo suites, one after another (but for after_e2e), each with its specs spread over
#     GINKGO_PROCS processes (default 3); every process starts a control
#     plane of its own, so no spec shares a cluster with a spec beside it;
#   - the end-to-end packages (test/e2e: the shipped binary's topology and
#     the chaos run), one at a time, then the Ginkgo suites named in
#     after_e2e below;
#   - every other test (the plain Go tests of the Ginkgo packages too), two
#     packages at a time (GO_TEST_PROCS): each starts its own control plane
#     or none. Most of this stream is compiling and linking, which go test
#     does only as many at a time as it runs packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBEBUILDER_ASSETS="$(hack/envtest-binaries.sh)"
export KUBEBUILDER_ASSETS
hack/ensure-packages.sh

mapfile -t suite_files < <(grep -rl --include='*_test.go' 'RunSpecs(' .)
mapfile -t suites < <(printf '%s\n' "${suite_files[@]}" | xargs -n1 dirname | sort -u)
# The test functions that run the Ginkgo suites: the Ginkgo stream runs only
# these, the other streams everything else.
entries="^($(awk '/^func Test[A-Za-z0-9_]*\(/ { match($0, /Test[A-Za-z0-9_]*/); f = substr($0, RSTART, RLENGTH) }
	/RunSpecs\(/ { print f }' "${suite_files[@]}" | sort -u | paste -sd'|'))\$"

# Each stream says how long it took, so the slowest is known.
timed() {
	local name=$1 start=$SECONDS status=0
	shift
	"$@" || status=$?
	echo "[$name] finished in $((SECONDS - start)) s (exit $status)"
	return "$status"
}
# The ginkgo CLI is a tool of this module (go.mod), so its version is the
# library's.
ginkgo() {
	go tool ginkgo run -p --procs="${GINKGO_PROCS:-3}" --timeout=60m --keep-going --no-color "$@" -- -test.run="$entries"
}
# The controllers' suite takes most of the Ginkgo time and the end-to-end
# packages end first, so the suites named here follow the end-to-end
# packages instead of the controllers' suite: the three streams then end
# at about the same time.
after_e2e=(./controllers/mirror ./internal/intake)
mapfile -t first < <(printf '%s\n' "${suites[@]}" | grep -vxF -f <(printf '%s\n' "${after_e2e[@]}"))
mapfile -t later < <(printf '%s\n' "${suites[@]}" | grep -xF -f <(printf '%s\n' "${after_e2e[@]}"))
timed ginkgo ginkgo "${first[@]}" > >(sed -u 's/^/[ginkgo] /') 2>&1 &
ginkgo_pid=$!
e2e_then_suites() {
	local status=0
	go test -count=1 -p 1 -timeout 60m ./test/e2e/... || status=$?
	if ((${#later[@]})); then ginkgo "${later[@]}" || status=$?; fi
	return "$status"
}
timed e2e e2e_then_suites > >(sed -u 's/^/[e2e] /') 2>&1 &
e2e_pid=$!
mapfile -t others < <(go list ./... | grep -v "^$(go list -m)/test/e2e/")
status=0
timed go go test -count=1 -p "${GO_TEST_PROCS:-2}" -timeout 60m -skip "$entries" "${others[@]}" || status=$?
wait "$e2e_pid" || status=$?
wait "$ginkgo_pid" || status=$?
exit "$status"
