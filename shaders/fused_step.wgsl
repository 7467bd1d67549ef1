// A whole training step of a one-hidden-layer MLP (D -> H -> ReLU -> C) in two
// dependent dispatches, instead of the dozen of the general autograd trace.
//
// Pass 1, `forward_backward`: one workgroup per batch row.
//   x  = gather(row)                       (u8 -> f32, optional random shift)
//   h  = relu(x W1 + b1)                   W1 stored [D, H]
//   z  = h W2 + b2 ; p = softmax(z)
//   loss = logsumexp(z) - z[y] ;  dz = (p - onehot(y)) / n
//   dh = (dz W2^T) * (h > 0)
// and writes x, h, dz, dh and (loss, correct) of the row to scratch buffers.
//
// Pass 2, `update`: the gradients as sums over the batch rows, each followed at
// once by the optimizer rule (optim_rule.wgsl) on that parameter, so no gradient
// is ever stored:
//   dW1 = X^T dH  : one invocation per 4 consecutive rows k of one column j
//   db1, dW2, db2 : few parameters, long sums: 16 invocations per parameter split
//                   the rows and fold in workgroup memory
//   the rows' (loss, correct) fold the same way into the history ring.
//
// The step counter without races: pass 1 reads state.step and (workgroup 0) copies
// it to state.step_snap; pass 2 reads step_snap and writes step = step_snap + 1.
// Neither pass writes a word it also reads.
//
// Speed: both passes are latency-bound at small batches, so the inner loops load
// vec4s (requires D and H to be multiples of 4) and keep four independent loads in
// flight; pass 1 splits each row's K range over the workgroup (512 wide on GPUs)
// and stages W2 in workgroup memory.

//!include common.wgsl
//!include schedule.wgsl
//!include optim_rule.wgsl
//!include step_metrics.wgsl

override D: u32 = 784u;     // inputs        (multiple of 4, <= MAX_D)
override H: u32 = 128u;     // hidden units  (multiple of 4, <= MAX_H)
override C: u32 = 10u;      // classes       (<= MAX_C)
override WG: u32 = 512u;    // pass-1 workgroup size

//!struct Step
//!struct State

@group(0) @binding(0) var<uniform> prm: Step;
@group(0) @binding(1) var<storage, read> hyper: Hyper;
@group(0) @binding(2) var<storage, read_write> state: StateAtomic;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> m1: array<f32>;
@group(0) @binding(5) var<storage, read_write> m2: array<f32>;
@group(0) @binding(6) var<storage, read> images: array<u32>;
@group(0) @binding(7) var<storage, read> labels: array<u32>;
@group(0) @binding(8) var<storage, read> perm: array<u32>;
@group(0) @binding(9) var<storage, read_write> xs: array<vec4<f32>>;  // [B, D/4]
@group(0) @binding(10) var<storage, read_write> hs: array<f32>;       // [B, H]
@group(0) @binding(11) var<storage, read_write> dzs: array<f32>;      // [B, C]
@group(0) @binding(12) var<storage, read_write> dhs: array<f32>;      // [B, H]
@group(0) @binding(13) var<storage, read_write> rows: array<f32>;     // [B, 2] loss, correct
@group(0) @binding(14) var<storage, read_write> history: array<f32>;
@group(0) @binding(15) var<storage, read_write> params4: array<vec4<f32>>;  // the arena again, as vec4

const MAX_D: u32 = 1024u;
const MAX_H: u32 = 512u;
const MAX_C: u32 = 64u;
const P2: u32 = 16u;        // partial sums per logit

var<workgroup> x_sh: array<f32, MAX_D>;
var<workgroup> h_sh: array<f32, MAX_H>;
var<workgroup> part: array<vec4<f32>, 1024>;
var<workgroup> z_sh: array<f32, MAX_C>;
const W2_SH: u32 = 2048u;   // W2 is staged in workgroup memory when H*C fits
var<workgroup> w2_sh: array<f32, W2_SH>;

fn w2(j: u32, c: u32) -> f32 {
    if (H * C <= W2_SH) { return w2_sh[j * C + c]; }
    return params[prm.w2 + j * C + c];
}

fn pixel(sample: u32, k: u32, step: u32, r: u32) -> f32 {
    let src = shifted_source(k, prm.W, D, prm.shift, prm.seed, step, r);
    if (src < 0) { return 0.0; }
    let b = sample * D + u32(src);
    return f32(byte_of(images[b >> 2u], b)) * (1.0 / 255.0);
}

