"""Visualizer benchmark: frames per second while training at full speed, training
steps per second inside the frame budget, and the share of headless training
throughput it keeps, measured in the same run.

    python benchmarks/viz_bench.py [--seconds 10] [--batch 64] [--arch STRING ...] [--out benchmarks/viz_results.md]

One block of rows per architecture (default: the shipped MLP 784-128-10, the deep
MLP 784-512-256-128-10 and the shipped CNN), each with its own headless reference.
With --all-views the window also shows every view at once (the embedding, the
saliency overlay, the histograms, the Runs tab) with a second run training beside
the first ("adam lr=0.001 seed=1").

Frames are rendered offscreen. "window" drives the app's frame function as the
window's loop does: held to 60 fps (rendercanvas's cap and vsync), with the
window's frame budget (pacing.frame_budget), frames overlapping on the GPU and
nothing read back; this is what a user sees. "in flight" runs frames back to back,
uncapped, with the offscreen budget; "read back" also copies every finished frame to
the CPU, as the offscreen screenshot path does, which serialises CPU and GPU.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def headless_steps_per_s(ds, arch: str, batch: int, seconds: float) -> tuple[float, str]:
    """Training steps per second of a Run with no window, and the engine it chose."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run

    data = GpuDataset(ds)
    tr = Run(Sequential(parse(arch), seed=0), data,
             RECIPES["default"].with_changes(epochs=1000, batch_size=batch))
    tr.run_steps(tr.steps_per_epoch)
    tr.read_flags()
    steps, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        tr.run_steps(tr.steps_per_epoch, per_submit=512)
        steps += tr.steps_per_epoch
    tr.read_flags()
    return steps / (time.perf_counter() - t), tr.engine


