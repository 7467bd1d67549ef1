"""Train several recipes x seeds with our engine and print test accuracy: how the
default recipe was chosen, and how robust the original recipe's 97.5% is.

    python benchmarks/recipe_sweep.py [--seeds 3] [--save-best DIR]
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

# name: (epochs, batch, optimizer kwargs, shift, dropout)
CANDIDATES = {
    "original": (15, 32, dict(optimizer="sgd", lr=0.05, min_lr=0.001, schedule="cosine"), 0, 0.0),
    "sgdm-nesterov-b64-e20-shift2": (20, 64, dict(optimizer="sgd", lr=0.1, min_lr=0.0, momentum=0.9, nesterov=True,
                                                  schedule="cosine"), 2, 0.0),
    "sgdm-nesterov-b64-e20": (20, 64, dict(optimizer="sgd", lr=0.1, min_lr=0.0, momentum=0.9, nesterov=True,
                                           schedule="cosine"), 0, 0.0),
    "sgdm-b128-e30-shift2-wd": (30, 128, dict(optimizer="sgd", lr=0.1, min_lr=0.0, momentum=0.9, nesterov=True,
                                              weight_decay=5e-4, schedule="cosine"), 2, 0.0),
    "adam-b64-e20-shift2": (20, 64, dict(optimizer="adam", lr=2e-3, min_lr=0.0, schedule="cosine"), 2, 0.0),
    "adam-b128-e30-shift2": (30, 128, dict(optimizer="adam", lr=2e-3, min_lr=0.0, schedule="cosine"), 2, 0.0),
    "sgdm-b64-e30-shift2": (30, 64, dict(optimizer="sgd", lr=0.1, min_lr=0.0, momentum=0.9, nesterov=True,
                                         schedule="cosine"), 2, 0.0),
    "sgdm-b64-e20-shift1": (20, 64, dict(optimizer="sgd", lr=0.1, min_lr=0.0, momentum=0.9, nesterov=True,
                                         schedule="cosine"), 1, 0.0),
}


def run(name, seed, ds, save=None):
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run

    epochs, batch, okw, shift, dropout = CANDIDATES[name]
    data = GpuDataset(ds)
    model = mlp([784, 128, 10], dropout, seed=seed)
    okw = {"momentum": 0.0, "nesterov": False, **okw}
    tr = Run(model, data, Recipe(epochs=epochs, batch_size=batch, shift=shift, seed=seed, **okw))
    t = time.perf_counter()
    tr.run_steps(tr.total_steps, per_submit=1024)
    acc = tr.evaluate()["accuracy"]
    dt = time.perf_counter() - t
    if save:
        save_model(save, model, {"recipe": name, "seed": seed, "test_accuracy": f"{acc:.4f}"})
    return acc, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--save", nargs=2, action="append", metavar=("RECIPE", "PATH"), default=[],
                    help="also save seed 0 of RECIPE to PATH")
    args = ap.parse_args()
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    ds = load_dataset(bundled_mnist_dir())
    saves = dict(args.save)
    names = [n for n in CANDIDATES if not args.only or n in args.only.split(",")]
    print("| recipe | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | mean | s/run |")
    print("|---|" + "---|" * (args.seeds + 2))
    for name in names:
        accs, times = [], []
        for seed in range(args.seeds):
            acc, dt = run(name, seed, ds, saves.get(name) if seed == 0 else None)
            accs.append(acc)
            times.append(dt)
        print(f"| {name} | " + " | ".join(f"{a * 100:.2f}" for a in accs)
              + f" | {statistics.mean(accs) * 100:.2f} | {statistics.mean(times):.1f} |", flush=True)


if __name__ == "__main__":
    main()
