// 2-D max pooling over planes of [N*C, H, W] (no padding, PyTorch's floor output
// size: OH = (H - K) / stride + 1, so the last rows / columns that do not fill a
// window are dropped).
//
// `forward`: one invocation per output; the maximum of the K x K window and, in
// `argmax`, the flat index of the input element it came from. Ties keep the first
// in row-major order (a later value must be strictly greater), and a NaN wins, as
// in PyTorch.
//
// `backward`: one invocation per INPUT element, gathering (no scatter, so no atomics
// and every element written exactly once, zeros included): the gradients of the
// windows that contain it and chose it. With stride < K windows overlap and an
// element can be the arg-max of several; input row iy lies in windows
// oy = ceil((iy - K + 1) / s) .. floor(iy / s).

override ACCUMULATE: bool = false;  // backward: dx += result

//!struct Pool2dDims

@group(0) @binding(0) var<uniform> dims: Pool2dDims;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // forward: x; backward: dy
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>; // [N*C, OH, OW] flat input indices
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;  // forward: y; backward: dx

// NaN by its bits: WGSL lets a compiler assume `v != v` is false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let ohw = dims.OH * dims.OW;
    if (i >= dims.planes * ohw) { return; }
    let plane = i / ohw;
    let r = i - plane * ohw;
    let oy = r / dims.OW;
    let ox = r - oy * dims.OW;
    let corner = plane * dims.H * dims.W + oy * dims.stride * dims.W + ox * dims.stride;
    var best_at = corner;
    var best = src[corner];
    for (var ky = 0u; ky < dims.K; ky++) {
        for (var kx = 0u; kx < dims.K; kx++) {
            let at = corner + ky * dims.W + kx;
            let v = src[at];
            if (v > best || (is_nan(v) && !is_nan(best))) {
                best = v;
                best_at = at;
            }
        }
    }
    dst[i] = best;
    argmax[i] = best_at;
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let hw = dims.H * dims.W;
    if (i >= dims.planes * hw) { return; }
    let plane = i / hw;
    let r = i - plane * hw;
    let iy = r / dims.W;
    let ix = r - iy * dims.W;
    let s = dims.stride;
    // First window reaching this row: ceil((iy + 1 - K) / s), 0 when iy < K.
    let oy_lo = select(0u, (iy + 1u - dims.K + s - 1u) / s, iy + 1u > dims.K);
    let ox_lo = select(0u, (ix + 1u - dims.K + s - 1u) / s, ix + 1u > dims.K);
    let oy_hi = min(iy / s + 1u, dims.OH);   // exclusive
    let ox_hi = min(ix / s + 1u, dims.OW);
    var g = 0.0;
    for (var oy = oy_lo; oy < oy_hi; oy++) {
        for (var ox = ox_lo; ox < ox_hi; ox++) {
            let o = (plane * dims.OH + oy) * dims.OW + ox;
            if (argmax[o] == i) { g += src[o]; }
        }
    }
    if (ACCUMULATE) { dst[i] += g; } else { dst[i] = g; }
}
