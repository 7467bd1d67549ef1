"""The mutation check (scripts/mutations.py): small deliberate bugs that the tests must catch.
CI runs the fast subset; the whole list runs by hand before a release
(`python scripts/mutations.py --all`)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutations.py"


def run(*args, timeout):
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


def test_every_mutation_still_applies_to_the_code():
    """Guards against the mutation list drifting from the code: a find text that no longer
    occurs exactly once, or a named test that no longer exists, would make the check
    silently test nothing."""
    p = run("--all", "--check", timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.slow
def test_the_fast_mutations_are_caught():
    """Guards against tests that pass whatever the code does: each bug of the fast subset
    (meter record removed, file fsync dropped, brush radius ignored, augmentation off,
    shuffling once, a pacer that never slows down) must fail its tests. (No baseline run:
    the suite itself runs those tests unmutated.)"""
    p = run("--no-baseline", timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert re.search(r"^(\d+) of \1 mutations caught$", p.stdout, re.M), p.stdout[-2000:]
