"""The whole visualizer app, offscreen (rendercanvas.offscreen): zero readback in the
frame loop, screenshots, input events, resizing, checkpoints, autosave.

Readback budget asserted in the frame loop (see viz/readout.py), counted at the wgpu
level (conftest.WgpuReads: raw reads that bypass the device's meter count too):
  * every GPU -> CPU read is the stats pack: 64 bytes, plus 16 per run side by side
    (readout.READ_BYTES_MAX: no read over it);
  * at most one read per READ_INTERVAL_S (0.25 s), i.e. <= 4 reads = 256 bytes a second
    (+2 reads of slack for the first and the last interval);
  * nothing else: weights, activations, canvas and images are never read back. The one
    exception is the offscreen canvas's own download of each finished frame (what
    `App.draw_offscreen` returns; a window presents instead), labelled and allowed once
    a frame.
"""
import functools
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from conftest import act, speed_index


@pytest.fixture
def make_app(make_app):
    """This file's apps (and test_viz_ux's): 960 x 600 on 1024 training and 300 test images."""
    return functools.partial(make_app, size=(960, 600), limit=1024, test_limit=300)


def settings(speed=None, **recipe_changes):
    """AppConfig arguments: the default recipe with changes, and a pace."""
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.viz.session import WatchSettings
    watch = WatchSettings() if speed is None else WatchSettings(speed=speed)
    return dict(recipe=Recipe(**recipe_changes), watch=watch)


def canvas_ink(app) -> float:
    c = app.canvas
    return float(np.frombuffer(get_device().read(c.canvas), np.float32)[: c.width * c.height].sum())


def test_zero_readback_over_100_frames_of_training_painting_and_inference(make_app, wgpu_reads):
    """Guards against any read-back in the frame loop (a raw queue.read_buffer of the weights
    included): besides each offscreen frame's own download, wgpu transfers only the 64-byte
    stats pack, within its rate, and every such read goes through the device's meter."""
    from mnist_viz.viz.readout import READ_BYTES_MAX as READ_BYTES   # 64 + 16 per run side by side
    from mnist_viz.viz.readout import READ_INTERVAL_S
    app = make_app(size=(800, 500), limit=512, **settings(batch_size=16, speed=speed_index(1)))
    dev = get_device()
    dev.readback.reset()
    wgpu_reads.reset()
    act(app, "train")
    t0 = time.perf_counter()
    trained = []        # (steps, whether it carried evaluation pieces) per frame
    r = app.canvas.width * 0.3
    c = app.canvas.width / 2
    for i in range(100):
        a, b = 2 * math.pi * i / 40, 2 * math.pi * (i + 1) / 40
        app.canvas.stroke((c + r * math.cos(a), c + r * math.sin(a)), (c + r * math.cos(b), c + r * math.sin(b)))
        if i == 40:
            act(app, "clear")
            act(app, "load_sample", "test", 3)
        if i == 50:
            act(app, "set_mosaic", 2)
            app.ui.dataset_page = 2
            act(app, "evaluate")
        if i == 70:   # batch size change: the trainer is rebuilt, training continues
            act(app, "set_recipe", app.session.recipe.with_changes(batch_size=32))
        if i == 90:
            act(app, "load_sample", "mistakes", 0)
        app.draw_offscreen()
        trained.append((app.session.steps_last_frame, "evaluation" in app.session.frame_extras))
    elapsed = time.perf_counter() - t0
    # one step a frame but for the frames of the evaluations' pieces (each epoch's and the one asked for;
    # on a CPU adapter a piece a frame, their number depends on the machine's speed: re-cut to fit)
    assert app.session.run.recipe.batch_size == 32 and app.metrics.steps == sum(n for n, _ in trained)
    assert all(n == 1 for n, evaluating in trained if not evaluating), trained
    assert sum(not evaluating for _, evaluating in trained) >= 20, trained
    assert app.metrics.evaluations >= 2
    frames = wgpu_reads.only(wgpu_reads.OFFSCREEN_FRAME)
    assert len(frames) == 100 and all(n >= 800 * 500 * 4 for _, n in frames)
    reads = wgpu_reads.excluding(wgpu_reads.OFFSCREEN_FRAME)
    assert all(n <= READ_BYTES for _, n in reads), reads[:5]
    assert 1 <= len(reads) <= elapsed / READ_INTERVAL_S + 2, (len(reads), elapsed)
    # The device's meter saw the same reads: each went through Device.read_async, labelled.
    rb = dev.readback
    assert (rb.count, rb.total_bytes) == (len(reads), sum(n for _, n in reads))
    assert all(label == "stats" for label, n in rb.log), rb.log[:5]
    # The scalars did arrive and make sense.
    v = app.readout.values
    assert v["at_step"] > 0 and 0 < v["loss_avg"] < 3 and v["flags"] == 0
    assert 0 <= v["pred"] <= 9


