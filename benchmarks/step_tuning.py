"""Pass-1 workgroup size of the fused step vs batch size: GPU microseconds per step
(timestamp queries) and seconds per epoch. Run on the GPU machine.

    python benchmarks/fused_tuning.py
"""
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

from mnist_viz.compute.data import GpuDataset  # noqa: E402
from mnist_viz.compute.fused import FusedStep  # noqa: E402
from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset  # noqa: E402
from mnist_viz.compute.nn import mlp  # noqa: E402
from mnist_viz.compute.recipe import RECIPES  # noqa: E402
from mnist_viz.compute.run import Run  # noqa: E402
from train_bench import kernel_breakdown  # noqa: E402

ds = load_dataset(bundled_mnist_dir())
data = GpuDataset(ds)
print("| batch | pass-1 workgroup | pass 1 us | pass 2 us | step us (GPU) | encode us (CPU) | s/epoch |")
print("|---|---|---|---|---|---|---|")
for batch in (32, 64, 128, 256):
    for wg in (256, 512, 1024):
        model = mlp([784, 128, 10], seed=0)
        tr = Run(model, data, RECIPES["original"].with_changes(epochs=3, batch_size=batch))
        tr.program = FusedStep(model, data, tr.metrics, tr.optimizer, tr.recipe, wg=wg).program
        tr.run_steps(tr.steps_per_epoch)
        tr.read_flags()
        t = time.perf_counter()
        tr.run_steps(tr.steps_per_epoch, per_submit=512)
        tr.read_flags()
        epoch = time.perf_counter() - t
        b = kernel_breakdown(tr, steps=200)
        vals = list(b.values())
        print(f"| {batch} | {wg} | {vals[0]:.1f} | {vals[1]:.1f} | {vals[2]:.1f} | {vals[3]:.1f} | {epoch:.4f} |", flush=True)
