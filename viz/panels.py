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

from ..compute.optim import OPTIMIZERS, SCHEDULES

from .pacing import SPEEDS
from .plots import ACC_RANGES
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
def layout(width: float, height: float, top: float = 0.0) -> dict[str, tuple[float, float, float, float]]:
    """Tile the window below the menu bar into three columns of panels (recomputed every
    frame, so the layout follows the window size)."""
    m = 6.0
    w, h = max(width, 300.0), max(height - top, 200.0)
    left = min(max(w * 0.21, 280.0), 370.0)
    mid = min(max(w * 0.29, 320.0), 480.0)
    right = max(w - left - mid - 4 * m, 200.0)
    xs = (m, 2 * m + left, 3 * m + left + mid)
    hh = h - 2 * m

    def column(x, width_, parts):
        out, y = {}, top + m
        for i, (name, frac) in enumerate(parts):
            ph = hh - (y - top - m) if i == len(parts) - 1 else hh * frac - m
            out[name] = (x, y, width_, max(ph, 40.0))
            y += ph + m
        return out

    rects = {}
    rects.update(column(xs[0], left, [("Training", 0.76), ("Device", 0.0)]))
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
    top = main_menu(app)
    io = imgui.get_io()
    rects = layout(io.display_size.x, io.display_size.y, top)
    for name, fn in PANELS:
        if begin_panel(name, rects[name]):
            fn(app)
        imgui.end()
    if app.ui.show_help:
        help_window(app)


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


def tab(app, label: str) -> bool:
    """A tab item; app.ui.select_tabs can ask for it to be selected (keyboard, tests)."""
    flags = imgui.TabItemFlags_.set_selected if label in app.ui.select_tabs else 0
    app.ui.select_tabs.discard(label)
    opened, _ = imgui.begin_tab_item(label, None, flags)
    return opened


def note(text: str) -> None:
    """Dim, wrapped text (messages)."""
    imgui.push_style_color(imgui.Col_.text, DIM)
    imgui.text_wrapped(text)
    imgui.pop_style_color()


def caption(text: str) -> None:
    imgui.text_disabled(text)


def heading(app, text: str) -> None:
    imgui.separator_text(text)


def u32(colour: V4) -> int:
    return imgui.color_convert_float4_to_u32(colour)


def fmt_pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


# -- Menu bar ------------------------------------------------------------------------------------------------
def main_menu(app) -> float:
    """File / Training / View / Help menus, and the run's status on the right. Returns its height."""
    if not imgui.begin_main_menu_bar():
        return 0.0
    s = app.session
    ready = s.data is not None
    if imgui.begin_menu("File"):
        if imgui.menu_item_simple("Save checkpoint", "S"):
            app.action("save")
        if imgui.menu_item_simple("Load checkpoint"):
            app.action("load")
        if imgui.menu_item_simple("Load the pretrained model"):
            app.action("load_default")
        imgui.end_menu()
    if imgui.begin_menu("Training"):
        if imgui.menu_item_simple("Train", enabled=ready):
            app.action("train")
        if imgui.menu_item_simple("Pause / resume", "Space", enabled=ready):
            app.action("toggle")
        if imgui.menu_item_simple("One step", "N", enabled=ready):
            app.action("step")
        if imgui.menu_item_simple("Re-initialise weights", "R", enabled=ready):
            app.action("reset")
        if imgui.menu_item_simple("Evaluate now", "E", enabled=ready and not s.evaluating):
            app.action("evaluate")
        imgui.end_menu()
    if imgui.begin_menu("View"):
        mv = app.model_views
        for i, name in enumerate(MOSAIC_MODES):
            if mv.mosaics and imgui.menu_item_simple(f"W1: {name}", "M" if i == 0 else None, mv.mosaic_mode == i):
                mv.mosaic_mode = i
        imgui.separator()
        for name in ACC_RANGES:
            if imgui.menu_item_simple(f"accuracy axis {name}", None, ACC_RANGES[name] == app.plots.accuracy.range):
                app.plots.set_accuracy_range(name)
        imgui.separator()
        _, app.canvas.normalise = imgui.menu_item("MNIST-normalise the canvas", "", app.canvas.normalise)
        changed, show = imgui.menu_item("Show bounding box / centre of mass", "", app.ui.show_box)
        if changed:
            app.ui.show_box = show
            app.canvas_view.set_show_box(show)
        imgui.end_menu()
    if imgui.begin_menu("Help"):
        _, app.ui.show_help = imgui.menu_item("Keyboard and mouse", "H", app.ui.show_help)
        imgui.end_menu()
    # Status, right-aligned.
    text = status_line(app)
    width = imgui.calc_text_size(text).x + 30
    imgui.same_line(max(imgui.get_cursor_pos_x() + 20, imgui.get_window_width() - width))
    status_label(STATUS_COLOURS.get(s.status, DIM), text)
    h = imgui.get_window_height()
    imgui.end_main_menu_bar()
    return h


