// out[N,M] = x[M,N]^T through a 16x16 workgroup tile (padded by one column so the
// transposed read does not hit one memory bank 16 times).

override ACCUMULATE: bool = false;

//!struct TransposeDims

@group(0) @binding(0) var<uniform> dims: TransposeDims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> tile: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = wg.y * 16u + lid.y;
    let n = wg.x * 16u + lid.x;
    if (m < dims.M && n < dims.N) { tile[lid.y][lid.x] = x[m * dims.N + n]; }
    workgroupBarrier();
    // write: row n' = wg.x*16 + ly of out, column m' = wg.y*16 + lx
    let on = wg.x * 16u + lid.y;
    let om = wg.y * 16u + lid.x;
    if (on < dims.N && om < dims.M) {
        let v = tile[lid.x][lid.y];
        let idx = on * dims.M + om;
        if (ACCUMULATE) { out[idx] += v; } else { out[idx] = v; }
    }
}
