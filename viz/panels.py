"""The imgui panels. Each panel is a plain function of the app's state: it draws
widgets from that state and calls the app's action methods when the user acts.

Numbers printed as text come from `app.readout.values` (64 bytes read back a few
times a second) or from CPU-side bookkeeping (step counts, settings); every
picture is a GPU-drawn texture.
"""
from __future__ import annotations

import dataclasses
import math

from imgui_bundle import imgui

from compute.optim import OPTIMIZERS, SCHEDULES

from .pacing import SPEEDS
from .plots import ACC_RANGES, LOSS_RANGE
from .session import BATCH_SIZES
from .views import MOSAIC_MODES

V4 = imgui.ImVec4
GREEN = V4(0.36, 0.82, 0.52, 1.0)
RED = V4(0.95, 0.36, 0.33, 1.0)
AMBER = V4(1.0, 0.72, 0.28, 1.0)
BLUE = V4(0.40, 0.66, 1.0, 1.0)
DIM = V4(0.55, 0.57, 0.63, 1.0)
STATUS_COLOURS = {"running": GREEN, "paused": AMBER, "idle": DIM, "finished": BLUE, "diverged": RED}

WINDOW_FLAGS = (imgui.WindowFlags_.no_move | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_collapse
                | imgui.WindowFlags_.no_saved_settings)

SHORTCUTS = [
    ("Space", "start / pause / resume training"),
    ("N", "one training step"),
    ("R", "reset: re-initialise the weights"),
    ("E", "evaluate on the test set now"),
    ("C, Backspace", "clear the canvas"),
    ("[  ]", "smaller / larger brush"),
    ("M", "cycle the W1 mosaic view"),
    ("S", "save a checkpoint"),
    ("H, F1", "show / hide this help"),
]


# -- layout -----------------------------------------------------------------------------------------------
def layout(width: float, height: float) -> dict[str, tuple[float, float, float, float]]:
    """Tile the window into three columns of panels (recomputed every frame: resizable)."""
    m = 6.0
    w, h = max(width, 300.0), max(height, 200.0)
    left = min(max(w * 0.21, 280.0), 370.0)
    mid = min(max(w * 0.29, 320.0), 480.0)
    right = max(w - left - mid - 4 * m, 200.0)
    xs = (m, 2 * m + left, 3 * m + left + mid)
    hh = h - 2 * m

    def column(x, width_, parts):
        out, y = {}, m
        for i, (name, frac) in enumerate(parts):
            ph = hh - (y - m) if i == len(parts) - 1 else hh * frac - m
            out[name] = (x, y, width_, max(ph, 40.0))
            y += ph + m
        return out

    rects = {}
    rects.update(column(xs[0], left, [("Training", 0.64), ("Device", 0.17), ("Help", 0.0)]))
    rects.update(column(xs[1], mid, [("Canvas", 0.43), ("Prediction", 0.23), ("Layers", 0.0)]))
    rects.update(column(xs[2], right, [("Parameters", 0.42), ("Metrics", 0.34), ("Dataset", 0.0)]))
    return rects


def begin_panel(name: str, rect) -> bool:
    x, y, w, h = rect
    imgui.set_next_window_pos(imgui.ImVec2(x, y), imgui.Cond_.always)
    imgui.set_next_window_size(imgui.ImVec2(w, h), imgui.Cond_.always)
    expanded, _ = imgui.begin(name, None, WINDOW_FLAGS)
    return expanded


def draw_all(app) -> None:
    io = imgui.get_io()
    rects = layout(io.display_size.x, io.display_size.y)
    for name, fn in PANELS:
        if name == "Help" and not app.ui.show_help:
            continue
        if begin_panel(name, rects[name]):
            fn(app)
        imgui.end()


# -- helpers ------------------------------------------------------------------------------------------------
def fit(tex, max_w: float, max_h: float, integer: bool = False) -> tuple[float, float]:
    """Display size of a texture inside max_w x max_h, aspect kept (integer zoom if asked and >= 1)."""
    s = min(max_w / tex.width, max_h / tex.height)
    if integer and s >= 1:
        s = math.floor(s)
    s = max(s, 0.05)
    return tex.width * s, tex.height * s


