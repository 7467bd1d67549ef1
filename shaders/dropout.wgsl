// Inverted dropout with a mask drawn on the GPU from (seed, step, index): the
// backward pass redraws the identical mask instead of storing it.
//   keep_i = rand(seed, step, i) >= p ;  y_i = x_i * keep_i / (1 - p)

//!include common.wgsl

override ACCUMULATE: bool = false;

//!struct Dropout
//!struct State

@group(0) @binding(0) var<uniform> prm: Dropout;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> state: State;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= prm.n) { return; }
    let keep = rand01(prm.seed, state.step, i) >= prm.p;
    let v = select(0.0, x[i] / (1.0 - prm.p), keep);
    if (ACCUMULATE) { out[i] += v; } else { out[i] = v; }
}
