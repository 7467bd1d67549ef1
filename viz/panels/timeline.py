"""The timeline under the curves (time travel) and the Histograms tab of the Parameters panel.

The timeline's slider picks a weight snapshot kept on the GPU (viz/timetravel.py); every
model view then shows the model at that step while training goes on. Its settings (a
snapshot every N steps, the ring's memory cap) are combos: a new cap is a new ring, so it
is applied once, not on every keystroke.
"""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action
from .widgets import AMBER, hovered_uv, image, note

EVERY_CHOICES = (10, 25, 50, 100, 250, 500, 1000)
CAP_CHOICES_MIB = (8, 16, 32, 64, 128, 256, 512)
HIST_EVERY_CHOICES = (1, 2, 5, 10, 25, 50, 100)


def _combo(label: str, value: int, choices: tuple, fmt: str, most: float | None = None) -> int | None:
    """A combo over `choices` (the value, if not one of them, listed too), at most `most`
    pixels wide; the new value or None."""
    options = sorted(set(choices) | {value})
    width = imgui.calc_text_size(fmt.format(max(options)) + "  ").x + imgui.get_frame_height()
    imgui.set_next_item_width(width if most is None else max(30.0, min(width, most)))
    changed, i = imgui.combo(label, options.index(value), [fmt.format(o) for o in options])
    return options[i] if changed and options[i] != value else None


def timeline_rows(v, act) -> None:
    """Two lines: the slider with 'live' and 'restore to here', then the settings."""
    tl = v.timeline
    if tl is None:
        return
    snaps = tl.snapshots
    n = len(snaps)
    sel = tl.selected
    cur = n if sel is None else next((k for k, s in enumerate(snaps) if s.serial == sel.serial), 0)
    text = "live" if sel is None else f"step {sel.run_step:,}"
    style = imgui.get_style()
    live_w = imgui.calc_text_size("live").x + 2 * style.frame_padding.x
    restore_w = imgui.calc_text_size("restore to here").x + 2 * style.frame_padding.x
    room = imgui.get_content_region_avail().x - live_w - restore_w - 2 * style.item_spacing.x
    imgui.set_next_item_width(max(60.0, room))
    changed, k = imgui.slider_int("##timeline", cur, 0, n, text.replace("%", "%%"))
    if changed and k != cur:
        act.emit(Action.TIMELINE_SELECT, -1 if k >= n else k)
    if imgui.is_item_hovered():
        imgui.set_tooltip("the weights every model view shows: a snapshot kept on the GPU, or the live weights")
    imgui.same_line()
    imgui.begin_disabled(sel is None)
    if imgui.button("live"):
        act.emit(Action.TIMELINE_SELECT, -1)
    imgui.same_line()
    if imgui.button("restore to here"):
        act.emit(Action.TIMELINE_RESTORE)
    imgui.end_disabled()
    if sel is not None and imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("continue training from these weights (fresh optimizer moments; the curves keep the past)")
    right = imgui.get_cursor_screen_pos().x + imgui.get_content_region_avail().x     # the line's right edge
    half = (imgui.get_content_region_avail().x - style.item_spacing.x) / 2
    every = _combo("##tl_every", tl.every, EVERY_CHOICES, "every {} steps", half)
    if imgui.is_item_hovered():
        imgui.set_tooltip("a snapshot of the weights every N steps")
    imgui.same_line()
    cap = _combo("##tl_cap", tl.cap_mib, CAP_CHOICES_MIB, "{} MiB", half)
    if imgui.is_item_hovered():
        imgui.set_tooltip(f"GPU memory for the snapshots (a new cap starts a new ring): {tl.memory_text}")
    if every is not None or cap is not None:
        act.emit(Action.TIMELINE_SETTINGS, every, cap)
    # The memory used, as long a form as fits (the full one is the cap's tooltip).
    room = right - imgui.get_item_rect_max().x - style.item_spacing.x
    for text in (tl.memory_text, tl.memory_short):
        if imgui.calc_text_size(text).x <= room:
            imgui.same_line()
            imgui.text_disabled(text)
            break


def histograms_tab(v, act) -> None:
    h = v.histograms
    if h is None:
        return
    every = _combo("##hist_every", h.every, HIST_EVERY_CHOICES, "a column every {} steps")
    if every is not None:
        act.emit(Action.HISTOGRAM_EVERY, every)
    imgui.same_line()
    steps = h.steps
    if steps:
        imgui.text_disabled(f"steps {steps[0]:,} to {steps[-1]:,}")
    else:
        imgui.text_colored(AMBER, "no columns yet: train to record them")
    note("left: the weights, right: their change since the previous column; x: time, y: value (0 at the line), "
         "brightness: count")
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    rows = max(1, len(h.layers))
    row_h = max(16.0, min(avail.x / 3, (avail.y - rows * line) / rows - imgui.get_style().item_spacing.y))
    w = (avail.x - imgui.get_style().item_spacing.x) / 2
    for layer in h.layers:
        imgui.text(layer.name)
        for k, ribbon in enumerate((layer.weights, layer.change)):
            if k:
                imgui.same_line()
            p0, p1 = image(ribbon.texture, w, row_h)
            uv = hovered_uv(p0, p1)
            if uv is not None and steps:
                back = ribbon.texture.width - 1 - min(int(uv[0] * ribbon.texture.width), ribbon.texture.width - 1)
                if back < len(steps):
                    what = "weights" if k == 0 else "change over the previous column"
                    imgui.set_tooltip(f"{layer.name}: {what} at step {steps[-1 - back]:,}\n"
                                      "y: from -r to +r, r the power of two above the largest |value| shown")
