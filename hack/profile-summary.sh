#!/usr/bin/env bash
# Summarises the CPU profiles `BENCH_PROFILE=DIR make bench` writes
# (PREFIX-PROCESS.pprof): per row, how much CPU each process used and where
# the largest parts of it went, as one Markdown table per row.
#
#   hack/profile-summary.sh DIR [PREFIX...]   (default: every prefix in DIR)
set -euo pipefail
dir=${1:?usage: hack/profile-summary.sh DIR [PREFIX...]}
shift
if [ $# -eq 0 ]; then
	mapfile -t prefixes < <(find "$dir" -name '*-kube-apiserver.pprof' -printf '%f\n' | sed 's/-kube-apiserver.pprof$//' | sort)
else
	prefixes=("$@")
fi

# Frames whose cumulative time says what a process spent its CPU on.
apiserver=(
	'status writes|customresource.\(\*StatusREST\).Update'
	'creates|handlers.CreateResource|createHandler'
	'deletes|handlers.DeleteResource'
	'LISTs|ListResource'
	'watches|WatchServer\).HandleHTTP'
	'admission policies (CEL)|validating.\(\*dispatcher\).Dispatch'
	'/metrics|metrics.HandlerWithReset'
	'garbage collector|runtime.gcBgMarkWorker$'
)
replica=(
	'HTTP connections (TLS, requests, answers)|net/http.\(\*conn\).serve$'
	'TLS handshakes|crypto/tls.\(\*Conn\).HandshakeContext'
	'forwarding to the owner|intake.\(\*Router\).forward$'
	'intake (counting)|intake.\(\*Intake\).drain'
	'ingest requests|httpapi.\(\*Server\).serveIngest'
	'claims|claim.\(\*Claimer\).Claim$'
	'reconcilers|controller.\(\*Controller\[.*\]\).reconcileHandler'
	'informer decoding|watch.\(\*StreamWatcher\).receive'
	'mirror|mirror.\(\*Store\)'
	'garbage collector|runtime.gcBgMarkWorker$'
)

seconds() { # 1.06s, 480ms, 2.5mins -> seconds
	awk -v v="$1" 'BEGIN {
		if (v ~ /ms$/) { sub(/ms$/, "", v); print v / 1000 }
		else if (v ~ /us$/) { sub(/us$/, "", v); print v / 1e6 }
		else if (v ~ /mins$/) { sub(/mins$/, "", v); print v * 60 }
		else { sub(/s$/, "", v); print v + 0 } }'
}

for p in "${prefixes[@]}"; do
	echo "### $p"
	echo
	if [ -f "$dir/$p-machine.txt" ]; then
		echo "During these profiles $(cat "$dir/$p-machine.txt")."
		echo
	fi
	echo "| process | CPU | where it went (cumulative) |"
	echo "| --- | --- | --- |"
	for f in "$dir/$p-"*.pprof; do
		proc=$(basename "$f" .pprof)
		proc=${proc#"$p-"}
		top=$(go tool pprof -top -cum -nodecount=100000 "$f" 2>/dev/null)
		dur=$(sed -n 's/^Duration: \([^,]*\),.*/\1/p' <<<"$top")
		total=$(sed -n 's/.*Total samples = \([^ ]*\) .*/\1/p' <<<"$top")
		[ -n "$total" ] || continue
		d=$(seconds "$dur") t=$(seconds "$total")
		if [ "$proc" = kube-apiserver ]; then markers=("${apiserver[@]}"); else markers=("${replica[@]}"); fi
		parts=()
		for m in "${markers[@]}"; do
			label=${m%%|*} re=${m#*|}
			cum=$(awk -v re="$re" '$NF ~ re || $0 ~ re { print $4 }' <<<"$top" | while read -r c; do seconds "$c"; done | sort -g | tail -1)
			[ -n "$cum" ] || continue
			pct=$(awk -v c="$cum" -v t="$t" 'BEGIN { printf "%.0f", 100 * c / t }')
			[ "$pct" -ge 3 ] && parts+=("$label $pct%")
		done
		cores=$(awk -v t="$t" -v d="$d" 'BEGIN { printf "%.2f", t / d }')
		echo "| $proc | $cores cores ($total in $dur) | $(IFS=';'; echo "${parts[*]}" | sed 's/;/, /g') |"
	done
	echo
done
