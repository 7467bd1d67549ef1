// The live embedding: the test set's last hidden layer, projected to 2-D by PCA on
// the GPU, drawn as a scatter of points coloured by class (viz/embedding.py).
//
// PCA by power iteration (subspace iteration on two vectors). With A the [N, H]
// activations and A_c = A - mean (row-wise), C = A_c^T A_c / N is never formed:
//   project : p_k = A_c v_k            (one thread per point, both components)
//   back    : w_k = A_c^T p_k          (one workgroup per feature)  => w_k = N C v_k
//   orthonormalise : v1 = w1 / |w1|;  v2 = (w2 - (w2.v1) v1) / |...|
// The Gram-Schmidt step is the deflation: v2 converges to the top eigenvector of C
// with v1's direction removed. Started from the last refresh's vectors, a few
// iterations follow the slowly changing network; the sign stays (C is positive
// semi-definite, so C v keeps the side of v).
//
// `basis` layout (f32): [0] var1, [1] var2 (variance along v1, v2), [2, 3] unused,
// then mean [H], v1 [H], v2 [H].
// `pos` layout (f32, per point): start x, y, target x, y: normalised so that three
// standard deviations reach the edge; the view shows mix(start, target, ease(t)).

//!include common.wgsl
//!struct EmbedChunk
//!struct Embed

const BASIS: u32 = 4u;   // first word of the mean in `basis`

fn ease(t: f32) -> f32 {
    let s = clamp(t, 0.0, 1.0);
    return s * s * (3.0 - 2.0 * s);   // smoothstep: starts and stops gently
}

// A normalised position -> texture pixel (y up), with a small margin.
fn to_px(p: vec2<f32>, size: u32) -> vec2<f32> {
    let half = f32(size) * 0.5;
    return vec2<f32>(half + p.x * half * 0.94, half - p.y * half * 0.94);
}

// -- store: one chunk's hidden rows into the [N, H] activations ----------------------------
@group(0) @binding(0) var<storage, read> ck: EmbedChunk;
@group(0) @binding(1) var<storage, read> chunk: array<f32>;         // [rows, H] of the traced forward
@group(0) @binding(2) var<storage, read_write> s_acts: array<f32>;  // [N, H]

@compute @workgroup_size(256)
fn store(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let rows = min(ck.rows, ck.n - min(ck.base, ck.n));
    if (i >= rows * ck.h) { return; }
    s_acts[ck.base * ck.h + i] = chunk[i];
}

// -- PCA --------------------------------------------------------------------------------------
@group(0) @binding(0) var<storage, read> pr: Embed;
@group(0) @binding(1) var<storage, read> acts: array<f32>;
@group(0) @binding(2) var<storage, read_write> basis: array<f32>;
@group(0) @binding(3) var<storage, read_write> work: array<f32>;   // w1 [H], w2 [H]
@group(0) @binding(4) var<storage, read_write> proj: array<f32>;   // [N, 2]


@compute @workgroup_size(64)
fn project(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= pr.n) { return; }
    let h = pr.h;
    var p = vec2<f32>(0.0);
    for (var j = 0u; j < h; j++) {
        let c = acts[i * h + j] - basis[BASIS + j];
        p += c * vec2<f32>(basis[BASIS + h + j], basis[BASIS + 2u * h + j]);
    }
    proj[i * 2u] = p.x;
    proj[i * 2u + 1u] = p.y;
}

const WG: u32 = 64u;
var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<vec2<f32>, WG>;

// Sums over the N points are one workgroup per feature j (its threads stride over the
// points), so a GPU runs H workgroups instead of H long serial loops.
@compute @workgroup_size(64)
fn mean(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j = wid.x;
    let t = lid.x;
    var s = 0.0;
    for (var i = t; i < pr.n; i += WG) { s += acts[i * pr.h + j]; }
    let total = reduce_sum(t, s);
    if (t == 0u) { basis[BASIS + j] = total / f32(max(pr.n, 1u)); }
}

@compute @workgroup_size(64)
fn back(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let j = wid.x;
    let t = lid.x;
    let h = pr.h;
    let m = basis[BASIS + j];
    var w = vec2<f32>(0.0);
    for (var i = t; i < pr.n; i += WG) {
        w += (acts[i * h + j] - m) * vec2<f32>(proj[i * 2u], proj[i * 2u + 1u]);
    }
    red2[t] = w;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red2[t] += red2[t + s]; }
        workgroupBarrier();
    }
    if (t == 0u) {
        work[j] = red2[0].x;
        work[h + j] = red2[0].y;
    }
}

