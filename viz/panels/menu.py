"""The main menu bar: File / Training / View / Help, and the run's status on the right."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action, shortcut
from ..plots import ACC_RANGES
from ..views import MOSAIC_MODES
from .widgets import DIM, STATUS_COLOURS, evaluated_when, status_label


def main_menu(v, act) -> float:
    """Returns the bar's height."""
    if not imgui.begin_main_menu_bar():
        return 0.0
    s = v.session
    ready = s.ready and not v.busy
    if imgui.begin_menu("File"):
        if imgui.menu_item_simple("Save checkpoint", shortcut(Action.SAVE)):
            act.emit(Action.SAVE)
        if imgui.menu_item_simple("Load checkpoint", enabled=not v.busy):
            act.emit(Action.LOAD)
        if imgui.menu_item_simple("Load the pretrained model", enabled=not v.busy):
            act.emit(Action.LOAD_PRETRAINED)
        if imgui.menu_item_simple("Reopen last autosave", enabled=bool(v.autosaves) and not v.busy):
            act.emit(Action.REOPEN_AUTOSAVE)
        imgui.separator()
        if imgui.menu_item_simple("Quit", shortcut(Action.QUIT)):
            act.emit(Action.QUIT)
        imgui.end_menu()
    if imgui.begin_menu("Training"):
        if imgui.menu_item_simple("Train from the current weights", enabled=ready):
            act.emit(Action.TRAIN)
        if imgui.menu_item_simple("Pause / resume", shortcut(Action.TOGGLE), enabled=ready):
            act.emit(Action.TOGGLE)
        if imgui.menu_item_simple("One step", shortcut(Action.STEP), enabled=ready):
            act.emit(Action.STEP)
        if imgui.menu_item_simple("Re-initialise weights", shortcut(Action.REINITIALISE), enabled=ready):
            act.emit(Action.REINITIALISE)
        if imgui.menu_item_simple("Evaluate now", shortcut(Action.EVALUATE), enabled=ready and not s.evaluating):
            act.emit(Action.EVALUATE)
        imgui.end_menu()
    if imgui.begin_menu("View"):
        mv = v.model_views
        for i, name in enumerate(MOSAIC_MODES):
            if mv.mosaics and imgui.menu_item_simple(f"W1: {name}", shortcut(Action.CYCLE_MOSAIC) if i == 0 else None,
                                                     mv.mosaic_mode == i):
                act.emit(Action.SET_MOSAIC, i)
        imgui.separator()
        for name in ACC_RANGES:
            if imgui.menu_item_simple(f"accuracy axis {name}", None, ACC_RANGES[name] == v.plots.accuracy.range):
                act.emit(Action.SET_ACCURACY_RANGE, name)
        imgui.separator()
        changed, on = imgui.menu_item("MNIST-normalise the canvas", "", v.canvas.normalise)
        if changed:
            act.emit(Action.SET_NORMALISE, on)
        changed, show = imgui.menu_item("Show bounding box / centre of mass", "", v.ui.show_box)
        if changed:
            act.emit(Action.SET_SHOW_BOX, show)
        imgui.separator()
        for scale in (0.85, 1.0, 1.25, 1.5, 2.0):
            if imgui.menu_item_simple(f"UI scale {scale:g}x", None, abs(v.ui.ui_scale - scale) < 1e-3):
                act.emit(Action.UI_SCALE, scale)
        imgui.end_menu()
    if imgui.begin_menu("Help"):
        if imgui.menu_item_simple("Keyboard and mouse", shortcut(Action.TOGGLE_HELP), v.ui.show_help):
            act.emit(Action.TOGGLE_HELP)
        imgui.end_menu()
    text = status_line(v)
    width = imgui.calc_text_size(text).x + 40
    imgui.same_line(max(imgui.get_cursor_pos_x() + 20, imgui.get_window_width() - width))
    status_label(STATUS_COLOURS.get(s.status, DIM), text)
    h = imgui.get_window_height()
    imgui.end_main_menu_bar()
    return h


def status_line(v) -> str:
    s, m, vals = v.session, v.metrics, v.values
    parts = [s.status + (" (evaluating)" if s.evaluating else "")]
    if v.busy:
        parts = [v.busy]
    run = s.run
    if run is not None and m.steps:
        parts.append(f"epoch {run.epoch_progress[0]}/{run.recipe.epochs}")
        parts.append(f"step {m.steps:,}")
    shown = v.timeline.selected if v.timeline is not None else None
    if shown is not None:
        parts.append(f"views: step {shown.run_step:,}")      # time travel: the views show a snapshot
    if m.steps and "loss_avg" in vals:
        parts.append(f"mean loss {vals['loss_avg']:.4f}")       # of the last 100 steps (the panel says)
    test = s.test_accuracy(vals)
    if test is not None:
        parts.append(f"test {test * 100:.2f}%{evaluated_when(m)}")
    if s.status == "running":
        parts.append(f"{s.pacer.steps_per_s:,.0f} steps/s")
    parts.append(f"{1000 / max(v.frame_ms, 1e-3):.0f} fps")
    return "   ".join(parts)
