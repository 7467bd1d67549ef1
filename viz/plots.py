"""Loss and accuracy curves drawn on the GPU from the run history (plots.wgsl).

Each plot is two dispatches a frame: `bin` folds the steps of every pixel
column (mean, min, max) and `draw` rasterises grid, band, line and the test
accuracy points. The CPU passes only the step range and the number of
evaluations, which it knows without asking the GPU.
"""
from __future__ import annotations

import math

from ..compute.device import get_device
from ..compute.metrics import EVAL_CAP, HISTORY_CAP

from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import PLOT

LOSS, ACCURACY = 0, 1
LOSS_RANGE = (1e-3, 4.0)
ACC_RANGES = {"0-100%": (0.0, 1.0), "90-100%": (0.9, 1.0), "98-100%": (0.98, 1.0)}


def grid_step(lo: float, hi: float) -> float:
    """Accuracy grid: every 10% over a wide range, every 1% over a narrow one. The axis
    labels go on a multiple of it (panels/metrics.py axis_ticks), so each sits on a line."""
    return 0.1 if hi - lo > 0.2 else 0.01


class CurvePlot:
    def __init__(self, kind: int, metrics, size=(600, 180)):
        self.kind = kind
        self.metrics = metrics
        self.range = LOSS_RANGE if kind == LOSS else ACC_RANGES["0-100%"]
        self.texture = ViewTexture(size[0], size[1], "loss" if kind == LOSS else "accuracy", nearest=False)
        self.cols = get_device().buffer(size[0] * 16, "plot.cols")
        self.smooth = 20
        self.params = Params(PLOT, "plot.params", **self._values())
        res = [self.params.buffer, metrics.history, metrics.evals, self.cols, self.texture.view]
        self._bin = make_dispatch("plots.wgsl", "bin", res, (math.ceil(size[0] / 64),))
        self._draw = make_dispatch("plots.wgsl", "draw", res, grid_2d(*size))
        self.start = 0
        self._drawn = False

    def _values(self):
        m = self.metrics
        end = m.steps
        start = max(0, end - HISTORY_CAP)
        self.start = start
        return dict(kind=self.kind, start=start, end=end, cap=HISTORY_CAP, nevals=m.evaluations, eval_cap=EVAL_CAP,
                    lo=self.range[0], hi=self.range[1], smoothing=self.smooth,
                    grid_step=grid_step(*self.range))

    def dispatches(self) -> list:
        """Redraw only when the range, the steps or the evaluations changed."""
        if not self.params.set(**self._values()) and self._drawn:
            return []
        self._drawn = True
        return [self._bin, self._draw]


class CurvePlots:
    def __init__(self, metrics):
        self.loss = CurvePlot(LOSS, metrics)
        self.accuracy = CurvePlot(ACCURACY, metrics)

    @property
    def textures(self):
        return [self.loss.texture, self.accuracy.texture]

    def set_accuracy_range(self, name: str) -> None:
        self.accuracy.range = ACC_RANGES[name]

    def dispatches(self) -> list:
        return self.loss.dispatches() + self.accuracy.dispatches()