def viz_run(app, batch: int, seconds: float, read_back: bool, fps_cap: float | None = None) -> dict:
    from mnist_viz.viz.pacing import MAX_INDEX
    from mnist_viz.viz.actions import Action

    app.session.watch.speed = MAX_INDEX
    app.session.set_recipe(app.session.recipe.with_changes(epochs=100000, batch_size=batch))
    app.session.status = "idle"
    app.actions.emit(Action.TRAIN)

    tick = [time.perf_counter()]

    def one():
        if read_back:
            app.draw_offscreen()
        else:
            app.rc._process_events()
            app.frame()
        if fps_cap:     # as the window's loop holds it (rendercanvas max_fps, vsync): the next frame at the next tick
            tick[0] = max(tick[0] + 1 / fps_cap, time.perf_counter() - 1 / fps_cap)
            time.sleep(max(0.0, tick[0] - time.perf_counter()))

    for _ in range(90):  # let the step budget settle
        one()
    app.dev.readback.reset()
    f0, s0, t = app.frames, app.metrics.steps, time.perf_counter()
    gpu, phases, starts, carried = [], {}, [], []
    pauses = GcPauses()
    if TRACE[0] is not None:
        TRACE[0].take()          # the warm-up's calls are not counted
    while time.perf_counter() - t < seconds:
        starts.append(time.perf_counter())
        one()
        gpu.append(app.fence.gpu_s)
        carried.append((app.session.steps_last_frame, {k: v for k, v in app.session.frame_extras.items() if v},
                        round(app.frame_times.get("steps", 0) * 1000, 1)))
        for k, v in app.frame_times.items():
            phases.setdefault(k, []).append(v)
    pauses.stop()
    app.fence.drain()
    if app.session.status != "running":      # a run that stopped (diverged, finished) measures nothing
        print(f"    the run is {app.session.status}: {app.session.message}", flush=True)
    dt = time.perf_counter() - t
    frames, steps = app.frames - f0, app.metrics.steps - s0
    gpu.sort()
    rb = app.dev.readback
    return {"fps": frames / dt, "steps_per_frame": steps / max(frames, 1), "steps_per_s": steps / dt,
            "gpu_ms": gpu[len(gpu) // 2] * 1000 if gpu else 0.0, "readback": (rb.total_bytes, rb.count, rb.largest),
            "cpu_ms": {k: sorted(v)[len(v) // 2] * 1000 for k, v in phases.items()},
            "late": late_frames(starts, fps_cap), "late_detail": late_detail(starts, carried, fps_cap),
            "gc": pauses.summary()}


TRACE = [None]      # the CpuTrace when --trace-cpu


class CpuTrace:
    """The longest and total CPU time of a few calls the frame loop makes (--trace-cpu): where a
    frame's CPU stall, if any, is spent. Wraps the methods for the life of the process."""

    def __init__(self):
        from mnist_viz.compute.data import GpuDataset
        from mnist_viz.compute.device import Device
        from mnist_viz.compute.evaluation import EvaluationPiece
        from mnist_viz.compute.program import Program
        from mnist_viz.compute.run import Run
        from mnist_viz.viz.histograms import Histograms
        from mnist_viz.viz.readout import ScalarReadout
        from mnist_viz.viz.timetravel import Timeline
        self.times: dict[str, list] = {}
        for cls, name in ((GpuDataset, "shuffle"), (Device, "write"), (Device, "submit"), (EvaluationPiece, "encode"),
                          (Program, "encode"), (Run, "encode_estimate"), (Run, "advance"), (Timeline, "take"),
                          (Histograms, "take"), (ScalarReadout, "poll"), (ScalarReadout, "after_submit")):
            self._wrap(cls, name)

    def _wrap(self, cls, name):
        fn = getattr(cls, name)
        key = f"{cls.__name__}.{name}"

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                rec = self.times.setdefault(key, [0.0, 0.0, 0])
                d = time.perf_counter() - t0
                rec[0], rec[1], rec[2] = max(rec[0], d), rec[1] + d, rec[2] + 1
        setattr(cls, name, timed)

    def take(self) -> str:
        out, self.times = self.times, {}
        rows = sorted(out.items(), key=lambda kv: -kv[1][0])
        return ", ".join(f"{k} max {v[0] * 1000:.1f} ms (total {v[1] * 1000:.0f} ms in {v[2]})" for k, v in rows[:8])


class GcPauses:
    """Python's garbage collections while frames run (gc.callbacks): how many, and the longest."""

    def __init__(self):
        self.pauses, self._t0 = [], {}
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0:
            self.pauses.append((info["generation"], time.perf_counter() - self._t0))

    def stop(self):
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        if not self.pauses:
            return "no collections"
        old = [d for g, d in self.pauses if g == 2]
        return (f"{len(self.pauses)} collections ({len(old)} of generation 2), longest "
                f"{max(d for _, d in self.pauses) * 1000:.1f} ms")


def late_detail(starts: list, carried: list, fps_cap: float | None) -> list:
    """The longest frames (ms), each with what it and the two frames before it carried (steps, extras,
    CPU ms of the steps): a frame waits for the GPU to finish the frame two before it."""
    gaps = sorted(((b - a, i) for i, (a, b) in enumerate(zip(starts, starts[1:]))), reverse=True)
    return [(round(g * 1000, 1), carried[max(0, i - 2):i + 1]) for g, i in gaps[:6] if not fps_cap or g > 1.5 / fps_cap]


def late_frames(starts: list, fps_cap: float | None) -> str:
    """Frames that took more than 1.5 periods of the cap (a vsync'd window shows each as a
    dropped frame), and the longest one: where a capped window's frame rate is lost."""
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    if not gaps:
        return "-"
    late = sum(g > 1.5 / fps_cap for g in gaps) if fps_cap else 0
    return f"{late} late, longest {max(gaps) * 1000:.1f} ms" if fps_cap else f"longest {max(gaps) * 1000:.1f} ms"


DEFAULT_ARCHS = ("784-128-10", "784-512-256-128-10", "cnn")


def arch_text(name: str) -> str:
    """'784-128-10' (MLP shorthand), 'cnn' (the shipped CNN) or an architecture string."""
    from mnist_viz.compute.recipe import CNN_ARCH
    if name == "cnn":
        return CNN_ARCH
    if "(" not in name:
        sizes = [int(v) for v in name.split("-")]
        parts = []
        for a, b in zip(sizes, sizes[1:]):
            parts += [f"Linear({a},{b})", "ReLU()"]
        return ",".join(parts[:-1])
    return name


def bench_arch(name: str, ds, args, size) -> list[str]:
    from rendercanvas.offscreen import RenderCanvas
    from mnist_viz.viz.app import App, AppConfig

    arch = arch_text(name)
    headless, engine = headless_steps_per_s(ds, arch, args.batch, args.seconds)
    print(f"{name}: headless {headless:,.0f} steps/s at batch {args.batch} ({engine})", flush=True)
    app = App(RenderCanvas(size=size, pixel_ratio=1.0), AppConfig(arch=arch, background_load=False, paint_demo=True,
                                                                  autosave=False, evaluate_on_load=False))
    app.wait_for_data()
    if args.gc == "freeze":
        gc.freeze()
    elif args.gc == "default":
        gc.unfreeze()
    if args.all_views:
        from mnist_viz.viz.actions import Action
        app.ui.select_tabs |= {"Embedding", "Histograms", "Runs"}
        app.ui.show_saliency = True
        app.actions.emit(Action.ADD_RUN, "adam lr=0.001 seed=1")
    for _ in range(30):
        app.draw_offscreen()
    t = time.perf_counter()
    for _ in range(60):
        app.rc._process_events()
        app.frame()
    app.fence.drain()
    idle_fps = 60 / (time.perf_counter() - t)
    views = " with every view open and a second run beside it" if args.all_views else ""
    lines = [f"**{name}**{views} ({engine} engine): headless {headless:,.0f} steps/s; idle visualizer {idle_fps:.0f} fps", "",
             "| frames | fps | steps/frame | steps/s | share of headless | GPU ms/frame (median) | CPU ms/frame by "
             "phase (median; viz/frame.py) | frames late (> 1.5 periods), longest | readback in the run |",
             "|---|---|---|---|---|---|---|---|---|"]
    default = app.session.pacer.budget_s
    from mnist_viz.viz.pacing import WINDOW_FPS, frame_budget
    window = frame_budget(False, WINDOW_FPS)
    # (read back, budget, observers on, fps cap): the window as it runs (held to WINDOW_FPS, its
    # budget from that), then uncapped frames in flight and read back with the uncapped budget
    runs = [(False, window, True, WINDOW_FPS), (False, default, True, None), (True, default, True, None)]
    if args.old_window:
        runs.insert(1, (False, default, True, WINDOW_FPS))
    runs += [(False, share / WINDOW_FPS, True, WINDOW_FPS) for share in args.window_shares]
    runs += [(False, ms / 1000, True, None) for ms in args.budgets]

    if args.observers_off:
        runs.append((False, default, False, None))
    observers = app.session.observers
    for read_back, budget, observed, cap in runs:
        app.session.pacer.budget_s = budget
        app.session.observers = observers if observed else []
        r = viz_run(app, args.batch, args.seconds, read_back, cap)
        mode = "read back" if read_back else ("window, held to 60 fps" if cap else "in flight")
        if budget != (window if cap else default):
            mode += f", frame budget {budget * 1000:.1f} ms"
        if not observed:
            mode += ", no timeline snapshots or histogram columns"

        print(f"  {mode}: {r['fps']:.1f} fps, {r['steps_per_frame']:.0f} steps/frame, {r['steps_per_s']:,.0f} steps/s "
              f"({r['steps_per_s'] / headless * 100:.0f}% of headless), GPU {r['gpu_ms']:.2f} ms/frame; "
              f"frames: {r['late']}", flush=True)
        print(f"    garbage collection: {r['gc']}", flush=True)
        if TRACE[0] is not None:
            print(f"    CPU of the frame loop's calls: {TRACE[0].take()}", flush=True)
        if r["late_detail"]:
            print(f"    longest frames (ms, [(steps, extras, CPU ms of steps) of it and the two before]): "
                  f"{r['late_detail']}", flush=True)
        cpu = " ".join(f"{k} {v:.2f}" for k, v in r["cpu_ms"].items())
        print(f"    CPU ms/frame by phase (median): {cpu}", flush=True)
        b, n, big = r["readback"]
        lines.append(f"| {mode} | {r['fps']:.1f} | {r['steps_per_frame']:.0f} | {r['steps_per_s']:,.0f} | "
                     f"{r['steps_per_s'] / headless * 100:.0f}% | {r['gpu_ms']:.2f} | {cpu} | {r['late']} | {b} B in {n} reads "
                     f"(largest {big} B) |")
    app.session.pacer.budget_s = default
    app.session.observers = observers
    app.session.pause()
    return lines + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", default="1600x1000")
    ap.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS))
    ap.add_argument("--all-views", action="store_true", help="every view open and a second run training")
    ap.add_argument("--budgets", type=lambda v: [float(x) for x in v.split(",")], default=[],
                    help="also run 'in flight' with these frame budgets, in ms (the app's: 1/90 s on a GPU)")
    ap.add_argument("--old-window", action="store_true", help="also run the 60 fps window with the uncapped "
                    "frames' budget (1/90 s: the window's budget before pacing.frame_budget)")
    ap.add_argument("--window-shares", type=lambda v: [float(x) for x in v.split(",")], default=[],
                    help="also run the 60 fps window with these shares of its period as the budget, e.g. "
                    "0.75,0.8 (pacing.WORK_SHARE)")
    ap.add_argument("--observers-off", action="store_true", help="also run 'in flight' without the step "
                    "observers (the timeline's snapshots, the histogram columns), which split a frame's steps")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "viz_results.md")
    ap.add_argument("--trace-cpu", action="store_true", help="time a few calls of the frame loop (where a "
                    "long frame's CPU goes)")
    ap.add_argument("--gc", choices=("app", "default", "freeze"), default="app",
                    help="garbage collection as the app sets it up (default), Python's defaults, or frozen "
                         "after each app is built (gc.freeze)")
    args = ap.parse_args()
    if args.trace_cpu:
        TRACE[0] = CpuTrace()

    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset

    dev = get_device()
    ds = load_dataset(bundled_mnist_dir())
    size = tuple(int(v) for v in args.size.split("x"))
    lines = [f"Device: {dev.name}; window {size[0]}x{size[1]}; batch {args.batch}, default recipe, speed "
             f"'max (frame budget)', {args.seconds:.0f} s per row. 'in flight': frames overlap on the GPU as in a "
             "window; 'read back': every frame copied to the CPU (the offscreen screenshot path).", ""]
    for name in args.arch:
        lines += bench_arch(name, ds, args, size)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
