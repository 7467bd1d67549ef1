"""The Metrics panel (loss and accuracy curves, confusion matrix, mistakes gallery) and
the Dataset panel (browse the training or test set, load a digit into the canvas)."""
from __future__ import annotations

import math

from imgui_bundle import imgui

from ..actions import Action
from ..plots import ACC_RANGES, grid_step
from .embedding import embedding_panel
from .timeline import timeline_rows
from .runs import legend
from .widgets import AMBER, BLUE, GREEN, V4, clicked_uv, fit, frame_rect, hovered_uv, image, tab_page, u32

AXIS = V4(0.62, 0.64, 0.70, 0.9)


def axis_ticks(kind: int, lo: float, hi: float, height_px: float, text_h: float) -> list[tuple[float, str]]:
    """(value, label) of the y-axis ticks: decades on the log loss axis; on the linear
    accuracy axis every k-th grid line (k = 1, 2, 5, 10: the first that leaves room for
    every label), so the labels are evenly spaced, each on a grid line, in whole percent."""
    if kind == 0:
        decades = [v for v in (1e-3, 1e-2, 1e-1, 1.0) if lo <= v <= hi]
        per = height_px / max(math.log10(hi / lo), 1e-9)          # pixels per decade
        k = next((k for k in (1, 2, 3) if k * per >= 1.6 * text_h), 4)
        return [(v, f"{v:g}") for i, v in enumerate(reversed(decades)) if i % k == 0][::-1]
    grid = grid_step(lo, hi)
    span = hi - lo
    step = next((grid * k for k in (1, 2, 5, 10) if grid * k / span * height_px >= 1.6 * text_h), span)
    n = int(round(span / step))
    return [(lo + i * step, f"{round((lo + i * step) * 100):d}%") for i in range(n + 1)]


