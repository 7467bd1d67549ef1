"""scripts/setup.sh's system checks, run in a controlled environment.

apt-get, dpkg-query and sudo are replaced by recording stubs on PATH (they are the
environment, not the code under test); nothing is installed or removed. The Vulkan
layout is built in tmp_path and handed to setup.sh through its overrides
(MNIST_VIZ_VK_ICD_DIRS, MNIST_VIZ_VK_LIB_DIRS); the wgpu adapter probe is the real one,
run with this Python. MNIST_VIZ_SETUP_SYSTEM_ONLY=1 stops before the .venv/pip part.
"""
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "scripts" / "setup.sh"
BASH = shutil.which("bash") or "/bin/bash"
VK_PKGS = "libvulkan1 mesa-vulkan-drivers"


def _stub(bindir: Path, name: str, body: str) -> None:
    f = bindir / name
    f.write_text("#!/usr/bin/env bash\n" + body + "\n")
    f.chmod(0o755)


class Sandbox:
    """A PATH with stubs, an apt log, and the environment setup.sh runs in."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.apt_log = tmp / "apt.log"
        # apt-get fails as it does offline (exit 100), recording every call.
        _stub(self.bin, "apt-get", f'echo "$*" >> "{self.apt_log}"; exit 100')
        # dpkg-query: only the packages listed in $DPKG_INSTALLED are installed.
        _stub(self.bin, "dpkg-query", 'pkg="${@: -1}"\n'
              'for p in ${DPKG_INSTALLED:-}; do [ "$p" = "$pkg" ] && { printf "install ok installed"; exit 0; }; done\n'
              'echo "dpkg-query: no packages found matching $pkg" >&2; exit 1')
        # sudo that wants a password (as for a user without sudo rights).
        _stub(self.bin, "sudo", 'echo "sudo: a password is required" >&2; exit 1')
        # Xvfb and friends present (window tests possible); test_missing_xvfb hides them.
        for name in ("xvfb-run", "Xvfb", "xauth"):
            _stub(self.bin, name, "exit 0")
        self.empty = tmp / "empty"
        self.empty.mkdir()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VK_", "MNIST_VIZ_")) and k not in ("DISPLAY", "DPKG_INSTALLED")}
        env.update(PATH=f"{self.bin}:{os.environ['PATH']}", TMPDIR=str(tmp), XDG_RUNTIME_DIR="/tmp",
                   MNIST_VIZ_SETUP_SYSTEM_ONLY="1", MNIST_VIZ_SETUP_UID="0",
                   MNIST_VIZ_PROBE_PYTHON=sys.executable)
        self.env = env

    def no_driver(self):
        """No loader library and no ICD manifest anywhere, none installed per dpkg."""
        self.env.update(MNIST_VIZ_VK_ICD_DIRS=str(self.empty), MNIST_VIZ_VK_LIB_DIRS=str(self.empty))

    def run(self, mode="run"):
        return subprocess.run([BASH, str(SETUP), mode], env=self.env, capture_output=True, text=True,
                              timeout=120, cwd=ROOT)

    def apt_calls(self):
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


def system_icd_dir(tmp: Path) -> Path:
    """This machine's ICD manifests (Mesa's or a vendor's) copied into one directory."""
    found = [f for d in ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d")
             for f in glob.glob(f"{d}/*.json")]
    if not found:
        pytest.skip("no Vulkan driver installed on this machine")
    d = tmp / "usr-share-icd"
    d.mkdir()
    for f in found:
        shutil.copy(f, d)
    return d


def one_setup_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip() and not l.startswith("[setup] installing")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("mode,display,probe", [("run", None, "wgpu"), ("run", None, "none"),
                                                ("test", None, "none"), ("test", ":99", "wgpu")])