fn reduce_sum(t: u32, v: f32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] += red[t + s]; }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red[0]);   // uniform: the early returns below are taken by all or none
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn orthonormalise(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let h = pr.h;
    var a = 0.0;
    for (var j = t; j < h; j += WG) { a += work[j] * work[j]; }
    let n1 = sqrt(reduce_sum(t, a));
    if (n1 < 1e-20) { return; }          // no variance (a dead layer): keep the old vectors
    for (var j = t; j < h; j += WG) { work[j] = work[j] / n1; }
    storageBarrier();
    var d = 0.0;
    for (var j = t; j < h; j += WG) { d += work[h + j] * work[j]; }
    let dot12 = reduce_sum(t, d);
    var b = 0.0;
    for (var j = t; j < h; j += WG) {
        let r = work[h + j] - dot12 * work[j];
        work[h + j] = r;
        b += r * r;
    }
    let n2 = sqrt(reduce_sum(t, b));
    if (n2 < 1e-20) { return; }
    for (var j = t; j < h; j += WG) {
        basis[BASIS + h + j] = work[j];
        basis[BASIS + 2u * h + j] = work[h + j] / n2;
    }
    // |w_k| = N lambda_k for an eigenvector: the variance along v_k.
    if (t == 0u) {
        let n = f32(max(pr.n, 1u));
        basis[0] = n1 / n;
        basis[1] = n2 / n;
    }
}

// -- settle / place: the points' animation ----------------------------------------------------
@group(0) @binding(0) var<storage, read> pl: Embed;
@group(0) @binding(1) var<storage, read> pl_proj: array<f32>;
@group(0) @binding(2) var<storage, read> pl_basis: array<f32>;
@group(0) @binding(3) var<storage, read_write> pl_pos: array<f32>;   // [N, 4]

// Where the points are shown now becomes the start of the next move.
@compute @workgroup_size(64)
fn settle(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= pl.n) { return; }
    let k = ease(pl.t);
    pl_pos[i * 4u] = mix(pl_pos[i * 4u], pl_pos[i * 4u + 2u], k);
    pl_pos[i * 4u + 1u] = mix(pl_pos[i * 4u + 1u], pl_pos[i * 4u + 3u], k);
}

// The new projection, three standard deviations to the edge, is the target.
@compute @workgroup_size(64)
fn place(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= pl.n) { return; }
    let sd = 3.0 * sqrt(max(vec2<f32>(pl_basis[0], pl_basis[1]), vec2<f32>(1e-12)));
    pl_pos[i * 4u + 2u] = pl_proj[i * 2u] / sd.x;
    pl_pos[i * 4u + 3u] = pl_proj[i * 2u + 1u] / sd.y;
}

// -- draw: background, points, the hovered point and the canvas's digit ----------------------
@group(0) @binding(0) var<storage, read> dr: Embed;
@group(0) @binding(1) var<storage, read> dr_pos: array<f32>;
@group(0) @binding(2) var<storage, read> dr_labels: array<u32>;    // u8 labels, packed
@group(0) @binding(3) var<storage, read> palette: array<u32>;      // rgba8 per class (embedding.CLASS_COLOURS)
@group(0) @binding(4) var<storage, read> dr_basis: array<f32>;
@group(0) @binding(5) var<storage, read> canvas_hidden: array<f32>; // [H] of the canvas's forward pass
@group(0) @binding(6) var<storage, read> dr_pick: array<u32>;       // [1]: the hovered point (NONE: none)
@group(0) @binding(7) var out: texture_storage_2d<rgba8unorm, write>;

const BACKGROUND: vec4<f32> = vec4<f32>(0.05, 0.055, 0.07, 1.0);

fn shown(i: u32) -> vec2<f32> {
    let k = ease(dr.t);
    let p = mix(vec2<f32>(dr_pos[i * 4u], dr_pos[i * 4u + 1u]), vec2<f32>(dr_pos[i * 4u + 2u], dr_pos[i * 4u + 3u]), k);
    return to_px(p, dr.size);
}

fn put(p: vec2<i32>, c: vec4<f32>) {
    if (p.x >= 0 && p.y >= 0 && p.x < i32(dr.size) && p.y < i32(dr.size)) { textureStore(out, p, c); }
}

@compute @workgroup_size(16, 16)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= dr.size || gid.y >= dr.size) { return; }
    var c = BACKGROUND;
    if (gid.x == dr.size / 2u || gid.y == dr.size / 2u) { c = vec4<f32>(0.12, 0.13, 0.16, 1.0); }  // axes
    textureStore(out, vec2<i32>(gid.xy), c);
}

@compute @workgroup_size(64)
fn splat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= dr.n) { return; }
    let c = unpack4x8unorm(palette[byte_of(dr_labels[i >> 2u], i) % dr.classes]);
    let p = vec2<i32>(floor(shown(i)));
    let r = i32(dr.dot);
    for (var dy = -r; dy <= r; dy++) {
        for (var dx = -r; dx <= r; dx++) { put(p + vec2<i32>(dx, dy), vec4<f32>(c.rgb, 1.0)); }
    }
}

