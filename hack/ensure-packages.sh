#!/usr/bin/env bash
# Installs the Debian packages the tests start for real, when missing.
set -euo pipefail

need=()
# The dashboard page's browser test (internal/httpapi) drives headless Chromium.
command -v chromium >/dev/null || need+=(chromium)
pg_ctl_found() { compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || command -v pg_ctl >/dev/null; }
pg_ctl_found || need+=(postgresql)
command -v runuser >/dev/null || need+=(util-linux)
command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)

[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${need[*]} (install them, or run as root)" >&2
  exit 1
fi
echo ">> installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
