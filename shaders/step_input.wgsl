// What a compiled training step reads of a batch row: a training image's pixel (shifted
// as gather.wgsl shifts it) and dropout's keep decision, so the compiled steps
// (compiled_step.wgsl, resident_step.wgsl) draw exactly what the autograd trace draws.
// Expects module-scope `images` (u8 packed) and the constants IMAGE_W, PIXELS, SHIFT, SEED.

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

