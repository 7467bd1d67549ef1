"""Where a compiled CNN step's time goes: each dispatch but the update (pass 1 and, spread,
each conv's backward) with each of its phases (the `// -- ` comments of the generated WGSL)
left out in turn, and with an empty body (the dispatch's floor), each variant timed alone with
timestamp queries, and once with its storage barriers left out. The variants compute nothing
useful; only their time is read (the whole pass minus a variant: what that phase costs).
Read it with care: leaving a phase out changes how the whole kernel compiles (registers,
unrolling), and on the H100 some variants ran slower than the whole pass (benchmarks/NOTES.md).

    python benchmarks/front_profile.py [--batch 32] [--wg 512] [--spread 4]
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
    ap.add_argument("--spread", type=int, default=None, help="parts a row's backward is spread over (default: the compiler's choice)")
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
    step = CompiledStep(model, data, run.metrics, run.optimizer, run.recipe, wg=args.wg, spread=args.spread,
                        merged=False)      # each pass its own entry point: the profile cuts phases out of it
    run.program = step.program
    src = step.source
    print(f"batch {args.batch}, workgroup {step.wg}, backward spread over {step.spread} part(s) a row ({args.arch})")
    for d in step.program.dispatches:
        entry = d.label.split(":", 1)[1]
        if entry == "update":
            continue
        a = src.index(f"fn {entry}(")
        b = src.index("@compute", a)
        head, body, tail = src[:a], src[a:b], src[b:]
        marks = [i for i in range(len(body)) if body.startswith("    // -- ", i)]
        body_end = body.rstrip().rfind("}")

        def timed(name, cut):
            p = dev.pipeline(f"profile-{entry}-{name}", entry, source=head + cut + tail)
            run.program = Program([Dispatch(p, d.bind_group, d.workgroups, "cut")])
            for _ in range(3):                 # the driver's first uses of a pipeline are slow, and an idle
                kernel_breakdown(run, steps=500)   # GPU clocks down while the next variant compiles: not timed
            return min(kernel_breakdown(run, steps=200)["0: cut"] for _ in range(3))

        whole = timed("whole", body)
        print(f"{entry} over {d.workgroups[:2]} workgroups: {whole:.2f} us")
        print(f"  without storage barriers: {timed('nostorage', body.replace('storageBarrier();', '')):.2f} us")
        print(f"  with an empty body: {timed('empty', body[:body.index('{') + 1] + chr(10) + '}' + chr(10)):.2f} us")
        ends = marks[1:] + [body_end]
        for n, (x, y) in enumerate(zip(marks, ends)):
            us = timed(f"drop{n}", body[:x] + body[y:])
            what = body[x:].split("\n", 1)[0].strip()
            print(f"  {whole - us:+8.2f} us  {what[:110]}", flush=True)

if __name__ == "__main__":
    main()
