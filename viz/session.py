"""The training session behind the Training panel: one `Trainer` at a time, driven
frame by frame, with live settings.

Per frame it encodes into the frame's command encoder: the pieces of an evaluation
in progress, or a budget of training steps (never across an epoch boundary: the
next epoch's shuffle is a queue write that must land between submissions), the
GPU-to-GPU copies of the new metrics into the run history, and a snapshot of the
weights at each epoch start (restored if training diverges).

Settings that the step program reads from GPU buffers (learning rate, schedule,
optimizer, momentum, weight decay) change with one queue write. Settings baked
into the traced step (batch size, shift augmentation) rebuild the Trainer and
continue from the current weights at the same point of the epoch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..compute.device import get_device
from ..compute.optim import OptimConfig
from ..compute.recipes import RECIPES
from ..compute.training import FLAG_NONFINITE, TrainConfig, Trainer

from .pacing import MAX_INDEX, StepPacer, steps_for_frame

BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_GPU_SPEED = 5           # pacing.SPEEDS[5]: 16 steps a frame, about 1000 steps/s at 60 fps


_DEFAULT = RECIPES["default"]


@dataclass
class TrainSettings:
    """What the Training panel edits; starts from the default recipe."""
    epochs: int = _DEFAULT.epochs
    batch_size: int = _DEFAULT.batch_size
    optimizer: str = _DEFAULT.optimizer
    lr: float = _DEFAULT.lr
    min_lr: float = _DEFAULT.min_lr
    schedule: str = _DEFAULT.schedule
    momentum: float = _DEFAULT.momentum
    nesterov: bool = _DEFAULT.nesterov
    weight_decay: float = _DEFAULT.weight_decay
    gamma: float = 0.5
    shift: int = _DEFAULT.shift
    seed: int = 0
    fresh: bool = True               # Train re-initialises the weights (else continues from them)
    speed: int = MAX_INDEX           # index into pacing.SPEEDS
    eval_each_epoch: bool = True

    def optim(self) -> OptimConfig:
        return OptimConfig(optimizer=self.optimizer, lr=self.lr, min_lr=self.min_lr, schedule=self.schedule,
                           momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay,
                           gamma=self.gamma)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optim=self.optim(), shift=self.shift,
                           seed=self.seed)


class TrainingSession:
    """status: idle | running | paused | finished | diverged"""

    def __init__(self, model, history, settings: TrainSettings | None = None, frame_budget_s: float | None = None):
        dev = get_device()
        self.model = model
        self.history = history
        if settings is None:
            settings = TrainSettings()
            # A GPU runs the whole default recipe in seconds at full speed; start at a pace
            # where the mosaic and the curves can be watched (the speed slider goes to max).
            # A CPU adapter is slow enough at 'max', which adapts to the frame budget.
            if not dev.is_cpu:
                settings.speed = DEFAULT_GPU_SPEED
        self.settings = settings
        self.data = None
        self.trainer: Trainer | None = None
        self.status = "idle"
        self.message = ""                 # last notable event, shown in the panel
        self.pacer = StepPacer(frame_budget_s or (1 / 12 if dev.is_cpu else 1 / 90))
        self.frame = 0
        self.pending_steps = 0            # single steps requested while not running
        self.weights_changed = False      # since the model was loaded / saved (autosave)
        self._eval_pieces: list[list] = []
        self._eval_trainer_count = 0      # evaluations the current trainer has done
        self._eval_total = 1
        self._runs = 0
        self.steps_last_frame = 0
        self.evaluating = False
        self.weights_revision = 0         # bumped whenever the weights change (views redraw)
        self._flags_ignored_until = -1    # divergence flags packed at or before this step are stale

    # -- setup ------------------------------------------------------------------------------------------
    def attach_data(self, data, evaluate: bool = True) -> None:
        self.data = data
        self._build_trainer(keep_position=False)
        if evaluate:
            self.evaluate_now()

    def set_model(self, model) -> None:
        """A different model object (a checkpoint of another architecture)."""
        self.model = model
        self.trainer = None
        self.status = "idle"
        self._eval_pieces.clear()
        if self.data is not None:
            self._build_trainer(keep_position=False)

    def _build_trainer(self, keep_position: bool) -> None:
        old = self.trainer
        cfg = self.settings.train_config()
        trainer = Trainer(self.model, self.data, cfg)
        if old is not None and keep_position:
            step = min(old.step * old.config.batch_size // cfg.batch_size, trainer.total_steps)
            trainer.step = step
            trainer.metrics.set_step(step)
        self.trainer = trainer
        self._eval_trainer_count = 0
        self._eval_pieces.clear()
        self.evaluating = False

    @property
    def ready(self) -> bool:
        return self.data is not None and self.trainer is not None

    # -- actions ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Train: from fresh weights or the current ones (settings.fresh)."""
        if self.data is None:
            self.message = "the dataset is still loading"
            return
        if self.settings.fresh:
            self._runs += 1
            self.model.init("he_uniform", self.settings.seed + self._runs)
            self.history.clear()
            self.message = "training from freshly initialised weights"
        else:
            self.message = "training from the current weights"
        self._build_trainer(keep_position=False)
        self.status = "running"
        self.weights_changed = True
        self.weights_revision += 1

    def pause(self) -> None:
        if self.status == "running":
            self.status = "paused"

    def resume(self) -> None:
        if self.status in ("paused", "diverged") and self.trainer is not None and not self.trainer.finished:
            self.status = "running"
        elif self.status in ("idle", "finished"):
            self.start()

    def toggle(self) -> None:
        if self.status == "running":
            self.pause()
        else:
            self.resume()

    def step_once(self) -> None:
        if self.data is None:
            return
        if self.trainer is None or self.trainer.finished:
            self._build_trainer(keep_position=False)
        if self.status == "running":
            self.status = "paused"
        if self.status in ("idle", "finished"):
            self.status = "paused"
        self.pending_steps += 1

    def reset(self) -> None:
        """Stop and re-initialise the weights (the curves start over)."""
        self._runs += 1
        self.model.init("he_uniform", self.settings.seed + self._runs)
        self.history.clear()
        self.status = "idle"
        self.message = "weights re-initialised"
        self.weights_changed = True
        self.weights_revision += 1
        if self.data is not None:
            self._build_trainer(keep_position=False)

    def evaluate_now(self) -> None:
        if self.trainer is None:
            return
        self._eval_pieces = _split_eval(_eval_program(self.trainer))
        self._eval_total = len(self._eval_pieces)
        self.evaluating = True

    def restore_last_good(self) -> None:
        """Weights from the last epoch start; clears the divergence flag (paused)."""
        if self.trainer is not None:
            self.trainer.restore_snapshot()
            self._flags_ignored_until = self.history.steps
            self.weights_revision += 1
            self.status = "paused"
            self.message = "restored the weights from the start of the epoch"

    def apply_settings(self, new: TrainSettings) -> None:
        """Apply edited settings live: a queue write, or a trainer rebuild where the step is baked."""
        old = self.settings
        self.settings = new
        if self.trainer is None:
            return
        if (new.batch_size, new.shift, new.seed) != (old.batch_size, old.shift, old.seed):
            self._build_trainer(keep_position=True)
            self.message = f"rebuilt the step for batch size {new.batch_size}, continuing"
            return
        tr = self.trainer
        if new.epochs != old.epochs:
            tr.total_steps = tr.steps_per_epoch * new.epochs
            tr.config = dataclasses.replace(tr.config, epochs=new.epochs)
            if self.status == "finished" and not tr.finished:
                self.status = "paused"
        if new.optim() != old.optim() or new.epochs != old.epochs:
            period = max(1, round(tr.steps_per_epoch * tr.config.step_epochs))
            tr.optimizer.configure(dataclasses.replace(new.optim(), total_steps=tr.total_steps, period=period))
            if new.optimizer != old.optimizer:
                tr.optimizer.reset_state()

    def on_scalars(self, values: dict) -> None:
        """Scalars read back a few times a second: notice divergence (only from values packed
        after the last restore: a read in flight may still carry the old flag)."""
        fresh = values.get("at_step", 0) > self._flags_ignored_until
        if fresh and values.get("flags", 0) & FLAG_NONFINITE and self.status == "running":
            # The GPU stopped the updates when the flag went up; put back the weights
            # from the start of the epoch and say what to change.
            self.restore_last_good()
            self.status = "diverged"
            self.message = (f"training diverged (loss NaN/inf); the weights from the start of the epoch "
                            f"were restored. Lower the learning rate (now {self.settings.lr:g}, try "
                            f"{self.settings.lr / 10:g}) and resume.")

    # -- per frame -------------------------------------------------------------------------------------
    def encode(self, encoder) -> int:
        """Encode this frame's training work; returns the number of steps encoded."""
        self.frame += 1
        self.steps_last_frame = 0
        tr = self.trainer
        if tr is None:
            return 0
        if self._eval_pieces:
            self._encode_eval_piece(encoder)
            return 0
        n = 0
        if self.status == "running":
            n = steps_for_frame(self.settings.speed, self.frame, self.pacer)
        elif self.pending_steps:
            n, self.pending_steps = 1, self.pending_steps - 1
        if n <= 0:
            return 0
        if tr.finished:
            self.status = "finished"
            return 0
        spe = tr.steps_per_epoch
        if tr.step % spe == 0:
            tr.save_snapshot(encoder)
        first = tr.step
        done = tr.encode_steps(encoder, min(n, tr.total_steps - tr.step))
        self.history.record_steps(encoder, tr, first, done)
        self.history.record_state(encoder, tr)
        self.steps_last_frame = done
        self.weights_changed = True
        self.weights_revision += 1
        if tr.step % spe == 0:  # an epoch ended
            if tr.finished:
                self.status = "finished"
                self.message = f"finished {tr.config.epochs} epochs"
            if self.settings.eval_each_epoch or tr.finished:
                self.evaluate_now()
                if not get_device().is_cpu:   # a GPU evaluates in a blink: this frame, not the next
                    self._encode_eval_piece(encoder)
        return done

    def _encode_eval_piece(self, encoder) -> None:
        tr = self.trainer
        # A GPU runs the whole evaluation in a blink; on a CPU adapter one chunk of the
        # test set per frame keeps the window responsive.
        pieces = 1 if get_device().is_cpu else len(self._eval_pieces)
        from ..compute.program import Program
        for _ in range(pieces):
            Program(self._eval_pieces.pop(0)).encode(encoder)
        if not self._eval_pieces:
            self._eval_trainer_count += 1
            self.history.record_eval(encoder, tr, self._eval_trainer_count)
            self.history.record_state(encoder, tr)
            self.evaluating = False

    @property
    def eval_progress(self) -> float:
        if not self.evaluating:
            return 1.0
        return 1.0 - len(self._eval_pieces) / max(1, self._eval_total)


def _eval_program(trainer):
    evaluator = getattr(trainer, "evaluator", None)
    return evaluator.program if evaluator is not None else trainer.eval_program


def _split_eval(program) -> list[list]:
    """The evaluation program cut after each chunk's scoring dispatch, so it can be
    spread over frames (the counters accumulate on the GPU between them)."""
    pieces, cur = [], []
    for d in program.dispatches:
        cur.append(d)
        if d.label == "eval.wgsl:score":
            pieces.append(cur)
            cur = []
    if cur:
        if pieces:
            pieces[-1].extend(cur)
        else:
            pieces.append(cur)
    return pieces
