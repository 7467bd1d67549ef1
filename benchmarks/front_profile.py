"""Where a compiled CNN step's pass 1 spends its time: pass 1 with each of its phases (the
`// -- ` comments of the generated WGSL) left out in turn, each variant timed alone with
timestamp queries, and once with its storage barriers left out. The variants compute nothing
useful; only their time is read (the whole pass minus a variant: what that phase costs).
Read it with care: leaving a phase out changes how the whole kernel compiles (registers,
unrolling), and on the H100 some variants ran slower than the whole pass (benchmarks/NOTES.md).

    python benchmarks/front_profile.py [--batch 32] [--wg 512]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from step_bench import CNNS  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--wg", type=int, default=None)
    ap.add_argument("--arch", default=CNNS[0])
    args = ap.parse_args()
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.program import Dispatch, Program
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    from mnist_viz.compute.step_compiler import CompiledStep
    from train_bench import kernel_breakdown
    dev = get_device()
    data = GpuDataset(load_dataset(bundled_mnist_dir()))
    model = Sequential(parse(args.arch), seed=0)
    run = Run(model, data, RECIPES["original"].with_changes(batch_size=args.batch), engine="compiled")
    step = CompiledStep(model, data, run.metrics, run.optimizer, run.recipe, wg=args.wg)
    run.program = step.program
    group = step.program.dispatches[0].bind_group
    src = step.source
    head, rest = src.split("fn forward_backward", 1)
    pass1, tail = rest.split("@compute @workgroup_size(256)\nfn update", 1)
    marks = [i for i in range(len(pass1)) if pass1.startswith("    // -- ", i)]
    body_end = pass1.rstrip().rfind("}")

    def timed(name, p1):
        source = head + "fn forward_backward" + p1 + "\n@compute @workgroup_size(256)\nfn update" + tail
        p = dev.pipeline(f"profile-{name}", "forward_backward", source=source)
        run.program = Program([Dispatch(p, group, (args.batch, 1, 1), "cut")])
        for _ in range(3):                     # the driver's first uses of a pipeline are slow: not timed
            kernel_breakdown(run, steps=20)
        return min(kernel_breakdown(run, steps=100)["0: cut"] for _ in range(3))

    whole = timed("whole", pass1)
    print(f"batch {args.batch}, workgroup {step.wg}: pass 1 {whole:.2f} us ({args.arch})")
    print(f"  without storage barriers: {timed('nostorage', pass1.replace('storageBarrier();', '')):.2f} us")
    ends = marks[1:] + [body_end]
    for n, (a, b) in enumerate(zip(marks, ends)):
        us = timed(f"drop{n}", pass1[:a] + pass1[b:])
        what = pass1[a:].split("\n", 1)[0].strip()
        print(f"  {whole - us:+8.2f} us  {what[:110]}", flush=True)


if __name__ == "__main__":
    main()
