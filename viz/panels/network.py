"""The network: choosing it (the Training panel's Net tab) and showing it layer by layer
(the Layers panel of a network with convolutions: every layer as PyTorch names it, with
its filters and the painted digit's feature maps, scrolling when long)."""
from __future__ import annotations

import math

from imgui_bundle import imgui

from ...compute.arch import ArchError, Conv2d, MaxPool2d, parse
from ..actions import Action
from ..files import SHIPPED
from .widgets import (AMBER, DIM, GREEN, RED, TEXT, Flow, caption, checkbox_width, fit, frame_rect, hovered_uv,
                      image, note)

MAX_ZOOM = 4.0            # screen pixels per texture pixel, at most (a map of 7 x 7 must not fill the panel)
MIN_SIDE_ZOOM = 2.0       # filters beside their maps only while each weight is at least this many pixels


# -- choosing -----------------------------------------------------------------------------------------------
def check_architecture(text: str, data_shape) -> tuple[bool, str]:
    """(ok, one line) for the architecture field: what it builds, or the parser's error naming
    the offending layer (compute.arch.ArchError), or why it does not fit the data."""
    h, w, classes = data_shape
    try:
        arch = parse(text, (h, w))
    except ArchError as e:
        return False, f"error: {e}"
    if arch.classes != classes:
        last = len(arch.layers) - 1
        return False, (f"error: layer {last} {arch.layers[last]} gives {arch.classes} class scores, "
                       f"the dataset has {classes} classes")
    problem = arch.misfit(h, w, classes)
    if problem:
        return False, f"error: {problem}"
    params = sum(math.prod(s) for s in arch.param_shapes().values())
    maps = [_shape(s) for layer, s in zip(arch.layers, arch.shapes) if isinstance(layer, (Conv2d, MaxPool2d))]
    return True, (f"{len(arch.layers)} layers, {params:,} parameters; "
                  + (f"feature maps {' -> '.join(maps)}; " if maps else "") + f"{arch.classes} classes")


def data_shape(v) -> tuple[int, int, int]:
    """Height, width and classes of the images the window's networks read."""
    return v.canvas.image_h, v.canvas.image_w, len(v.classes.names)


def network_tab(v, act) -> None:
    """Shipped MLP / shipped CNN / an architecture string; Fresh builds it with random He init,
    Shipped weights loads the trained file. The field is parsed as it is typed."""
    ui = v.ui
    choices = list(SHIPPED) + ["custom"]
    labels = [SHIPPED[k].label for k in SHIPPED] + ["architecture string"]
    flow = Flow()
    for key, label in zip(choices, labels):
        flow.next(checkbox_width(label))          # a radio button is as wide as a checkbox
        if imgui.radio_button(label, ui.network_choice == key) and ui.network_choice != key:
            ui.network_choice = key
            if key in SHIPPED:
                ui.arch_text = SHIPPED[key].architecture
    imgui.set_next_item_width(-1)
    changed, text = imgui.input_text("##arch", ui.arch_text)
    if changed:
        ui.arch_text = text
        shipped = next((k for k, s in SHIPPED.items() if s.architecture == ui.arch_text.strip()), None)
        ui.network_choice = shipped or "custom"
    if imgui.is_item_hovered():
        imgui.set_tooltip("nn.Sequential layers as PyTorch writes them, e.g.\n"
                          "Conv2d(1,8,5,padding=2),ReLU(),MaxPool2d(2),Flatten(),Linear(1568,10)\n"
                          "(Linear, Conv2d, MaxPool2d, Flatten, ReLU, Dropout)")
    if ui.arch_checked[:1] != (ui.arch_text,):
        ui.arch_checked = (ui.arch_text, *check_architecture(ui.arch_text, data_shape(v)))
    _, ok, line = ui.arch_checked
    imgui.push_style_color(imgui.Col_.text, GREEN if ok else RED)
    imgui.text_wrapped(line)
    imgui.pop_style_color()
    sp = imgui.get_style().item_spacing.x
    bw = (imgui.get_content_region_avail().x - sp) / 2
    imgui.begin_disabled(bool(v.busy) or not ok)
    if imgui.button("Fresh (He init)", imgui.ImVec2(bw, 0)):
        act.emit(Action.NEW_NETWORK, ui.arch_text)
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("a new network of this architecture from random weights (He init)")
    imgui.same_line()
    imgui.begin_disabled(bool(v.busy) or ui.network_choice not in SHIPPED)
    if imgui.button("Shipped weights", imgui.ImVec2(bw, 0)):
        act.emit(Action.LOAD_SHIPPED, ui.network_choice)
    imgui.end_disabled()
    if v.busy:
        imgui.text_colored(AMBER, v.busy)
    elif ui.network_message:
        imgui.push_style_color(imgui.Col_.text, RED if ui.network_message.startswith("error") else DIM)
        imgui.text_wrapped(ui.network_message)
        imgui.pop_style_color()
    note(f"running: {v.model.arch.short}")


