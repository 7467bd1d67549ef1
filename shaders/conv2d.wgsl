// 2-D convolution, NCHW, as implicit GEMM (the patch matrix is gathered into
// workgroup memory slab by slab, never stored): forward, input gradient, and
// weight + bias gradient of  y = conv(x, w) + b.
//
//   x [N, C, H, W],  w [O, C, KH, KW] (PyTorch's layout),  b [O],  y [N, O, OH, OW],
//   OH = (H + 2 pad - KH) / stride + 1,  OW likewise.
//
// ---- `conv`: forward (DX = false) and input gradient (DX = true) ----------------
// Both are one product over a source image into a destination image:
//     dst[n, ch, pos] = sum_k  Wm[ch, k] * P[k, (n, pos)]
//   forward: source x, destination y.  ch = o, k = (c, ky, kx),
//            P = x[n, c, oy*s - pad + ky, ox*s - pad + kx]   (0 outside: the padding)
//            Wm[o, k] = w[o, c, ky, kx]                      (w read as [O, C*KH*KW])
//   DX:      source dy, destination dx.  ch = c, k = (o, ky, kx), and since
//            iy = oy*s - pad + ky,  P = dy[n, o, oy, ox] with oy = (iy + pad - ky) / s
//            when that division is exact and oy is in [0, OH) (0 otherwise),
//            Wm[c, k] = w[o, c, ky, kx]                      (a transposed convolution)
//   With MASK, dy is read as dy * (y > 0): the backward of a fused ReLU, y its output.
//
// Tiling: a workgroup of 64 invocations owns TO channels x TP positions (a position
// is (n, y, x) of the destination, flattened; consecutive positions are consecutive
// words of dst). TO is 4, 8 or 16 (picked to fit the layer's channels, so 8 filters do
// not pay for 16); CL = TO/4 channel lanes times PL = 64/CL position lanes. Invocation
// (cl, pl) keeps channels 4cl..4cl+3 in one vec4 register per position, for PPT
// positions pl, pl + PL, ... (strided, so neighbouring invocations read neighbouring
// words of workgroup memory and write neighbouring words of dst). TP = PPT * PL.
// K is walked in slabs of TK (8, 16 or 32: the deepest slab whose TK x TP values fit
// the 2048-word `pslab`): the workgroup gathers TK x TP patch values and TK x TO
// weights into workgroup memory, then each invocation does TK x PPT vec4 FMAs. These
// layers are small, so a slab is latency-bound (a round of dependent global loads and
// two barriers, about 2 us on an H100 whatever its depth): the deeper the slab, the
// fewer rounds and the more independent loads each invocation has in flight.
// No index decoding in the gather (DX only tests the stride): each position's
// (n, y, x) is decoded once per workgroup into `pos_info`, each k's (c, ky, kx) once
// per slab into `k_info` (the next slab's while this one is multiplied).
// Position tiles are numbered wg.x + wg.y * nwg.x (a 2-D grid past 65535 tiles);
// wg.z is the channel tile.
//
// ---- `weight_grad` + `weight_grad_reduce`: dW and db ------------------------------
//     dW[o, j] = sum_q dy[n, o, oy, ox] * P[j, q],   j = (c, ky, kx),  q = (n, oy, ox)
//     db[o]    = sum_q dy[n, o, oy, ox]
// with the forward's patch P[j, q] = x[n, c, oy*s - pad + ky, ox*s - pad + kx]. The bias
// is a weight on an input that is always 1, so db is column j = C*KH*KW of the same
// product with P = 1 there: one kernel, one pass over dy.
// Tiling: the conv kernel's, with columns j in place of positions: 64 invocations own
// TO channels x TJ columns, invocation (ol, jl) keeps channels 4ol..4ol+3 (vec4) for
// the PPT columns jl, jl + JL, ... (JL = 64 / (TO/4) column lanes, TJ = PPT * JL);
// TO and PPT are picked so the tile fits O x J snugly (8 x 32 for a first layer's
// 8 x 26). The reduction runs over q (N*OH*OW: 25k positions at batch 32 for 28x28
// maps) in slabs of TQ positions (8, 16 or 32, as TK); each column's (c, ky, kx) is decoded once into
// `col_info`, each slab's positions into `q_pix` / `q_dy`. With SPLIT, workgroup z walks only
// slice z of q (`slice` positions) and writes a partial tile, so a big GPU gets many
// workgroups however small O x J is; `weight_grad_reduce` adds the `splits` partials.

