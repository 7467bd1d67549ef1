"""A real glfw window (rendercanvas.glfw) under X: it opens at once, renders frames,
takes mouse and keyboard input through glfw's callbacks, survives a resize and a
minimise, and closes cleanly within a second, autosaving the trained model.

Runs where a display is available: $DISPLAY, or an `Xvfb` the test starts itself.
The window runs in a child process, so a crash in the window system cannot take the
test session down with it.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import gc, json, sys, time
from pathlib import Path
sys.path.insert(0, ROOT + "/tests/checkout")
t_start = time.perf_counter()
import glfw
import wgpu
import numpy as np
from rendercanvas.glfw import RenderCanvas, loop
from mnist_viz.compute.device import get_device
from mnist_viz.viz.app import App, AppConfig
from mnist_viz.compute.recipe import Recipe
from mnist_viz.viz.actions import Action
from mnist_viz.viz.session import WatchSettings

canvas = RenderCanvas(size=(1000, 640), title="mnist-viz test", update_mode="continuous", max_fps=60)
app = App(canvas, AppConfig(limit=256, test_limit=200, autosave_dir=Path(OUT) / "autosaves",
                            recipe=Recipe(batch_size=16), watch=WatchSettings(speed=3)))   # one step a frame
opened_after = time.perf_counter() - t_start
win = canvas._window
dev = get_device()
out = {"opened_after_s": opened_after}
state = {"phase": 0, "t": time.perf_counter(), "stroke": 0}

def live_surfaces():
    """wgpu canvas contexts (window surfaces) still in memory, garbage not yet collected included
    (the app freezes its objects for the collector: frozen ones are listed after an unfreeze)."""
    gc.unfreeze()
    n = sum(isinstance(o, wgpu.GPUCanvasContext) for o in gc.get_objects())
    gc.freeze()
    return n

def later(fn, dt=0.05):
    loop.call_later(dt, fn)

def step():
    """A little state machine driven by the loop: one action per tick."""
    ph = state["phase"]
    if ph == 0:   # wait for a few frames and the dataset
        if app.frames >= 3 and app.session.data is not None:
            dev.readback.reset()
            out["t_loop0"] = time.perf_counter()
            app.actions.emit(Action.TRAIN)
            state["phase"] = 1
    elif ph == 1:   # hover the canvas
        x0, y0, x1, y1 = app.ui.canvas_rect
        r = canvas.get_pixel_ratio()
        canvas._on_cursor_enter(win, True)
        canvas._on_cursor_pos(win, (x0 + 0.25 * (x1 - x0)) * r, (y0 + 0.5 * (y1 - y0)) * r)
        state["phase"] = 2
    elif ph == 2:   # press the left button and drag across
        x0, y0, x1, y1 = app.ui.canvas_rect
        r = canvas.get_pixel_ratio()
        k = state["stroke"]
        if k == 0:
            out["ink_before"] = app.canvas.revision
            canvas._on_mouse_button(win, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
        f = 0.25 + 0.1 * k
        canvas._on_cursor_pos(win, (x0 + f * (x1 - x0)) * r, (y0 + 0.5 * (y1 - y0)) * r)
        state["stroke"] = k + 1
        if k == 5:
            canvas._on_mouse_button(win, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
            state["phase"] = 3
    elif ph == 3:   # a key: pause training
        out["steps_running"] = app.metrics.steps
        canvas._on_key(win, glfw.KEY_SPACE, 0, glfw.PRESS, 0)
        canvas._on_key(win, glfw.KEY_SPACE, 0, glfw.RELEASE, 0)
        state["phase"] = 4
    elif ph == 4:   # resize
        out["status_after_space"] = app.session.status
        glfw.set_window_size(win, 760, 520)
        state["phase"] = 5
    elif ph == 5:   # minimise and restore (what the window manager would report)
        out["frames_before_min"] = app.frames
        canvas._on_iconify(win, 1)
        state["phase"] = 6
    elif ph == 6:
        out["frames_while_min"] = app.frames - out["frames_before_min"]
        canvas._on_iconify(win, 0)
        app.actions.emit(Action.TRAIN)
        state["phase"] = 7
        state["t7"] = time.perf_counter()
    elif ph == 7:   # run a little, then close the window like the user would
        if time.perf_counter() - state["t7"] > 0.5 and app.frames > out["frames_before_min"] + 3:
            out["loop_s"] = time.perf_counter() - out["t_loop0"]
            rb = dev.readback
            out["readback"] = [rb.total_bytes, rb.count, rb.largest, sorted({l for l, _ in rb.log})]
            out["frames"] = app.frames
            out["size"] = list(canvas.get_logical_size())
            out["surfaces_open"] = live_surfaces()
            out["close_t"] = time.perf_counter()
            glfw.set_window_should_close(win, True)
            return
    later(step)

later(step, 0.2)
loop.run()
out["surfaces_after_close"] = live_surfaces()
saved = app.shutdown()
out["exit_s"] = time.perf_counter() - out["close_t"]
out["closed"] = canvas.get_closed()
out["saved"] = str(saved) if saved else None
c = app.canvas
ink = np.frombuffer(dev.read(c.canvas), np.float32)[: c.width * c.height].reshape(c.height, c.width)
out["ink_row"] = float(ink[c.height // 2, int(c.width * 0.3): int(c.width * 0.7)].min())
out["revision"] = app.canvas.revision
out["steps"] = app.metrics.steps
print("RESULT " + json.dumps(out), flush=True)
# The interpreter's own exit is part of the test: its code must be 0 (not -11).
'''


def _display():
    """An X display: $DISPLAY, or a fresh Xvfb (returns (display, process or None))."""
    if os.environ.get("DISPLAY"):
        return os.environ["DISPLAY"], None
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        return None, None
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        num = f.readline().strip()
    if not num:
        proc.kill()
        return None, None
    return f":{num}", proc


def _run_child(tmp_path, source: str) -> dict:
    """Run a child script (ROOT and OUT filled in) under an X display; its RESULT line as a dict."""
    display, xvfb = _display()
    if display is None:
        pytest.skip("no X display and no Xvfb")
    try:
        script = tmp_path / "child.py"
        script.write_text(source.replace("ROOT", repr(str(ROOT))).replace("OUT", repr(str(tmp_path))))
        env = dict(os.environ, DISPLAY=display, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=240)
    finally:
        if xvfb is not None:
            xvfb.kill()
            xvfb.wait()
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    # -11 after a RESULT line: a segfault at interpreter exit, after a clean close.
    assert p.returncode == 0 and lines, (p.returncode, p.stdout[-2000:], p.stderr[-4000:])
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.window
def test_glfw_window_opens_paints_trains_and_closes_cleanly(tmp_path):
    """Guards against a window that waits for the dataset before it opens, mouse or key input
    that never reaches the app, a crash on resize or minimise, drawing while minimised, a close
    that takes over a second or skips the autosave, readback in the frame loop, and a segfault
    at interpreter exit after the close (the surface released late)."""
    t0 = time.perf_counter()
    r = _run_child(tmp_path, CHILD)
    wall = time.perf_counter() - t0
    # The window's surface is released when the window closes, not by the garbage collector at
    # exit: released after glfw had closed the X display, it segfaulted (exit -11) now and then.
    assert r["surfaces_open"] == 1 and r["surfaces_after_close"] == 0
    assert r["opened_after_s"] < 15                 # the window opens at once (dataset loads behind it)
    assert r["closed"] and r["exit_s"] < 1.0        # closes within a second, autosave included
    assert r["saved"] and Path(r["saved"]).exists()
    assert r["ink_row"] > 0.9 and r["revision"] > 0  # the drag painted a line across the canvas
    assert r["steps_running"] > 0 and r["steps"] >= r["steps_running"]
    assert r["status_after_space"] == "paused"
    assert r["frames_while_min"] <= 1               # no drawing while minimised, and no crash
    assert r["size"] == [760, 520]
    total, count, largest, labels = r["readback"]
    assert largest <= 64 and labels in ([], ["stats"])
    assert count <= r["loop_s"] / 0.25 + 2
    assert wall < 240


STROKE_CHILD = r'''
import json, math, sys, time
sys.path.insert(0, ROOT + "/tests/checkout")
import glfw
import numpy as np
from rendercanvas.glfw import RenderCanvas, loop
from mnist_viz.compute.device import get_device
from mnist_viz.viz.actions import Action
from mnist_viz.viz.app import App, AppConfig

canvas = RenderCanvas(size=(1000, 640), title="mnist-viz strokes", update_mode="continuous", max_fps=60)
app = App(canvas, AppConfig(limit=256, test_limit=200, autosave=False))
win = canvas._window
dev = get_device()
N = 40
# An S curve across the canvas, as fractions of the canvas rect.
curve = [(0.2 + 0.6 * t, 0.5 - 0.28 * math.sin(2 * math.pi * t)) for t in (k / (N - 1) for k in range(N))]
out = {}
st = {"phase": "wait", "frame": 0, "k": 0, "runs": []}

def screen(f):
    x0, y0, x1, y1 = app.ui.canvas_rect
    r = canvas.get_pixel_ratio()
    return (x0 + f[0] * (x1 - x0)) * r, (y0 + f[1] * (y1 - y0)) * r

def ink():
    c = app.canvas
    return np.frombuffer(dev.read(c.canvas), np.float32)[: c.width * c.height].reshape(c.height, c.width).copy()

def new_frame():
    """True once a frame was drawn since the last call (steps wait for the window)."""
    if app.frames > st["frame"]:
        st["frame"] = app.frames
        return True
    return False

def step():
    ph = st["phase"]
    if ph == "wait":
        if app.frames >= 3:
            st["phase"] = "hover"
    elif ph == "hover" and new_frame():
        app.actions.emit(Action.CLEAR)
        canvas._on_cursor_enter(win, True)
        canvas._on_cursor_pos(win, *screen(curve[0]))
        st["phase"], st["k"] = "press", 0
    elif ph == "press" and new_frame():           # imgui has seen the cursor over the canvas
        canvas._on_mouse_button(win, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
        st["phase"] = "move"
    elif ph == "move" and new_frame():
        per = N if len(st["runs"]) == 0 else 2      # all positions between two frames, then 2 a frame
        for f in curve[st["k"]: st["k"] + per]:
            canvas._on_cursor_pos(win, *screen(f))
        st["k"] += per
        if st["k"] >= N:
            canvas._on_mouse_button(win, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
            st["phase"], st["settle"] = "settle", app.frames + 3
    elif ph == "settle" and app.frames >= st["settle"]:
        app.fence.drain()
        st["runs"].append(ink())
        out.setdefault("frames_per_run", []).append(app.frames)
        if len(st["runs"]) == 2:
            glfw.set_window_should_close(win, True)
            return
        st["phase"] = "hover"
    loop.call_later(0.02, step)

loop.call_later(0.2, step)
loop.run()
c = app.canvas
x0, y0, x1, y1 = app.ui.canvas_rect
pts = np.array([app.to_canvas(x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)) for fx, fy in curve])
np.save(OUT + "/runs.npy", np.stack(st["runs"]))
np.save(OUT + "/points.npy", pts)
out["brush"] = c.brush
print("RESULT " + json.dumps(out))
'''


@pytest.mark.window
def test_a_dense_stroke_follows_the_curve_however_the_positions_arrive(tmp_path):
    """An S curve of 40 cursor positions through glfw's callbacks, first all between two
    frames, then two a frame: the ink covers every point of the curve and nothing well off it,
    and both strokes leave the same pixels. Guards against one segment per frame (a drawn '3'
    became a straight line at 3 fps) and against strokes that depend on the frame rate."""
    import numpy as np
    r = _run_child(tmp_path, STROKE_CHILD)
    runs = np.load(tmp_path / "runs.npy")
    pts = np.load(tmp_path / "points.npy")
    h, w = runs.shape[1:]
    # The curve, densely: the cursor positions and 7 points between each pair.
    dense = np.concatenate([pts[:-1] + (pts[1:] - pts[:-1]) * t for t in np.linspace(0, 1, 8)[:-1]] + [pts[-1:]])
    ys, xs = np.mgrid[:h, :w]
    centres = np.stack([xs + 0.5, ys + 0.5], -1).reshape(-1, 2)
    d = np.min(np.linalg.norm(centres[:, None, :] - dense[None, :, :], axis=2), axis=1).reshape(h, w)
    for ink in runs:
        on = ink[np.clip(dense[:, 1].astype(int), 0, h - 1), np.clip(dense[:, 0].astype(int), 0, w - 1)]
        assert on.min() > 0.9, on.min()                      # every sample point of the curve inked
        assert ink[d > r["brush"] + 4].max() == 0.0          # nothing well off the curve
    assert np.abs(runs[0] - runs[1]).max() < 1e-6            # the same stroke whatever the frame timing
    assert r["frames_per_run"][1] - r["frames_per_run"][0] > 10   # the second run was spread over frames


SIGNAL_CHILD = r'''
import sys
sys.path.insert(0, ROOT + "/tests/checkout")
from mnist_viz.viz import app as viz_app
from mnist_viz.viz.cli import main

frame = viz_app.App.frame

def frame_then_say_trained(self):
    """The real `mnist-viz --train` window, which says once it has trained (the test signals it then),
    minimised first when asked (a window that draws nothing must end on a signal too)."""
    frame(self)
    if self.metrics.steps > 0 and not getattr(self, "told", False):
        self.told = True
        if MINIMISE:
            self.rc._on_iconify(self.rc._window, 1)
        print("TRAINED", flush=True)

viz_app.App.frame = frame_then_say_trained
sys.exit(main(["--train", "--limit", "256", "--test-limit", "200", "--size", "1000x640"]))
'''


def _signal_window(tmp_path, sig, minimise=False, **env) -> tuple[int, str, str]:
    """Run the window (SIGNAL_CHILD) under an X display with `env`, send it `sig` once it has trained;
    (exit code, stdout, stderr)."""
    display, xvfb = _display()
    if display is None:
        pytest.skip("no X display and no Xvfb")
    script = tmp_path / "child.py"
    script.write_text(SIGNAL_CHILD.replace("ROOT", repr(str(ROOT))).replace("MINIMISE", str(minimise)))
    shaders = os.environ.get("MESA_SHADER_CACHE_DIR") or str(Path.home() / ".cache" / "mesa_shader_cache")
    env = dict(os.environ, DISPLAY=display, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"),
               MESA_SHADER_CACHE_DIR=shaders, TMPDIR=str(tmp_path), **env)
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, preexec_fn=_default_signals)
    watchdog = threading.Timer(240, p.kill)       # a child that hangs before it trains fails the test
    watchdog.start()
    try:
        while p.stdout.readline().strip() not in ("TRAINED", ""):     # "": it ended without training
            pass
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
    finally:
        watchdog.cancel()
        if p.poll() is None:
            p.kill()
        if xvfb is not None:
            xvfb.kill()
            xvfb.wait()
    return p.returncode, out, err


def _default_signals():
    """The child starts with the signals at their defaults (see tests/test_signals.py)."""
    import signal
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.window
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_ends_the_window_as_closing_it_does(name, tmp_path):
    """SIGTERM (`timeout`, `kill`), SIGHUP (a closed terminal; here with the window minimised, so no
    frame is drawn) and Ctrl-C end the window's loop as closing it does: the trained model is
    autosaved, the line says where, and the exit code is 128 + the signal, as `mnist-viz train`'s.
    Guards against SIGTERM and SIGHUP killing the window with its training (no handler), and
    against Ctrl-C ending it with exit 0 (rendercanvas's own handler)."""
    import signal
    from mnist_viz.compute.model_io import load_model
    sig = getattr(signal, name)
    code, out, err = _signal_window(tmp_path, sig, minimise=name == "SIGHUP", XDG_CACHE_HOME=str(tmp_path / "cache"))
    saved = list((tmp_path / "cache" / "mnist-viz" / "autosaves").glob("autosave-*.safetensors"))
    assert code == 128 + sig and len(saved) == 1, (code, out, err[-3000:])
    assert f"autosaved the model to {saved[0]}" in out and "Traceback" not in err
    assert int(load_model(saved[0])[1]["steps"]) > 0


@pytest.mark.window
def test_without_a_usable_home_the_window_autosaves_in_a_private_temp_folder(tmp_path):
    """HOME a path that cannot be a folder (no ~/.cache): a line at startup names the temp folder
    autosaves go to and why, and the window's training is autosaved there (the folder this
    user's alone). Guards against the close that failed to create ~/.cache/... and lost it."""
    import signal
    import stat
    home = tmp_path / "home"
    home.write_text("")
    code, out, err = _signal_window(tmp_path, signal.SIGTERM, HOME=str(home), XDG_CACHE_HOME="")
    folder = tmp_path / f"mnist-viz-{os.getuid()}" / "autosaves"
    saved = list(folder.glob("autosave-*.safetensors"))
    assert code == 128 + signal.SIGTERM and len(saved) == 1, (code, out, err[-3000:])
    assert f"autosaves go to {folder} " in err and f"cannot write {home}/.cache/mnist-viz/autosaves" in err
    assert f"autosaved the model to {saved[0]}" in out
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
