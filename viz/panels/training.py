"""The Training panel: run controls, progress, live numbers, hyper-parameters, checkpoints;
and the device figures the Help window shows."""
from __future__ import annotations

from imgui_bundle import imgui

from ...compute.recipe import OPTIMIZERS, SCHEDULES
from ..actions import Action
from ..pacing import SPEEDS
from ...compute.evaluation import ESTIMATE_ROWS
from ..session import BATCH_SIZES, ESTIMATE_EVERY
from .network import network_tab
from .runs import runs_panel
from .widgets import AMBER, BLUE, GREEN, RED, TEXT, V4, evaluated_when, fmt_pct, note, tab_page


def training_panel(v, act) -> None:
    """Fixed rows first (controls, a status line, progress, numbers, speed), so nothing moves
    under the cursor when a load starts or the dataset arrives; then tabs for the settings,
    the checkpoint and the device, which would not fit below each other at 700 pixels."""
    s = v.session
    ready = s.ready and not v.busy
    _controls(v, act, ready)
    _progress(v)
    _numbers(v)
    imgui.text_disabled("speed")
    imgui.same_line()
    imgui.set_next_item_width(-1)
    changed, speed = imgui.slider_int("##speed", s.watch.speed, 0, len(SPEEDS) - 1, SPEEDS[s.watch.speed][1])
    if changed:
        act.emit(Action.SET_SPEED, speed)
    if imgui.is_item_hovered():
        imgui.set_tooltip("from one step every 60 frames (watch single updates)\n"
                          "to as many steps as fit in the frame budget")
    if s.status == "diverged":
        imgui.text_colored(RED, "Training diverged.")
    if s.message:
        note(s.message)
    if imgui.begin_tab_bar("training tabs"):
        tab_page(v, act, "Settings", _hyper_parameters, ready)
        # "Net", not "Network": four tabs must fit the 290-pixel column at 1.5x UI scale
        # (the device's figures are in the Help window, help.py).
        if not tab_page(v, act, "Net", network_tab) and imgui.is_item_hovered():
            imgui.set_tooltip("the network: the shipped MLP or CNN, or an architecture string")
        tab_page(v, act, "Runs", runs_panel)
        tab_page(v, act, "Checkpoint", _checkpoints)
        imgui.end_tab_bar()


def _controls(v, act, ready: bool) -> None:
    s = v.session
    imgui.begin_disabled(not ready)
    sp = imgui.get_style().item_spacing.x
    bw = (imgui.get_content_region_avail().x - 3 * sp) / 4
    size = imgui.ImVec2(bw, imgui.get_frame_height() * 1.25)
    imgui.push_style_color(imgui.Col_.button, V4(0.20, 0.45, 0.32, 1.0))
    imgui.push_style_color(imgui.Col_.button_hovered, V4(0.25, 0.55, 0.38, 1.0))
    if s.status == "running":
        if imgui.button("Pause", size):
            act.emit(Action.PAUSE)
    elif imgui.button("Resume" if s.status in ("paused", "diverged") else "Train", size):
        act.emit(Action.TRAIN)
    imgui.pop_style_color(2)
    if imgui.is_item_hovered():
        imgui.set_tooltip("train from the weights shown now (loaded, trained or fresh);\n"
                          "Re-init starts from fresh random weights")
    imgui.same_line()
    if imgui.button("Step", size):
        act.emit(Action.STEP)
    imgui.same_line()
    if imgui.button("Evaluate", size):
        act.emit(Action.EVALUATE)
    imgui.same_line()
    if imgui.button("Re-init", size):
        act.emit(Action.REINITIALISE)
    imgui.end_disabled()


def progress_lines(v) -> tuple[tuple[float, str] | None, tuple[float, str] | str]:
    """The two progress rows: (fraction, text) bars, or a line of text where there is no
    bar. Always two rows, whatever the state, so the panel never shifts."""
    s, run = v.session, v.session.run
    if v.busy:
        first = None, v.busy
    elif run is None:
        first = None, "loading the dataset..." if not v.data_error else f"dataset: {v.data_error}"
    elif s.evaluating:
        first = s.eval_progress, "evaluating on the test set"
    elif v.metrics.steps:
        epoch, frac = run.epoch_progress
        first = frac, f"epoch {epoch}/{run.recipe.epochs}   {frac * 100:.0f}%"
    else:
        e, n = run.recipe.epochs, run.steps_per_epoch
        first = None, f"a run: {e} epoch{'s' * (e != 1)} of {n:,} step{'s' * (n != 1)}"
    if run is not None and v.metrics.steps:
        second = run.step / max(run.total_steps, 1), f"run: {run.step:,} / {run.total_steps:,} steps"
    else:
        second = None, "not trained in this window yet" if run is not None else ""
    return first, second