def status_label(colour: V4, text: str) -> None:
    """A coloured dot, then `text`. The dot is drawn, not typed: Roboto has no U+25CF
    and imgui showed its '?' fallback glyph."""
    d = imgui.get_text_line_height()
    imgui.dummy(imgui.ImVec2(d * 0.6, d))   # room for the dot
    imgui.same_line()
    imgui.text(text)
    lo, hi = imgui.get_item_rect_min(), imgui.get_item_rect_max()
    centre = imgui.ImVec2(lo.x - imgui.get_style().item_spacing.x - d * 0.3, (lo.y + hi.y) / 2)
    imgui.get_window_draw_list().add_circle_filled(centre, d * 0.28, u32(colour))


def status_line(app) -> str:
    s = app.session
    parts = [s.status + (" (evaluating)" if s.evaluating else "")]
    tr = s.trainer
    if tr is not None and app.history.steps:
        parts.append(f"epoch {min(tr.step // tr.steps_per_epoch + 1, tr.config.epochs)}/{tr.config.epochs}")
        parts.append(f"step {app.history.steps:,}")
    v = app.readout.values
    if app.history.steps and "loss_avg" in v:
        parts.append(f"loss {v['loss_avg']:.4f}")
    if app.history.nevals and v.get("test_acc"):
        parts.append(f"test {v['test_acc'] * 100:.2f}%")
    if s.status == "running":
        parts.append(f"{s.pacer.steps_per_s:,.0f} steps/s")
    parts.append(f"{1000 / max(app.frame_ms, 1e-3):.0f} fps")
    return "   ".join(parts)


