"""Saliency on the canvas (viz/saliency.py): the overlay, drawn over the canvas image,
and its controls (which class it explains, and the push toward that class)."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import Action


def saliency_overlay(v, p0, p1) -> None:
    """The signed gradient over the canvas image at p0..p1 (blended by imgui)."""
    s = v.saliency
    if v.ui.show_saliency and s is not None and s.texture.ref is not None:
        imgui.get_window_draw_list().add_image(s.texture.ref, p0, p1)


def saliency_controls(v, act) -> None:
    s = v.saliency
    if s is None:
        return
    changed, on = imgui.checkbox("saliency", v.ui.show_saliency)
    if changed:
        act.emit(Action.SET_SALIENCY, on)
    if imgui.is_item_hovered():
        imgui.set_tooltip("the gradient of the class's score (its logit) with respect to the input:\n"
                          "red pixels raise it, blue ones lower it")
    names = list(v.classes.names) if v.classes is not None else [str(k) for k in range(10)]
    items = ["predicted"] + [f"class {n}" for n in names]
    imgui.same_line()
    imgui.set_next_item_width(imgui.get_font_size() * 7)
    changed, i = imgui.combo("##salclass", 0 if s.target is None else s.target + 1, items)
    if changed:
        act.emit(Action.SET_SALIENCY_CLASS, None if i == 0 else i - 1)
    imgui.same_line()
    imgui.begin_disabled(s.target is None)
    label = "pushing..." if s.pushing is not None else "push toward it"
    if imgui.button(label) and s.target is not None:
        act.emit(Action.PUSH_TOWARD, s.target)
    imgui.end_disabled()
    if imgui.is_item_hovered(imgui.HoveredFlags_.allow_when_disabled):
        imgui.set_tooltip("gradient ascent on the network's input toward the chosen class:\n"
                          "what the network thinks it looks like (paint or clear to undo)")
