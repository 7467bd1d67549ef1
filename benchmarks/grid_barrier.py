"""What a barrier across the whole grid costs inside one dispatch, against a dispatch boundary.

    python benchmarks/grid_barrier.py [--groups 32,64,128,132] [--iters 2000]

A persistent step (every workgroup resident at once, one per SM) can run many training steps
in one dispatch if its workgroups meet at a barrier between dependent phases: each writes
its share to memory, storageBarrier() (naga emits it at device scope), one invocation adds 1
to a counter with an atomic and spins until every workgroup has, then every invocation reads
what other workgroups wrote. This times that loop with plain loads and with atomic loads on
the reading side, and counts the values read stale (a read that saw the other workgroup's
previous iteration): a barrier that is cheap but wrong must show here.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

sys.path.insert(0, str(ROOT / "benchmarks"))
import numpy as np  # noqa: E402

from gpu_timing import gpu_us  # noqa: E402

SHADER = """
@group(0) @binding(0) var<storage, read_write> arrivals: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read_write> data: array<u32>;
@group(0) @binding(2) var<storage, read_write> errors: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> data_atomic: array<atomic<u32>>;

const G: u32 = {G}u;
const N: u32 = {N}u;
const BARRIER: bool = {BARRIER};

fn grid_sync(k: u32, lid: u32) {
    storageBarrier();                       // this workgroup's writes, made visible (device scope)
    if (BARRIER && lid == 0u) {
        atomicAdd(&arrivals[0], 1u);
        let goal = (k + 1u) * G;
        loop { if (atomicLoad(&arrivals[0]) >= goal) { break; } }
    }
    storageBarrier();                       // everyone waits for invocation 0, then reads
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var bad = 0u;
    for (var it = 0u; it < N; it++) {
        let half = (it & 1u) * G * 256u;
        data[half + w.x * 256u + lid] = it * 7919u + w.x * 256u + lid;
        grid_sync(it, lid);
{READS}
    }
    if (bad > 0u) { atomicAdd(&errors[0], bad); }
    if (bad == 0xffffffffu) { atomicStore(&data_atomic[0], 0u); }   // keeps the binding in the layout
}
"""


def reads_wgsl(k: int, atomic: bool, copies: int = 0) -> str:
    """k independent loads from other workgroups' shares, all issued before any is used; with
    `copies`, every workgroup reads the same few workgroups' shares (a broadcast: workgroup w
    reads share (j + w) % copies, as a reader of one of `copies` copies would)."""
    out = []
    for j in range(k):
        pick = f"((w.x + {j}u) % {copies}u + 1u) % G" if copies else f"(w.x + 1u + (it + {j * 7}u) % max(G - 1u, 1u)) % G"
        out.append(f"        let o{j} = {pick};"
                   f" let i{j} = half + o{j} * 256u + (255u - lid);")
    for j in range(k):
        out.append(f"        let v{j} = " + (f"atomicLoad(&data_atomic[i{j}]);" if atomic else f"data[i{j}];"))
    for j in range(k):
        out.append(f"        if (v{j} != it * 7919u + o{j} * 256u + 255u - lid) {{ bad += 1u; }}")
    return "\n".join(out)


def run(dev, groups: int, iters: int, barrier: bool, atomic: bool, reads: int = 1, copies: int = 0) -> tuple[float, int]:
    code = (SHADER.replace("{G}", str(groups)).replace("{N}", str(iters))
            .replace("{BARRIER}", "true" if barrier else "false").replace("{READS}", reads_wgsl(reads, atomic, copies)))
    module = dev.device.create_shader_module(code=code)
    pipe = dev.device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    arrivals = dev.buffer(256, "arrivals")
    data = dev.buffer(2 * groups * 256 * 4, "data")
    errors = dev.buffer(256, "errors")
    layout = pipe.get_bind_group_layout(0)
    bg = dev.device.create_bind_group(layout=layout, entries=[
        {"binding": 0, "resource": {"buffer": arrivals}}, {"binding": 1, "resource": {"buffer": data}},
        {"binding": 2, "resource": {"buffer": errors}}, {"binding": 3, "resource": {"buffer": data}}])
    errs = []

    def encode(enc, timestamps):
        enc.clear_buffer(arrivals)
        enc.clear_buffer(errors)
        p = enc.begin_compute_pass(timestamp_writes=timestamps)
        p.set_pipeline(pipe)
        p.set_bind_group(0, bg)
        p.dispatch_workgroups(groups)
        p.end()

    best = gpu_us(dev, encode, iters, repeats=4,
                  after=lambda: errs.append(int(np.frombuffer(dev.read(errors, label="errors"), np.uint32)[0])))
    return best, sum(errs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", default="32,64,128,132")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--reads", default="1", help="values each invocation reads from other workgroups per barrier")
    ap.add_argument("--copies", default="", help="also time broadcast reads: every workgroup reading the same "
                    "N shares, e.g. 1,8 (1: all read one workgroup's values)")
    args = ap.parse_args()
    from mnist_viz.compute.device import get_device
    dev = get_device()
    if "timestamp-query" not in dev.features:
        sys.exit("error: this adapter has no timestamp queries")
    print(f"Device: {dev.name}")
    for k in (int(x) for x in args.reads.split(",")):
        print(f"\n{k} value(s) read per invocation per barrier\n")
        print("| workgroups of 256 | loop, no barrier (us/iter) | grid barrier, plain reads (us) | stale reads |"
              " grid barrier, atomic reads (us) | stale reads |")
        print("|---|---|---|---|---|---|")
        for g in (int(x) for x in args.groups.split(",")):
            free, _ = run(dev, g, args.iters, False, False, k)
            plain, e1 = run(dev, g, args.iters, True, False, k)
            atom, e2 = run(dev, g, args.iters, True, True, k)
            print(f"| {g} | {free:.3f} | {plain:.3f} | {e1} | {atom:.3f} | {e2} |", flush=True)
        for c in (int(x) for x in args.copies.split(",") if x):
            print(f"\nbroadcast: every workgroup reads the shares of {c} workgroup(s)\n")
            print("| workgroups of 256 | grid barrier, plain reads (us) | stale | grid barrier, atomic reads (us) | stale |")
            print("|---|---|---|---|---|")
            for g in (int(x) for x in args.groups.split(",")):
                plain, e1 = run(dev, g, args.iters, True, False, k, c)
                atom, e2 = run(dev, g, args.iters, True, True, k, c)
                print(f"| {g} | {plain:.3f} | {e1} | {atom:.3f} | {e2} |", flush=True)


if __name__ == "__main__":
    main()
