"""The Canvas panel (paint, the network's input, the prediction badge), the Prediction
panel (class probabilities) and the Layers panel (activations and logits)."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action
from .widgets import FRAME, GREEN, V4, caption, fit, frame_rect, hovered_uv, image, u32


def canvas_panel(v, act) -> None:
    c = v.canvas
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    tools_h = imgui.get_frame_height_with_spacing() + 6
    side = max(60.0, min(avail.x * 0.6, avail.y - tools_h - line))
    cw, ch = fit(v.canvas_view.texture, side, side)
    imgui.begin_group()
    caption("canvas: left button paints, right erases")
    p0, p1 = image(v.canvas_view.texture, cw, ch)
    v.ui.canvas_rect = (p0.x, p0.y, p1.x, p1.y)
    v.ui.canvas_hovered = imgui.is_item_hovered()
    frame_rect(p0, p1, V4(0.36, 0.82, 0.52, 0.9) if v.ui.canvas_hovered else FRAME)
    if v.ui.canvas_hovered:  # brush outline
        mp = imgui.get_io().mouse_pos
        r = c.brush * cw / c.width
        imgui.get_window_draw_list().add_circle(mp, r, u32(V4(0.36, 0.82, 0.52, 0.8)), 0, 1.5)
    imgui.end_group()
    imgui.same_line(0, 14)
    imgui.begin_group()
    caption("network input")
    small = max(28.0, min(avail.x - side - 24, side * 0.55))
    mv = v.model_views
    q0, q1 = image(mv.input.texture, *fit(mv.input.texture, small, small))
    frame_rect(q0, q1)
    imgui.dummy(imgui.ImVec2(1, 6))
    caption("prediction")
    if mv.badge is not None:
        image(mv.badge.texture, *fit(mv.badge.texture, small, small * 0.6))
    if c.loaded is not None:
        split, k = c.loaded
        caption(f"loaded: {split} #{k}" if split != "mistakes" else f"loaded: mistake #{k + 1}")
    imgui.end_group()
    if imgui.button("Clear"):
        act.emit(Action.CLEAR)
    imgui.same_line()
    imgui.set_next_item_width(110)
    changed, b = imgui.slider_float("brush", c.brush, 1.5, 12.0, "%.1f px")
    if changed:
        act.emit(Action.SET_BRUSH, b)
    imgui.same_line()
    changed, on = imgui.checkbox("MNIST-normalise", c.normalise)
    if changed:
        act.emit(Action.SET_NORMALISE, on)
    if imgui.is_item_hovered():
        imgui.set_tooltip("fit the ink's bounding box into 20 x 20 and put its centre of mass\n"
                          "at the centre, as MNIST digits were made (on the GPU)")
    imgui.same_line()
    changed, show = imgui.checkbox("box", v.ui.show_box)
    if changed:
        act.emit(Action.SET_SHOW_BOX, show)


def prediction_panel(v, act) -> None:
    tex = v.model_views.probs.texture
    avail = imgui.get_content_region_avail()
    w, h = fit(tex, avail.x, avail.y - imgui.get_text_line_height_with_spacing())
    caption("class probabilities (softmax), winner highlighted")
    image(tex, w, h)


def layers_panel(v, act) -> None:
    mv = v.model_views
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
