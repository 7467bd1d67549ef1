"""The Canvas panel (paint, the network's input, the prediction badge), the Prediction
panel (class probabilities) and the Layers panel (activations and logits)."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action
from .saliency import saliency_controls, saliency_overlay
from .network import network_layers
from .widgets import (DIM, FRAME, TEXT, V4, Flow, button_width, caption, checkbox_width, fit, flow_rows, frame_rect,
                      hovered_uv, image, labelled_width, u32)



def brush_field() -> float:
    """Width of the brush slider (the label is beside it), in font units (it follows the UI scale)."""
    return imgui.get_font_size() * 6.5


def canvas_blank(v) -> bool:
    """No ink on the canvas: known on the CPU after a clear, a load or a stroke of ink; after
    an erase only the GPU knows (the readout's ink, if it is of this canvas)."""
    c = v.canvas
    if c.blank is not None:
        return c.blank
    return v.canvas_current and v.values.get("ink", 1.0) < 0.5


def _tools(v):
    """The tools row: (label, width) of each item, in order (the flow needs the widths first)."""
    return [("Clear", button_width("Clear")), ("brush", labelled_width(brush_field(), "brush")),
            ("normalise", checkbox_width("MNIST-normalise")), ("box", checkbox_width("box"))]


CANVAS_CAPTION = "canvas: left button paints, right erases"


def canvas_panel(v, act) -> None:
    c = v.canvas
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    tools = _tools(v)
    tools_h = (flow_rows([w for _, w in tools], avail.x) + 1) * imgui.get_frame_height_with_spacing() + 4  # + saliency
    side = max(60.0, min(avail.x * 0.62, avail.y - tools_h - line))
    # The caption wraps at the canvas's width: in a short panel (a CNN's layout) it takes two
    # lines, and the square gives them room instead of pushing the tools out of the panel
    spacing = line - imgui.get_text_line_height()
    for _ in range(2):
        text_h = imgui.calc_text_size(CANVAS_CAPTION, False, fit(v.canvas_view.texture, side, side)[0]).y + spacing
        side = max(60.0, min(avail.x * 0.62, avail.y - tools_h - text_h))
    cw, ch = fit(v.canvas_view.texture, side, side)
    imgui.begin_group()
    caption(CANVAS_CAPTION, cw)
    p0, p1 = image(v.canvas_view.texture, cw, ch)
    v.ui.canvas_rect = (p0.x, p0.y, p1.x, p1.y)
    v.ui.canvas_hovered = imgui.is_item_hovered()
    saliency_overlay(v, p0, p1)
    frame_rect(p0, p1, V4(0.36, 0.82, 0.52, 0.9) if v.ui.canvas_hovered else FRAME)
    dl = imgui.get_window_draw_list()
    if canvas_blank(v):
        hint = "draw a digit here" if v.classes is None or v.classes.mnist_like else "paint here"
        size = imgui.calc_text_size(hint)
        dl.add_text(imgui.ImVec2((p0.x + p1.x - size.x) / 2, (p0.y + p1.y - size.y) / 2), u32(DIM), hint)
    if v.ui.canvas_hovered:  # brush outline
        mp = imgui.get_io().mouse_pos
        r = c.brush * cw / c.width
        dl.add_circle(mp, r, u32(V4(0.36, 0.82, 0.52, 0.8)), 0, 1.5)
    imgui.end_group()
    imgui.same_line(0, imgui.get_font_size())
    imgui.begin_group()
    room = max(40.0, imgui.get_content_region_avail().x)
    imgui.push_text_wrap_pos(imgui.get_cursor_pos_x() + room)
    caption("network input")
    small = max(28.0, min(room, side * 0.5))
    mv = v.model_views
    q0, q1 = image(mv.input.texture, *fit(mv.input.texture, small, small))
    frame_rect(q0, q1)
    imgui.dummy(imgui.ImVec2(1, 4))
    caption("prediction")
    if mv.badge is not None:
        image(mv.badge.texture, *fit(mv.badge.texture, small, small * 0.6))
    for text, colour in sample_lines(v):
        imgui.push_style_color(imgui.Col_.text, colour)
        imgui.text_wrapped(text)
        imgui.pop_style_color()
    imgui.pop_text_wrap_pos()
    imgui.end_group()
    flow = Flow()
    flow.next(tools[0][1])
    if imgui.button("Clear"):
        act.emit(Action.CLEAR)
    flow.next(tools[1][1])
    imgui.set_next_item_width(brush_field())
    changed, b = imgui.slider_float("brush", c.brush, 1.5, 12.0, "%.1f px")
    if changed:
        act.emit(Action.SET_BRUSH, b)
    flow.next(tools[2][1])
    changed, on = imgui.checkbox("MNIST-normalise", c.normalise)
    if changed:
        act.emit(Action.SET_NORMALISE, on)
    if imgui.is_item_hovered():
        imgui.set_tooltip("fit the ink's bounding box into 20 x 20 and put its centre of mass\n"
                          "at the centre, as MNIST digits were made (on the GPU); a loaded sample\n"
                          "is fed as it is until you paint on it")
    flow.next(tools[3][1])
    changed, show = imgui.checkbox("box", v.ui.show_box)
    if changed:
        act.emit(Action.SET_SHOW_BOX, show)
    if imgui.is_item_hovered():
        imgui.set_tooltip("show the ink's bounding box and centre of mass")
    saliency_controls(v, act)


def sample_lines(v) -> list[tuple[str, V4]]:
    """What the canvas holds, when it is a dataset sample: 'test #k: label L' (L from the
    host labels for the dataset, from the readout for a mistake, whose index stays on the
    GPU), and the prediction as the network makes it."""
    c, vals, classes = v.canvas, v.values, v.classes
    if c.loaded is None:
        return []
    split, k = c.loaded
    current = v.canvas_current
    out = []
    if split == "mistakes":
        if current and vals.get("sample_index") is not None:
            out.append((f"test #{vals['sample_index']}: label {classes.name(vals['sample_label'])}", TEXT))
        else:
            out.append((f"mistake {k + 1} (reading...)", DIM))
    else:
        label = v.label_of(split, k) if v.label_of else None
        out.append((f"{split} #{k}: label {classes.name(label)}", TEXT))
    if current and "pred" in vals:
        out.append((f"predicted {classes.name(vals['pred'])} ({vals['pred_prob'] * 100:.0f}%)", DIM))
    return out


def prediction_panel(v, act) -> None:
    tex = v.model_views.probs.texture
    caption("class probabilities (softmax), winner highlighted" if not canvas_blank(v)
            else "class probabilities: nothing to predict on an empty canvas")
    avail = imgui.get_content_region_avail()       # below the caption, however many lines it wrapped to
    w, h = fit(tex, avail.x, avail.y)
    p0, p1 = image(tex, w, h)
    _class_tooltip(v, p0, p1)


def _class_tooltip(v, p0, p1) -> None:
    """The full class name under the mouse (bar labels are cut to their band)."""
    uv = hovered_uv(p0, p1)
    if uv is not None and v.classes is not None:
        k = min(int(uv[0] * len(v.classes.names)), len(v.classes.names) - 1)
        imgui.set_tooltip(f"class {k}: {v.classes.names[k]}")


def layers_panel(v, act) -> None:
    mv = v.model_views
    if mv.conv is not None:          # a CNN: every layer with its filters and feature maps
        network_layers(v, act)
        return
    avail = imgui.get_content_region_avail()
    line = imgui.get_text_line_height_with_spacing()
    n_hidden = len(mv.hidden)
    # Width units: the input image 1, each hidden grid (about 2:1) 2.
    col_w = (avail.x - imgui.get_style().item_spacing.x * (n_hidden + 1)) / (1 + 2 * n_hidden)
    img_h = max(30.0, avail.y * 0.5 - line)
    imgui.begin_group()
    caption("input", col_w)
    image(mv.input.texture, *fit(mv.input.texture, col_w, img_h))
    imgui.end_group()
    for k, hm in enumerate(mv.hidden):
        imgui.same_line()
        imgui.begin_group()
        caption(f"hidden {k + 1} (ReLU)", col_w * 2)
        p0, p1 = image(hm.texture, *fit(hm.texture, col_w * 2, img_h))
        uv = hovered_uv(p0, p1)
        if uv is not None:
            t = hm.tile_at(*uv)
            if t is not None and t < mv.hidden_outputs[k].size:
                imgui.set_tooltip(f"unit {t}")
        imgui.end_group()
    caption("logits (output layer, before softmax)")
    rest = imgui.get_content_region_avail()
    p0, p1 = image(mv.logits.texture, *fit(mv.logits.texture, rest.x, max(20.0, rest.y)))
    _class_tooltip(v, p0, p1)
