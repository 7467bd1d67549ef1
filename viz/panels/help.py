"""The help window: what the mouse does, every shortcut (read from the one keymap), and
this GPU's figures (frame time, steps, readback, model, data)."""
from __future__ import annotations

from imgui_bundle import imgui

from ..actions import KEYMAP, Action
from .training import device_panel
from .widgets import GREEN


def help_panel(v, act) -> None:
    imgui.text_wrapped("Paint a digit on the canvas: left button paints, right button erases. "
                       "The network reads it in the same frame. Pick an image in the dataset browser or "
                       "the mistakes gallery to load it into the canvas.")
    imgui.spacing()
    if imgui.begin_table("keys", 2, imgui.TableFlags_.sizing_fixed_fit):
        for b in KEYMAP:
            imgui.table_next_row()
            imgui.table_next_column()
            imgui.text_colored(GREEN, b.label)
            imgui.table_next_column()
            imgui.text(b.text)
        imgui.end_table()
    imgui.spacing()
    imgui.text_disabled("Every picture is drawn on the GPU from the training buffers; only a few\n"
                        "scalars (64 bytes, 4 times a second) come back for the numbers.")
    imgui.separator_text("this GPU")
    device_panel(v, act)


def help_window(v, act) -> None:
    io = imgui.get_io()
    imgui.set_next_window_pos(imgui.ImVec2(io.display_size.x * 0.5, io.display_size.y * 0.5),
                              imgui.Cond_.appearing, imgui.ImVec2(0.5, 0.5))
    imgui.set_next_window_size(imgui.ImVec2(imgui.get_font_size() * 30, 0), imgui.Cond_.appearing)
    expanded, opened = imgui.begin("Help", True, imgui.WindowFlags_.no_collapse | imgui.WindowFlags_.no_saved_settings)
    if expanded:
        help_panel(v, act)
    imgui.end()
    if opened is False:
        act.emit(Action.TOGGLE_HELP)
