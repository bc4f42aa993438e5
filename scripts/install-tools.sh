#!/usr/bin/env bash
# Installs the system tools the test suite runs for real, from Debian's packages:
#   promtool (package prometheus) and nats-server (package nats-server).
# Needs root (CI runs as root). Elsewhere it says what to install and leaves the choice to you.
set -euo pipefail
# shellcheck source=scripts/apt.sh
. "$(dirname "$0")/apt.sh"
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]} (install with: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]} with apt-get (for the tests that run them)..." >&2
apt_get update -qq
apt_get install -y -qq --no-install-recommends "${missing[@]}"
