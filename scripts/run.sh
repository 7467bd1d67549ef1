#!/usr/bin/env bash
# Installs what is missing, then opens the visualizer (arguments go to mnist-viz).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=run
for a in "$@"; do case "$a" in -h|--help) mode=help ;; esac; done  # help needs no GPU driver
bash "$ROOT/scripts/setup.sh" "$mode"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
exec "$ROOT/.venv/bin/mnist-viz" "$@"
