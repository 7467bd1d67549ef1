"""One frame of the visualizer: one command encoder, submitted once.

  1. input and actions: poll the 64-byte readout, run the queued actions (panels and
     keys emitted them last frame), feed the demo stroke, build the panels;
  2. training: this frame's steps (or a piece of an evaluation), from the run, split where
     the timeline (a snapshot) or the histograms (a column) want the weights; then the
     display arena the views read: the live weights or the chosen snapshot (timetravel.py);
  3. one compute pass: paint, normalise, the traced forward pass on the canvas,
     colour-scale reductions, every view texture, the readout pack;
  4. one render pass: imgui (panels showing the view textures) into the swapchain.

What is redrawn when (one rule, `view_dispatches`): the model-side views (forward
pass, scales, weights, activations, bars, canvas view) only when their inputs
changed: the canvas, the displayed weights (live or the timeline's step), or a view
setting (the hover value alone when only the hovered element changed); the histogram
ribbons when a column was taken; the curves when a step or an
evaluation landed; the evaluation views when a new evaluation did; the dataset and
gallery pages when their page, split or selection changed; the saliency map (when
shown) with the model-side views, and a push's ascent steps before them (they change
the input); the embedding (when its tab is shown) while a refresh is under way, its
points move, or the cursor, the canvas or the weights changed. Nothing else costs a
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
    marks = [("wait", time.perf_counter())]     # where the frame's CPU time goes (benchmarks/viz_bench.py)
    app.clock.tick(t0)
    app._maybe_attach_data()
    if app.readout.poll():
        app.session.on_scalars(app.readout.values)
    app.run_busy_job()
    app.feed_demo()

    app.gui.begin()
    app.ui.embedding_open = False       # its panel sets it again while it is shown
    try:
        panels.draw_all(app.view_state(), app.actions)
    except Exception as e:  # noqa: BLE001 - a UI bug must not kill the frame loop
        app.gui.recover()
        app.ui_failed(e)
    app.run_actions()
    if app.rc.get_closed():      # a quit closed the window (and released its surface): nothing to draw into
        return

    marks.append(("ui", time.perf_counter()))
    current = [app.dev.device.create_command_encoder()]

    def split():
        """Submit the frame's commands so far (they hold as many epoch orders as an encoder can) and go
        on in a new encoder."""
        app.dev.submit(current[0])
        current[0] = app.dev.device.create_command_encoder()
        return current[0]
    steps, encoder = app.session.encode(current[0], split)
    marks.append(("steps", time.perf_counter()))
    app.timeline.encode_display(encoder, app.session.weights_version, app.metrics.steps)
    Program(view_dispatches(app), label="frame").encode(encoder)
    marks.append(("views", time.perf_counter()))
    target = app.context.get_current_texture()
    marks.append(("texture", time.perf_counter()))
    rp = encoder.begin_render_pass(color_attachments=[{
        "view": target.create_view(), "resolve_target": None, "clear_value": CLEAR_COLOUR,
        "load_op": "clear", "store_op": "store"}])
    app.gui.record(rp)
    rp.end()
    app.readout.before_submit(encoder)
    marks.append(("draw", time.perf_counter()))
    app.dev.submit(encoder)
    marks.append(("submit", time.perf_counter()))
    regular, extras = app.session.frame_regular, app.session.frame_extras
    app.fence.submitted((steps, regular, extras))
    app.readout.after_submit()
    app.session.after_submit()
    app.frames += 1
    marks.append(("after", time.perf_counter()))
    app.frame_times = {name: t - prev for (name, t), prev in zip(marks, [t0] + [t for _, t in marks])}
    adaptive = SPEEDS[app.session.watch.speed][0] == 0
    cpu = time.perf_counter() - t0 - waited
    pacer = app.session.pacer
    for gpu_s, (done, was_regular, had) in app.fence.retired():
        pacer.gpu_frame(gpu_s, done, was_regular, had)
    pacer.update(cpu, steps, adaptive, regular)


def view_dispatches(app) -> list:
    """The compute work of a frame after training, in dependency order."""
    mv = app.model_views
    out = app.canvas.dispatches() + app.saliency.push_dispatches()    # a push changes the input
    key = (app.canvas.revision, app.canvas.normalise, app.timeline.version, mv.mosaic_mode,
           tuple(app.canvas_view.params.values.items()), id(app.model), app.saliency.revision)
    redraw = key != getattr(app, "_views_key", None) or app.canvas.busy
    app._views_key = key
    probe = mv.probe_key != getattr(app, "_probe_key", None)     # the hovered value moved
    app._probe_key = mv.probe_key
    if redraw:
        out += app.forward.dispatches() + app.scales.dispatches() + mv.dispatches()   # the probe included
        out += [app.canvas_view.dispatch]
    elif probe:
        out += mv.probe_dispatches()
    if app.ui.show_saliency:
        out += app.saliency.map_dispatches(app.canvas.loaded is not None, app.canvas.normalise, key)
    out += app.histograms.dispatches()
    out += app.plots.dispatches() + app.confusion.dispatches()
    if app.mistakes is not None:
        out += app.mistakes.dispatches(app.ui.mistakes_page)
    if app.dataset_view is not None:
        ui = app.ui
        out += app.dataset_view.dispatches(ui.dataset_split, ui.dataset_page, ui.dataset_selected)
    out += app.other_run_dispatches()     # runs side by side: their forward passes and mosaics
    out += app.readout.dispatches()
    if app.ui.embedding_open and app.open_embedding() is not None:
        c = app.canvas
        out += app.embedding.dispatches(app.session.weights_version, app.metrics.steps, time.perf_counter(),
                                        not app.dev.is_cpu, app.ui.embedding_cursor, c.blank is not True,
                                        (key, c.loaded))
    return out