def _plot_with_axes(v, plot, w: float, h: float) -> None:
    p0, p1 = image(plot.texture, w, h)
    frame_rect(p0, p1)
    dl = imgui.get_window_draw_list()
    col = u32(AXIS)
    lo, hi = plot.range
    th = imgui.get_text_line_height()
    if plot.kind == 0:
        pos = lambda x: (math.log2(x) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
    else:
        pos = lambda x: (x - lo) / (hi - lo)
    for value, label in axis_ticks(plot.kind, lo, hi, p1.y - p0.y, th):
        y = p0.y + (1 - pos(value)) * (p1.y - p0.y)
        ty = min(max(y - th * 0.5, p0.y + 1), p1.y - th - 1)
        dl.add_text(imgui.ImVec2(p0.x + 4, ty), col, label)
    text = f"step {v.metrics.steps:,}"
    dl.add_text(imgui.ImVec2(p1.x - imgui.calc_text_size(text).x - 6, p1.y - th - 2), col, text)
    shown = v.timeline.selected if v.timeline is not None else None
    end = v.metrics.steps
    if shown is not None and plot.start <= shown.run_step <= end > plot.start:
        # Time travel: the step the model views show, on the curves.
        x = p0.x + (shown.run_step - plot.start) / (end - plot.start) * (p1.x - p0.x)
        dl.add_line(imgui.ImVec2(x, p0.y), imgui.ImVec2(x, p1.y), u32(AMBER), 1.5)


def metrics_panel(v, act) -> None:
    if not imgui.begin_tab_bar("metrics"):
        return
    tab_page(v, act, "Curves", _curves)
    tab_page(v, act, "Confusion", _confusion)
    tab_page(v, act, "Mistakes", _mistakes)
    tab_page(v, act, "Embedding", embedding_panel)
    if v.ui.dataset_tab:
        tab_page(v, act, "Dataset", dataset_panel)
    imgui.end_tab_bar()


def _confusion(v, act) -> None:
    vals = v.values
    seen = vals.get("seen", 0)
    if v.metrics.evaluations and seen:
        imgui.text_wrapped(f"test accuracy {vals.get('correct', 0) / seen * 100:.2f}% "
                           f"({vals.get('wrong', 0)} of {seen:,} wrong); rows: true class, columns: predicted")
    else:
        imgui.text_disabled("no evaluation yet")
    avail = imgui.get_content_region_avail()
    p0, p1 = image(v.confusion.texture, *fit(v.confusion.texture, avail.x, avail.y, integer=True))
    uv = hovered_uv(p0, p1)
    cell = v.confusion.cell_at(*uv) if uv is not None else None
    if cell is not None and v.classes is not None:
        imgui.set_tooltip(f"true {v.classes.name(cell[0])}, predicted {v.classes.name(cell[1])}")


def _curves(v, act) -> None:
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    if v.session.others:        # runs side by side: their names in their curve colours
        legend(v)
        avail = imgui.get_content_region_avail()
    timeline_h = 2 * imgui.get_frame_height_with_spacing() if v.timeline is not None else 0.0
    h = max(30.0, (avail.y - 2 * line - timeline_h - 10) / 2)
    imgui.text_colored(BLUE, "training loss")
    imgui.same_line()
    imgui.text_disabled("(log scale; band: +-1 std)")
    _plot_with_axes(v, v.plots.loss, avail.x, h)
    imgui.text_colored(GREEN, "batch accuracy")
    imgui.same_line()
    imgui.text_colored(AMBER, "test accuracy")
    names = list(ACC_RANGES)
    cur = [k for k, r in ACC_RANGES.items() if r == v.plots.accuracy.range]
    combo_w = imgui.calc_text_size("98-100%").x + imgui.get_frame_height() + 2 * imgui.get_style().frame_padding.x
    imgui.same_line()
    room = imgui.get_content_region_avail().x
    if room >= combo_w:
        imgui.set_cursor_pos_x(imgui.get_cursor_pos_x() + room - combo_w)   # right-aligned
    else:
        imgui.new_line()
    imgui.set_next_item_width(combo_w)
    changed, i = imgui.combo("##accrange", names.index(cur[0]) if cur else 0, names)
    if changed:
        act.emit(Action.SET_ACCURACY_RANGE, names[i])
    _plot_with_axes(v, v.plots.accuracy, avail.x, max(30.0, imgui.get_content_region_avail().y - timeline_h))
    timeline_rows(v, act)


def _mistakes(v, act) -> None:
    mk, ui = v.mistakes, v.ui
    if mk is None:
        imgui.text_disabled("waiting for the dataset")
        return
    nwrong = v.values.get("wrong", 0) if v.metrics.evaluations else 0
    pages = max(1, min(mk.pages, -(-nwrong // (mk.grid.cols * mk.grid.rows))))
    ui.mistakes_page = min(ui.mistakes_page, pages - 1)
    if imgui.arrow_button("##mprev", imgui.Dir.left):
        ui.mistakes_page = max(0, ui.mistakes_page - 1)
    imgui.same_line()
    if imgui.arrow_button("##mnext", imgui.Dir.right):
        ui.mistakes_page = min(pages - 1, ui.mistakes_page + 1)
    imgui.same_line()
    imgui.text_wrapped(f"page {ui.mistakes_page + 1}/{pages}: {nwrong} misclassified (true -> predicted); "
                       "click one to load it")
    avail = imgui.get_content_region_avail()
    p0, p1 = image(mk.texture, *fit(mk.texture, avail.x, avail.y))
    uv = clicked_uv(p0, p1)
    if uv is not None:
        t = mk.grid.tile_at(*uv)
        if t is not None:
            act.emit(Action.LOAD_SAMPLE, "mistakes", ui.mistakes_page * mk.grid.page + t)


def dataset_panel(v, act) -> None:
    dv, ui = v.dataset_view, v.ui
    if dv is None:
        imgui.text_disabled("loading the dataset...")
        return
    for name in ("train", "test"):
        if imgui.radio_button(name, ui.dataset_split == name) and ui.dataset_split != name:
            ui.dataset_split, ui.dataset_page, ui.dataset_selected = name, 0, None
        imgui.same_line()
    pages = dv.pages_of(ui.dataset_split)
    ui.dataset_page = max(0, min(ui.dataset_page, pages - 1))
    if imgui.arrow_button("##dprev", imgui.Dir.left):
        ui.dataset_page = max(0, ui.dataset_page - 1)
    imgui.same_line()
    imgui.set_next_item_width(imgui.get_font_size() * 10)
    _, page = imgui.slider_int("##page", ui.dataset_page + 1, 1, pages, f"page %d/{pages}")
    ui.dataset_page = page - 1
    imgui.same_line()
    if imgui.arrow_button("##dnext", imgui.Dir.right):
        ui.dataset_page = min(pages - 1, ui.dataset_page + 1)
    avail = imgui.get_content_region_avail()
    p0, p1 = image(dv.texture, *fit(dv.texture, avail.x, avail.y))
    uv = hovered_uv(p0, p1)
    if uv is not None:
        i = dv.sample_at(ui.dataset_split, ui.dataset_page, dv.grid.tile_at(*uv))
        if i is not None:
            label = v.label_of(ui.dataset_split, i) if v.label_of else None
            imgui.set_tooltip(f"{ui.dataset_split} #{i}: {v.classes.name(label)}\nclick to load it into the canvas")
    uv = clicked_uv(p0, p1)
    if uv is not None:
        i = dv.sample_at(ui.dataset_split, ui.dataset_page, dv.grid.tile_at(*uv))
        if i is not None:
            ui.dataset_selected = i
            act.emit(Action.LOAD_SAMPLE, ui.dataset_split, i)
