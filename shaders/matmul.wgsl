// C[M,N] = op(A)[M,K] @ op(B)[K,N]  (+ bias[N]) (ReLU) ; or C += that (ACCUMULATE).
//
// op(A) = A stored [M,K], or A stored [K,M] read transposed (TRANS_A); same for B.
// The transposed forms give the backward products without a transpose pass:
//   dX = dY @ W^T  (TRANS_B),   dW = X^T @ dY  (TRANS_A).
//
// Tiling: a 16x16 workgroup computes a 64x64 tile of C, each invocation a 4x4
// block (rows ly + 16*i, cols lx + 16*j: strided so neighbouring invocations
// touch neighbouring words of workgroup memory). K is walked in slabs of 16
// staged through workgroup memory. Every load is bounds-checked, so any shape works.
//
// Split-K (SPLIT > 1): a batch-sized M gives a big GPU only a handful of 64x64
// tiles, each walking all of K alone. Then workgroup z takes the z-th slice of K
// and writes its partial tile to `partials[z]`; `reduce_split` adds the slices
// and applies bias, ReLU and accumulation.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override RELU: bool = false;
override ACCUMULATE: bool = false;
override SPLIT: u32 = 1u;

//!struct MatmulDims

@group(0) @binding(0) var<uniform> dims: MatmulDims;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;  // [SPLIT, M, N] when SPLIT > 1

const T: u32 = 64u;   // output tile edge
const TK: u32 = 16u;  // K slab

var<workgroup> As: array<array<f32, 64>, 16>;  // [k][m]
var<workgroup> Bs: array<array<f32, 64>, 16>;  // [k][n]

// Slab element e (0..1023) of A: (kk, mm). Consecutive invocations walk m when A is
// [K,M], k when A is [M,K], so global reads stay contiguous either way.
fn a_slot(e: u32) -> vec2<u32> {
    if (TRANS_A) { return vec2<u32>(e / T, e % T); }
    return vec2<u32>(e % TK, e / TK);
}

// Slab element e of B: (kb, nb), contiguous in B either way.
fn b_slot(e: u32) -> vec2<u32> {
    if (TRANS_B) { return vec2<u32>(e % TK, e / TK); }
    return vec2<u32>(e / T, e % T);
}

// Where A[m, k] lives: (index, 1), or (0, 0) outside the matrix or the K slice.
// Branch-free, so main issues all eight of a slab's loads before storing any (a load
// used at once stalls for the whole memory latency; batch-sized products are bound by it).
fn a_index(m: u32, k: u32, k_end: u32) -> vec2<u32> {
    let ok = m < dims.M && k < dims.K && k < k_end;
    let idx = select(m * dims.K + k, k * dims.M + m, TRANS_A);
    return vec2<u32>(select(0u, idx, ok), select(0u, 1u, ok));
}

fn b_index(k: u32, n: u32, k_end: u32) -> vec2<u32> {
    let ok = k < dims.K && n < dims.N && k < k_end;
    let idx = select(k * dims.N + n, n * dims.K + k, TRANS_B);
    return vec2<u32>(select(0u, idx, ok), select(0u, 1u, ok));
}

fn a_at(e: u32, m0: u32, k0: u32, k_end: u32) -> vec2<u32> {
    let s = a_slot(e);
    return a_index(m0 + s.y, k0 + s.x, k_end);
}

fn b_at(e: u32, n0: u32, k0: u32, k_end: u32) -> vec2<u32> {
    let s = b_slot(e);
    return b_index(k0 + s.x, n0 + s.y, k_end);
}

fn load_a(at: vec2<u32>) -> f32 { return select(0.0, A[at.x], at.y != 0u); }
fn load_b(at: vec2<u32>) -> f32 { return select(0.0, B[at.x], at.y != 0u); }

fn put_a(e: u32, v: f32) {
    let s = a_slot(e);
    As[s.x][s.y] = v;
}

fn put_b(e: u32, v: f32) {
    let s = b_slot(e);
    Bs[s.x][s.y] = v;
}

