// Views: compute passes that turn storage buffers (weights, activations, the
// canvas) into rgba8unorm storage textures, which imgui then shows. Nothing here
// leaves the GPU; the colour scale of every view comes from `absmax` below.
//
//   absmax  : max |x| over a range of a buffer into one slot of `scales`
//   heatmap : any matrix laid out as a grid of tiles (the W1 mosaic of 28 x 28
//             receptive fields, W2, biases, activation grids, the input image)
//   bars    : a bar chart of a short vector (class probabilities, logits)
//   canvas  : the raw paint canvas with the normaliser's bounding box and centre of mass

//!include colormap.wgsl
//!include font.wgsl

// -- absmax: a buffer range folded to its largest magnitude, in two dispatches ---------------
//
// absmax_part: many workgroups, each folds its share and raises the slot's accumulator with
// atomicMax on the value's bits (for finite values >= 0 the u32 order is the f32 order);
// absmax: takes the accumulator into the slot and leaves it 0 for the next fold. One
// workgroup alone had taken ~0.6 ms for the deep MLP's first layer (400K weights, a chain of
// 1,600 dependent loads per invocation), twice a histogram column: a tenth of the window's
// training throughput at full speed (benchmarks/logs/viz_bench_observers_h100.md).

//!struct Reduce

@group(0) @binding(0) var<storage, read> red: Reduce;
@group(0) @binding(1) var<storage, read> red_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> red_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> red_acc: array<atomic<u32>>;   // per slot, 0 between folds

var<workgroup> partial: array<f32, 256>;

fn finite_abs(x: f32) -> f32 {
    let v = abs(x);
    return select(0.0, v, v <= 3.4e38);    // skip NaN / inf so one bad value does not blank a view
}

@compute @workgroup_size(256)
fn absmax_part(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let stride = nwg.x * 256u;
    var m = 0.0;
    var i = wg.x * 256u + lid.x;
    for (; i + 3u * stride < red.count; i += 4u * stride) {     // four independent loads in flight
        let a = red_src[red.offset + i];
        let b = red_src[red.offset + i + stride];
        let c = red_src[red.offset + i + 2u * stride];
        let d = red_src[red.offset + i + 3u * stride];
        m = max(m, max(max(finite_abs(a), finite_abs(b)), max(finite_abs(c), finite_abs(d))));
    }
    for (; i < red.count; i += stride) { m = max(m, finite_abs(red_src[red.offset + i])); }
    partial[lid.x] = m;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid.x < s) { partial[lid.x] = max(partial[lid.x], partial[lid.x + s]); }
        workgroupBarrier();
    }
    if (lid.x == 0u && partial[0] > 0.0) { atomicMax(&red_acc[red.slot], bitcast<u32>(partial[0])); }
}

@compute @workgroup_size(1)
fn absmax() {
    red_out[red.slot] = bitcast<f32>(atomicExchange(&red_acc[red.slot], 0u));
}

// -- heatmap: a matrix as a grid of tiles ------------------------------------------------------
//
// Tile t (row-major in a grid of `cols` columns, `gap` pixels around each tile) shows
// elements  src[offset + t*st + y*sy + x*sx]  for x < tile_w, y < tile_h. Examples:
//   W1 mosaic (W1 stored [D, H]): tile j = hidden unit j, 28 x 28, sx = H, sy = 28 H, st = 1
//   W2 rows (stored [H, C])     : tile c = class c, H x 1, sx = C, st = 1
//   an image or activation grid : one tile, sx = 1, sy = width
// The value is divided by the scale (scales[scale_slot], or 1) times `gain` and mapped
// through colour map `cmap`. Modulation (mod_mode):
//   1 multiply by mod[mod_offset + y*mod_sy + x*mod_sx]   (weight x input: what each unit sees)
//   2 fade tile t by mod[mod_offset + t] / scales[mod_slot] (dims units that do not fire,
//     and outlines the firing ones)

//!struct Heat

