"""Time travel (viz/timetravel.py), offscreen: the snapshot ring holds exactly the weights
at its steps, the views at a past step are the views of a model loaded with those
weights, "restore to here" continues from exactly them, and the frame loop reads
nothing back with the timeline and the histograms in use."""
import functools
import time

import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from conftest import act, speed_index

ARCH = "Linear(784,64),ReLU(),Linear(64,10)"      # ~200 KB an arena: 1 MiB holds 5 snapshots


@pytest.fixture
def make_app(make_app):
    """This file's apps (and test_viz_histograms'): ARCH at 800 x 500 on 512 training and 64 test
    images in batches of 16, 4 steps a frame, no evaluation (on load or after an epoch), no autosave."""
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.viz.session import WatchSettings
    return functools.partial(make_app, size=(800, 500), arch=ARCH, limit=512, test_limit=64,
                             recipe=Recipe(batch_size=16), autosave=False, evaluate_on_load=False,
                             watch=WatchSettings(speed=speed_index(4), eval_each_epoch=False))


def arena_of(model) -> np.ndarray:
    return np.frombuffer(get_device().read(model.arena.buffer), np.float32)[: model.arena.size].copy()


def snapshot_state(app, snap) -> dict:
    """The state_dict of the weights in one slot of the ring (copied into a probe model)."""
    from mnist_viz.compute.nn import Sequential
    dev = get_device()
    probe = Sequential(app.model.arch)
    ring = app.timeline.ring
    enc = dev.device.create_command_encoder()
    enc.copy_buffer_to_buffer(ring.buffer, snap.slot * ring.stride, probe.arena.buffer, 0, ring.stride)
    dev.submit(enc)
    return probe.state_dict()


def reference_states(app, initial: dict, steps: int) -> dict[int, dict]:
    """A headless Run of the same recipe, data and starting weights: its state_dict after
    every step (the app's run shuffled the same first-epoch permutation from the same seed)."""
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.run import Run
    ref = Sequential(app.model.arch)
    ref.load_state_dict(initial)
    run = Run(ref, app.session.data, app.session.recipe)
    out = {0: ref.state_dict()}
    for s in range(1, steps + 1):
        assert run.run_steps(1) == 1
        out[s] = ref.state_dict()
    return out


