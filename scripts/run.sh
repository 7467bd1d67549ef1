#!/usr/bin/env bash
# Installs what is missing, then opens the visualizer (arguments go to mnist-viz).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" run
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
exec "$ROOT/.venv/bin/mnist-viz" "$@"
