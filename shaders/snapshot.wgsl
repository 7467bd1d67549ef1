// The divergence guard's copy of the weights at an epoch start, taken only while the
// run is healthy: no flag up and the mean loss not above the explosion bound
// (step_metrics.wgsl). The CPU cannot know that when it encodes the copy (it reads
// the flags seconds later, or once an epoch), and an epoch can end between the loss
// exploding and the flag rising (50 steps), or before the CPU notices the flag: an
// unguarded copy would then keep the diverged weights as the "last good" ones.
// The step the copy was taken at is stored after the weights, for the restore.

//!struct OptimDims
//!struct State

@group(0) @binding(0) var<uniform> prm: OptimDims;                 // n: floats in the arena
@group(0) @binding(1) var<storage, read_write> state: StateAtomic;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> snapshot: array<u32>;  // n weights (f32 bits), then the step

@compute @workgroup_size(256)
fn take(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    if (atomicLoad(&state.flags) != 0u || atomicLoad(&state.over) != 0u) { return; }
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < prm.n) { snapshot[i] = bitcast<u32>(params[i]); }
    if (i == 0u) { snapshot[prm.n] = atomicLoad(&state.step); }
}