fn finish(idx: u32, n: u32, value: f32) {
    var v = value;
    if (HAS_BIAS) { v += bias[n]; }
    if (RELU) { v = max(v, 0.0); }
    if (ACCUMULATE) { C[idx] += v; } else { C[idx] = v; }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m0 = wg.y * T;
    let n0 = wg.x * T;
    let lx = lid.x;
    let ly = lid.y;
    let flat = ly * 16u + lx;

    // The 4x4 block lives in four vec4 registers (row i, columns j as components):
    // no private array, so no compiler has a reason to spill it to local memory.
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);

    // K range of this workgroup: all of it, or its slice (whole slabs) under split-K.
    let per = ((dims.K + TK * SPLIT - 1u) / (TK * SPLIT)) * TK;
    let k_begin = select(0u, wg.z * per, SPLIT > 1u);
    let k_end = select(dims.K, min(dims.K, k_begin + per), SPLIT > 1u);
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        // 1024 elements per slab and operand, 4 per invocation: the eight loads first.
        let a0 = a_at(flat, m0, k0, k_end);
        let a1 = a_at(flat + 256u, m0, k0, k_end);
        let a2 = a_at(flat + 512u, m0, k0, k_end);
        let a3 = a_at(flat + 768u, m0, k0, k_end);
        let b0 = b_at(flat, n0, k0, k_end);
        let b1 = b_at(flat + 256u, n0, k0, k_end);
        let b2 = b_at(flat + 512u, n0, k0, k_end);
        let b3 = b_at(flat + 768u, n0, k0, k_end);
        let va0 = load_a(a0);
        let va1 = load_a(a1);
        let va2 = load_a(a2);
        let va3 = load_a(a3);
        let vb0 = load_b(b0);
        let vb1 = load_b(b1);
        let vb2 = load_b(b2);
        let vb3 = load_b(b3);
        put_a(flat, va0);
        put_a(flat + 256u, va1);
        put_a(flat + 512u, va2);
        put_a(flat + 768u, va3);
        put_b(flat, vb0);
        put_b(flat + 256u, vb1);
        put_b(flat + 512u, vb2);
        put_b(flat + 768u, vb3);
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let b = vec4<f32>(Bs[kk][lx], Bs[kk][lx + 16u], Bs[kk][lx + 32u], Bs[kk][lx + 48u]);
            c0 = fma(vec4<f32>(As[kk][ly]), b, c0);
            c1 = fma(vec4<f32>(As[kk][ly + 16u]), b, c1);
            c2 = fma(vec4<f32>(As[kk][ly + 32u]), b, c2);
            c3 = fma(vec4<f32>(As[kk][ly + 48u]), b, c3);
        }
        workgroupBarrier();
    }
    store_row(wg.z, m0 + ly, n0 + lx, c0);
    store_row(wg.z, m0 + ly + 16u, n0 + lx, c1);
    store_row(wg.z, m0 + ly + 32u, n0 + lx, c2);
    store_row(wg.z, m0 + ly + 48u, n0 + lx, c3);
}

// Row m of the block: columns n, n+16, n+32, n+48 from the components of v.
fn store_row(z: u32, m: u32, n: u32, v: vec4<f32>) {
    if (m >= dims.M) { return; }
    store_one(z, m, n, v.x);
    store_one(z, m, n + 16u, v.y);
    store_one(z, m, n + 32u, v.z);
    store_one(z, m, n + 48u, v.w);
}

fn store_one(z: u32, m: u32, n: u32, v: f32) {
    if (n >= dims.N) { return; }
    let idx = m * dims.N + n;
    if (SPLIT > 1u) { partials[z * dims.M * dims.N + idx] = v; } else { finish(idx, n, v); }
}

// Split-K epilogue: C (+)= act(sum_z partials[z] + bias), one invocation per element.
@compute @workgroup_size(256)
fn reduce_split(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let size = dims.M * dims.N;
    if (idx >= size) { return; }
    var s = 0.0;
    for (var z = 0u; z < SPLIT; z++) { s += partials[z * size + idx]; }
    finish(idx, idx % dims.N, s);
}