# -- showing ---------------------------------------------------------------------------------------------------
def _shape(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _value_tooltip(probe, text: str) -> None:
    imgui.begin_tooltip()
    imgui.text(text)
    image(probe.texture, probe.texture.width, probe.texture.height)
    imgui.end_tooltip()


def network_layers(v, act) -> None:
    """Every layer of the network, each block (a layer and the ReLU fused into it) with its
    filters (one row per output channel, the input channels side by side) and its feature
    maps for the painted digit; hovering names the layer, channel and value."""
    mv = v.model_views
    conv = mv.conv
    caption("filters: one row per output channel, input channels side by side (blue < 0 < orange); "
            "maps: the painted digit after the layer")
    imgui.begin_child("network layers", imgui.ImVec2(0, 0))
    room = imgui.get_content_region_avail().x
    tall = max(60.0, imgui.get_content_region_avail().y * 0.9)   # no image taller than the visible list
    sp = imgui.get_style().item_spacing.x
    probed = None                    # (block, what, element) under the mouse
    rects = v.ui.layer_rects         # where each image is (tests point the mouse with it)
    rects.clear()
    imgui.text_colored(TEXT, f"input  {_shape(v.model.arch.input_shape)}")
    image(mv.input.texture, *fit(mv.input.texture, room, 28 * 2))
    hidden = {id(t): hm for t, hm in zip(mv.hidden_outputs, mv.hidden)}
    for bi, block in enumerate(conv.blocks):
        imgui.separator()
        imgui.push_style_color(imgui.Col_.text, TEXT)
        imgui.text_wrapped(f"{block.title}  -> {_shape(block.shape)}")
        imgui.pop_style_color()
        if block.passthrough:
            caption("passes its input through at inference (the output above)")
            continue
        f, m = block.filters, block.maps
        if f is not None and m is not None:
            ft, mt = f.texture, m.texture
            h = min((room - sp) / (ft.width / ft.height + mt.width / mt.height), mt.height * MAX_ZOOM, tall)
            if h / ft.height >= MIN_SIDE_ZOOM:
                hit = _filters(conv, bi, ft.width * h / ft.height, h, rects)
                imgui.same_line()
                probed = _maps(conv, bi, mt.width * h / mt.height, h, rects) or hit or probed
                continue
        if m is not None:
            probed = _maps(conv, bi, *fit(m.texture, room, min(m.texture.height * MAX_ZOOM, tall)), rects) or probed
        if f is not None:
            ft = f.texture
            probed = _filters(conv, bi, *fit(ft, room, min(ft.height * MAX_ZOOM, tall)), rects) or probed
        hm = hidden.get(id(block.output))
        if hm is not None:
            p0, p1 = image(hm.texture, *fit(hm.texture, room, 80))
            uv = hovered_uv(p0, p1)
            t = hm.tile_at(*uv) if uv is not None else None
            if t is not None and t < block.output.size:
                _value_tooltip(conv.probe, f"after {block.title}\nunit {t}")
                probed = (bi, "maps", block.output.offset // 4 + t)
        elif bi == len(conv.blocks) - 1:
            caption("logits (before softmax)")
            image(mv.logits.texture, *fit(mv.logits.texture, room, 90))
    imgui.end_child()
    v.ui.probed = probed or v.ui.probed


def emit_probe(v, act) -> None:
    """After every panel: the value under the mouse while a filter or map is hovered (ui.probed,
    set by the panel that drew it), else none (the handler writes the GPU only on a change)."""
    conv = v.model_views.conv
    if conv is None:
        return
    if v.ui.probed is not None:
        act.emit(Action.PROBE, *v.ui.probed)
    elif conv.probe.active is not None:
        act.emit(Action.PROBE, None)


def filters_tab(v, act) -> None:
    """The Parameters panel's view of a CNN's filters: every Conv2d's bank, larger, scrolling."""
    conv = v.model_views.conv
    caption("one row per output channel, the input channels side by side (one input channel: a grid); "
            "colour scale: the layer's max |w|")
    imgui.begin_child("filters", imgui.ImVec2(0, 0))
    room = imgui.get_content_region_avail().x
    for bi, block in enumerate(conv.blocks):
        if block.filters is None:
            continue
        i, layer = block.layers[0]
        imgui.push_style_color(imgui.Col_.text, TEXT)
        imgui.text_wrapped(f"{i} {layer}: {layer.out_channels} x {layer.in_channels} filters")
        imgui.pop_style_color()
        ft = block.filters.texture
        hit = _filters(conv, bi, *fit(ft, room, max(ft.height * 6.0, 60.0)), {})
        v.ui.probed = hit or v.ui.probed
    imgui.end_child()


def _filters(conv, bi: int, w: float, h: float, rects: dict):
    block = conv.blocks[bi]
    hit = _hovered_image(block.filters.texture, block.filter_at, w, h, rects, (bi, "filters"))
    if hit is None:
        return None
    o, c, y, x, element = hit
    i = block.layers[0][0]
    _value_tooltip(conv.probe, f"{i}.weight[{o}, {c}, {y}, {x}]\noutput channel {o}, input channel {c}")
    return bi, "filters", element


def _maps(conv, bi: int, w: float, h: float, rects: dict):
    block = conv.blocks[bi]
    hit = _hovered_image(block.maps.texture, block.map_at, w, h, rects, (bi, "maps"))
    if hit is None:
        return None
    c, y, x, element = hit
    _value_tooltip(conv.probe, f"after {block.title}\nchannel {c}, row {y}, column {x}")
    return bi, "maps", element


def _hovered_image(texture, look_up, w: float, h: float, rects: dict, key):
    """`texture` drawn framed at w x h (its screen rectangle kept as rects[key]); what
    look_up(u, v) finds under the mouse, or None when the mouse is elsewhere."""
    p0, p1 = image(texture, w, h)
    frame_rect(p0, p1)
    rects[key] = (p0.x, p0.y, p1.x, p1.y)
    uv = hovered_uv(p0, p1)
    return look_up(*uv) if uv is not None else None
