"""One training run on the GPU, owned by the engine and driven by every front end.

`mnist-viz train` and the visualizer both hold a `Run` and only say *when*: advance
by n steps into a command encoder, evaluate, change the recipe, restart, restore.
The run owns the model's training state on the GPU: the step program (the compiled
step or the traced autograd step, replayed), the optimizer and its schedule, the
step counters, the epoch permutation, evaluation, the divergence guard with its
epoch-start snapshot, and the metrics the views draw (metrics.py).

The CPU keeps mirrors of the counters it encoded (it never needs to read them
back): the schedule step (which batch, which learning rate), the steps taken in
the run (the history slot), the evaluations recorded.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .budget import Limits, check_rows
from .data import GpuDataset
from .device import get_device
from .evaluation import EVAL_MIN_ROWS, Estimate, Evaluation, piece_rows
from .metrics import RunMetrics
from .optim import Optimizer
from .program import Dispatch, Program
from .recipe import Recipe
from .structs import FLAG_STALLED, FLAGS_DIVERGED, OPTIM
from .tensor import Tensor

ENGINES = ("auto", "compiled", "graph")
# Headless submissions (run_steps): the first holds FIRST_CHUNK steps, so the GPU starts at once;
# each later one at most RAMP x the steps queued ahead of it. While Python encodes a submission
# the GPU runs what is queued, so a submission may take as long to encode as the queue takes to
# run: with 784-128-10 at batch 32 the CPU's 15 us a step against the GPU's 17.8 leave RAMP
# <= 0.18 (doubling each submission, as before, left the H100 idle 7.4 ms of a 42 ms epoch:
# benchmarks/epoch_timeline.py, benchmarks/NOTES.md).
CPU_COMPILED_MAX = 2_000_000   # auto on a CPU adapter: the compiled step up to this many weights x batch rows
FIRST_CHUNK = 16
RAMP = 0.15
DRAW_AFTER = 128        # steps queued before the next epoch's order is drawn (~0.5-1 ms of CPU)


def submission_size(queued: int, most: int) -> int:
    """Steps for the next headless submission with `queued` steps ahead of it on the GPU (RAMP)."""
    return min(most, max(FIRST_CHUNK, int(queued * RAMP)))


class Run:
    def __init__(self, model, data: GpuDataset, recipe: Recipe, engine: str = "auto",
                 metrics: RunMetrics | None = None, encode_light: bool = False, resident: bool = False,
                 eval_macs: int | None = None):
        recipe.validate()
        check_rows(model.arch, recipe.batch_size, Limits.current(), option="batch size")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} ({', '.join(ENGINES)})")
        problem = model.arch.misfit(data.train.height, data.train.width, data.num_classes)
        if problem:
            raise ValueError(problem)
        self.model, self.data, self.engine_choice = model, data, engine
        # Encoded by a thread whose CPU is the scarce part (the visualizer's frame loop, which also
        # draws): a compiled step that costs the CPU less to encode and the GPU a little more.
        self.encode_light = encode_light
        # An MLP's steps as the resident step (compute/resident_step.py: a chunk of steps in one
        # dispatch, every SM busy). Opt-in: its first cut is slower than the two-pass step on the
        # H100 (benchmarks/NOTES.md, "The resident step").
        self.resident = resident
        # Workgroups a batch row's pass 1 is shared over (None: the compiled step chooses; 1 after
        # a step whose parts could not all run at once, FLAG_STALLED)
        self.parts = None
        if metrics is not None and metrics.num_classes != data.num_classes:
            raise ValueError(f"metrics for {metrics.num_classes} classes, data has {data.num_classes}")
        self.metrics = metrics or RunMetrics(data.num_classes)
        self.optimizer = Optimizer(model.arena, self.metrics.state)
        self._snapshot = _SnapshotTaker(model, self.metrics)
        self.snapshot = self._snapshot.buffer
        self.snapshot_step: int | None = None   # schedule step of the snapshot (None: none taken)
        self.step = 0                # schedule step (mirror of state.step)
        self.weights_version = 0     # bumped whenever the weights change (views redraw)
        # Evaluations recorded up to the last divergence restore: any of them may have scored
        # the weights the restore threw away (one run between the flag rising and being read).
        self.stale_evaluations = 0
        self.recipe = recipe
        self._rng = np.random.default_rng(recipe.seed)
        self._shuffled_epoch: int | None = None
        self._order_ahead: np.ndarray | None = None    # the rng's next epoch order, drawn early (draw_order_ahead)
        # Rows of an evaluation piece: with `eval_macs` (the visualizer's), as many as that many
        # multiply-adds of forward pass allow, so that a piece fits a frame; fewer after
        # recut_evaluation when one still did not (evaluation.chunk says how many it has)
        rows = max(EVAL_MIN_ROWS, eval_macs // max(1, model.arch.macs())) if eval_macs else None
        self.evaluation = Evaluation(model, data, self.metrics, rows)
        self._estimate: Estimate | None = None     # built on first use (the visualizer's)
        self._apply(recipe, rebuild=True)

    # -- the recipe -----------------------------------------------------------------------------------
    def _apply(self, recipe: Recipe, rebuild: bool) -> None:
        self.steps_per_epoch, self.total_steps = recipe.steps(self.data.train.n)
        self.recipe = recipe
        if rebuild:
            self.engine = self._choose_engine()
            self.program = self._build_step()
        period = max(1, round(self.steps_per_epoch * recipe.step_epochs))
        self.optimizer.configure(recipe, self.total_steps, period)

    def set_recipe(self, new: Recipe) -> str:
        """Change hyper-parameters mid-run. Settings the kernels read from the `Hyper`
        buffer are one queue write; the batch size, augmentation and seed are baked into
        the step program, which is rebuilt to continue at the same point of the epoch.
        Returns a sentence saying what happened."""
        new.validate()
        old = self.recipe
        if new == old:
            return ""
        check_rows(self.model.arch, new.batch_size, Limits.current(), option="batch size")
        new.steps(self.data.train.n)              # fits the step counter: checked before anything changes
        baked = (new.batch_size, new.shift, new.seed) != (old.batch_size, old.shift, old.seed)
        if baked:
            samples = self.step * old.batch_size
            self._apply(new, rebuild=True)
            self.step = min(samples // new.batch_size, self.total_steps)
            self.metrics.write_state(step=self.step, step_snap=self.step)
            if new.seed != old.seed:
                self._rng = np.random.default_rng(new.seed)
                self._order_ahead = None
            message = f"rebuilt the step for batch size {new.batch_size}, continuing at step {self.step:,}"
        else:
            self._apply(new, rebuild=False)
            message = "settings applied from the next step"
        if new.optimizer != old.optimizer:
            self.optimizer.reset_state(self.step)
            message += f"; {new.optimizer} starts with fresh moments"
        return message

    def _choose_engine(self) -> str:
        """compiled: the step compiler builds the step (a convolutional network's dense head, its
        other layers traced); graph: the autograd trace alone (the reference)."""
        from .step_compiler import head_start, supported, unsupported_reason
        ok = supported(self.model) or head_start(self.model) is not None
        if self.engine_choice == "compiled" and not ok:
            raise ValueError(f"--engine compiled: {unsupported_reason(self.model)}; the compiled step covers "
                             "Linear layers, each followed by an optional ReLU() and Dropout(), ending in a Linear "
                             "(in a convolutional network, the layers after its last Flatten()); use --engine graph")
        if self.engine_choice == "auto" and ok and get_device().is_cpu:
            # On a CPU adapter (lavapipe) a row's workgroup runs on one core: the trace's products
            # spread over the cores win once the step is large (lavapipe, 2 cores, ms a step
            # compiled / graph: 784-32-10 b32 7 / 10; 784-128-10 b32 14 / 13, b64 32 / 18; the deep
            # MLP b64 244 / 88; the small CNN b64 171 / 151).
            weights = sum(math.prod(shape) for shape in self.model.arch.param_shapes().values())
            ok = weights * self.recipe.batch_size <= CPU_COMPILED_MAX
        return "compiled" if ok and self.engine_choice != "graph" else "graph"

    def _build_step(self) -> Program:
        if self.engine == "compiled":
            from .conv_front import plan_front
            from .step_compiler import CompiledStep, StepDoesNotFit, head_start
            try:
                start = head_start(self.model)
                if start is not None and plan_front(self.model) is not None:
                    try:        # the whole network compiled (two dispatches, or one more per conv spread)
                        return CompiledStep(self.model, self.data, self.metrics, self.optimizer,
                                            self.recipe, encode_light=self.encode_light).program
                    except StepDoesNotFit:
                        pass    # its front's staging is above the workgroup memory: the head alone compiled
                if start is not None:
                    return self._trace_step(head=start)
                from .resident_step import ResidentStep, resident_supported
                if self.resident and resident_supported(self.model):
                    try:
                        return ResidentStep(self.model, self.data, self.metrics, self.optimizer, self.recipe).program
                    except StepDoesNotFit:
                        pass        # the two-pass compiled step
                return CompiledStep(self.model, self.data, self.metrics, self.optimizer, self.recipe,
                                    encode_light=self.encode_light, parts=self.parts).program
            except StepDoesNotFit as e:
                if self.engine_choice == "compiled":
                    raise ValueError(f"--engine compiled: {e}") from None
                self.engine = "graph"          # auto: the trace's buffers are one layer each (compute/budget.py)
        return self._trace_step()

    def _trace_step(self, head: int | None = None) -> Program:
        """The step traced through the autograd ops into a Program: gather, forward, loss,
        backward, one optimizer pass over every parameter, the counter advance. With `head`
        (a convolutional network's first dense layer), the layers from there on are the
        compiled step's two dispatches instead (two for what the trace runs as a dozen): they
        read the traced features and write their gradient, from which the trace's backward
        goes on."""
        dev = get_device()
        b, r, m = self.recipe.batch_size, self.recipe, self.metrics
        x = Tensor((b, self.data.input_size), label="batch.x")
        y = Tensor((b,), dtype="u32", label="batch.y")
        dev.stream.flush()
        try:
            with dev.stream.capture("train_step") as prog:
                self.data.gather(self.data.train, x, y, m.state, shift=r.shift, seed=r.seed)
                out = self.model.forward(x, train=True, state=m.state, seed=r.seed, stop=head)
                if head is None:
                    ops.cross_entropy(out, y, m.state, m.history).backward()
                else:
                    from .step_compiler import CompiledStep, HeadIO
                    out.grad = Tensor(out.shape, label="grad(features)")
                    compiled = CompiledStep(self.model, self.data, m, self.optimizer, r,
                                            head=HeadIO(head, out, out.grad))
                    for d in compiled.program.dispatches:
                        dev.stream.record(d)
                    out.backward()
                self.optimizer.record_step()
        finally:
            dev.stream.discard()       # traced only (it runs when replayed), or abandoned: a head too big
        return prog

    # -- position -------------------------------------------------------------------------------------
    @property
    def steps_taken(self) -> int:
        """Steps of this run (the history slot; survives batch-size rebuilds and restores)."""
        return self.metrics.steps

    @property
    def evaluations(self) -> int:
        return self.metrics.evaluations

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return self.step // self.steps_per_epoch

    @property
    def epoch_progress(self) -> tuple[int, float]:
        """(the epoch the run is in, counted from 1; how far through it, 0..1): the one formula
        every front end prints. At an epoch boundary it is the epoch just completed at 1.0 (the
        next one begins with its first step), so a finished run reads epochs/epochs at 100%, also
        when the epochs were lowered below the one it was in."""
        if self.finished:
            return self.recipe.epochs, 1.0
        done, into = divmod(self.step, self.steps_per_epoch)
        if into == 0 and done > 0:
            return done, 1.0
        return done + 1, into / self.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    # -- training -------------------------------------------------------------------------------------
    def advance(self, encoder, n: int) -> int:
        """Encode up to n steps into `encoder`, never past the end of the current epoch nor of
        the run. At an epoch start the epoch's order goes into the encoder (GpuDataset.shuffle:
        a few epochs an encoder; then none is encoded until it is submitted) and the weights are
        copied aside (the divergence guard's snapshot). Returns the steps encoded."""
        n = min(n, self.total_steps - self.step, self.steps_per_epoch - self.step % self.steps_per_epoch)
        if n <= 0:
            return 0
        if self.step % self.steps_per_epoch == 0:
            epoch = self.epoch
            if self._shuffled_epoch != epoch:
                if not self.data.can_shuffle_into(encoder):
                    return 0
                self.data.shuffle(self._rng, encoder=encoder, order=self._order_ahead)
                self._order_ahead = None
                self._shuffled_epoch = epoch
            self._snapshot.program.encode(encoder)     # taken only if the run is healthy (snapshot.wgsl)
            self.snapshot_step = self.step
        self.program.encode(encoder, repeat=n)
        self.step += n
        self.metrics.steps += n
        self.weights_version += 1
        return n

    def run_steps(self, n: int, per_submit: int = 256, queued: int = 0) -> int:
        """Headless: encode and submit up to n steps in chunks, without waiting (the GPU runs
        what is queued while Python encodes the next chunk). `queued`: steps the caller knows
        are still ahead on the GPU (submitted, not seen done). Returns the steps submitted."""
        total = 0
        while n > 0:
            done = self.submit_chunk(min(n, submission_size(queued + total, per_submit)))
            if done == 0:
                break
            n -= done
            total += done
            self.draw_order_when_queued(queued + total)
        return total

    def draw_order_when_queued(self, queued: int) -> None:
        """Draw the next epoch's order (draw_order_ahead) once `queued` steps are ahead on the GPU:
        enough to cover the draw (a queue of 16 steps was not: ~1 ms of numpy left the GPU idle)."""
        if queued >= min(DRAW_AFTER, self.steps_per_epoch // 2):
            self.draw_order_ahead()

    def submit_chunk(self, steps: int) -> int:
        """Encode up to `steps` steps into a command buffer of their own and submit it; returns
        the steps encoded (benchmarks/epoch_timeline.py times each one)."""
        dev = get_device()
        enc = dev.device.create_command_encoder()
        done = self.advance(enc, steps)
        dev.submit(enc)
        return done

    def batch_rows(self, steps: np.ndarray) -> np.ndarray:
        """Images in the batches of schedule steps `steps`: the batch size, but an epoch's last
        step takes only the rest of the training set (each step's recorded loss and accuracy are
        means over these images, not over the padded rows)."""
        b = self.recipe.batch_size
        return np.minimum(b, self.data.train.n - steps % self.steps_per_epoch * b)

    def train_means(self, start: int) -> tuple[float, float]:
        """(loss, accuracy) over the images of the run steps from `start` to now: an epoch's
        training figures. The history holds each step's mean over its own batch, so each step
        is weighted by its images; a plain mean of the steps would count an epoch's short last
        batch (1 image of 65 at batch 64) as much as a full one. The steps are the last ones
        taken, at the current batch size (no restore or rebuild since `start`). Reads back the
        steps' history (8 bytes a step)."""
        hist = self.metrics.read_history(start, self.steps_taken).astype(np.float64)
        rows = self.batch_rows(np.arange(self.step - len(hist), self.step))
        loss, accuracy = np.average(hist, axis=0, weights=rows)
        return float(loss), float(accuracy)

    def draw_order_ahead(self) -> None:
        """Draw the next epoch's order now (numpy's permutation of the training set: ~0.5 ms of
        CPU), to be used at that epoch's start instead of drawing it there. Called while the GPU is
        busy; otherwise an epoch that starts on an idle GPU (a loop that waits at each epoch's
        end, as the benchmarks and the CLI's evaluations do) leaves it waiting for the draw. The
        orders are the same draws of the seed's generator, in the same order."""
        if self._order_ahead is None and self.step < self.total_steps:
            self._order_ahead = self.data.draw_order(self._rng)

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluation_pieces(self) -> list:
        """The test-set evaluation as pieces to encode in order (one per chunk of the
        test set), so a slow device can spread it over frames; the last one records
        the result at the current step."""
        return list(self.evaluation.pieces)

    def recut_evaluation(self, rows: int, start: int = 0) -> list:
        """Evaluation pieces of `rows` rows (at least EVAL_MIN_ROWS) from now on; returns those of
        the test rows from `start` on, the rest of an evaluation under way (its pieces before
        `start` were encoded: their counts stand): the new pieces' tail when `start` falls on one."""
        ev = self.evaluation = Evaluation(self.model, self.data, self.metrics, max(EVAL_MIN_ROWS, rows))
        return ev.pieces[start // ev.chunk:] if start % ev.chunk == 0 else ev.pieces_from(start)

    def fit_evaluation(self, macs: int, start: int = 0) -> list | None:
        """When this run's evaluation pieces hold more than `macs` multiply-adds of forward pass (a
        front end learned that size from its frames): re-cut them (piece_rows) for this evaluation
        and the later ones, and return those of the test rows from `start` on; None when they fit."""
        rows = macs // max(1, self.model.arch.macs())
        return self.recut_evaluation(piece_rows(rows), start) if rows < self.evaluation.chunk else None

    def encode_estimate(self, encoder) -> None:
        """A running test-accuracy estimate on a fixed subset of the test set, into
        `metrics.estimate` (one forward pass of evaluation.ESTIMATE_ROWS images)."""
        if self._estimate is None:
            self._estimate = Estimate(self.model, self.data, self.metrics)
        self._estimate.encode(encoder)

    def encode_evaluation(self, encoder) -> None:
        for piece in self.evaluation_pieces():
            piece.encode(encoder)

    def evaluate(self) -> dict:
        """Evaluate now and read the result back (CLI and tests; the visualizer draws it)."""
        dev = get_device()
        enc = dev.device.create_command_encoder()
        self.encode_evaluation(enc)
        dev.submit(enc)
        return self.metrics.read_evaluation()

    # -- divergence -----------------------------------------------------------------------------------
    def read_flags(self) -> int:
        """The divergence flags (a blocking 4-byte read: CLI once per epoch, tests)."""
        return self.metrics.read_state()["flags"]

    def diverged(self, flags: int) -> bool:
        """Whether the flags say the run diverged. A resident step or a row's parts whose barrier
        gave up (workgroups that could not all run at once: FLAG_STALLED) did not diverge: those
        steps are void, so the run goes back to the last epoch-start snapshot and goes on with
        the two-pass step, one workgroup a row."""
        if flags & FLAG_STALLED:
            self.resident = False
            self.parts = 1
            self.program = self._build_step()
            self.metrics.write_state(flags=0)
            self.restore_snapshot()
            return False
        return bool(flags & FLAGS_DIVERGED)

    def restore_snapshot(self) -> None:
        """Back to the weights and schedule step of the last healthy epoch start; the
        optimizer's moments and the divergence detector start over, the flags are cleared.
        The GPU kept the snapshot of the last epoch start the run was healthy at, so its
        step is read back (4 bytes, once: divergence is rare)."""
        if self.snapshot_step is None:
            return
        dev = get_device()
        enc = dev.device.create_command_encoder()
        self.model.restore_from(enc, self.snapshot)
        dev.submit(enc)
        self.snapshot_step = self._snapshot.read_step()
        self._rewind(self.snapshot_step)
        self.stale_evaluations = self.metrics.evaluations

    def restore_weights(self, buffer, step: int) -> None:
        """Continue from weights kept elsewhere on the GPU (the visualizer's timeline): they
        are copied into the arena and the schedule goes back to `step`, with fresh optimizer
        moments; the history (steps_taken, the curves) goes on from where it is."""
        dev = get_device()
        enc = dev.device.create_command_encoder()
        self.model.restore_from(enc, buffer)
        dev.submit(enc)
        self.snapshot_step = None
        self._rewind(min(max(0, int(step)), self.total_steps))

    def _rewind(self, step: int) -> None:
        self.step = step
        self.optimizer.reset_state(self.step)
        self.metrics.write_state(step=self.step, step_snap=self.step, flags=0, loss_ema=0, over=0)
        self.weights_version += 1

    # -- a new start ----------------------------------------------------------------------------------
    def restart(self, reinitialise: bool, seed: int | None = None) -> None:
        """A new run over the same buffers: step 0, curves and evaluations cleared, fresh
        optimizer moments; new weights (`reinitialise`, He init from `seed`) or the
        current ones (after loading a checkpoint, say)."""
        if reinitialise:
            self.model.init(self.recipe.init, self.recipe.seed if seed is None else seed)
        self.optimizer.reset_state()
        self.metrics.clear()
        self.stale_evaluations = 0
        self.step = 0
        self.snapshot_step = None
        self._rng = np.random.default_rng(self.recipe.seed)
        self._shuffled_epoch = None
        self._order_ahead = None
        self.weights_version += 1

    def weights_loaded(self) -> None:
        """The weights were replaced from outside (a checkpoint): nothing to restore to yet."""
        self.snapshot_step = None
        self.weights_version += 1


class _SnapshotTaker:
    """The epoch-start copy of the weights (and the step it was taken at), one dispatch
    that copies only while no divergence flag is up and the loss is not exploding."""

    def __init__(self, model, metrics):
        dev = get_device()
        n = model.arena.size
        self.floats = n
        self.buffer = dev.buffer((n + 1) * 4, "params.snapshot")
        pipe = dev.pipeline("snapshot.wgsl", "take")
        group = dev.bind_group(pipe, [dev.uniform(OPTIM, n=n), metrics.state, model.arena.buffer, self.buffer])
        self.program = Program([Dispatch(pipe, group, (*ops.grid_1d(n), 1), "snapshot:take")], label="snapshot")

    def read_step(self) -> int:
        raw = get_device().read(self.buffer, self.floats * 4, 4, "snapshot.step")
        return int(np.frombuffer(raw, np.uint32)[0])