# -- Training -----------------------------------------------------------------------------------------------
def training_panel(app) -> None:
    s = app.session
    st = s.settings
    vals = app.readout.values
    ready = s.data is not None
    if not ready:
        imgui.text_colored(AMBER, "loading the dataset..." if not app.data_error else f"dataset: {app.data_error}")

    # Controls.
    imgui.begin_disabled(not ready)
    sp = imgui.get_style().item_spacing.x
    bw = (imgui.get_content_region_avail().x - 3 * sp) / 4
    size = imgui.ImVec2(bw, 28)
    imgui.push_style_color(imgui.Col_.button, V4(0.20, 0.45, 0.32, 1.0))
    imgui.push_style_color(imgui.Col_.button_hovered, V4(0.25, 0.55, 0.38, 1.0))
    if imgui.button("Train", size):
        app.action("train")
    imgui.pop_style_color(2)
    if imgui.is_item_hovered():
        imgui.set_tooltip("start a run: " + ("from freshly initialised weights" if st.fresh
                                             else "continuing from the current weights"))
    imgui.same_line()
    if s.status == "running":
        if imgui.button("Pause", size):
            app.action("pause")
    else:
        imgui.begin_disabled(s.status != "paused")
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

    # Progress.
    tr = s.trainer
    if tr is not None:
        spe = tr.steps_per_epoch
        in_epoch = tr.step % spe
        done_epochs = tr.step // spe
        if in_epoch == 0 and tr.step > 0:
            epoch, frac = done_epochs, 1.0
        else:
            epoch, frac = done_epochs + 1, in_epoch / spe
        imgui.progress_bar(frac, imgui.ImVec2(-1, 0), f"epoch {epoch}/{tr.config.epochs}   {frac * 100:.0f}%")
        imgui.progress_bar(tr.step / max(tr.total_steps, 1), imgui.ImVec2(-1, 0),
                           f"run: {tr.step:,} / {tr.total_steps:,} steps")
        lr_now = tr.optimizer.config.lr_at(tr.step)
    else:
        lr_now = st.lr
    if s.evaluating:
        imgui.progress_bar(s.eval_progress, imgui.ImVec2(-1, 0), "evaluating on the test set")

    # Live numbers (from the 64-byte readout).
    trained = app.history.steps > 0
    if imgui.begin_table("numbers", 4, imgui.TableFlags_.sizing_stretch_same):
        def cell(label, value, colour=None):
            imgui.table_next_column()
            imgui.text_disabled(label)
            imgui.text_colored(colour or V4(0.88, 0.89, 0.92, 1), value)
        imgui.table_next_row()
        cell("loss", f"{vals['loss_avg']:.4f}" if trained and "loss_avg" in vals else "-", BLUE)
        cell("batch acc", fmt_pct(vals.get("acc_avg")) if trained else "-", GREEN)
        cell("test acc", fmt_pct(vals.get("test_acc")) if app.history.nevals else "-", AMBER)
        cell("lr now", f"{lr_now:.4f}")
        imgui.end_table()

    # Speed.
    imgui.text_disabled("speed")
    imgui.same_line()
    imgui.set_next_item_width(-1)
    changed, speed = imgui.slider_int("##speed", st.speed, 0, len(SPEEDS) - 1, SPEEDS[st.speed][1])
    if changed:
        st.speed = speed
    if imgui.is_item_hovered():
        imgui.set_tooltip("from one step every 60 frames (watch single updates)\n"
                          "to as many steps as fit in the frame budget")

    if s.status == "diverged":
        imgui.text_colored(RED, "Training diverged (loss NaN/inf).")
        note(s.message)
    elif s.message:
        note(s.message)

    # Hyper-parameters: applied live (a GPU buffer write), or by rebuilding the step.
    heading(app, "Hyper-parameters")
    new = dataclasses.replace(st)
    imgui.push_item_width(imgui.get_content_region_avail().x * 0.58)
    _, i = imgui.combo("optimizer", OPTIMIZERS.index(new.optimizer), list(OPTIMIZERS))
    new.optimizer = OPTIMIZERS[i]
    _, new.lr = imgui.slider_float("learning rate", new.lr, 1e-4, 1.0, "%.4f", imgui.SliderFlags_.logarithmic)
    if new.optimizer == "sgd":
        _, new.momentum = imgui.slider_float("momentum", new.momentum, 0.0, 0.99, "%.2f")
        _, new.nesterov = imgui.checkbox("nesterov momentum", new.nesterov)
    _, i = imgui.combo("schedule", SCHEDULES.index(new.schedule), list(SCHEDULES))
    new.schedule = SCHEDULES[i]
    if new.schedule == "cosine":
        _, new.min_lr = imgui.slider_float("final lr", new.min_lr, 0.0, max(new.lr, 1e-4), "%.5f")
    elif new.schedule in ("step", "exponential"):
        _, new.gamma = imgui.slider_float("decay / epoch", new.gamma, 0.05, 1.0, "%.2f")
    _, new.weight_decay = imgui.slider_float("weight decay", new.weight_decay, 0.0, 1e-2, "%.5f",
                                             imgui.SliderFlags_.logarithmic)
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
    imgui.same_line()
    imgui.begin_disabled(not ready or s.evaluating)
    if imgui.small_button("now"):
        app.action("evaluate")
    imgui.end_disabled()

    # Checkpoints.
    heading(app, "Checkpoint")
    imgui.set_next_item_width(-1)
    _, app.ui.checkpoint_path = imgui.input_text("##ckpt", app.ui.checkpoint_path)
    bw = (imgui.get_content_region_avail().x - 2 * sp) / 3
    if imgui.button("Save", imgui.ImVec2(bw, 0)):
        app.action("save")
    imgui.same_line()
    if imgui.button("Load", imgui.ImVec2(bw, 0)):
        app.action("load")
    imgui.same_line()
    if imgui.button("Pretrained", imgui.ImVec2(bw, 0)):
        app.action("load_default")
    if app.ui.file_message:
        note(app.ui.file_message)
    if app.autosave_path is not None:
        note(f"autosave on close: {app.autosave_path}")


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
    imgui.text_disabled("H: keyboard and mouse help")


