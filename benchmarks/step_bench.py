"""Training speed per network and batch size, ours against JAX and PyTorch in the same run.

Seconds per epoch of 60,000 images (median of timed epochs after warm-up epochs that
build every pipeline / jit), original recipe (He uniform, SGD lr 0.05 cosine to
0.001), for MLPs and CNNs; the ratio to each reference; GPU microseconds per dispatch
of our step (timestamp queries); and the test accuracy of ours and JAX on one recipe.
Run on the GPU machine:

    python benchmarks/step_bench.py --out benchmarks/step_results.md
    python benchmarks/step_bench.py --nets mlp --batches 32 --tune      # workgroup / rows sweep
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

MLPS = ["Linear(784,128),ReLU(),Linear(128,10)",
        "Linear(784,256),ReLU(),Linear(256,128),ReLU(),Linear(128,10)",
        "Linear(784,512),ReLU(),Linear(512,256),ReLU(),Linear(256,128),ReLU(),Linear(128,10)"]
CNNS = ["Conv2d(1,8,5,padding=2),ReLU(),MaxPool2d(2),Conv2d(8,16,3,padding=1),ReLU(),MaxPool2d(2),Flatten(),"
        "Linear(784,64),ReLU(),Linear(64,10)"]


def ours(ds, arch_text, batch, timed, warmup=2, engine="auto", wg=None, rows=None, data=None, spread=None,
         merged=None, resident=False, groups=None, parts=None, order_ahead=True):
    """(median s/epoch, the run) for our step on this network and batch (`order_ahead` False:
    each epoch's order drawn at its start, as before Run.draw_order_ahead)."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    data = data or GpuDataset(ds)
    model = Sequential(parse(arch_text), seed=0)
    run = Run(model, data, RECIPES["original"].with_changes(epochs=timed + warmup, batch_size=batch), engine=engine,
              resident=resident)
    if groups:
        from mnist_viz.compute.resident_step import ResidentStep
        run.program = ResidentStep(model, data, run.metrics, run.optimizer, run.recipe, groups=groups).program
    if (wg or rows or spread or parts or merged is not None) and run.engine == "compiled":
        from mnist_viz.compute.step_compiler import CompiledStep
        run.program = CompiledStep(model, data, run.metrics, run.optimizer, run.recipe, wg=wg, rows=rows,
                                   spread=spread, merged=merged, parts=parts).program
    if not order_ahead:
        run.draw_order_ahead = lambda: None
    times = []
    for _ in range(timed + warmup):
        run.read_flags()
        t = time.perf_counter()
        run.run_steps(run.steps_per_epoch, per_submit=512)
        run.read_flags()
        times.append(time.perf_counter() - t)
    return statistics.median(times[warmup:]), run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default="mlp,cnn")
    ap.add_argument("--batches", default="32,64,128,256")
    ap.add_argument("--timed", type=int, default=3)
    ap.add_argument("--accuracy-epochs", type=int, default=15)
    ap.add_argument("--tune", action="store_true", help="sweep workgroup size and rows per workgroup")
    ap.add_argument("--spread-sweep", default="", help="CNNs: also time the backward spread over these "
                    "parts per row, e.g. 1,2,4,8 (the step compiler picks one by batch size)")
    ap.add_argument("--parts-sweep", default="", help="MLPs: also time each batch row's pass 1 shared over "
                    "these workgroups, e.g. 1,2,4,8 (the step compiler picks one by batch size)")
    ap.add_argument("--rows-parts-sweep", default="", help="MLPs: also time these rows a workgroup x parts a "
                    "row block, optionally w invocations a workgroup, e.g. 2x2,4x2,1x4w1024")
    ap.add_argument("--split-min-sweep", default="", help="MLPs: also time sharing out only layers of at least "
                    "these many weights over a row's parts, e.g. 16384,65536 (step_compiler.PART_SPLIT_MIN)")
    ap.add_argument("--grad-loads-sweep", default="", help="also time these weight loads in flight for the dense "
                    "layers' input gradient, e.g. 4,8,16 (step_compiler.GRAD_LOADS)")
    ap.add_argument("--pass2-sweep", default="", help="also time pass 2 aiming at these invocations over its "
                    "large weights, e.g. 32768,131072 (step_compiler.PASS2_INVOCATIONS picks the row slices)")
    ap.add_argument("--gemm-sweep", default="", help="also time pass 2's staged GEMM with these tiles a workgroup "
                    "side, e.g. 0,4,8,16 (0: the unstaged 4 x 4 tiles; step_compiler.GEMM_TILE)")
    ap.add_argument("--uniform-state-sweep", default="", help="also time the step counter read by every invocation "
                    "(0) or once a workgroup (1) (step_compiler.UNIFORM_STATE)")
    ap.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2", help="also time the step with "
                    "step_compiler.NAME set to each value in turn, e.g. GEMM_DEPTH=1,2,8 (repeatable)")
    ap.add_argument("--variant", action="append", default=[], metavar="'NAME=V NAME=V'", help="also time the step "
                    "with these step_compiler constants set together, e.g. 'PRELOAD=0 GATHER_LOADS=0' (repeatable)")
    ap.add_argument("--variant-breakdown", action="store_true", help="also give every variant's GPU time per "
                    "dispatch (timestamp queries), not only its seconds per epoch")
    ap.add_argument("--order-at-start", action="store_true", help="also time the step with each epoch's order "
                    "drawn at the epoch's start (on an idle GPU) instead of during the epoch before")
    ap.add_argument("--merged-sweep", action="store_true", help="also time the two passes as two pipelines "
                    "and as one (CompiledStep(merged=...); the visualizer merges small networks)")
    ap.add_argument("--resident", action="store_true", help="MLPs: also time the resident step "
                    "(Run(resident=True), compute/resident_step.py) beside the default two-pass step")
    ap.add_argument("--groups-sweep", default="", help="MLPs: also time the resident step with these workgroup "
                    "counts, e.g. 64,96,128 (resident_step.GROUPS)")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--jax-precisions", default="default,float32", help="JAX references at these matmul "
                    "precisions (default: JAX's own, TensorFloat-32 on an H100; float32: true f32 products, "
                    "as ours)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--breakdown-steps", type=int, default=200, help="steps per GPU timestamp measurement (0: none)")
    ap.add_argument("--limit", type=int, help="smoke test on the first N training images")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    from train_bench import kernel_breakdown

    ds = load_dataset(bundled_mnist_dir())
    if args.limit:
        import dataclasses
        ds = dataclasses.replace(ds, train_images=ds.train_images[:args.limit], train_labels=ds.train_labels[:args.limit],
                                 test_images=ds.test_images[:500], test_labels=ds.test_labels[:500])
    dev = get_device()
    batches = [int(b) for b in args.batches.split(",")]
    nets = (MLPS if "mlp" in args.nets else []) + (CNNS if "cnn" in args.nets else [])
    head = [f"Device (ours): {dev.name}"]
    jax_ok = torch_ok = False
    jax_precisions = [p for p in args.jax_precisions.split(",") if p]
    if not args.no_jax:
        try:
            import jax
            head.append(f"JAX {jax.__version__} on {jax.devices()[0].device_kind}")
            from jax_reference import matmul_error
            for p in jax_precisions:
                head.append(f"JAX {p} precision: a 512 x 512 f32 product's largest error "
                            f"{matmul_error(None if p == 'default' else p):.1e} (relative, against float64)")
            jax_ok = True
        except Exception as e:  # noqa: BLE001 - a reference is optional
            head.append(f"JAX unavailable: {e}")
    if not args.no_torch:
        try:
            import torch
            torch_ok = torch.cuda.is_available()
            head.append(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0) if torch_ok else 'no CUDA'}")
        except Exception as e:  # noqa: BLE001
            head.append(f"PyTorch unavailable: {e}")
    print("\n".join(head), flush=True)

    from mnist_viz.compute.data import GpuDataset
    data = GpuDataset(ds)
    rows, details = [], []
    for net in nets:
        arch = parse(net)
        for b in batches:
            row = {"net": arch.short if arch.is_mlp else "CNN", "batch": b}
            t0 = time.perf_counter()
            o, run = ours(ds, net, b, args.timed, data=data)
            print(f"  ours {row['net']} b{b}: {o:.4f} s/epoch ({run.engine}, {time.perf_counter() - t0:.1f} s)", flush=True)
            row.update(ours=o, engine=run.engine, dispatches=len(run.program))
            def variant(key, label, **kw):
                """One more timing of this network and batch with a step-compiler choice forced."""
                gpu = ""
                try:
                    secs, vrun = ours(ds, net, b, 2, warmup=1, data=data, **kw)
                    v = f"{secs:.4f}"
                    if args.variant_breakdown:
                        bd = kernel_breakdown(vrun, steps=args.breakdown_steps or 200) or {}
                        gpu = " (GPU us: " + ", ".join(f"{k.split(':')[-1]} {u:.2f}" for k, u in bd.items()
                                                       if isinstance(u, float)) + ")"
                        row[key + "_gpu"] = {k: round(u, 2) for k, u in bd.items() if isinstance(u, float)}
                except Exception as e:  # noqa: BLE001 - a variant may not fit the device
                    v = str(e).splitlines()[0][:60]
                row[key] = v
                print(f"    {label}: {v} s/epoch{gpu}", flush=True)
            if args.order_at_start:
                variant("order_at_start", "orders drawn at each epoch's start", order_ahead=False)
            if args.resident and arch.is_mlp:
                variant("resident", "resident step", resident=True)
            if args.groups_sweep and arch.is_mlp:
                for g in [int(v) for v in args.groups_sweep.split(",")]:
                    variant(f"groups{g}", f"resident, {g} workgroups", groups=g)
            if args.spread_sweep and run.engine == "compiled" and not arch.is_mlp:
                for parts in [int(p) for p in args.spread_sweep.split(",")]:
                    variant(f"spread{parts}", f"spread {parts}", spread=parts)
            if args.parts_sweep and arch.is_mlp and run.engine == "compiled":
                for parts in [int(p) for p in args.parts_sweep.split(",")]:
                    variant(f"parts{parts}", f"{parts} parts a row", parts=parts)
            if args.rows_parts_sweep and arch.is_mlp and run.engine == "compiled":
                for rp in args.rows_parts_sweep.split(","):
                    rp, _, w = rp.partition("w")
                    r, p = (int(v) for v in rp.split("x"))
                    variant(f"rows{r}_parts{p}" + (f"_wg{w}" if w else ""), f"{r} rows a workgroup, {p} parts a row "
                            f"block" + (f", {w} invocations" if w else ""), rows=r, parts=p, wg=int(w) if w else None)
            def constant_sweep(name, values, key, label):
                """Timings with step_compiler.<name> set to each of `values` in turn."""
                from mnist_viz.compute import step_compiler
                keep = getattr(step_compiler, name)
                for n in [int(v) for v in values.split(",")]:
                    setattr(step_compiler, name, n)
                    variant(f"{key}{n}", label.format(n))
                setattr(step_compiler, name, keep)
            if args.split_min_sweep and arch.is_mlp and run.engine == "compiled":
                constant_sweep("PART_SPLIT_MIN", args.split_min_sweep, "split_min", "parts share layers of {}+ weights")
            if args.merged_sweep and run.engine == "compiled":
                variant("separate", "two pipelines", merged=False)
                variant("merged", "one pipeline", merged=True)
            if args.pass2_sweep and run.engine == "compiled":
                constant_sweep("PASS2_INVOCATIONS", args.pass2_sweep, "pass2_", "pass 2 aiming at {} invocations")
            if args.gemm_sweep and run.engine == "compiled":
                constant_sweep("GEMM_TILE", args.gemm_sweep, "gemm", "pass 2's GEMM in blocks of {0} x {0} tiles")
            for spec in args.sweep if run.engine == "compiled" else []:
                name, _, values = spec.partition("=")
                constant_sweep(name, values, name.lower(), f"{name}={{}}")
            for spec in args.variant if run.engine == "compiled" else []:
                from mnist_viz.compute import step_compiler
                sets = dict(kv.split("=") for kv in spec.split())
                keep = {k: getattr(step_compiler, k) for k in sets}
                for k, v in sets.items():
                    setattr(step_compiler, k, int(v))
                variant("variant " + spec, spec)
                for k, v in keep.items():
                    setattr(step_compiler, k, v)
            if args.uniform_state_sweep and run.engine == "compiled":
                constant_sweep("UNIFORM_STATE", args.uniform_state_sweep, "uniform_state", "UNIFORM_STATE={}")
            if args.grad_loads_sweep and run.engine == "compiled":
                from mnist_viz.compute import step_compiler
                keep = step_compiler.GRAD_LOADS
                for n in [int(v) for v in args.grad_loads_sweep.split(",")]:
                    step_compiler.GRAD_LOADS = n
                    v = ours(ds, net, b, 2, warmup=1, wg=512, data=data)[0]
                    row[f"grad_loads{n}"] = round(v, 4)
                    print(f"    {n} input-gradient loads in flight: {v:.4f} s/epoch", flush=True)
                step_compiler.GRAD_LOADS = keep
            if args.tune and run.engine == "compiled":
                sweep = {}
                for wg in (256, 512, 1024):
                    for r in (1, 2, 4):
                        t0 = time.perf_counter()
                        try:
                            sweep[f"wg{wg}/r{r}"] = ours(ds, net, b, 2, warmup=1, wg=wg, rows=r, data=data)[0]
                        except Exception as e:  # noqa: BLE001 - a variant may not fit the device
                            sweep[f"wg{wg}/r{r}"] = str(e).splitlines()[0][:60]
                        print(f"    wg {wg} rows {r}: {sweep[f'wg{wg}/r{r}']} ({time.perf_counter() - t0:.1f} s)",
                              flush=True)
                row["sweep"] = sweep
                print(f"  sweep {row['net']} b{b}: " + ", ".join(f"{k} {v if isinstance(v, str) else round(v, 4)}"
                                                               for k, v in sweep.items()), flush=True)
            bd = kernel_breakdown(run, steps=args.breakdown_steps) if args.breakdown_steps else None
            if bd:
                details.append((row["net"], b, bd))
            if jax_ok:
                from jax_reference import JaxTrainer, time_epochs
                for p in jax_precisions:
                    jt = JaxTrainer(ds, arch, b, epochs=20, precision=None if p == "default" else p)
                    row[_jax_key(p)] = statistics.median(time_epochs(jt, args.timed, warmup=2))
            if torch_ok:
                from torch_reference import TorchMLP, time_epochs as torch_time
                m = TorchMLP(ds, "cuda", b, epochs=20, arch=arch)
                m.build_graph()
                row["torch_graph"] = statistics.median(torch_time(m.graph_epoch, m.sync, args.timed))
            rows.append(row)
            print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()
                              if k != "sweep"}), flush=True)

    acc = {}
    if args.accuracy_epochs and MLPS[0] in nets:
        o, run = None, None
        from mnist_viz.compute.arch import parse as p2
        t, run = ours(ds, MLPS[0], 32, args.accuracy_epochs, warmup=0, data=data)
        acc["ours"] = run.evaluate()["accuracy"]
        if jax_ok:
            from jax_reference import JaxTrainer
            for p in jax_precisions:
                jt = JaxTrainer(ds, p2(MLPS[0]), 32, epochs=args.accuracy_epochs,
                                precision=None if p == "default" else p)
                for _ in range(args.accuracy_epochs):
                    jt.run_epoch()
                jt.sync()
                acc["jax" if p == "default" else f"jax {p}"] = jt.test_accuracy()
        print(f"accuracy after {args.accuracy_epochs} epochs at batch 32: {acc}", flush=True)

    text = report(head, rows, details, acc, args.accuracy_epochs)
    print("\n" + text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "details": [(n, b, d) for n, b, d in details], "acc": acc},
                                        indent=1))