@compute @workgroup_size(WG)
fn forward_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let t = lid3.x;
    let r = wg.x;
    let step = atomicLoad(&state.step);
    if (r == 0u && t == 0u) { atomicStore(&state.step_snap, step); }

    let spe = (prm.N + prm.B - 1u) / prm.B;
    let pos = (step % spe) * prm.B + r;
    let n = f32(min(prm.B, prm.N - (step % spe) * prm.B));   // valid rows in this batch
    let D4 = D / 4u;
    let H4 = H / 4u;
    if (pos >= prm.N) {  // past the tail: contribute nothing
        for (var k = t; k < D4; k += WG) { xs[r * D4 + k] = vec4<f32>(0.0); }
        for (var j = t; j < H; j += WG) { hs[r * H + j] = 0.0; dhs[r * H + j] = 0.0; }
        for (var c = t; c < C; c += WG) { dzs[r * C + c] = 0.0; }
        if (t == 0u) { rows[r * 2u] = 0.0; rows[r * 2u + 1u] = 0.0; }
        return;
    }
    let sample = perm[pos];

    // W2 into workgroup memory: read twice below, one coalesced sweep here.
    if (H * C <= W2_SH) {
        for (var i = t; i < H * C; i += WG) { w2_sh[i] = params[prm.w2 + i]; }
    }
    // x: the (shifted) image as f32, kept in workgroup memory and written for pass 2.
    for (var k = t; k < D4; k += WG) {
        let v = vec4<f32>(pixel(sample, 4u * k, step, r), pixel(sample, 4u * k + 1u, step, r),
                          pixel(sample, 4u * k + 2u, step, r), pixel(sample, 4u * k + 3u, step, r));
        x_sh[4u * k] = v.x; x_sh[4u * k + 1u] = v.y; x_sh[4u * k + 2u] = v.z; x_sh[4u * k + 3u] = v.w;
        xs[r * D4 + k] = v;
    }
    workgroupBarrier();

    // h = relu(x W1 + b1): invocation (s, g) sums K-slice s for units 4g..4g+3.
    let S = max(WG / H4, 1u);
    let w1 = prm.w1 / 4u;
    for (var u = t; u < H4 * S; u += WG) {
        let g = u % H4;
        let s = u / H4;
        let k1 = (s + 1u) * D / S;
        var k = s * D / S;
        var acc = vec4<f32>(0.0);
        for (; k + 4u <= k1; k += 4u) {   // four independent loads in flight
            let a = params4[w1 + k * H4 + g];
            let b = params4[w1 + (k + 1u) * H4 + g];
            let c = params4[w1 + (k + 2u) * H4 + g];
            let d = params4[w1 + (k + 3u) * H4 + g];
            acc = fma(vec4<f32>(x_sh[k]), a, acc);
            acc = fma(vec4<f32>(x_sh[k + 1u]), b, acc);
            acc = fma(vec4<f32>(x_sh[k + 2u]), c, acc);
            acc = fma(vec4<f32>(x_sh[k + 3u]), d, acc);
        }
        for (; k < k1; k++) { acc = fma(vec4<f32>(x_sh[k]), params4[w1 + k * H4 + g], acc); }
        part[s * H4 + g] = acc;
    }
    workgroupBarrier();
    for (var j = t; j < H; j += WG) {
        var acc = params[prm.b1 + j];
        for (var s = 0u; s < S; s++) { acc += part[s * H4 + j / 4u][j % 4u]; }
        let v = max(acc, 0.0);
        h_sh[j] = v;
        hs[r * H + j] = v;
    }
    workgroupBarrier();

    // z = h W2 + b2: P2 partial sums per class, then folded.
    for (var u = t; u < C * P2; u += WG) {
        let c = u / P2;
        let q = u % P2;
        var acc = 0.0;
        for (var j = q; j < H; j += P2) { acc = fma(h_sh[j], w2(j, c), acc); }
        part[u / 4u][u % 4u] = acc;
    }
    workgroupBarrier();
    for (var c = t; c < C; c += WG) {
        var acc = params[prm.b2 + c];
        for (var q = 0u; q < P2; q++) { let u = c * P2 + q; acc += part[u / 4u][u % 4u]; }
        z_sh[c] = acc;
    }
    workgroupBarrier();

    // softmax, loss and dz = (p - onehot) / n, by one invocation (C is small).
    if (t == 0u) {
        let y = byte_of(labels[sample >> 2u], sample);
        var m = z_sh[0];
        var best = 0u;
        for (var c = 1u; c < C; c++) { if (z_sh[c] > m) { m = z_sh[c]; best = c; } }
        var s = 0.0;
        for (var c = 0u; c < C; c++) { s += exp(z_sh[c] - m); }
        let loss = log(s) + m - z_sh[y];
        rows[r * 2u] = loss;
        rows[r * 2u + 1u] = select(0.0, 1.0, best == y);
        if (!is_finite(loss)) { atomicOr(&state.flags, FLAG_NONFINITE); }
        for (var c = 0u; c < C; c++) {
            let g = (exp(z_sh[c] - m) / s - select(0.0, 1.0, c == y)) / n;
            z_sh[c] = g;
            dzs[r * C + c] = g;
        }
    }
    workgroupBarrier();

    // dh = (dz W2^T) * relu'(h)
    for (var j = t; j < H; j += WG) {
        var acc = 0.0;
        for (var c = 0u; c < C; c++) { acc = fma(z_sh[c], w2(j, c), acc); }
        dhs[r * H + j] = select(0.0, acc, h_sh[j] > 0.0);
    }
}

