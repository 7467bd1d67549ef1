"""Pass 2 of the compiled step with its large weights' batch rows split over 1, 2, 4 and 8
invocations (step_compiler.row_slices), for every MLP of the benchmark at batch 32-256: GPU time
of the update dispatch and of the whole step (timestamp queries, best of 3 x 200 replays).

    python benchmarks/pass2_slices.py        (the H100's: benchmarks/logs/pass2_slices_h100.log)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from step_bench import MLPS  # noqa: E402 - also makes the package importable from a checkout


def main():
    from mnist_viz.compute import step_compiler
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    from train_bench import kernel_breakdown
    data = GpuDataset(load_dataset(bundled_mnist_dir()))
    for net in MLPS:
        for b in (32, 64, 128, 256):
            out = []
            for sl in (1, 2, 4, 8):
                run = Run(Sequential(parse(net), seed=0), data, RECIPES["original"].with_changes(batch_size=b),
                          engine="compiled")
                step = step_compiler.CompiledStep(run.model, data, run.metrics, run.optimizer, run.recipe, slices=sl)
                run.program = step.program
                for _ in range(2):
                    kernel_breakdown(run, steps=300)       # warm-up: a pipeline's first uses are slow
                bd = min((kernel_breakdown(run, steps=200) for _ in range(3)), key=lambda d: d["1: compiled:update"])
                out.append(f"{sl} slices: update {bd['1: compiled:update']:6.2f} step {bd['whole step (GPU)']:6.2f}")
            print(f"{parse(net).short} b{b}: " + " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