def test_driver_present_never_calls_apt(box, tmp_path, probe, mode, display):
    """The reported bug: the ICD manifests in only one of the three standard directories (the
    other two empty or absent) made the old single `ls` fail, so every run called apt-get
    (exit 100 offline). With the driver present, setup succeeds silently and apt is never
    called, whether wgpu decides (the .venv exists) or the files do (first run)."""
    icd = system_icd_dir(tmp_path)
    etc = tmp_path / "etc-icd"
    etc.mkdir()
    box.env["MNIST_VIZ_VK_ICD_DIRS"] = f"{icd}:{etc}:{tmp_path / 'usr-local-icd'}"
    box.env["MNIST_VIZ_PROBE_PYTHON"] = sys.executable if probe == "wgpu" else ""
    if display:
        box.env["DISPLAY"] = display
    r = box.run(mode)
    assert r.returncode == 0, r.stderr
    assert box.apt_calls() == []
    assert r.stdout == r.stderr == ""


def test_vendor_driver_counts(box, tmp_path):
    """Guards against requiring Mesa: a vendor ICD (NVIDIA's manifest) with the loader is a
    driver, so mesa-vulkan-drivers is not installed on top of it (first run: no .venv yet)."""
    icd = tmp_path / "icd"
    icd.mkdir()
    (icd / "nvidia_icd.json").write_text(
        '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3.242"}}')
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libvulkan.so.1").write_bytes(b"")
    box.env.update(MNIST_VIZ_VK_ICD_DIRS=str(icd), MNIST_VIZ_VK_LIB_DIRS=str(lib), MNIST_VIZ_PROBE_PYTHON="")
    r = box.run()
    assert (r.returncode, box.apt_calls(), r.stderr) == (0, [], "")


def test_wgpu_overrules_the_file_checks(box):
    """Guards against the files having the last word: the loader is in no place the file check
    looks, but wgpu (the authority, once the .venv exists) finds an adapter, so no apt."""
    if subprocess.run([BASH, "-c", "ldconfig -p | grep -q libvulkan.so.1 || ls /usr/lib/*/libvulkan.so.1"],
                      capture_output=True).returncode != 0:
        pytest.skip("no Vulkan loader on this machine")
    box.env["MNIST_VIZ_VK_LIB_DIRS"] = str(box.empty)
    r = box.run()
    assert (r.returncode, box.apt_calls(), r.stderr) == (0, [], "")


def test_no_driver_and_apt_fails_is_one_clear_error(box):
    """No loader, no ICD (the real wgpu probe agrees: it sees only the empty directory), root,
    offline apt: exit 2 with one line naming both packages and the apt failure, no traceback;
    apt-get update ran only because an install was needed, and the install asked for exactly
    the missing packages."""
    box.no_driver()
    r = box.run()
    assert r.returncode == 2, r.stderr
    line = one_setup_line(r.stderr)
    assert line.startswith("[setup] error: no Vulkan driver"), line
    assert VK_PKGS in line and "apt-get failed with exit 100" in line
    assert f"sudo apt-get install {VK_PKGS}" in line
    assert box.apt_calls() == ["update -qq", f"install -y -qq --no-install-recommends {VK_PKGS}"]


def test_non_root_without_packages_names_them(box):
    """Non-root, no password-less sudo, no driver: the message names the exact packages and the
    sudo command, exit 2, and apt is not tried (it would only fail)."""
    box.no_driver()
    box.env["MNIST_VIZ_SETUP_UID"] = "1000"
    r = box.run()
    assert r.returncode == 2, r.stderr
    line = one_setup_line(r.stderr)
    assert f"sudo apt-get install {VK_PKGS}" in line and "not root" in line, line
    assert box.apt_calls() == []


def test_installs_only_what_is_missing_through_sudo(box, tmp_path):
    """Non-root with password-less sudo, the loader present and the ICD missing: apt installs
    mesa-vulkan-drivers alone (not libvulkan1), through sudo, and setup checks again after."""
    icd, lib = tmp_path / "icd", tmp_path / "lib"
    icd.mkdir(), lib.mkdir()
    (lib / "libvulkan.so.1").write_bytes(b"")
    _stub(box.bin, "sudo", '[ "$1" = -n ] && shift; [ "$1" = true ] && exit 0; exec "$@"')
    # a working apt-get: "installing" Mesa's drivers drops their manifest into the ICD dir
    _stub(box.bin, "apt-get", f'echo "$*" >> "{box.apt_log}"\n'
          f'[ "$1" = install ] && echo "{{}}" > "{icd}/lvp_icd.x86_64.json"; exit 0')
    box.env.update(MNIST_VIZ_SETUP_UID="1000", MNIST_VIZ_VK_ICD_DIRS=str(icd), MNIST_VIZ_VK_LIB_DIRS=str(lib),
                   MNIST_VIZ_PROBE_PYTHON="")
    r = box.run()
    assert r.returncode == 0, r.stderr
    assert box.apt_calls() == ["update -qq", "install -y -qq --no-install-recommends mesa-vulkan-drivers"]
    assert r.stderr == "[setup] installing system packages: mesa-vulkan-drivers\n"


