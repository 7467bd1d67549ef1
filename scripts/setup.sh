#!/usr/bin/env bash
# Installs what is missing, idempotently: a Vulkan driver (system), the Python
# environment (.venv) with the project; with "test", also Xvfb and test tools.
# Run by scripts/run.sh and scripts/test.sh; safe to run again; silent when nothing is missing.
#
# Usage: setup.sh [run|test|help]   (help: only the .venv, no system checks: `run.sh --help`)
# Exit codes: 0 ready (possibly with a one-line warning), 2 cannot run (no Vulkan driver, old Python).
#
# Environment overrides (for tests and unusual systems):
#   MNIST_VIZ_VK_ICD_DIRS       colon-separated ICD manifest dirs, replacing the standard ones
#                               (the wgpu probe then sees exactly these too, via VK_DRIVER_FILES)
#   MNIST_VIZ_VK_LIB_DIRS       colon-separated dirs holding libvulkan.so.1, replacing ldconfig and
#                               the usual lib dirs
#   MNIST_VIZ_PROBE_PYTHON      the Python that enumerates wgpu adapters (default .venv/bin/python;
#                               empty: no probe, as on a first run before the .venv exists)
#   MNIST_VIZ_SETUP_UID         the user id to act as (default `id -u`; 0 = root)
#   MNIST_VIZ_SETUP_SYSTEM_ONLY=1  stop after the system checks (no .venv, no pip)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-run}"
cd "$ROOT"

say() { echo "[setup] $*" >&2; }

# --- Vulkan: loader library, ICD manifests, and wgpu as the authority -------------------

