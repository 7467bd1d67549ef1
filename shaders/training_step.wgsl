// What every compiled training step (compiled_step.wgsl, resident_step.wgsl) shares: its
// helpers, its first eight bindings (compute/step_compiler.py's step_resources binds them),
// and what it reads of a batch row: a training image's pixel (shifted as gather.wgsl
// shifts it) and dropout's keep decision, so the compiled steps draw exactly what the
// autograd trace draws. Expects the constants IMAGE_W, PIXELS, SHIFT, SEED.

//!include common.wgsl
//!include schedule.wgsl
//!include optim_rule.wgsl
//!include step_metrics.wgsl
//!struct State

@group(0) @binding(0) var<storage, read> hyper: Hyper;
@group(0) @binding(1) var<storage, read_write> state: StateAtomic;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read> images: array<u32>;        // the training set, u8 packed
@group(0) @binding(6) var<storage, read> labels: array<u32>;
@group(0) @binding(7) var<storage, read> perm: array<u32>;          // this epoch's sample order

// Pixel k of the (optionally shifted) training image `sample`, batch row r, as f32 in [0, 1];
// the same draw as gather.wgsl, so the compiled step equals the traced one.
fn image_pixel(sample: u32, k: u32, step: u32, r: u32) -> f32 {
    let src = shifted_source(k, IMAGE_W, PIXELS, SHIFT, SEED, step, r);
    if (src < 0) { return 0.0; }
    let b = sample * PIXELS + u32(src);
    return f32(byte_of(images[b >> 2u], b)) * (1.0 / 255.0);
}

// Inverted dropout's keep decision for element j of batch row r: the hash dropout.wgsl
// draws for flat index r * width + j of the layer's [B, width] output.
fn keep(seed: u32, step: u32, r: u32, width: u32, j: u32, p: f32) -> bool {
    return rand01(seed, step, r * width + j) >= p;
}

