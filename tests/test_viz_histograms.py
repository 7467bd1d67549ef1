"""Histogram ribbons (viz/histograms.py, shaders/histogram.wgsl), offscreen: each column
is numpy's histogram of the same weights (and of their change), bin for bin and count
for count, and the ribbon's texture shows exactly the bins that hold values."""
import numpy as np
import pytest

from mnist_viz.compute.device import get_device

from conftest import act
from test_viz_timetravel import make_app  # noqa: F401 - the fixture

BG = (17, 18, 22)          # colormap.wgsl BG as rgba8 (an empty pixel)


def columns(ribbon) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(columns taken, counts [cols, bins], ranges [cols], largest counts [cols]) of a ribbon."""
    from mnist_viz.viz.histograms import BINS, COLUMNS, HEADER
    raw = np.frombuffer(get_device().read(ribbon.buffer), np.uint32)
    cols = raw[HEADER:HEADER + COLUMNS * (BINS + 2)].reshape(COLUMNS, BINS + 2)
    return int(raw[0]), cols[:, :BINS].astype(np.int64), cols[:, BINS].view(np.float32), cols[:, BINS + 1]


def power_of_two_above(m: float) -> float:
    """The range rule of histogram.wgsl: 2^e for m in [2^(e-1), 2^e); 2^-40 at least."""
    if m < 2.0 ** -40:
        return 2.0 ** -40
    return 2.0 ** int(np.frexp(np.float32(m))[1])


def expected_ink(counts: np.ndarray, a: float, widest: float, height: int) -> np.ndarray:
    """Which pixel rows of a column the draw kernel inks: row y covers [A - (y+1)h, A - yh)
    with h = 2A / height, i.e. the bins [j0, j0 + k) of this column, k = A / a * bins / height."""
    bins = len(counts)
    k = widest / a * bins / height
    ink = np.zeros(height, bool)
    for y in range(height):
        lo = widest - (y + 1) * 2 * widest / height
        j0 = int(np.clip(np.floor(lo * bins / (2 * a)) + bins // 2, -1, bins + 1))
        j1 = int(np.clip(j0 + max(k, 1), -1, bins + 1))
        ink[y] = counts[max(j0, 0):min(j1, bins)].sum() > 0
    return ink


def test_histogram_columns_equal_numpys_histogram_of_the_same_weights(make_app):
    """Guards against a wrong bin (an off-by-one at the edges, a range that is not the
    power of two above max |w|, values lost or counted twice), a column written to the
    wrong slot, a weight change taken against the wrong previous weights, and a texture
    that does not show the bins that hold values (checked pixel row by pixel row)."""
    from mnist_viz.viz.histograms import BINS, COLUMNS
    app = make_app()
    act(app, "histogram_every", 4)
    act(app, "train")
    states = {}
    while app.metrics.steps < 16:
        app.draw_offscreen()
        states[app.metrics.steps] = app.model.state_dict()
    act(app, "pause")
    app.draw_offscreen()
    h = app.histograms
    assert h.steps == [0, 4, 8, 12, 16] and [s for s in states if s % 4 == 0][-1] == 16
    assert [layer.name for layer in h.layers] == ["0.weight", "2.weight"]
    for layer in h.layers:
        w_now, w_before = states[16][layer.name], states[12][layer.name]
        for ribbon, values in ((layer.weights, w_now), (layer.change, w_now - w_before)):
            taken, counts, ranges, most = columns(ribbon)
            assert taken == 5
            newest = (taken - 1) % COLUMNS
            a = float(ranges[newest])
            assert a == power_of_two_above(float(np.abs(values).max())), ribbon.label
            want, edges = np.histogram(values.astype(np.float64), BINS, range=(-a, a))
            assert np.array_equal(counts[newest], want), f"{ribbon.label}: counts differ from numpy's"
            assert counts[newest].sum() == values.size and most[newest] == want.max()
            # The texture: the newest column is the rightmost pixel column.
            pixels = ribbon.texture.read()
            widest = float(ranges[:taken].max())
            ink = np.any(pixels[:, COLUMNS - 1, :3] != BG, axis=1)
            zero_row = BINS // 2                       # the faint zero line on empty pixels
            ink[zero_row] = not np.array_equal(pixels[zero_row, COLUMNS - 1, :3], pixels[zero_row, 0, :3])
            assert np.array_equal(ink, expected_ink(counts[newest], a, widest, BINS)), ribbon.label
            # Columns not yet taken are empty.
            assert not np.any(pixels[:, : COLUMNS - taken, :3] != pixels[:, :1, :3])
    # The first change column is zero (no previous weights), all in the middle bin.
    _, counts, _, _ = columns(h.layers[0].change)
    assert counts[0][BINS // 2] == states[16]["0.weight"].size


def test_histograms_start_over_with_the_run(make_app):
    """Guards against ribbons that keep the columns of a run that was re-initialised (its
    steps start again at 0, and the weight change would be against the old weights)."""
    app = make_app()
    act(app, "histogram_every", 2)
    act(app, "train")
    for _ in range(3):
        app.draw_offscreen()
    assert len(app.histograms.steps) >= 4
    act(app, "reinitialise")
    app.draw_offscreen()
    act(app, "train")
    app.draw_offscreen()
    taken, counts, _, _ = columns(app.histograms.layers[0].change)
    assert app.histograms.steps == [0, 2, 4] and taken == 3
    assert counts[0][32] == app.model.weight(0).size       # a fresh zero change, not new - old weights