def test_offscreen_screenshot_through_the_cli(tmp_path):
    from mnist_viz.viz.cli import main
    out = tmp_path / "shot.png"
    rc = main(["--offscreen", "--frames", "4", "--screenshot", str(out), "--paint-demo", "--size", "900x560",
               "--limit", "256", "--no-autosave"])
    assert rc == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    img = np.asarray(Image.open(out))
    assert img.shape == (560, 900, 3)
    assert img.std() > 10                           # not a blank frame


def test_a_default_offscreen_screenshot_is_not_imguis_first_frame(tmp_path, monkeypatch):
    """Guards against `--offscreen --screenshot x.png` (--frames 1 by default) saving imgui's first
    frame: no tab bars yet and '1000000 fps' in the header (a first user's trial). A layout frame
    comes first; asked for more frames, none is added."""
    from mnist_viz.viz import app as app_module
    from mnist_viz.viz.cli import main
    calls = []
    draw = app_module.App.draw_offscreen
    monkeypatch.setattr(app_module.App, "draw_offscreen", lambda self: calls.append(1) or draw(self))
    base = ["--offscreen", "--size", "900x560", "--limit", "256", "--no-autosave", "--screenshot"]
    assert main([*base, str(tmp_path / "one.png")]) == 0 and len(calls) == 2
    calls.clear()
    assert main([*base, str(tmp_path / "three.png"), "--frames", "3"]) == 0 and len(calls) == 3


