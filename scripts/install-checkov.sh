#!/usr/bin/env bash
# Installs checkov (pinned in tools/checkov/requirements.txt) into a virtualenv of its own,
# tools/checkov/venv: checkov pins packaging<24 and networkx<2.7, which the project's own
# dependencies (pulumi needs packaging>=24) cannot share one environment with.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tools/checkov
stamp="$dir/venv/.installed"
if [ ! -f "$stamp" ] || [ "$dir/requirements.txt" -nt "$stamp" ]; then
  "${PYTHON:-python3}" -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$dir/requirements.txt"
  touch "$stamp"
fi