override DX: bool = false;         // conv: false = forward, true = input gradient
override HAS_BIAS: bool = false;   // conv forward: add b
override RELU: bool = false;       // conv forward: max(., 0)
override MASK: bool = false;       // gradients: read dy as dy * (y > 0)
override ACCUMULATE: bool = false; // conv: dst += result
override TO: u32 = 16u;            // channels per tile (4, 8 or 16)
override PPT: u32 = 4u;            // positions (conv) or columns (weight_grad) per invocation: 1, 2 or 4
override WANT_DW: bool = true;     // weight_grad: write dW
override WANT_DB: bool = false;    // weight_grad: write db (adds the bias column)
override ACC_W: bool = false;      // weight_grad: dW += result
override ACC_B: bool = false;      // weight_grad: db += result
override SPLIT: bool = false;      // weight_grad: partial tiles per slice of q
override TK: u32 = 8u;             // conv: K slab depth (8, 16 or 32; TK * TP <= 2048)
override TQ: u32 = 8u;             // weight_grad: position slab depth (8, 16 or 32; TQ * TJ <= 2048)

//!struct Conv2dDims

// Block of `conv`.
@group(0) @binding(0) var<uniform> dims: Conv2dDims;
@group(0) @binding(1) var<storage, read> src: array<f32>;       // x (forward) or dy (DX)
@group(0) @binding(2) var<storage, read> relu_out: array<f32>;  // y, read when MASK
@group(0) @binding(3) var<storage, read> weight: array<f32>;    // w [O, C, KH, KW]
@group(0) @binding(4) var<storage, read> bias: array<f32>;      // b [O], read when HAS_BIAS
@group(0) @binding(5) var<storage, read_write> dst: array<f32>; // y (forward) or dx (DX)

// Block of `weight_grad` and `weight_grad_reduce`.
@group(0) @binding(0) var<uniform> gdims: Conv2dDims;
@group(0) @binding(1) var<storage, read> gx: array<f32>;          // x
@group(0) @binding(2) var<storage, read> gdy: array<f32>;         // dy
@group(0) @binding(3) var<storage, read> gy: array<f32>;          // y, read when MASK
@group(0) @binding(4) var<storage, read_write> gdw: array<f32>;   // dW [O, C*KH*KW]
@group(0) @binding(5) var<storage, read_write> gdb: array<f32>;   // db [O]
@group(0) @binding(6) var<storage, read_write> gpartials: array<f32>; // [splits, O, J] with SPLIT

const WG: u32 = 64u;          // invocations per workgroup (both kernels)
const MAX_SLAB: u32 = 32u;    // the deepest TK / TQ (sizes the arrays below)

// ================================= conv =================================================

var<workgroup> pslab: array<f32, 2048>;       // [TK][TP], TP <= 256
var<workgroup> wslab: array<vec4<f32>, 128>;  // [TK][4]: TK rows of 16 channels as 4 vec4
var<workgroup> pos_info: array<vec4<i32>, 256>;  // per position: (source image base, y0, x0, valid)
var<workgroup> k_info: array<vec4<i32>, MAX_SLAB>;  // per k of the slab: (source channel, ky, kx, valid)

struct Plane { c: u32, h: u32, w: u32 }

fn source_plane() -> Plane {
    if (DX) { return Plane(dims.O, dims.OH, dims.OW); }
    return Plane(dims.C, dims.H, dims.W);
}

fn dest_plane() -> Plane {
    if (DX) { return Plane(dims.C, dims.H, dims.W); }
    return Plane(dims.O, dims.OH, dims.OW);
}