def _jax_key(precision: str) -> str:
    """The row key of a JAX reference: "jax" for JAX's default precision, "jax_<level>" otherwise."""
    return "jax" if precision == "default" else f"jax_{precision}"


def report(head, rows, details, acc, acc_epochs) -> str:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    ratio = lambda ref, o: f"{fmt(ref and ref / o, '.2f')}{'x' if ref else ''}"
    extra = sorted({k for r in rows for k in r if k.startswith("jax_")})   # JAX at other precisions
    names = {k: f"JAX {k[4:]}" for k in extra}
    lines = head + ["", "Seconds per epoch of 60,000 images (original recipe; median of timed epochs after warm-up).", "",
                    "| network | batch | ours | engine, dispatches/step | JAX (jitted epoch) | "
                    + "".join(f"{names[k]} | " for k in extra) + "PyTorch CUDA graph | JAX / ours | "
                    + "".join(f"{names[k]} / ours | " for k in extra) + "graph / ours |",
                    "|---|---|---|---|---|" + "---|" * (2 * len(extra)) + "---|---|---|"]
    for r in rows:
        o, j, g = r["ours"], r.get("jax"), r.get("torch_graph")
        lines.append(f"| {r['net']} | {r['batch']} | {o:.4f} | {r['engine']}, {r['dispatches']} | {fmt(j, '.4f')} | "
                     + "".join(f"{fmt(r.get(k), '.4f')} | " for k in extra)
                     + f"{fmt(g, '.4f')} | {ratio(j, o)} | " + "".join(f"{ratio(r.get(k), o)} | " for k in extra)
                     + f"{ratio(g, o)} |")
    if acc:
        lines += ["", f"Test accuracy after {acc_epochs} epochs of the original recipe at batch 32 (784-128-10): "
                  + ", ".join(f"{k} {v * 100:.2f}%" for k, v in acc.items())]
    for net, b, bd in details:
        lines += ["", f"GPU time per dispatch, {net}, batch {b} (timestamp queries, mean of 200 replays):", "",
                  "| dispatch | us |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in bd.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
