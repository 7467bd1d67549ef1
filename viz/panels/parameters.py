"""The Parameters panel: the W1 receptive-field mosaic, later weight matrices and biases."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action
from ..views import MOSAIC_MODES
from .network import filters_tab
from .timeline import histograms_tab
from .widgets import V4, fit, frame_rect, hovered_uv, image, note, tab, u32


def parameters_panel(v, act) -> None:
    mv = v.model_views
    vals = v.values
    if not imgui.begin_tab_bar("params"):
        return
    if mv.mosaic is not None:
        if tab(v.ui, "W1 receptive fields"):
            imgui.set_next_item_width(imgui.get_font_size() * 11)
            changed, mode = imgui.combo("##mosaicmode", mv.mosaic_mode, list(MOSAIC_MODES))
            if changed:
                act.emit(Action.SET_MOSAIC, mode)
            imgui.same_line()
            scale = vals.get("w1_absmax")
            tile = f"one {v.canvas.image_w}x{v.canvas.image_h} tile per hidden unit"
            note(f"{tile}; colour scale +-{scale:.3f}" if scale else tile)
            avail = imgui.get_content_region_avail()
            tex = mv.mosaic.texture
            p0, p1 = image(tex, *fit(tex, avail.x, avail.y))
            uv = hovered_uv(p0, p1)
            if uv is not None:
                t = mv.mosaic.tile_at(*uv)
                if t is not None and t < mv.model.linears[0][1].out_features:
                    imgui.set_tooltip(f"hidden unit {t}")
            imgui.end_tab_item()
    has_filters = mv.conv is not None and any(block.filters is not None for block in mv.conv.blocks)
    if has_filters and tab(v.ui, "Conv filters"):      # a front of pools alone has no filters to show
        filters_tab(v, act)
        imgui.end_tab_item()
    if tab(v.ui, "Weights & biases"):
        _weights_tab(v)
        imgui.end_tab_item()
    if v.histograms is not None and tab(v.ui, "Histograms"):
        histograms_tab(v, act)
        imgui.end_tab_item()
    imgui.end_tab_bar()


def _weights_tab(v) -> None:
    mv, vals = v.model_views, v.values
    avail = imgui.get_content_region_avail()
    st = imgui.get_style()
    dl = imgui.get_window_draw_list()
    col = u32(V4(0.62, 0.64, 0.70, 0.9))
    n = max(1, len(mv.weights))
    label_w = imgui.calc_text_size("000").x + 4
    bias_h = imgui.get_font_size()
    def text_h(text):       # height of a wrapped note, as imgui will lay it out
        return imgui.calc_text_size(text, False, avail.x).y + st.item_spacing.y

    # The readout carries the scales of the first two weight matrices (w1_absmax, w2_absmax);
    # the first is the mosaic's when there is one.
    scale_of = ["w2_absmax"] if mv.mosaic is not None else ["w1_absmax", "w2_absmax"]
    captions = [f"{hm.texture.label} ({hm.tile_w} -> {hm.rows}): one row per output unit, one column per input"
                + (f"; scale +-{vals[scale_of[k]]:.3f}" if k < len(scale_of) and vals.get(scale_of[k]) else "")
                for k, hm in enumerate(mv.weights)]
    bias_captions = [f"{hm.texture.label} ({hm.tile_w} units)" for hm in mv.biases]
    # Room for the biases at the bottom: a caption and a strip each.
    bias_room = sum(text_h(t) + bias_h + st.item_spacing.y for t in bias_captions)
    for k, hm in enumerate(mv.weights):
        note(captions[k])
        later = sum(text_h(t) for t in captions[k + 1:])
        left = imgui.get_content_region_avail().y - bias_room - later
        w, h = fit(hm.texture, avail.x - label_w, max(8.0, left / (n - k) - st.item_spacing.y))
        imgui.set_cursor_pos_x(imgui.get_cursor_pos_x() + label_w)
        p0, p1 = image(hm.texture, w, h)
        frame_rect(p0, p1)
        if h / hm.rows >= imgui.get_text_line_height() * 0.8:
            for r in range(hm.rows):
                y = p0.y + (hm.gap + r * (hm.tile_h + hm.gap) + hm.tile_h / 2) / hm.texture.height * h
                dl.add_text(imgui.ImVec2(p0.x - label_w, y - imgui.get_text_line_height() / 2), col, str(r))
    for hm, text in zip(mv.biases, bias_captions):
        note(text)
        imgui.set_cursor_pos_x(imgui.get_cursor_pos_x() + label_w)
        p0, p1 = image(hm.texture, avail.x - label_w, bias_h)
        frame_rect(p0, p1)