// Position q of the destination -> where its patch starts in the source.
// Forward: source row = y0 + ky with y0 = oy*s - pad. DX: source row = (y0 - ky) / s
// with y0 = iy + pad.
fn decode_position(q: u32, np: u32) -> vec4<i32> {
    if (q >= np) { return vec4<i32>(0); }
    let S = source_plane();
    let D = dest_plane();
    let dhw = D.h * D.w;
    let n = q / dhw;
    let r = q - n * dhw;
    let y = r / D.w;
    let x = r - y * D.w;
    let base = bitcast<i32>(n * S.c * S.h * S.w);
    let s = i32(dims.stride);
    let p = i32(dims.pad);
    if (DX) { return vec4<i32>(base, i32(y) + p, i32(x) + p, 1); }
    return vec4<i32>(base, i32(y) * s - p, i32(x) * s - p, 1);
}

// Index k of the reduction -> (source channel, ky, kx).
fn decode_k(k: u32) -> vec4<i32> {
    let kk = dims.KH * dims.KW;
    if (k >= source_plane().c * kk) { return vec4<i32>(0); }
    let c = k / kk;
    let r = k - c * kk;
    let ky = r / dims.KW;
    return vec4<i32>(i32(c), i32(ky), i32(r - ky * dims.KW), 1);
}

// Where P[k, position] lives in the source: (index, 1), or (0, 0) for a zero (padding,
// a stride gap, outside the matrix). Branch-free: the slab loops compute four of these,
// issue the four loads, and only then use them, so an invocation has four loads in
// flight rather than one (a load followed at once by its use stalls for the whole
// memory latency, and these small layers are bound by exactly that).
fn patch_index(pi: vec4<i32>, ki: vec4<i32>) -> vec2<u32> {
    let S = source_plane();
    var ok = pi.w != 0 && ki.w != 0;
    var sy: i32;
    var sx: i32;
    if (DX) {
        sy = pi.y - ki.y;
        sx = pi.z - ki.z;
        let s = dims.stride;
        if (s != 1u) {            // uniform branch: stride 1 (most layers) pays no integer division
            let su = i32(s);
            ok = ok && sy % su == 0 && sx % su == 0;   // a negative row stays negative: caught below
            sy = sy / su;
            sx = sx / su;
        }
    } else {
        sy = pi.y + ki.y;
        sx = pi.z + ki.z;
    }
    ok = ok && sy >= 0 && sx >= 0 && sy < i32(S.h) && sx < i32(S.w);
    let idx = bitcast<u32>(pi.x) + (u32(ki.x) * S.h + u32(sy)) * S.w + u32(sx);
    return vec2<u32>(select(0u, idx, ok), select(0u, 1u, ok));
}

// Element e of the [TK][TP] patch slab (past its n elements: a zero).
fn slab_patch(e: u32, n: u32, TP: u32) -> vec2<u32> {
    let ee = min(e, n - 1u);
    let at = patch_index(pos_info[ee % TP], k_info[ee / TP]);
    return select(at, vec2<u32>(0u), e >= n);
}

fn load_patch(at: vec2<u32>) -> f32 {
    var v = src[at.x];
    if (MASK) { v = select(0.0, v, relu_out[at.x] > 0.0); }
    return select(0.0, v, at.y != 0u);
}

// Where Wm[ch, k] lives in w: (index, 1), or (0, 0) outside the matrix (ki = decode_k(k)).
fn weight_index(ch: u32, k: u32, ki: vec4<i32>) -> vec2<u32> {
    let D = dest_plane();
    let ok = ch < D.c && ki.w != 0;
    let kk = dims.KH * dims.KW;
    var idx = ch * dims.C * kk + k;
    if (DX) { idx = (u32(ki.x) * D.c + ch) * kk + u32(ki.y) * dims.KW + u32(ki.z); }
    return vec2<u32>(select(0u, idx, ok), select(0u, 1u, ok));
}

