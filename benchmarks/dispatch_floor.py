"""The floor under any step built from dependent dispatches: GPU time per dispatch of
a kernel that does (almost) nothing, encoded back to back in one compute pass, where
each reads what the previous one wrote (a barrier between them, as between the passes
of our step) and, for contrast, where they touch separate buffers (no barrier).

    python benchmarks/dispatch_floor.py

On the H100 through Vulkan this bounds what a k-dispatch step can reach: k times the
dependent figure, before any arithmetic. Timestamps come from the pass's begin/end.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_timing import gpu_us  # noqa: E402

SHADER = """
@group(0) @binding(0) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    // every invocation reads; one writes: the next dispatch depends on it
    let v = b[g.x % 64u];
    if (g.x == 0u) { b[0] = v + 1u; }
}
"""


def per_dispatch_us(dev, pipe, groups: int, dependent: bool, n: int = 2000) -> float:
    bufs = [dev.buffer(4096, "floor") for _ in range(1 if dependent else 8)]
    layout = pipe.get_bind_group_layout(0)
    bgs = [dev.device.create_bind_group(layout=layout, entries=[{"binding": 0, "resource": {"buffer": b}}])
           for b in bufs]

    def encode(enc, timestamps):
        p = enc.begin_compute_pass(timestamp_writes=timestamps)
        p.set_pipeline(pipe)
        for i in range(n):
            p.set_bind_group(0, bgs[i % len(bgs)])
            p.dispatch_workgroups(groups)
        p.end()
    return gpu_us(dev, encode, n)


def main():
    from mnist_viz.compute.device import get_device
    dev = get_device()
    if "timestamp-query" not in dev.features:
        sys.exit("error: this adapter has no timestamp queries")
    module = dev.device.create_shader_module(code=SHADER)
    pipe = dev.device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    print(f"Device: {dev.name}\n")
    print("| workgroups of 256 | dependent (barrier) us / dispatch | independent us / dispatch |")
    print("|---|---|---|")
    for groups in (1, 32, 132, 528):
        dep = per_dispatch_us(dev, pipe, groups, True)
        ind = per_dispatch_us(dev, pipe, groups, False)
        print(f"| {groups} | {dep:.2f} | {ind:.2f} |", flush=True)


if __name__ == "__main__":
    main()
