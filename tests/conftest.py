"""Shared fixtures. Tests run on whatever adapter wgpu finds (lavapipe on CI)."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


@pytest.fixture(scope="session")
def mnist():
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    return load_dataset(bundled_mnist_dir())


@pytest.fixture(scope="session")
def device():
    from mnist_viz.compute.device import get_device
    return get_device()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
