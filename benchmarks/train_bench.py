"""Training benchmark: our engine against PyTorch eager and PyTorch with the whole
step as a CUDA graph, on the same GPU in the same run (PyTorch CPU where there is
no CUDA). Recipe: the original project's (784-128-10, He uniform, SGD without
momentum, lr 0.05 cosine to 0.001).

    python benchmarks/train_bench.py --out benchmarks/results.md

Prints a Markdown table (and writes it to --out): seconds per epoch at batch 32,
64, 128, 256 for each, the ratios, and test accuracy after 15 epochs at batch 32.
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
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


def ours_epoch_times(ds, batch, epochs_timed, engine="auto", warmup=2):
    """Seconds per epoch (median of timed epochs after warm-up epochs, which let
    the GPU clocks settle and build every pipeline)."""
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run

    data = GpuDataset(ds)
    model = mlp([784, 128, 10], seed=0)
    tr = Run(model, data, RECIPES["original"].with_changes(epochs=epochs_timed + warmup, batch_size=batch),
             engine=engine)
    times = []
    for e in range(epochs_timed + warmup):
        tr.read_flags()  # sync
        t = time.perf_counter()
        tr.run_steps(tr.steps_per_epoch, per_submit=512)
        tr.read_flags()
        times.append(time.perf_counter() - t)
    return statistics.median(times[warmup:]), tr, data


def ours_accuracy_run(ds, epochs=15, batch=32):
    """The full original recipe; per-epoch times and final test accuracy."""
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run

    data = GpuDataset(ds)
    model = mlp([784, 128, 10], seed=0)
    tr = Run(model, data, RECIPES["original"].with_changes(epochs=epochs, batch_size=batch))
    times = []
    for _ in range(epochs):
        tr.read_flags()
        t = time.perf_counter()
        tr.run_steps(tr.steps_per_epoch, per_submit=512)
        tr.read_flags()
        times.append(time.perf_counter() - t)
    return times, tr.evaluate()["accuracy"], data.nbytes, tr


def kernel_breakdown(tr, steps=200):
    """GPU time per dispatch of the step program via timestamp queries (if supported)."""
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.program import Program
    import numpy as np
    import wgpu

    dev = get_device()
    if "timestamp-query" not in dev.features:
        return None
    out = {}
    # a program that encodes its own chunk (the resident step: one dispatch runs many steps) is
    # timed whole only
    for i, d in enumerate(tr.program.dispatches if isinstance(tr.program, Program) else []):
        qs = dev.device.create_query_set(type=wgpu.QueryType.timestamp, count=2)
        buf = dev.device.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
        enc = dev.device.create_command_encoder()
        Program([d]).encode(enc, repeat=steps, timestamps={"query_set": qs, "beginning_of_pass_write_index": 0,
                                                           "end_of_pass_write_index": 1})
        enc.resolve_query_set(qs, 0, 2, buf, 0)
        dev.submit(enc)
        t0, t1 = np.frombuffer(dev.read(buf, label="timestamps"), np.uint64)
        out[f"{i}: {d.label}"] = (t1 - t0) / steps / 1000.0  # WebGPU timestamps are nanoseconds
    # the whole step, as replayed
    qs = dev.device.create_query_set(type=wgpu.QueryType.timestamp, count=2)
    buf = dev.device.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
    enc = dev.device.create_command_encoder()
    t = time.perf_counter()
    tr.program.encode(enc, repeat=steps, timestamps={"query_set": qs, "beginning_of_pass_write_index": 0,
                                                     "end_of_pass_write_index": 1})
    encode_us = (time.perf_counter() - t) / steps * 1e6
    enc.resolve_query_set(qs, 0, 2, buf, 0)
    dev.submit(enc)
    t0, t1 = np.frombuffer(dev.read(buf, label="timestamps"), np.uint64)
    out["whole step (GPU)"] = (t1 - t0) / steps / 1000.0
    out["whole step (encode, CPU)"] = encode_us
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="32,64,128,256")
    ap.add_argument("--timed-epochs", type=int, default=3)
    ap.add_argument("--torch-timed-epochs", type=int, default=1)
    ap.add_argument("--accuracy-epochs", type=int, default=15)
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--limit", type=int, help="smoke test on the first N training images")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    args = ap.parse_args()

    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset

    ds = load_dataset(bundled_mnist_dir())
    if args.limit:
        import dataclasses
        ds = dataclasses.replace(ds, train_images=ds.train_images[:args.limit], train_labels=ds.train_labels[:args.limit])
    dev = get_device()
    batches = [int(b) for b in args.batches.split(",")]
    lines = [f"Device (ours): {dev.name}, adapter type {dev.info.get('adapter_type')}"]

    torch_dev = None
    if not args.skip_torch:
        try:
            import torch
            torch_dev = "cuda" if torch.cuda.is_available() else "cpu"
            lines.append(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0) if torch_dev == 'cuda' else 'CPU'}")
        except ImportError:
            lines.append("PyTorch not installed: no reference")

    rows = []
    for b in batches:
        ours, tr, data = ours_epoch_times(ds, b, args.timed_epochs)
        row = {"batch": b, "ours": ours, "engine": tr.engine, "dispatches": len(tr.program)}
        print(f"ours batch {b}: {ours:.4f} s/epoch ({tr.engine}, {len(tr.program)} dispatches/step)", flush=True)
        if torch_dev:
            from torch_reference import TorchMLP, time_epochs
            m = TorchMLP(ds, torch_dev, b, epochs=15)
            m.eager_epoch() if torch_dev == "cuda" else None  # warm-up (cuBLAS handles, allocator)
            row["eager"] = statistics.median(time_epochs(m.eager_epoch, m.sync, args.torch_timed_epochs))
            print(f"torch eager batch {b}: {row['eager']:.4f} s/epoch", flush=True)
            if torch_dev == "cuda":
                m.build_graph()
                row["graph"] = statistics.median(time_epochs(m.graph_epoch, m.sync, args.timed_epochs))
                print(f"torch cuda graph batch {b}: {row['graph']:.4f} s/epoch", flush=True)
        rows.append(row)

    graph_s, graph_tr, _ = ours_epoch_times(ds, 32, args.timed_epochs, engine="graph")
    print(f"ours, autograd trace (graph engine) batch 32: {graph_s:.4f} s/epoch ({len(graph_tr.program)} dispatches/step)")
    graph_breakdown = kernel_breakdown(graph_tr)
    acc_times, acc, data_bytes, tr32 = ours_accuracy_run(ds, args.accuracy_epochs)
    print("ours, original recipe, per-epoch seconds: " + " ".join(f"{t:.4f}" for t in acc_times))
    torch_acc = None
    if torch_dev == "cuda":
        from torch_reference import TorchMLP
        m = TorchMLP(ds, torch_dev, 32, epochs=args.accuracy_epochs)
        m.build_graph()
        for _ in range(args.accuracy_epochs):
            m.graph_epoch()
        m.sync()
        torch_acc = m.test_accuracy()
    breakdown = kernel_breakdown(tr32)

    table = ["| batch | ours s/epoch | PyTorch eager s/epoch | PyTorch CUDA graph s/epoch | eager / ours (x) | graph / ours (x) |",
             "|---|---|---|---|---|---|"]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for r in rows:
        e, g, o = r.get("eager"), r.get("graph"), r["ours"]
        table.append(f"| {r['batch']} | {o:.4f} | {fmt(e, '.3f')} | {fmt(g, '.4f')} | "
                     f"{fmt(e and e / o, '.1f')} | {fmt(g and g / o, '.1f')} |")
    table.append("")
    table.append(f"Original recipe, batch 32, {args.accuracy_epochs} epochs: ours {acc * 100:.2f}% test accuracy "
                 f"(median {statistics.median(acc_times):.4f} s/epoch)"
                 + (f"; PyTorch CUDA graph {torch_acc * 100:.2f}%" if torch_acc is not None else ""))
    table.append(f"The general autograd trace (`--engine graph`, {len(graph_tr.program)} dispatches a step) "
                 f"at batch 32: {graph_s:.4f} s/epoch.")
    table.append(f"Training set resident on the GPU: {data_bytes / 1e6:.1f} MB (u8 images + labels, test set, permutation)")
    if breakdown:
        table.append("")
        table.append("GPU time per dispatch, batch 32 (timestamp queries, mean over 200 replays):")
        table.append("")
        table.append("| dispatch | us |")
        table.append("|---|---|")
        for k, v in breakdown.items():
            table.append(f"| {k} | {v:.2f} |")
    if graph_breakdown:
        table.append("")
        table.append("The same for the autograd trace (`--engine graph`), batch 32:")
        table.append("")
        table.append("| dispatch | us |")
        table.append("|---|---|")
        for k, v in graph_breakdown.items():
            table.append(f"| {k} | {v:.2f} |")
    text = "\n".join(lines + [""] + table) + "\n"
    print()
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