def test_dpkg_installed_packages_are_not_reinstalled(box):
    """Per-package check: files not found where looked, but dpkg says both packages are
    installed (first run, no wgpu yet): apt is not called for them."""
    box.no_driver()
    box.env.update(DPKG_INSTALLED=VK_PKGS, MNIST_VIZ_PROBE_PYTHON="")
    r = box.run()
    assert (r.returncode, box.apt_calls()) == (0, [])


def test_missing_xvfb_does_not_stop_the_tests(box, tmp_path):
    """Driver present, Xvfb missing and apt offline: test.sh must still run (exit 0); one line
    names xvfb xauth, says the window tests will be skipped and how to install them."""
    box.env["MNIST_VIZ_VK_ICD_DIRS"] = str(system_icd_dir(tmp_path))
    # a PATH without xvfb-run, Xvfb, xauth: links to everything else on the original PATH
    farm = tmp_path / "path"
    farm.mkdir()
    for d in [str(box.bin)] + os.environ["PATH"].split(":"):
        for f in Path(d).glob("*") if Path(d).is_dir() else []:
            if f.name not in ("xvfb-run", "Xvfb", "xauth") and not (farm / f.name).exists():
                (farm / f.name).symlink_to(f)
    box.env["PATH"] = str(farm)
    r = box.run("test")
    assert r.returncode == 0, r.stderr
    line = one_setup_line(r.stderr)
    assert "could not install xvfb xauth" in line and "window tests will be skipped" in line, line
    assert "sudo apt-get install xvfb xauth" in line
    assert box.apt_calls()[-1] == "install -y -qq --no-install-recommends xvfb xauth"


def test_second_run_is_silent_and_calls_no_apt(box, tmp_path):
    """Idempotent: with everything present, running setup twice prints nothing and runs no apt
    either time (guards against a check that installs or reports on every run)."""
    box.env["MNIST_VIZ_VK_ICD_DIRS"] = str(system_icd_dir(tmp_path))
    for _ in range(2):
        r = box.run("test")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert box.apt_calls() == []


def test_help_needs_no_system_packages(box):
    """`run.sh --help` (setup mode help) must not depend on the driver or on apt: with neither,
    setup still succeeds silently."""
    box.no_driver()
    r = box.run("help")
    assert (r.returncode, r.stderr, box.apt_calls()) == (0, "", [])


def test_manifest_without_working_driver_asks_for_mesa(box, tmp_path):
    """wgpu as the authority: a manifest whose driver library does not exist (a broken vendor
    driver) passes the file checks, but the real probe finds no Vulkan adapter, so Mesa's
    drivers are asked for; apt offline is reported in one line and does not stop setup
    (the loader and a manifest exist). Guards against a probe that never runs."""
    icd = tmp_path / "icd"
    icd.mkdir()
    (icd / "nvidia_icd.json").write_text(
        '{"file_format_version": "1.0.0", "ICD": {"library_path": "/nonexistent/libGLX_nvidia.so.0", "api_version": "1.3.242"}}')
    box.env["MNIST_VIZ_VK_ICD_DIRS"] = str(icd)
    r = box.run()
    assert r.returncode == 0, r.stderr
    line = one_setup_line(r.stderr)
    assert "could not install mesa-vulkan-drivers" in line and "wgpu finds no Vulkan adapter" in line, line
    assert box.apt_calls()[-1] == "install -y -qq --no-install-recommends mesa-vulkan-drivers"
