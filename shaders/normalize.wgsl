// What the network sees: the painted canvas normalised the way MNIST digits were made.
//
// MNIST's recipe (LeCun et al.): fit the digit's bounding box into a 20 x 20 box
// preserving the aspect ratio (anti-aliased), then place it in the 28 x 28 image
// so that its centre of mass sits on the centre pixel (14, 14). Done here in two passes,
// both on the GPU, so a digit drawn small, large or off-centre reads the same:
//
//   measure  : one workgroup reduces the canvas to its ink bounding box (pixels
//              above a threshold), total ink and centre of mass, and derives the
//              mapping output pixel -> canvas position (scale + centre).
//   resample : one invocation per output pixel integrates the canvas over the
//              pixel's footprint (a box filter: exact area coverage, which is the
//              anti-aliasing) when shrinking, and samples bilinearly when enlarging.
//
// mode 0 skips the normalisation: the same resampler then maps the whole canvas
// onto the 28 x 28 input (a plain box downsample), for comparison in the UI.
//
// norm (f32) layout, also drawn by the canvas view and read by the stats pass:
//   [0] valid (1 = there is ink)   [1..4] bbox min x, min y, max x, max y (edges, canvas px)
//   [5] ink mass   [6, 7] centre of mass (canvas px)   [8] scale (output px per canvas px)

//!struct Normalize

@group(0) @binding(0) var<storage, read> prm: Normalize;
@group(0) @binding(1) var<storage, read> canvas: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_out: array<f32>;

const WG: u32 = 256u;
var<workgroup> red_lo: array<vec2<f32>, WG>;
var<workgroup> red_hi: array<vec2<f32>, WG>;
var<workgroup> red_m: array<vec3<f32>, WG>;   // mass, sum x*m, sum y*m

@compute @workgroup_size(256)
fn measure(@builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    var lo = vec2<f32>(1e9, 1e9);
    var hi = vec2<f32>(-1e9, -1e9);
    var m = vec3<f32>(0.0);
    let n = prm.cw * prm.ch;
    for (var i = t; i < n; i += WG) {
        let v = canvas[i];
        let p = vec2<f32>(f32(i % prm.cw), f32(i / prm.cw));
        if (v > prm.thresh) {
            lo = min(lo, p);
            hi = max(hi, p + vec2<f32>(1.0));
        }
        m += vec3<f32>(v, v * (p.x + 0.5), v * (p.y + 0.5));
    }
    red_lo[t] = lo;
    red_hi[t] = hi;
    red_m[t] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            red_lo[t] = min(red_lo[t], red_lo[t + s]);
            red_hi[t] = max(red_hi[t], red_hi[t + s]);
            red_m[t] = red_m[t] + red_m[t + s];
        }
        workgroupBarrier();
    }
    if (t != 0u) { return; }
    let bb_lo = red_lo[0];
    let bb_hi = red_hi[0];
    let mass = red_m[0].x;
    let valid = mass > 1e-3 && bb_hi.x > bb_lo.x;
    var com = vec2<f32>(f32(prm.cw), f32(prm.ch)) * 0.5;
    var scale = f32(prm.ow) / f32(prm.cw);
    if (valid) {
        if (prm.mode == 1u) {
            com = red_m[0].yz / mass;
            let extent = max(bb_hi.x - bb_lo.x, bb_hi.y - bb_lo.y);
            scale = prm.box_size / extent;
        }
    }
    norm[0] = select(0.0, 1.0, valid);
    norm[1] = select(0.0, bb_lo.x, valid);
    norm[2] = select(0.0, bb_lo.y, valid);
    norm[3] = select(0.0, bb_hi.x, valid);
    norm[4] = select(0.0, bb_hi.y, valid);
    norm[5] = mass;
    norm[6] = com.x;
    norm[7] = com.y;
    norm[8] = scale;
}

fn canvas_px(x: i32, y: i32) -> f32 {
    if (x < 0 || y < 0 || x >= i32(prm.cw) || y >= i32(prm.ch)) { return 0.0; }
    return canvas[u32(y) * prm.cw + u32(x)];
}

@compute @workgroup_size(64)
fn resample(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= prm.ow * prm.oh) { return; }
    if (norm[0] < 0.5) { x_out[i] = 0.0; return; }
    let s = norm[8];
    let com = vec2<f32>(norm[6], norm[7]);
    // MNIST put the centre of mass on pixel (14, 14) by index, i.e. 14.5 in continuous
    // coordinates (the training set's mean centre of mass, measured: 14.50, 14.50).
    var centre = vec2<f32>(f32(prm.ow), f32(prm.oh)) * 0.5;
    if (prm.mode == 1u) { centre += vec2<f32>(0.5); }
    let o = vec2<f32>(f32(i % prm.ow), f32(i / prm.ow));
    // Footprint of output pixel o on the canvas: the centre of mass lands on the image centre.
    let p0 = com + (o - centre) / s;
    let p1 = p0 + vec2<f32>(1.0 / s);
    var v = 0.0;
    if (s >= 1.0) {
        // Enlarging: bilinear sample at the footprint centre.
        let c = 0.5 * (p0 + p1) - vec2<f32>(0.5);
        let f = floor(c);
        let fr = c - f;
        let x0 = i32(f.x);
        let y0 = i32(f.y);
        let top = mix(canvas_px(x0, y0), canvas_px(x0 + 1, y0), fr.x);
        let bot = mix(canvas_px(x0, y0 + 1), canvas_px(x0 + 1, y0 + 1), fr.x);
        v = mix(top, bot, fr.y);
    } else {
        // Shrinking: exact area average over the footprint (at most ~6 x 6 canvas pixels).
        let xa = i32(floor(p0.x));
        let ya = i32(floor(p0.y));
        let xb = min(i32(ceil(p1.x)), xa + 32);
        let yb = min(i32(ceil(p1.y)), ya + 32);
        var acc = 0.0;
        for (var y = ya; y < yb; y++) {
            let wy = min(p1.y, f32(y + 1)) - max(p0.y, f32(y));
            if (wy <= 0.0) { continue; }
            for (var x = xa; x < xb; x++) {
                let wx = min(p1.x, f32(x + 1)) - max(p0.x, f32(x));
                if (wx <= 0.0) { continue; }
                acc += wx * wy * canvas_px(x, y);
            }
        }
        v = acc * s * s;
    }
    x_out[i] = clamp(v, 0.0, 1.0);
}
