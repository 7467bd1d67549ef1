"""The only GPU -> CPU traffic of the frame loop: one 64-byte `Readout`, a few times a second.

stats.wgsl packs every number the panels print (step counter, flags, losses,
accuracies, the predicted class, the learning rate, ...) into one `Readout`
(viz/structs.py) each frame. At most every `interval` seconds the frame's own encoder
copies those 64 bytes into a staging buffer (`Device.read_in`: no submission of its own)
whose non-blocking map starts once the frame is submitted; a later frame picks the
result up when it has arrived. The readback meter counts each
read, so the budget (<= 64 bytes a read, <= 1/interval reads a second) is testable.

Runs side by side add 16 bytes each (`RunReadout`: the run's class for the canvas, its
probability, loss and last test accuracy) after the 64 in the same read: at most
READ_BYTES_MAX bytes a read.

Each read remembers the canvas revision its pack saw (`values_revision`), so a panel
can tell whether canvas-dependent values (ink, the loaded sample) are about the
canvas shown now or one from a moment ago; and the evaluations recorded when it was
packed (`values["evaluations"]`), so a panel can tell which evaluation `test_acc` is.
"""
from __future__ import annotations

import time

import numpy as np

from ..compute.device import get_device
from ..compute.metrics import EVAL_CAP, HISTORY_CAP
from .gpu import Params, make_dispatch
from .structs import NONE, READOUT, RUN_READOUT, RUN_STATS_FRAME, STATS_FRAME

READ_INTERVAL_S = 0.25          # => at most 4 reads a second
MAX_OTHER_RUNS = 3              # runs side by side besides the main one (plots.MAX_OTHER_RUNS)
READ_BYTES_MAX = READOUT.size + MAX_OTHER_RUNS * RUN_READOUT.size    # the largest read: 112 bytes


class ScalarReadout:
    def __init__(self, metrics, forward, canvas, scales, w1_slot: int, w2_slot: int,
                 interval: float = READ_INTERVAL_S):
        dev = get_device()
        self.metrics = metrics
        self.interval = interval
        self.out = dev.buffer(READ_BYTES_MAX, "stats")
        self._runs: list = []           # (Params, dispatch, metrics) per other run
        self._pending_runs: list = []   # the runs' metrics, in the order of the read in flight
        self._w = dict(w1_slot=w1_slot, w2_slot=w2_slot)
        self.frame = Params(STATS_FRAME, "stats.frame", **self._frame_values())
        self.canvas = canvas
        self._inputs = [forward.probs, canvas.norm, scales.buffer]
        self.dispatch = None
        self.values: dict = {}
        self.values_revision = -1       # canvas revision the values were packed at
        self._packed_revision = -1
        self._packed_evaluations = 0
        self.pending = None
        self._pending_revision = -1
        self._pending_evaluations = 0
        self.last_start = -1e9

    def bind(self, hyper) -> None:
        """Bind the run's optimizer settings (for the learning rate); no packing before."""
        m = self.metrics
        probs, norm, scales = self._inputs
        self.dispatch = make_dispatch("stats.wgsl", "pack", [self.frame.buffer, m.state, m.history, m.evals,
                                                            m.counters, probs, norm, scales, hyper,
                                                            self.canvas.sample, m.estimate, self.out], (1,))

    def bind_runs(self, others: list) -> None:
        """The other runs side by side: [(probs of the run's forward pass on the canvas, metrics)]."""
        if len(others) > MAX_OTHER_RUNS:
            raise ValueError(f"at most {MAX_OTHER_RUNS} other runs in the readout")
        self._runs = []
        for k, (probs, metrics) in enumerate(others):
            prm = Params(RUN_STATS_FRAME, "stats.run", **self._run_values(metrics, k))
            d = make_dispatch("run_stats.wgsl", "pack_run", [prm.buffer, metrics.history, metrics.evals, probs,
                                                              self.out], (1,))
            self._runs.append((prm, d, metrics))

    @staticmethod
    def _run_values(m, k: int) -> dict:
        return dict(steps=m.steps, cap=HISTORY_CAP, nevals=m.evaluations, eval_cap=EVAL_CAP, classes=m.num_classes,
                    word=(READOUT.size + k * RUN_READOUT.size) // 4)

    @property
    def read_bytes(self) -> int:
        return READOUT.size + len(self._runs) * RUN_READOUT.size

    def _frame_values(self) -> dict:
        m = self.metrics
        return dict(steps=m.steps, cap=HISTORY_CAP, nevals=m.evaluations, eval_cap=EVAL_CAP,
                    classes=m.num_classes, **self._w)

    def dispatches(self) -> list:
        if self.dispatch is None:
            return []
        self.frame.set(**self._frame_values())
        for k, (prm, _, m) in enumerate(self._runs):
            prm.set(**self._run_values(m, k))
        self._packed_revision = self.canvas.revision
        self._packed_evaluations = self.metrics.evaluations
        return [self.dispatch] + [d for _, d, _ in self._runs]

    def before_submit(self, encoder, now: float | None = None) -> None:
        """Copy the pack into a read in the frame's `encoder` if none is in flight and the interval
        has passed (after the pack's dispatch, before the frame's submission)."""
        now = time.perf_counter() if now is None else now
        if self.dispatch is not None and self.pending is None and now - self.last_start >= self.interval:
            self.pending = get_device().read_in(encoder, self.out, 0, self.read_bytes, "stats")
            self._pending_runs = [m for _, _, m in self._runs]
            self._pending_revision = self._packed_revision
            self._pending_evaluations = self._packed_evaluations
            self.last_start = now

    def after_submit(self) -> None:
        """The frame is submitted: its read (if it copied one) can start."""
        if self.pending is not None and not self.pending.started:
            self.pending.start()

    def poll(self) -> bool:
        """Pick up a finished read (non-blocking). True when new values arrived."""
        if self.pending is None or not self.pending.ready():
            return False
        raw = self.pending.result()
        self.values = decode(READOUT.unpack(raw[:READOUT.size]))
        self.values["evaluations"] = self._pending_evaluations    # the one `test_acc` is the last of
        # Each other run's numbers, by its metrics' id (runs may come and go while a read is in flight).
        self.values["runs"] = {id(m): RUN_READOUT.unpack(raw[READOUT.size + k * RUN_READOUT.size:][:RUN_READOUT.size])
                               for k, m in enumerate(self._pending_runs)}
        self.values_revision = self._pending_revision
        self.pending = None
        return True

    @property
    def canvas_current(self) -> bool:
        """Whether the values' canvas fields (ink, pred, sample) are of the canvas shown now."""
        return self.values_revision == self.canvas.revision


def decode(v: dict) -> dict:
    """The packed words as the panels use them: the two f16 colour scales, the loaded
    sample's index and label (None when the painted canvas feeds the network), the
    evaluation's wrong count, the embedding's hovered test sample (None: none)."""
    w1, w2 = np.array([v.pop("w_absmax")], np.uint32).view(np.float16).astype(float)
    v["w1_absmax"], v["w2_absmax"] = float(w1), float(w2)
    s = v.pop("sample")
    v["sample_index"], v["sample_label"] = (None, None) if s == NONE else (s >> 8, s & 0xFF)
    v["wrong"] = v["seen"] - v["correct"]
    hover = v.pop("hover")
    v["hover_index"] = hover - 1 if hover else None
    return v
