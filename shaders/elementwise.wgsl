// Elementwise kernels over flat arrays of `n` floats. One invocation per element,
// launched as a 2-D grid of 256-wide workgroups so n may exceed 65535*256.

override ACCUMULATE: bool = false;  // out += result instead of out = result

//!struct Elementwise

@group(0) @binding(0) var<uniform> p: Elementwise;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

fn store(i: u32, v: f32) {
    if (ACCUMULATE) { out[i] += v; } else { out[i] = v; }
}

// out = max(x, 0)
@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    store(i, max(x[i], 0.0));
}

// out = y * (x > 0): ReLU backward, x = the ReLU's output, y = upstream gradient
@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    store(i, select(0.0, y[i], x[i] > 0.0));
}

// out = a * x + b * y
@compute @workgroup_size(256)
fn axpby(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    store(i, p.a * x[i] + p.b * y[i]);
}

// out = x * y
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    store(i, x[i] * y[i]);
}

// out = x + y[i % row]: bias add, y broadcast along rows of length `row`
@compute @workgroup_size(256)
fn bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    store(i, x[i] + y[i % p.row]);
}

// out = a (fill)
@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) { return; }
    out[i] = p.a;
}
