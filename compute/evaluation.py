"""The test-set evaluation as replayable programs, one per chunk of the test set.

The piece at row 0: zero the counters. Every piece: gather a chunk, the model's forward
pass (traced once), score (correct count, confusion matrix, misclassified indices,
with atomics). Last piece: append (step, accuracy) to the evaluation ring. A slow
device encodes one piece per frame; a fast one all of them at once. The rest of an
evaluation under way can go on in pieces of another size (`pieces_from` a row).

The chunk is as large as the device allows (compute/budget.py: its storage-binding
limit over the widest activation of one image), at most 4096 rows, or `max_rows` (the
visualizer's: a piece of a large CNN's evaluation must fit a frame).

`Estimate` is the cheap running version: one forward pass over a fixed subset of
ESTIMATE_ROWS test images spread evenly over the test set (MNIST's first half is
easier than its second), scored into `metrics.estimate`; it records nothing else.
"""
from __future__ import annotations

import math

from .budget import Limits, eval_rows
from .device import get_device
from .program import Program
from .structs import EVAL
from .tensor import Tensor

ESTIMATE_ROWS = 512
EVAL_MIN_ROWS = 16         # the smallest evaluation piece a frame's budget shrinks them to
ESTIMATE_BLOCKS = 8        # contiguous blocks the subset is drawn from, evenly spaced


def piece_rows(rows: float) -> int:
    """The rows of a re-cut evaluation piece: a power of 2 at most `rows`, at least EVAL_MIN_ROWS.
    Re-cuts then go through a few sizes only, and their pieces' parameter buffers (Device.uniform
    keeps one per distinct struct for the process) are shared instead of piling up: noisy costs
    on a loaded machine kept re-cutting to new sizes (a soak's live buffers grew by 209)."""
    return max(EVAL_MIN_ROWS, 1 << max(0, int(rows).bit_length() - 1))

class EvaluationPiece:
    """One chunk's program; encoding the last one records the evaluation in the CPU mirrors."""

    def __init__(self, program: Program, start: int, metrics=None):
        self.program = program
        self.start = start          # its first test row: the rows before it are scored before it runs
        self._records = metrics

    def encode(self, encoder) -> None:
        self.program.encode(encoder)
        if self._records is not None:
            self._records.evaluations += 1
            self._records.evaluated_at = self._records.steps
            self._records.revision += 1


class Evaluation:
    def __init__(self, model, data, metrics, max_rows: int | None = None):
        dev = get_device()
        test = data.test
        chunk = eval_rows(model.arch, test.n, Limits.current())
        if max_rows is not None:
            chunk = max(1, min(chunk, max_rows))
        self.chunk = chunk
        self.x = Tensor((chunk, test.input_size), label="eval.x")
        self.y = Tensor((chunk,), dtype="u32", label="eval.y")
        dev.stream.flush()
        with dev.stream.capture("eval_forward") as fwd:
            self.logits = model.forward(self.x, train=False)
        dev.stream.discard()
        self._data, self._metrics, self._forward = data, metrics, fwd.dispatches
        self.pieces: list[EvaluationPiece] = self.pieces_from(0)

    def pieces_from(self, start: int) -> list[EvaluationPiece]:
        """The pieces of the test rows from `start` on: with start > 0, the rest of an evaluation
        whose earlier rows other pieces scored (their counts stand: only a piece at row 0 zeroes
        the counters); the last one records the result."""
        dev, data, m, chunk = get_device(), self._data, self._metrics, self.chunk
        test = data.test

        def resources(base: int) -> list:
            return [dev.uniform(EVAL, R=chunk, C=data.num_classes, base=base), self.logits, self.y, m.counters,
                    m.wrong, m.evals, m.state]

        pieces = []
        bases = list(range(start, test.n, chunk))
        for k, base in enumerate(bases):
            with dev.stream.capture(f"evaluate@{base}") as prog:
                if base == 0:
                    dev.dispatch("eval.wgsl", "reset", resources(0), (math.ceil(m.counter_words / 64),))
                data.gather(test, self.x, self.y, m.state, base=base, eval_mode=True)
                for d in self._forward:
                    dev.stream.record(d)
                dev.dispatch("eval.wgsl", "score", resources(base), (math.ceil(chunk / 64),))
                if k == len(bases) - 1:
                    dev.dispatch("eval.wgsl", "finish", resources(0), (1,))
            dev.stream.discard()
            pieces.append(EvaluationPiece(prog, base, m if k == len(bases) - 1 else None))
        return pieces

    def encode(self, encoder) -> None:
        for piece in self.pieces:
            piece.encode(encoder)


class Estimate:
    """A test-accuracy estimate on a fixed subset: one replayable program."""

    def __init__(self, model, data, metrics):
        dev = get_device()
        test = data.test
        # As many rows as the device binds (a wide convolution may need fewer), spread over the
        # test set in blocks when it is large enough.
        rows = eval_rows(model.arch, min(ESTIMATE_ROWS, test.n), Limits.current())
        blocks = ESTIMATE_BLOCKS if rows == ESTIMATE_ROWS and test.n >= 2 * ESTIMATE_ROWS else 1
        per = rows // blocks
        self.rows = per * blocks
        d = test.input_size
        x = Tensor((self.rows, d), label="estimate.x")
        y = Tensor((self.rows,), dtype="u32", label="estimate.y")
        self.wrong = dev.buffer(16, "estimate.wrong")      # score's list of misses: not kept
        dev.stream.flush()
        with dev.stream.capture("estimate") as prog:
            prm = dev.uniform(EVAL, R=self.rows, C=data.num_classes, base=0)

            def resources(logits) -> list:      # eval.wgsl's block, scoring into `metrics.estimate`
                return [prm, logits, y, metrics.estimate, self.wrong, metrics.evals, metrics.state]

            dev.dispatch("eval.wgsl", "reset", resources(x), (math.ceil(metrics.counter_words / 64),))
            for k in range(blocks):
                # Block k: test samples [k * n / blocks, + per) into rows [k * per, + per)
                # (byte offsets k * 256 * d and k * 256: storage-binding aligned).
                xs = Tensor((per, d), x.buffer, x.offset + k * per * d * 4, label="estimate.x")
                ys = Tensor((per,), y.buffer, y.offset + k * per * 4, dtype="u32", label="estimate.y")
                data.gather(test, xs, ys, metrics.state, base=k * (test.n // blocks), eval_mode=True)
            dev.dispatch("eval.wgsl", "score", resources(model.forward(x, train=False)), (math.ceil(self.rows / 64),))
        dev.stream.discard()
        self.program: Program = prog

    def encode(self, encoder) -> None:
        self.program.encode(encoder)
