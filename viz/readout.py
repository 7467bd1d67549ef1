"""The only GPU -> CPU traffic of the frame loop: one 64-byte `Readout`, a few times a second.

stats.wgsl packs every number the panels print (step counter, flags, losses,
accuracies, the predicted class, the learning rate, ...) into one `Readout`
(viz/structs.py) each frame. At most every `interval` seconds, after the frame is
submitted, a non-blocking `Device.read_async` of those 64 bytes starts; a later
frame picks the result up when it has arrived. The readback meter counts each
read, so the budget (<= 64 bytes a read, <= 1/interval reads a second) is testable.
"""
from __future__ import annotations

import time

from ..compute.device import get_device
from ..compute.metrics import EVAL_CAP, HISTORY_CAP
from .gpu import Params, make_dispatch
from .structs import READOUT, STATS_FRAME

READ_INTERVAL_S = 0.25          # => at most 4 reads (256 bytes) a second


class ScalarReadout:
    def __init__(self, metrics, forward, canvas, scales, w1_slot: int, w2_slot: int,
                 interval: float = READ_INTERVAL_S):
        dev = get_device()
        self.metrics = metrics
        self.interval = interval
        self.out = dev.buffer(READOUT.size, "stats")
        self._w = dict(w1_slot=w1_slot, w2_slot=w2_slot)
        self.frame = Params(STATS_FRAME, "stats.frame", **self._frame_values())
        self._inputs = [forward.probs, canvas.norm, scales.buffer]
        self.dispatch = None
        self.values: dict = {}
        self.pending = None
        self.last_start = -1e9

    def bind(self, hyper) -> None:
        """Bind the run's optimizer settings (for the learning rate); no packing before."""
        m = self.metrics
        probs, norm, scales = self._inputs
        self.dispatch = make_dispatch("stats.wgsl", "pack", [self.frame.buffer, m.state, m.history, m.evals,
                                                            m.counters, probs, norm, scales, hyper, self.out], (1,))

    def _frame_values(self) -> dict:
        m = self.metrics
        return dict(steps=m.steps, cap=HISTORY_CAP, nevals=m.evaluations, eval_cap=EVAL_CAP,
                    classes=m.num_classes, **self._w)

    def dispatches(self) -> list:
        if self.dispatch is None:
            return []
        self.frame.set(**self._frame_values())
        return [self.dispatch]

    def after_submit(self, now: float | None = None) -> None:
        """Start a read if none is in flight and the interval has passed (call after submit)."""
        now = time.perf_counter() if now is None else now
        if self.dispatch is not None and self.pending is None and now - self.last_start >= self.interval:
            self.pending = get_device().read_async(self.out, 0, READOUT.size, "stats")
            self.last_start = now

    def poll(self) -> bool:
        """Pick up a finished read (non-blocking). True when new values arrived."""
        if self.pending is None or not self.pending.ready():
            return False
        self.values = READOUT.unpack(self.pending.result())
        self.pending = None
        return True
