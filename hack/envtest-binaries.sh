#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd, plus kubectl for
# the dev environment and CLI tests) from the Go module proxy, because no
# prebuilt binaries can be downloaded here. The result is
# cached twice: in bin/ of this clone, and under the user cache keyed by
# version, so that a fresh clone on the same machine (CI) only copies it.
#
# Prints the directory to use as KUBEBUILDER_ASSETS on stdout; progress goes
# to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
STAGING_VERSION="v0.${K8S_VERSION#1.}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
os="$(go env GOOS)"
arch="$(go env GOARCH)"
assets="$root/bin/k8s/${K8S_VERSION}-${os}-${arch}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/alertbridge/envtest/${K8S_VERSION}-${os}-${arch}"

have() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ] && [ -x "$1/kubectl" ]; }

# progress runs a long step and says every minute that it is still going:
# a first build takes 15 to 45 minutes on 2 cores, silent otherwise.
progress() {
  local what=$1 start=$SECONDS ticker
  shift
  ( while sleep 60; do echo ">> still ${what} ($(( (SECONDS - start) / 60 )) min so far)" >&2; done ) &
  ticker=$!
  local status=0
  "$@" || status=$?
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  echo ">> ${what}: done in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s" >&2
  return "$status"
}

if have "$assets"; then
  echo "$assets"
  exit 0
fi

if ! have "$cache"; then
  work="$(mktemp -d)"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  mkdir -p "$cache.partial"
  export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

  echo ">> building kube-apiserver, kubectl and etcd v${K8S_VERSION} from the Go module proxy (first time on this machine only: 15 to 45 minutes on 2 cores)" >&2
  mkdir "$work/apiserver"
  cd "$work/apiserver"
  go mod init alertbridge.local/envtest-apiserver >/dev/null 2>&1
  k8s_gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  # Every staging module k8s.io/kubernetes replaces with ./staging/... is
  # published separately as v0.<minor>.<patch>; point the replaces there.
  replaces=()
  while read -r mod; do
    replaces+=("-replace=${mod}=${mod}@${STAGING_VERSION}")
  done < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$k8s_gomod")
  [ "${#replaces[@]}" -gt 10 ] || { echo "could not read staging modules from $k8s_gomod" >&2; exit 1; }
  go mod edit "${replaces[@]}" -require="k8s.io/kubernetes@v${K8S_VERSION}"
  progress "downloading k8s.io/kubernetes v${K8S_VERSION}" go get "k8s.io/kubernetes/cmd/kube-apiserver@v${K8S_VERSION}" "k8s.io/kubernetes/cmd/kubectl@v${K8S_VERSION}" 2>&1 | { grep -v '^go: downloading' || true; } >&2
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v${K8S_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*}"
  minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor}"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  for cmd in kube-apiserver kubectl; do
    [ -x "$cache.partial/$cmd" ] || [ -x "$cache/$cmd" ] ||
      progress "building $cmd v${K8S_VERSION}" go build -trimpath -ldflags "$ldflags" -o "$cache.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done

  # etcd: the version kubernetes itself is tested against.
  etcd_version="$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/client/v3 \(v[^[:space:]]*\).*#\1#p' "$k8s_gomod" | head -n1)"
  if [ ! -x "$cache/etcd" ]; then
    echo ">> building etcd ${etcd_version}" >&2
    mkdir "$work/etcd"
    cd "$work/etcd"
    go mod init alertbridge.local/envtest-etcd >/dev/null 2>&1
    cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go get "go.etcd.io/etcd/server/v3@${etcd_version}" >&2
    go mod tidy >&2
    progress "building etcd ${etcd_version}" go build -trimpath -ldflags "-s -w" -o "$cache.partial/etcd" .
  fi

  # Keep what an earlier, partial build already produced.
  mkdir -p "$cache"
  for f in "$cache.partial"/*; do
    if [ -e "$f" ]; then mv "$f" "$cache/"; fi
  done
  rm -rf "$cache.partial"
fi

mkdir -p "$assets"
cp "$cache/kube-apiserver" "$cache/etcd" "$cache/kubectl" "$assets/"
echo "$assets"