def test_painting_with_mouse_events_and_keyboard_shortcuts(make_app):
    app = make_app(**settings(batch_size=16, speed=speed_index(1)))
    app.draw_offscreen()
    x0, y0, x1, y1 = app.ui.canvas_rect
    assert x1 - x0 > 50
    pts = [(x0 + (x1 - x0) * f, y0 + (y1 - y0) * 0.5) for f in (0.2, 0.4, 0.6, 0.8)]
    app.rc.submit_event({"event_type": "pointer_move", "x": pts[0][0], "y": pts[0][1], "button": 0,
                         "buttons": (), "modifiers": (), "ntouches": 0, "touches": {}})
    app.draw_offscreen()                            # imgui now knows the mouse is over the canvas
    ev = dict(button=1, buttons=(1,), modifiers=(), ntouches=0, touches={})
    app.rc.submit_event({"event_type": "pointer_down", "x": pts[0][0], "y": pts[0][1], **ev})
    for x, y in pts[1:]:
        app.rc.submit_event({"event_type": "pointer_move", "x": x, "y": y, **ev})
        app.draw_offscreen()
    app.rc.submit_event({"event_type": "pointer_up", "x": pts[-1][0], "y": pts[-1][1], **ev})
    app.draw_offscreen()
    ink = np.frombuffer(get_device().read(app.canvas.canvas), np.float32).reshape(app.canvas.height, -1)
    row = ink[app.canvas.height // 2]
    assert row[int(app.canvas.width * 0.25): int(app.canvas.width * 0.75)].min() > 0.9
    # Keys: space starts training, again pauses; c clears the canvas.
    app.rc.submit_event({"event_type": "key_down", "key": " ", "modifiers": ()})
    app.draw_offscreen()
    assert app.session.status == "running"
    app.draw_offscreen()
    app.rc.submit_event({"event_type": "key_down", "key": " ", "modifiers": ()})
    app.rc.submit_event({"event_type": "key_down", "key": "c", "modifiers": ()})
    app.draw_offscreen()
    assert app.session.status == "paused"
    assert canvas_ink(app) == 0.0
    steps = app.metrics.steps
    app.rc.submit_event({"event_type": "key_down", "key": "n", "modifiers": ()})
    app.draw_offscreen()
    assert app.metrics.steps == steps + 1


def test_every_shortcut_in_the_keymap_does_what_the_help_says(make_app, tmp_path, caplog):
    """Guards against a shortcut bound to the wrong action, or a key (or Ctrl) that never
    reaches its action: every key of KEYMAP is pressed in the app and the effect README and
    the help promise is checked. A key added to or dropped from KEYMAP fails the test until
    its promise is written here. Ctrl+Q also guards against the quitting frame drawing on
    into the closed window (a 'Draw error' traceback on every quit)."""
    from mnist_viz.compute.model_io import load_model
    from mnist_viz.viz.actions import KEYMAP
    app = make_app(**settings(batch_size=16, speed=speed_index(1)))
    app.ui.checkpoint_path = str(tmp_path / "by-key.safetensors")
    app.draw_offscreen()

    def press(key, ctrl=False):
        app.rc.submit_event({"event_type": "key_down", "key": key, "modifiers": ("Control",) if ctrl else ()})
        app.draw_offscreen()

    def toggle(key, ctrl):
        act(app, "pause")
        app.draw_offscreen()
        press(key, ctrl)
        assert app.session.status == "running"
        press(key, ctrl)
        assert app.session.status == "paused"

    def step(key, ctrl):
        steps = app.metrics.steps
        press(key, ctrl)
        assert app.metrics.steps == steps + 1 and app.session.status == "paused"

    def reinitialise(key, ctrl):
        before = app.model.state_dict()["0.weight"]
        press(key, ctrl)
        assert not np.allclose(app.model.state_dict()["0.weight"], before) and app.session.status == "idle"

    def evaluate(key, ctrl):
        evaluations = app.metrics.evaluations
        press(key, ctrl)
        for _ in range(8):                  # its pieces take the frames their cost allows (lavapipe: a few)
            if app.session.evaluating:
                app.draw_offscreen()
        assert app.metrics.evaluations == evaluations + 1 and not app.session.evaluating

    def clear(key, ctrl):
        app.canvas.stroke((30.0, 30.0), (70.0, 60.0))
        app.draw_offscreen()
        assert canvas_ink(app) > 0
        press(key, ctrl)
        assert canvas_ink(app) == 0.0

    def brush(change):
        def check(key, ctrl):
            app.canvas.brush = 4.0
            press(key, ctrl)
            assert app.canvas.brush == 4.0 + change
        return check

    def cycle_mosaic(key, ctrl):
        mode = app.model_views.mosaic_mode
        press(key, ctrl)
        assert app.model_views.mosaic_mode != mode

    def save(key, ctrl):
        path = Path(app.ui.checkpoint_path)
        path.unlink(missing_ok=True)
        press(key, ctrl)
        saved, _ = load_model(path)
        np.testing.assert_array_equal(saved.state_dict()["0.weight"], app.model.state_dict()["0.weight"])

    def toggle_help(key, ctrl):
        shown = app.ui.show_help
        press(key, ctrl)
        assert app.ui.show_help is (not shown)

    def quit_(key, ctrl):
        press(key, not ctrl)                     # without (or with) Ctrl it is not the shortcut
        assert not app.quit_requested
        press(key, ctrl)
        assert app.quit_requested and app.rc.get_closed()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text

    # What each key must do, as README and the help panel promise it: stated here, not read
    # from KEYMAP, so a key bound to the wrong action fails.
    expected = {(" ", False): toggle, ("n", False): step, ("r", False): reinitialise, ("e", False): evaluate,
                ("c", False): clear, ("Backspace", False): clear, ("Delete", False): clear,
                ("[", False): brush(-0.5), ("]", False): brush(+0.5), ("m", False): cycle_mosaic,
                ("s", False): save, ("h", False): toggle_help, ("F1", False): toggle_help, ("q", True): quit_}
    assert {(k, b.ctrl) for b in KEYMAP for k in b.keys} == set(expected), "KEYMAP and this test list other keys"
    for key, ctrl in sorted(expected, key=lambda kc: kc == ("q", True)):   # quitting closes the canvas: last
        expected[key, ctrl](key, ctrl)


def test_hidpi_renders_at_physical_size_and_paints_in_logical_coordinates(make_app):
    """pixel ratio 2 (a Retina / 200% display): the frame has twice the pixels, imgui lays out in
    logical points, mouse events in logical points land where the canvas is drawn."""
    app = make_app(size=(800, 500), pixel_ratio=2.0)
    img = np.asarray(app.draw_offscreen())
    assert img.shape[:2] == (1000, 1600)
    x0, y0, x1, y1 = app.ui.canvas_rect
    assert 0 < x0 < x1 <= 800 and 0 < y0 < y1 <= 500 and x1 - x0 > 50
    ym = (y0 + y1) / 2
    pts = [(x0 + (x1 - x0) * f, ym) for f in (0.2, 0.4, 0.6, 0.8)]
    ev = dict(button=1, buttons=(1,), modifiers=(), ntouches=0, touches={})
    app.rc.submit_event({"event_type": "pointer_move", "x": pts[0][0], "y": ym, **{**ev, "button": 0, "buttons": ()}})
    app.draw_offscreen()
    app.rc.submit_event({"event_type": "pointer_down", "x": pts[0][0], "y": ym, **ev})
    for x, y in pts[1:]:
        app.rc.submit_event({"event_type": "pointer_move", "x": x, "y": y, **ev})
        app.draw_offscreen()
    app.rc.submit_event({"event_type": "pointer_up", "x": pts[-1][0], "y": ym, **ev})
    app.canvas_view.set_show_box(False)             # no bounding box / centre-of-mass marks over the ink
    app.draw_offscreen()
    img = np.asarray(app.draw_offscreen())
    c = app.canvas
    ink = np.frombuffer(get_device().read(c.canvas), np.float32).reshape(c.height, -1)
    assert ink[c.height // 2, int(c.width * 0.25): int(c.width * 0.75)].min() > 0.9
    # In the frame, the stroke is bright at the physical pixels of its logical position.
    row = img[int(round(ym * 2)), int(round((x0 + (x1 - x0) * 0.3) * 2)): int(round((x0 + (x1 - x0) * 0.7) * 2)), :3]
    assert row.min() > 180, row.min()


def test_resize_to_zero_and_back_does_not_crash(make_app):
    app = make_app(size=(800, 500))
    app.draw_offscreen()
    app.rc.set_physical_size(0, 0)                  # minimised
    app.draw_offscreen()
    app.draw_offscreen()
    app.rc.set_physical_size(300, 200)              # tiny: the layout must still hold
    img = app.draw_offscreen()
    assert img.shape == (200, 300, 4)
    app.rc.set_logical_size(1200, 700)
    img = app.draw_offscreen()
    assert img.shape == (700, 1200, 4)


def test_a_save_named_for_another_format_warns_in_the_panel(make_app, tmp_path):
    """Guards against the File panel's Save writing safetensors to a typed `model.pt` without a
    word, where `train --save model.pt` warns: the message says so and names the .safetensors
    name; a .safetensors name gets the plain `saved`."""
    app = make_app()
    for name, note in (("m.pt", "the file is written in the safetensors format, not as its .pt suffix suggests; "
                                f"name it {tmp_path / 'm.safetensors'}"), ("m.safetensors", None)):
        path = tmp_path / name
        app.ui.checkpoint_path = str(path)
        act(app, "save")
        app.draw_offscreen()
        assert path.exists()
        assert app.ui.file_message == f"saved {path}" + (f" (warning: {note})" if note else ""), app.ui.file_message


def test_autosave_on_shutdown_and_checkpoint_actions(make_app, tmp_path):
    from mnist_viz.compute.model_io import load_model
    app = make_app(**settings(batch_size=16, speed=speed_index(4)))
    act(app, "train")
    for _ in range(3):
        app.draw_offscreen()
    assert app.metrics.steps > 0
    # Save from the panel, scramble the weights, load them back.
    path = tmp_path / "ckpt.safetensors"
    app.ui.checkpoint_path = str(path)
    act(app, "pause")
    act(app, "save")
    app.draw_offscreen()
    assert path.exists() and "saved" in app.ui.file_message
    saved = app.model.state_dict()
    act(app, "reinitialise")
    app.draw_offscreen()
    assert not np.allclose(app.model.state_dict()["0.weight"], saved["0.weight"])
    act(app, "load")
    app.draw_offscreen()
    app.draw_offscreen()                            # a load shows "loading..." for a frame first
    assert "loaded" in app.ui.file_message
    np.testing.assert_array_equal(app.model.state_dict()["0.weight"], saved["0.weight"])
    # A trained model is autosaved on shutdown.
    act(app, "train")
    app.draw_offscreen()
    t0 = time.perf_counter()
    out = app.shutdown()
    assert time.perf_counter() - t0 < 1.0
    assert out.parent == tmp_path / "autosaves" and out.name.startswith("autosave-") and out.exists()
    model, meta = load_model(out)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], app.model.state_dict()["0.weight"])