def _progress(v) -> None:
    for frac, text in progress_lines(v):
        if frac is None:
            imgui.align_text_to_frame_padding()
            imgui.text_colored(AMBER, text) if v.busy and text == v.busy else imgui.text_disabled(text)
        else:
            imgui.progress_bar(frac, imgui.ImVec2(-1, 0), text)


def _numbers(v) -> None:
    vals, m = v.values, v.metrics
    trained = m.steps > 0
    if imgui.begin_table("numbers", 3, imgui.TableFlags_.sizing_stretch_same):
        def cell(label, value, colour=None, tip=None):
            imgui.table_next_column()
            imgui.text_disabled(label)
            imgui.same_line()
            imgui.text_colored(colour or TEXT, value)
            if tip and imgui.is_item_hovered():
                imgui.set_tooltip(tip)
        imgui.table_next_row()
        cell("loss", f"{vals['loss_avg']:.4f}" if trained and "loss_avg" in vals else "-", BLUE,
             "training loss, mean of the last 100 steps (the curve shows every step)")
        cell("batch", fmt_pct(vals.get("acc_avg")) if trained else "-", GREEN, "training accuracy, last 100 batches")
        lr = vals.get("lr")
        cell("lr", f"{lr:.4g}" if lr is not None else f"{v.session.recipe.lr:.4g}", None, "learning rate now")
        imgui.table_next_row()
        test = v.session.test_accuracy(vals)
        when = evaluated_when(v.metrics) if test is not None else ""
        cell("test", fmt_pct(test) + ("*" if when else ""), AMBER,
             "the whole test set, evaluated after every epoch (E: now)"
             + (f"; this one scored the weights{when.replace(' @', ' of')}" if when else ""))
        est = vals.get("est_acc", -1.0)
        cell("est.", f"~{est * 100:.1f}%" if trained and est >= 0 else "-", AMBER,
             f"a running estimate of the test accuracy on {ESTIMATE_ROWS} fixed test images,\n"
             f"every {ESTIMATE_EVERY} steps (the full test set is evaluated after each epoch)")
        imgui.end_table()


def batch_choices(current: int) -> tuple[list[int], int]:
    """The batch size combo's items and the selected one. A run shown from the Runs tab may
    train at a size outside the presets ('batch=7'): it is listed too, so the combo shows the
    size the run really uses."""
    sizes = sorted(set(BATCH_SIZES) | {current})
    return sizes, sizes.index(current)


