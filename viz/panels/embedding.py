"""The Embedding tab: the test set's last hidden layer in 2-D (viz/embedding.py), live.

Hovering a point shows its digit (drawn on the GPU from the pick, which never leaves
it) and, once the readout brings the index back, its number and label; a click loads
it into the canvas. The painted digit is the white cross."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action
from ..embedding import CLASS_COLOURS
from .widgets import V4, caption, clicked_uv, fit, frame_rect, hovered_uv, image, u32


def embedding_panel(v, act) -> None:
    v.ui.embedding_open = True          # the app builds the embedding once it is shown
    emb = v.embedding
    if emb is None:
        imgui.text_disabled("preparing..." if v.session.run is not None else "waiting for the dataset")
        return
    state = "computing..." if emb.refreshes == 0 else ("refreshing..." if emb.refreshing else "live")
    caption(f"{emb.n:,} test digits, last hidden layer ({emb.h} units): first two principal components "
            f"({state}); + is your digit")
    line = imgui.get_text_line_height_with_spacing()
    avail = imgui.get_content_region_avail()
    p0, p1 = image(emb.texture, *fit(emb.texture, avail.x, max(40.0, avail.y - 1.5 * line)))
    frame_rect(p0, p1)
    v.ui.embedding_rect = (p0.x, p0.y, p1.x, p1.y)
    uv = hovered_uv(p0, p1)
    v.ui.embedding_cursor = None if uv is None else (uv[0] * emb.size, uv[1] * emb.size)
    index = v.values.get("hover_index")
    if uv is not None:
        imgui.begin_tooltip()
        side = imgui.get_font_size() * 5
        image(emb.digit, side, side)
        if index is not None:
            label = v.label_of("test", index) if v.label_of else None
            imgui.text(f"test #{index}: {v.classes.name(label) if v.classes else label}")
            imgui.text_disabled("click to load it into the canvas")
        imgui.end_tooltip()
    if clicked_uv(p0, p1) is not None and index is not None:
        act.emit(Action.LOAD_SAMPLE, "test", index)
    _legend(v)


def _legend(v) -> None:
    """A coloured square and the name of each class, flowing over the lines."""
    names = v.classes.names if v.classes is not None else [str(k) for k in range(10)]
    dl = imgui.get_window_draw_list()
    size = imgui.get_text_line_height()
    room = imgui.get_content_region_avail().x
    used = 0.0
    for k, name in enumerate(names):
        w = size + 4 + imgui.calc_text_size(name).x + 10
        if k and used + w <= room:
            imgui.same_line(0, 0)
        else:
            used = 0.0
        used += w
        p = imgui.get_cursor_screen_pos()
        r, g, b = CLASS_COLOURS[k % len(CLASS_COLOURS)]
        dl.add_rect_filled(imgui.ImVec2(p.x + 1, p.y + 2), imgui.ImVec2(p.x + size - 1, p.y + size - 2),
                           u32(V4(r / 255, g / 255, b / 255, 1.0)))
        imgui.dummy(imgui.ImVec2(size + 4, size))
        imgui.same_line(0, 0)
        imgui.text(name)
        imgui.same_line(0, 0)
        imgui.dummy(imgui.ImVec2(10, size))
