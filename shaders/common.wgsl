// Shared helpers, pulled in with `//!include common.wgsl`.

// Training state: a few u32 words every training kernel can see (State, declared in
// compute/structs.py; StateAtomic is the same words as atomics). Any bit of
// `flags` stops the parameter updates until the CPU clears it.
const FLAG_NONFINITE: u32 = 1u;   // a loss or an update was NaN / infinite
const FLAG_EXPLODED: u32 = 2u;    // the loss stayed far above chance level (step_metrics.wgsl)
const FLAG_STALLED: u32 = 4u;     // a grid or row barrier gave up (resident_step.wgsl, the compiled step's row_sync)

// PCG-style integer hash: a counter-based RNG, so a kernel can redraw the same
// random number in forward and backward (dropout mask, augmentation shift)
// from (seed, step, index) without storing it.
fn hash_u32(x: u32) -> u32 {
    var s = x * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

fn rand01(a: u32, b: u32, c: u32) -> f32 {
    let h = hash_u32(a ^ hash_u32(b ^ hash_u32(c)));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

fn is_finite(x: f32) -> bool {
    // NaN fails every comparison; inf fails the bound.
    return abs(x) <= 3.4e38;
}

// Byte `index` of a u8 array packed four to a u32 (datasets stay u8 on the GPU),
// given the word that holds it: byte_of(words[index >> 2u], index).
fn byte_of(word: u32, index: u32) -> u32 {
    return (word >> ((index & 3u) * 8u)) & 0xffu;
}

// Random-shift augmentation: the source pixel that lands on pixel `p` of row `r`
// of step `step` when the image (width w, d pixels) is translated by an offset
// in [-shift, shift]^2 drawn from (seed, step, r); -1 where it falls off the edge.
fn shifted_source(p: u32, w: u32, d: u32, shift: u32, seed: u32, step: u32, r: u32) -> i32 {
    if (shift == 0u) { return i32(p); }
    return shifted_by(p, w, d, shift_offset(shift, seed, step, r));
}

// The offset (dx, dy) in [-shift, shift]^2 drawn for row r of step `step`.
fn shift_offset(shift: u32, seed: u32, step: u32, r: u32) -> vec2<i32> {
    let span = 2u * shift + 1u;
    let h = hash_u32(seed ^ hash_u32(step * 7919u + r));
    return vec2<i32>(i32(h % span) - i32(shift), i32((h / span) % span) - i32(shift));
}

// The source of pixel p when the image is translated by `o`; -1 off the edge.
fn shifted_by(p: u32, w: u32, d: u32, o: vec2<i32>) -> i32 {
    let sx = i32(p % w) - o.x;
    let sy = i32(p / w) - o.y;
    let inside = sx >= 0 && sx < i32(w) && sy >= 0 && sy < i32(d / w);
    return select(-1, sy * i32(w) + sx, inside);
}
