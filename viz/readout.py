"""The only GPU -> CPU traffic of the frame loop: 64 bytes of scalars, a few times a second.

stats.wgsl packs every number the panels print (step counter, flags, loss,
accuracies, the predicted class, ...) into one 64-byte buffer each frame. At most
every `interval` seconds, after the frame is submitted, a non-blocking
`Device.read_async` of those 64 bytes starts; a later frame picks the result up
when it has arrived. The readback meter counts each read, so the budget
(<= 64 bytes a read, <= 1/interval reads a second) is testable.
"""
from __future__ import annotations

import struct
import time

from ..compute.device import get_device

from .gpu import Params, make_dispatch

READ_BYTES = 64
READ_INTERVAL_S = 0.25          # => at most 4 reads (256 bytes) a second
_U32 = {0: "step", 1: "flags", 7: "correct", 8: "seen", 9: "wrong", 10: "pred", 15: "at_step"}
_F32 = {2: "loss", 3: "batch_acc", 4: "loss_avg", 5: "acc_avg", 6: "test_acc", 11: "pred_prob",
        12: "ink", 13: "w1_absmax", 14: "w2_absmax"}


class ScalarReadout:
    def __init__(self, history, forward, canvas, scales, w1_slot: int, w2_slot: int,
                 interval: float = READ_INTERVAL_S):
        dev = get_device()
        self.history = history
        self.interval = interval
        self.out = dev.buffer(READ_BYTES, "stats")
        self.frame = Params("<8I", 0, history.cap, 0, history.eval_cap, history.num_classes, w1_slot, w2_slot, 0,
                            label="stats.frame")
        self._w = (w1_slot, w2_slot)
        self.dispatch = make_dispatch("stats.wgsl", "pack",
                                      [self.frame.buffer, history.state, history.hist, history.evals,
                                       history.counters, forward.probs, canvas.norm, scales.buffer, self.out], (1,))
        self.values: dict = {}
        self.pending = None
        self.last_start = -1e9

    def dispatches(self) -> list:
        h = self.history
        self.frame.set(h.steps, h.cap, h.nevals, h.eval_cap, h.num_classes, *self._w, 0)
        return [self.dispatch]

    def after_submit(self, now: float | None = None) -> None:
        """Start a read if none is in flight and the interval has passed (call after submit)."""
        now = time.perf_counter() if now is None else now
        if self.pending is None and now - self.last_start >= self.interval:
            self.pending = get_device().read_async(self.out, 0, READ_BYTES, "stats")
            self.last_start = now

    def poll(self) -> bool:
        """Pick up a finished read (non-blocking). True when new values arrived."""
        if self.pending is None or not self.pending.ready():
            return False
        raw = self.pending.result()
        self.pending = None
        words = struct.unpack("<16I", raw[:64])
        floats = struct.unpack("<16f", raw[:64])
        self.values = {**{k: words[i] for i, k in _U32.items()}, **{k: floats[i] for i, k in _F32.items()}}
        return True
