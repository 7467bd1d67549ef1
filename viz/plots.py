"""Loss and accuracy curves drawn on the GPU from the run history (plots.wgsl).

Each plot is two dispatches a frame: `bin` folds the steps of every pixel
column (mean, min, max) and `draw` rasterises grid, band, line and the test
accuracy points. The CPU passes only the step range and the number of
evaluations, which it knows without asking the GPU.
"""
from __future__ import annotations

import math

from ..compute.device import get_device

from .gpu import Params, ViewTexture, grid_2d, make_dispatch

LOSS, ACCURACY = 0, 1
LOSS_RANGE = (1e-3, 4.0)
ACC_RANGES = {"0-100%": (0.0, 1.0), "90-100%": (0.9, 1.0), "98-100%": (0.98, 1.0)}


class CurvePlot:
    def __init__(self, kind: int, history, size=(600, 180)):
        self.kind = kind
        self.history = history
        self.range = LOSS_RANGE if kind == LOSS else ACC_RANGES["0-100%"]
        self.texture = ViewTexture(size[0], size[1], "loss" if kind == LOSS else "accuracy", nearest=False)
        self.cols = get_device().buffer(size[0] * 16, "plot.cols")
        self.smooth = 20
        self.params = Params("<6I2f4I", *self._values(), label="plot.params")
        res = [self.params.buffer, history.hist, history.evals, self.cols, self.texture.view]
        self._bin = make_dispatch("plots.wgsl", "bin", res, (math.ceil(size[0] / 64),))
        self._draw = make_dispatch("plots.wgsl", "draw", res, grid_2d(*size))
        self.start = 0
        self._drawn = False

    def _values(self):
        h = self.history
        end = h.steps
        start = max(0, end - h.cap)
        self.start = start
        return (self.kind, start, end, h.cap, h.nevals, h.eval_cap, float(self.range[0]), float(self.range[1]),
                self.smooth, 0, 0, 0)

    def dispatches(self) -> list:
        """Redraw only when the range, the steps or the evaluations changed."""
        if not self.params.set(*self._values()) and self._drawn:
            return []
        self._drawn = True
        return [self._bin, self._draw]


class CurvePlots:
    def __init__(self, history):
        self.loss = CurvePlot(LOSS, history)
        self.accuracy = CurvePlot(ACCURACY, history)

    @property
    def textures(self):
        return [self.loss.texture, self.accuracy.texture]

    def set_accuracy_range(self, name: str) -> None:
        self.accuracy.range = ACC_RANGES[name]

    def dispatches(self) -> list:
        return self.loss.dispatches() + self.accuracy.dispatches()