# -- Help ---------------------------------------------------------------------------------------------------
def help_panel(app) -> None:
    imgui.text_wrapped("Paint a digit on the canvas: left button paints, right button erases. "
                       "The network reads it in the same frame. Pick an image in the dataset browser or "
                       "the mistakes gallery to load it into the canvas.")
    imgui.spacing()
    if imgui.begin_table("keys", 2, imgui.TableFlags_.sizing_fixed_fit):
        for k, v in SHORTCUTS:
            imgui.table_next_row()
            imgui.table_next_column()
            imgui.text_colored(GREEN, k)
            imgui.table_next_column()
            imgui.text(v)
        imgui.end_table()
    imgui.spacing()
    imgui.text_disabled("Every picture is drawn on the GPU from the training buffers; only a few\n"
                        "scalars (64 bytes, 4 times a second) come back for the numbers.")


def help_window(app) -> None:
    io = imgui.get_io()
    imgui.set_next_window_pos(imgui.ImVec2(io.display_size.x * 0.5, io.display_size.y * 0.5),
                              imgui.Cond_.appearing, imgui.ImVec2(0.5, 0.5))
    imgui.set_next_window_size(imgui.ImVec2(430, 0), imgui.Cond_.appearing)
    expanded, opened = imgui.begin("Help", True, imgui.WindowFlags_.no_collapse | imgui.WindowFlags_.no_saved_settings)
    if expanded:
        help_panel(app)
    imgui.end()
    if opened is False:
        app.ui.show_help = False


# -- Canvas -------------------------------------------------------------------------------------------------
def frame_rect(p0, p1, colour=V4(0.24, 0.26, 0.32, 1.0)) -> None:
    """A thin frame around the last image, so dark views have visible bounds."""
    imgui.get_window_draw_list().add_rect(imgui.ImVec2(p0.x - 1, p0.y - 1), imgui.ImVec2(p1.x + 1, p1.y + 1),
                                          u32(colour), 3.0, 1.0)