def assert_same_state(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{what}: {name} differs"


def train_frames(app, frames: int) -> None:
    for _ in range(frames):
        app.draw_offscreen()


def train_then_pause(app, steps: int) -> None:
    """Train until the run has taken at least `steps` steps, then pause (the pause lands a frame later)."""
    act(app, "train")
    while app.metrics.steps < steps:
        app.draw_offscreen()
    act(app, "pause")
    app.draw_offscreen()


def test_snapshot_ring_holds_exactly_the_weights_at_its_steps(make_app):
    """Guards against a snapshot taken at the end of the frame instead of at the multiple
    of N (4 steps a frame, a snapshot every 3: the frame's steps must be split there), a
    copy of the wrong slot or size, and a ring that keeps the wrong snapshots once it wraps
    (a 1 MiB cap holds 5 of the 7 taken)."""
    app = make_app()
    initial = app.model.state_dict()
    act(app, "timeline_settings", 3, 1)
    train_then_pause(app, 19)
    tl = app.timeline
    assert tl.ring.capacity == 5 and tl.ring.memory_bytes <= 1 << 20
    assert [s.run_step for s in tl.snapshots] == [6, 9, 12, 15, 18]
    assert [s.schedule_step for s in tl.snapshots] == [6, 9, 12, 15, 18]
    ref = reference_states(app, initial, 18)
    for snap in tl.snapshots:
        assert_same_state(snapshot_state(app, snap), ref[snap.run_step], f"snapshot at step {snap.run_step}")
    # The snapshots differ from each other (the copies are not all of one moment).
    assert not np.array_equal(snapshot_state(app, tl.snapshots[0])["0.weight"],
                              snapshot_state(app, tl.snapshots[-1])["0.weight"])


def test_views_at_a_past_step_are_the_views_of_a_model_loaded_with_its_weights(make_app, tmp_path):
    """Guards against views (mosaic, weight rows, biases, activations, logits, probabilities,
    the prediction) that keep reading the live arena, or a forward pass traced on the live
    model, while a past step is chosen and training goes on."""
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import Sequential
    app = make_app()
    act(app, "timeline_settings", 4, 8)
    act(app, "load_sample", "test", 3)
    act(app, "train")
    while app.metrics.steps < 12:
        app.draw_offscreen()
    snap = app.timeline.snapshots[1]
    assert snap.run_step == 4
    act(app, "timeline_select", 1)
    train_frames(app, 3)                                 # training goes on meanwhile
    assert app.session.status == "running" and app.metrics.steps >= 20
    past = [t.read() for t in app.model_views.textures]
    live_now = arena_of(app.model)

    weights = snapshot_state(app, snap)
    model = Sequential(app.model.arch)
    model.load_state_dict(weights)
    path = tmp_path / "step4.safetensors"
    save_model(path, model)
    other = make_app(checkpoint=path)
    act(other, "load_sample", "test", 3)
    train_frames(other, 2)
    loaded = [t.read() for t in other.model_views.textures]
    assert [t.label for t in app.model_views.textures] == [t.label for t in other.model_views.textures]
    for t, a, b in zip(app.model_views.textures, past, loaded):
        assert np.array_equal(a, b), f"{t.label}: the view at step 4 is not the loaded model's"
    # ...and they are not the live model's views (which moved on).
    assert not np.array_equal(live_now, arena_of(model))
    act(app, "timeline_select", -1)
    train_frames(app, 1)
    mosaic = app.model_views.textures[0]
    assert not np.array_equal(mosaic.read(), past[0])


def test_restore_to_here_continues_from_exactly_those_weights(make_app):
    """Guards against a restore that copies another slot (or the live weights), leaves the
    schedule step or the optimizer moments where they were, or rewinds the curves."""
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.run import Run
    app = make_app()
    act(app, "timeline_settings", 5, 8)
    train_then_pause(app, 12)
    steps_before = app.metrics.steps
    snap = app.timeline.snapshots[1]
    assert snap.run_step == 5
    weights = snapshot_state(app, snap)
    act(app, "timeline_select", 1)
    app.draw_offscreen()
    act(app, "timeline_restore")
    app.draw_offscreen()
    assert_same_state(app.model.state_dict(), weights, "live weights after restore")
    assert app.session.run.step == 5                      # the schedule went back
    assert app.metrics.steps == steps_before             # the curves keep the run's past
    assert app.timeline.selected is None                 # the views show the live (restored) weights
    # One more step: the same as a fresh run's first step from those weights at step 5.
    act(app, "step")
    app.draw_offscreen()
    assert app.metrics.steps == steps_before + 1 and app.session.run.step == 6
    ref, kept = Sequential(app.model.arch), Sequential(app.model.arch)
    kept.load_state_dict(weights)
    run = Run(ref, app.session.data, app.session.recipe)
    run.restore_weights(kept.arena.buffer, 5)
    assert run.run_steps(1) == 1
    after = app.model.state_dict()
    assert_same_state(after, ref.state_dict(), "one step after the restore")
    assert not np.array_equal(after["0.weight"], weights["0.weight"])


def test_zero_readback_with_the_timeline_and_histograms_in_use(make_app, wgpu_reads):
    """Guards against a snapshot, a display copy, a restore or a histogram column that
    reads anything back: over many frames with a past step chosen, the Histograms tab open,
    the settings changed and a restore, wgpu moves only each offscreen frame and the
    64-byte readout to the CPU."""
    from mnist_viz.viz.readout import READ_INTERVAL_S
    from mnist_viz.viz.structs import READOUT
    app = make_app(paint_demo=True)
    dev = get_device()
    dev.readback.reset()
    wgpu_reads.reset()
    app.ui.select_tabs.add("Histograms")
    act(app, "timeline_settings", 4, 8)
    act(app, "histogram_every", 2)
    act(app, "train")
    t0 = time.perf_counter()
    for i in range(40):
        if i == 10:
            act(app, "timeline_select", 1)
        if i == 20:
            act(app, "timeline_restore")
        if i == 25:
            act(app, "timeline_select", 2)
            act(app, "histogram_every", 5)
        if i == 30:
            act(app, "timeline_settings", 8, 16)
        app.draw_offscreen()
    elapsed = time.perf_counter() - t0
    assert app.metrics.steps >= 100 and len(app.histograms.steps) >= 20 and app.timeline.snapshots
    assert app.session.message.startswith("continuing from the weights of step 4")
    reads = wgpu_reads.excluding(wgpu_reads.OFFSCREEN_FRAME)
    assert all(n <= READOUT.size for _, n in reads), reads[:5]
    assert len(reads) <= elapsed / READ_INTERVAL_S + 2, (len(reads), elapsed)
    assert all(label == "stats" for label, _ in dev.readback.log), dev.readback.log[:5]
