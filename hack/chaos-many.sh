#!/usr/bin/env bash
# make chaos-many: N seeded chaos runs back to back, each DURATION long,
# seeds FIRST..FIRST+N-1. Every run's output goes to bin/chaos/seed-S.log
# and its figures to bin/chaos/seed-S.json; the summary lists each seed's
# violations, and the exit status is non-zero when any seed failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-20} duration=${2:-90s} first=${3:-1}
out=bin/chaos
mkdir -p "$out"
go test -c -o "$out/chaos.test" ./test/e2e/chaos/ || exit 1
failed=()
for ((s = first; s < first + n; s++)); do
	start=$(date +%s)
	CHAOS_SEED=$s CHAOS_DURATION=$duration CHAOS_RESULT="$PWD/$out/seed-$s.json" \
		"$out/chaos.test" -test.count=1 -test.v -test.run '^TestChaos$' -test.timeout 30m >"$out/seed-$s.log" 2>&1
	rc=$?
	v=$(grep -m1 -o 'violations: [0-9]*' "$out/seed-$s.log" || echo 'violations: ?')
	echo "seed $s: exit $rc, $v, $(($(date +%s) - start))s ($out/seed-$s.log)"
	[ $rc -eq 0 ] || failed+=("$s")
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "failed seeds: ${failed[*]}"
	exit 1
fi
echo "$n seeds clean"
