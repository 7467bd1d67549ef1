"""A wide first Linear layer's forward as a tiled matrix product of its own, ahead of pass 1.

Pass 1 runs one workgroup per batch row (or two), so each row streams the whole first weight
matrix through one multiprocessor: for 784-512 that is 1.6 MB a row, and at batch 32 the H100's
per-multiprocessor L2 bandwidth made it 15 of pass 1's 55 us while 100 multiprocessors idled.
Here two dispatches do that layer for the whole batch:

  first_gather  one invocation per input element: the batch's images, through the permutation
                and shift, into the layer's input rows in scratch (pass 2 reads them too);
  first_layer   X W as tiles of TM rows x TN outputs, each K-slice of the sum a workgroup
                (split K keeps ~128 workgroups busy at batch 32): X and W pieces of TK
                staged in workgroup memory, each invocation RM rows x 4 outputs in vec4
                registers; the slices' partial products go to scratch.

Pass 1 then starts by folding the slices, adding the bias and applying the ReLU and dropout
(its first phase), and carries on from the layer's output; the first layer has no input
gradient, so the backward is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

TM, TN, TK, RM = 32, 64, 32, 4       # tile rows, tile outputs, K staged at a time, rows an invocation
THREADS = (TM // RM) * (TN // 4)     # 128
GATHER = 256                         # invocations of a gather workgroup
TARGET = 128                         # workgroups the split of K aims for (an H100 has 132 SMs)


@dataclass
class Plan:
    """Tiles and K-slices of one first layer at one batch size, and its scratch region."""
    b: int
    n_in: int
    n_out: int
    slices: int
    parts: int = 0                   # scratch offset (floats, vec4-aligned) of the slices' products

    @property
    def grid(self) -> tuple[int, int, int]:
        return -(-self.b // TM), self.n_out // TN, self.slices

    @property
    def part_floats(self) -> int:
        return self.slices * self.b * self.n_out


def plan(b: int, n_in: int, n_out: int) -> Plan | None:
    """The plan, or None when the outputs do not come in tiles of TN."""
    if n_out % TN:
        return None
    tiles = -(-b // TM) * (n_out // TN)
    slices = max(1, min(8, TARGET // tiles, n_in // (2 * TK)))
    return Plan(b, n_in, n_out, slices)


def shared_bytes() -> int:
    return 4 * (TM * TK + TK * TN)


def shader(L, p: Plan, pixel) -> str:
    """WGSL of entry points `first_gather` and `first_layer` for Linear layer L (its plan from
    compute/step_compiler.py): `pixel(s, k, row)` is the WGSL of input element k of batch row
    `row`, dataset sample s."""
    g, k = L.n_out // 4, L.n_in
    accs = range(RM)
    fmas = "\n".join(f"            a{q} = fma(vec4<f32>(first_x[(tr * {RM}u + {q}u) * {TK}u + kk]), w, a{q});" for q in accs)
    stores = "\n".join(f"""    if (m0 + tr * {RM}u + {q}u < B) {{
        scratch4[{p.parts // 4}u + (ks * B + m0 + tr * {RM}u + {q}u) * {g}u + c0 + tc] = a{q};
    }}""" for q in accs)
    return f"""
var<workgroup> first_x: array<f32, {TM * TK}>;          // TM rows x TK inputs of X
var<workgroup> first_w: array<vec4<f32>, {TK * TN // 4}>;   // TK inputs x TN outputs of W

@compute @workgroup_size({GATHER})
fn first_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {{
    // -- the batch's images, through the permutation and shift, into layer {L.index}'s input rows
    let i = gid.x + gid.y * nwg.x * {GATHER}u;
    if (i >= B * {k}u) {{ return; }}
    let row = i / {k}u;
    let kk = i % {k}u;
    let step = atomicLoad(&state.step);  // pass 1, after this, reads the same step
    let pos = (step % ((N + B - 1u) / B)) * B + row;
    var v = 0.0;
    if (pos < N) {{ v = {pixel("perm[pos]", "kk", "row")}; }}
    scratch[{L.sx}u + i] = v;
}}

@compute @workgroup_size({THREADS})
fn first_layer(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    // -- layer {L.index}: Linear({k},{L.n_out}) forward, X W for rows TM x, outputs TN y, K-slice z of {p.slices}:
    //    invocation (rows tr * {RM} .. + {RM - 1}, outputs 4 tc .. 4 tc + 3)
    let t = lid.x;
    let m0 = wgid.x * {TM}u;
    let c0 = wgid.y * {TN // 4}u;
    let ks = wgid.z;
    let tr = t / {TN // 4}u;
    let tc = t % {TN // 4}u;
    let k_end = (ks + 1u) * {k}u / {p.slices}u;
{chr(10).join(f"    var a{q} = vec4<f32>(0.0);" for q in accs)}
    for (var k0 = ks * {k}u / {p.slices}u; k0 < k_end; k0 += {TK}u) {{
        for (var i = t; i < {TM * TK}u; i += {THREADS}u) {{
            let r = m0 + i / {TK}u;
            let kk = k0 + i % {TK}u;
            first_x[i] = select(0.0, scratch[{L.sx}u + min(r, B - 1u) * {k}u + min(kk, {k - 1}u)], r < B && kk < k_end);
        }}
        for (var i = t; i < {TK * TN // 4}u; i += {THREADS}u) {{
            let kk = k0 + i / {TN // 4}u;
            first_w[i] = select(vec4<f32>(0.0), params4[{L.w // 4}u + min(kk, {k - 1}u) * {g}u + c0 + i % {TN // 4}u], kk < k_end);
        }}
        workgroupBarrier();
        for (var kk = 0u; kk < {TK}u; kk++) {{
            let w = first_w[kk * {TN // 4}u + tc];
{fmas}
        }}
        workgroupBarrier();
    }}
{stores}
}}
"""


def fold(L, p: Plan, next_sx: int) -> str:
    """Pass 1's first phase: layer L's output for its rows from the K-slices' products, the bias,
    the ReLU and the dropout, into act and the next layer's input rows."""
    act = "max(z, 0.0)" if L.relu else "z"
    drop = ""
    if L.dropout:
        drop = (f"\n        if (!keep({L.dropout_seed}u, step, r0 + rr, {L.n_out}u, j, {L.dropout:.9g})) {{ v = 0.0; }}"
                f" else {{ v = v * {1.0 / (1.0 - L.dropout):.9g}; }}")
    return f"""
    // -- layer {L.index}'s output from the first_layer dispatch's {p.slices} K-slices, its bias and activation: into act
    for (var i = t; i < R * {L.n_out}u; i += WG) {{
        let rr = i / {L.n_out}u;
        let j = i % {L.n_out}u;
        let row = min(r0 + rr, B - 1u);
        var z = params[{L.b}u + j];
        for (var s = 0u; s < {p.slices}u; s++) {{ z += scratch[{p.parts}u + (s * B + row) * {L.n_out}u + j]; }}
        var v = {act};{drop}
        act[rr * ROW + {L.act_out}u + j] = v;
        if (r0 + rr < B) {{ scratch[{next_sx}u + (r0 + rr) * {L.n_out}u + j] = v; }}
    }}
    workgroupBarrier();"""