def image(tex, w: float, h: float) -> tuple[imgui.ImVec2, imgui.ImVec2]:
    """Show a view texture; returns its screen rect (min, max)."""
    if tex.ref is None:
        imgui.dummy(imgui.ImVec2(w, h))
    else:
        imgui.image(tex.ref, imgui.ImVec2(w, h))
    return imgui.get_item_rect_min(), imgui.get_item_rect_max()


def clicked_uv(p0, p1, button: int = 0):
    """(u, v) in [0, 1] of a click on the last item, else None."""
    if not imgui.is_item_clicked(button):
        return None
    mp = imgui.get_io().mouse_pos
    return (mp.x - p0.x) / max(p1.x - p0.x, 1), (mp.y - p0.y) / max(p1.y - p0.y, 1)


def hovered_uv(p0, p1):
    if not imgui.is_item_hovered():
        return None
    mp = imgui.get_io().mouse_pos
    return (mp.x - p0.x) / max(p1.x - p0.x, 1), (mp.y - p0.y) / max(p1.y - p0.y, 1)


def caption(text: str) -> None:
    imgui.text_disabled(text)


def heading(app, text: str) -> None:
    imgui.separator_text(text)


def u32(colour: V4) -> int:
    return imgui.color_convert_float4_to_u32(colour)


def fmt_pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


