// A whole training step of a one-hidden-layer MLP (D -> H -> ReLU -> C) in two
// dependent dispatches, instead of the dozen of the general autograd trace.
//
// Pass 1, `forward_backward`: one workgroup per batch row.
//   x  = gather(row)                       (u8 -> f32, optional random shift)
//   h  = relu(x W1 + b1)                   W1 stored [D, H]: invocation j reads column j, coalesced
//   z  = h W2 + b2 ; p = softmax(z)
//   loss = logsumexp(z) - z[y] ;  dz = (p - onehot(y)) / n
//   dh = (dz W2^T) * (h > 0)
// and writes x, h, dz, dh and (loss, correct) of the row to scratch buffers.
//
// Pass 2, `update`: one invocation per parameter (a few per W1 column block).
//   dW1 = X^T dH, db1 = sum dH, dW2 = H^T dZ, db2 = sum dZ over the batch rows,
// then the optimizer rule (optim_rule.wgsl) on that parameter: no gradient buffer.
// One extra invocation folds the rows' (loss, correct) into the history ring and
// advances the step counter.
//
// The step counter without races: pass 1 reads state[0] and (workgroup 0) copies
// it to state[1]; pass 2 reads state[1] and writes state[0] = state[1] + 1.
// Neither pass writes a word it also reads.

//!include common.wgsl
//!include schedule.wgsl
//!include optim_rule.wgsl

override D: u32 = 784u;     // inputs
override H: u32 = 128u;     // hidden units
override C: u32 = 10u;      // classes
override WG: u32 = 256u;    // pass-1 workgroup size
override R: u32 = 4u;       // pass 2: W1 rows per invocation (reuses each dH load R times)

struct Step {
    B: u32,          // batch rows
    N: u32,          // training samples
    W: u32,          // image width (for the shift)
    shift: u32,
    seed: u32,
    w1: u32,         // offsets of W1, b1, W2, b2 in the parameter arena (floats)
    b1: u32,
    w2: u32,
    b2: u32,
    _a: u32, _b: u32, _c: u32,
};

@group(0) @binding(0) var<uniform> prm: Step;
@group(0) @binding(1) var<storage, read> hyper: Hyper;
@group(0) @binding(2) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read_write> m1: array<f32>;
@group(0) @binding(5) var<storage, read_write> m2: array<f32>;
@group(0) @binding(6) var<storage, read> images: array<u32>;
@group(0) @binding(7) var<storage, read> labels: array<u32>;
@group(0) @binding(8) var<storage, read> perm: array<u32>;
@group(0) @binding(9) var<storage, read_write> xs: array<f32>;     // [B, D]
@group(0) @binding(10) var<storage, read_write> hs: array<f32>;    // [B, H]
@group(0) @binding(11) var<storage, read_write> dzs: array<f32>;   // [B, C]
@group(0) @binding(12) var<storage, read_write> dhs: array<f32>;   // [B, H]
@group(0) @binding(13) var<storage, read_write> rows: array<f32>;  // [B, 2] loss, correct
@group(0) @binding(14) var<storage, read_write> history: array<f32>;

fn touch() {
    _ = prm.B; _ = hyper.lr; _ = atomicLoad(&state[0]); _ = params[0]; _ = m1[0]; _ = m2[0];
    _ = images[0]; _ = labels[0]; _ = perm[0]; _ = xs[0]; _ = hs[0]; _ = dzs[0]; _ = dhs[0];
    _ = rows[0]; _ = history[0];
}

const MAX_D: u32 = 2048u;
const MAX_H: u32 = 1024u;
const MAX_C: u32 = 64u;
const P2: u32 = 16u;        // partial sums per logit

var<workgroup> x_sh: array<f32, MAX_D>;
var<workgroup> h_sh: array<f32, MAX_H>;
var<workgroup> part: array<f32, 1024>;
var<workgroup> z_sh: array<f32, MAX_C>;
var<workgroup> valid: u32;

