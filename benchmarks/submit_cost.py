"""What a frame's queue submission costs the CPU while frames are paced by queue fences, with
the fences seen done in three ways:

  thread   wgpu-py's poll thread, kept polling (blocking) by a token per frame in flight: the
           window's FrameFence (viz/pacing.py);
  main     no token: the frame loop itself polls without blocking (sleeping 0.2 ms between
           polls) while it waits for a frame;
  poller   no token: a thread of our own polls without blocking every `--poll-ms`;
  none     no fence at all: every second frame the loop waits for the whole queue.

Each frame encodes `--steps` compiled training steps of 784-128-10 at batch 64 (the window's
load at 60 fps) and submits them; the submission's CPU time, the frame's and the steps per
second are reported. The question it answers: does the poll thread's blocking poll hold up the
main thread's submissions (benchmarks/NOTES.md)?

    python benchmarks/submit_cost.py [--frames 300] [--steps 500]
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from step_bench import MLPS  # noqa: E402,F401 - also makes the package importable from a checkout


class Fence:
    """Done when the work submitted before it is; with `token`, wgpu-py's poll thread polls for it."""

    def __init__(self, dev, token: bool):
        from wgpu.backends.wgpu_native._api import ffi, lib, libf
        self.done = threading.Event()
        tok = dev.device._poller.get_token() if token else None

        @ffi.callback("void(WGPUQueueWorkDoneStatus, WGPUStringView, void *, void *)")
        def callback(status, message, u1, u2):
            self.done.set()
            if tok is not None:
                tok.set_done()

        self._callback = callback
        info = ffi.new("WGPUQueueWorkDoneCallbackInfo *")
        info.mode = lib.WGPUCallbackMode_AllowProcessEvents
        info.callback = callback
        libf.wgpuQueueOnSubmittedWorkDone(dev.queue._internal, info[0])


def frames(run, dev, mode: str, n: int, steps: int, poll_s: float = 0.0005) -> dict:
    submit, frame, encode, inflight = [], [], [], collections.deque()
    stop = threading.Event()
    if mode == "poller":
        def poll():
            while not stop.is_set():
                dev.device._poll(False)
                time.sleep(poll_s)
        threading.Thread(target=poll, daemon=True).start()
    t_start, done = time.perf_counter(), 0
    for i in range(n):
        t0 = time.perf_counter()
        if mode == "none":
            if i % 2 == 0:
                dev.device._poll(True)
        else:
            while len(inflight) >= 2:
                f = inflight.popleft()
                if mode in ("thread", "poller"):
                    f.done.wait(10)
                else:
                    while not f.done.is_set():
                        dev.device._poll(False)
                        if not f.done.is_set():
                            time.sleep(0.0002)
        te = time.perf_counter()
        enc = dev.device.create_command_encoder()
        k = run.advance(enc, steps)
        if k < steps:
            k += run.advance(enc, steps - k)
        done += k
        t1 = time.perf_counter()
        encode.append(t1 - te)
        dev.submit(enc)
        submit.append(time.perf_counter() - t1)
        if mode != "none":
            inflight.append(Fence(dev, token=mode == "thread"))
        if mode == "main":
            dev.device._poll(False)
        frame.append(time.perf_counter() - t0)
    stop.set()
    dev.device._poll(True)
    wall = time.perf_counter() - t_start
    q = sorted(submit)
    return {"submit_ms": (statistics.median(q) * 1e3, q[int(0.9 * len(q))] * 1e3, q[-1] * 1e3),
            "frame_ms": statistics.median(frame) * 1e3, "encode_ms": statistics.median(encode) * 1e3,
            "steps_s": done / wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--modes", default="thread,main,poller,none,thread,main,poller")
    ap.add_argument("--poll-ms", type=float, default=0.5)
    args = ap.parse_args()
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    dev = get_device()
    print(f"Device: {dev.name}; {args.frames} frames of {args.steps} steps (784-128-10, batch 64)", flush=True)
    data = GpuDataset(load_dataset(bundled_mnist_dir()))
    run = Run(Sequential(parse("Linear(784,128),ReLU(),Linear(128,10)"), seed=0), data,
              RECIPES["default"].with_changes(epochs=100000, batch_size=64), encode_light=True)
    frames(run, dev, "thread", 30, args.steps)          # warm up
    for mode in args.modes.split(","):
        r = frames(run, dev, mode, args.frames, args.steps, args.poll_ms / 1000)
        med, p90, most = r["submit_ms"]
        print(f"  {mode:6s}: submit median {med:.2f} ms, p90 {p90:.2f}, max {most:.2f}; frame {r['frame_ms']:.2f} ms; "
              f"encode {r['encode_ms']:.2f} ms; {r['steps_s']:,.0f} steps/s", flush=True)


if __name__ == "__main__":
    main()