// Element e of the [TK][TO] weight slab, as (kk = e % TK, ch = e / TK): consecutive
// invocations walk k, contiguous in w for the forward. Past n elements: a zero.
fn slab_weight(e: u32, n: u32, c0: u32, k0: u32) -> vec2<u32> {
    let ee = min(e, n - 1u);
    let kk = ee % TK;
    let at = weight_index(c0 + ee / TK, k0 + kk, k_info[kk]);
    return select(at, vec2<u32>(0u), e >= n);
}

fn load_weight(at: vec2<u32>) -> f32 {
    return select(0.0, weight[at.x], at.y != 0u);
}

fn put_weight(e: u32, n: u32, v: f32) {
    if (e < n) { wslab[(e % TK) * 4u + (e / TK) / 4u][(e / TK) % 4u] = v; }
}

fn store(q: u32, np: u32, ch0: u32, acc: vec4<f32>) {
    if (q >= np) { return; }
    let D = dest_plane();
    let dhw = D.h * D.w;
    let n = q / dhw;
    let r = q - n * dhw;
    for (var j = 0u; j < 4u; j++) {
        let ch = ch0 + j;
        if (ch >= D.c) { return; }
        var v = acc[j];
        if (HAS_BIAS) { v += bias[ch]; }
        if (RELU) { v = max(v, 0.0); }
        let idx = (n * D.c + ch) * dhw + r;
        if (ACCUMULATE) { dst[idx] += v; } else { dst[idx] = v; }
    }
}

@compute @workgroup_size(64)
fn conv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let D = dest_plane();
    let np = dims.N * D.h * D.w;                      // positions
    let K = source_plane().c * dims.KH * dims.KW;     // reduction length
    let CL = TO / 4u;
    let PL = WG / CL;
    let TP = PL * PPT;
    let p0 = (wg.x + wg.y * nwg.x) * TP;
    if (p0 >= np) { return; }                          // the folded grid's spare tiles
    let c0 = wg.z * TO;
    let cl = lid / PL;
    let pl = lid % PL;

    for (var p = lid; p < TP; p += WG) { pos_info[p] = decode_position(p0 + p, np); }
    if (lid < TK) { k_info[lid] = decode_k(lid); }
    workgroupBarrier();

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < K; k0 += TK) {
        // Gather: element e of the [TK][TP] slab is (kk = e / TP, p = e % TP), so
        // consecutive invocations read consecutive positions of the source. Four
        // elements per round, their loads issued before any is stored.
        let np_slab = TK * TP;
        for (var e = lid; e < np_slab; e += 4u * WG) {
            let a0 = slab_patch(e, np_slab, TP);
            let a1 = slab_patch(e + WG, np_slab, TP);
            let a2 = slab_patch(e + 2u * WG, np_slab, TP);
            let a3 = slab_patch(e + 3u * WG, np_slab, TP);
            let v0 = load_patch(a0);
            let v1 = load_patch(a1);
            let v2 = load_patch(a2);
            let v3 = load_patch(a3);
            pslab[e] = v0;
            if (e + WG < np_slab) { pslab[e + WG] = v1; }
            if (e + 2u * WG < np_slab) { pslab[e + 2u * WG] = v2; }
            if (e + 3u * WG < np_slab) { pslab[e + 3u * WG] = v3; }
        }
        // Weights, likewise four per round.
        let nw = TK * TO;
        for (var e = lid; e < nw; e += 4u * WG) {
            let a0 = slab_weight(e, nw, c0, k0);
            let a1 = slab_weight(e + WG, nw, c0, k0);
            let a2 = slab_weight(e + 2u * WG, nw, c0, k0);
            let a3 = slab_weight(e + 3u * WG, nw, c0, k0);
            let v0 = load_weight(a0);
            let v1 = load_weight(a1);
            let v2 = load_weight(a2);
            let v3 = load_weight(a3);
            put_weight(e, nw, v0);
            put_weight(e + WG, nw, v1);
            put_weight(e + 2u * WG, nw, v2);
            put_weight(e + 3u * WG, nw, v3);
        }
        workgroupBarrier();
        if (lid < TK) { k_info[lid] = decode_k(k0 + TK + lid); }   // nobody reads it until the barrier
        for (var kk = 0u; kk < TK; kk++) {
            let w4 = wslab[kk * 4u + cl];
            let row = kk * TP + pl;
            acc0 = fma(vec4<f32>(pslab[row]), w4, acc0);
            if (PPT > 1u) { acc1 = fma(vec4<f32>(pslab[row + PL]), w4, acc1); }
            if (PPT > 2u) {
                acc2 = fma(vec4<f32>(pslab[row + 2u * PL]), w4, acc2);
                acc3 = fma(vec4<f32>(pslab[row + 3u * PL]), w4, acc3);
            }
        }
        workgroupBarrier();
    }
    let ch0 = c0 + cl * 4u;
    store(p0 + pl, np, ch0, acc0);
    if (PPT > 1u) { store(p0 + pl + PL, np, ch0, acc1); }
    if (PPT > 2u) {
        store(p0 + pl + 2u * PL, np, ch0, acc2);
        store(p0 + pl + 3u * PL, np, ch0, acc3);
    }
}

