"""rendercanvas events -> Dear ImGui's input queue, through imgui's public io calls.

rendercanvas names keys as the browser does (KeyboardEvent.key: "ArrowUp", "a",
" "), pointer buttons 1 left / 2 right / 3 middle, and wheel deltas in pixels
(about 100 per notch, positive dy = down). imgui wants its own key enum, buttons
0 / 1 / 2, and wheel notches with positive y = up.

Handlers run at order -99, after the app's pointer handler (-100, which starts
canvas strokes and stops their propagation) and before the app's key handler (0):
when imgui wants the mouse or keyboard (a widget is hovered or a text field is
active), the event stops here.
"""
from __future__ import annotations

import string

from imgui_bundle import imgui

ORDER = -99
WHEEL_PIXELS_PER_NOTCH = 100.0
K = imgui.Key

NAMED_KEYS = {
    "ArrowDown": K.down_arrow, "ArrowUp": K.up_arrow, "ArrowLeft": K.left_arrow, "ArrowRight": K.right_arrow,
    "Backspace": K.backspace, "Delete": K.delete, "Insert": K.insert, "Enter": K.enter, "Escape": K.escape,
    "Tab": K.tab, " ": K.space, "Home": K.home, "End": K.end, "PageUp": K.page_up, "PageDown": K.page_down,
    "CapsLock": K.caps_lock, "NumLock": K.num_lock, "ScrollLock": K.scroll_lock,
    "PrintScreen": K.print_screen, "Pause": K.pause, "ContextMenu": K.menu,
    # rendercanvas does not say which side a modifier is on: call it the left one.
    "Shift": K.left_shift, "Control": K.left_ctrl, "Alt": K.left_alt, "Meta": K.left_super,
    "-": K.minus, "=": K.equal, "[": K.left_bracket, "]": K.right_bracket, "\\": K.backslash,
    ";": K.semicolon, "'": K.apostrophe, ",": K.comma, ".": K.period, "/": K.slash, "`": K.grave_accent,
    **{f"F{i}": getattr(K, f"f{i}") for i in range(1, 13)},
    **{c: getattr(K, c) for c in string.ascii_lowercase},
    **{d: getattr(K, f"_{d}") for d in string.digits},
}

# rendercanvas modifier names -> imgui's modifier keys (io.key_ctrl, ... follow these).
MODIFIERS = {"Control": K.mod_ctrl, "Shift": K.mod_shift, "Alt": K.mod_alt, "Meta": K.mod_super}

# rendercanvas buttons -> imgui's (0 left, 1 right, 2 middle, 3 / 4 back / forward).
BUTTONS = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}


def imgui_key(name: str):
    """imgui.Key for a rendercanvas key name, or None for keys imgui has no name for."""
    key = NAMED_KEYS.get(name)
    if key is None and len(name) == 1:
        key = NAMED_KEYS.get(name.lower())   # "A" (shift held) is the A key
    return key


class InputBridge:
    """Feeds one imgui context's io from one canvas's events."""

    def __init__(self, io, canvas):
        self.io = io
        canvas.add_event_handler(self.on_resize, "resize")
        canvas.add_event_handler(self.on_pointer_move, "pointer_move", order=ORDER)
        canvas.add_event_handler(self.on_pointer_button, "pointer_down", "pointer_up", order=ORDER)
        canvas.add_event_handler(self.on_pointer_leave, "pointer_leave", order=ORDER)
        canvas.add_event_handler(self.on_wheel, "wheel", order=ORDER)
        canvas.add_event_handler(self.on_key, "key_down", "key_up", order=ORDER)
        canvas.add_event_handler(self.on_char, "char", order=ORDER)

    def _modifiers(self, ev) -> None:
        """imgui wants the modifier state before the event it modifies."""
        held = ev.get("modifiers") or ()
        for name, key in MODIFIERS.items():
            self.io.add_key_event(key, name in held)

    def _capture_mouse(self, ev) -> None:
        if self.io.want_capture_mouse:
            ev["stop_propagation"] = True

    def on_resize(self, ev) -> None:
        self.io.display_size = (ev["width"], ev["height"])
        ratio = ev.get("pixel_ratio")
        if ratio:
            self.io.display_framebuffer_scale = (ratio, ratio)

    def on_pointer_move(self, ev) -> None:
        self.io.add_mouse_pos_event(ev["x"], ev["y"])
        self._capture_mouse(ev)

    def on_pointer_button(self, ev) -> None:
        button = BUTTONS.get(ev.get("button"))
        if button is None:
            return
        self._modifiers(ev)
        self.io.add_mouse_pos_event(ev["x"], ev["y"])
        self.io.add_mouse_button_event(button, ev["event_type"] == "pointer_down")
        self._capture_mouse(ev)

    def on_pointer_leave(self, ev) -> None:
        # imgui's "no mouse" position: nothing stays hovered once the pointer left the window.
        self.io.add_mouse_pos_event(-imgui.FLT_MAX, -imgui.FLT_MAX)

    def on_wheel(self, ev) -> None:
        self._modifiers(ev)
        self.io.add_mouse_wheel_event(ev.get("dx", 0.0) / WHEEL_PIXELS_PER_NOTCH,
                                      -ev.get("dy", 0.0) / WHEEL_PIXELS_PER_NOTCH)
        self._capture_mouse(ev)

    def on_key(self, ev) -> None:
        self._modifiers(ev)
        key = imgui_key(ev.get("key", ""))
        if key is not None:
            self.io.add_key_event(key, ev["event_type"] == "key_down")
        if self.io.want_capture_keyboard:
            ev["stop_propagation"] = True

    def on_char(self, ev) -> None:
        # glfw sends "data" (older rendercanvas: "char_str").
        for ch in ev.get("data") or ev.get("char_str") or "":
            self.io.add_input_character(ord(ch))
        if self.io.want_text_input:
            ev["stop_propagation"] = True
