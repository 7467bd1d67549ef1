#!/usr/bin/env bash
# Installs what is missing, idempotently: a Vulkan driver (system), the Python
# environment (.venv) with the project; with "test", also Xvfb and test tools.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-run}"
cd "$ROOT"

say() { echo "[setup] $*" >&2; }

need_pkgs=()
have_vulkan_driver() {
  ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || return 1
  ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json >/dev/null 2>&1
}
have_vulkan_driver || need_pkgs+=(libvulkan1 mesa-vulkan-drivers)
if [ "$MODE" = test ]; then
  command -v xvfb-run >/dev/null 2>&1 && command -v Xvfb >/dev/null 2>&1 || need_pkgs+=(xvfb xauth)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    say "missing system packages: ${need_pkgs[*]}"
    say "install them (e.g. 'sudo apt-get install ${need_pkgs[*]}') or a GPU vendor's Vulkan driver, then run again"
    exit 2
  fi
fi

PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { say "Python >= 3.10 is required"; exit 2; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
extras=""
[ "$MODE" = test ] && extras="[test]"
stamp=".venv/.installed-$(sha1sum < pyproject.toml | cut -c1-12)$extras"
if [ ! -f "$stamp" ]; then
  say "installing the project into .venv (pip install -e .$extras)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".$extras"
  touch "$stamp"
fi
if [ "$MODE" = test ] && ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  # PyTorch only for the interop tests, and only the local CPU build (no multi-GB CUDA download).
  if ls /opt/wheels/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
    say "installing the local PyTorch CPU build for the interop tests"
    .venv/bin/python -m pip install -q torch==2.13.0 || say "PyTorch unavailable: interop tests will be skipped"
  fi
fi
