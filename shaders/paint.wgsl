// The paint canvas: a W x H f32 buffer (ink in [0, 1]) that the mouse draws into.
//
// The CPU never touches the pixels. Each frame it writes the mouse segments of
// that frame (a few dozen bytes) into `strokes`; `paint` then splats an
// anti-aliased round brush along every segment: a pixel's coverage is how far
// its centre lies inside the capsule of radius r around the segment, with a
// soft edge of EDGE pixels. Painting takes the max with the old ink, erasing
// the min with (1 - coverage), so overlapping dabs never darken or pile up.
//
// `clear` zeroes the canvas; `load_image` replaces it with one dataset image
// (u8, packed four to a u32), upsampled bilinearly, for the dataset browser.

//!include common.wgsl

const EDGE: f32 = 1.25;   // width of the brush's anti-aliased rim, canvas pixels

//!struct Segment
//!struct Strokes

@group(0) @binding(0) var<storage, read> strokes: Strokes;
@group(0) @binding(1) var<storage, read_write> canvas: array<f32>;

// Distance from p to the segment a-b.
fn segment_distance(p: vec2<f32>, a: vec2<f32>, b: vec2<f32>) -> f32 {
    let ab = b - a;
    let len2 = dot(ab, ab);
    var t = 0.0;
    if (len2 > 1e-12) { t = clamp(dot(p - a, ab) / len2, 0.0, 1.0); }
    return length(p - (a + t * ab));
}

@compute @workgroup_size(16, 16)
fn paint(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = strokes.width;
    let h = strokes.height;
    if (gid.x >= w || gid.y >= h) { return; }
    let i = gid.y * w + gid.x;
    let p = vec2<f32>(f32(gid.x) + 0.5, f32(gid.y) + 0.5);
    var v = canvas[i];
    let n = min(strokes.count, arrayLength(&strokes.segs));
    for (var k = 0u; k < n; k++) {
        let s = strokes.segs[k];
        let d = segment_distance(p, vec2<f32>(s.ax, s.ay), vec2<f32>(s.bx, s.by));
        // 1 inside radius - EDGE/2, 0 outside radius + EDGE/2, linear between.
        let cover = clamp((s.radius + 0.5 * EDGE - d) / EDGE, 0.0, 1.0);
        if (cover <= 0.0) { continue; }
        if (s.ink > 0.5) {
            v = max(v, cover);
        } else {
            v = min(v, 1.0 - cover);
        }
    }
    canvas[i] = v;
}

@compute @workgroup_size(16, 16)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = strokes.width;
    if (gid.x >= w || gid.y >= strokes.height) { return; }
    canvas[gid.y * w + gid.x] = 0.0;
}

// -- load a dataset image into the canvas ---------------------------------------------

//!struct Load

@group(0) @binding(0) var<storage, read> load: Load;
@group(0) @binding(1) var<storage, read> images: array<u32>;
@group(0) @binding(2) var<storage, read_write> target_canvas: array<f32>;

// Pixel (x, y) of dataset image `index`, 0 outside the image.
fn sample_px(index: u32, x: i32, y: i32) -> f32 {
    if (x < 0 || y < 0 || x >= i32(load.iw) || y >= i32(load.ih)) { return 0.0; }
    let b = index * load.iw * load.ih + u32(y) * load.iw + u32(x);
    return f32(byte_of(images[b >> 2u], b)) * (1.0 / 255.0);
}

// Image `index` bilinearly upsampled to canvas pixel `p` (pixel centres aligned).
fn upsampled(index: u32, p: vec2<u32>) -> f32 {
    let u = (f32(p.x) + 0.5) * f32(load.iw) / f32(load.cw) - 0.5;
    let t = (f32(p.y) + 0.5) * f32(load.ih) / f32(load.ch) - 0.5;
    let x0 = i32(floor(u));
    let y0 = i32(floor(t));
    let fx = u - f32(x0);
    let fy = t - f32(y0);
    let top = mix(sample_px(index, x0, y0), sample_px(index, x0 + 1, y0), fx);
    let bot = mix(sample_px(index, x0, y0 + 1), sample_px(index, x0 + 1, y0 + 1), fx);
    return mix(top, bot, fy);
}

@compute @workgroup_size(16, 16)
fn load_image(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= load.cw || gid.y >= load.ch) { return; }
    var v = 0.0;
    if (load.index < load.n) { v = upsampled(load.index, gid.xy); }
    target_canvas[gid.y * load.cw + gid.x] = v;
}

// -- load the k-th entry of an index list (a misclassified test digit) ---------------------------
// The index itself stays on the GPU: the CPU only says "entry k of the list".

@group(0) @binding(3) var<storage, read> list: array<u32>;       // sample indices
@group(0) @binding(4) var<storage, read> list_counters: array<u32>; // [2] = entries found (eval.wgsl)

@compute @workgroup_size(16, 16)
fn load_listed(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= load.cw || gid.y >= load.ch) { return; }
    let k = load.index;
    var v = 0.0;
    if (k < min(list_counters[2], arrayLength(&list))) { v = upsampled(list[k], gid.xy); }
    target_canvas[gid.y * load.cw + gid.x] = v;
}

// -- the network's input straight from a dataset sample ------------------------------------------
// A loaded sample feeds the network its own pixels, converted exactly as the evaluation's
// gather does (byte / 255, no resampling), so the canvas shows the same prediction as the
// evaluation and the gallery. `li_sample[0]` records which sample it is (index << 8 | label)
// for the readout; the index of a mistake and its label never leave the GPU otherwise.

@group(0) @binding(0) var<storage, read> li: Load;
@group(0) @binding(1) var<storage, read> li_images: array<u32>;
@group(0) @binding(2) var<storage, read> li_labels: array<u32>;
@group(0) @binding(3) var<storage, read> li_list: array<u32>;      // misclassified indices (listed mode)
@group(0) @binding(4) var<storage, read> li_counters: array<u32>;  // [2] = entries found
@group(0) @binding(5) var<storage, read_write> li_x: array<f32>;  // [iw * ih], the inference input
@group(0) @binding(6) var<storage, read_write> li_sample: array<u32>;

@compute @workgroup_size(64)
fn load_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = li.iw * li.ih;
    let p = gid.x;
    if (p >= d) { return; }
    var valid = false;
    var index = 0u;
    if (li.listed == 1u) {
        valid = li.index < min(li_counters[2], arrayLength(&li_list));
        if (valid) { index = li_list[li.index]; }
    } else {
        valid = li.index < li.n;
        index = li.index;
    }
    var v = 0.0;
    if (valid) {
        let b = index * d + p;
        v = f32(byte_of(li_images[b >> 2u], b)) * (1.0 / 255.0);
    }
    li_x[p] = v;
    if (p == 0u) {
        li_sample[0] = select(0xffffffffu, (index << 8u) | byte_of(li_labels[index >> 2u], index), valid);
    }
}