def canvas_panel(app) -> None:
    c = app.canvas
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    tools_h = imgui.get_frame_height_with_spacing() + 6
    side = max(60.0, min(avail.x * 0.6, avail.y - tools_h - line))
    cw, ch = fit(app.canvas_view.texture, side, side)
    imgui.begin_group()
    caption("canvas: left button paints, right erases")
    p0, p1 = image(app.canvas_view.texture, cw, ch)
    app.ui.canvas_rect = (p0.x, p0.y, p1.x, p1.y)
    app.ui.canvas_hovered = imgui.is_item_hovered()
    frame_rect(p0, p1, V4(0.36, 0.82, 0.52, 0.9) if app.ui.canvas_hovered else V4(0.24, 0.26, 0.32, 1.0))
    if app.ui.canvas_hovered:  # brush outline
        mp = imgui.get_io().mouse_pos
        r = c.brush * cw / c.width
        imgui.get_window_draw_list().add_circle(mp, r, u32(V4(0.36, 0.82, 0.52, 0.8)), 0, 1.5)
    imgui.end_group()
    imgui.same_line(0, 14)
    imgui.begin_group()
    caption("network input")
    small = max(28.0, min(avail.x - side - 24, side * 0.55))
    q0, q1 = image(app.model_views.input.texture, *fit(app.model_views.input.texture, small, small))
    frame_rect(q0, q1)
    imgui.dummy(imgui.ImVec2(1, 6))
    caption("prediction")
    badge = app.model_views.badge
    if badge is not None:
        b0, b1 = image(badge.texture, *fit(badge.texture, small, small * 0.6, integer=False))
    if c.loaded is not None:
        split, k = c.loaded
        caption(f"loaded: {split} #{k}" if split != "mistakes" else f"loaded: mistake #{k + 1}")
    imgui.end_group()
    if imgui.button("Clear"):
        app.action("clear")
    imgui.same_line()
    imgui.set_next_item_width(110)
    changed, b = imgui.slider_float("brush", c.brush, 1.5, 12.0, "%.1f px")
    if changed:
        c.brush = b
    imgui.same_line()
    _, c.normalise = imgui.checkbox("MNIST-normalise", c.normalise)
    if imgui.is_item_hovered():
        imgui.set_tooltip("fit the ink's bounding box into 20 x 20 and put its centre of mass\n"
                          "at the centre, as MNIST digits were made (on the GPU)")
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
    # Width units: the input image 1, each hidden grid (about 2:1) 2.
    col_w = (avail.x - imgui.get_style().item_spacing.x * (n_hidden + 1)) / (1 + 2 * n_hidden)
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
        if tab(app, "W1 receptive fields"):
            imgui.set_next_item_width(170)
            changed, mode = imgui.combo("##mosaicmode", mv.mosaic_mode, list(MOSAIC_MODES))
            if changed:
                mv.mosaic_mode = mode
            imgui.same_line()
            scale = vals.get("w1_absmax")
            tile = f"one {app.canvas.image_w}x{app.canvas.image_h} tile per hidden unit"
            imgui.text_disabled(f"{tile}; colour scale +-{scale:.3f}" if scale else tile)
            avail = imgui.get_content_region_avail()
            tex = mv.mosaic.texture
            p0, p1 = image(tex, *fit(tex, avail.x, avail.y))
            uv = hovered_uv(p0, p1)
            if uv is not None:
                t = mv.mosaic.tile_at(*uv)
                if t is not None and t < mv.model.spec.sizes[1]:
                    imgui.set_tooltip(f"hidden unit {t}")
            imgui.end_tab_item()
    if tab(app, "Weights & biases"):
        avail = imgui.get_content_region_avail()
        line = imgui.get_text_line_height_with_spacing()
        dl = imgui.get_window_draw_list()
        col = u32(V4(0.62, 0.64, 0.70, 0.9))
        n = len(mv.weights)
        label_w = 18.0
        for k, hm in enumerate(mv.weights):
            scale = vals.get("w2_absmax") if k == 0 else None
            caption(f"{hm.texture.label} ({hm.tile_w} -> {hm.rows}): one row per output unit, one column per input"
                    + (f"; scale +-{scale:.3f}" if scale else ""))
            w, h = fit(hm.texture, avail.x - label_w, (avail.y - (n + len(mv.biases)) * line - 60) / n)
            imgui.set_cursor_pos_x(imgui.get_cursor_pos_x() + label_w)
            p0, p1 = image(hm.texture, w, h)
            frame_rect(p0, p1)
            if h / hm.rows >= imgui.get_text_line_height() * 0.8:
                for r in range(hm.rows):
                    y = p0.y + (hm.gap + r * (hm.tile_h + hm.gap) + hm.tile_h / 2) / hm.texture.height * h
                    dl.add_text(imgui.ImVec2(p0.x - label_w, y - imgui.get_text_line_height() / 2), col, str(r))
        for hm in mv.biases:
            caption(f"{hm.texture.label} ({hm.tile_w} units)")
            imgui.set_cursor_pos_x(imgui.get_cursor_pos_x() + label_w)
            p0, p1 = image(hm.texture, avail.x - label_w, 14.0)
            frame_rect(p0, p1)
        imgui.end_tab_item()
    imgui.end_tab_bar()


