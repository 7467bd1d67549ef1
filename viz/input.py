"""Mouse and keyboard: strokes onto the canvas, keys into actions (viz/actions.py KEYMAP).

Strokes use every cursor position the window system reports, not one per frame:
rendercanvas merges the pointer moves that arrive between two frames into the
last one, which at 3 fps turns a drawn "3" into a straight line. The canvas's
`submit_event` is wrapped so each raw position is kept (with its time) before the
merge; the merged event then hands them all to the stroke. The stroke is a
centripetal Catmull-Rom spline through the positions, cut into short straight
pieces, so it is the same curve at 3 fps and at 60 fps.
"""
from __future__ import annotations

import math

from .actions import action_for_key

PIECE_PX = 1.5          # length of the straight pieces a curve is cut into, canvas pixels


def catmull_rom(p0, p1, p2, p3, pieces: int) -> list[tuple[float, float]]:
    """Points on the centripetal Catmull-Rom segment from p1 to p2 (p1 excluded, p2 included)."""
    def knot(a, b, t):
        d = math.dist(a, b)
        return t + max(d, 1e-6) ** 0.5

    t0 = 0.0
    t1 = knot(p0, p1, t0)
    t2 = knot(p1, p2, t1)
    t3 = knot(p2, p3, t2)
    out = []
    for i in range(1, pieces + 1):
        t = t1 + (t2 - t1) * i / pieces

        def lerp(a, b, ta, tb):
            w = (t - ta) / (tb - ta)
            return (a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w)

        a1, a2, a3 = lerp(p0, p1, t0, t1), lerp(p1, p2, t1, t2), lerp(p2, p3, t2, t3)
        b1, b2 = lerp(a1, a2, t0, t2), lerp(a2, a3, t1, t3)
        out.append(lerp(b1, b2, t1, t2))
    return out


class Stroke:
    """One press-drag-release: points in, smooth segments out to the canvas."""

    def __init__(self, canvas, start: tuple[float, float], erase: bool):
        self.canvas = canvas
        self.erase = erase
        self.points = [start]
        canvas.stroke(start, start, erase)        # a click alone leaves a dot

    def add(self, p: tuple[float, float]) -> None:
        if math.dist(p, self.points[-1]) < 0.25:
            return
        self.points.append(p)
        if len(self.points) >= 3:               # the curve up to the previous point is now known
            self._curve(len(self.points) - 3)

    def end(self) -> None:
        n = len(self.points)
        if n >= 2:
            self._curve(n - 2)                  # the last piece, with the end point repeated

    def _curve(self, k: int) -> None:
        """Paint the spline piece from points[k] to points[k + 1]."""
        pts = self.points
        p1, p2 = pts[k], pts[k + 1]
        p0 = pts[k - 1] if k > 0 else p1
        p3 = pts[k + 2] if k + 2 < len(pts) else p2
        pieces = max(1, math.ceil(math.dist(p1, p2) / PIECE_PX))
        prev = p1
        for q in catmull_rom(p0, p1, p2, p3, pieces):
            self.canvas.stroke(prev, q, self.erase)
            prev = q


class CanvasInput:
    """Event handlers: pointer -> strokes in canvas coordinates, keys -> actions."""

    def __init__(self, rc, canvas, ui, actions, to_canvas):
        self.canvas, self.ui, self.actions, self.to_canvas = canvas, ui, actions, to_canvas
        self.stroke: Stroke | None = None
        self._raw: list[tuple[float, float]] = []
        submit = rc.submit_event

        def keep_raw_moves(event):
            if event.get("event_type") == "pointer_move" and self.stroke is not None:
                self._raw.append((event.get("x", 0.0), event.get("y", 0.0)))
            submit(event)

        rc.submit_event = keep_raw_moves
        rc.add_event_handler(self.on_pointer, "pointer_down", "pointer_move", "pointer_up", order=-100)
        rc.add_event_handler(self.on_key, "key_down")

    def _inside_canvas(self, x: float, y: float) -> bool:
        x0, y0, x1, y1 = self.ui.canvas_rect
        return x0 <= x < x1 and y0 <= y < y1 and x1 > x0

    def on_pointer(self, ev) -> None:
        kind = ev["event_type"]
        x, y = ev.get("x", 0.0), ev.get("y", 0.0)
        if kind == "pointer_down":
            if ev.get("button") in (1, 2) and self._inside_canvas(x, y) and self.ui.canvas_hovered:
                self._raw.clear()
                self.stroke = Stroke(self.canvas, self.to_canvas(x, y), erase=ev["button"] == 2)
                ev["stop_propagation"] = True
        elif kind == "pointer_move":
            if self.stroke is not None:
                raw, self._raw = self._raw or [(x, y)], []
                for rx, ry in raw:
                    self.stroke.add(self.to_canvas(rx, ry))
        elif kind == "pointer_up":
            if self.stroke is not None:
                for rx, ry in self._raw:
                    self.stroke.add(self.to_canvas(rx, ry))
                self._raw.clear()
                self.stroke.add(self.to_canvas(x, y))
                self.stroke.end()
                self.stroke = None
                ev["stop_propagation"] = True

    def on_key(self, ev) -> None:
        from imgui_bundle import imgui
        if imgui.get_current_context() is not None and imgui.get_io().want_text_input:
            return                      # typing in a text field (the checkpoint path)
        modifiers = ev.get("modifiers") or ()
        action = action_for_key(ev.get("key", ""), ctrl="Control" in modifiers)
        if action is not None:
            self.actions.emit(action)