def test_no_autosave_when_opted_out_or_untrained(make_app, tmp_path):
    app = make_app(autosave=False)
    act(app, "train")
    app.draw_offscreen()
    assert app.shutdown() is None
    app2 = make_app()
    app2.draw_offscreen()
    assert app2.shutdown() is None                  # nothing trained: nothing to save
    assert not list((tmp_path / "autosaves").glob("*.safetensors"))


def _no_home():
    raise RuntimeError("Could not determine home directory.")


@pytest.mark.parametrize("where", ["XDG_CACHE_HOME", "HOME", "no home"])
def test_an_unusable_cache_folder_sends_autosaves_to_a_private_temp_folder(where, make_app, tmp_path, monkeypatch,
                                                                           capsys):
    """XDG_CACHE_HOME or HOME a path that cannot hold a folder (as /nonexistent cannot), or no home
    directory at all: a line at startup names the temp folder autosaves go to and why, the panel
    shows it, and the trained model is autosaved there, in a folder of this user's alone. Guards
    against the close that failed to create ~/.cache/mnist-viz/autosaves and lost the training.
    A folder broken after startup fails the autosave with the file named and no temp file left."""
    import stat
    import tempfile
    from mnist_viz.compute.atomic import TEMP_PATTERN, WriteError
    from mnist_viz.viz import files
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    if where == "no home":
        monkeypatch.setattr(Path, "home", _no_home)
    else:
        monkeypatch.setenv(where, str(blocked))
    app = make_app(autosave_dir=files.default_autosave_dir(), **settings(batch_size=16, speed=speed_index(4)))
    folder = tmp_path / f"mnist-viz-{os.getuid()}" / "autosaves"
    wanted = "~/.cache (no home directory)" if where == "no home" else f"{blocked}/"
    line = capsys.readouterr().err
    assert f"autosaves go to {folder} " in line and f"cannot write {wanted}" in line and "XDG_CACHE_HOME" in line
    assert app.view_state().autosave_path == folder
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    act(app, "train")
    for _ in range(3):
        app.draw_offscreen()
    assert app.shutdown().parent == folder
    shutil.rmtree(folder)
    folder.write_text("")                           # the folder a file since startup
    with pytest.raises(WriteError, match=f"^{re.escape(str(folder))}/autosave-.*cannot create the directory"):
        app.shutdown()
    assert [p.name for p in folder.parent.iterdir() if TEMP_PATTERN.fullmatch(p.name)] == []


