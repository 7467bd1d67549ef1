"""Soak: the visualizer offscreen for a long time, training, painting, evaluating,
saving and loading in a loop. Live GPU objects (buffers, textures, bind groups,
...), process RSS and frame time must stay flat from the first minute to the last.

    python benchmarks/soak.py --minutes 10 [--out benchmarks/soak_results.md]

Exits 1 if anything grew. tests/test_soak.py runs the same loop for 60 seconds.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

WATCH = ("Buffer", "Texture", "TextureView", "BindGroup", "ComputePipeline", "RenderPipeline", "ShaderModule")


def soak(seconds: float, warmup: float = 30.0, size=(960, 600), limit: int | None = 2000, sample_every: float = 5.0,
         steps_per_frame: int = 0, test_limit: int | None = None, log=print) -> dict:
    """Run the loop for warmup + seconds; samples [(t, live objects, rss, mean frame ms,
    every frame's ms since the last sample)] are taken after the warm-up (pipelines
    compiled, caches filled, every action run).

    steps_per_frame 0 trains as fast as the frame budget allows (what a user sees; the
    pacer then holds frame time near the budget, so slower steps show as fewer steps);
    a fixed count gives every cycle the same work, so frame time alone shows a slowdown."""
    from rendercanvas.offscreen import RenderCanvas
    from mnist_viz.compute.diagnostics import live_objects, rss_bytes
    from mnist_viz.viz.app import App, AppConfig
    from mnist_viz.viz.actions import Action
    from mnist_viz.viz.pacing import SPEEDS

    app = App(RenderCanvas(size=size, pixel_ratio=1.0),
              AppConfig(background_load=False, autosave=False, limit=limit, test_limit=test_limit))
    app.wait_for_data()
    app.session.watch.speed = [v for v, _ in SPEEDS].index(steps_per_frame)
    app.session.set_recipe(app.session.recipe.with_changes(epochs=10_000))
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    ckpt = tmp / "soak.safetensors"
    samples, frame_ms = [], []
    t0 = time.perf_counter()
    next_sample = warmup
    cycle = 0
    while True:
        now = time.perf_counter() - t0
        if now < warmup:
            frame_ms.clear()
        elif now >= next_sample:
            gc.collect()
            objs = live_objects()
            samples.append((now, {k: objs[k] for k in WATCH}, rss_bytes(),
                            statistics.mean(frame_ms) if frame_ms else 0.0, list(frame_ms)))
            frame_ms.clear()
            log(f"t={now:6.1f}s  " + " ".join(f"{k}={v}" for k, v in samples[-1][1].items())
                + f"  rss={samples[-1][2] / 2**20:.1f}MB  frame={samples[-1][3]:.1f}ms")
            next_sample += sample_every
            if now >= warmup + seconds:
                break
        # one cycle of what a user does, spread over frames
        phase = cycle % 12
        if phase == 0:
            app.actions.emit(Action.TRAIN)
        elif phase in (1, 2, 3):  # paint a stroke across the canvas
            a = 20 + 25 * (phase - 1)
            app.canvas.stroke((a, 30.0), (a + 10, 80.0))
        elif phase == 4:
            app.actions.emit(Action.LOAD_SAMPLE, "test", cycle % 100)
        elif phase == 5:
            app.actions.emit(Action.EVALUATE)
        elif phase == 6:
            app.actions.emit(Action.PAUSE)
        elif phase == 7:
            app.save_checkpoint(ckpt)
        elif phase == 8:
            app.load_checkpoint(ckpt)
        elif phase == 9:
            app.actions.emit(Action.CLEAR)
        elif phase == 10:
            app.actions.emit(Action.TRAIN)
        cycle += 1
        tf = time.perf_counter()
        app.rc._process_events()
        app.frame()
        frame_ms.append((time.perf_counter() - tf) * 1000)
    app.fence.drain()
    return {"samples": samples, **verdict(samples)}


def verdict(samples) -> dict:
    """First third of the samples against the last third: the largest live-object
    counts may not rise (maxima, so a read in flight at one sample does not count),
    RSS may not grow by 32 MB, the mean frame time may not grow by half.

    Frame time is the mean over every frame of each third (its total time over its
    frames): frames differ a hundredfold by what they do (2 ms paused, a second for
    an evaluation chunk on a CPU adapter), so a median jumps between those modes."""
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]
    growth = {k: max(s[1][k] for s in last) - max(s[1][k] for s in first) for k in WATCH}
    rss_growth = max(s[2] for s in last) - max(s[2] for s in first)
    ft_first = statistics.mean(ms for s in first for ms in s[4])
    ft_last = statistics.mean(ms for s in last for ms in s[4])
    ok = all(v <= 0 for v in growth.values()) and rss_growth < 32 * 2**20 and ft_last < max(1.5 * ft_first, ft_first + 5)
    return {"objects_growth": growth, "rss_growth": rss_growth, "frame_ms_first": ft_first, "frame_ms_last": ft_last,
            "ok": ok}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "soak_results.md")
    args = ap.parse_args()
    from mnist_viz.compute.device import get_device
    r = soak(args.minutes * 60 - 60, warmup=60, sample_every=max(5.0, args.minutes))
    s = r["samples"]
    first, last_third, last = s[0], s[-max(1, len(s) // 3)], s[-1]
    lines = [f"Soak on {get_device().name}: {args.minutes:g} minutes offscreen (train, paint, load a digit, evaluate, "
             f"pause, save, load, clear, resume, in a loop)", "",
             "| | " + " | ".join(WATCH) + " | RSS MB | mean frame ms |", "|---|" + "---|" * (len(WATCH) + 2)]
    for name, x in (("after the first minute", first), ("start of the last third", last_third), ("end", last)):
        lines.append(f"| {name} (t={x[0]:.0f} s) | " + " | ".join(str(x[1][k]) for k in WATCH)
                     + f" | {x[2] / 2**20:.1f} | {x[3]:.1f} |")
    lines += ["", f"last third vs first third of the samples: largest object counts {r['objects_growth']}, RSS "
              f"{r['rss_growth'] / 2**20:+.1f} MB; mean frame time "
              f"{r['frame_ms_first']:.1f} -> {r['frame_ms_last']:.1f} ms: {'flat' if r['ok'] else 'GREW'}"]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.write_text(text)
    sys.exit(0 if r["ok"] else 1)


if __name__ == "__main__":
    main()