// One 16 x 16 workgroup per mark, centred on it: z = 0 the hovered point's ring,
// z = 1 the canvas's digit (projected with the same components) as a cross.
@compute @workgroup_size(16, 16)
fn marks(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let d = vec2<f32>(lid.xy) - vec2<f32>(7.5);
    if (wid.z == 0u) {
        let i = dr_pick[1];
        if (i >= dr.n) { return; }
        let c = shown(i);
        let r = length(d);
        if (r > 4.5 && r < 6.5) { put(vec2<i32>(floor(c + d)), vec4<f32>(1.0, 1.0, 1.0, 1.0)); }
        return;
    }
    if (dr.marker == 0u) { return; }
    let h = dr.h;
    var p = vec2<f32>(0.0);
    for (var j = 0u; j < h; j++) {
        let x = canvas_hidden[j] - dr_basis[BASIS + j];
        p += x * vec2<f32>(dr_basis[BASIS + h + j], dr_basis[BASIS + 2u * h + j]);
    }
    let sd = 3.0 * sqrt(max(vec2<f32>(dr_basis[0], dr_basis[1]), vec2<f32>(1e-12)));
    let c = to_px(p / sd, dr.size);
    let a = abs(d);
    let arm = min(a.x, a.y) < 1.0 && max(a.x, a.y) < 7.5;      // a plus sign, 15 px wide
    let rim = min(a.x, a.y) < 2.0 && max(a.x, a.y) < 8.0;      // with a dark outline
    if (arm) { put(vec2<i32>(floor(c + d)), vec4<f32>(1.0, 1.0, 1.0, 1.0)); }
    else if (rim) { put(vec2<i32>(floor(c + d)), vec4<f32>(0.0, 0.0, 0.0, 1.0)); }
}

// -- pick: the point nearest the cursor, into the 64-byte readout -----------------------------
@group(0) @binding(0) var<storage, read> pk: Embed;
@group(0) @binding(1) var<storage, read> pk_pos: array<f32>;
@group(0) @binding(2) var<storage, read_write> pick: array<atomic<u32>>;   // [0] best d^2 bits, [1] its index
@group(0) @binding(3) var<storage, read_write> readout: array<u32>;

fn pick_distance(i: u32) -> f32 {
    let k = ease(pk.t);
    let p = mix(vec2<f32>(pk_pos[i * 4u], pk_pos[i * 4u + 1u]), vec2<f32>(pk_pos[i * 4u + 2u], pk_pos[i * 4u + 3u]), k);
    let d = floor(to_px(p, pk.size)) + vec2<f32>(0.5) - vec2<f32>(pk.cursor_x, pk.cursor_y);
    return dot(d, d);
}

@compute @workgroup_size(1)
fn pick_reset() {
    atomicStore(&pick[0], 0xffffffffu);
    atomicStore(&pick[1], 0xffffffffu);
}

// A non-negative f32's bits order like the float: atomicMin on them finds the nearest.
@compute @workgroup_size(64)
fn pick_nearest(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= pk.n || pk.picking == 0u) { return; }
    let d2 = pick_distance(i);
    if (d2 <= pk.pick_radius * pk.pick_radius) { atomicMin(&pick[0], bitcast<u32>(d2)); }
}

// Of the points at that distance, the lowest index (deterministic).
@compute @workgroup_size(64)
fn pick_index(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= pk.n || pk.picking == 0u) { return; }
    if (bitcast<u32>(pick_distance(i)) == atomicLoad(&pick[0])) { atomicMin(&pick[1], i); }
}

@compute @workgroup_size(1)
fn pick_publish() {
    let i = atomicLoad(&pick[1]);
    readout[pk.hover_word] = select(i + 1u, 0u, i == 0xffffffffu);
}

// -- the hovered digit, for the tooltip (the pick's index never leaves the GPU) ---------------
@group(0) @binding(0) var<storage, read> dg: Embed;
@group(0) @binding(1) var<storage, read> dg_pick: array<u32>;
@group(0) @binding(2) var<storage, read> dg_images: array<u32>;     // u8 pixels, packed
@group(0) @binding(3) var dg_out: texture_storage_2d<rgba8unorm, write>;   // [iw, ih]

@compute @workgroup_size(16, 16)
fn digit(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(dg_out);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let i = dg_pick[1];
    var v = 0.0;
    if (i < dg.n) {
        let b = (i * dims.y + gid.y) * dims.x + gid.x;
        v = f32(byte_of(dg_images[b >> 2u], b)) / 255.0;
    }
    textureStore(dg_out, vec2<i32>(gid.xy), vec4<f32>(v, v, v, 1.0));
}