have_vulkan_loader() {
  local dirs d
  if [ -n "${MNIST_VIZ_VK_LIB_DIRS:-}" ]; then
    IFS=: read -ra dirs <<< "$MNIST_VIZ_VK_LIB_DIRS"
  else
    # The linker cache first (ldconfig lives in /sbin, often off a user's PATH); capture it
    # rather than pipe into `grep -q`, which under pipefail can fail on SIGPIPE.
    local cache
    cache="$( { command -v ldconfig >/dev/null && ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null || true)"
    [[ "$cache" == *"libvulkan.so.1 "* ]] && return 0
    IFS=: read -ra dirs <<< "${LD_LIBRARY_PATH:-}"
    dirs+=(/usr/local/lib /usr/lib/*-linux-gnu /lib/*-linux-gnu /usr/lib64 /lib64 /usr/lib /lib)
  fi
  for d in "${dirs[@]}"; do
    [ -n "$d" ] && [ -e "$d/libvulkan.so.1" ] && return 0
  done
  return 1
}

# The directories (or manifest files) the Vulkan loader reads ICD manifests from.
icd_locations() {
  if [ -n "${MNIST_VIZ_VK_ICD_DIRS:-}" ]; then
    echo "$MNIST_VIZ_VK_ICD_DIRS"
  elif [ -n "${VK_DRIVER_FILES:-}" ]; then   # set: the loader reads only these
    echo "$VK_DRIVER_FILES"
  elif [ -n "${VK_ICD_FILENAMES:-}" ]; then  # the older name of the same
    echo "$VK_ICD_FILENAMES"
  else
    # The loader's search path: config dirs, then data dirs (XDG defaults when unset).
    local home="${HOME:-/nonexistent}" bases d out=()
    IFS=: read -ra bases <<< "${XDG_CONFIG_HOME:-$home/.config}:${XDG_CONFIG_DIRS:-/etc/xdg}:/etc:${XDG_DATA_HOME:-$home/.local/share}:${XDG_DATA_DIRS:-/usr/local/share:/usr/share}:/usr/local/share:/usr/share"
    for d in "${bases[@]}"; do [ -n "$d" ] && out+=("$d/vulkan/icd.d"); done
    (IFS=:; echo "${out[*]}")
  fi
}

# Any ICD manifest (Mesa's or a vendor's, e.g. nvidia_icd.json), each location checked on its own.
have_vulkan_icd() {
  local locs loc f
  IFS=: read -ra locs <<< "$(icd_locations)"
  for loc in "${locs[@]}"; do
    [ -n "$loc" ] || continue
    if [ -f "$loc" ]; then return 0; fi
    for f in "$loc"/*.json; do [ -f "$f" ] && return 0; done
  done
  return 1
}

# Asks wgpu (the library that will use the driver) for a Vulkan/Metal/D3D12 adapter; OpenGL
# does not count. Returns 0: found, 1: none, 2: cannot tell (no .venv or wgpu yet, timeout).
probe_wgpu() {
  local py="${MNIST_VIZ_PROBE_PYTHON-$ROOT/.venv/bin/python}" out rc=0
  [ -n "$py" ] && [ -x "$py" ] || return 2
  local cmd=(env)  # env's options before its assignments
  [ -n "${MNIST_VIZ_VK_ICD_DIRS:-}" ] && cmd+=(-u VK_ICD_FILENAMES "VK_DRIVER_FILES=$MNIST_VIZ_VK_ICD_DIRS")
  cmd+=("XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}")
  command -v timeout >/dev/null && cmd=(timeout 30 "${cmd[@]}")
  out="$("${cmd[@]}" "$py" -c '
import wgpu
kinds = {a.info.get("backend_type") for a in wgpu.gpu.enumerate_adapters_sync()}
print("found" if kinds & {"Vulkan", "Metal", "D3D12"} else "none")' 2>/dev/null)" || rc=$?
  [ "$rc" = 124 ] && say "the wgpu adapter probe timed out (30 s): judging the driver by its files"
  case "$out" in found) return 0 ;; none) return 1 ;; *) return 2 ;; esac
}

# --- packages ----------------------------------------------------------------------------

pkg_installed() {  # dpkg's word, where there is a dpkg
  local status
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
  [[ "$status" == *" ok installed" ]]
}

# Fills need_pkgs with what is really missing (neither working nor installed per dpkg), and sets
# vk (ok | missing: no loader or no driver at all | broken: both there, but wgpu finds no adapter),
# probe (probe_wgpu's answer) and xvfb (ok | missing).
check_system() {
  need_pkgs=() vk=ok xvfb=ok probe=0
  local loader=0 icd=0
  have_vulkan_loader && loader=1
  have_vulkan_icd && icd=1
  probe_wgpu || probe=$?
  # wgpu's answer wins where there is one; before the .venv exists, the files decide.
  if [ "$probe" = 1 ] || { [ "$probe" = 2 ] && [ $((loader & icd)) = 0 ]; }; then
    [ "$loader" = 1 ] || pkg_installed libvulkan1 || need_pkgs+=(libvulkan1)
    # No manifest, or manifests but no adapter (say a broken vendor driver): Mesa's drivers
    # (with lavapipe, a CPU fallback).
    { [ "$icd" = 1 ] && [ "$probe" = 2 ]; } || pkg_installed mesa-vulkan-drivers || need_pkgs+=(mesa-vulkan-drivers)
    if [ $((loader & icd)) = 0 ]; then vk=missing; else vk=broken; fi
  fi
  # Xvfb only for the tests, and only without a display (test.sh then runs under xvfb-run).
  if [ "$MODE" = test ] && [ -z "${DISPLAY:-}" ]; then
    { command -v xvfb-run && command -v Xvfb; } >/dev/null || pkg_installed xvfb || need_pkgs+=(xvfb)
    command -v xauth >/dev/null || pkg_installed xauth || need_pkgs+=(xauth)
    { command -v xvfb-run && command -v Xvfb && command -v xauth; } >/dev/null || xvfb=missing
  fi
  return 0
}

# Installs need_pkgs with apt-get (as root, or through non-interactive sudo). On failure sets
# why_not to a short reason and returns 1. apt-get update runs only here, i.e. only when needed.
install_pkgs() {
  local sudo=() uid="${MNIST_VIZ_SETUP_UID:-$(id -u)}" log rc=0
  if ! command -v apt-get >/dev/null; then why_not="no apt-get on this system"; return 1; fi
  if [ "$uid" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n)
    else why_not="not root, and no sudo without a password"; return 1; fi
  fi
  say "installing system packages: ${need_pkgs[*]}"
  log="$(mktemp "${TMPDIR:-/tmp}/mnist-viz-apt.XXXXXX")"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" update -qq >>"$log" 2>&1 || true  # a stale list may still do: install decides
  "${apt[@]}" install -y -qq --no-install-recommends "${need_pkgs[@]}" >>"$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then why_not="apt-get failed with exit $rc, offline? log: $log"; return 1; fi
  rm -f "$log"
}

if [ "$MODE" != help ]; then
  check_system
  if [ ${#need_pkgs[@]} -gt 0 ]; then
    why_not="still missing after apt-get install"
    if install_pkgs; then check_system; fi  # check again: did it work?
  fi
  if [ ${#need_pkgs[@]} -gt 0 ]; then
    pkgs="${need_pkgs[*]}"
    how="install them with 'sudo apt-get install $pkgs'"
    [[ "$why_not" == "no apt-get"* ]] && how="install them with your package manager"
    if [ "$vk" = missing ]; then  # the one thing the program cannot do without
      say "error: no Vulkan driver, and could not install $pkgs ($why_not): $how (or your GPU vendor's Vulkan driver), then run again"
      exit 2
    fi
    effect=""  # what goes without them
    [ "$vk" = broken ] && effect="wgpu finds no Vulkan adapter; "
    [ "$xvfb" = missing ] && effect+="the window tests will be skipped; "
    say "could not install $pkgs ($why_not): $effect$how"
  elif [ "$probe" = 1 ]; then
    say "warning: the Vulkan packages are installed, but wgpu finds no Vulkan adapter (check the driver with vulkaninfo)"
  fi
fi
[ "${MNIST_VIZ_SETUP_SYSTEM_ONLY:-0}" = 1 ] && exit 0

# --- Python environment ------------------------------------------------------------------

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
# PyTorch for the interop tests (where CI is set they fail without it), only ever a CPU build:
# on Linux PyPI's torch is the CUDA one (gigabytes), so ask for the +cpu build, from what pip
# is configured with (a local wheel directory or mirror), else from PyTorch's CPU index;
# elsewhere PyPI's build is the CPU one.
install_torch_cpu() {
  local pip=(.venv/bin/python -m pip install -q)
  if [ "$(uname -s)" != Linux ]; then "${pip[@]}" torch==2.13.0; return; fi
  "${pip[@]}" "torch==2.13.0+cpu" 2>/dev/null \
    || "${pip[@]}" "torch==2.13.0+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
}
if [ "$MODE" = test ] && ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
  say "installing PyTorch (CPU build) for the interop tests"
  install_torch_cpu || say "PyTorch unavailable: the interop tests will be skipped (and fail where CI is set)"
fi