def _hyper_parameters(v, act, ready: bool) -> None:
    """Applied live (a GPU buffer write), or by rebuilding the step (batch size, shift)."""
    s = v.session
    r = s.recipe
    new = {}
    imgui.push_item_width(imgui.get_content_region_avail().x * 0.55)
    changed, i = imgui.combo("optimizer", OPTIMIZERS.index(r.optimizer), list(OPTIMIZERS))
    if changed:      # with the optimizer's usual rate (Recipe.with_optimizer)
        new.update(optimizer=OPTIMIZERS[i], lr=r.with_optimizer(OPTIMIZERS[i]).lr)
    changed, lr = imgui.slider_float("learning rate", r.lr, 1e-4, 1.0, "%.4f", imgui.SliderFlags_.logarithmic)
    if changed:
        new["lr"] = max(lr, 1e-6)
        if r.schedule == "cosine" and r.min_lr > new["lr"]:
            new["min_lr"] = new["lr"]           # the cosine anneals down to its final rate, never up
    if r.optimizer == "sgd":
        changed, mom = imgui.slider_float("momentum", r.momentum, 0.0, 0.99, "%.2f")
        if changed:
            new["momentum"] = mom
        changed, nes = imgui.checkbox("nesterov momentum", r.nesterov)
        if changed:
            new["nesterov"] = nes
    changed, i = imgui.combo("schedule", SCHEDULES.index(r.schedule), list(SCHEDULES))
    if changed:
        new["schedule"] = SCHEDULES[i]
    if r.schedule == "cosine":
        changed, mlr = imgui.slider_float("final lr", r.min_lr, 0.0, max(r.lr, 1e-4), "%.5f")
        if changed:
            new["min_lr"] = min(mlr, r.lr)
    elif r.schedule in ("step", "exponential"):
        changed, g = imgui.slider_float("decay / epoch", r.gamma, 0.05, 1.0, "%.2f")
        if changed:
            new["gamma"] = g
    changed, wd = imgui.slider_float("weight decay", r.weight_decay, 0.0, 1e-2, "%.5f", imgui.SliderFlags_.logarithmic)
    if changed:
        new["weight_decay"] = wd
    changed, ep = imgui.slider_int("epochs", r.epochs, 1, 100)
    if changed:
        new["epochs"] = ep
    sizes, cur = batch_choices(r.batch_size)
    changed, i = imgui.combo("batch size", cur, [str(b) for b in sizes])
    if changed and sizes[i] != r.batch_size:
        new["batch_size"] = sizes[i]
    changed, sh = imgui.slider_int("shift augment", r.shift, 0, 4, "+-%d px")
    if changed:
        new["shift"] = sh
    imgui.pop_item_width()
    changed, each = imgui.checkbox("evaluate after every epoch", s.watch.eval_each_epoch)
    if changed:
        act.emit(Action.SET_EVAL_EACH_EPOCH, each)
    if new:
        act.emit(Action.SET_RECIPE, r.with_changes(**new))


def _checkpoints(v, act) -> None:
    """Path, then Save / Load / Pretrained. While a load runs they are disabled where they are
    (its message goes below them), so a second click on Load lands on a disabled button."""
    rects = v.ui.file_rects
    imgui.begin_disabled(bool(v.busy))
    imgui.set_next_item_width(-1)
    _, v.ui.checkpoint_path = imgui.input_text("##ckpt", v.ui.checkpoint_path)
    rects["path"] = _item_rect()
    sp = imgui.get_style().item_spacing.x
    bw = (imgui.get_content_region_avail().x - 2 * sp) / 3
    if imgui.button("Save", imgui.ImVec2(bw, 0)):
        act.emit(Action.SAVE)
    rects["save"] = _item_rect()
    imgui.same_line()
    if imgui.button("Load", imgui.ImVec2(bw, 0)):
        act.emit(Action.LOAD)
    rects["load"] = _item_rect()
    imgui.same_line()
    if imgui.button("Pretrained", imgui.ImVec2(bw, 0)):
        act.emit(Action.LOAD_PRETRAINED)
    rects["pretrained"] = _item_rect()
    imgui.end_disabled()
    if v.busy:
        imgui.text_colored(AMBER, v.busy)
    elif v.ui.file_message:
        note(v.ui.file_message)
    if v.autosave_path is not None:
        note(f"autosave on close: {v.autosave_path}")
    elif v.autosave_note:
        note(v.autosave_note)


def _item_rect() -> tuple[float, float, float, float]:
    a, b = imgui.get_item_rect_min(), imgui.get_item_rect_max()
    return a.x, a.y, b.x, b.y


def device_panel(v, act) -> None:
    dev = v.device
    info = dev.info
    imgui.text_wrapped(info.get("device", "?"))
    note(f"{info.get('backend_type', '?')} / {info.get('adapter_type', '?')}  {info.get('description', '')}"[:80])
    ms = v.frame_ms
    s = v.session
    imgui.text_wrapped(f"frame {ms:.1f} ms ({1000 / max(ms, 1e-3):.0f} fps), GPU work {s.pacer.work_s * 1000:.1f} ms")
    imgui.text_wrapped(f"steps/frame {s.steps_last_frame}, steps/s {s.pacer.steps_per_s:,.0f}")
    rb = dev.readback
    imgui.text_wrapped(f"readback {rb.total_bytes:,} B in {rb.count} reads (largest {rb.largest} B)")
    m = v.model
    engine = f", {s.run.engine} step" if s.run is not None else ""
    note(f"model {m.arch.short}, {m.num_parameters():,} parameters{engine}")
    if s.data is not None:
        d = s.data
        note(f"data {d.train.n:,} train / {d.test.n:,} test, {d.nbytes / 1e6:.1f} MB on the GPU")
