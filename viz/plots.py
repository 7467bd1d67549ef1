"""Loss and accuracy curves drawn on the GPU from the run history (plots.wgsl).

Each plot is two dispatches a frame: `bin` folds the steps of every pixel
column (mean, min, max) and `draw` rasterises grid, band, line and the test
accuracy points. The CPU passes only the step range and the number of
evaluations, which it knows without asking the GPU. With runs side by side the
other runs' mean lines are drawn under the main one, each in its colour (RUN_COLOURS).
"""
from __future__ import annotations

import math

from ..compute.device import get_device
from ..compute.metrics import EVAL_CAP, HISTORY_CAP

from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import NONE, PLOT

LOSS, ACCURACY = 0, 1
LOSS_RANGE = (1e-3, 4.0)
ACC_RANGES = {"0-100%": (0.0, 1.0), "90-100%": (0.9, 1.0), "98-100%": (0.98, 1.0)}


def grid_step(lo: float, hi: float) -> float:
    """Accuracy grid: every 10% over a wide range, every 1% over a narrow one. The axis
    labels go on a multiple of it (panels/metrics.py axis_ticks), so each sits on a line."""
    return 0.1 if hi - lo > 0.2 else 0.01


# Curve colours of runs side by side (rgb), by the run's slot (its place in the Runs panel);
# the legend (panels/runs.py) and the shader (`Plot.colour*`) both take them from here.
RUN_COLOURS = ((0.40, 0.66, 1.00), (0.36, 0.82, 0.52), (0.93, 0.40, 0.80), (0.98, 0.86, 0.30))
MAX_OTHER_RUNS = len(RUN_COLOURS) - 1
EVAL_POINTS = 64            # test accuracies drawn per other run (plots.wgsl EVAL_POINTS)


def pack_colour(rgb) -> int:
    """WGSL's pack4x8unorm of (r, g, b, 1)."""
    r, g, b = (round(min(max(c, 0.0), 1.0) * 255) for c in rgb)
    return r | g << 8 | b << 16 | 255 << 24


class CurvePlot:
    """One plot of the main run's curve (mean line, band, test points) and, under it, the
    mean lines of up to three other runs (`bind_runs`), all over the same step range."""

    def __init__(self, kind: int, metrics, size=(600, 180)):
        dev = get_device()
        self.kind = kind
        self.metrics = metrics
        self.others: list = []                     # (metrics, slot) of the other runs
        self.main_slot: int | None = None          # None: the plot's own colour (one run)
        self.range = LOSS_RANGE if kind == LOSS else ACC_RANGES["0-100%"]
        self.texture = ViewTexture(size[0], size[1], "loss" if kind == LOSS else "accuracy", nearest=False)
        self.width = size[0]
        self.cols = dev.buffer(size[0] * 16, "plot.cols")
        # The other runs' columns, then their test-accuracy points (plots.wgsl).
        self.extra = dev.buffer((size[0] + EVAL_POINTS) * 16 * MAX_OTHER_RUNS, "plot.extra")
        self.smooth = 20
        self.start = 0
        self.params = Params(PLOT, "plot.params", **self._values())
        self.bind_runs(metrics, [])

    def bind_runs(self, metrics, others: list, main_slot: int | None = None) -> None:
        """The main run's metrics and the other runs' [(metrics, slot)] (at most three)."""
        if len(others) > MAX_OTHER_RUNS:
            raise ValueError(f"at most {MAX_OTHER_RUNS} other runs in a plot")
        dev = get_device()
        self.metrics, self.others, self.main_slot = metrics, list(others), main_slot
        groups = math.ceil(self.width / 64)
        res = [self.params.buffer, metrics.history, metrics.evals, self.cols, self.texture.view, self.extra]
        self._bin = make_dispatch("plots.wgsl", "bin", res[:5] + [dev.dummy_ro], (groups,))
        self._draw = make_dispatch("plots.wgsl", "draw", res, grid_2d(*self.texture.size))
        self._other_params, self._other_bins = [], []
        for k, (m, _) in enumerate(self.others):
            prm = Params(PLOT, "plot.other.params")
            self._other_params.append(prm)
            self._other_bins.append(make_dispatch("plots.wgsl", "bin", [prm.buffer, m.history, m.evals, self.extra,
                                                                        self.texture.view, dev.dummy_ro], (groups,)))
        self._drawn = False

    def _values(self, metrics=None, block: int | None = None):
        m = self.metrics if metrics is None else metrics
        end = max([self.metrics.steps] + [o.steps for o, _ in self.others])
        start = max(0, end - HISTORY_CAP)
        self.start = start
        colours = [0] * 4
        if self.main_slot is not None:
            colours[0] = pack_colour(RUN_COLOURS[self.main_slot])
            for k, (_, slot) in enumerate(self.others):
                colours[k + 1] = pack_colour(RUN_COLOURS[slot])
        return dict(kind=self.kind, start=start, end=end, cap=HISTORY_CAP, nevals=m.evaluations, eval_cap=EVAL_CAP,
                    lo=self.range[0], hi=self.range[1], smoothing=self.smooth,
                    grid_step=grid_step(*self.range), valid_end=m.steps,
                    col_offset=0 if block is None else block * self.width,
                    runs=len(self.others), evals_base=MAX_OTHER_RUNS * self.width,
                    eval_block=NONE if block is None else block,
                    colour0=colours[0], colour1=colours[1], colour2=colours[2], colour3=colours[3])

    def dispatches(self) -> list:
        """Redraw only when the range, the steps or the evaluations (of any run) changed."""
        changed = self.params.set(**self._values())
        for k, ((m, _), prm) in enumerate(zip(self.others, self._other_params)):
            changed |= prm.set(**self._values(m, k))
        if not changed and self._drawn:
            return []
        self._drawn = True
        return self._other_bins + [self._bin, self._draw]


class CurvePlots:
    def __init__(self, metrics):
        self.loss = CurvePlot(LOSS, metrics)
        self.accuracy = CurvePlot(ACCURACY, metrics)

    @property
    def textures(self):
        return [self.loss.texture, self.accuracy.texture]

    def bind_runs(self, metrics, others: list, main_slot: int | None = None) -> None:
        """Runs side by side: see CurvePlot.bind_runs (no others: the one-run plot)."""
        for plot in (self.loss, self.accuracy):
            plot.bind_runs(metrics, others, main_slot if others else None)

    def set_accuracy_range(self, name: str) -> None:
        self.accuracy.range = ACC_RANGES[name]

    def dispatches(self) -> list:
        return self.loss.dispatches() + self.accuracy.dispatches()
