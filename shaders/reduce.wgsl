// SumReduce over rows: out[n] (+)= sum_m x[m, n]. The bias gradient of a
// Linear layer is this sum of the upstream gradient over the batch.
// A 16x16 workgroup owns 16 columns; its 16 rows of invocations stride down
// the rows, then fold their partial sums in workgroup memory.

override ACCUMULATE: bool = false;

//!struct ReduceDims

@group(0) @binding(0) var<uniform> dims: ReduceDims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn sum_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n = wg.x * 16u + lid.x;
    var s = 0.0;
    if (n < dims.N) {
        for (var m = lid.y; m < dims.M; m += 16u) { s += x[m * dims.N + n]; }
    }
    partial[lid.y][lid.x] = s;
    workgroupBarrier();
    for (var stride = 8u; stride > 0u; stride >>= 1u) {
        if (lid.y < stride) { partial[lid.y][lid.x] += partial[lid.y + stride][lid.x]; }
        workgroupBarrier();
    }
    if (lid.y == 0u && n < dims.N) {
        if (ACCUMULATE) { out[n] += partial[0][lid.x]; } else { out[n] = partial[0][lid.x]; }
    }
}
