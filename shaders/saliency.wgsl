// Saliency: the gradient of one class's score with respect to the network's input
// (viz/saliency.py traces forward + backward through the autograd ops; these are the
// ends of that program), drawn as a signed overlay on the canvas, and the gradient
// ascent that pushes the input toward a class.
//
//   seed     : d(score)/d(logits) for the backward pass. mode 0: the class's logit
//              (a one-hot row); mode 1: its log-probability, d log p_k / d z = onehot_k - softmax(z)
//              (ascending a bare logit can raise the others with it; this cannot).
//   absmax   : max |gradient| over the image (the overlay's and the ascent's scale).
//   ascend   : x <- clamp(x + step * g / max|g|, 0, 1): one push step, at most `step` a pixel.
//   overlay  : per canvas pixel, the input pixel it was resampled into (normalize.wgsl's
//              mapping, inverted), red where the gradient is positive, blue where negative,
//              alpha |g| / (gain * max|g|).

//!struct Saliency

@group(0) @binding(0) var<storage, read> sp: Saliency;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> seed: array<f32>;

@compute @workgroup_size(1)
fn seed_grad() {
    var best = 0u;
    for (var c = 1u; c < sp.classes; c++) {
        if (logits[c] > logits[best]) { best = c; }
    }
    let k = select(sp.class_index, best, sp.class_index >= sp.classes);
    var total = 0.0;
    for (var c = 0u; c < sp.classes; c++) { total += exp(logits[c] - logits[best]); }
    for (var c = 0u; c < sp.classes; c++) {
        var g = select(0.0, 1.0, c == k);
        if (sp.mode == 1u) { g -= exp(logits[c] - logits[best]) / total; }
        seed[c] = g;
    }
}

@group(0) @binding(0) var<storage, read> prm: Saliency;
@group(0) @binding(1) var<storage, read> grad: array<f32>;        // [d]: d(score)/d(input)
@group(0) @binding(2) var<storage, read_write> stats: array<f32>; // [0] max |grad|
@group(0) @binding(3) var<storage, read_write> x: array<f32>;     // the network's input (canvas.x)
@group(0) @binding(4) var<storage, read> norm: array<f32>;        // normalize.wgsl's measure
@group(0) @binding(5) var out: texture_storage_2d<rgba8unorm, write>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn absmax(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var m = 0.0;
    for (var i = t; i < prm.d; i += WG) { m = max(m, abs(grad[i])); }
    red[t] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) { red[t] = max(red[t], red[t + s]); }
        workgroupBarrier();
    }
    if (t == 0u) { stats[0] = red[0]; }
}

@compute @workgroup_size(256)
fn ascend(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= prm.d || stats[0] <= 0.0) { return; }
    x[i] = clamp(x[i] + prm.step * grad[i] / stats[0], 0.0, 1.0);
}

@compute @workgroup_size(16, 16)
fn overlay(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= prm.cw || gid.y >= prm.ch) { return; }
    let p = vec2<f32>(gid.xy) + vec2<f32>(0.5);
    let size = vec2<f32>(f32(prm.iw), f32(prm.ih));
    // Input pixel o of canvas point p: resample reads canvas p = com + (o - centre) / s.
    var o = p * size / vec2<f32>(f32(prm.cw), f32(prm.ch));
    if (prm.plain == 0u && norm[0] > 0.5) {
        var centre = size * 0.5;
        if (prm.centred == 1u) { centre += vec2<f32>(0.5); }
        o = centre + (p - vec2<f32>(norm[6], norm[7])) * norm[8];
    }
    var c = vec4<f32>(0.0);
    let m = stats[0];
    if (all(o >= vec2<f32>(0.0)) && all(o < size) && m > 0.0) {
        let q = vec2<u32>(o);
        let g = grad[q.y * prm.iw + q.x];
        let a = clamp(abs(g) / (prm.gain * m), 0.0, 1.0);
        let colour = select(vec3<f32>(0.15, 0.45, 1.0), vec3<f32>(0.95, 0.2, 0.15), g > 0.0);
        c = vec4<f32>(colour, a * 0.75);   // the digit stays visible under it
    }
    textureStore(out, vec2<i32>(gid.xy), c);
}
