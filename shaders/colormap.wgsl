// Colour maps shared by the view kernels (pulled in with `//!include colormap.wgsl`).
//
// Values are display colours (sRGB-encoded, as imgui's own colours are): the imgui
// pipeline linearises texture colours for an sRGB swapchain, so what is written
// here is what appears on screen. viz/colormap.py mirrors these functions in
// numpy for the tests; keep the two in step.

const BG: vec3<f32> = vec3<f32>(0.067, 0.071, 0.086);      // view background (matches the panel colour)
const GRID: vec3<f32> = vec3<f32>(0.16, 0.17, 0.20);       // grid lines, tile gaps
const ACCENT: vec3<f32> = vec3<f32>(0.36, 0.82, 0.52);     // the winning class, correct
const WRONG: vec3<f32> = vec3<f32>(0.95, 0.36, 0.33);      // errors
const INK: vec3<f32> = vec3<f32>(0.96, 0.95, 0.90);        // digits (white ink on dark)
const TEXT: vec3<f32> = vec3<f32>(0.80, 0.82, 0.86);       // labels

// Diverging map for signed values, t = value / scale clamped to [-1, 1]:
// light cyan <- blue <- near-black (0) -> orange-red -> light yellow.
// Zero is dark so a weight mosaic reads as strokes on a dark background.
fn diverging(t: f32) -> vec3<f32> {
    let s = clamp(t, -1.0, 1.0);
    let c0 = vec3<f32>(0.62, 0.88, 1.00);
    let c1 = vec3<f32>(0.16, 0.47, 0.92);
    let c2 = vec3<f32>(0.07, 0.07, 0.09);
    let c3 = vec3<f32>(0.92, 0.32, 0.12);
    let c4 = vec3<f32>(1.00, 0.88, 0.55);
    if (s < -0.5) { return mix(c0, c1, (s + 1.0) * 2.0); }
    if (s < 0.0) { return mix(c1, c2, (s + 0.5) * 2.0); }
    if (s < 0.5) { return mix(c2, c3, s * 2.0); }
    return mix(c3, c4, (s - 0.5) * 2.0);
}

// Sequential map for non-negative values (activations), t in [0, 1]:
// near-black -> purple -> orange -> pale yellow (magma-like).
fn sequential(t: f32) -> vec3<f32> {
    let s = clamp(t, 0.0, 1.0);
    let c0 = vec3<f32>(0.07, 0.07, 0.09);
    let c1 = vec3<f32>(0.45, 0.13, 0.52);
    let c2 = vec3<f32>(0.94, 0.44, 0.26);
    let c3 = vec3<f32>(0.99, 0.93, 0.66);
    if (s < 1.0 / 3.0) { return mix(c0, c1, s * 3.0); }
    if (s < 2.0 / 3.0) { return mix(c1, c2, s * 3.0 - 1.0); }
    return mix(c2, c3, s * 3.0 - 2.0);
}

// Grey ink for images in [0, 1]: the background colour at 0, INK at 1.
fn grey(t: f32) -> vec3<f32> {
    return mix(BG, INK, clamp(t, 0.0, 1.0));
}

// map 0 diverging (signed), 1 sequential (>= 0), 2 grey (images)
fn colormap(kind: u32, t: f32) -> vec3<f32> {
    if (kind == 0u) { return diverging(t); }
    if (kind == 1u) { return sequential(t); }
    return grey(t);
}
