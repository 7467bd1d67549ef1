"""Small imgui helpers shared by the panels: colours, texture images, clicks, captions."""
from __future__ import annotations

import math

from imgui_bundle import imgui

V4 = imgui.ImVec4
GREEN = V4(0.36, 0.82, 0.52, 1.0)
RED = V4(0.95, 0.36, 0.33, 1.0)
AMBER = V4(1.0, 0.72, 0.28, 1.0)
BLUE = V4(0.40, 0.66, 1.0, 1.0)
DIM = V4(0.55, 0.57, 0.63, 1.0)
TEXT = V4(0.88, 0.89, 0.92, 1.0)
FRAME = V4(0.24, 0.26, 0.32, 1.0)
STATUS_COLOURS = {"running": GREEN, "paused": AMBER, "idle": DIM, "finished": BLUE, "diverged": RED}


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


def tab(ui, label: str) -> bool:
    """A tab item; ui.select_tabs can ask for it to be selected (keyboard, tests)."""
    flags = imgui.TabItemFlags_.set_selected if label in ui.select_tabs else 0
    ui.select_tabs.discard(label)
    opened, _ = imgui.begin_tab_item(label, None, flags)
    return opened


def tab_page(v, act, label: str, draw, *args) -> bool:
    """A tab whose page is draw(v, act, *args): drawn, and the tab item ended, only while the
    tab is selected (True then). Not selected, the tab is the last item (for its tooltip)."""
    if not tab(v.ui, label):
        return False
    draw(v, act, *args)
    imgui.end_tab_item()
    return True


def note(text: str) -> None:
    """Dim, wrapped text (messages)."""
    imgui.push_style_color(imgui.Col_.text, DIM)
    imgui.text_wrapped(text)
    imgui.pop_style_color()


def caption(text: str, width: float | None = None) -> None:
    """Dim text, wrapped at `width` pixels from here (None: at the panel's edge)."""
    if width is not None:
        imgui.push_text_wrap_pos(imgui.get_cursor_pos_x() + width)
    imgui.push_style_color(imgui.Col_.text, imgui.get_style().color_(imgui.Col_.text_disabled))
    imgui.text_wrapped(text)
    imgui.pop_style_color()
    if width is not None:
        imgui.pop_text_wrap_pos()


def heading(text: str) -> None:
    imgui.separator_text(text)


def u32(colour: V4) -> int:
    return imgui.color_convert_float4_to_u32(colour)


def fmt_pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def frame_rect(p0, p1, colour=FRAME) -> None:
    """A thin frame around the last image, so dark views have visible bounds."""
    imgui.get_window_draw_list().add_rect(imgui.ImVec2(p0.x - 1, p0.y - 1), imgui.ImVec2(p1.x + 1, p1.y + 1),
                                          u32(colour), 3.0, 1.0)


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


# -- flowing rows: items left to right, wrapping before one that would not fit --------------------

def button_width(label: str) -> float:
    return imgui.calc_text_size(label.split("##")[0]).x + 2 * imgui.get_style().frame_padding.x


def checkbox_width(label: str) -> float:
    st = imgui.get_style()
    return imgui.get_frame_height() + st.item_inner_spacing.x + imgui.calc_text_size(label.split("##")[0]).x


def labelled_width(field: float, label: str) -> float:
    """A slider / combo of width `field` with its label to the right."""
    return field + imgui.get_style().item_inner_spacing.x + imgui.calc_text_size(label.split("##")[0]).x


def flow_rows(widths: list[float], room: float) -> int:
    """Rows the items take in `room` pixels (as `Flow` lays them out)."""
    sp = imgui.get_style().item_spacing.x
    rows, x = 1, -sp
    for w in widths:
        if x + sp + w > room and x > 0:
            rows, x = rows + 1, w
        else:
            x += sp + w
    return rows


class Flow:
    """Place items in rows: call `next(width)` before each; it wraps to a new row when the
    item would cross the right edge of the content region (nothing is clipped)."""

    def __init__(self):
        self.left = imgui.get_cursor_pos_x()
        self.right = self.left + imgui.get_content_region_avail().x
        self.first = True

    def next(self, width: float) -> None:
        if self.first:
            self.first = False
            return
        imgui.same_line()
        if imgui.get_cursor_pos_x() + width > self.right:
            imgui.new_line()


def evaluated_when(metrics) -> str:
    """' @ step N' when the test accuracy shown scores weights older than the current ones (an
    evaluation of the start's random weights read as the trained network's: a first user's trial)."""
    at = metrics.evaluated_at
    return f" @ step {at:,}" if at is not None and at < metrics.steps else ""
