// Batch assembly on the GPU: picks this step's rows of the u8 dataset through
// the epoch's shuffled permutation and converts them to f32 in [0, 1].
//
//   train mode: row r of step s reads sample perm[(s mod steps_per_epoch) * B + r]
//   eval mode : row r reads sample base + r (no permutation, no augmentation)
// Rows past the end of the dataset (the tail batch) get zeros and label 0xffffffff,
// which the loss kernel skips. Optional augmentation shifts each image by a random
// integer offset in [-shift, shift]^2 drawn from (seed, step, row).

//!include common.wgsl

//!struct Gather
//!struct State

@group(0) @binding(0) var<uniform> prm: Gather;
@group(0) @binding(1) var<storage, read> images: array<u32>;   // N*D bytes
@group(0) @binding(2) var<storage, read> labels: array<u32>;   // N bytes
@group(0) @binding(3) var<storage, read> perm: array<u32>;     // N
@group(0) @binding(4) var<storage, read> state: State;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;  // [B, D]
@group(0) @binding(6) var<storage, read_write> y: array<u32>;  // [B]

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= prm.B * prm.D) { return; }
    let r = i / prm.D;
    let p = i % prm.D;
    let step = state.step;
    var pos: u32;
    if (prm.eval_mode == 1u) {
        pos = prm.base + r;
    } else {
        let spe = (prm.N + prm.B - 1u) / prm.B;
        pos = (step % spe) * prm.B + r;
    }
    if (pos >= prm.N) {
        x[i] = 0.0;
        if (p == 0u) { y[r] = 0xffffffffu; }
        return;
    }
    var sample = pos;
    if (prm.eval_mode == 0u) { sample = perm[pos]; }
    var v = 0.0;
    var src = i32(p);
    if (prm.eval_mode == 0u) { src = shifted_source(p, prm.W, prm.D, prm.shift, prm.seed, step, r); }
    if (src >= 0) {
        let b = sample * prm.D + u32(src);
        v = f32(byte_of(images[b >> 2u], b)) * (1.0 / 255.0);
    }
    x[i] = v;
    if (p == 0u) { y[r] = byte_of(labels[sample >> 2u], sample); }
}
