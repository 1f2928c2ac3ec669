#!/usr/bin/env bash
# An agent loop against alertbridge's tool endpoint, with curl only: claim
# 25 -> work -> ack, or fail with a retry. An agent written for a
# snake_case tool router works the same way: change the base URL, send a
# bearer token.
#
#   ALERTBRIDGE_URL=https://alertbridge.alertbridge-system.svc:8090 \
#   ALERTBRIDGE_TOKEN=$(kubectl create token supervisor -n ops --audience alertbridge) \
#   ALERTBRIDGE_CA=ca.crt examples/agents/agent.sh
#
# ALERTBRIDGE_OWNER names the loop (default triage-supervisor); ALERTBRIDGE_ONCE=1
# stops when nothing is left to claim instead of polling.
set -euo pipefail

: "${ALERTBRIDGE_URL:?set ALERTBRIDGE_URL}" "${ALERTBRIDGE_TOKEN:?set ALERTBRIDGE_TOKEN}"
OWNER=${ALERTBRIDGE_OWNER:-triage-supervisor}
CURL=(curl -sS --fail-with-body -H "Authorization: Bearer ${ALERTBRIDGE_TOKEN}" -H "Content-Type: application/json")
if [[ -n ${ALERTBRIDGE_CA:-} ]]; then CURL+=(--cacert "$ALERTBRIDGE_CA"); fi

tool() { "${CURL[@]}" -X POST "${ALERTBRIDGE_URL%/}/v1/tools/execute" -d "$1"; }

while true; do
  claimed=$(tool "{\"tool\":\"alert_ingest_tool\",\"action\":\"claim\",\"window_minutes\":240,\"limit\":25,\"owner\":\"$OWNER\",\"lock_ttl_seconds\":600}")
  # alert_ref is namespace/name: DNS names, safe to pick out with grep.
  refs=$(grep -o '"alert_ref":"[^"]*"' <<<"$claimed" | cut -d'"' -f4 || true)
  if [[ -z $refs ]]; then
    if [[ ${ALERTBRIDGE_ONCE:-} == 1 ]]; then exit 0; fi
    sleep 10
    continue
  fi
  for ref in $refs; do
    # Work the alert here. This loop fails the ones whose title says
    # "unhandled" and acks the rest.
    title=$(grep -o "\"alert_ref\":\"$ref\"[^}]*" <<<"$claimed" | grep -o '"title":"[^"]*"' | cut -d'"' -f4)
    if [[ $title == *unhandled* ]]; then
      # A 409 means the lease ran out and someone else holds it now.
      tool "{\"tool\":\"alert_ingest_tool\",\"action\":\"fail\",\"alert_ref\":\"$ref\",\"error\":\"no remediation known\",\"retry_after_seconds\":300}" >/dev/null &&
        echo "failed $ref" || echo "could not fail $ref"
    else
      tool "{\"tool\":\"alert_ingest_tool\",\"action\":\"ack\",\"alert_ref\":\"$ref\",\"note\":\"handled by $OWNER\"}" >/dev/null &&
        echo "acked $ref" || echo "could not ack $ref"
    fi
  done
done
