"""Histogram ribbons: per layer, the distribution of its weights and of their change over
time as heat maps (x: time, y: value bins, intensity: count), like TensorBoard's
distributions. Built on the GPU from the live arena (histogram.wgsl); nothing is read back.

Every `every` run steps the session (a StepObserver) has one program encoded between the
steps: `change` (the weight change since the last column, the whole arena in one
dispatch), the ranges (a ScaleBank: max |x| of each layer's weights and of its change),
and one `bin` dispatch per ribbon writing the ribbon's next column. The textures are
redrawn by the next frame's view pass.

Why the weight change and not the gradient: the compiled step (the MLPs') folds its
gradients in workgroup memory and never stores them, and writing them out would add a
store of the whole arena to every step of the hot kernel for a view sampled every few
steps. The change over the last `every` steps is the same quantity on both engines and
is what the optimizer actually did to the weights (learning rate, momentum and Adam's
scaling included), at no cost to the step.
"""
from __future__ import annotations

from ..compute import ops
from ..compute.device import get_device
from ..compute.program import Dispatch, Program
from ..compute.structs import OPTIM
from .gpu import ViewTexture, grid_2d, make_dispatch
from .session import StepObserver
from .structs import HIST_BIN, HIST_DRAW
from .views import ScaleBank

COLUMNS = 128          # columns kept (the ribbon's width in pixels)
BINS = 64              # value bins per column (the ribbon's height in pixels); even, <= 256
HEADER = 4             # words before the first column (histogram.wgsl)
MAX_BIN_GROUPS = 128   # workgroups that bin one column (bin_part), each ...
BIN_ELEMENTS = 4096    # ... folding at least this many values
DEFAULT_EVERY = 100    # run steps between columns: the timeline's split points, a few a frame at full speed


class Ribbon:
    """One ring of histogram columns and the texture it is drawn into."""

    def __init__(self, label: str, src, offset: int, count: int, slot: int, scales: ScaleBank):
        dev = get_device()
        self.label = label
        self.buffer = dev.buffer((HEADER + COLUMNS * (BINS + 2)) * 4, f"hist.{label}")
        self.texture = ViewTexture(COLUMNS, BINS, f"hist {label}", nearest=True)
        prm = dev.uniform(HIST_BIN, offset=offset, count=count, bins=BINS, cols=COLUMNS, slot=slot)
        acc = dev.buffer(BINS * 4, f"hist.{label}.sums")      # zero between columns (bin takes it back)
        res = [prm, src, scales.buffer, self.buffer, acc]
        parts = max(1, min(MAX_BIN_GROUPS, -(-count // BIN_ELEMENTS)))
        self.bin = [make_dispatch("histogram.wgsl", "bin_part", res, (parts,)),
                    make_dispatch("histogram.wgsl", "bin", res, (1,))]
        draw = dev.uniform(HIST_DRAW, bins=BINS, cols=COLUMNS)
        self.draw = make_dispatch("histogram.wgsl", "draw", [draw, self.buffer, self.texture.view],
                                  grid_2d(COLUMNS, BINS))

    def clear(self) -> None:
        get_device().queue.write_buffer(self.buffer, 0, bytes(HEADER * 4))


class LayerRibbons:
    def __init__(self, name: str, weights: Ribbon, change: Ribbon):
        self.name, self.weights, self.change = name, weights, change


class Histograms(StepObserver):
    kind = "column"

    def __init__(self, model, every: int = DEFAULT_EVERY):
        dev = get_device()
        self.model = model
        self.every = max(1, int(every))
        arena = model.arena
        n = arena.size
        self.prev = dev.buffer(n * 4, "hist.prev")          # the weights at the last column
        self.delta = dev.buffer(n * 4, "hist.change")
        self.scales = ScaleBank()
        self.layers: list[LayerRibbons] = []
        for i, _ in sorted(model.linears + model.convs):
            w = model.weight(i)
            off = w.offset // 4
            rw = Ribbon(f"{i}.weight", arena.buffer, off, w.size, self.scales.add(arena.buffer, off, w.size),
                        self.scales)
            rc = Ribbon(f"{i}.weight change", self.delta, off, w.size, self.scales.add(self.delta, off, w.size),
                        self.scales)
            self.layers.append(LayerRibbons(f"{i}.weight", rw, rc))
        pipe = dev.pipeline("histogram.wgsl", "change")
        group = dev.bind_group(pipe, [dev.uniform(OPTIM, n=n), arena.buffer, self.prev, self.delta])
        change = Dispatch(pipe, group, (*ops.grid_1d(n), 1), "histogram:change")
        self.program = Program([change] + self.scales.dispatches() + [d for r in self.ribbons for d in r.bin],
                               label="histograms")
        self.steps: list[int] = []        # the run step of each column kept, oldest first
        self.version = 0
        self._drawn = -1
        self._primed = False              # prev holds weights (else the first change would be w - 0)

    @property
    def ribbons(self) -> list[Ribbon]:
        return [r for layer in self.layers for r in (layer.weights, layer.change)]

    @property
    def textures(self) -> list[ViewTexture]:
        return [r.texture for r in self.ribbons]

    # -- the session's observer ---------------------------------------------------------------------
    def take(self, encoder, run) -> None:
        if not self._primed:
            encoder.copy_buffer_to_buffer(self.model.arena.buffer, 0, self.prev, 0, self.model.arena.size * 4)
            self._primed = True
        self.program.encode(encoder)
        self.steps = (self.steps + [run.metrics.steps])[-COLUMNS:]
        self.version += 1

    def clear(self) -> None:
        super().clear()
        for r in self.ribbons:
            r.clear()
        self.steps = []
        self._primed = False
        self.version += 1

    def set_every(self, every: int) -> None:
        self.every = max(1, int(every))

    # -- per frame -----------------------------------------------------------------------------------
    def dispatches(self) -> list:
        """The ribbons' draws, in a frame after a column was taken (else nothing)."""
        if self.version == self._drawn:
            return []
        self._drawn = self.version
        return [r.draw for r in self.ribbons]