def test_with_no_folder_to_write_autosave_is_off_and_says_so(make_app, tmp_path, monkeypatch, capsys):
    """The autosave folder and the temp directory both unusable: a warning at startup that autosave
    is off (and why), the panel says so where it shows the autosave path, and the close writes
    nothing and fails nothing. Guards against learning it only when the close fails."""
    import tempfile
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    app = make_app(autosave_dir=blocked / "autosaves", **settings(batch_size=16, speed=speed_index(4)))
    line = capsys.readouterr().err
    assert line.startswith(f"warning: autosave is off: cannot write {blocked}/autosaves (") and " nor " in line
    v = app.view_state()
    assert v.autosave_path is None and v.autosave_note and v.autosave_note in line
    act(app, "train")
    for _ in range(3):
        app.draw_offscreen()
    assert app.ui_error is None and app.metrics.steps > 0
    assert app.shutdown() is None


def diverged_app(make_app):
    """An app whose training blew up (learning rate 1e6) and was noticed; app.before_training
    holds the weights it started from (the snapshot of the first epoch's start)."""
    app = make_app(**settings(batch_size=16, speed=speed_index(4), lr=1e6, momentum=0.0, nesterov=False,
                                     schedule="constant"))
    app.readout.interval = 0.0
    app.before_training = app.model.state_dict()
    act(app, "train")
    for _ in range(40):
        app.draw_offscreen()
        if app.session.status == "diverged":
            break
    assert app.session.status == "diverged"
    return app


