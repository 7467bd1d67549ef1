"""Training and evaluation as replayable GPU programs.

`Trainer` traces one training step (gather -> forward -> loss -> backward ->
update -> advance the step counter) into a Program once, then encodes that same
list of dispatches for every later step. The CPU keeps only a mirror of the step
count, to reshuffle at epoch boundaries and to know when an epoch ended.
Metrics (per-step loss/accuracy ring, evaluation counters, confusion matrix,
misclassified indices) stay in GPU buffers; the visualizer draws them and the
CLI reads them back once per epoch.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, replace

import numpy as np

from . import ops
from .data import GpuDataset
from .device import get_device
from .nn import Sequential
from .optim import OptimConfig, Optimizer
from .program import Program
from .tensor import Tensor

HISTORY_CAP = 1 << 16          # steps of (loss, accuracy) kept in the ring
EVAL_HISTORY = 1024            # evaluations kept
WRONG_CAP = 256                # misclassified test digits kept per evaluation
STATE_WORDS = 16
FLAG_NONFINITE = 1


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 32
    optim: OptimConfig = field(default_factory=OptimConfig)
    shift: int = 0            # random translation augmentation, pixels
    seed: int = 0
    engine: str = "auto"      # "fused" (two dispatches a step), "graph" (autograd trace), "auto"
    step_epochs: float = 1.0  # period of step/exponential decay, in epochs

    def validate(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 1 <= self.batch_size <= 65535:
            raise ValueError(f"batch size must be in 1..65535, got {self.batch_size}")
        if not 0 <= self.shift <= 8:
            raise ValueError(f"shift must be in 0..8 pixels, got {self.shift}")
        if self.engine not in ("auto", "fused", "graph"):
            raise ValueError(f"unknown engine {self.engine!r} (auto, fused, graph)")
        self.optim.validate()


class Metrics:
    """GPU buffers the kernels write and the views draw."""

    def __init__(self, num_classes: int):
        dev = get_device()
        self.num_classes = num_classes
        self.state = Tensor((STATE_WORDS,), dtype="u32", label="state")
        self.history = Tensor((HISTORY_CAP * 2,), label="history")
        self.counters = dev.buffer((3 + num_classes * num_classes) * 4, "eval.counters")
        self.wrong = dev.buffer(WRONG_CAP * 4, "eval.wrong")
        self.eval_results = dev.buffer(EVAL_HISTORY * 4, "eval.results")

    def clear_flags(self) -> None:
        get_device().queue.write_buffer(self.state.buffer, 12, struct.pack("<I", 0))

    def set_step(self, step: int) -> None:
        get_device().queue.write_buffer(self.state.buffer, 0, struct.pack("<2I", step, step))


class Trainer:
    def __init__(self, model: Sequential, data: GpuDataset, config: TrainConfig):
        config.validate()
        problem = model.spec.misfit(data.train.height, data.train.width, data.num_classes)
        if problem:
            raise ValueError(problem)
        self.model, self.data, self.config = model, data, config
        self.metrics = Metrics(data.num_classes)
        self.steps_per_epoch = data.steps_per_epoch(config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer = Optimizer(model.arena, self._schedule(config.optim), self.metrics.state)
        self.rng = np.random.default_rng(config.seed)
        self.step = 0
        self.engine = self._choose_engine()
        self.program = self._trace_step()
        self.evaluator = Evaluator(model, data, self.metrics)
        self.snapshot = get_device().buffer(model.arena.size * 4, "params.snapshot")

    # -- building ---------------------------------------------------------------------------------
    def _schedule(self, oc: OptimConfig) -> OptimConfig:
        return replace(oc, total_steps=self.total_steps,
                       period=max(1, round(self.steps_per_epoch * self.config.step_epochs)))

    def _choose_engine(self) -> str:
        from .fused import fused_supported
        ok = fused_supported(self.model, self.config)
        if self.config.engine == "fused" and not ok:
            raise ValueError("the fused step covers one hidden ReLU layer without dropout; use --engine graph")
        return "fused" if (ok and self.config.engine != "graph") else "graph"

    def _trace_step(self) -> Program:
        if self.engine == "fused":
            from .fused import FusedStep
            self.fused = FusedStep(self.model, self.data, self.metrics, self.optimizer, self.config)
            return self.fused.program
        dev = get_device()
        b = self.config.batch_size
        self.x = Tensor((b, self.data.input_size), label="batch.x")
        self.y = Tensor((b,), dtype="u32", label="batch.y")
        with dev.stream.capture("train_step") as prog:
            self.data.gather(self.data.train, self.x, self.y, self.metrics.state, shift=self.config.shift,
                             seed=self.config.seed)
            logits = self.model.forward(self.x, train=True, state=self.metrics.state, seed=self.config.seed)
            loss = ops.cross_entropy(logits, self.y, self.metrics.state, self.metrics.history)
            loss.backward()
            self.optimizer.record_step()
        dev.stream.discard()  # traced only; it runs when replayed
        return prog

    # -- running ----------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    def encode_steps(self, encoder, n: int) -> int:
        """Encode up to n steps, never past the end of the current epoch (the next
        epoch's permutation is written between submissions). Returns steps encoded."""
        if n <= 0:
            return 0
        if self.step % self.steps_per_epoch == 0:
            self.data.shuffle(self.rng)
        n = min(n, self.steps_per_epoch - self.step % self.steps_per_epoch)
        self.program.encode(encoder, repeat=n)
        self.step += n
        return n

    def run_steps(self, n: int, per_submit: int = 256) -> None:
        """Headless: encode and submit n steps in chunks, without waiting.

        The GPU runs one chunk while Python encodes the next; the first chunk is
        small so the GPU starts early, later ones grow to `per_submit`."""
        dev = get_device()
        chunk = min(16, per_submit)
        while n > 0:
            enc = dev.device.create_command_encoder()
            done = self.encode_steps(enc, min(n, chunk))
            dev.submit(enc)
            n -= done
            chunk = min(chunk * 2, per_submit)

    def encode_eval(self, encoder) -> None:
        self.evaluator.encode(encoder)

    def evaluate(self) -> dict:
        return self.evaluator.run()

    def read_eval(self) -> dict:
        return self.evaluator.read()

    # -- readback (CLI and tests only; the visualizer draws the buffers instead) --------------------

    def read_history(self, start: int, stop: int) -> np.ndarray:
        """(loss, accuracy) rows for steps [start, stop) (must lie within the ring)."""
        dev = get_device()
        start = max(start, stop - HISTORY_CAP)
        out = []
        s = start
        while s < stop:
            slot = s % HISTORY_CAP
            n = min(stop - s, HISTORY_CAP - slot)
            raw = dev.read(self.metrics.history.buffer, slot * 8, n * 8, "history")
            out.append(np.frombuffer(raw, np.float32).reshape(n, 2))
            s += n
        return np.concatenate(out) if out else np.zeros((0, 2), np.float32)

    def read_step_async(self, step: int):
        """Start a non-blocking read of one step's (loss, accuracy): 8 bytes."""
        slot = step % HISTORY_CAP
        return get_device().read_async(self.metrics.history.buffer, slot * 8, 8, "history.step")

    def read_flags(self) -> int:
        return int(np.frombuffer(get_device().read(self.metrics.state.buffer, 12, 4, "flags"), np.uint32)[0])

    # -- divergence guard -------------------------------------------------------------------------------
    def save_snapshot(self, encoder) -> None:
        self.model.snapshot_to(encoder, self.snapshot)

    def restore_snapshot(self) -> None:
        """Put back the last good weights, clear the flag, reset optimizer moments."""
        dev = get_device()
        enc = dev.device.create_command_encoder()
        self.model.restore_from(enc, self.snapshot)
        dev.submit(enc)
        self.optimizer.reset_state()
        self.metrics.clear_flags()


class Evaluator:
    """The test-set evaluation as a replayable program: reset counters; per chunk:
    gather, forward, score; then append the accuracy to the results history."""

    def __init__(self, model: Sequential, data: GpuDataset, metrics: Metrics):
        self.model, self.data, self.metrics = model, data, metrics
        self.program = self._trace()

    def _trace(self) -> Program:
        dev = get_device()
        test = self.data.test
        chunk = min(test.n, 4096)
        self.eval_x = Tensor((chunk, test.input_size), label="eval.x")
        self.eval_y = Tensor((chunk,), dtype="u32", label="eval.y")
        m = self.metrics
        c = self.data.num_classes
        with dev.stream.capture("eval_forward") as fwd:
            self.eval_logits = self.model.forward(self.eval_x, train=False)
        dev.stream.discard()
        with dev.stream.capture("evaluate") as prog:
            res = lambda base: [dev.uniform("<4I", chunk, c, base, 0), self.eval_logits, self.eval_y,
                                m.counters, m.wrong, m.eval_results]
            dev.dispatch("eval.wgsl", "reset", res(0), (math.ceil(m.counters.size / 4 / 64),))
            for base in range(0, test.n, chunk):
                self.data.gather(test, self.eval_x, self.eval_y, m.state, base=base, eval_mode=True)
                for d in fwd.dispatches:
                    dev.stream.record(d)
                dev.dispatch("eval.wgsl", "score", res(base), (math.ceil(chunk / 64),))
            dev.dispatch("eval.wgsl", "finish", res(0), (1,))
        dev.stream.discard()
        return prog

    def encode(self, encoder) -> None:
        self.program.encode(encoder)

    def run(self) -> dict:
        """Evaluate and read back the counters (CLI / tests; the visualizer draws them)."""
        dev = get_device()
        enc = dev.device.create_command_encoder()
        self.encode(enc)
        dev.submit(enc)
        return self.read()

    def read(self) -> dict:
        dev = get_device()
        c = self.data.num_classes
        raw = np.frombuffer(dev.read(self.metrics.counters, label="eval.counters"), np.uint32)
        correct, seen, nwrong = int(raw[0]), int(raw[1]), int(raw[2])
        kept = min(nwrong, WRONG_CAP)
        wrong = np.frombuffer(dev.read(self.metrics.wrong, 0, max(kept, 1) * 4, "eval.wrong"), np.uint32)[:kept]
        return {"accuracy": correct / max(seen, 1), "correct": correct, "seen": seen,
                "confusion": raw[3: 3 + c * c].reshape(c, c).copy(), "wrong": wrong.copy()}
