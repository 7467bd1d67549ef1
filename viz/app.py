"""The visualizer app: its state and the frame loop.

One frame = one command encoder, submitted once:
  1. training: this frame's budget of steps (or a piece of an evaluation), plus
     GPU-to-GPU copies of the new metrics into the run history;
  2. one compute pass: paint the mouse segments, normalise the canvas, the traced
     forward pass on it, colour-scale reductions, every view texture, the stats pack;
  3. one render pass: imgui (panels showing the view textures) into the swapchain.
No tensor, image or activation is read back; 64 bytes of scalars come back a few
times a second (readout.py) for the numbers printed as text.

The same App runs in a glfw window (`rendercanvas.glfw`) or offscreen
(`rendercanvas.offscreen`) for tests and screenshots.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..compute.device import DeviceLostError, get_device
from ..compute.program import Program

from . import panels
from .canvas import PaintCanvas
from .dataviews import ConfusionView, DatasetView, MistakesView
from .gui import Gui
from .history import RunHistory
from .inference import Forward
from .pacing import SPEEDS, FrameFence
from .plots import CurvePlots
from .readout import ScalarReadout
from .session import TrainSettings, TrainingSession
from .views import CanvasView, ModelViews, ScaleBank

CLEAR_COLOUR = (0.045, 0.047, 0.058, 1.0)
MNIST_SHAPE = (28, 28, 10)    # height, width, classes of the bundled dataset


def default_autosave_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mnist-viz" / "autosave.safetensors"


@dataclass
class AppConfig:
    checkpoint: Path | None = None        # None: the pretrained model (fresh He init if missing)
    data_dir: Path | None = None          # None: the bundled MNIST
    limit: int | None = None              # train on the first N images
    test_limit: int | None = None         # evaluate on the first N test images (tests)
    train: bool = False                   # start training at once
    paint_demo: bool = False              # paint a built-in digit
    autosave: bool = True
    autosave_path: Path = field(default_factory=default_autosave_path)
    settings: TrainSettings | None = None
    frame_budget_s: float | None = None   # None: 1/90 s on a GPU, 1/12 s on a CPU adapter
    background_load: bool = True          # load the dataset on a thread (the window opens at once)
    evaluate_on_load: bool = True         # evaluate the loaded model once the dataset is in


@dataclass
class UIState:
    canvas_rect: tuple = (0.0, 0.0, 0.0, 0.0)
    canvas_hovered: bool = False
    show_help: bool = False
    show_box: bool = True
    checkpoint_path: str = ""
    file_message: str = ""
    select_tabs: set = field(default_factory=set)   # tab labels to bring to front next frame


class App:
    def __init__(self, canvas, config: AppConfig | None = None):
        self.config = config or AppConfig()
        self.dev = get_device()
        self.rc = canvas
        self.context = canvas.get_wgpu_context()
        fmt = self.context.get_preferred_format(self.dev.adapter)
        self.context.configure(device=self.dev.device, format=fmt)
        self.gui = Gui(self.dev.device, canvas, fmt)
        self.ui = UIState(checkpoint_path=str(Path.cwd() / "mnist-model.safetensors"))
        self.autosave_path = self.config.autosave_path if self.config.autosave else None

        self._dataset = None
        if self.config.data_dir is not None:
            # The user's own data decides the model's shape: read it now (a bad directory is a
            # clear error at start). The bundled MNIST loads in the background instead.
            from ..compute.idx import load_dataset
            self._dataset = load_dataset(self.config.data_dir)
        model, note = self._initial_model()
        self.ui.file_message = note
        classes = model.spec.sizes[-1]
        self.history = RunHistory(classes)
        h, w, _ = self.data_shape
        self.canvas = PaintCanvas(image_w=w, image_h=h)
        self.canvas_view = CanvasView(self.canvas)
        self.gui.register(self.canvas_view.texture)
        self.session = TrainingSession(model, self.history, self.config.settings, self.config.frame_budget_s)
        self.plots = CurvePlots(self.history)
        self.confusion = ConfusionView(self.history)
        for t in self.plots.textures + [self.confusion.texture]:
            self.gui.register(t)
        self.mistakes: MistakesView | None = None
        self.dataset_view: DatasetView | None = None
        self.model = None
        self._bind_model(model)

        self.fence = FrameFence(depth=2)
        self.frames = 0
        self.frame_ms = 0.0
        self._last_frame_t = None
        self._actions: list = []
        self._views_key = None
        self._stroke = None           # (erase, last canvas point) while a mouse stroke is on
        self._demo: list = []         # queued demo segments
        self.fatal: Exception | None = None   # the GPU device was lost: end the loop, report it
        self.ui_error: str | None = None
        self.data_error: str | None = None
        self._loader = None
        canvas.add_event_handler(self._on_pointer, "pointer_down", "pointer_move", "pointer_up", order=-100)
        canvas.add_event_handler(self._on_key, "key_down")
        canvas.request_draw(self._guarded_frame)
        self._start_loading()
        if self.config.paint_demo:
            self.paint_demo()
        if self.config.train:
            self.action("train")

    # -- model ---------------------------------------------------------------------------------------
    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(height, width, classes) of the dataset the model must fit."""
        if self._dataset is not None:
            return (*self._dataset.image_shape, self._dataset.num_classes)
        return MNIST_SHAPE   # the bundled set: checksum-verified, so known before it has loaded

    def check_fits(self, spec, path: Path) -> None:
        """A model whose input or output does not match the dataset is refused before it is used."""
        problem = spec.misfit(*self.data_shape)
        if problem:
            raise ValueError(f"{path.name}: {problem}")

    def _initial_model(self):
        """--checkpoint if given (it must fit the data), else the pretrained model, else (none
        shipped, or the data has another image size or classes) fresh weights that fit."""
        from ..compute.model_io import default_model_path, load_model
        from ..compute.nn import MLPSpec, Sequential
        h, w, classes = self.data_shape
        fresh = MLPSpec([h * w, 128, classes])
        path = Path(self.config.checkpoint) if self.config.checkpoint is not None else default_model_path()
        if self.config.checkpoint is None and not path.exists():
            return Sequential(fresh), "no pretrained model found: starting from random weights"
        model, meta = load_model(path)
        try:
            self.check_fits(model.spec, path)
        except ValueError:
            if self.config.checkpoint is not None:
                raise
            return Sequential(fresh), (f"the pretrained model reads 28 x 28 digits in 10 classes: starting "
                                       f"{'-'.join(map(str, fresh.sizes))} from random weights for this dataset")
        acc = meta.get("test_accuracy")
        return model, f"loaded {path.name}" + (f" (test accuracy {float(acc) * 100:.2f}%)" if acc else "")

    def _bind_model(self, model) -> None:
        """(Re)build everything that reads the model's buffers."""
        old = self.model
        if old is not None:
            for t in self.model_views.textures:
                self.gui.unregister(t)
            if self.mistakes is not None:
                self.gui.unregister(self.mistakes.texture)
        self.model = model
        self.scales = ScaleBank()
        self.forward = Forward(model, self.canvas.x)
        self.model_views = ModelViews(model, self.forward, self.scales, image_shape=self.data_shape[:2],
                                      canvas_norm=self.canvas.norm)
        for t in self.model_views.textures:
            self.gui.register(t)
        slots = self.model_views.weight_slots
        self.readout = ScalarReadout(self.history, self.forward, self.canvas, self.scales, slots[0],
                                     slots[1] if len(slots) > 1 else slots[0])
        if self.session.data is not None:
            self.mistakes = MistakesView(self.history, self.session.data, model)
            self.gui.register(self.mistakes.texture)
        if old is not None and old is not model:
            self.session.set_model(model)

    # -- dataset -------------------------------------------------------------------------------------
    def _start_loading(self) -> None:
        if self._dataset is not None:
            return
        def load():
            try:
                from ..compute.idx import bundled_mnist_dir, load_dataset
                self._dataset = load_dataset(self.config.data_dir or bundled_mnist_dir())
            except Exception as e:  # noqa: BLE001 - shown in the UI
                self.data_error = str(e).splitlines()[0] if str(e) else type(e).__name__
        if self.config.background_load:
            self._loader = threading.Thread(target=load, name="mnist-viz-load", daemon=True)
            self._loader.start()
        else:
            load()

    def wait_for_data(self, timeout: float = 60.0) -> bool:
        if self._loader is not None:
            self._loader.join(timeout)
        self._maybe_attach_data()
        return self.session.data is not None

    def _maybe_attach_data(self) -> None:
        if self.session.data is not None or self._dataset is None:
            if self.data_error and not self.ui.file_message.startswith("dataset"):
                self.ui.file_message = f"dataset: {self.data_error}"
            return
        from ..compute.data import GpuDataset
        ds = self._dataset
        if self.config.test_limit:
            ds = replace(ds, test_images=ds.test_images[: self.config.test_limit],
                         test_labels=ds.test_labels[: self.config.test_limit])
        data = GpuDataset(ds, self.config.limit)
        self.session.attach_data(data, evaluate=self.config.evaluate_on_load)
        self.canvas.attach_dataset(data, self.history)
        self.mistakes = MistakesView(self.history, data, self.model)
        self.dataset_view = DatasetView(data)
        self.gui.register(self.mistakes.texture)
        self.gui.register(self.dataset_view.texture)
        pending, self._actions = self._actions, []
        for a in pending:
            self._run_action(*a)

    # -- actions (from panels, keys) -------------------------------------------------------------------
    def action(self, name: str, *args) -> None:
        """Queue an action; it runs before this frame's GPU work is encoded."""
        self._actions.append((name, *args))

    def _run_action(self, name: str, *args) -> None:
        s = self.session
        needs_data = {"train", "resume", "step", "evaluate"}
        if name in needs_data and s.data is None:
            if self.data_error:
                self.ui.file_message = f"no dataset ({self.data_error}): cannot {name}"
            else:
                self._actions.append((name, *args))  # retried once the dataset is in
            return
        if name == "train":
            s.start()
        elif name == "pause":
            s.pause()
        elif name == "resume":
            s.resume()
        elif name == "toggle":
            s.toggle()
        elif name == "step":
            s.step_once()
        elif name == "reset":
            s.reset()
        elif name == "evaluate":
            s.evaluate_now()
        elif name == "restore":
            s.restore_last_good()
        elif name == "clear":
            self.canvas.clear()
            if self.dataset_view is not None:
                self.dataset_view.selected = None
        elif name == "save":
            self.save_checkpoint(Path(self.ui.checkpoint_path).expanduser())
        elif name == "load":
            self.load_checkpoint(Path(self.ui.checkpoint_path).expanduser())
        elif name == "load_default":
            from ..compute.model_io import default_model_path
            self.load_checkpoint(default_model_path())

    def apply_settings(self, new: TrainSettings) -> None:
        self.session.apply_settings(new)

    def load_into_canvas(self, split: str, index: int) -> None:
        self.canvas.load_sample(split, index)

    def save_checkpoint(self, path: Path) -> None:
        """User action (not the frame loop): reads the weights back once, atomically writes."""
        from ..compute.model_io import save_model
        try:
            self.fence.drain()
            meta = {"saved_by": "mnist-viz", "steps": self.history.steps}
            if self.history.nevals and self.readout.values.get("test_acc"):
                meta["test_accuracy"] = f"{self.readout.values['test_acc']:.4f}"
            save_model(path, self.model, meta)
            self.session.weights_changed = False
            self.ui.file_message = f"saved {path}"
        except Exception as e:  # noqa: BLE001 - reported in the panel
            self.ui.file_message = f"save failed: {e}"

    def load_checkpoint(self, path: Path) -> None:
        from ..compute.model_io import load_into, load_model, read_checkpoint
        try:
            _, _, spec = read_checkpoint(path)
            self.check_fits(spec, path)
            self.fence.drain()
            if spec.sizes == self.model.spec.sizes and spec.dropout == self.model.spec.dropout:
                load_into(self.model, path)
                self.session.status = "idle"
            else:
                model, _ = load_model(path)
                self._bind_model(model)
            self.history.clear()
            self.session.weights_changed = False
            self.session.weights_revision += 1
            self.ui.file_message = f"loaded {path.name} ({'-'.join(map(str, spec.sizes))})"
            if self.session.trainer is not None:
                self.session.evaluate_now()
        except Exception as e:  # noqa: BLE001 - reported in the panel
            self.ui.file_message = f"load failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"

    # -- input -------------------------------------------------------------------------------------------
    def to_canvas(self, x: float, y: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.ui.canvas_rect
        c = self.canvas
        return (x - x0) / max(x1 - x0, 1e-6) * c.width, (y - y0) / max(y1 - y0, 1e-6) * c.height

    def _inside_canvas(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.ui.canvas_rect
        return x0 <= x < x1 and y0 <= y < y1 and x1 > x0

    def _on_pointer(self, ev) -> None:
        kind = ev["event_type"]
        x, y = ev.get("x", 0.0), ev.get("y", 0.0)
        if kind == "pointer_down":
            if ev.get("button") in (1, 2) and self._inside_canvas(x, y) and self.ui.canvas_hovered:
                erase = ev["button"] == 2
                p = self.to_canvas(x, y)
                self._stroke = (erase, p)
                self.canvas.stroke(p, p, erase)
                ev["stop_propagation"] = True
        elif kind == "pointer_move":
            if self._stroke is not None:
                erase, last = self._stroke
                p = self.to_canvas(x, y)
                self.canvas.stroke(last, p, erase)
                self._stroke = (erase, p)
        elif kind == "pointer_up":
            if self._stroke is not None:
                self._stroke = None
                ev["stop_propagation"] = True

    def _on_key(self, ev) -> None:
        key = ev.get("key", "")
        k = key.lower() if len(key) == 1 else key
        mv = self.model_views
        if k == " ":
            self.action("toggle")
        elif k == "n":
            self.action("step")
        elif k == "r":
            self.action("reset")
        elif k == "e":
            self.action("evaluate")
        elif k in ("c", "Backspace", "Delete"):
            self.action("clear")
        elif k == "[":
            self.canvas.brush = max(1.5, self.canvas.brush - 0.5)
        elif k == "]":
            self.canvas.brush = min(12.0, self.canvas.brush + 0.5)
        elif k == "m" and mv.mosaics:
            mv.mosaic_mode = (mv.mosaic_mode + 1) % len(mv.mosaics)
        elif k == "s":
            self.action("save")
        elif k in ("h", "F1"):
            self.ui.show_help = not self.ui.show_help

    # -- demo --------------------------------------------------------------------------------------------
    def paint_demo(self, per_frame: int = 4) -> None:
        """Queue a built-in digit ('2', a little small and off-centre) as mouse segments."""
        from .demo import demo_segments
        self._demo = demo_segments(self.canvas.width, self.canvas.height)
        self._demo_per_frame = per_frame

    def _feed_demo(self) -> None:
        for _ in range(min(len(self._demo), getattr(self, "_demo_per_frame", 4))):
            a, b = self._demo.pop(0)
            self.canvas.stroke(a, b)

    # -- the frame ------------------------------------------------------------------------------------------
    def _guarded_frame(self) -> None:
        """A lost device ends the loop with a report instead of failing every frame."""
        if self.fatal is not None:
            return
        try:
            self.frame()
        except Exception as e:  # noqa: BLE001 - only a lost device is handled here
            lost = isinstance(e, DeviceLostError) or self.dev.lost or "device is lost" in str(e).lower()
            if not lost:
                raise
            self.fatal = e if isinstance(e, DeviceLostError) else DeviceLostError(
                f"the GPU device was lost ({self.dev.lost or str(e).strip().splitlines()[-1].strip()}); "
                "restart the program")
            self.rc.close()

    def frame(self) -> None:
        t0 = time.perf_counter()
        waited = self.fence.wait()
        if self._last_frame_t is not None:
            dt = (t0 - self._last_frame_t) * 1000
            self.frame_ms = dt if self.frame_ms == 0 else 0.9 * self.frame_ms + 0.1 * dt
        self._last_frame_t = t0
        self._maybe_attach_data()
        if self.readout.poll():
            self.session.on_scalars(self.readout.values)
        self._feed_demo()

        self.gui.begin()
        try:
            panels.draw_all(self)
        except Exception as e:  # noqa: BLE001 - a UI bug must not kill the frame loop
            self.gui.recover()
            self._ui_error(e)
        actions, self._actions = self._actions, []
        for a in actions:
            self._run_action(*a)

        encoder = self.dev.device.create_command_encoder()
        steps = self.session.encode(encoder)
        Program(self.frame_dispatches(), label="frame").encode(encoder)
        target = self.context.get_current_texture()
        rp = encoder.begin_render_pass(color_attachments=[{
            "view": target.create_view(), "resolve_target": None, "clear_value": CLEAR_COLOUR,
            "load_op": "clear", "store_op": "store"}])
        self.gui.record(rp)
        rp.end()
        self.dev.submit(encoder)
        self.fence.submitted()
        self.readout.after_submit()
        self.frames += 1
        adaptive = SPEEDS[self.session.settings.speed][0] == 0
        cpu = time.perf_counter() - t0 - waited
        self.session.pacer.update(max(cpu, self.fence.gpu_s), steps, adaptive)

    def _ui_error(self, e: Exception) -> None:
        msg = f"{type(e).__name__}: {e}"
        if msg != self.ui_error:
            self.ui_error = msg
            logging.getLogger("mnist-viz").exception("panel error")

    def frame_dispatches(self) -> list:
        """The compute work of a frame after training, in dependency order."""
        mv = self.model_views
        # The model-side views change only with the canvas or the weights (or a view setting).
        key = (self.canvas.revision, self.canvas.normalise, self.session.weights_revision, mv.mosaic_mode,
               self.canvas_view.params.values, id(self.model))
        redraw = key != self._views_key or self.canvas.busy
        self._views_key = key
        out = self.canvas.dispatches()
        if redraw:
            out += self.forward.dispatches() + self.scales.dispatches() + mv.dispatches()
            out += [self.canvas_view.dispatch]
        out += self.plots.dispatches() + self.confusion.dispatches()
        if self.mistakes is not None:
            out += self.mistakes.dispatches()
        if self.dataset_view is not None:
            out += self.dataset_view.dispatches()
        out += self.readout.dispatches()
        return out

    # -- offscreen / shutdown ----------------------------------------------------------------------------------
    def draw_offscreen(self):
        """Offscreen canvas: process pending events, render one frame, return its RGBA pixels."""
        self.rc._process_events()
        return self.rc.draw()

    def shutdown(self) -> Path | None:
        """Finish GPU work; autosave the model if it was trained (returns the path written)."""
        self.fence.drain()
        if self.autosave_path is None or not self.session.weights_changed:
            return None
        from ..compute.model_io import save_model
        self.autosave_path.parent.mkdir(parents=True, exist_ok=True)
        save_model(self.autosave_path, self.model, {"saved_by": "mnist-viz autosave",
                                                    "steps": self.history.steps})
        return self.autosave_path


# -- entry point ------------------------------------------------------------------------------------------------
def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size expects WxH, e.g. 1600x1000, got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return w, h


def config_from_args(args) -> AppConfig:
    return AppConfig(checkpoint=args.checkpoint, data_dir=args.data, limit=args.limit, train=args.train,
                     paint_demo=args.paint_demo, autosave=not args.no_autosave,
                     background_load=not args.offscreen)


def run_app(args) -> int:
    size = _parse_size(args.size)
    config = config_from_args(args)
    if args.offscreen:
        return run_offscreen(config, size, args.frames, args.screenshot)
    canvas, loop = open_window(size)
    app = App(canvas, config)
    loop.run()
    if app.fatal is not None:
        raise app.fatal
    saved = app.shutdown()
    if saved:
        print(f"autosaved the model to {saved}")
    return 0


def open_window(size):
    """A glfw window through rendercanvas, or a one-line error when there is no display."""
    import warnings

    import glfw
    from .cli import UserError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glfw reports the reason as a warning; ours says it plainly
        ok = glfw.init()
    if not ok:
        raise UserError("cannot open a window: no display found (DISPLAY / WAYLAND_DISPLAY); "
                        "render without one with --offscreen --frames N --screenshot out.png")
    from rendercanvas.glfw import RenderCanvas, loop
    canvas = RenderCanvas(size=size, title="mnist-viz: MNIST training on the GPU", update_mode="continuous",
                          max_fps=60, vsync=True)
    return canvas, loop


def run_offscreen(config: AppConfig, size, frames: int, screenshot: Path | None) -> int:
    from rendercanvas.offscreen import RenderCanvas
    canvas = RenderCanvas(size=size, pixel_ratio=1.0)
    config = replace(config, autosave=False, background_load=False)
    app = App(canvas, config)
    app.wait_for_data()
    if app.data_error and config.train:
        from .cli import UserError
        raise UserError(f"cannot train: {app.data_error}")
    t0 = time.perf_counter()
    img = None
    for _ in range(frames):
        img = app.draw_offscreen()
        if app.fatal is not None:
            raise app.fatal
    dt = time.perf_counter() - t0
    app.fence.drain()
    if screenshot is not None and img is not None:
        write_png(screenshot, img)
        print(f"wrote {screenshot}")
    rb = app.dev.readback
    print(f"{frames} frames in {dt:.2f} s ({frames / max(dt, 1e-9):.1f} fps); steps {app.history.steps}; "
          f"readback {rb.total_bytes} bytes in {rb.count} reads (largest {rb.largest})", file=sys.stderr)
    return 0


def write_png(path: Path, rgba) -> None:
    """Save an [H, W, 4] u8 array as PNG (zlib only, no imaging library needed)."""
    import struct
    import zlib

    import numpy as np
    a = np.ascontiguousarray(np.asarray(rgba)[..., :3], dtype=np.uint8)
    h, w = a.shape[:2]
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">2I5B", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
