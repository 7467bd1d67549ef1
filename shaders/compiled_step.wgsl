// The compiled training step: what every generated step shares.
//
// The step compiler (compute/step_compiler.py) appends to this file, for one
// network and batch size, its constants (sizes, offsets), its workgroup arrays and
// two entry points, so that a whole training step is two dependent dispatches:
//
//   forward_backward  one workgroup per R batch rows (or P of them, "row parts").
//                     Each row runs gather, every layer's forward pass, softmax /
//                     cross-entropy and the backward pass down to the first layer's
//                     output gradient, in workgroup memory; a weight vector loaded
//                     once serves all R rows. It writes each layer's input and output
//                     gradient to `scratch`. With P parts, each computes 1/P of every
//                     large layer's outputs and input gradient and the parts meet at
//                     `row_sync` where one needs the others' (generated with the
//                     step; on a CPU adapter each meeting is a dispatch boundary:
//                     forward_backward_0, _1, ...).
//   update            every parameter's gradient as a sum over the batch rows, each
//                     followed at once by the optimizer rule (optim_rule.wgsl), so no
//                     gradient is ever stored; then the step's metrics and counters.
//
// Neither pass reads a word the other writes in the same dispatch: pass 1 reads
// state.step and copies it to state.step_snap, pass 2 reads step_snap and writes
// step = step_snap + 1 (the same scheme as the autograd trace's `advance`).

//!include training_step.wgsl
@group(0) @binding(8) var<storage, read_write> scratch: array<f32>; // per-row activations and gradients
@group(0) @binding(9) var<storage, read_write> history: array<f32>;
@group(0) @binding(10) var<storage, read_write> params4: array<vec4<f32>>;   // the arena again, as vec4
@group(0) @binding(11) var<storage, read_write> scratch4: array<vec4<f32>>;  // scratch again, as vec4

//!generated
