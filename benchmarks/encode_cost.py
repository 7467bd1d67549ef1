"""The CPU side of a compiled training step: what wgpu costs the CPU to encode, finish and submit
a step, against the GPU's time for it; and a whole epoch encoded from one thread (Run.run_steps)
or from a pool of threads (--threads), CPU time against wall time.

    python benchmarks/encode_cost.py [--threads 2,3]
    (the H100's: benchmarks/logs/encode_cost_h100.log, encode_threads_h100.log)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from step_bench import MLPS  # noqa: E402 - also makes the package importable from a checkout


def threaded_epoch(run, dev, pool, first=16, per_submit=512):
    """One epoch with each chunk encoded and finished on `pool`, submitted in order."""
    futures, chunk, n = [], first, run.steps_per_epoch
    while n > 0:
        k = min(n, chunk, run.total_steps - run.step, run.steps_per_epoch - run.step % run.steps_per_epoch)
        if k <= 0:
            break
        snap = run.step % run.steps_per_epoch == 0
        if snap:                    # the permutation is rewritten: everything before it goes first
            for f in futures:
                dev.queue.submit([f.result()])
            futures = []
            if run._shuffled_epoch != run.epoch:
                run.data.shuffle(run._rng)
                run._shuffled_epoch = run.epoch

        def job(k=k, snap=snap):
            enc = dev.device.create_command_encoder()
            if snap:
                run._snapshot.program.encode(enc)
            run.program.encode(enc, repeat=k)
            return enc.finish()
        futures.append(pool.submit(job))
        run.step += k
        run.metrics.steps += k
        while futures and futures[0].done():
            dev.queue.submit([futures.pop(0).result()])
        n -= k
        chunk = min(chunk * 2, per_submit)
    for f in futures:
        dev.queue.submit([f.result()])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="", help="also encode each epoch on pools of these sizes, e.g. 2,3")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per setting (after one warm-up)")
    args = ap.parse_args()
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    data = GpuDataset(load_dataset(bundled_mnist_dir()))
    dev = get_device()
    print(f"device: {dev.name}")
    run = Run(Sequential(parse(MLPS[0]), seed=0), data, RECIPES["original"].with_changes(batch_size=32, epochs=50),
              engine="compiled")
    for n in (512, 2048, 2048):    # one command buffer of n steps, each phase timed alone (the first: warm-up)
        enc = dev.device.create_command_encoder()
        t0 = time.perf_counter()
        run.program.encode(enc, repeat=n)
        t1 = time.perf_counter()
        cb = enc.finish()
        t2 = time.perf_counter()
        dev.queue.submit([cb])
        t3 = time.perf_counter()
        run.read_flags()
        t4 = time.perf_counter()
        print(f"{parse(MLPS[0]).short} b32, {n} steps: encode {1e6 * (t1 - t0) / n:.2f} us/step, finish "
              f"{1e6 * (t2 - t1) / n:.2f}, submit {1e6 * (t3 - t2) / n:.2f}, GPU wait {1e6 * (t4 - t3) / n:.2f}", flush=True)
    pools = [0] + [int(v) for v in args.threads.split(",") if v]
    for net in MLPS:
        for b in (32, 64):
            run = Run(Sequential(parse(net), seed=0), data, RECIPES["original"].with_changes(batch_size=b, epochs=50),
                      engine="compiled")
            out = []
            for threads in pools:
                pool = ThreadPoolExecutor(threads) if threads else None
                cpu, wall = [], []
                for _ in range(args.epochs + 1):
                    run.read_flags()
                    t0 = time.perf_counter()
                    if pool:
                        threaded_epoch(run, dev, pool)
                    else:
                        run.run_steps(run.steps_per_epoch, per_submit=512)
                    t1 = time.perf_counter()
                    run.read_flags()
                    cpu.append(t1 - t0)
                    wall.append(time.perf_counter() - t0)
                label = f"{threads} threads" if threads else "one thread"
                out.append(f"{label}: epoch {statistics.median(wall[1:]):.4f} s, CPU "
                           f"{1e6 * statistics.median(cpu[1:]) / run.steps_per_epoch:.1f} us/step")
            print(f"{parse(net).short} b{b}: " + " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
