"""Starting the visualizer: in a glfw window, or offscreen for screenshots and tests."""
from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from ..compute.pathinfo import suffix_note
from .app import App, AppConfig
from .errors import UserError
from .headless import warn_of_name
from .pacing import WINDOW_FPS

MAX_OFFSCREEN_PIXELS = 16384 * 16384
MIN_SIZE = (320, 240)        # --size's smallest window: below it the panels are slivers


def parse_size(text: str, max_side: int = 16384) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size expects WxH, e.g. 1600x1000, got {text!r}") from None
    if w < 1 or h < 1:
        raise UserError(f"--size must be positive, got {text!r}")
    if w < MIN_SIZE[0] or h < MIN_SIZE[1]:
        raise UserError(f"--size {text}: the panels need at least {MIN_SIZE[0]}x{MIN_SIZE[1]} (they are laid out "
                        f"for 1100x700 and up); use a larger size")
    if w > max_side or h > max_side:
        raise UserError(f"--size {text}: the GPU's largest texture side is {max_side} pixels; use a smaller size")
    return w, h


def config_from_args(args) -> AppConfig:
    return AppConfig(checkpoint=args.checkpoint, arch=args.arch, data_dir=args.data, limit=args.limit,
                     test_limit=args.test_limit, train=args.train,
                     paint_demo=args.paint_demo, autosave=not args.no_autosave,
                     background_load=not args.offscreen)


def run_app(args) -> int:
    from ..compute.device import get_device
    size = parse_size(args.size, get_device().limits.get("max-texture-dimension-2d", 8192))
    config = config_from_args(args)
    if args.offscreen:
        return run_offscreen(config, size, args.frames or 1, args.screenshot)
    canvas, loop = open_window(size)
    app = App(canvas, replace(config, fps_cap=WINDOW_FPS))
    loop.run()
    if app.fatal is not None:
        raise app.fatal
    saved = app.shutdown()
    if saved:
        print(f"autosaved the model to {saved}")
    return app.exit_code


def open_window(size):
    """A glfw window through rendercanvas, or a one-line error (with glfw's own reason) when
    there is no display."""
    import glfw
    reasons = []
    glfw.set_error_callback(lambda code, text: reasons.append(text.decode() if isinstance(text, bytes) else str(text)))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glfw also reports the reason as a warning; ours says it once
        ok = glfw.init()
    if not ok:
        why = f" ({reasons[-1]})" if reasons else ""
        raise UserError(f"cannot open a window{why}: is there a display (DISPLAY / WAYLAND_DISPLAY)? "
                        "Render without one with --offscreen --frames N --screenshot out.png")
    from rendercanvas.glfw import RenderCanvas, loop
    canvas = RenderCanvas(size=size, title="mnist-viz: MNIST training on the GPU", update_mode="continuous",
                          max_fps=WINDOW_FPS, vsync=True)
    return canvas, loop


def run_offscreen(config: AppConfig, size, frames: int, screenshot: Path | None) -> int:
    from rendercanvas.offscreen import RenderCanvas
    canvas = RenderCanvas(size=size, pixel_ratio=1.0)
    config = replace(config, autosave=False, background_load=False)
    app = App(canvas, config)
    app.wait_for_data()
    if app.data_error and config.train:
        raise UserError(f"cannot train: {app.data_error}")
    if screenshot is not None and frames < 2:
        app.draw_offscreen()     # imgui lays out tab bars (and the fps) from the second frame on: not for a screenshot
    t0 = time.perf_counter()
    img = None
    for _ in range(frames):
        img = app.draw_offscreen()
        if app.fatal is not None:
            raise app.fatal
    dt = time.perf_counter() - t0
    app.fence.drain()
    if screenshot is not None and img is not None:
        write_png(screenshot, img)
        warn_of_name("--screenshot", screenshot, suffix_note(screenshot, ".png", "PNG"))   # written, as asked
        print(f"wrote {screenshot}")
    rb = app.dev.readback
    print(f"{frames} frames in {dt:.2f} s ({frames / max(dt, 1e-9):.1f} fps); steps {app.metrics.steps}; "
          f"readback {rb.total_bytes} bytes in {rb.count} reads (largest {rb.largest})", file=sys.stderr)
    return 0


def write_png(path: Path, rgba) -> None:
    """Save an [H, W, 4] u8 array as PNG (zlib only, no imaging library needed), atomically as
    checkpoints are (compute/atomic.py): a failed or interrupted write leaves the old file whole."""
    import struct
    import zlib

    import numpy as np

    from ..compute.atomic import write_bytes
    from ..compute.pathinfo import PNG_SIGNATURE
    a = np.ascontiguousarray(np.asarray(rgba)[..., :3], dtype=np.uint8)
    h, w = a.shape[:2]
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">2I5B", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    write_bytes(path, png, example="screenshot.png")
