"""The test-set evaluation as replayable programs, one per chunk of the test set.

First piece: zero the counters. Every piece: gather a chunk, the model's forward
pass (traced once), score (correct count, confusion matrix, misclassified indices,
with atomics). Last piece: append (step, accuracy) to the evaluation ring. A slow
device encodes one piece per frame; a fast one all of them at once.

The chunk is as large as the device allows (compute/budget.py: its storage-binding
limit over the widest activation of one image), at most 4096 rows.
"""
from __future__ import annotations

import math

from .budget import Limits, eval_rows
from .device import get_device
from .program import Program
from .structs import EVAL
from .tensor import Tensor


class EvaluationPiece:
    """One chunk's program; encoding the last one records the evaluation in the CPU mirrors."""

    def __init__(self, program: Program, metrics=None):
        self.program = program
        self._records = metrics

    def encode(self, encoder) -> None:
        self.program.encode(encoder)
        if self._records is not None:
            self._records.evaluations += 1
            self._records.revision += 1


class Evaluation:
    def __init__(self, model, data, metrics):
        dev = get_device()
        test = data.test
        c = data.num_classes
        chunk = eval_rows(model.arch, test.n, Limits.current())
        self.chunk = chunk
        self.x = Tensor((chunk, test.input_size), label="eval.x")
        self.y = Tensor((chunk,), dtype="u32", label="eval.y")
        dev.stream.flush()
        with dev.stream.capture("eval_forward") as fwd:
            self.logits = model.forward(self.x, train=False)
        dev.stream.discard()

        m = metrics

        def resources(base: int) -> list:
            return [dev.uniform(EVAL, R=chunk, C=c, base=base), self.logits, self.y, m.counters, m.wrong,
                    m.evals, m.state]

        self.pieces: list[EvaluationPiece] = []
        bases = list(range(0, test.n, chunk))
        for k, base in enumerate(bases):
            with dev.stream.capture(f"evaluate[{k}]") as prog:
                if k == 0:
                    dev.dispatch("eval.wgsl", "reset", resources(0), (math.ceil(m.counter_words / 64),))
                data.gather(test, self.x, self.y, m.state, base=base, eval_mode=True)
                for d in fwd.dispatches:
                    dev.stream.record(d)
                dev.dispatch("eval.wgsl", "score", resources(base), (math.ceil(chunk / 64),))
                if k == len(bases) - 1:
                    dev.dispatch("eval.wgsl", "finish", resources(0), (1,))
            dev.stream.discard()
            self.pieces.append(EvaluationPiece(prog, metrics if k == len(bases) - 1 else None))

    def encode(self, encoder) -> None:
        for piece in self.pieces:
            piece.encode(encoder)
