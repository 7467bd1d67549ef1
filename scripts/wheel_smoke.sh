#!/usr/bin/env bash
# The program as a user installs it: build the wheel, install it into a fresh venv
# outside the checkout, and run eval, train and the offscreen visualizer from an
# unrelated directory (shaders, MNIST and the pretrained model must come from the wheel).
# Usage: scripts/wheel_smoke.sh [PYTHON]   (tests/test_wheel.py runs it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${1:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$ROOT" >/dev/null 2>&1 \
  || "$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$ROOT" >/dev/null
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check "$WORK"/dist/mnist_viz-*.whl 2>&1 | grep -v '^WARNING' || true
"$WORK/venv/bin/python" -c 'import mnist_viz.viz.cli' # installed, importable
mkdir "$WORK/elsewhere" && cd "$WORK/elsewhere"
# one import name: nothing generic such as `compute` or `viz` lands in site-packages
"$WORK/venv/bin/python" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(n) for n in ("compute", "viz", "shaders", "assets")))' \
  || { echo "the wheel installs a generic top-level module" >&2; exit 1; }
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
echo "== mnist-viz eval (the shipped model, the shipped MNIST)"
"$WORK/venv/bin/mnist-viz" eval
echo "== mnist-viz train --limit 256"
"$WORK/venv/bin/mnist-viz" train --limit 256 --epochs 1 --batch-size 64 --quiet --save model.safetensors
echo "== mnist-viz --offscreen"
"$WORK/venv/bin/mnist-viz" --offscreen --frames 2 --size 800x500 --screenshot shot.png
test -s model.safetensors && test -s shot.png
echo "wheel smoke test passed"
