"""The GPU buffers a run's kernels write and the views draw, with typed readers.

  state     the training state words (`State`, compute/structs.py)
  history   a ring of (loss, accuracy) per step of the run, slot = state.run_step
  counters  the last evaluation: [0] correct, [1] seen, [2] misclassified found,
            [3 ..) the confusion matrix [true * C + predicted]
  wrong     the first WRONG_CAP misclassified test indices of the last evaluation
  evals     a ring of (run step u32, accuracy f32 bits), slot = state.evals
  estimate  counters (same layout) of the last running estimate on a fixed test subset

The readers are for the CLI and the tests; the visualizer binds the buffers.
"""
from __future__ import annotations

import numpy as np

from .device import get_device
from .structs import STATE
from .tensor import Tensor

HISTORY_CAP = 1 << 16          # steps of (loss, accuracy) kept
EVAL_CAP = 1024                # evaluations kept
WRONG_CAP = 256                # misclassified test digits kept per evaluation


class RunMetrics:
    def __init__(self, num_classes: int):
        dev = get_device()
        self.num_classes = num_classes
        self.state = Tensor((STATE.size // 4,), dtype="u32", label="state")
        self.history = Tensor((HISTORY_CAP * 2,), label="history")
        self.counters = dev.buffer(self.counter_words * 4, "eval.counters")
        self.wrong = dev.buffer(WRONG_CAP * 4, "eval.wrong")
        self.evals = dev.buffer(EVAL_CAP * 8, "eval.results")
        self.estimate = dev.buffer(self.counter_words * 4, "eval.estimate")
        # CPU mirrors of what was encoded (never read back): the views need them to
        # know which ring slots hold data.
        self.steps = 0            # state.run_step
        self.evaluations = 0      # state.evals
        self.evaluated_at = None  # the run step the last evaluation encoded scores (None: none yet)
        self.revision = 0         # bumped by every evaluation and clear (views redraw)

    @property
    def counter_words(self) -> int:
        return 3 + self.num_classes * self.num_classes

    # -- writes (queued between submissions) -------------------------------------------------------
    def write_state(self, **fields) -> None:
        """Overwrite some state words (the rest keep their GPU values)."""
        dev = get_device()
        raw = STATE.pack(**fields)
        for name in fields:
            o = STATE.offset(name)
            dev.queue.write_buffer(self.state.buffer, o, raw[o:o + 4])

    def clear(self) -> None:
        """A new run: zero state, last evaluation and rings' counters."""
        dev = get_device()
        dev.queue.write_buffer(self.state.buffer, 0, bytes(STATE.size))
        dev.queue.write_buffer(self.counters, 0, bytes(self.counters.size))
        dev.queue.write_buffer(self.estimate, 0, bytes(self.estimate.size))
        self.steps = self.evaluations = 0
        self.evaluated_at = None
        self.revision += 1

    # -- reads (blocking; CLI and tests only) ------------------------------------------------------
    def read_state(self) -> dict:
        return STATE.unpack(get_device().read(self.state.buffer, 0, STATE.size, "state"))

    def read_history(self, start: int, stop: int) -> np.ndarray:
        """(loss, accuracy) rows for run steps [start, stop) (the part still in the ring)."""
        dev = get_device()
        start = max(start, stop - HISTORY_CAP, 0)
        out, s = [], start
        while s < stop:
            slot = s % HISTORY_CAP
            n = min(stop - s, HISTORY_CAP - slot)
            raw = dev.read(self.history.buffer, slot * 8, n * 8, "history")
            out.append(np.frombuffer(raw, np.float32).reshape(n, 2))
            s += n
        return np.concatenate(out) if out else np.zeros((0, 2), np.float32)

    def read_step_async(self, run_step: int):
        """Start a non-blocking read of one step's (loss, accuracy): 8 bytes."""
        slot = run_step % HISTORY_CAP
        return get_device().read_async(self.history.buffer, slot * 8, 8, "history.step")

    def read_evals(self, count: int) -> list[tuple[int, float]]:
        """The last min(count, EVAL_CAP) evaluations as (run step, accuracy), oldest first."""
        raw = np.frombuffer(get_device().read(self.evals, label="evals"), np.uint32).reshape(-1, 2)
        idx = [k % EVAL_CAP for k in range(max(0, count - EVAL_CAP), count)]
        return [(int(raw[k, 0]), float(raw[k, 1:2].view(np.float32)[0])) for k in idx]

    def read_evaluation(self) -> dict:
        """The last evaluation: accuracy, counts, confusion matrix, misclassified indices."""
        dev = get_device()
        c = self.num_classes
        raw = np.frombuffer(dev.read(self.counters, 0, self.counter_words * 4, "eval.counters"), np.uint32)
        correct, seen, nwrong = int(raw[0]), int(raw[1]), int(raw[2])
        kept = min(nwrong, WRONG_CAP)
        wrong = np.frombuffer(dev.read(self.wrong, 0, max(kept, 1) * 4, "eval.wrong"), np.uint32)[:kept]
        return {"accuracy": correct / max(seen, 1), "correct": correct, "seen": seen,
                "confusion": raw[3:3 + c * c].reshape(c, c).copy(), "wrong": wrong.copy()}