// ============================== weight_grad ==============================================

var<workgroup> dy_slab: array<vec4<f32>, 128>;   // [TQ][4]: TQ rows of 16 channels as 4 vec4
var<workgroup> x_slab: array<f32, 2048>;         // [TQ][TJ], TJ <= 256
var<workgroup> col_info: array<vec4<i32>, 256>;  // per column: (c, ky, kx, kind: 0 none, 1 weight, 2 bias)
var<workgroup> q_pix: array<vec4<i32>, MAX_SLAB>;  // per position of the slab: (x image base, y0, x0, valid)
var<workgroup> q_dy: array<u32, MAX_SLAB>;       // per position: index of dy[n, 0, oy, ox]

// Columns: C*KH*KW weights, then the bias column when db is wanted.
fn columns() -> u32 {
    return gdims.C * gdims.KH * gdims.KW + select(0u, 1u, WANT_DB);
}

fn decode_column(j: u32) -> vec4<i32> {
    let kk = gdims.KH * gdims.KW;
    let ck = gdims.C * kk;
    if (j >= columns()) { return vec4<i32>(0); }
    if (j == ck) { return vec4<i32>(0, 0, 0, 2); }
    let c = j / kk;
    let r = j - c * kk;
    let ky = r / gdims.KW;
    return vec4<i32>(i32(c), i32(ky), i32(r - ky * gdims.KW), 1);
}

fn decode_q(q: u32, q_end: u32, slot: u32) {
    if (q >= q_end) {
        q_pix[slot] = vec4<i32>(0);
        q_dy[slot] = 0u;
        return;
    }
    let ohw = gdims.OH * gdims.OW;
    let n = q / ohw;
    let r = q - n * ohw;
    let oy = r / gdims.OW;
    let ox = r - oy * gdims.OW;
    let s = i32(gdims.stride);
    let p = i32(gdims.pad);
    q_pix[slot] = vec4<i32>(bitcast<i32>(n * gdims.C * gdims.H * gdims.W), i32(oy) * s - p, i32(ox) * s - p, 1);
    q_dy[slot] = n * gdims.O * ohw + r;
}

// Where P[column, position] lives in x: (index, 1); (0, 2) for the bias column's 1;
// (0, 0) for a zero. Branch-free, as patch_index, so four loads go out at once.
fn x_index(qi: vec4<i32>, ci: vec4<i32>) -> vec2<u32> {
    let sy = qi.y + ci.y;
    let sx = qi.z + ci.z;
    let inside = sy >= 0 && sx >= 0 && sy < i32(gdims.H) && sx < i32(gdims.W);
    let ok = qi.w != 0 && ci.w == 1 && inside;
    let idx = bitcast<u32>(qi.x) + (u32(ci.x) * gdims.H + u32(sy)) * gdims.W + u32(sx);
    let kind = select(select(0u, 2u, qi.w != 0 && ci.w == 2), 1u, ok);
    return vec2<u32>(select(0u, idx, ok), kind);
}

