"""Can a WGSL shader reach this GPU's tensor cores, and how fast is a product there?

    python benchmarks/coop_matrix_probe.py [--shapes 32x784x512,256x784x512] [--out FILE]

JAX's default f32 matmuls run on an H100's tensor cores in TensorFloat-32; our shaders do true
f32 products on the FP32 units. wgpu-native has an experimental feature, "cooperative-matrix"
(Vulkan VK_KHR_cooperative_matrix; WGSL `enable wgpu_cooperative_matrix`, `coop_mat16x16<f16, A>`),
that reaches the tensor cores from WGSL with f16 operands and f32 accumulators. This prints
whether the adapter offers it, and times one [M, K] x [K, N] product in it (each subgroup of 32
invocations a 32 x 32 block of 2 x 2 16 x 16 tiles, operands straight from memory) against a
naive f32 product (one output vec4 an invocation, K walked in order: a baseline, not the step's
tuned forward), with each one's largest error against float64 on the host.

On the H100 (wgpu-py 0.32): the adapter lists "cooperative-matrix", but wgpu-native refuses a
device that asks for it ("experimental features are not enabled"; its C API has no switch for
them), so the tensor-core column reads "not offered" (logs/coop_matrix_*_h100.*).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import numpy as np  # noqa: E402
import wgpu  # noqa: E402

from gpu_timing import gpu_us  # noqa: E402

COOP = """
enable f16;
enable wgpu_cooperative_matrix;

@group(0) @binding(0) var<storage, read> a: array<f16>;            // [M, K], rows
@group(0) @binding(1) var<storage, read> b: array<f16>;            // [K, N], rows
@group(0) @binding(2) var<storage, read_write> c: array<f32>;      // [M, N], rows
@group(0) @binding(3) var<storage, read> zeros: array<f32>;        // a 16 x 16 tile of 0 (the accumulators' start)

const M: u32 = {M}u;
const N: u32 = {N}u;
const K: u32 = {K}u;

// One subgroup (32 invocations) a workgroup, a 32 x 32 block of C as 2 x 2 tiles of 16 x 16.
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3<u32>) {
    let r = wg.y * 32u;
    let col = wg.x * 32u;
    var c00 = coopLoad<coop_mat16x16<f32, C>>(&zeros[0], 16u);
    var c01 = c00;
    var c10 = c00;
    var c11 = c00;
    for (var k = 0u; k < K; k += 16u) {
        let a0 = coopLoad<coop_mat16x16<f16, A>>(&a[r * K + k], K);
        let a1 = coopLoad<coop_mat16x16<f16, A>>(&a[(r + 16u) * K + k], K);
        let b0 = coopLoad<coop_mat16x16<f16, B>>(&b[k * N + col], N);
        let b1 = coopLoad<coop_mat16x16<f16, B>>(&b[k * N + col + 16u], N);
        c00 = coopMultiplyAdd(a0, b0, c00);
        c01 = coopMultiplyAdd(a0, b1, c01);
        c10 = coopMultiplyAdd(a1, b0, c10);
        c11 = coopMultiplyAdd(a1, b1, c11);
    }
    coopStore(c00, &c[r * N + col], N);
    coopStore(c01, &c[r * N + col + 16u], N);
    coopStore(c10, &c[(r + 16u) * N + col], N);
    coopStore(c11, &c[(r + 16u) * N + col + 16u], N);
}
"""

F32 = """
@group(0) @binding(0) var<storage, read> a: array<f32>;            // [M, K], rows
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;      // [K, N / 4], rows
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;  // [M, N / 4], rows

const M: u32 = {M}u;
const N4: u32 = {N4}u;
const K: u32 = {K}u;

