// The resident training step: many training steps of an MLP in one dispatch.
//
// The compiled step (compiled_step.wgsl) gives each batch row a workgroup, so at batch 32
// a step runs on 32 SMs, each streaming the whole network from L2. Here every workgroup
// (one per SM, all resident at once) owns a share of every layer's output units for the
// whole batch: it keeps its weight columns, computes those units for every row, and meets
// the other workgroups at a barrier across the grid between dependent phases. A step is
//
//   f0 .. f{L-2}  each hidden layer's forward: this workgroup's units, every row
//   top           every workgroup: the last layer, softmax / cross-entropy, dlogits, and
//                 the top hidden layer's output gradient for its own units
//   b{L-3} .. b0  each hidden layer's output gradient, for its own units
//   u             the updates still pending (the first layer's, the next one's), merged
//                 with the next step's f0 (no workgroup reads what another updates there)
//
// each update placed in the first phase after every workgroup has read the old weights.
// The step compiler's Python side (compute/resident_step.py) generates the phases for one
// network and batch; this file is what they share.
//
// Memory between workgroups: the activations and gradients other workgroups read live in
// `exchange`, double-buffered by the step's parity. They (and weights another workgroup
// updates) are read with atomic loads: a plain load on NVIDIA may be served from the SM's
// L1, which is not coherent across SMs inside a dispatch (benchmarks/grid_barrier.py counts
// the stale values plain loads see; atomic loads see none and cost the same).
//
// On a CPU adapter, or wherever the workgroups cannot all be resident, the same phases run
// as one dispatch each (the `phase_*` entry points), the dispatch boundary standing in for
// the barrier.

//!include common.wgsl
//!include schedule.wgsl
//!include optim_rule.wgsl
//!include step_metrics.wgsl
//!include step_input.wgsl
//!struct State

@group(0) @binding(0) var<storage, read> hyper: Hyper;
@group(0) @binding(1) var<storage, read_write> state: StateAtomic;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read> images: array<u32>;        // the training set, u8 packed
@group(0) @binding(6) var<storage, read> labels: array<u32>;
@group(0) @binding(7) var<storage, read> perm: array<u32>;          // this epoch's sample order
@group(0) @binding(8) var<storage, read_write> exchange: array<atomic<u32>>;  // f32 bits, see above
@group(0) @binding(9) var<storage, read_write> history: array<f32>;
@group(0) @binding(10) var<storage, read_write> params_shared: array<atomic<u32>>; // the arena again
@group(0) @binding(11) var<storage, read_write> launch: array<atomic<u32>>;  // steps, arrivals, stalled

// A value another workgroup wrote in this dispatch, and one for others to read.
fn xget(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&exchange[i])); }
fn xput(i: u32, v: f32) { atomicStore(&exchange[i], bitcast<u32>(v)); }
// A parameter another workgroup may have updated in this dispatch.
fn pget(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&params_shared[i])); }

// Barrier k (counted from 0 in this dispatch) across all G workgroups: every workgroup's
// writes are made visible (storageBarrier is device-scoped), one invocation counts the
// arrival and waits for all G. A GPU that cannot keep all G resident would wait forever:
// the wait gives up after SPIN_LIMIT polls, or at once once another workgroup has given
// up, and marks the dispatch stalled (launch[2]); the run then throws the chunk away.
fn grid_sync(t: u32, k: u32) {
    storageBarrier();
    if (t == 0u) {
        atomicAdd(&launch[1], 1u);
        let goal = (k + 1u) * G;
        var spins = 0u;
        loop {
            if (atomicLoad(&launch[1]) >= goal) { break; }
            spins += 1u;
            if (spins > SPIN_LIMIT || atomicLoad(&launch[2]) != 0u) {
                atomicStore(&launch[2], 1u);
                break;
            }
        }
    }
    storageBarrier();
}

//!generated
