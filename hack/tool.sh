#!/usr/bin/env bash
# hack/tool.sh DEST PACKAGE VERSION: install a pinned Go tool to DEST, reusing
# a copy cached by version outside the clone.
set -euo pipefail
dest="$1" pkg="$2" version="$3"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/alertbridge/tools/$(basename "$dest")-$version"
if [ ! -x "$cache" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo ">> installing $pkg@$version" >&2
  GOBIN="$tmp" CGO_ENABLED=0 go install "$pkg@$version"
  mkdir -p "$(dirname "$cache")"
  mv "$tmp/$(basename "$pkg")" "$cache"
fi
mkdir -p "$(dirname "$dest")"
cp "$cache" "$dest"