// Element e of the [TQ][TJ] x slab (past its n elements: a zero).
fn slab_x(e: u32, n: u32, TJ: u32) -> vec2<u32> {
    let ee = min(e, n - 1u);
    let at = x_index(q_pix[ee / TJ], col_info[ee % TJ]);
    return select(at, vec2<u32>(0u), e >= n);
}

fn load_x(at: vec2<u32>) -> f32 {
    return select(select(0.0, 1.0, at.y == 2u), gx[at.x], at.y == 1u);
}

// Element e of the [TQ][TO] dy slab as (kq = e % TQ, channel e / TQ): (index, 1) or
// (0, 0) for a zero (a position past the slice, a channel past O, past n elements).
fn slab_dy(e: u32, n: u32, o0: u32, ohw: u32) -> vec2<u32> {
    let ee = min(e, n - 1u);
    let kq = ee % TQ;
    let o = o0 + ee / TQ;
    let ok = e < n && q_pix[kq].w != 0 && o < gdims.O;
    return vec2<u32>(select(0u, q_dy[kq] + o * ohw, ok), select(0u, 1u, ok));
}

fn load_dy(at: vec2<u32>) -> f32 {
    var v = gdy[at.x];
    if (MASK) { v = select(0.0, v, gy[at.x] > 0.0); }
    return select(0.0, v, at.y != 0u);
}

fn put_dy(e: u32, n: u32, v: f32) {
    if (e < n) { dy_slab[(e % TQ) * 4u + (e / TQ) / 4u][(e / TQ) % 4u] = v; }
}

fn finish_w(o: u32, j: u32, v: f32) {
    let ck = gdims.C * gdims.KH * gdims.KW;
    if (j < ck) {
        if (WANT_DW) {
            let idx = o * ck + j;
            if (ACC_W) { gdw[idx] += v; } else { gdw[idx] = v; }
        }
    } else if (WANT_DB) {
        if (ACC_B) { gdb[o] += v; } else { gdb[o] = v; }
    }
}

