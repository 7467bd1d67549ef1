"""A wide first Linear layer's forward as a dispatch of its own, ahead of the compiled step's pass 1.

Pass 1 runs one workgroup per batch row (or two), so each row streams the whole first weight
matrix through one multiprocessor: for 784-512 that is 1.6 MB a row, and at batch 32 the H100's
per-multiprocessor L2 bandwidth made it 15 of pass 1's 55 us while 100 multiprocessors idled.
Here workgroup (slice of 16 outputs, block of RB rows) gathers its rows' images into workgroup
memory and reads its 16 columns of the weights once for all RB rows: the matrix is read
B / RB times in all instead of B times, spread over every multiprocessor. It writes the layer's
output (after its ReLU and dropout) to the next layer's input rows in scratch, from where pass 1
takes over, and the rows' images to the layer's own input rows, for pass 2's weight gradient.
The first layer has no input gradient, so pass 1's backward is unchanged.
"""
from __future__ import annotations

SLICE = 16        # outputs a workgroup computes (4 vec4 groups)


def rows_per_block(n_in: int, wg: int, shared_limit: int) -> int:
    """Rows a workgroup computes (8, 4, 2 or 1): as many as its staged images and the K-slices'
    partial sums (one vec4 an invocation) leave room for, and that divide its invocations."""
    for rb in (8, 4, 2, 1):
        if wg % (4 * rb) == 0 and 4 * rb * n_in + 16 * wg + 4 * rb <= shared_limit:
            return rb
    return 0


def shader(L, next_sx: int, wg: int, rb: int, pixel) -> str:
    """WGSL of entry point `first_layer` for Linear layer L (its plan from compute/step_compiler.py):
    `pixel(s, k, row)` is the WGSL of input element k of batch row `row`, dataset sample s."""
    g = L.n_out // 4
    ks = wg // (4 * rb)                 # K-slices: invocation (output group, row, K-slice)
    act = "max(z, 0.0)" if L.relu else "z"
    drop = ""
    if L.dropout:
        drop = (f"\n        if (!keep({L.dropout_seed}u, step, r0 + rr, {L.n_out}u, j, {L.dropout:.9g})) {{ v = 0.0; }}"
                f" else {{ v = v * {1.0 / (1.0 - L.dropout):.9g}; }}")
    return f"""
var<workgroup> first_x: array<f32, {rb * L.n_in}>;        // the block's images
var<workgroup> first_sum: array<vec4<f32>, {wg}>;         // each invocation's partial sums
var<workgroup> first_sample: array<u32, {rb}>;

@compute @workgroup_size({wg})
fn first_layer(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let t = lid.x;
    let r0 = wgid.y * {rb}u;            // the block's first batch row
    let step = atomicLoad(&state.step);  // pass 1, after this, reads the same step
    let spe = (N + B - 1u) / B;
    let base = (step % spe) * B;
    if (t < {rb}u) {{
        let pos = base + r0 + t;
        first_sample[t] = select(0xffffffffu, perm[pos], r0 + t < B && pos < N);
    }}
    workgroupBarrier();
    // -- the block's images, gathered through the permutation and shifted (slice 0 also keeps them for pass 2)
    for (var i = t; i < {rb * L.n_in}u; i += WG) {{
        let rr = i / {L.n_in}u;
        let k = i % {L.n_in}u;
        let s = first_sample[rr];
        var v = 0.0;
        if (s != 0xffffffffu) {{ v = {pixel("s", "k", "r0 + rr")}; }}
        first_x[i] = v;
        if (wgid.x == 0u && r0 + rr < B) {{ scratch[{L.sx}u + (r0 + rr) * {L.n_in}u + k] = v; }}
    }}
    workgroupBarrier();
    // -- layer {L.index}: Linear({L.n_in},{L.n_out}), forward of outputs 16 x .. 16 x + 15: invocation
    //    (group og of 4 outputs, row rr, K-slice ks of {ks})
    {{
        let og = wgid.x * 4u + t % 4u;
        let rr = (t / 4u) % {rb}u;
        let ks = t / {4 * rb}u;
        let k1 = (ks + 1u) * {L.n_in}u / {ks}u;
        var a = vec4<f32>(0.0);
        var k = ks * {L.n_in}u / {ks}u;
        for (; k + 4u <= k1; k += 4u) {{       // four weight loads in flight
            let w0 = params4[{L.w // 4}u + k * {g}u + og];
            let w1 = params4[{L.w // 4}u + (k + 1u) * {g}u + og];
            let w2 = params4[{L.w // 4}u + (k + 2u) * {g}u + og];
            let w3 = params4[{L.w // 4}u + (k + 3u) * {g}u + og];
            a = fma(vec4<f32>(first_x[rr * {L.n_in}u + k]), w0, a);
            a = fma(vec4<f32>(first_x[rr * {L.n_in}u + k + 1u]), w1, a);
            a = fma(vec4<f32>(first_x[rr * {L.n_in}u + k + 2u]), w2, a);
            a = fma(vec4<f32>(first_x[rr * {L.n_in}u + k + 3u]), w3, a);
        }}
        for (; k < k1; k++) {{
            a = fma(vec4<f32>(first_x[rr * {L.n_in}u + k]), params4[{L.w // 4}u + k * {g}u + og], a);
        }}
        first_sum[t] = a;
    }}
    workgroupBarrier();
    // -- the K-slices folded, bias, activation: invocation (row rr, output j), to the next layer's input rows
    for (var i = t; i < {rb * SLICE}u; i += WG) {{
        let rr = i / {SLICE}u;
        let jj = i % {SLICE}u;
        let j = wgid.x * {SLICE}u + jj;
        var z = params[{L.b}u + j];
        for (var s = 0u; s < {ks}u; s++) {{ z += first_sum[(s * {rb}u + rr) * 4u + jj / 4u][jj % 4u]; }}
        var v = {act};{drop}
        if (r0 + rr < B) {{ scratch[{next_sx}u + (r0 + rr) * {L.n_out}u + j] = v; }}
    }}
}}
"""
