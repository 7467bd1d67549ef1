"""A built-in digit for `--paint-demo` and the tests: a hand-drawn '2' as mouse segments.

It is drawn a little small and off-centre on purpose, so the screenshot also
shows the normaliser at work (bounding box, centre of mass, 28 x 28 input).
"""
from __future__ import annotations

# The stroke in unit coordinates (x right, y down), as a pen would draw it.
TWO = [(0.16, 0.30), (0.22, 0.15), (0.36, 0.05), (0.56, 0.04), (0.73, 0.13), (0.81, 0.30), (0.76, 0.48),
       (0.60, 0.64), (0.38, 0.80), (0.17, 0.96), (0.42, 0.95), (0.66, 0.95), (0.90, 0.95)]


def demo_points(width: int, height: int, box=(0.18, 0.22, 0.50)) -> list[tuple[float, float]]:
    """The '2' placed in a box (x, y, side) given as fractions of the canvas."""
    x0, y0, side = box
    return [((x0 + u * side) * width, (y0 + v * side) * height) for u, v in TWO]


def demo_segments(width: int, height: int, box=(0.18, 0.22, 0.50), substeps: int = 3) -> list:
    """Consecutive segments along the stroke, split finely like mouse-move events."""
    pts = demo_points(width, height, box)
    out = []
    for (ax, ay), (bx, by) in zip(pts, pts[1:]):
        prev = (ax, ay)
        for k in range(1, substeps + 1):
            t = k / substeps
            cur = (ax + (bx - ax) * t, ay + (by - ay) * t)
            out.append((prev, cur))
            prev = cur
    return out