@group(0) @binding(0) var<storage, read> heat: Heat;
@group(0) @binding(1) var<storage, read> heat_src: array<f32>;
@group(0) @binding(2) var<storage, read> heat_mod: array<f32>;
@group(0) @binding(3) var<storage, read> heat_scales: array<f32>;
@group(0) @binding(4) var heat_tex: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(16, 16)
fn heatmap(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(heat_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let px = vec2<i32>(gid.xy);
    let pw = heat.tile_w + heat.gap;
    let ph = heat.tile_h + heat.gap;
    var colour = GRID;
    if (heat.gap == 0u) { colour = BG; }
    let inside = gid.x >= heat.gap && gid.y >= heat.gap;
    let cx = (gid.x - min(gid.x, heat.gap)) / pw;
    let cy = (gid.y - min(gid.y, heat.gap)) / ph;
    let lx = (gid.x - min(gid.x, heat.gap)) % pw;
    let ly = (gid.y - min(gid.y, heat.gap)) % ph;
    let t = cy * heat.cols + cx;
    var scale = 1.0;
    if (heat.scale_slot != 0xffffffffu) { scale = max(heat_scales[heat.scale_slot], 1e-12); }
    if (inside && cx < heat.cols && t < heat.tiles) {
        if (lx < heat.tile_w && ly < heat.tile_h) {
            var v = heat_src[heat.offset + t * heat.st + ly * heat.sy + lx * heat.sx];
            if (heat.mod_mode == 1u) {
                v *= heat_mod[heat.mod_offset + ly * heat.mod_sy + lx * heat.mod_sx];
            }
            colour = colormap(heat.cmap, v * heat.gain / scale);
            if (heat.mod_mode == 2u) {
                let a = heat_mod[heat.mod_offset + t] / max(heat_scales[heat.mod_slot], 1e-12);
                colour = mix(BG, colour, 0.12 + 0.88 * clamp(a, 0.0, 1.0));
            }
        } else if (heat.mod_mode == 2u && heat.gap > 0u) {
            // The gap right of / below a tile: its firing strength as a bright rim.
            let a = heat_mod[heat.mod_offset + t] / max(heat_scales[heat.mod_slot], 1e-12);
            colour = mix(GRID, ACCENT, clamp(a, 0.0, 1.0));
        }
    }
    // Outline the highlighted tile (its gap ring).
    if (heat.highlight != 0xffffffffu && heat.gap > 0u) {
        let hx = heat.highlight % heat.cols;
        let hy = heat.highlight / heat.cols;
        let x0 = i32(hx * pw);
        let y0 = i32(hy * ph);
        let x1 = x0 + i32(pw + heat.gap) - 1;
        let y1 = y0 + i32(ph + heat.gap) - 1;
        let on_ring = px.x >= x0 && px.x <= x1 && px.y >= y0 && px.y <= y1
            && (px.x < x0 + i32(heat.gap) || px.x > x1 - i32(heat.gap)
                || px.y < y0 + i32(heat.gap) || px.y > y1 - i32(heat.gap));
        if (on_ring) { colour = ACCENT; }
    }
    textureStore(heat_tex, px, vec4<f32>(colour, 1.0));
}

// -- bars: one bar per element, labelled with its class name ---------------------------------
//
// mode 0: values in [0, 1] (probabilities) grow up from the bottom; the largest bar is
//         drawn in the accent colour.
// mode 1: signed values (logits) around a middle baseline, scaled by scales[scale_slot].
// Labels (the class names, or the element index) sit in a strip of label_h pixels at the
// bottom, all at the largest scale up to font_scale at which the widest fits its band (cut beyond).
// gated: the bars are about the canvas; while it has no ink (gate[0], the normaliser's
// ink measure) there is nothing to predict: no bars, no winner, dim labels.

//!struct Bars

@group(0) @binding(0) var<storage, read> bars: Bars;
@group(0) @binding(1) var<storage, read> bars_src: array<f32>;
@group(0) @binding(2) var<storage, read> bars_scales: array<f32>;
@group(0) @binding(3) var bars_tex: texture_storage_2d<rgba8unorm, write>;
@group(0) @binding(4) var<storage, read> bars_gate: array<f32>;
@group(0) @binding(5) var<storage, read> bars_names: array<u32>;

fn bars_name_on(c: u32, q: vec2<i32>, s: i32) -> bool {
    let p = vec2<i32>(floor(vec2<f32>(q) / f32(s)));
    if (p.x < 0 || p.y < 0 || p.y >= NAME_H || p.x >= i32(bars_names[c * NAME_SLOT])) { return false; }
    return name_bit(bars_names[name_word(c, u32(p.y), u32(p.x))], u32(p.x));
}

@compute @workgroup_size(16, 16)
fn bar_chart(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(bars_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let px = vec2<i32>(gid.xy);
    let n = max(bars.n, 1u);
    let band = f32(dims.x) / f32(n);
    let k = min(u32(f32(gid.x) / band), n - 1u);
    let chart_h = f32(dims.y - bars.label_h);
    let live = bars.gated == 0u || bars_gate[0] > 0.5;
    // Winner: the largest element (none while there is nothing to predict).
    var best = 0u;
    for (var j = 1u; j < n; j++) {
        if (bars_src[bars.offset + j] > bars_src[bars.offset + best]) { best = j; }
    }
    if (!live) { best = 0xffffffffu; }
    let v = bars_src[bars.offset + k];
    var colour = BG;
    let y = f32(gid.y) + 0.5;
    // Horizontal guides every quarter.
    for (var q = 1u; q < 4u; q++) {
        if (abs(y - chart_h * f32(q) / 4.0) < 0.5) { colour = GRID; }
    }
    let x_in_band = f32(gid.x) + 0.5 - f32(k) * band;
    let in_bar_x = live && x_in_band > band * 0.14 && x_in_band < band * 0.86;
    var bar_colour = vec3<f32>(0.33, 0.45, 0.66);
    if (k == best) { bar_colour = ACCENT; }
    if (bars.mode == 0u) {
        let top = chart_h * (1.0 - clamp(v, 0.0, 1.0));
        if (in_bar_x && y > top && y <= chart_h) { colour = bar_colour; }
        // A thin cap so tiny probabilities still show where the bar is.
        if (in_bar_x && y > chart_h - 1.0 && y <= chart_h) { colour = mix(bar_colour, BG, 0.4); }
    } else {
        let scale = max(bars_scales[bars.scale_slot], 1e-12);
        let mid = chart_h * 0.5;
        let end = mid - clamp(v / scale, -1.0, 1.0) * mid * 0.95;
        if (in_bar_x && y > min(mid, end) && y <= max(mid, end)) {
            colour = select(vec3<f32>(0.36, 0.55, 0.92), vec3<f32>(0.92, 0.40, 0.22), v >= 0.0);
            if (k == best) { colour = ACCENT; }
        }
        if (abs(y - mid) < 0.5) { colour = TEXT * 0.6; }
    }
    // Label centred under the bar, clipped to its band.
    if (bars.label_h > 0u && gid.y >= dims.y - bars.label_h) {
        let b0 = i32(f32(k) * band);
        let room = i32(f32(k + 1u) * band) - b0 - 2;
        var on = false;
        var s = i32(max(bars.font_scale, 1u));
        if (bars.named == 1u) {
            // One scale for every label (the largest at which the widest fits), cut beyond.
            var widest = 0;
            for (var j = 0u; j < n; j++) { widest = max(widest, i32(bars_names[j * NAME_SLOT])); }
            s = name_scale(widest, room, s);
            let w = i32(bars_names[k * NAME_SLOT]);
            let ox = b0 + 1 + max((room - w * s) / 2, 0);
            let oy = i32(dims.y - bars.label_h) + (i32(bars.label_h) - NAME_H * s) / 2;
            on = px.x < b0 + 1 + room && bars_name_on(k, px - vec2<i32>(ox, oy), s);
        } else {
            let w = number_width(k, s);
            let ox = i32(f32(k) * band + band * 0.5) - w / 2;
            let oy = i32(dims.y - bars.label_h) + (i32(bars.label_h) - GLYPH_H * s) / 2;
            on = number_on(k, px, vec2<i32>(ox, oy), s);
        }
        if (on) {
            colour = select(select(TEXT, ACCENT, k == best), TEXT * 0.55, !live);
        }
    }
    textureStore(bars_tex, px, vec4<f32>(colour, 1.0));
}

// -- the paint canvas, with what the normaliser measured ---------------------------------------

//!struct CanvasView

@group(0) @binding(0) var<storage, read> cv: CanvasView;
@group(0) @binding(1) var<storage, read> cv_canvas: array<f32>;
@group(0) @binding(2) var<storage, read> cv_norm: array<f32>;
@group(0) @binding(3) var cv_tex: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(16, 16)
fn canvas_view(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= cv.cw || gid.y >= cv.ch) { return; }
    let v = cv_canvas[gid.y * cv.cw + gid.x];
    var colour = grey(v);
    let q = vec2<i32>(gid.xy);
    let p = vec2<f32>(q) + vec2<f32>(0.5);
    // Faint dashed guide: the central box MNIST digits are fitted into (20/28 of the shorter side).
    let side = i32(f32(min(cv.cw, cv.ch)) * 20.0 / 28.0);
    let m = (vec2<i32>(i32(cv.cw), i32(cv.ch)) - vec2<i32>(side)) / 2;
    let e = m + vec2<i32>(side - 1);
    let on_guide = ((q.x == m.x || q.x == e.x) && q.y >= m.y && q.y <= e.y)
        || ((q.y == m.y || q.y == e.y) && q.x >= m.x && q.x <= e.x);
    if (on_guide && (q.x + q.y) % 6 < 3) { colour = mix(colour, TEXT, 0.18); }
    if (cv.show_box == 1u && cv_norm[0] > 0.5) {
        // The ink's bounding box, drawn on the pixels just outside it.
        let lo = vec2<i32>(vec2<f32>(cv_norm[1], cv_norm[2])) - vec2<i32>(1);
        let hi = vec2<i32>(vec2<f32>(cv_norm[3], cv_norm[4]));
        let on_box = ((q.x == lo.x || q.x == hi.x) && q.y >= lo.y && q.y <= hi.y)
            || ((q.y == lo.y || q.y == hi.y) && q.x >= lo.x && q.x <= hi.x);
        if (on_box) { colour = mix(colour, vec3<f32>(0.35, 0.65, 1.0), 0.85); }
        // Centre of mass: a small cross.
        let d = abs(p - vec2<f32>(cv_norm[6], cv_norm[7]));
        if ((d.x < 0.5 && d.y < 3.0) || (d.y < 0.5 && d.x < 3.0)) { colour = mix(colour, WRONG, 0.9); }
    }
    textureStore(cv_tex, vec2<i32>(gid.xy), vec4<f32>(colour, 1.0));
}

// -- the prediction as a badge: the winning digit, large, and its probability ----------------------
// Drawn from the probabilities of this very frame (no readback, no lag); blank while the
// canvas has no ink.

//!struct Badge

@group(0) @binding(0) var<storage, read> badge: Badge;
@group(0) @binding(1) var<storage, read> badge_probs: array<f32>;
@group(0) @binding(2) var<storage, read> badge_norm: array<f32>;
@group(0) @binding(3) var badge_tex: texture_storage_2d<rgba8unorm, write>;
@group(0) @binding(4) var<storage, read> badge_names: array<u32>;

fn badge_name_on(c: u32, q: vec2<i32>, s: i32) -> bool {
    let p = vec2<i32>(floor(vec2<f32>(q) / f32(s)));
    if (p.x < 0 || p.y < 0 || p.y >= NAME_H || p.x >= i32(badge_names[c * NAME_SLOT])) { return false; }
    return name_bit(badge_names[name_word(c, u32(p.y), u32(p.x))], u32(p.x));
}

@compute @workgroup_size(16, 16)
fn prediction_badge(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(badge_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let px = vec2<i32>(gid.xy);
    var colour = BG;
    if (badge_norm[0] > 0.5) {
        var best = 0u;
        for (var c = 1u; c < badge.n; c++) {
            if (badge_probs[c] > badge_probs[best]) { best = c; }
        }
        let p = badge_probs[best];
        let winner = mix(vec3<f32>(0.95, 0.72, 0.30), ACCENT, clamp((p - 0.5) * 2.0, 0.0, 1.0));
        let ts = i32(badge.text_scale);
        let pct = u32(round(clamp(p, 0.0, 1.0) * 100.0));
        if (badge.named == 1u) {
            // The class name (as large as fits, up to 3x) over "93%".
            let w = i32(badge_names[best * NAME_SLOT]);
            let s = name_scale(w, i32(dims.x) - 4, 3);
            if (badge_name_on(best, px - vec2<i32>(2, 6), s)) { colour = winner; }
            let y0 = 6 + NAME_H * s + 6;
            if (number_on(pct, px, vec2<i32>(2, y0), ts)) { colour = TEXT; }
            if (glyph_on(GLYPH_PERCENT, px - vec2<i32>(2 + number_width(pct, ts) + ts, y0), ts)) { colour = TEXT; }
        } else {
            let ds = i32(badge.digit_scale);
            let top = (i32(dims.y) - GLYPH_H * ds) / 2;
            if (number_on(best, px, vec2<i32>(ds, top), ds)) { colour = winner; }
            // "97%" (rounded percentage), bottom-aligned with the digit.
            let x0 = ds + number_width(best, ds) + ds;
            let y0 = top + (GLYPH_H * ds) - GLYPH_H * ts;
            if (number_on(pct, px, vec2<i32>(x0, y0), ts)) { colour = TEXT; }
            let xp = x0 + number_width(pct, ts) + ts;
            if (glyph_on(GLYPH_PERCENT, px - vec2<i32>(xp, y0), ts)) { colour = TEXT; }
        }
    }
    textureStore(badge_tex, px, vec4<f32>(colour, 1.0));
}
