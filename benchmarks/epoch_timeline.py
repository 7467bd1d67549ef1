"""Where an epoch's wall time goes beyond its steps' GPU time.

Each submission of `Run.run_steps` gets a timestamp at its start and its end on the GPU (an
empty compute pass before and after its steps), and the CPU's clock is read around each
encode and submit. Printed per network and batch: the epoch's wall time, the GPU's span
(first submission's start to the last one's end), its busy time (the submissions' own spans),
the gaps between submissions on the GPU, and the CPU's time encoding and submitting. An epoch
whose span is near its busy time and whose wall time is near its span is bound by the GPU; gaps
mean the GPU waited for the CPU between submissions; wall minus span is the start and the end
(the first encode, the last read).

    python benchmarks/epoch_timeline.py --nets 784-128-10,784-512-256-128-10 --batches 32,64,256 \\
        --variant 'RAMP=1 DRAW_AFTER=0'
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def timed_epoch(run, per_submit: int) -> dict:
    """One epoch of run.run_steps, each of its submissions between two timestamps; the figures (us)."""
    import numpy as np
    import wgpu
    from mnist_viz.compute.device import get_device
    dev = get_device()
    n = run.steps_per_epoch - run.step % run.steps_per_epoch
    qs = dev.device.create_query_set(type=wgpu.QueryType.timestamp, count=2 * n)
    buf = dev.device.create_buffer(size=16 * n, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
    cpu = {"encode": 0.0, "submit": 0.0, "chunks": 0}

    def submit_chunk(steps):             # Run.submit_chunk with a timestamp before and after the steps
        k = cpu["chunks"]
        a = time.perf_counter()
        enc = dev.device.create_command_encoder()
        enc.begin_compute_pass(timestamp_writes={"query_set": qs, "beginning_of_pass_write_index": 2 * k}).end()
        done = run.advance(enc, steps)
        enc.begin_compute_pass(timestamp_writes={"query_set": qs, "end_of_pass_write_index": 2 * k + 1}).end()
        b = time.perf_counter()
        dev.submit(enc)
        cpu["encode"] += b - a
        cpu["submit"] += time.perf_counter() - b
        cpu["chunks"] += 1
        return done

    run.read_flags()
    run.submit_chunk = submit_chunk
    t0 = time.perf_counter()
    assert run.run_steps(n, per_submit=per_submit) == n
    run.read_flags()
    wall = time.perf_counter() - t0
    del run.submit_chunk
    m = cpu["chunks"]
    enc = dev.device.create_command_encoder()
    enc.resolve_query_set(qs, 0, 2 * m, buf, 0)
    dev.submit(enc)
    ts = np.frombuffer(dev.read(buf, label="timestamps"), np.uint64)[:2 * m].astype(np.float64) / 1000.0   # us
    starts, ends = ts[0::2], ts[1::2]
    gaps = starts[1:] - ends[:-1]
    return {"wall": wall * 1e6, "span": float(ends[-1] - starts[0]), "busy": float(np.sum(ends - starts)),
            "gaps": gaps, "encode": cpu["encode"] * 1e6, "submit": cpu["submit"] * 1e6, "steps": n, "chunks": m}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default="784-128-10,784-512-256-128-10")
    ap.add_argument("--batches", default="32,64,256")
    ap.add_argument("--per-submit", default="512", help="largest submission(s), comma-separated to compare")
    ap.add_argument("--variant", action="append", default=[], metavar="'NAME=V ...'",
                    help="also time with compute/run.py's submission constants set so (RAMP, FIRST_CHUNK, "
                         "DRAW_AFTER), e.g. 'RAMP=1 DRAW_AFTER=0': doubling submissions, the order drawn after "
                         "the first, as before")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up)")
    args = ap.parse_args()
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute import run as run_module
    from mnist_viz.compute.run import Run
    dev = get_device()
    print(f"Device: {dev.name}")
    data = GpuDataset(load_dataset(bundled_mnist_dir()))
    for net in args.nets.split(","):
        for b in map(int, args.batches.split(",")):
            for per, variant in [(p, v) for p in map(int, args.per_submit.split(",")) for v in [""] + args.variant]:
                saved = {k: getattr(run_module, k) for k in ("RAMP", "FIRST_CHUNK", "DRAW_AFTER")}
                for kv in variant.split():
                    name, value = kv.split("=")
                    setattr(run_module, name, type(saved[name])(float(value)))
                run = Run(Sequential(parse(net), seed=0), data,
                          RECIPES["original"].with_changes(epochs=args.epochs + 1, batch_size=b), engine="auto")
                run.run_steps(run.steps_per_epoch, per_submit=per)     # warm-up: pipelines built
                rows = [timed_epoch(run, per) for _ in range(args.epochs)]
                for name, value in saved.items():
                    setattr(run_module, name, value)
                med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "span", "busy", "encode", "submit")}
                gaps = [g for r in rows for g in r["gaps"]]
                s = rows[0]["steps"]
                print(f"{net} b{b} per_submit {per}{' ' + variant if variant else ''} ({rows[0]['chunks']} submissions, {s} steps): "
                      f"wall {med['wall'] / 1e3:.2f} ms ({med['wall'] / s:.2f} us/step), "
                      f"GPU span {med['span'] / 1e3:.2f} ms, busy {med['busy'] / 1e3:.2f} ms ({med['busy'] / s:.2f} us/step), "
                      f"gaps between submissions: sum {sum(gaps) / len(rows) / 1e3:.3f} ms, max {max(gaps):.1f} us; "
                      f"start + end (wall - span) {(med['wall'] - med['span']) / 1e3:.2f} ms; "
                      f"CPU encode {med['encode'] / s:.2f} us/step, submit {med['submit'] / s:.2f} us/step", flush=True)


if __name__ == "__main__":
    main()