# -- Metrics ------------------------------------------------------------------------------------------------
def _plot_with_axes(app, plot, w: float, h: float) -> None:
    p0, p1 = image(plot.texture, w, h)
    frame_rect(p0, p1)
    dl = imgui.get_window_draw_list()
    col = u32(V4(0.62, 0.64, 0.70, 0.9))
    lo, hi = plot.range
    if plot.kind == 0:
        ticks = [v for v in (1e-3, 1e-2, 1e-1, 1.0) if lo <= v <= hi]
        pos = lambda v: (math.log2(v) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
        label = lambda v: f"{v:g}"
    else:
        th = imgui.get_text_line_height()
        span = hi - lo
        step = next((st for st in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0)
                     if st * (p1.y - p0.y) / span >= 1.6 * th), 1.0)
        n = int(round(span / step))
        ticks = [lo + i * step for i in range(n + 1)]
        pos = lambda v: (v - lo) / span
        label = lambda v: f"{v * 100:.0f}%"
    th = imgui.get_text_line_height()
    last_y = -1e9
    for v in sorted(ticks, reverse=True):
        y = p0.y + (1 - pos(v)) * (p1.y - p0.y)
        ty = min(max(y - th * 0.5, p0.y + 1), p1.y - th - 1)
        if ty - last_y < th + 2:
            continue
        last_y = ty
        dl.add_text(imgui.ImVec2(p0.x + 4, ty), col, label(v))
    text = f"step {app.history.steps:,}"
    dl.add_text(imgui.ImVec2(p1.x - imgui.calc_text_size(text).x - 6, p1.y - th - 2), col, text)


def metrics_panel(app) -> None:
    if not imgui.begin_tab_bar("metrics"):
        return
    if tab(app, "Curves"):
        avail = imgui.get_content_region_avail()
        line = imgui.get_text_line_height_with_spacing()
        h = max(30.0, (avail.y - 2 * line - 10) / 2)
        imgui.text_colored(BLUE, "training loss")
        imgui.same_line()
        imgui.text_disabled("(log scale; band: +-1 std of the steps in a pixel column)")
        _plot_with_axes(app, app.plots.loss, avail.x, h)
        imgui.text_colored(GREEN, "batch accuracy")
        imgui.same_line()
        imgui.text_colored(AMBER, "test accuracy")
        imgui.same_line()
        imgui.text_disabled("(after each evaluation)")
        names = list(ACC_RANGES)
        cur = [k for k, v in ACC_RANGES.items() if v == app.plots.accuracy.range]
        imgui.same_line(max(imgui.get_cursor_pos_x(), imgui.get_window_width() - 110))
        imgui.set_next_item_width(96)
        changed, i = imgui.combo("##accrange", names.index(cur[0]) if cur else 0, names)
        if changed:
            app.plots.set_accuracy_range(names[i])
        _plot_with_axes(app, app.plots.accuracy, avail.x, max(30.0, imgui.get_content_region_avail().y))
        imgui.end_tab_item()
    if tab(app, "Confusion"):
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
    if tab(app, "Mistakes"):
        mk = app.mistakes
        if mk is None:
            imgui.text_disabled("waiting for the dataset")
        else:
            if imgui.arrow_button("##mprev", imgui.Dir.left):
                mk.page = max(0, mk.page - 1)
            imgui.same_line()
            nwrong = app.readout.values.get("wrong", 0) if app.history.nevals else 0
            pages = max(1, min(mk.pages, -(-nwrong // (mk.grid.cols * mk.grid.rows))))
            mk.page = min(mk.page, pages - 1)
            if imgui.arrow_button("##mnext", imgui.Dir.right):
                mk.page = min(pages - 1, mk.page + 1)
            imgui.same_line()
            imgui.text_disabled(f"page {mk.page + 1}/{pages} of {nwrong} misclassified test digits "
                                "(true -> predicted); click one to load it")
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
    ("Canvas", canvas_panel),
    ("Prediction", prediction_panel),
    ("Layers", layers_panel),
    ("Parameters", parameters_panel),
    ("Metrics", metrics_panel),
    ("Dataset", dataset_panel),
]