@compute @workgroup_size(64)
fn weight_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let J = columns();
    let nq = gdims.N * gdims.OH * gdims.OW;
    let ohw = gdims.OH * gdims.OW;
    let OL = TO / 4u;
    let JL = WG / OL;
    let TJ = JL * PPT;
    let j0 = wg.x * TJ;
    let o0 = wg.y * TO;
    var q_begin = 0u;
    var q_end = nq;
    if (SPLIT) {
        q_begin = wg.z * gdims.slice;
        q_end = min(nq, q_begin + gdims.slice);
    }
    let ol = lid / JL;
    let jl = lid % JL;

    for (var c = lid; c < TJ; c += WG) { col_info[c] = decode_column(j0 + c); }
    if (lid < TQ) { decode_q(q_begin + lid, q_end, lid); }
    workgroupBarrier();

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var q0 = q_begin; q0 < q_end; q0 += TQ) {
        // dy slab, element e = (kq = e % TQ, channel e / TQ): consecutive invocations
        // walk positions, contiguous in dy within an image. Four loads out per round.
        let ndy = TQ * TO;
        for (var e = lid; e < ndy; e += 4u * WG) {
            let a0 = slab_dy(e, ndy, o0, ohw);
            let a1 = slab_dy(e + WG, ndy, o0, ohw);
            let a2 = slab_dy(e + 2u * WG, ndy, o0, ohw);
            let a3 = slab_dy(e + 3u * WG, ndy, o0, ohw);
            let v0 = load_dy(a0);
            let v1 = load_dy(a1);
            let v2 = load_dy(a2);
            let v3 = load_dy(a3);
            put_dy(e, ndy, v0);
            put_dy(e + WG, ndy, v1);
            put_dy(e + 2u * WG, ndy, v2);
            put_dy(e + 3u * WG, ndy, v3);
        }
        // x slab, element e = (kq = e / TJ, column e % TJ): consecutive invocations walk
        // columns (kx, then ky), mostly neighbouring words of x. Four loads out per round.
        let nx = TQ * TJ;
        for (var e = lid; e < nx; e += 4u * WG) {
            let a0 = slab_x(e, nx, TJ);
            let a1 = slab_x(e + WG, nx, TJ);
            let a2 = slab_x(e + 2u * WG, nx, TJ);
            let a3 = slab_x(e + 3u * WG, nx, TJ);
            let v0 = load_x(a0);
            let v1 = load_x(a1);
            let v2 = load_x(a2);
            let v3 = load_x(a3);
            x_slab[e] = v0;
            if (e + WG < nx) { x_slab[e + WG] = v1; }
            if (e + 2u * WG < nx) { x_slab[e + 2u * WG] = v2; }
            if (e + 3u * WG < nx) { x_slab[e + 3u * WG] = v3; }
        }
        workgroupBarrier();
        if (lid < TQ) { decode_q(q0 + TQ + lid, q_end, lid); }   // next slab; read after the barrier
        for (var kq = 0u; kq < TQ; kq++) {
            let g = dy_slab[kq * 4u + ol];
            let row = kq * TJ + jl;
            acc0 = fma(g, vec4<f32>(x_slab[row]), acc0);
            if (PPT > 1u) { acc1 = fma(g, vec4<f32>(x_slab[row + JL]), acc1); }
            if (PPT > 2u) {
                acc2 = fma(g, vec4<f32>(x_slab[row + 2u * JL]), acc2);
                acc3 = fma(g, vec4<f32>(x_slab[row + 3u * JL]), acc3);
            }
        }
        workgroupBarrier();
    }
    let o = o0 + ol * 4u;
    store_w(wg.z, o, j0 + jl, J, acc0);
    if (PPT > 1u) { store_w(wg.z, o, j0 + jl + JL, J, acc1); }
    if (PPT > 2u) {
        store_w(wg.z, o, j0 + jl + 2u * JL, J, acc2);
        store_w(wg.z, o, j0 + jl + 3u * JL, J, acc3);
    }
}

// Column j for channels o..o+3 (the components of v).
fn store_w(z: u32, o: u32, j: u32, J: u32, v: vec4<f32>) {
    if (j >= J) { return; }
    for (var t = 0u; t < 4u; t++) {
        if (o + t >= gdims.O) { return; }
        if (SPLIT) {
            gpartials[(z * gdims.O + o + t) * J + j] = v[t];
        } else {
            finish_w(o + t, j, v[t]);
        }
    }
}

// SPLIT epilogue: dW / db (+)= the sum of the slices' partials. A workgroup owns
// RED_OUT consecutive (o, j) outputs, with RED_LANES invocations per output: lane l adds
// slices l, l + RED_LANES, ... (for one slice the RED_OUT outputs are neighbouring words,
// so a warp reads whole runs), then the lanes are added in workgroup memory. One
// invocation per output walking every slice was latency-bound (a few workgroups, each
// thread ~100 dependent loads: 45 us on an H100 for a 16 x 73 gradient).
const RED_OUT: u32 = 16u;
const RED_LANES: u32 = 16u;      // RED_OUT * RED_LANES = 256 invocations
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn weight_grad_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let J = columns();
    let size = gdims.O * J;
    let out = lid % RED_OUT;
    let lane = lid / RED_OUT;
    let idx = (wg.x + wg.y * nwg.x) * RED_OUT + out;
    var s = 0.0;
    if (idx < size) {
        for (var z = lane; z < gdims.splits; z += RED_LANES) { s += gpartials[z * size + idx]; }
    }
    red[lid] = s;
    workgroupBarrier();
    for (var half = RED_LANES / 2u; half > 0u; half /= 2u) {
        if (lane < half) { red[lid] += red[lid + half * RED_OUT]; }
        workgroupBarrier();
    }
    if (lane == 0u && idx < size) { finish_w(idx / J, idx % J, red[lid]); }
}
