"""Where pass 2 (the compiled step's update dispatch) spends its time: the dispatch timed whole,
with every block's body left out but one (the same workgroups, each running only the preamble
and returning), with none, and with the optimizer rule replaced by a store that never happens
(the sums kept alive). GPU time from timestamp queries, best of 3 x 200 replays.

    python benchmarks/pass2_profile.py [--nets 784-512-256-128-10] [--batches 32,256]
    (the H100's: benchmarks/logs/pass2_profile_h100.log)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from step_bench import MLPS  # noqa: E402 - also makes the package importable from a checkout


def variant(keep=None, no_rule=False):
    """A CompiledStep whose pass 2 keeps only the blocks named in `keep` (None: all), and with
    `no_rule` sums whose result is kept alive but not applied."""
    from mnist_viz.compute.step_compiler import CompiledStep

    class Variant(CompiledStep):
        def _blocks(self):
            return [(n, g, body if keep is None or n in keep else "") for n, g, body in super()._blocks()]

        @property
        def _rule(self):
            return "keep_rule" if no_rule else super()._rule

        def _update(self):
            text = super()._update()
            if no_rule:
                text = "fn keep_rule(p: u32, g: f32, step: u32, lr: f32) { if (g == 1.0e-30) { params[p] = g; } }\n" + text
            return text
    return Variant


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(MLPS))
    ap.add_argument("--batches", default="32,64,128,256")
    args = ap.parse_args()
    from mnist_viz.compute import step_compiler
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    from train_bench import kernel_breakdown
    data = GpuDataset(load_dataset(bundled_mnist_dir()))

    def update_us(run, cls, **kw):
        step = cls(run.model, data, run.metrics, run.optimizer, run.recipe, **kw)
        run.program = step.program
        for _ in range(2):
            kernel_breakdown(run, steps=300)       # warm-up: a pipeline's first uses are slow
        return min(kernel_breakdown(run, steps=200)["1: compiled:update"] for _ in range(3)), step

    for net in args.nets.split(","):
        for b in [int(v) for v in args.batches.split(",")]:
            run = Run(Sequential(parse(net), seed=0), data, RECIPES["original"].with_changes(batch_size=b),
                      engine="compiled")
            whole, step = update_us(run, variant())
            names = [(n, g) for n, g, _ in step._blocks()]
            rows = [("whole", whole)]
            keep = step_compiler.UNIFORM_STATE
            step_compiler.UNIFORM_STATE = 1 - keep
            rows.append((f"whole, UNIFORM_STATE={1 - keep}", update_us(run, variant())[0]))
            step_compiler.UNIFORM_STATE = keep
            rows.append(("no rule (sums only)", update_us(run, variant(no_rule=True))[0]))
            rows.append(("no block (preamble only)", update_us(run, variant(keep=set()))[0]))
            for n, g in names:
                if n.endswith(".weight") or n == "metrics":
                    rows.append((f"{n} alone ({g} workgroups)", update_us(run, variant(keep={n}))[0]))
            rows.append(("biases alone", update_us(run, variant(keep={n for n, _ in names if n.endswith('.bias')}))[0]))
            print(f"{net} batch {b}: " + "; ".join(f"{k} {v:.2f}" for k, v in rows), flush=True)


if __name__ == "__main__":
    main()
