#!/usr/bin/env bash
# Reproduces bench/results/2026-11-30-storm-before-after.md: the in-process
# storm benchmark that existed before the Alert controller became the only
# one to decide duplicates (BenchmarkIngestStorm at 0b16019^), run on both
# sides of that change, alternately, in one session.
#
#   before: 0b16019^ with before.patch (the monitor's token minted by the
#           admin, since the operator's role no longer mints it; an
#           OLDSTORM_QPS knob for the operator's client limits)
#   after:  AFTER (default main) with after.patch (the same benchmark,
#           ported to main's APIs under bench/oldstorm; install
#           config/without-mirror, as the benchmark runs no mirror)
#
# Usage: run.sh [AFTER] [ROUNDS] [N]   (run from the repository root)
set -euo pipefail
after=${1:-main} rounds=${2:-3} n=${3:-4000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/before"; git -C "$root" worktree remove --force "$work/after"; rm -rf "$work"' EXIT
git -C "$root" worktree add --detach "$work/before" 0b16019^ >/dev/null
git -C "$root" worktree add --detach "$work/after" "$after" >/dev/null
git -C "$work/before" apply "$here/before.patch"
git -C "$work/after" apply "$here/after.patch"
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$root/bin/k8s/1.37.2-linux-amd64}
(cd "$work/before/bench" && go test -c -o "$work/before.test" .)
(cd "$work/after/bench/oldstorm" && go test -c -o "$work/after.test" .)
one() { # side qps
  local dir=$work/before/bench
  [ "$1" = after ] && dir=$work/after/bench/oldstorm
  echo "== $1 operator qps $2 n $n $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd "$dir" && OLDSTORM_QPS=$2 "$work/$1.test" -test.run '^$' -test.bench '^BenchmarkIngestStorm$' \
    -test.benchtime "${n}x" -test.timeout 20m 2>&1 | grep -E 'occurrences/s|FAIL|panic' || true)
}
for _ in $(seq "$rounds"); do
  # -1: main's shipped client limits (none); 100: those shipped before.
  for q in -1 100; do one before "$q"; one after "$q"; done
done