# -- Training -----------------------------------------------------------------------------------------------
def training_panel(app) -> None:
    s = app.session
    st = s.settings
    vals = app.readout.values
    ready = s.data is not None
    colour = STATUS_COLOURS.get(s.status, DIM)
    imgui.text_colored(colour, "\u25cf")
    imgui.same_line()
    label = s.status
    if s.evaluating:
        label += f"  (evaluating {s.eval_progress * 100:.0f}%)"
    imgui.text(label.capitalize())
    if not ready:
        imgui.same_line()
        imgui.text_disabled("loading dataset...")

    imgui.begin_disabled(not ready)
    bw = (imgui.get_content_region_avail().x - 3 * imgui.get_style().item_spacing.x) / 4
    size = imgui.ImVec2(bw, 0)
    if imgui.button("Train", size):
        app.action("train")
    imgui.same_line()
    if s.status == "running":
        if imgui.button("Pause", size):
            app.action("pause")
    else:
        imgui.begin_disabled(s.status not in ("paused",))
        if imgui.button("Resume", size):
            app.action("resume")
        imgui.end_disabled()
    imgui.same_line()
    if imgui.button("Step", size):
        app.action("step")
    imgui.same_line()
    if imgui.button("Reset", size):
        app.action("reset")
    if imgui.radio_button("fresh weights", st.fresh):
        st.fresh = True
    imgui.same_line()
    if imgui.radio_button("continue from current", not st.fresh):
        st.fresh = False
    imgui.end_disabled()

    tr = s.trainer
    if tr is not None:
        spe = tr.steps_per_epoch
        epoch = min(tr.step // spe + (1 if tr.step % spe or tr.step == 0 else 0), tr.config.epochs)
        frac = (tr.step % spe) / spe if tr.step % spe or tr.step == 0 else 1.0
        imgui.progress_bar(frac, imgui.ImVec2(-1, 0), f"epoch {max(epoch, 1)}/{tr.config.epochs}  {frac * 100:.0f}%")
        imgui.progress_bar(tr.step / max(tr.total_steps, 1), imgui.ImVec2(-1, 0),
                           f"step {tr.step:,} / {tr.total_steps:,}")
        lr_now = tr.optimizer.config.lr_at(tr.step)
    else:
        lr_now = st.lr
    if imgui.begin_table("train_numbers", 2, imgui.TableFlags_.sizing_stretch_same):
        def row(k, v, colour=None):
            imgui.table_next_row()
            imgui.table_next_column()
            imgui.text_disabled(k)
            imgui.table_next_column()
            imgui.text_colored(colour, v) if colour else imgui.text(v)
        trained = app.history.steps > 0
        row("loss (last 100 steps)", f"{vals['loss_avg']:.4f}" if trained and "loss_avg" in vals else "-", BLUE)
        row("batch accuracy", fmt_pct(vals.get("acc_avg")) if trained else "-", GREEN)
        row("test accuracy", fmt_pct(vals.get("test_acc")) if app.history.nevals else "-", AMBER)
        row("learning rate now", f"{lr_now:.5f}")
        row("speed", f"{s.pacer.steps_per_s:,.0f} steps/s  ({s.pacer.steps_per_s * st.batch_size:,.0f} img/s)")
        imgui.end_table()

    imgui.set_next_item_width(-1)
    changed, speed = imgui.slider_int("##speed", st.speed, 0, len(SPEEDS) - 1, SPEEDS[st.speed][1])
    if changed:
        st.speed = speed
    if imgui.is_item_hovered():
        imgui.set_tooltip("training speed: from one step every 60 frames (watch single updates)\n"
                          "to as many steps as fit in the frame budget")

    if s.status == "diverged":
        imgui.text_colored(RED, "Training diverged.")
        if imgui.button("Restore last good weights"):
            app.action("restore")
    elif s.message:
        imgui.text_wrapped(s.message)

    heading(app, "Hyper-parameters")
    new = dataclasses.replace(st)
    w = imgui.get_content_region_avail().x * 0.55
    imgui.push_item_width(w)
    _, i = imgui.combo("optimizer", OPTIMIZERS.index(new.optimizer), list(OPTIMIZERS))
    new.optimizer = OPTIMIZERS[i]
    _, new.lr = imgui.slider_float("learning rate", new.lr, 1e-4, 1.0, "%.4f", imgui.SliderFlags_.logarithmic)
    if new.optimizer == "sgd":
        _, new.momentum = imgui.slider_float("momentum", new.momentum, 0.0, 0.99, "%.2f")
        _, new.nesterov = imgui.checkbox("nesterov", new.nesterov)
    _, new.weight_decay = imgui.slider_float("weight decay", new.weight_decay, 0.0, 1e-2, "%.5f",
                                             imgui.SliderFlags_.logarithmic)
    _, i = imgui.combo("schedule", SCHEDULES.index(new.schedule), list(SCHEDULES))
    new.schedule = SCHEDULES[i]
    if new.schedule == "cosine":
        _, new.min_lr = imgui.slider_float("final lr", new.min_lr, 0.0, max(new.lr, 1e-4), "%.5f")
    elif new.schedule in ("step", "exponential"):
        _, new.gamma = imgui.slider_float("decay / epoch", new.gamma, 0.05, 1.0, "%.2f")
    _, new.epochs = imgui.slider_int("epochs", new.epochs, 1, 100)
    sizes = [str(b) for b in BATCH_SIZES]
    cur = BATCH_SIZES.index(new.batch_size) if new.batch_size in BATCH_SIZES else 3
    _, i = imgui.combo("batch size", cur, sizes)
    new.batch_size = BATCH_SIZES[i]
    _, new.shift = imgui.slider_int("shift augment", new.shift, 0, 4, "+-%d px")
    imgui.pop_item_width()
    _, new.eval_each_epoch = imgui.checkbox("evaluate after every epoch", new.eval_each_epoch)
    if new != st:
        new.lr = max(new.lr, 1e-6)
        new.min_lr = min(new.min_lr, new.lr)
        app.apply_settings(new)
    imgui.begin_disabled(not ready or s.evaluating)
    if imgui.button("Evaluate now"):
        app.action("evaluate")
    imgui.end_disabled()

    heading(app, "Checkpoint")
    imgui.set_next_item_width(-1)
    _, app.ui.checkpoint_path = imgui.input_text("##ckpt", app.ui.checkpoint_path)
    if imgui.button("Save"):
        app.action("save")
    imgui.same_line()
    if imgui.button("Load"):
        app.action("load")
    imgui.same_line()
    if imgui.button("Pretrained"):
        app.action("load_default")
    if app.ui.file_message:
        imgui.text_wrapped(app.ui.file_message)
    if app.autosave_path is not None:
        imgui.text_disabled(f"autosave on close: {app.autosave_path}")


# -- Device ------------------------------------------------------------------------------------------------
def device_panel(app) -> None:
    dev = app.dev
    info = dev.info
    imgui.text(info.get("device", "?"))
    imgui.text_disabled(f"{info.get('backend_type', '?')} / {info.get('adapter_type', '?')}"
                        f"  {info.get('description', '')}"[:60])
    ms = app.frame_ms
    imgui.text(f"frame {ms:.1f} ms ({1000 / max(ms, 1e-3):.0f} fps)   GPU work {app.session.pacer.work_s * 1000:.1f} ms")
    imgui.text(f"steps/frame {app.session.steps_last_frame}   steps/s {app.session.pacer.steps_per_s:,.0f}")
    rb = dev.readback
    imgui.text(f"readback {rb.total_bytes:,} B in {rb.count} reads (largest {rb.largest} B)")
    m = app.model
    imgui.text_disabled(f"model {'-'.join(map(str, m.spec.sizes))}, {m.num_parameters():,} parameters")
    if app.session.data is not None:
        d = app.session.data
        imgui.text_disabled(f"data {d.train.n:,} train / {d.test.n:,} test, {d.nbytes / 1e6:.1f} MB on the GPU")


# -- Help ---------------------------------------------------------------------------------------------------
def help_panel(app) -> None:
    imgui.text_wrapped("Paint a digit on the canvas: left button paints, right button erases. "
                       "Pick images from the dataset or the mistakes gallery to load them into the canvas.")
    if imgui.begin_table("keys", 2, imgui.TableFlags_.sizing_fixed_fit):
        for k, v in SHORTCUTS:
            imgui.table_next_row()
            imgui.table_next_column()
            imgui.text_colored(GREEN, k)
            imgui.table_next_column()
            imgui.text(v)
        imgui.end_table()


# -- Canvas -------------------------------------------------------------------------------------------------
def canvas_panel(app) -> None:
    c = app.canvas
    avail = imgui.get_content_region_avail()
    tools_h = 2 * imgui.get_frame_height_with_spacing() + 4
    side = max(60.0, min(avail.x * 0.62, avail.y - tools_h - imgui.get_text_line_height_with_spacing()))
    imgui.begin_group()
    caption("canvas  (left paint, right erase)")
    p0, p1 = image(app.canvas_view.texture, side, side)
    app.ui.canvas_rect = (p0.x, p0.y, p1.x, p1.y)
    app.ui.canvas_hovered = imgui.is_item_hovered()
    if app.ui.canvas_hovered:  # brush outline
        mp = imgui.get_io().mouse_pos
        r = c.brush * side / c.size
        imgui.get_window_draw_list().add_circle(mp, r, u32(V4(0.36, 0.82, 0.52, 0.8)), 0, 1.5)
    imgui.end_group()
    imgui.same_line()
    imgui.begin_group()
    caption("network input 28x28")
    small = max(28.0, min(avail.x - side - 16, side * 0.62))
    image(app.model_views.input.texture, small, small)
    vals = app.readout.values
    if vals.get("ink", 0) > 0.5:
        imgui.push_font(app.gui.fonts.get("bold"), 34.0) if app.gui.fonts else None
        imgui.text_colored(GREEN, f"{vals.get('pred', 0)}")
        imgui.pop_font() if app.gui.fonts else None
        imgui.same_line()
        imgui.text_disabled(f"{vals.get('pred_prob', 0) * 100:.1f}%")
    else:
        imgui.text_disabled("paint a digit")
    imgui.end_group()
    if imgui.button("Clear (C)"):
        app.action("clear")
    imgui.same_line()
    imgui.set_next_item_width(120)
    changed, b = imgui.slider_float("brush", c.brush, 1.5, 12.0, "%.1f px")
    if changed:
        c.brush = b
    imgui.same_line()
    _, c.normalise = imgui.checkbox("MNIST-normalise", c.normalise)
    imgui.same_line()
    changed, show = imgui.checkbox("box", app.ui.show_box)
    if changed:
        app.ui.show_box = show
        app.canvas_view.set_show_box(show)


# -- Prediction ---------------------------------------------------------------------------------------------
def prediction_panel(app) -> None:
    tex = app.model_views.probs.texture
    avail = imgui.get_content_region_avail()
    w, h = fit(tex, avail.x, avail.y - imgui.get_text_line_height_with_spacing())
    caption("class probabilities (softmax), winner highlighted")
    image(tex, w, h)


# -- Layers -------------------------------------------------------------------------------------------------
def layers_panel(app) -> None:
    mv = app.model_views
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    n_hidden = len(mv.hidden)
    col_w = (avail.x - imgui.get_style().item_spacing.x * (1 + n_hidden)) / (2 + n_hidden)
    img_h = max(30.0, avail.y * 0.55 - line)
    imgui.begin_group()
    caption("input")
    image(mv.input.texture, *fit(mv.input.texture, col_w, img_h))
    imgui.end_group()
    for k, hm in enumerate(mv.hidden):
        imgui.same_line()
        imgui.begin_group()
        caption(f"hidden {k + 1} (ReLU)")
        p0, p1 = image(hm.texture, *fit(hm.texture, col_w * 2, img_h))
        uv = hovered_uv(p0, p1)
        if uv is not None:
            t = hm.tile_at(*uv)
            if t is not None and t < mv.forward.activations[k].size:
                imgui.set_tooltip(f"unit {t}")
        imgui.end_group()
    caption("logits (output layer, before softmax)")
    rest = imgui.get_content_region_avail()
    image(mv.logits.texture, *fit(mv.logits.texture, rest.x, max(20.0, rest.y)))


# -- Parameters ---------------------------------------------------------------------------------------------
def parameters_panel(app) -> None:
    mv = app.model_views
    vals = app.readout.values
    if not imgui.begin_tab_bar("params"):
        return
    if mv.mosaic is not None:
        opened, _ = imgui.begin_tab_item("W1 receptive fields")
        if opened:
            imgui.set_next_item_width(170)
            changed, mode = imgui.combo("##mosaicmode", mv.mosaic_mode, list(MOSAIC_MODES))
            if changed:
                mv.mosaic_mode = mode
            imgui.same_line()
            scale = vals.get("w1_absmax")
            imgui.text_disabled(f"one 28x28 tile per hidden unit; colour scale +-{scale:.3f}" if scale
                                else "one 28x28 tile per hidden unit")
            avail = imgui.get_content_region_avail()
            tex = mv.mosaic.texture
            p0, p1 = image(tex, *fit(tex, avail.x, avail.y))
            uv = hovered_uv(p0, p1)
            if uv is not None:
                t = mv.mosaic.tile_at(*uv)
                if t is not None and t < mv.model.spec.sizes[1]:
                    imgui.set_tooltip(f"hidden unit {t}")
            imgui.end_tab_item()
    opened, _ = imgui.begin_tab_item("Weights & biases")
    if opened:
        avail = imgui.get_content_region_avail()
        line = imgui.get_text_line_height_with_spacing()
        for k, hm in enumerate(mv.weights):
            n = len(mv.weights)
            caption(f"{hm.texture.label}: one row per output unit" + (
                f" (scale +-{vals['w2_absmax']:.3f})" if k == 0 and vals.get("w2_absmax") else ""))
            image(hm.texture, *fit(hm.texture, avail.x, (avail.y * 0.7) / n - line))
        for hm in mv.biases:
            caption(f"{hm.texture.label}")
            image(hm.texture, avail.x, 10.0)
        imgui.end_tab_item()
    imgui.end_tab_bar()


# -- Metrics ------------------------------------------------------------------------------------------------
def _plot_with_axes(app, plot, w: float, h: float, title: str) -> None:
    caption(title)
    p0, p1 = image(plot.texture, w, h)
    dl = imgui.get_window_draw_list()
    col = u32(V4(0.75, 0.77, 0.82, 0.85))
    lo, hi = plot.range
    if plot.kind == 0:
        ticks = [v for v in (1e-3, 1e-2, 1e-1, 1.0) if lo <= v <= hi]
        pos = lambda v: (math.log2(v) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
        label = lambda v: f"{v:g}"
    else:
        step = 0.1 if hi - lo > 0.2 else (0.02 if hi - lo > 0.05 else 0.005)
        ticks = [lo + i * step for i in range(int(round((hi - lo) / step)) + 1)][::2]
        pos = lambda v: (v - lo) / (hi - lo)
        label = lambda v: f"{v * 100:g}%"
    for v in ticks:
        y = p0.y + (1 - pos(v)) * (p1.y - p0.y)
        dl.add_text(imgui.ImVec2(p0.x + 4, min(max(y - 15, p0.y), p1.y - 15)), col, label(v))
    steps = app.history.steps
    dl.add_text(imgui.ImVec2(p1.x - 110, p1.y - 16), col, f"step {steps:,}")


def metrics_panel(app) -> None:
    if not imgui.begin_tab_bar("metrics"):
        return
    opened, _ = imgui.begin_tab_item("Curves")
    if opened:
        avail = imgui.get_content_region_avail()
        line = imgui.get_text_line_height_with_spacing()
        h = max(30.0, (avail.y - 2 * line - 8) / 2)
        _plot_with_axes(app, app.plots.loss, avail.x, h, "training loss (log scale; band = spread within a pixel)")
        names = list(ACC_RANGES)
        imgui.text_disabled("accuracy: batch (green), test after each evaluation (amber)")
        imgui.same_line()
        cur = [k for k, v in ACC_RANGES.items() if v == app.plots.accuracy.range]
        imgui.set_next_item_width(100)
        changed, i = imgui.combo("##accrange", names.index(cur[0]) if cur else 0, names)
        if changed:
            app.plots.set_accuracy_range(names[i])
        _plot_with_axes(app, app.plots.accuracy, avail.x, imgui.get_content_region_avail().y, "")
        imgui.end_tab_item()
    opened, _ = imgui.begin_tab_item("Confusion")
    if opened:
        if app.confusion is None:
            imgui.text_disabled("waiting for the dataset")
        else:
            vals = app.readout.values
            seen = vals.get("seen", 0)
            if app.history.nevals and seen:
                imgui.text(f"test accuracy {vals.get('correct', 0) / seen * 100:.2f}%  "
                           f"({vals.get('wrong', 0)} of {seen:,} wrong)   rows: true class, columns: predicted")
            else:
                imgui.text_disabled("no evaluation yet")
            avail = imgui.get_content_region_avail()
            image(app.confusion.texture, *fit(app.confusion.texture, avail.x, avail.y, integer=True))
        imgui.end_tab_item()
    opened, _ = imgui.begin_tab_item("Mistakes")
    if opened:
        mk = app.mistakes
        if mk is None:
            imgui.text_disabled("waiting for the dataset")
        else:
            if imgui.arrow_button("##mprev", imgui.Dir.left):
                mk.page = max(0, mk.page - 1)
            imgui.same_line()
            if imgui.arrow_button("##mnext", imgui.Dir.right):
                mk.page = min(mk.pages - 1, mk.page + 1)
            imgui.same_line()
            imgui.text_disabled(f"page {mk.page + 1}/{mk.pages}: misclassified test digits, true -> predicted; "
                                "click one to load it")
            avail = imgui.get_content_region_avail()
            p0, p1 = image(mk.texture, *fit(mk.texture, avail.x, avail.y))
            uv = clicked_uv(p0, p1)
            if uv is not None:
                t = mk.grid.tile_at(*uv)
                if t is not None:
                    app.load_into_canvas("mistakes", mk.page * mk.grid.cols * mk.grid.rows + t)
        imgui.end_tab_item()
    imgui.end_tab_bar()


# -- Dataset ------------------------------------------------------------------------------------------------
def dataset_panel(app) -> None:
    dv = app.dataset_view
    if dv is None:
        imgui.text_disabled("loading the dataset...")
        return
    for name in ("train", "test"):
        if imgui.radio_button(name, dv.split == name):
            if dv.split != name:
                dv.split, dv.page, dv.selected = name, 0, None
        imgui.same_line()
    if imgui.arrow_button("##dprev", imgui.Dir.left):
        dv.page = max(0, dv.page - 1)
    imgui.same_line()
    imgui.set_next_item_width(160)
    _, page = imgui.slider_int("##page", dv.page + 1, 1, dv.pages, f"page %d/{dv.pages}")
    dv.page = page - 1
    imgui.same_line()
    if imgui.arrow_button("##dnext", imgui.Dir.right):
        dv.page = min(dv.pages - 1, dv.page + 1)
    imgui.same_line()
    imgui.text_disabled("click a digit to load it into the canvas")
    avail = imgui.get_content_region_avail()
    p0, p1 = image(dv.texture, *fit(dv.texture, avail.x, avail.y))
    uv = clicked_uv(p0, p1)
    if uv is not None:
        i = dv.sample_at(dv.grid.tile_at(*uv))
        if i is not None:
            dv.selected = i
            app.load_into_canvas(dv.split, i)


PANELS = [
    ("Training", training_panel),
    ("Device", device_panel),
    ("Help", help_panel),
    ("Canvas", canvas_panel),
    ("Prediction", prediction_panel),
    ("Layers", layers_panel),
    ("Parameters", parameters_panel),
    ("Metrics", metrics_panel),
    ("Dataset", dataset_panel),
]