def test_divergence_is_noticed_and_the_last_good_weights_restored(make_app):
    """Guards against a divergence restore that leaves the diverged weights in place (they are
    finite: the GPU never writes a non-finite weight, so finiteness proves nothing): the
    weights must be exactly those the epoch started from."""
    app = diverged_app(make_app)
    assert "diverged" in app.session.message and "restored" in app.session.message
    assert "learning rate" in app.session.message
    app.draw_offscreen()
    assert app.session.status == "diverged"  # stays stopped until the user resumes
    restored = app.model.state_dict()
    for name, want in app.before_training.items():
        np.testing.assert_array_equal(restored[name], want, err_msg=name)


def test_loading_another_architecture_rebuilds_the_views_and_trains(make_app, tmp_path):
    """A 784-32-16-10 checkpoint (two hidden layers: a step program compiled for the new shape)."""
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import mlp
    deep = mlp([784, 32, 16, 10], seed=2)
    path = tmp_path / "deep.safetensors"
    save_model(path, deep)
    app = make_app(**settings(batch_size=16, speed=speed_index(1)))
    app.draw_offscreen()
    app.ui.checkpoint_path = str(path)
    act(app, "load")
    app.draw_offscreen()
    app.draw_offscreen()                            # a load shows "loading..." for a frame first
    assert app.model.arch.short == "784-32-16-10", app.ui.file_message
    mv = app.model_views
    assert len(mv.hidden) == 2 and len(mv.weights) == 2 and mv.mosaic.cols == grid_cols_of(32)
    app.ui.select_tabs |= {"Weights & biases", "Mistakes"}
    act(app, "train")
    for _ in range(4):
        app.draw_offscreen()
    assert app.session.run.engine == "compiled" and app.metrics.steps >= 3
    assert app.ui_error is None
    np.testing.assert_array_equal(app.model.state_dict()["0.weight"].shape, (32, 784))
    # A missing file is a message in the panel, not a crash.
    app.ui.checkpoint_path = str(tmp_path / "nope.safetensors")
    act(app, "load")
    app.draw_offscreen()
    app.draw_offscreen()                            # a load shows "loading..." for a frame first
    assert app.ui.file_message.startswith("load failed") and app.model.arch.short == "784-32-16-10"


def grid_cols_of(n):
    from mnist_viz.viz.views import grid_cols
    return grid_cols(n)


def test_training_resumes_cleanly_after_restoring_from_divergence(make_app):
    """Guards against a restore that leaves the divergence flag up (the GPU then silently skips
    every update) or the diverged weights in place: after lowering the learning rate and
    resuming, steps are taken and the weights move away from the restored ones, by as much
    as a few small steps move them."""
    app = diverged_app(make_app)
    app.draw_offscreen()
    act(app, "set_recipe", app.session.recipe.with_changes(lr=0.05))
    act(app, "train")
    steps = app.metrics.steps
    for _ in range(8):
        app.draw_offscreen()
    assert app.session.status == "running", app.session.message
    assert app.metrics.steps > steps
    now, before = app.model.state_dict(), app.before_training
    change = max(np.abs(now[k] - before[k]).max() for k in before)
    assert 0 < change < 1.0, change


