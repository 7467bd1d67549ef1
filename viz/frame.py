"""One frame of the visualizer: one command encoder, submitted once.

  1. input and actions: poll the 64-byte readout, run the queued actions (panels and
     keys emitted them last frame), feed the demo stroke, build the panels;
  2. training: this frame's steps (or a piece of an evaluation), from the run;
  3. one compute pass: paint, normalise, the traced forward pass on the canvas,
     colour-scale reductions, every view texture, the readout pack;
  4. one render pass: imgui (panels showing the view textures) into the swapchain.

What is redrawn when (one rule, `view_dispatches`): the model-side views (forward
pass, scales, weights, activations, bars, canvas view) only when their inputs
changed: the canvas, the weights, or a view setting; the curves when a step or an
evaluation landed; the evaluation views when a new evaluation did; the dataset and
gallery pages when their page, split or selection changed. Nothing else costs a
dispatch in a frame where nothing happened.
"""
from __future__ import annotations

import time

from ..compute.program import Program
from . import panels
from .pacing import SPEEDS

CLEAR_COLOUR = (0.045, 0.047, 0.058, 1.0)


class FrameClock:
    """Smoothed frame time for the status line."""

    def __init__(self):
        self.frame_ms = 0.0
        self._last = None

    def tick(self, now: float) -> None:
        if self._last is not None:
            dt = (now - self._last) * 1000
            self.frame_ms = dt if self.frame_ms == 0 else 0.9 * self.frame_ms + 0.1 * dt
        self._last = now


def draw_frame(app) -> None:
    t0 = time.perf_counter()
    waited = app.fence.wait()
    app.clock.tick(t0)
    app._maybe_attach_data()
    if app.readout.poll():
        app.session.on_scalars(app.readout.values)
    app.run_busy_job()
    app.feed_demo()

    app.gui.begin()
    try:
        panels.draw_all(app.view_state(), app.actions)
    except Exception as e:  # noqa: BLE001 - a UI bug must not kill the frame loop
        app.gui.recover()
        app.ui_failed(e)
    app.run_actions()

    encoder = app.dev.device.create_command_encoder()
    steps = app.session.encode(encoder)
    Program(view_dispatches(app), label="frame").encode(encoder)
    target = app.context.get_current_texture()
    rp = encoder.begin_render_pass(color_attachments=[{
        "view": target.create_view(), "resolve_target": None, "clear_value": CLEAR_COLOUR,
        "load_op": "clear", "store_op": "store"}])
    app.gui.record(rp)
    rp.end()
    app.dev.submit(encoder)
    app.fence.submitted()
    app.readout.after_submit()
    app.frames += 1
    adaptive = SPEEDS[app.session.watch.speed][0] == 0
    cpu = time.perf_counter() - t0 - waited
    app.session.pacer.update(max(cpu, app.fence.gpu_s), steps, adaptive)


def view_dispatches(app) -> list:
    """The compute work of a frame after training, in dependency order."""
    mv = app.model_views
    key = (app.canvas.revision, app.canvas.normalise, app.session.weights_version, mv.mosaic_mode,
           tuple(app.canvas_view.params.values.items()), id(app.model))
    redraw = key != getattr(app, "_views_key", None) or app.canvas.busy
    app._views_key = key
    out = app.canvas.dispatches()
    if redraw:
        out += app.forward.dispatches() + app.scales.dispatches() + mv.dispatches()
        out += [app.canvas_view.dispatch]
    out += app.plots.dispatches() + app.confusion.dispatches()
    if app.mistakes is not None:
        out += app.mistakes.dispatches(app.ui.mistakes_page)
    if app.dataset_view is not None:
        ui = app.ui
        out += app.dataset_view.dispatches(ui.dataset_split, ui.dataset_page, ui.dataset_selected)
    out += app.other_run_dispatches()     # runs side by side: their forward passes and mosaics
    out += app.readout.dispatches()
    return out
