"""The README's time-travel and histogram screenshots, taken by the program offscreen:
train for --frames frames (as `mnist-viz --offscreen --train`), then
  timetravel.png: the timeline moved back to an early snapshot while training goes on;
  histograms.png: the Parameters panel's Histograms tab.

    python scripts/screenshots_timetravel.py --frames 150 --out docs/screenshots
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    from rendercanvas.offscreen import RenderCanvas

    from mnist_viz.viz.actions import Action
    from mnist_viz.viz.app import App, AppConfig
    from mnist_viz.viz.launch import write_png

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--size", default="1600x1000")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--arch", help="a fresh network of this architecture (default: a fresh 784-128-10 MLP)",
                    default="Linear(784,128),ReLU(),Linear(128,10)")
    ap.add_argument("--every", type=int, default=25, help="steps between snapshots")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    app = App(RenderCanvas(size=(w, h), pixel_ratio=1.0),
              AppConfig(arch=args.arch, train=True, paint_demo=True, autosave=False, background_load=False))
    app.wait_for_data()
    app.actions.emit(Action.TIMELINE_SETTINGS, args.every, None)
    app.actions.emit(Action.HISTOGRAM_EVERY, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.frames):
        if i == args.frames - 4:
            app.actions.emit(Action.TIMELINE_SELECT, min(2, len(app.timeline.snapshots) - 1))
        img = app.draw_offscreen()
    write_png(args.out / "timetravel.png", img)
    app.ui.select_tabs.add("Histograms")
    app.actions.emit(Action.TIMELINE_SELECT, -1)
    for _ in range(3):
        img = app.draw_offscreen()
    write_png(args.out / "histograms.png", img)
    app.fence.drain()
    print(f"wrote {args.out / 'timetravel.png'} and {args.out / 'histograms.png'} at step {app.metrics.steps}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
