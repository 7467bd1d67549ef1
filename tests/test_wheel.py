"""The wheel as a user installs it, run from outside the checkout (scripts/wheel_smoke.sh)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_from_any_directory():
    """Guards against a wheel without shaders, data or model, and against top-level module names."""
    r = subprocess.run(["bash", str(ROOT / "scripts" / "wheel_smoke.sh"), sys.executable],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "test accuracy: 98.64%" in r.stdout          # the shipped model on the shipped MNIST
    assert "wheel smoke test passed" in r.stdout