def write_band_dataset(directory, h=9, w=12, classes=3, n_train=360, n_test=90, seed=0):
    """h x w images whose class is which horizontal band is lit (plus noise), as raw IDX files."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, classes, n_train + n_test)
    images = rng.integers(0, 60, (n_train + n_test, h, w))
    band = h // classes
    for i, label in enumerate(labels):
        images[i, band * label: band * (label + 1)] += 160

    def write(name, arr):
        dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        (directory / name).write_bytes(bytes([0, 0, 8, arr.ndim]) + dims + arr.astype(np.uint8).tobytes())
    write("train-images-idx3-ubyte", images[:n_train])
    write("train-labels-idx1-ubyte", labels[:n_train])
    write("t10k-images-idx3-ubyte", images[n_train:])
    write("t10k-labels-idx1-ubyte", labels[n_train:])
    return images, labels


def test_a_dataset_of_another_shape_gets_a_fitting_model_canvas_and_views(make_app, tmp_path):
    """--data with 12 x 9 images in 3 classes: the pretrained MNIST model cannot read them, so the
    app starts a fresh 108-128-3 network; the canvas takes the images' aspect ratio, training
    learns, a loaded test image is classified from the canvas, and a checkpoint that does not
    fit the data is refused with the running model untouched."""
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import mlp
    from mnist_viz.viz.canvas import canvas_shape
    images, labels = write_band_dataset(tmp_path / "bands")
    app = make_app(data_dir=tmp_path / "bands", limit=None, test_limit=None,
                   **settings(batch_size=16, epochs=4, shift=0, speed=speed_index(16)))
    assert app.model.arch.short == "108-128-3" and "random weights" in app.ui.file_message
    c = app.canvas
    assert (c.width, c.height) == canvas_shape(12, 9) and c.width * 9 == c.height * 12 and c.width >= 96
    assert app.canvas_view.texture.width == c.width and app.canvas_view.texture.height == c.height
    mv = app.model_views
    assert (mv.input.texture.width, mv.input.texture.height) == (12, 9)
    assert (mv.mosaic.tile_w, mv.mosaic.tile_h) == (12, 9)
    assert mv.probs.texture is not None and app.metrics.num_classes == 3

    act(app, "train")
    for _ in range(300):
        app.draw_offscreen()
        if app.session.status == "finished":
            break
    assert app.session.status == "finished", app.session.status
    sd = app.model.state_dict()
    x = images[360:].reshape(90, -1) / 255.0
    logits = np.maximum(x @ sd["0.weight"].T + sd["0.bias"], 0) @ sd["2.weight"].T + sd["2.bias"]
    assert (logits.argmax(1) == labels[360:]).mean() > 0.9

    # A test image loaded into the canvas (plain downsample: the band's position is the class).
    act(app, "set_normalise", False)
    for k in range(5):
        act(app, "load_sample", "test", k)
        app.draw_offscreen()
        probs = np.frombuffer(get_device().read(app.forward.probs.buffer), np.float32)[:3]
        assert probs.argmax() == labels[360 + k], (k, probs)

    # An MNIST checkpoint does not fit: refused before anything is rebound.
    model, trainer = app.model, app.session.run
    save_model(tmp_path / "mnist.safetensors", mlp([784, 16, 10]))
    app.ui.checkpoint_path = str(tmp_path / "mnist.safetensors")
    act(app, "load")
    app.draw_offscreen()
    app.draw_offscreen()                            # a load shows "loading..." for a frame first
    assert app.ui.file_message.startswith("load failed") and "does not fit" in app.ui.file_message
    assert app.model is model and app.session.run is trainer and app.model.arch.short == "108-128-3"


def test_bad_data_or_a_checkpoint_that_does_not_fit_stops_at_start(tmp_path, capsys):
    from mnist_viz.viz.cli import main
    write_band_dataset(tmp_path / "bands")
    shot = str(tmp_path / "x.png")
    assert main(["--offscreen", "--frames", "1", "--screenshot", shot, "--data", str(tmp_path / "nope")]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["--offscreen", "--frames", "1", "--screenshot", shot, "--data", str(tmp_path / "bands"),
                 "--checkpoint", str(Path(__file__).resolve().parent.parent / "assets/mnist-784-128-10.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mnist-784-128-10.safetensors: model 784-128-10 does not fit") and "3 classes" in err
    assert "; use --data DIR with the images and classes it was trained on" in err, err    # the fix, as eval's


def test_the_apps_objects_are_frozen_and_a_replaced_models_views_freed(make_app, tmp_path):
    """Guards against dropped frames from Python's full garbage collections (a pass over the
    app's ~70,000 long-lived objects took 15 ms of a frame) and against the freeze that prevents
    them keeping a replaced model's views, and their GPU buffers, alive: once built, the app's
    objects are frozen (the full passes walk a tenth of them at most), and after loading another
    architecture the old views are gone."""
    import gc
    import weakref
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import mlp
    path = tmp_path / "other.safetensors"
    save_model(path, mlp([784, 24, 10], seed=2))
    app = make_app(**settings(batch_size=16, speed=speed_index(1)))
    app.draw_offscreen()
    frozen = gc.get_freeze_count()
    assert frozen > 10000 and len(gc.get_objects(2)) < frozen / 10, (frozen, len(gc.get_objects(2)))
    old_views, old_timeline = weakref.ref(app.model_views), weakref.ref(app.timeline)
    app.ui.checkpoint_path = str(path)
    act(app, "load")
    app.draw_offscreen()
    app.draw_offscreen()                            # a load shows "loading..." for a frame first
    assert app.model.arch.short == "784-24-10", app.ui.file_message
    assert old_views() is None and old_timeline() is None