// One output vec4 an invocation: row gid.y, columns 4 gid.x .. 4 gid.x + 3; four loads in flight.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= N4) { return; }
    let r = gid.y;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < K; k += 4u) {
        let x = vec4<f32>(a[r * K + k], a[r * K + k + 1u], a[r * K + k + 2u], a[r * K + k + 3u]);
        let w0 = b[k * N4 + gid.x];
        let w1 = b[(k + 1u) * N4 + gid.x];
        let w2 = b[(k + 2u) * N4 + gid.x];
        let w3 = b[(k + 3u) * N4 + gid.x];
        acc += x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
    }
    c[r * N4 + gid.x] = acc;
}
"""


class _Dev:
    """The three calls gpu_timing.gpu_us makes of a device."""

    def __init__(self, device):
        self.device = device

    def submit(self, enc):
        self.device.queue.submit([enc.finish()])

    def read(self, buf, label=""):
        return self.device.queue.read_buffer(buf)


def _buffer(device, array):
    return device.create_buffer_with_data(data=np.ascontiguousarray(array).tobytes(),
                                          usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)


def time_product(dev, source, a, b, m, n, grid, reps=200):
    """(GPU us per product, C as numpy) for `source` with operands a, b."""
    d = dev.device
    out = d.create_buffer(size=m * n * 4, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
    module = d.create_shader_module(code=source)
    pipe = d.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    buffers = [_buffer(d, a), _buffer(d, b), out]
    if "zeros" in source:
        buffers.append(_buffer(d, np.zeros(256, np.float32)))
    group = d.create_bind_group(layout=pipe.get_bind_group_layout(0), entries=[
        {"binding": i, "resource": {"buffer": buf}} for i, buf in enumerate(buffers)])

    def encode(enc, ts):
        p = enc.begin_compute_pass(timestamp_writes=ts)
        p.set_pipeline(pipe)
        p.set_bind_group(0, group)
        for _ in range(reps):
            p.dispatch_workgroups(*grid)
        p.end()

    us = gpu_us(dev, encode, reps)
    c = np.frombuffer(d.queue.read_buffer(out), np.float32).reshape(m, n)
    return us, c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="32x784x512,64x784x512,256x784x512,256x512x256",
                    help="M x K x N products (multiples of 32, K of 16)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    lines = [f"Adapter: {adapter.info.get('device', '?')} ({adapter.info.get('backend_type', '?')})"]
    have = sorted(f for f in adapter.features if "coop" in f or "subgroup" in f or f == "shader-f16")
    coop = "cooperative-matrix" in adapter.features
    lines.append(f"Features of interest: {', '.join(have) or 'none'}; cooperative matrices: {'yes' if coop else 'no'}")
    features = [f for f in ("timestamp-query", "timestamp-query-inside-passes", "shader-f16", "cooperative-matrix")
                if f in adapter.features]
    try:
        dev = _Dev(adapter.request_device_sync(required_features=features))
    except Exception as e:  # noqa: BLE001 - an experimental feature the device may refuse
        lines.append(f"A device with cooperative matrices was refused: {str(e).splitlines()[0][:120]}")
        coop = False
        dev = _Dev(adapter.request_device_sync(required_features=[f for f in features if f != "cooperative-matrix"]))
    rng = np.random.default_rng(0)
    lines += ["", "| M x K x N | f32, one vec4 an invocation (us) | GFLOP/s | error | f16 tensor cores (us) | GFLOP/s "
              "| error |", "|---|---|---|---|---|---|---|"]
    for shape in args.shapes.split(","):
        m, k, n = (int(v) for v in shape.split("x"))
        a = rng.uniform(0, 1, (m, k)).astype(np.float32)                  # images / ReLU outputs: >= 0
        b = rng.uniform(-0.08, 0.08, (k, n)).astype(np.float32)           # He-uniform weights of fan-in 784
        want = a.astype(np.float64) @ b.astype(np.float64)
        err = lambda c: float(np.max(np.abs(c - want)) / np.max(np.abs(want)))
        flops = 2.0 * m * n * k / 1e3                                     # per us -> GFLOP/s
        us32, c32 = time_product(dev, F32.replace("{M}", str(m)).replace("{N4}", str(n // 4)).replace("{K}", str(k)),
                                 a, b, m, n, ((n // 4 + 63) // 64, m, 1))
        row = f"| {m} x {k} x {n} | {us32:.2f} | {flops / us32:.0f} | {err(c32):.1e} | "
        if coop:
            try:
                us16, c16 = time_product(dev, COOP.replace("{M}", str(m)).replace("{N}", str(n)).replace("{K}", str(k)),
                                         a.astype(np.float16), b.astype(np.float16), m, n, (n // 32, m // 32, 1))
                row += f"{us16:.2f} | {flops / us16:.0f} | {err(c16):.1e} |"
            except Exception as e:  # noqa: BLE001 - the feature is experimental: say how it failed
                row += f"failed: {str(e).splitlines()[0][:80]} | - | - |"
        else:
            row += "not offered | - | - |"
        lines.append(row)
        print(row, flush=True)
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
