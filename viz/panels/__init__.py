"""The imgui panels. Each is a plain function `panel(v: ViewState, act: ActionQueue)`:
it draws from the view state, changes only the UI's own state (v.ui), and asks
for everything else with actions (viz/actions.py).

Numbers printed as text come from `v.values` (64 bytes read back a few times a
second) or from CPU-side mirrors (step counts, settings); every picture is a
GPU-drawn texture.
"""
from __future__ import annotations

from imgui_bundle import imgui

from .canvas import canvas_panel, layers_panel, prediction_panel
from .help import help_window
from .menu import main_menu, status_line
from .metrics import dataset_panel, metrics_panel
from .network import emit_probe
from .parameters import parameters_panel
from .training import training_panel

WINDOW_FLAGS = (imgui.WindowFlags_.no_move | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_collapse
                | imgui.WindowFlags_.no_saved_settings)

PANELS = [
    ("Training", training_panel),
    ("Canvas", canvas_panel),
    ("Prediction", prediction_panel),
    ("Layers", layers_panel),
    ("Parameters", parameters_panel),
    ("Metrics", metrics_panel),
    ("Dataset", dataset_panel),
]

__all__ = ["draw_all", "layout", "status_line", "PANELS"]

DATASET_PANEL_MIN_H = 860.0     # below this height (at UI scale 1) the dataset is a tab of Metrics
CANVAS_PANEL_MIN_H = 270.0      # the Canvas panel's height (at UI scale 1) when a deep network's Layers panel shares its column


def layout(width: float, height: float, top: float = 0.0, scale: float = 1.0, deep: bool = False) -> dict[str, tuple]:
    """Tile the window below the menu bar into three columns of panels (recomputed every
    frame, so the layout follows the window size; the middle column, with the canvas,
    takes the room a large window adds). `deep`: a network with feature maps, whose
    Layers panel gets half the middle column."""
    m = 6.0
    w, h = max(width, 300.0), max(height - top, 200.0)
    left = min(max(w * 0.24, 290.0 * scale), 430.0 * scale)
    mid = max(w * 0.36, 320.0 * scale)
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
    rects.update(column(xs[0], left, [("Training", 0.0)]))
    # A deep network's Layers panel takes half the column, but the canvas keeps the height its
    # square and tools need (in a short window a third of the column was 220 px: a 78 px canvas)
    canvas = max(0.34, min(0.5, CANVAS_PANEL_MIN_H * scale / hh))
    rects.update(column(xs[1], mid, [("Canvas", canvas), ("Prediction", 0.18), ("Layers", 0.0)] if deep
                        else [("Canvas", 0.5), ("Prediction", 0.21), ("Layers", 0.0)]))
    # A short window has no room for three panels on the right: the dataset browser becomes
    # a tab of the Metrics panel (draw_all notices it is missing from the layout).
    if h >= DATASET_PANEL_MIN_H * scale:
        rects.update(column(xs[2], right, [("Parameters", 0.40), ("Metrics", 0.34), ("Dataset", 0.0)]))
    else:
        rects.update(column(xs[2], right, [("Parameters", 0.40), ("Metrics", 0.0)]))
    return rects


def begin_panel(name: str, rect) -> bool:
    x, y, w, h = rect
    imgui.set_next_window_pos(imgui.ImVec2(x, y), imgui.Cond_.always)
    imgui.set_next_window_size(imgui.ImVec2(w, h), imgui.Cond_.always)
    expanded, _ = imgui.begin(name, None, WINDOW_FLAGS)
    return expanded


def draw_all(v, act) -> None:
    top = main_menu(v, act)
    io = imgui.get_io()
    rects = layout(io.display_size.x, io.display_size.y, top, v.ui.ui_scale, v.model_views.conv is not None)
    v.ui.dataset_tab = "Dataset" not in rects
    v.ui.probed = None
    for name, fn in PANELS:
        if name not in rects:
            continue
        if begin_panel(name, rects[name]):
            fn(v, act)
        imgui.end()
    if v.ui.show_help:
        help_window(v, act)
    emit_probe(v, act)
