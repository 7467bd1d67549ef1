"""The Runs panel: up to four runs training side by side on the one GPU (compute/comparison.py).

One row per run, in its curve colour (plots.RUN_COLOURS): its steps, loss, last test
accuracy and its class for the painted digit (all from the frame's one readout, 16
bytes a run); buttons to show it in the main views, pause / resume, step and remove it;
a field to add a run in the `mnist-viz train --compare` syntax over the current
settings; and each run's first-layer weights as a small mosaic, side by side.
"""
from __future__ import annotations

from imgui_bundle import imgui

from ...compute.comparison import MAX_RUNS
from ..actions import Action
from ..plots import RUN_COLOURS
from .widgets import V4, Flow, button_width, caption, fmt_pct, frame_rect, image, status_label

MOSAIC_PX = 112.0        # the side of each run's mosaic, at UI scale 1


def colour(slot: int) -> V4:
    return V4(*RUN_COLOURS[slot], 1.0)


def runs_panel(v, act) -> None:
    s = v.session
    others = s.others
    if not s.ready:
        imgui.text_disabled("waiting for the dataset")
        return
    _table(v, act, others)
    _add(v, act, len(others) + 1)
    if others:
        _mosaics(v, others)


def _row_values(v, entry) -> dict:
    """(steps, loss, test accuracy, canvas class) of one run, from the readout."""
    vals = v.values
    ink = vals.get("ink", 0) > 0
    if entry is None:
        m = v.metrics
        pred = (vals.get("pred"), vals.get("pred_prob")) if ink else None
        return dict(steps=m.steps, loss=vals.get("loss_avg") if m.steps else None,
                    test=v.session.test_accuracy(vals), pred=pred)
    r = vals.get("runs", {}).get(id(entry.metrics))
    if r is None:
        return dict(steps=entry.metrics.steps, loss=None, test=None, pred=None)
    return dict(steps=entry.metrics.steps, loss=r["loss_avg"] if entry.metrics.steps else None,
                test=r["test_acc"] if r["test_acc"] >= 0 else None,
                pred=(r["pred"], r["pred_prob"]) if ink else None)


def _table(v, act, others) -> None:
    s = v.session
    flags = imgui.TableFlags_.row_bg | imgui.TableFlags_.sizing_stretch_prop
    if not imgui.begin_table("runs", 5, flags):
        return
    for name in ("run", "steps", "loss", "test", "digit"):
        imgui.table_setup_column(name)
    imgui.table_headers_row()
    rows = [(s.slot, s.name, None, "shown in the views")] + [(e.slot, e.name, e, e.status) for e in others]
    for slot, name, entry, status in rows:
        vals = _row_values(v, entry)
        imgui.table_next_row()
        imgui.table_next_column()
        status_label(colour(slot), short(name))
        if imgui.is_item_hovered():
            imgui.set_tooltip(f"{name}: {status}")
        imgui.table_next_column()
        imgui.text(f"{vals['steps']:,}")
        imgui.table_next_column()
        imgui.text("-" if vals["loss"] is None else f"{vals['loss']:.3f}")
        imgui.table_next_column()
        imgui.text(fmt_pct(vals["test"]))
        imgui.table_next_column()
        if vals["pred"] is None:
            imgui.text_disabled("-")
        else:
            cls, prob = vals["pred"]
            label = v.classes.name(cls) if v.classes is not None else str(cls)
            imgui.text(f"{label} {prob * 100:.0f}%")
    imgui.end_table()
    for e in others:
        _buttons(act, e)


def _buttons(act, entry) -> None:
    """One line for a run beside the main one (wrapped where the panel is narrow): its
    status in its colour, then show / pause or resume / step / remove."""
    slot = entry.slot
    flow = Flow()
    flow.next(label_width(entry.status))
    status_label(colour(slot), entry.status)
    if imgui.is_item_hovered():
        imgui.set_tooltip(entry.name)
    for label, action, tip in (("show", Action.SHOW_RUN, "show this run in the main views (and drive it from the "
                                                         "Training panel)"),
                               ("resume" if entry.paused else "pause", Action.PAUSE_RUN, None),
                               ("step", Action.STEP_RUN, "one step of this run"),
                               ("remove", Action.REMOVE_RUN, None)):
        flow.next(button_width(label))
        if imgui.small_button(f"{label}##{slot}"):
            act.emit(action, slot)
        if tip and imgui.is_item_hovered():
            imgui.set_tooltip(tip)


def label_width(text: str) -> float:
    """The width status_label takes: its dot, then the text."""
    return imgui.get_text_line_height() * 0.6 + imgui.get_style().item_spacing.x + imgui.calc_text_size(text).x


def short(name: str, most: int = 18) -> str:
    return name if len(name) <= most else name[:most - 2] + ".."


def _add(v, act, count: int) -> None:
    ui = v.ui
    imgui.begin_disabled(count >= MAX_RUNS or bool(v.busy))
    imgui.set_next_item_width(-(button_width("add") + button_width("current") + 2 * imgui.get_style().item_spacing.x))
    _, ui.run_spec = imgui.input_text("##runspec", ui.run_spec)
    if imgui.is_item_hovered():
        imgui.set_tooltip("a run as `mnist-viz train --compare` writes it, over the current settings:\n"
                          "a recipe or optimizer name and key=value, e.g. 'adam lr=0.001 batch=32 seed=2'\n"
                          "(keys: arch, hidden, optimizer, lr, batch, seed, epochs, momentum, schedule, ...)")
    imgui.same_line()
    if imgui.button("add"):
        act.emit(Action.ADD_RUN, ui.run_spec)
    imgui.same_line()
    if imgui.button("current"):
        act.emit(Action.ADD_RUN, None)
    if imgui.is_item_hovered():
        imgui.set_tooltip("add a run with the current settings and network (fresh weights)")
    imgui.end_disabled()
    if count >= MAX_RUNS:
        caption(f"{MAX_RUNS} runs at most: remove one to add another")


def _mosaics(v, others) -> None:
    """First-layer weights of every run, side by side in one row (the main run's in the
    current mosaic mode), each framed in its run's colour."""
    views = {id(o.entry): o for o in v.other_views}
    tiles = [(v.session.slot, v.session.name, v.model_views.mosaic)]
    tiles += [(e.slot, e.name, views[id(e)].mosaic if id(e) in views else None) for e in others]
    tiles = [t for t in tiles if t[2] is not None]
    if not tiles:
        return
    sp = imgui.get_style().item_spacing.x
    room = (imgui.get_content_region_avail().x - sp * (len(tiles) - 1)) / len(tiles)
    for k, (slot, name, mosaic) in enumerate(tiles):
        if k:
            imgui.same_line()
        tex = mosaic.texture
        w = min(room, MOSAIC_PX * v.ui.ui_scale * tex.width / max(tex.height, 1))
        p0, p1 = image(tex, w, w * tex.height / max(tex.width, 1))
        frame_rect(p0, p1, colour(slot))
        if imgui.is_item_hovered():
            imgui.set_tooltip(f"{name}: first-layer weights")


def legend(v) -> None:
    """The runs' names in their curve colours (Metrics > Curves), when more than one trains."""
    others = v.session.others
    if not others:
        return
    flow = Flow()
    for slot, name in [(v.session.slot, v.session.name)] + [(e.slot, e.name) for e in others]:
        flow.next(label_width(short(name, 24)))
        status_label(colour(slot), short(name, 24))
        if imgui.is_item_hovered():
            imgui.set_tooltip(name)
