"""The visualizer's record of a training run, kept on the GPU across trainer rebuilds.

A `Trainer` owns its metrics buffers and starts them from zero, but the user may
rebuild it mid-run (a new batch size, say) and expects the curves to continue.
So after every frame's steps the new entries of the trainer's (loss, accuracy)
ring are copied, GPU to GPU, into this run-wide ring at the run's global step;
after every evaluation its counters, misclassified indices and accuracy are
copied here too. The CPU only does the bookkeeping of which slots to copy: it
knows how many steps it encoded, it never needs the values.
"""
from __future__ import annotations

import struct

import numpy as np

from ..compute.device import get_device
from ..compute.training import EVAL_HISTORY, HISTORY_CAP, STATE_WORDS, WRONG_CAP


class RunHistory:
    def __init__(self, num_classes: int):
        dev = get_device()
        self.num_classes = num_classes
        self.cap = HISTORY_CAP
        self.eval_cap = EVAL_HISTORY
        self.hist = dev.buffer(self.cap * 8, "run.history")          # (loss, accuracy) per global step
        self.evals = dev.buffer(self.eval_cap * 8, "run.evals")      # (global step, test accuracy)
        self.counters = dev.buffer((3 + num_classes * num_classes) * 4, "run.counters")
        self.wrong = dev.buffer(WRONG_CAP * 4, "run.wrong")
        self.state = dev.buffer(STATE_WORDS * 4, "run.state")        # the trainer's step counter and flags
        self.steps = 0        # global steps recorded
        self.nevals = 0       # evaluations recorded
        self.eval_steps: list[int] = []   # global step of each evaluation (CPU bookkeeping)
        self.revision = 0     # bumped when a new evaluation lands

    def clear(self) -> None:
        """A new run: forget the curves and the last evaluation."""
        dev = get_device()
        dev.queue.write_buffer(self.counters, 0, bytes(self.counters.size))
        dev.queue.write_buffer(self.state, 0, bytes(self.state.size))
        self.steps = 0
        self.nevals = 0
        self.eval_steps.clear()
        self.revision += 1

    def record_steps(self, encoder, trainer, first: int, n: int) -> None:
        """Copy the trainer's ring entries for its steps [first, first + n) to global steps
        [self.steps, self.steps + n). Both rings have HISTORY_CAP slots; wraps split the copy."""
        src_ring = trainer.metrics.history.buffer
        done = 0
        while done < n:
            s = (first + done) % HISTORY_CAP
            d = (self.steps + done) % self.cap
            k = min(n - done, HISTORY_CAP - s, self.cap - d)
            encoder.copy_buffer_to_buffer(src_ring, s * 8, self.hist, d * 8, k * 8)
            done += k
        self.steps += n

    def record_state(self, encoder, trainer) -> None:
        encoder.copy_buffer_to_buffer(trainer.metrics.state.buffer, 0, self.state, 0, STATE_WORDS * 4)

    def record_eval(self, encoder, trainer, k: int) -> None:
        """After the trainer's k-th evaluation (1-based) finished in this encoder."""
        m = trainer.metrics
        encoder.copy_buffer_to_buffer(m.counters, 0, self.counters, 0, self.counters.size)
        encoder.copy_buffer_to_buffer(m.wrong, 0, self.wrong, 0, self.wrong.size)
        slot = self.nevals % self.eval_cap
        if k < EVAL_HISTORY:
            encoder.copy_buffer_to_buffer(m.eval_results, k * 4, self.evals, slot * 8 + 4, 4)
        get_device().queue.write_buffer(self.evals, slot * 8, struct.pack("<f", float(self.steps)))
        self.eval_steps.append(self.steps)
        self.nevals += 1
        self.revision += 1

    # -- tests only ------------------------------------------------------------------------------------
    def read_steps(self) -> np.ndarray:
        dev = get_device()
        n = min(self.steps, self.cap)
        raw = dev.read(self.hist, 0, max(n, 1) * 8, "run.history")
        return np.frombuffer(raw, np.float32).reshape(-1, 2)[:n]
