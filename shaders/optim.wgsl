// One update kernel for every parameter: the model's parameters, gradients and
// optimizer moments each live in one flat buffer, so a single dispatch updates
// all of them. The learning rate comes from the schedule at the GPU step counter.
//
//   g = grad + weight_decay * p
//   SGD : m = momentum * m + g ; p -= lr * (nesterov ? g + momentum * m : m)   (m = g when momentum = 0)
//   Adam: m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ; p -= lr * m_hat / (sqrt(v_hat) + eps)
// Nothing moves while the divergence flag is up or the model is frozen; a step
// whose result would be non-finite raises the flag instead of writing it.

//!include common.wgsl
//!include schedule.wgsl
//!include optim_rule.wgsl

//!struct OptimDims
//!struct State

@group(0) @binding(0) var<uniform> prm: OptimDims;
@group(0) @binding(1) var<storage, read> hyper: Hyper;
@group(0) @binding(2) var<storage, read_write> state: StateAtomic;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read> grads: array<f32>;
@group(0) @binding(5) var<storage, read_write> m1: array<f32>;
@group(0) @binding(6) var<storage, read_write> m2: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= prm.n) { return; }
    if (atomicLoad(&state.flags) != 0u || hyper.frozen == 1u) { return; }
    let step = atomicLoad(&state.step);
    apply_update(i, grads[i], step, learning_rate(hyper, step));
}

// The last dispatch of a step: advance the counters the next step reads.
@compute @workgroup_size(1)
fn advance() {
    atomicAdd(&state.step, 1u);
    atomicAdd(&state.run_step, 1u);
}