@compute @workgroup_size(WG)
fn forward_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    touch();
    let t = lid3.x;
    let r = wg.x;
    let step = atomicLoad(&state[0]);
    if (r == 0u && t == 0u) { atomicStore(&state[1], step); }

    let spe = (prm.N + prm.B - 1u) / prm.B;
    let pos = (step % spe) * prm.B + r;
    let n = f32(min(prm.B, prm.N - (step % spe) * prm.B));   // valid rows in this batch
    if (pos >= prm.N) {  // past the tail: contribute nothing
        for (var k = t; k < D; k += WG) { xs[r * D + k] = 0.0; }
        for (var j = t; j < H; j += WG) { hs[r * H + j] = 0.0; dhs[r * H + j] = 0.0; }
        for (var c = t; c < C; c += WG) { dzs[r * C + c] = 0.0; }
        if (t == 0u) { rows[r * 2u] = 0.0; rows[r * 2u + 1u] = 0.0; }
        return;
    }
    let sample = perm[pos];

    // x: the (shifted) image as f32, kept in workgroup memory and written for pass 2.
    for (var k = t; k < D; k += WG) {
        let src = shifted_source(k, prm.W, D, prm.shift, prm.seed, step, r);
        var v = 0.0;
        if (src >= 0) {
            let b = sample * D + u32(src);
            v = f32(byte_of(images[b >> 2u], b)) * (1.0 / 255.0);
        }
        x_sh[k] = v;
        xs[r * D + k] = v;
    }
    workgroupBarrier();

    // h = relu(x W1 + b1). With H < WG the K range is split S ways and folded.
    let S = max(WG / H, 1u);
    for (var u = t; u < H * S; u += WG) {
        let j = u % H;
        let s = u / H;
        let k0 = s * D / S;
        let k1 = (s + 1u) * D / S;
        var acc = 0.0;
        for (var k = k0; k < k1; k++) { acc = fma(x_sh[k], params[prm.w1 + k * H + j], acc); }
        if (S > 1u) { part[s * H + j] = acc; } else { h_sh[j] = acc; }
    }
    workgroupBarrier();
    for (var j = t; j < H; j += WG) {
        var acc = 0.0;
        if (S > 1u) { for (var s = 0u; s < S; s++) { acc += part[s * H + j]; } } else { acc = h_sh[j]; }
        let v = max(acc + params[prm.b1 + j], 0.0);
        h_sh[j] = v;
        hs[r * H + j] = v;
    }
    workgroupBarrier();

    // z = h W2 + b2: P2 partial sums per class, then folded.
    for (var u = t; u < C * P2; u += WG) {
        let c = u / P2;
        let q = u % P2;
        var acc = 0.0;
        for (var j = q; j < H; j += P2) { acc = fma(h_sh[j], params[prm.w2 + j * C + c], acc); }
        part[u] = acc;
    }
    workgroupBarrier();
    for (var c = t; c < C; c += WG) {
        var acc = params[prm.b2 + c];
        for (var q = 0u; q < P2; q++) { acc += part[c * P2 + q]; }
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
        if (!is_finite(loss)) { atomicOr(&state[3], FLAG_NONFINITE); }
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
        for (var c = 0u; c < C; c++) { acc = fma(z_sh[c], params[prm.w2 + j * C + c], acc); }
        dhs[r * H + j] = select(0.0, acc, h_sh[j] > 0.0);
    }
}

// Pass 2. Invocation ranges, in order:
//   [0, ceil(D/R)*H)   W1 block: rows k0..k0+R-1 of column j
//   next H             b1
//   next H*C           W2
//   next C             b2
//   next 1             metrics + step counter
@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    touch();
    var i = gid.x + gid.y * nwg.x * 256u;
    let step = atomicLoad(&state[1]);
    let frozen = (atomicLoad(&state[3]) & FLAG_NONFINITE) != 0u || hyper.frozen == 1u;
    let lr = learning_rate(hyper, step);
    let B = prm.B;

    let nw1 = ((D + R - 1u) / R) * H;
    if (i < nw1) {
        let j = i % H;
        let k0 = (i / H) * R;
        var acc: array<f32, 16>;
        for (var q = 0u; q < R; q++) { acc[q] = 0.0; }
        for (var b = 0u; b < B; b++) {
            let g = dhs[b * H + j];
            for (var q = 0u; q < R; q++) {
                let k = min(k0 + q, D - 1u);
                acc[q] = fma(xs[b * D + k], g, acc[q]);
            }
        }
        if (frozen) { return; }
        for (var q = 0u; q < R; q++) {
            let k = k0 + q;
            if (k < D) { apply_update(prm.w1 + k * H + j, acc[q], step, lr); }
        }
        return;
    }
    i -= nw1;
    if (i < H) {
        var acc = 0.0;
        for (var b = 0u; b < B; b++) { acc += dhs[b * H + i]; }
        if (!frozen) { apply_update(prm.b1 + i, acc, step, lr); }
        return;
    }
    i -= H;
    if (i < H * C) {
        let j = i / C;
        let c = i % C;
        var acc = 0.0;
        for (var b = 0u; b < B; b++) { acc = fma(hs[b * H + j], dzs[b * C + c], acc); }
        if (!frozen) { apply_update(prm.w2 + i, acc, step, lr); }
        return;
    }
    i -= H * C;
    if (i < C) {
        var acc = 0.0;
        for (var b = 0u; b < B; b++) { acc += dzs[b * C + i]; }
        if (!frozen) { apply_update(prm.b2 + i, acc, step, lr); }
        return;
    }
    i -= C;
    if (i == 0u) {
        let spe = (prm.N + B - 1u) / B;
        let n = f32(min(B, prm.N - (step % spe) * B));
        var loss = 0.0;
        var correct = 0.0;
        for (var b = 0u; b < B; b++) { loss += rows[b * 2u]; correct += rows[b * 2u + 1u]; }
        let cap = arrayLength(&history) / 2u;
        let slot = step % cap;
        history[slot * 2u] = loss / n;
        history[slot * 2u + 1u] = correct / n;
        atomicStore(&state[0], step + 1u);
    }
}
