"""Where a resident step's time goes: GPU time of each phase run as a dispatch of its own
(phase mode, the same generated code), beside the persistent kernel's time a step.

    python benchmarks/resident_profile.py [--nets mlp] [--batches 32,256] [--groups 128]

A phase alone pays a dispatch's launch and drain (about 2 us on the H100: dispatch_floor.py)
that the persistent kernel pays once a chunk; the persistent kernel pays a barrier across the
grid instead after each phase (about 1.5 us: grid_barrier.py).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from gpu_timing import gpu_us  # noqa: E402
from step_bench import MLPS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="32,256")
    ap.add_argument("--groups", type=int, default=None)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--wg", default="256", help="invocations a workgroup, e.g. 256,512,1024")
    ap.add_argument("--ablations", action="store_true", help="also time the persistent kernel with each part "
                    "of a phase left out in turn (resident_step.ABLATIONS; the step is then wrong, its time is not)")
    ap.add_argument("--nets", default=",".join(str(i) for i in range(len(MLPS))), help="indices into step_bench.MLPS")
    args = ap.parse_args()
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.program import Program
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.resident_step import ResidentStep
    from mnist_viz.compute.run import Run

    dev = get_device()
    data = GpuDataset(load_dataset(bundled_mnist_dir()))
    print(f"Device: {dev.name}")
    ints = lambda text: [int(v) for v in text.split(",")]
    for i, b, wg in itertools.product(ints(args.nets), ints(args.batches), ints(args.wg)):
        model = Sequential(parse(MLPS[i]), seed=0)
        recipe = RECIPES["original"].with_changes(batch_size=b)
        run = Run(model, data, recipe, resident=True)
        kw = {"groups": args.groups} if args.groups else {}
        kw["wg"] = wg
        whole = ResidentStep(model, data, run.metrics, run.optimizer, recipe, persistent=True, **kw)
        phases = ResidentStep(model, data, run.metrics, run.optimizer, recipe, persistent=False, **kw)
        n = args.steps
        print(f"\n{parse(MLPS[i]).short}, batch {b}, {whole.groups} workgroups of {wg}\n")
        print("| phase (a dispatch of its own) | us |\n|---|---|")
        total = 0.0
        seen = set()
        for d in phases.chunk_dispatches(2)[:-1]:
            if d.label in seen:
                continue
            seen.add(d.label)
            us = gpu_us(dev, lambda enc, ts: Program([d]).encode(enc, repeat=n, timestamps=ts), n)
            if d.label != "resident:first":
                total += us
            print(f"| {d.label} | {us:.2f} |", flush=True)
        print(f"| sum of a step's phases (uf0, the rest) | {total:.2f} |")
        us = gpu_us(dev, lambda enc, ts: phases.program.encode(enc, repeat=n, timestamps=ts), n)
        print(f"| phase mode, a step | {us:.2f} |")
        us = gpu_us(dev, lambda enc, ts: whole.program.encode(enc, repeat=n, timestamps=ts), n)
        print(f"| persistent kernel, a step | {us:.2f} |", flush=True)
        if args.ablations:
            from mnist_viz.compute.resident_step import ABLATIONS
            print("\n| persistent kernel without | us a step | saved |\n|---|---|---|")
            every = set(ABLATIONS) - {"sync"}
            for name, cut in [(a, {a}) for a in ABLATIONS] + [("all but the barriers", every),
                                                               ("all", set(ABLATIONS))]:
                step = ResidentStep(model, data, run.metrics, run.optimizer, recipe, persistent=True,
                                    ablate=cut, **kw)
                for _ in range(2):      # warm: the first replays of a new pipeline are slow
                    v = gpu_us(dev, lambda enc, ts: step.program.encode(enc, repeat=n, timestamps=ts), n)
                print(f"| {name} | {v:.2f} | {us - v:.2f} |", flush=True)


if __name__ == "__main__":
    main()
