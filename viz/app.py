"""The visualizer app: wiring. It builds the parts, binds them to the model and its run,
and maps every action to what it does. The frame itself is in frame.py, input in
input.py, panels in panels/, files in files.py; the training is the engine's Run.

The same App runs in a glfw window (`rendercanvas.glfw`) or offscreen
(`rendercanvas.offscreen`) for tests and screenshots (launch.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..compute.device import get_device
from ..compute.metrics import RunMetrics
from ..compute.recipe import Recipe
from . import files
from .actions import Action, ActionQueue
from .canvas import PaintCanvas
from .dataviews import ConfusionView, DatasetView, MistakesView
from .embedding import Embedding, hidden_of
from .frame import FrameClock, draw_frame
from .glyphs import upload_names
from .gui import Gui
from .headless import StopRequest, architecture_for, check_network, run_network_args, say
from .histograms import Histograms
from .inference import Forward
from .input import CanvasInput
from .loader import DatasetLoader, check_window_model
from .pacing import MAX_INDEX, FrameFence, settle_garbage
from .plots import CurvePlots
from .readout import ScalarReadout
from .saliency import Saliency
from .runviews import OtherRunViews
from .session import TrainingSession, WatchSettings
from .state import UIState, ViewState
from .timetravel import Timeline
from .views import CanvasView, ModelViews, ScaleBank

NEEDS_DATA = {Action.TRAIN, Action.TOGGLE, Action.STEP, Action.EVALUATE, Action.LOAD_SAMPLE, Action.ADD_RUN}


@dataclass
class AppConfig:
    checkpoint: Path | None = None        # None: the pretrained model (fresh He init if missing)
    arch: str | None = None               # a fresh network of this architecture (or how to read checkpoint)
    data_dir: Path | None = None          # None: the bundled MNIST
    limit: int | None = None              # train on the first N images
    test_limit: int | None = None         # evaluate on the first N test images (tests)
    train: bool = False                   # start training at once
    paint_demo: bool = False              # paint a built-in digit
    autosave: bool = True
    autosave_dir: Path | None = field(default_factory=files.default_autosave_dir)   # else a temp folder (files.py)
    recipe: Recipe | None = None          # None: the checkpoint's recorded recipe, else the default one
    watch: WatchSettings | None = None
    frame_budget_s: float | None = None   # None: pacing.frame_budget (from the device and fps_cap)
    fps_cap: float | None = None          # the frame rate the canvas is held to (a window: pacing.WINDOW_FPS)
    background_load: bool = True          # load the dataset on a thread (the window opens at once)
    evaluate_on_load: bool = True         # evaluate the loaded model once the dataset is in


class App:
    def __init__(self, canvas, config: AppConfig | None = None):
        self.config = config = config or AppConfig()
        self.dev = get_device()
        self.rc = canvas
        self.context = canvas.get_wgpu_context()     # None once the canvas closed
        fmt = self.context.get_preferred_format(self.dev.adapter)
        self.context.configure(device=self.dev.device, format=fmt)
        canvas.add_event_handler(self._release_surface, "close")
        self.gui = Gui(self.dev.device, canvas, fmt)
        self.ui = UIState(checkpoint_path=str(Path.cwd() / "mnist-model.safetensors"))
        self.actions = ActionQueue()
        self.autosave_dir, self.autosave_note = None, ""   # the folder chosen now, and why not the usual one
        if config.autosave:
            self.autosave_dir, self.autosave_note = files.autosave_folder(config.autosave_dir)
            if self.autosave_note:
                say(("warning: " if self.autosave_dir is None else "") + self.autosave_note, err=True)
        self.autosave_path: Path | None = None        # set when an autosave was written
        self.loader = DatasetLoader(config.data_dir, config.background_load, config.limit, config.test_limit)
        self.classes = self.loader.classes
        model, self.ui.file_message, meta = files.initial_model(config.checkpoint, self.loader.shape, config.arch,
                                                                self.classes.dataset)
        recipe = config.recipe
        if recipe is None:
            recipe, note = self._recorded_recipe(meta, model.arch)
            self.ui.file_message += note
        self._choose_network_of(model)
        self._fresh_seed = 0
        h, w, classes = self.loader.shape
        self.names = upload_names(self.classes.names)     # the class names as GPU bitmaps
        self.metrics = RunMetrics(classes)
        self.canvas = PaintCanvas(image_w=w, image_h=h)
        self.canvas.normalise = self.classes.mnist_like     # MNIST's normalisation for MNIST-like data only
        self.canvas_view = CanvasView(self.canvas)
        self.gui.register(self.canvas_view.texture)
        self.session = TrainingSession(model, self.metrics, recipe, config.watch, config.frame_budget_s,
                                       config.fps_cap)
        self.session.on_run_changed = self._bind_run
        self.plots = CurvePlots(self.metrics)
        self.confusion = ConfusionView(self.metrics, self.names, self.classes.names)
        for t in self.plots.textures + [self.confusion.texture]:
            self.gui.register(t)
        self.mistakes: MistakesView | None = None
        self.dataset_view: DatasetView | None = None
        self.embedding: Embedding | None = None       # built with the run (it needs the test set)
        self.model = None
        self.readout = None
        self.timeline: Timeline | None = None
        self.histograms: Histograms | None = None
        self.other_views: list[OtherRunViews] = []     # runs side by side (panels/runs.py)
        self._bind_model(model)

        self.fence = FrameFence(depth=2)
        self.frame_times: dict = {}     # seconds of the last frame's CPU by phase (viz/frame.py draw_frame)
        self.clock = FrameClock()
        self.frames = 0
        self.busy = ""                  # a long operation under way, shown for a frame before it runs
        self._busy_job = None
        self._demo: list = []
        self.fatal: Exception | None = None   # the GPU device was lost or out of memory: end the loop, report it
        self.ui_error: str | None = None
        self.quit_requested = False
        self.handlers = self._action_handlers()
        self.input = CanvasInput(canvas, self.canvas, self.ui, self.actions, self.to_canvas)
        canvas.request_draw(self._guarded_frame)
        self.stop = StopRequest()       # Ctrl-C, SIGTERM, SIGHUP: noted while the window's loop runs
        loop = canvas._rc_canvas_group.get_loop()     # None offscreen: whoever draws its frames stops them
        if loop is not None:
            loop.call_soon(self._watch_signals, loop, True)
        self.loader.start()
        if config.paint_demo:
            self.paint_demo()
        if config.train:
            self.actions.emit(Action.TRAIN)

    # -- model and run ----------------------------------------------------------------------------------
    @property
    def data_shape(self) -> tuple[int, int, int]:
        return self.loader.shape

    @property
    def data_error(self) -> str | None:
        return self.loader.error

    def _bind_model(self, model, recipe: Recipe | None = None) -> None:
        """(Re)build everything that reads the model's buffers; a new model trains with `recipe`
        (None: the current one). The model is checked against the device's limits and its views
        are built before the old ones go, so a model this GPU cannot show raises here and leaves
        the running one as it was."""
        check_window_model(model.arch, (recipe or self.session.recipe).batch_size)
        scales = ScaleBank()
        # The views read the timeline's display arena: the live weights, or a snapshot's.
        tl = self.timeline
        timeline = Timeline(model, tl.every, tl.cap_mib) if tl else Timeline(model)
        histograms = Histograms(model, self.histograms.every) if self.histograms else Histograms(model)
        forward = Forward(timeline.display, self.canvas.x)
        views = ModelViews(timeline.display, forward, scales, image_shape=self.data_shape[:2],
                           canvas_norm=self.canvas.norm, names=self.names, badge_names=not self.classes.numbered)
        c = self.canvas       # saliency of the model the views show (the chosen step's)
        saliency = Saliency(timeline.display, c.x, c.norm, (c.image_w, c.image_h), (c.width, c.height),
                            self.data_shape[2])
        old = self.model
        if old is not None:
            for t in self.model_views.textures + self.histograms.textures:
                self.gui.unregister(t)
            if self.mistakes is not None:
                self.gui.unregister(self.mistakes.texture)
                self.mistakes = None
            self.gui.unregister(self.saliency.texture)
        self.model, self.scales, self.forward, self.model_views = model, scales, forward, views
        self.saliency = saliency
        self.timeline, self.histograms = timeline, histograms
        self.session.observers = [timeline, histograms]
        for t in self.model_views.textures + histograms.textures + [saliency.texture]:
            self.gui.register(t)
        self.readout = ScalarReadout(self.metrics, self.forward, self.canvas, self.scales,
                                     *self.model_views.readout_slots)
        if old is not None and old is not model and self.session.model is not model:
            self.session.set_model(model, recipe)
        elif self.session.run is not None:
            self._bind_run(self.session.run)
        self._runs_changed()
        settle_garbage()

    def _bind_run(self, run) -> None:
        """A new Run (the data arrived, another architecture): views that read its buffers."""
        self.readout.bind(run.optimizer.hyper)
        if self.mistakes is None:
            self.mistakes = MistakesView(self.metrics, run.data, self.model, self.names, self.classes.names)
            self.gui.register(self.mistakes.texture)
        if self.embedding is not None and self.embedding.model is not self.model:
            for t in (self.embedding.texture, self.embedding.digit):
                self.gui.unregister(t)
            self.embedding = None

    def open_embedding(self):
        """The live embedding of this model over the test set, built when its view is first
        shown (its chunk of forward passes holds as much memory as the evaluation's)."""
        run = self.session.run
        if self.embedding is None and run is not None:
            f = self.forward
            self.embedding = Embedding(self.model, run.data, self.metrics.state,
                                       hidden_of(self.model, f.x, f.trace), self.readout.out)
            for t in (self.embedding.texture, self.embedding.digit):
                self.gui.register(t)
        return self.embedding

    def _maybe_attach_data(self) -> None:
        if self.session.data is not None or self.loader.dataset is None:
            if self.loader.error and not self.ui.file_message.startswith("dataset"):
                self.ui.file_message = f"dataset: {self.loader.error}"
            return
        data = self.loader.gpu_dataset()
        self.canvas.attach_dataset(data, self.metrics)
        self.dataset_view = DatasetView(data, self.names, self.classes.names)
        self.gui.register(self.dataset_view.texture)
        self.session.attach_data(data, evaluate=self.config.evaluate_on_load)
        settle_garbage()

    def wait_for_data(self, timeout: float = 60.0) -> bool:
        self.loader.wait(timeout)
        self._maybe_attach_data()
        return self.session.data is not None

    # -- actions ------------------------------------------------------------------------------------------
    def _action_handlers(self) -> dict:
        s, c, ui = self.session, self.canvas, self.ui
        mv = lambda: self.model_views
        return {
            Action.TRAIN: s.start,
            Action.TOGGLE: s.toggle,
            Action.PAUSE: s.pause,
            Action.STEP: s.step_once,
            Action.REINITIALISE: s.reset,
            Action.EVALUATE: s.evaluate_now,
            Action.RESTORE: s.restore_last_good,
            Action.SET_RECIPE: self._set_recipe,
            Action.SET_SPEED: lambda i: setattr(s.watch, "speed", max(0, min(int(i), MAX_INDEX))),
            Action.SET_EVAL_EACH_EPOCH: lambda on: setattr(s.watch, "eval_each_epoch", bool(on)),
            Action.SAVE: lambda: self.save_checkpoint(Path(ui.checkpoint_path).expanduser()),
            Action.LOAD: lambda: self._later(f"loading {Path(ui.checkpoint_path).name}...",
                                             self.load_checkpoint, Path(ui.checkpoint_path).expanduser()),
            Action.LOAD_PRETRAINED: lambda: self._later("loading the pretrained model...", self.load_checkpoint,
                                                        files.default_model_path()),
            Action.REOPEN_AUTOSAVE: self._reopen_autosave,
            Action.NEW_NETWORK: lambda text: self._later("building the network...", self.new_network, str(text)),
            Action.LOAD_SHIPPED: lambda name: self._later(f"loading the {files.SHIPPED[name].label}...",
                                                          self.load_shipped, name),
            Action.PROBE: self._probe,
            Action.QUIT: self.quit,
            Action.CLEAR: self._clear_canvas,
            Action.BRUSH_SMALLER: lambda: setattr(c, "brush", max(1.5, c.brush - 0.5)),
            Action.BRUSH_LARGER: lambda: setattr(c, "brush", min(12.0, c.brush + 0.5)),
            Action.SET_BRUSH: lambda r: setattr(c, "brush", min(12.0, max(1.5, float(r)))),
            Action.SET_NORMALISE: lambda on: setattr(c, "normalise", bool(on)),
            Action.SET_SHOW_BOX: self._set_show_box,
            Action.LOAD_SAMPLE: lambda split, i: c.load_sample(split, int(i)),
            Action.CYCLE_MOSAIC: lambda: mv().cycle_mosaic(),
            Action.SET_MOSAIC: lambda i: mv().set_mosaic(int(i)),
            Action.SET_ACCURACY_RANGE: self.plots.set_accuracy_range,
            Action.TIMELINE_SELECT: lambda i: self.timeline.select(i),
            Action.TIMELINE_RESTORE: lambda: self.timeline.restore(self.session),
            Action.TIMELINE_SETTINGS: lambda every, cap_mib: self.timeline.configure(every, cap_mib),
            Action.HISTOGRAM_EVERY: lambda every: self.histograms.set_every(every),
            Action.TOGGLE_HELP: lambda: setattr(ui, "show_help", not ui.show_help),
            Action.UI_SCALE: self._set_ui_scale,
            Action.SET_SALIENCY: lambda on: setattr(ui, "show_saliency", bool(on)),
            Action.SET_SALIENCY_CLASS: lambda k: self.saliency.set_target(k),
            Action.PUSH_TOWARD: lambda k: self.saliency.push(int(k)),
            Action.ADD_RUN: self._add_run,
            Action.SHOW_RUN: self._show_run,
            Action.REMOVE_RUN: lambda slot: self._with_run(slot, self.session.comparison.remove),
            Action.PAUSE_RUN: lambda slot: self._with_run(slot, lambda e: (s.comparison.resume if e.paused
                                                                           else s.comparison.pause)(e)),
            Action.STEP_RUN: lambda slot: self._with_run(slot, self.session.comparison.step),
        }

    def run_actions(self) -> None:
        def defer(action) -> bool:
            if action in NEEDS_DATA and self.session.data is None:
                if self.loader.error:
                    self.ui.file_message = f"no dataset ({self.loader.error}): cannot {action.value}"
                    return False
                return True      # retried once the dataset is in
            return False
        self.actions.run(self.handlers, defer=defer if self.session.data is None else None)

    def _later(self, message: str, job, *args) -> None:
        """Show `message` (and disable the panels' file buttons) for one frame, then run the job:
        a load takes seconds on a slow device and must not look like a frozen window."""
        self.busy = message
        self._busy_job = (job, args)
        self._busy_frame = self.frames

    def run_busy_job(self) -> None:
        if self._busy_job is not None and self.frames > self._busy_frame:
            job, args = self._busy_job
            self._busy_job = None
            try:
                job(*args)
            finally:
                self.busy = ""

    _busy_frame = -1

    def _set_recipe(self, recipe: Recipe) -> None:
        try:
            self.session.set_recipe(recipe)
        except ValueError as e:
            self.session.message = str(e)

    # -- runs side by side (panels/runs.py) ----------------------------------------------------------------
    def _add_run(self, text: str | None) -> None:
        """Another run: `text` in the --compare syntax over the main run's recipe and network
        (compute/comparison.py parse_run), or None for a copy of the current settings."""
        from ..compute.comparison import parse_run
        from ..compute.nn import Sequential
        from ..compute.recipe import RECIPES
        s = self.session
        try:
            spec = parse_run(text or "", s.recipe, RECIPES)
            arch = self._run_network(spec)
            check_window_model(arch, spec.recipe.batch_size)
            model = Sequential(arch, seed=spec.recipe.seed, init=spec.recipe.init)
            entry = s.add_other(model, spec.recipe, text.strip() if text and text.strip() else "current settings")
            s.message = f"added {entry.name}"
        except Exception as e:  # noqa: BLE001 - reported in the panel
            s.message = f"cannot add the run: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            return
        self._runs_changed()

    def _run_network(self, spec):
        """The network a run's text gives (arch=, hidden=, or that of the recipe it names: 'cnn'),
        read and checked as `train --compare` does, so an error names the key as the user wrote
        it (`hidden=65535: ...`); else the main run's network."""
        import argparse
        from ..compute.budget import Limits
        from ..compute.recipe import RECIPE_ARCH
        if spec.arch is None and spec.hidden is None and spec.named not in RECIPE_ARCH:
            return self.model.arch
        ds = self.loader.dataset
        args = run_network_args(argparse.Namespace(arch=None, hidden=None, dropout=None), spec)
        arch = architecture_for(args, ds, spec.keys)
        check_network(args, arch, ds, Limits.current(), spec.keys)
        return arch

    def _with_run(self, slot: int, do) -> None:
        entry = self.session.other(int(slot))
        if entry is not None:
            do(entry)
            self._runs_changed()

    def _show_run(self, slot: int) -> None:
        """The run in `slot` becomes the main one: every view, the readout and the Training panel follow it."""
        entry = self.session.other(int(slot))
        if entry is None:
            return
        self.fence.drain()
        self.session.show(entry)
        self.metrics = self.session.metrics
        self.gui.unregister(self.confusion.texture)
        self.confusion = ConfusionView(self.metrics, self.names, self.classes.names)
        self.gui.register(self.confusion.texture)
        self.canvas.attach_dataset(self.session.data, self.metrics)
        self._bind_model(self.session.model)

    def _runs_changed(self) -> None:
        """Rebind what draws the other runs: their forward passes and mosaics, the readout, the plots."""
        for v in self.other_views:
            for t in v.textures:
                self.gui.unregister(t)
        self.other_views = [OtherRunViews(e, self.canvas, self.data_shape[:2]) for e in self.session.others]
        for v in self.other_views:
            for t in v.textures:
                self.gui.register(t)
        self.readout.bind_runs([(v.forward.probs, v.entry.metrics) for v in self.other_views])
        self.plots.bind_runs(self.metrics, [(e.metrics, e.slot) for e in self.session.others], self.session.slot)

    def other_run_dispatches(self) -> list:
        c = self.canvas
        return [d for v in self.other_views for d in v.dispatches(c.revision, c.busy)]

    def _set_show_box(self, show: bool) -> None:
        self.ui.show_box = bool(show)
        self.canvas_view.set_show_box(bool(show))

    def _set_ui_scale(self, factor: float) -> None:
        self.ui.ui_scale = min(2.0, max(0.75, float(factor)))
        self.gui.set_scale(self.ui.ui_scale)

    def _probe(self, block: int | None, what: str = "maps", element: int = 0) -> None:
        if self.model_views.conv is not None:
            self.model_views.conv.probe_at(block, what, element)

    def _clear_canvas(self) -> None:
        self.canvas.clear()
        self.ui.dataset_selected = None

    def _release_surface(self, _event=None) -> None:
        """On the canvas's close event (sent before the window is destroyed): drop the one
        reference to its wgpu context, which releases the window's surface now. Left to the
        garbage collector at interpreter exit, the surface was released after rendercanvas had
        terminated glfw and closed the X display; its swapchain teardown then wrote to the
        freed connection, and a clean close ended in 'Segmentation fault' (exit -11)."""
        self.context = None

    def quit(self) -> None:
        self.quit_requested = True
        self.rc.close()

    def _watch_signals(self, loop, first: bool = False) -> None:
        """A signal ends the window's loop as closing the window does (shutdown autosaves, then exits
        128 + its number, as `mnist-viz train` does). The handlers only note it; this check, ten
        times a second in the loop (between frames, a minimised window's too), closes the window.
        They are set from inside the loop: rendercanvas sets its own SIGINT handler as the loop
        starts, which ended the loop without saying it was a signal."""
        if first:
            self.stop.__enter__()
        if self.stop.signum is not None:
            self.quit()
        elif not self.rc.get_closed():
            loop.call_later(0.1, self._watch_signals, loop)

    # -- files ---------------------------------------------------------------------------------------------
    def save_checkpoint(self, path: Path) -> None:
        """User action (not the frame loop): reads the weights back once, atomically writes."""
        from ..compute.checkpoint import misleading_name
        from ..compute.model_io import save_model
        try:
            self.fence.drain()
            save_model(path, self.model, self._metadata("mnist-viz"))
            self.session.weights_changed = False
            note = misleading_name(path)        # as `train --save` warns of it
            self.ui.file_message = f"saved {path}" + (f" (warning: {note})" if note else "")
        except Exception as e:  # noqa: BLE001 - reported in the panel
            self.ui.file_message = f"save failed: {e}"

    def _metadata(self, saved_by: str) -> dict:
        """The checkpoint's record: its recipe, its steps, and a test accuracy only when the
        last evaluation was of these very weights."""
        meta = {"saved_by": saved_by, "steps": self.metrics.steps, **self.session.recipe.to_metadata()}
        acc = self.readout.values.get("test_acc") if self.readout is not None else None
        if acc and self.session.evaluated_version == self.session.weights_version:
            meta["test_accuracy"] = f"{acc:.4f}"
            if self.session.data is not None:        # what it was measured on (--test-limit: a subset)
                meta["test_images"] = str(self.session.data.test.n)
        return meta

    def load_checkpoint(self, path: Path) -> None:
        """Load a checkpoint: validated before anything changes; training then continues from it,
        with the recipe it records (the Training panel's settings follow the model)."""
        from ..compute.model_io import load_into, load_model, read_checkpoint
        try:
            _, meta, spec, _ = read_checkpoint(path, image_shape=self.data_shape[:2])
            problem = spec.misfit(*self.data_shape)
            if problem:
                raise ValueError(f"{path.name}: {problem}")
            data = self.session.data
            recipe, note = self._recorded_recipe(meta, spec, data.train.n if data is not None else None)
            before = self.session.recipe
            self.fence.drain()
            if spec.layers == self.model.arch.layers:
                if recipe is not None:
                    self.session.set_recipe(recipe)
                load_into(self.model, path)
                self.session.weights_replaced()
            else:
                model, _ = load_model(path, image_shape=self.data_shape[:2])
                self._bind_model(model, recipe)
            self.session.status = "idle"
            self.session.message = "" if recipe in (None, before) else \
                f"settings: the recipe it was trained with ({recipe.describe()})"
            if self.session.run is not None:
                self.session.run.restart(reinitialise=False)
            else:
                self.metrics.clear()
            self.session.weights_changed = False
            self.ui.file_message = f"loaded {path.name} ({spec.short}){files.describe_accuracy(meta)}{note}"
            self.session.evaluate_now()
        except Exception as e:  # noqa: BLE001 - reported in the panel
            self.ui.file_message = f"load failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"

    @staticmethod
    def _recorded_recipe(meta: dict, arch, train_samples: int | None = None) -> tuple[Recipe | None, str]:
        """(the recipe a checkpoint records, a note): what its model was trained with, for the
        window to go on training it with; None where the file records none (a PyTorch file: the
        settings stay). One the window cannot use (a bad value, a batch this GPU cannot hold,
        more steps than the step counter holds on `train_samples` images) is None too, and the
        note says why."""
        try:
            recipe = Recipe.from_metadata(meta)
            if recipe is not None:
                check_window_model(arch, recipe.batch_size)
                if train_samples is not None:
                    recipe.steps(train_samples)
        except ValueError as e:          # BudgetError is one
            return None, f"; its recorded recipe was not used ({str(e).splitlines()[0]})"
        return recipe, ""

    def _reopen_autosave(self) -> None:
        found = files.autosaves(self.autosave_dir) if self.autosave_dir else []
        if not found:
            self.ui.file_message = "no autosave yet"
            return
        self._later(f"loading {found[0].name}...", self.load_checkpoint, found[0])

    # -- the network chooser ---------------------------------------------------------------------------------
    def _choose_network_of(self, model) -> None:
        """Point the Net tab's chooser at `model`: its shipped name if it is one, else its text."""
        text = model.arch.text
        self.ui.network_choice = next((k for k, s in files.SHIPPED.items() if s.architecture == text), "custom")
        self.ui.arch_text = text

    def new_network(self, text: str) -> None:
        """A fresh network of this architecture (He init, a new seed each time). A string that does
        not parse, or a network that does not fit the data or this GPU, changes nothing: the
        error is the Net tab's message."""
        from ..compute.arch import parse
        from ..compute.nn import Sequential
        h, w, classes = self.data_shape
        try:
            arch = parse(text, (h, w))
            problem = arch.misfit(h, w, classes)
            if problem:
                raise ValueError(problem)
            self._fresh_seed += 1
            self.fence.drain()
            recipe = self.session.recipe
            model = Sequential(arch, seed=recipe.seed + self._fresh_seed, init=recipe.init)
            self._bind_model(model)
        except Exception as e:  # noqa: BLE001 - reported in the panel; the running model stays
            line = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.ui.network_message = f"error: {line}"
            return
        self.session.message = ""
        self._choose_network_of(model)
        self.ui.network_message = f"a fresh {arch.short} from random weights (He init): press Train"

    def load_shipped(self, name: str) -> None:
        """A shipped network with its trained weights (as File > Load would open it)."""
        self.load_checkpoint(files.SHIPPED[name].path)
        self.ui.network_message = self.ui.file_message
        if not self.ui.file_message.startswith("load failed"):
            self._choose_network_of(self.model)

    def label_of(self, split: str, index: int) -> int | None:
        """The label of a dataset sample, from the host copy of the labels (None if unknown)."""
        ds = self.loader.dataset
        labels = None if ds is None else {"train": ds.train_labels, "test": ds.test_labels}.get(split)
        return int(labels[index]) if labels is not None and 0 <= index < len(labels) else None

    # -- input helpers ---------------------------------------------------------------------------------------
    def to_canvas(self, x: float, y: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.ui.canvas_rect
        c = self.canvas
        return (x - x0) / max(x1 - x0, 1e-6) * c.width, (y - y0) / max(y1 - y0, 1e-6) * c.height

    def paint_demo(self, per_frame: int = 4) -> None:
        """Queue a built-in digit ('2', a little small and off-centre) as mouse segments."""
        from .demo import demo_segments
        self._demo = demo_segments(self.canvas.width, self.canvas.height)
        self._demo_per_frame = per_frame

    def feed_demo(self) -> None:
        for _ in range(min(len(self._demo), getattr(self, "_demo_per_frame", 4))):
            a, b = self._demo.pop(0)
            self.canvas.stroke(a, b)

    # -- the frame -------------------------------------------------------------------------------------------
    def view_state(self) -> ViewState:
        return ViewState(
            ui=self.ui, session=self.session, metrics=self.metrics, values=self.readout.values, model=self.model,
            canvas=self.canvas, canvas_view=self.canvas_view, model_views=self.model_views, plots=self.plots,
            confusion=self.confusion, mistakes=self.mistakes, dataset_view=self.dataset_view, device=self.dev,
            frame_ms=self.clock.frame_ms, data_error=self.loader.error, classes=self.classes,
            canvas_current=self.readout.canvas_current, label_of=self.label_of, other_views=self.other_views,
            embedding=self.embedding, saliency=self.saliency,
            autosave_path=self.autosave_dir, autosave_note=self.autosave_note, autosaves=self._autosave_list(),
            busy=self.busy,
            timeline=self.timeline, histograms=self.histograms)

    def _autosave_list(self) -> list:
        """Autosaves on disk, looked up once a second or so (not a directory scan every frame)."""
        if self.autosave_dir is None:
            return []
        if self.frames % 60 == 0 or not hasattr(self, "_autosaves"):
            self._autosaves = files.autosaves(self.autosave_dir)
        return self._autosaves

    def frame(self) -> None:
        """Render one frame (frame.py)."""
        draw_frame(self)

    def _guarded_frame(self) -> None:
        """A lost device ends the loop with a report instead of failing every frame."""
        if self.fatal is not None:
            return
        try:
            self.frame()
        except Exception as e:  # noqa: BLE001 - only a lost device or exhausted memory is handled here
            from ..compute.device import DeviceLostError
            lost = isinstance(e, DeviceLostError) or self.dev.lost or "device is lost" in str(e).lower()
            if isinstance(e, MemoryError):     # out of GPU memory (wgpu's GPUOutOfMemoryError): one line, exit 2
                self.fatal = e
                self.rc.close()
                return
            if not lost:
                raise
            self.fatal = e if isinstance(e, DeviceLostError) else DeviceLostError(
                f"the GPU device was lost ({self.dev.lost or str(e).strip().splitlines()[-1].strip()}); "
                "restart the program")
            self.rc.close()

    def ui_failed(self, e: Exception) -> None:
        msg = f"{type(e).__name__}: {e}"
        if msg != self.ui_error:
            self.ui_error = msg
            logging.getLogger("mnist-viz").exception("panel error")

    # -- offscreen / shutdown ----------------------------------------------------------------------------------
    def draw_offscreen(self):
        """Offscreen canvas: process pending events, render one frame, return its RGBA pixels."""
        self.rc._process_events()
        return self.rc.draw()

    def shutdown(self) -> Path | None:
        """Finish GPU work; autosave the model if it was trained (returns the path written); the
        signal handlers go back to what they were (`exit_code` says whether a signal ended it)."""
        try:
            return self._autosave()
        finally:
            self.stop.__exit__()

    @property
    def exit_code(self) -> int:
        """0, or 128 + the number of the signal that ended the window (as `mnist-viz train` exits)."""
        return 0 if self.stop.signum is None else 128 + self.stop.signum

    def _autosave(self) -> Path | None:
        self.fence.drain()
        if self.autosave_dir is None or not self.session.weights_changed:
            return None
        from ..compute.model_io import save_model
        path = files.next_autosave_path(self.autosave_dir)
        save_model(path, self.model, self._metadata("mnist-viz autosave"))
        files.prune_autosaves(self.autosave_dir)
        self.autosave_path = path
        return path