var<workgroup> red: array<vec2<f32>, 256>;

// Pass 2. Workgroups [0, nw1) own W1 (256 invocations x 4 parameters each);
// the rest own 16 small parameters each (b1, then W2, then b2, then the metrics).
@compute @workgroup_size(256)
fn update(@builtin(workgroup_id) wg3: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wg3.x + wg3.y * nwg.x;
    let t = lid3.x;
    let step = atomicLoad(&state.step_snap);
    let frozen = atomicLoad(&state.flags) != 0u || hyper.frozen == 1u;
    let lr = learning_rate(hyper, step);
    let B = prm.B;
    let D4 = D / 4u;

    if (wg < prm.nw1) {
        // dW1[k0..k0+3, j] = sum_b x[b, k0..k0+3] * dh[b, j]
        let i = wg * 256u + t;
        if (i < D4 * H) {
            let j = i % H;
            let kq = i / H;
            var acc = vec4<f32>(0.0);
            var b = 0u;
            for (; b + 4u <= B; b += 4u) {   // four independent loads in flight
                let g0 = dhs[b * H + j];
                let g1 = dhs[(b + 1u) * H + j];
                let g2 = dhs[(b + 2u) * H + j];
                let g3 = dhs[(b + 3u) * H + j];
                acc = fma(xs[b * D4 + kq], vec4<f32>(g0), acc);
                acc = fma(xs[(b + 1u) * D4 + kq], vec4<f32>(g1), acc);
                acc = fma(xs[(b + 2u) * D4 + kq], vec4<f32>(g2), acc);
                acc = fma(xs[(b + 3u) * D4 + kq], vec4<f32>(g3), acc);
            }
            for (; b < B; b++) { acc = fma(xs[b * D4 + kq], vec4<f32>(dhs[b * H + j]), acc); }
            if (!frozen) {
                let base = prm.w1 + 4u * kq * H + j;
                apply_update(base, acc.x, step, lr);
                apply_update(base + H, acc.y, step, lr);
                apply_update(base + 2u * H, acc.z, step, lr);
                apply_update(base + 3u * H, acc.w, step, lr);
            }
        }
        return;
    }

    // Small parameters: 16 per workgroup, 16 invocations each splitting the rows.
    let p = (wg - prm.nw1) * 16u + t % 16u;
    let slice = t / 16u;
    let n_small = H + H * C + C;
    var acc = vec2<f32>(0.0);
    for (var b = slice; b < B; b += 16u) {
        if (p < H) {
            acc.x += dhs[b * H + p];
        } else if (p < H + H * C) {
            let q = p - H;
            acc.x = fma(hs[b * H + q / C], dzs[b * C + q % C], acc.x);
        } else if (p < n_small) {
            acc.x += dzs[b * C + p - H - H * C];
        } else if (p == n_small) {
            acc += vec2<f32>(rows[b * 2u], rows[b * 2u + 1u]);
        }
    }
    red[t] = acc;
    workgroupBarrier();
    for (var s = 128u; s >= 16u; s >>= 1u) {
        if (t < s) { red[t] += red[t + s]; }
        workgroupBarrier();
    }
    if (slice != 0u) { return; }
    let total = red[t];
    if (p < H) {
        if (!frozen) { apply_update(prm.b1 + p, total.x, step, lr); }
    } else if (p < H + H * C) {
        if (!frozen) { apply_update(prm.w2 + p - H, total.x, step, lr); }
    } else if (p < n_small) {
        if (!frozen) { apply_update(prm.b2 + p - H - H * C, total.x, step, lr); }
    } else if (p == n_small) {
        let spe = (prm.N + B - 1u) / B;
        let n = f32(min(B, prm.N - (step % spe) * B));
        record_step(total.x / n, total.y / n, C);
        atomicStore(&state.step, step + 1u);
        atomicAdd(&state.run_step, 1u);
    }
}
