"""The visualizer's drive of a training `Run` (compute/run.py): when to step, not how.

Per frame it encodes into the frame's command encoder either a piece of an
evaluation in progress (a CPU adapter spreads one evaluation over frames) or a
budget of training steps from the pace the user chose. Everything about training
itself (the step program, schedule, snapshots, divergence restore, recipe
changes, restarts) is a method of the run; this class keeps the run's status as
the panel shows it, and the settings that are about watching, not training.

Runs side by side: up to three other runs train in the same frames (`comparison`, a
compute/comparison.py Comparison over the same dataset buffers), each paused, stepped
or removed on its own and advancing while the main run's status is running (or
finished). `show` swaps one of them with the main run: the main run is the one every
view shows.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass

from ..compute.comparison import MAX_RUNS, Comparison, Entry
from ..compute.device import get_device
from ..compute.evaluation import piece_rows
from ..compute.recipe import Recipe
from ..compute.run import Run
from .pacing import MAX_INDEX, SPEEDS, StepPacer, frame_budget, steps_for_frame

BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
ESTIMATE_EVERY = 250            # steps between running test-accuracy estimates (512 test images each)
# Multiply-adds of forward pass in one evaluation piece: the window spreads an evaluation over
# frames a budget of pieces at a time (the shipped CNN's 10,000 test images in pieces of 4,096 took
# 120 ms of one frame on the H100; 8G is ~450 of its images); an MLP's pieces stay 4,096 images
EVAL_PIECE_MACS = 8 << 30
# Of the frame budget a piece that overran it is re-cut to fill, by its measured cost: a margin for
# a cost not quite proportional to the rows
EVAL_PIECE_SHARE = 0.8
EVAL_RECUT_OVER = 1.25          # a piece re-cut only when it costs this many frame budgets: noise alone never does
DEFAULT_GPU_SPEED = 5           # pacing.SPEEDS[5]: 16 steps a frame, about 1000 steps/s at 60 fps
STATUSES = ("idle", "running", "paused", "finished", "diverged")


@dataclass
class WatchSettings:
    """How the window drives training (not part of the recipe)."""
    speed: int = MAX_INDEX           # index into pacing.SPEEDS
    eval_each_epoch: bool = True


class StepObserver:
    """Something that wants the live weights at every multiple of `every` run steps (the
    timeline's snapshots, the histogram ribbons): the session splits a frame's steps there
    and calls `take(encoder, run)` in between. A run that starts over (its step count went
    back) clears what was taken. `kind` names its work for the pacer, which learns its cost."""

    every: int = 1
    kind: str = "observer"
    last_step: int | None = None

    def notify(self, encoder, run) -> None:
        steps = run.metrics.steps
        if self.last_step is not None and steps < self.last_step:
            self.clear()
        if steps % self.every or steps == self.last_step:
            return
        self.last_step = steps
        self.take(encoder, run)

    def take(self, encoder, run) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        self.last_step = None


class TrainingSession:
    def __init__(self, model, metrics, recipe: Recipe | None = None, watch: WatchSettings | None = None,
                 frame_budget_s: float | None = None, fps_cap: float | None = None):
        dev = get_device()
        self.model = model
        self.metrics = metrics
        self.recipe = (recipe or Recipe()).validate()
        if watch is None:
            watch = WatchSettings()
            # A GPU runs the whole default recipe in seconds at full speed; start at a pace
            # where the mosaic and the curves can be watched (the speed slider goes to max).
            if not dev.is_cpu:
                watch.speed = DEFAULT_GPU_SPEED
        self.watch = watch
        self.data = None
        self.run: Run | None = None
        self.status = "idle"
        self.message = ""                 # last notable event, shown in the panel
        self.pacer = StepPacer(frame_budget_s or frame_budget(dev.is_cpu, fps_cap))
        self.frame = 0
        self.pending_steps = 0            # single steps requested while not running
        self.weights_changed = False      # since the model was loaded / saved (autosave)
        self._eval_pieces: list = []
        # Multiply-adds of an evaluation piece for a new run: fewer once a piece overran a frame
        self.eval_macs = EVAL_PIECE_MACS
        self.steps_last_frame = 0
        self.steps_asked = 0              # steps this frame asked of the main run
        self.frame_extras: dict[str, int] = {}   # work this frame carried besides steps: kind -> count
        # This frame's extras and those of the frames before it that may be in flight still (their
        # fences hand these dicts to the pacer; app.fence holds two): a re-cut restates their pieces
        self._recent_extras: collections.deque = collections.deque(maxlen=4)
        self._frame_done = 0              # steps of the main run this frame so far
        self._flags_ignored_until = -1    # divergence flags packed at or before this step are stale
        self._extra_version = 0           # weight changes made without a run (before the data is in)
        self.evaluated_version = -1       # weights_version the last finished evaluation saw
        self._eval_version = -1
        self.on_run_changed = None        # callback(run): views bind the run's buffers
        self.observers: list[StepObserver] = []   # want the weights at multiples of their `every` steps
        self.comparison: Comparison | None = None   # the other runs side by side (built with the data)
        self.name, self.slot = "run 1", 0  # the main run's name and slot (its colour) among the runs

    # -- setup ------------------------------------------------------------------------------------------
    def attach_data(self, data, evaluate: bool = True) -> None:
        self.data = data
        self.comparison = Comparison(data, max_runs=MAX_RUNS - 1, encode_light=True,   # drawn as the main run is
                                     eval_macs=EVAL_PIECE_MACS)
        self._new_run()
        if evaluate:
            self.evaluate_now()

    def set_model(self, model, recipe: Recipe | None = None) -> None:
        """A different model object (a checkpoint of another architecture), trained with
        `recipe` from now on (None: the current one)."""
        self.model = model
        if recipe is not None:
            self.recipe = recipe.validate()
        self.status = "idle"
        self._eval_pieces.clear()
        self.metrics.clear()
        if self.data is not None:
            self._new_run()

    def _new_run(self) -> None:
        self.run = Run(self.model, self.data, self.recipe, metrics=self.metrics, encode_light=True,
                       eval_macs=self.eval_macs)
        self._eval_pieces.clear()
        self.pacer.extra_cost.pop("evaluation", None)     # another model's pieces: their cost is learned anew
        if self.on_run_changed is not None:
            self.on_run_changed(self.run)

    @property
    def ready(self) -> bool:
        return self.run is not None

    @property
    def evaluating(self) -> bool:
        return bool(self._eval_pieces)

    @property
    def weights_version(self) -> int:
        return (self.run.weights_version if self.run is not None else 0) + self._extra_version

    def weights_replaced(self) -> None:
        """The weights were overwritten from outside (a checkpoint load, a re-initialisation)."""
        self._extra_version += 1
        if self.run is not None:
            self.run.weights_loaded()

    # -- actions ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """Train: a run from the current weights (loaded, trained or fresh: whatever is shown).
        A paused run resumes instead."""
        if self.run is None:
            self.message = "the dataset is still loading"
            return
        if self.status in ("paused", "diverged") and not self.run.finished:
            self.status = "running"
            return
        if self.status == "running":
            return
        self.run.restart(reinitialise=False)
        self.status = "running"
        self.weights_changed = True
        self.message = "training from the current weights"

    def pause(self) -> None:
        if self.status == "running":
            self.status = "paused"

    def resume(self) -> None:
        self.start()

    def toggle(self) -> None:
        if self.status == "running":
            self.pause()
        else:
            self.start()

    def step_once(self) -> None:
        """One step, from the current weights; a finished or new run starts over at step 0."""
        if self.run is None:
            return
        if self.status in ("idle", "finished") or self.run.finished:
            self.run.restart(reinitialise=False)
        self.status = "paused"
        self.pending_steps += 1
        self.weights_changed = True

    def reset(self) -> None:
        """Stop and re-initialise the weights (He init, a new seed each time; the curves start over)."""
        self.status = "idle"
        self.message = "weights re-initialised"
        self.weights_changed = True
        self._eval_pieces.clear()
        if self.run is not None:
            self.run.restart(reinitialise=True, seed=self.recipe.seed + self.run.weights_version + 1)
        else:
            self.model.init(self.recipe.init, self.recipe.seed + 1)
            self._extra_version += 1

    def evaluate_now(self) -> None:
        """Start an evaluation of the current weights (none while one is under way)."""
        if self.run is None or self._eval_pieces:
            return
        self._eval_pieces = self.run.evaluation_pieces()
        self._eval_version = self.weights_version

    def restore_last_good(self) -> None:
        """Weights from the last epoch start; clears the divergence flag (paused). An evaluation
        under way, or one done between the flag rising and its being read, scored the weights
        thrown away: the one under way is dropped and a fresh one of the restored weights starts
        (`test_accuracy` shows none until it is in)."""
        if self.run is not None and self.run.snapshot_step is not None:
            self.run.restore_snapshot()
            self._flags_ignored_until = self.metrics.steps
            self.status = "paused"
            self.message = "restored the weights from the start of the epoch"
            self._eval_pieces.clear()
            self.evaluate_now()

    def set_recipe(self, new: Recipe) -> None:
        """Apply edited settings live (the run decides what that takes)."""
        if new == self.recipe:
            return
        new.validate()
        old = self.recipe
        if self.run is not None:
            self.message = self.run.set_recipe(new)   # raises, changing nothing, if the GPU cannot hold it
            self.recipe = new
            if self.status == "finished" and not self.run.finished:
                self.status = "paused"
        else:
            self.recipe = new
            if new.seed != old.seed:
                self.message = ""

    def on_scalars(self, values: dict) -> None:
        """Scalars read back a few times a second: notice divergence (only from values packed
        after the last restore: a read in flight may still carry the old flag)."""
        fresh = values.get("at_step", 0) > self._flags_ignored_until
        if fresh and self.run is not None and self.run.diverged(values.get("flags", 0)) and self.status == "running":
            # The GPU stopped the updates when the flag went up; put back the weights
            # from the start of the epoch and say what to change.
            self.restore_last_good()
            self.status = "diverged"
            self.message = (f"training diverged (the loss became NaN, infinite or exploded); the weights from the "
                            f"start of the epoch were restored. Lower the learning rate (now {self.recipe.lr:g}, "
                            f"try {self.recipe.lr / 10:g}) and resume.")

    def after_submit(self) -> None:
        """While the GPU runs the frame just submitted: each run's next epoch order drawn ahead
        (Run.draw_order_ahead), so the frame an epoch starts in does not draw it."""
        for run in [self.run, *(e.run for e in self.others)]:
            if run is not None:
                run.draw_order_ahead()

    # -- runs side by side -------------------------------------------------------------------------------
    @property
    def others(self) -> list[Entry]:
        return list(self.comparison) if self.comparison is not None else []

    def add_other(self, model, recipe: Recipe, name: str) -> Entry:
        """Another run over the same data, in the lowest free slot; raises ValueError if it cannot."""
        if self.comparison is None:
            raise ValueError("the dataset is still loading")
        used = {self.slot, *(e.slot for e in self.others)}
        entry = self.comparison.add(model, recipe, name)
        entry.slot = min(set(range(MAX_RUNS)) - used)
        return entry

    def other(self, slot: int) -> Entry | None:
        return next((e for e in self.others if e.slot == slot), None)

    def show(self, entry: Entry) -> None:
        """Swap `entry` with the main run: its run becomes the one the views show and the
        Training panel drives; the former main run goes on in the entry."""
        entry.run, self.run = self.run, entry.run
        entry.name, self.name = self.name, entry.name
        entry.slot, self.slot = self.slot, entry.slot
        entry.evaluating, self._eval_pieces = self._eval_pieces, entry.evaluating
        self.pacer.extra_cost.pop("evaluation", None)     # another run's pieces: their cost is learned anew
        entry.paused = False
        self.model, self.metrics, self.recipe = self.run.model, self.run.metrics, self.run.recipe
        if self.run.finished and self.status == "running":
            self.status = "finished"
        elif not self.run.finished and self.status == "finished":
            self.status = "running"       # it was training beside the finished main run: it goes on
        self._extra_version += 1

    def _encode_others(self, encoder) -> None:
        """The other runs' share of the frame: as many steps each as the main run's pace gives."""
        if not self.others:
            return
        n = steps_for_frame(self.watch.speed, self.frame, self.pacer) if self.status in ("running", "finished") else 0
        self.comparison.eval_macs = self.eval_macs      # their next evaluations in pieces of the size learned here
        for e in self.others:                           # and the rest of those under way
            if e.evaluating:
                e.evaluating = e.run.fit_evaluation(self.eval_macs, e.evaluating[0].start) or e.evaluating
        left = {e: len(e.evaluating) for e in self.others if e.evaluating}
        pieces = None
        if left:
            # An evaluating run trains none of its steps this frame: its pieces take a run's share of
            # the frame (the pacer knows a piece's cost), one at least. All at once, a CNN's 10,000
            # images were 120 ms of one frame on the H100 and seconds on lavapipe.
            share = self.pacer.budget_s / (1 + len(self.others))
            each = self.pacer.extra_cost.get("evaluation", 0.0) or self._piece_guess()
            pieces = max(1, int(share / each)) if each > 0 else 1
        self.comparison.advance(encoder, n, evaluate_epochs=self.watch.eval_each_epoch, pieces=pieces)
        encoded = sum(k - len(e.evaluating) for e, k in left.items())
        if encoded:
            self._extra("evaluation", encoded)        # the pacer learns a piece's cost from these too

    # -- per frame -------------------------------------------------------------------------------------
    def encode(self, encoder, split=None):
        """Encode this frame's training work (the main run's, then the other runs'); returns
        (the number of steps of the main run encoded, the encoder the frame goes on with).
        The steps go on past an epoch's end (the next epoch's order goes into the encoder,
        GpuDataset.shuffle); past the few orders an encoder holds, `split()`, when given,
        submits the encoder so far and returns a new one to go on in, and without it the
        frame's steps stop there."""
        done, encoder = self._encode_main(encoder, split)
        self._encode_others(encoder)
        return done, encoder

    def _encode_main(self, encoder, split=None) -> tuple[int, object]:
        done = self._encode_first(encoder)
        run = self.run
        while (0 < done < self.steps_asked and self.status == "running" and not self._eval_pieces
               and run.step % run.steps_per_epoch == 0 and not run.finished):
            k = self._advance(run, encoder, self.steps_asked - done)    # an epoch ended: on into the next
            if k == 0 and split:        # the encoder holds as many epoch orders as it can: submit it
                encoder = split()
                k = self._advance(run, encoder, self.steps_asked - done)
            self._after_steps(encoder, k)
            done += k
            if k == 0:
                break
        self.steps_last_frame = done
        return done, encoder

    @property
    def frame_regular(self) -> bool:
        """Whether the last frame ran every step it asked of the main run: the pacer learns a step's
        cost only from those (one cut short by the run's end or a pause would look cheap)."""
        return 0 < self.steps_last_frame == self.steps_asked

    def _encode_first(self, encoder) -> int:
        self.frame += 1
        self.steps_asked = 0
        self.frame_extras, self._frame_done = {}, 0
        self._recent_extras.append(self.frame_extras)
        run = self.run
        if run is None:
            return 0
        if self._eval_pieces:
            self._encode_eval_pieces(encoder)
            return 0
        n = 0
        if self.status == "running":
            n = steps_for_frame(self.watch.speed, self.frame, self.pacer)
            if SPEEDS[self.watch.speed][0] == 0:      # "max": the extras these steps bring displace some
                n = self.pacer.fit_extras(n, self._extras_ahead, {"evaluation": self._piece_guess()})
        elif self.pending_steps:
            n, self.pending_steps = 1, self.pending_steps - 1
        if n <= 0:
            return 0
        if run.finished:
            self.status = "finished"
            return 0
        self.steps_asked = n
        done = self._advance(run, encoder, n)
        self._after_steps(encoder, done)
        return done

    def _extras_ahead(self, n: int) -> dict[str, int]:
        """The extra work (kind -> count) that n more steps of the main run bring within the frame:
        estimates, observers' takes, and at an epoch's end the evaluation's pieces."""
        s, run = self.metrics.steps, self.run
        out = {"estimate": (s + n) // ESTIMATE_EVERY - s // ESTIMATE_EVERY}
        for o in self.observers:
            out[o.kind] = out.get(o.kind, 0) + (s + n) // o.every - s // o.every
        if self.watch.eval_each_epoch:
            ends = (run.step + n) // run.steps_per_epoch - run.step // run.steps_per_epoch
            out["evaluation"] = ends * len(run.evaluation.pieces)
        return out

    def _piece_guess(self) -> float:
        """GPU seconds an evaluation piece may take before one has been timed: a forward pass of its
        rows, from a training step's cost (forward and backward of a batch: about 3 forwards), x 1.5."""
        run = self.run
        return self.pacer.gpu_cost * run.evaluation.chunk / max(1, run.recipe.batch_size) / 2

    def _extra(self, kind: str, count: int = 1) -> None:
        self.frame_extras[kind] = self.frame_extras.get(kind, 0) + count

    def _after_steps(self, encoder, done: int) -> None:
        """What follows a frame's steps: the running estimate, and at an epoch's end the evaluation."""
        run = self.run
        self.weights_changed = True
        self._frame_done += done
        steps = self.metrics.steps
        if done and steps // ESTIMATE_EVERY > (steps - done) // ESTIMATE_EVERY:
            # A running estimate on a fixed test subset: one forward pass of 512 images
            # every few hundred steps (well under 1% of the training work), read with the
            # 64-byte readout; the full evaluation stays once an epoch.
            run.encode_estimate(encoder)
            self._extra("estimate")
        if done and run.step % run.steps_per_epoch == 0:  # an epoch ended
            if run.finished:
                self.status = "finished"
                self.message = f"finished {run.recipe.epochs} epochs"
            if self.watch.eval_each_epoch or run.finished:
                self.evaluate_now()
                self._encode_eval_pieces(encoder)   # as many pieces as the frame has room for

    def _advance(self, run, encoder, n: int) -> int:
        """run.advance, split at the run steps where an observer wants the weights (a
        multiple of its `every`), so it sees exactly the weights after those steps. One
        epoch at most: the next epoch's permutation is written between submissions."""
        done = 0
        while True:
            self._notify_observers(encoder, run)
            if done >= n:
                return done
            steps = self.metrics.steps
            chunk = min([n - done] + [o.every - steps % o.every for o in self.observers])
            k = run.advance(encoder, chunk)
            done += k
            if k < chunk or run.step % run.steps_per_epoch == 0:
                self._notify_observers(encoder, run)
                return done

    def _notify_observers(self, encoder, run) -> None:
        for o in self.observers:
            taken = o.last_step
            o.notify(encoder, run)
            if o.last_step != taken:
                self._extra(o.kind)

    def weights_restored(self, message: str) -> None:
        """The live weights were set back to a copy kept on the GPU (the timeline)."""
        self.weights_changed = True
        self._flags_ignored_until = self.metrics.steps
        if self.status in ("diverged", "finished"):
            self.status = "paused"
        self.message = message

    def _encode_eval_pieces(self, encoder) -> None:
        """As many pieces of the evaluation under way as the rest of the frame's budget holds (the
        pacer knows a piece's cost once one ran; at least one in a frame without steps): an MLP's
        whole evaluation in the epoch's last frame on a GPU, a large CNN's over several frames,
        one piece a frame on a CPU adapter. When even one piece overruns a frame, the rest of the
        evaluation and the later ones go on at once in pieces that fit it (_recut_eval_pieces)."""
        self._recut_eval_pieces()
        pieces = self.pacer.extras_that_fit("evaluation", self._frame_done, len(self._eval_pieces), self._piece_guess())
        for _ in range(pieces):
            self._eval_pieces.pop(0).encode(encoder)
        self._extra("evaluation", pieces)
        if not self._eval_pieces:
            self.evaluated_version = self._eval_version

    def _recut_eval_pieces(self) -> None:
        """A piece that cost more than EVAL_RECUT_OVER frame budgets: the rest of the evaluation under
        way and the later ones at once in pieces of the rows EVAL_PIECE_SHARE of it holds at that
        cost (evaluation.piece_rows: a power of 2, at least EVAL_MIN_ROWS). Halving the next
        evaluation's pieces left the shipped CNN's first one on lavapipe 23 frames of 8.7 s, and
        took many epochs to reach pieces that fit a frame."""
        run, cost = self.run, self.pacer.extra_cost.get("evaluation", 0.0)
        if cost <= self.pacer.budget_s * EVAL_RECUT_OVER:
            return
        chunk = run.evaluation.chunk
        rows = piece_rows(chunk * self.pacer.budget_s / cost * EVAL_PIECE_SHARE)
        if rows >= chunk:
            return
        self._eval_pieces = run.recut_evaluation(rows, self._eval_pieces[0].start)
        self.eval_macs = rows * run.model.arch.macs()
        self.pacer.extra_cost.pop("evaluation")     # to be learned again at the new size
        # The frames in flight carried pieces of the old size: they teach the cost of as many rows
        # of the new size (in proportion), not an old piece's cost as a new one's
        for extras in self._recent_extras:
            if "evaluation" in extras:
                extras["evaluation"] *= chunk / rows

    def test_accuracy(self, values: dict) -> float | None:
        """The main run's last test accuracy as the readout `values` carry it, or None: no
        evaluation yet, a readout packed before the run's evaluations were cleared, or an
        evaluation a divergence restore made stale (it may have scored the weights thrown
        away) with the fresh one not in the readout yet. Every panel shows this one."""
        if self.run is None:
            return None
        packed = values.get("evaluations", 0)
        if not self.run.stale_evaluations < packed <= self.run.evaluations:
            return None
        return values.get("test_acc")

    @property
    def eval_progress(self) -> float:
        """The share of the test rows scored (the pieces left may be of another size than those done)."""
        if not self._eval_pieces:
            return 1.0
        return self._eval_pieces[0].start / self.run.data.test.n
