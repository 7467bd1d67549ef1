"""numpy mirror of shaders/colormap.wgsl (for tests and legends; the views colour on the GPU)."""
from __future__ import annotations

import numpy as np

BG = np.array([0.067, 0.071, 0.086], np.float32)
INK = np.array([0.96, 0.95, 0.90], np.float32)

_DIVERGING = np.array([[0.62, 0.88, 1.00], [0.16, 0.47, 0.92], [0.07, 0.07, 0.09],
                       [0.92, 0.32, 0.12], [1.00, 0.88, 0.55]], np.float32)


def _piecewise(stops: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Linear interpolation between equally spaced stops, s in [0, 1]."""
    k = len(stops) - 1
    x = np.clip(s, 0.0, 1.0) * k
    i = np.minimum(np.floor(x).astype(int), k - 1)
    f = (x - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f


def diverging(t) -> np.ndarray:
    """t in [-1, 1] -> RGB in [0, 1] (same stops as `diverging` in colormap.wgsl)."""
    t = np.clip(np.asarray(t, np.float32), -1.0, 1.0)
    return _piecewise(_DIVERGING, (t + 1.0) * 0.5)


_SEQUENTIAL = np.array([[0.07, 0.07, 0.09], [0.45, 0.13, 0.52], [0.94, 0.44, 0.26], [0.99, 0.93, 0.66]],
                       np.float32)


def sequential(t) -> np.ndarray:
    """t in [0, 1] -> RGB (same stops as `sequential` in colormap.wgsl)."""
    return _piecewise(_SEQUENTIAL, np.asarray(t, np.float32))


def grey(t) -> np.ndarray:
    t = np.clip(np.asarray(t, np.float32), 0.0, 1.0)[..., None]
    return BG * (1 - t) + INK * t


def to_u8(rgb: np.ndarray) -> np.ndarray:
    """What an rgba8unorm store of these colours holds."""
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
