// Views of the evaluation results and the dataset, drawn from GPU buffers.
//
//   confusion      : the C x C confusion matrix with its counts printed in the cells
//                    (rows = true class, columns = predicted), coloured by row share
//   gallery_gather : the misclassified test images of one gallery page into a batch,
//                    which the traced forward pass then classifies (for the labels)
//   tiles          : a grid of 28 x 28 digits with a label strip under each: a page of
//                    the dataset (mode 0: label), or of the misclassified test digits
//                    (mode 1: true -> predicted), labelled with the class names
//
// counters layout (eval.wgsl): [0] correct, [1] seen, [2] misclassified found,
// [3 + t*C + p] confusion count of true class t predicted as p.

//!include common.wgsl
//!include colormap.wgsl
//!include font.wgsl

// -- confusion matrix --------------------------------------------------------------------------

//!struct Confusion

@group(0) @binding(0) var<storage, read> cm: Confusion;
@group(0) @binding(1) var<storage, read> cm_counters: array<u32>;
@group(0) @binding(2) var cm_tex: texture_storage_2d<rgba8unorm, write>;
@group(0) @binding(3) var<storage, read> cm_names: array<u32>;

// Class c's name at `origin` (scale 1), clipped to [origin.x, clip).
fn cm_name_on(c: u32, px: vec2<i32>, origin: vec2<i32>, clip: i32) -> bool {
    let p = px - origin;
    if (px.x >= clip || p.x < 0 || p.y < 0 || p.y >= NAME_H || p.x >= i32(cm_names[c * NAME_SLOT])) { return false; }
    return name_bit(cm_names[name_word(c, u32(p.y), u32(p.x))], u32(p.x));
}

@compute @workgroup_size(16, 16)
fn confusion(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(cm_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let px = vec2<i32>(gid.xy);
    let c = cm.classes;
    let mx = i32(cm.margin_x);
    let m = i32(cm.margin);
    var colour = BG;
    let gx = px.x - mx;
    let gy = px.y - m;
    if (gx >= 0 && gy >= 0) {
        let col = u32(gx) / cm.cell_w;
        let row = u32(gy) / cm.cell_h;
        let lx = u32(gx) % cm.cell_w;
        let ly = u32(gy) % cm.cell_h;
        if (col < c && row < c) {
            var row_sum = 0u;
            for (var j = 0u; j < c; j++) { row_sum += cm_counters[3u + row * c + j]; }
            let n = cm_counters[3u + row * c + col];
            let share = f32(n) / f32(max(row_sum, 1u));
            if (row == col) {
                colour = mix(BG, ACCENT * 0.8, select(0.0, 0.25 + 0.75 * share, n > 0u));
            } else if (n > 0u) {
                // Errors are a few percent of a row: sqrt stretches them into view.
                colour = mix(BG, WRONG, 0.2 + 0.8 * sqrt(min(share / 0.1, 1.0)));
            } else {
                colour = mix(BG, GRID, 0.55);
            }
            if (lx == 0u || ly == 0u) { colour = BG; }   // cell separators
            if (n > 0u) {
                let tw = number_width(n, 1);
                let origin = vec2<i32>(mx + i32(col * cm.cell_w) + (i32(cm.cell_w) - tw + 1) / 2,
                                       m + i32(row * cm.cell_h) + (i32(cm.cell_h) - GLYPH_H + 1) / 2);
                if (number_on(n, px, origin, 1)) {
                    colour = select(vec3<f32>(0.04), INK, dot(colour, vec3<f32>(0.3, 0.55, 0.15)) < 0.45);
                }
            }
        }
    } else if (gx >= 0 || gy >= 0) {
        // Headers: the predicted class above the columns (centred, clipped to the cell),
        // the true class left of the rows (right-aligned in the margin).
        var k = 0u;
        var origin = vec2<i32>(0);
        var clip = 0;
        if (gy < 0) {
            k = u32(gx) / cm.cell_w;
            let w = i32(cm_names[min(k, c - 1u) * NAME_SLOT]);
            let x0 = mx + i32(k * cm.cell_w);
            origin = vec2<i32>(x0 + max((i32(cm.cell_w) - w) / 2, 1), (m - NAME_H) / 2);
            clip = x0 + i32(cm.cell_w) - 1;
        } else {
            k = u32(gy) / cm.cell_h;
            let w = i32(cm_names[min(k, c - 1u) * NAME_SLOT]);
            origin = vec2<i32>(max(mx - 4 - w, 1), m + i32(k * cm.cell_h) + (i32(cm.cell_h) - NAME_H) / 2);
            clip = mx - 2;
        }
        if (k < c && cm_name_on(k, px, origin, clip)) { colour = TEXT; }
    }
    textureStore(cm_tex, px, vec4<f32>(colour, 1.0));
}

// -- misclassified digits into a batch ----------------------------------------------------------

//!struct GalleryGather

@group(0) @binding(0) var<storage, read> ga: GalleryGather;
@group(0) @binding(1) var<storage, read> ga_images: array<u32>;
@group(0) @binding(2) var<storage, read> ga_wrong: array<u32>;
@group(0) @binding(3) var<storage, read> ga_counters: array<u32>;
@group(0) @binding(4) var<storage, read_write> ga_x: array<f32>;

@compute @workgroup_size(256)
fn gallery_gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= ga.batch * ga.pixels) { return; }
    let r = i / ga.pixels;
    let p = i % ga.pixels;
    let k = ga.first + r;
    var v = 0.0;
    if (k < min(ga_counters[2], ga.wrong_cap)) {
        let b = ga_wrong[k] * ga.pixels + p;
        v = f32(byte_of(ga_images[b >> 2u], b)) * (1.0 / 255.0);
    }
    ga_x[i] = v;
}

// -- digit tiles --------------------------------------------------------------------------------
// Each tile is `tile_w` wide (the image centred in it) over a label strip of `lines` lines of
// class names at `font_scale`: the label (dataset), or true -> predicted (misclassified),
// on one line or, when the names are long, the true class over "-> predicted".

//!struct Tiles

@group(0) @binding(0) var<storage, read> tl: Tiles;
@group(0) @binding(1) var<storage, read> tl_images: array<u32>;
@group(0) @binding(2) var<storage, read> tl_labels: array<u32>;
@group(0) @binding(3) var<storage, read> tl_wrong: array<u32>;
@group(0) @binding(4) var<storage, read> tl_counters: array<u32>;
@group(0) @binding(5) var<storage, read> tl_logits: array<f32>;
@group(0) @binding(6) var tl_tex: texture_storage_2d<rgba8unorm, write>;
@group(0) @binding(7) var<storage, read> tl_names: array<u32>;

fn tl_name_w(c: u32) -> i32 { return i32(tl_names[c * NAME_SLOT]); }

// Class c's name at `origin`, scale s, clipped to x < clip.
fn tl_name_on(c: u32, px: vec2<i32>, origin: vec2<i32>, s: i32, clip: i32) -> bool {
    if (px.x >= clip) { return false; }
    let p = vec2<i32>(floor(vec2<f32>(px - origin) / f32(s)));
    if (p.x < 0 || p.y < 0 || p.y >= NAME_H || p.x >= tl_name_w(c)) { return false; }
    return name_bit(tl_names[name_word(c, u32(p.y), u32(p.x))], u32(p.x));
}

@compute @workgroup_size(16, 16)
fn tiles(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(tl_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let px = vec2<i32>(gid.xy);
    let pw = tl.tile_w + tl.gap;
    let ph = tl.ih + tl.label_h + tl.gap;
    var colour = BG;
    if (gid.x >= tl.gap && gid.y >= tl.gap) {
        let cx = (gid.x - tl.gap) / pw;
        let cy = (gid.y - tl.gap) / ph;
        let lx = (gid.x - tl.gap) % pw;
        let ly = (gid.y - tl.gap) % ph;
        let t = cy * tl.cols + cx;
        // Which sample, and is there one?
        var valid = false;
        var sample = 0u;
        if (cx < tl.cols && cy < tl.rows) {
            if (tl.mode == 0u) {
                sample = tl.first + t;
                valid = sample < tl.n;
            } else {
                let k = tl.first + t;
                valid = k < min(tl_counters[2], tl.n);
                if (valid) { sample = tl_wrong[k]; }
            }
        }
        let ix = i32(lx) - i32(tl.tile_w - tl.iw) / 2;     // x inside the centred image
        if (valid && ly < tl.ih && ix >= 0 && ix < i32(tl.iw)) {
            let b = sample * tl.iw * tl.ih + ly * tl.iw + u32(ix);
            colour = grey(f32(byte_of(tl_images[b >> 2u], b)) / 255.0);
        } else if (valid && lx < tl.tile_w && ly >= tl.ih && ly < tl.ih + tl.label_h) {
            let truth = byte_of(tl_labels[sample >> 2u], sample);
            let s = i32(tl.font_scale);
            let x0 = i32(tl.gap + cx * pw);
            let x1 = x0 + i32(tl.tile_w) - s;          // labels cut a little short of the next tile
            let line_h = NAME_H * s + 2;
            let y0 = i32(tl.gap + cy * ph + tl.ih) + 2;
            colour = mix(BG, GRID, 0.6);
            if (tl.mode == 0u) {
                let ox = x0 + max((i32(tl.tile_w) - tl_name_w(truth) * s) / 2, 0);
                if (tl_name_on(truth, px, vec2<i32>(ox, y0), s, x1)) { colour = TEXT; }
            } else {
                var pred = 0u;
                for (var c = 1u; c < tl.classes; c++) {
                    if (tl_logits[t * tl.classes + c] > tl_logits[t * tl.classes + pred]) { pred = c; }
                }
                let arrow_w = GLYPH_W * s;
                let gap = 2 * s;
                if (tl.lines == 1u) {
                    // "7 -> 2"
                    let total = (tl_name_w(truth) + tl_name_w(pred)) * s + arrow_w + 2 * gap;
                    let ox = x0 + max((i32(tl.tile_w) - total) / 2, 0);
                    let ax = ox + tl_name_w(truth) * s + gap;
                    let px2 = ax + arrow_w + gap;
                    if (tl_name_on(truth, px, vec2<i32>(ox, y0), s, x1)) { colour = ACCENT; }
                    if (px.x < x1 && glyph_on(GLYPH_ARROW, px - vec2<i32>(ax, y0), s)) { colour = TEXT; }
                    if (tl_name_on(pred, px, vec2<i32>(px2, y0), s, x1)) { colour = WRONG; }
                } else {
                    // "Sneaker" over "-> Sandal", each clipped to the tile.
                    let ox = x0 + max((i32(tl.tile_w) - tl_name_w(truth) * s) / 2, 0);
                    if (tl_name_on(truth, px, vec2<i32>(ox, y0), s, x1)) { colour = ACCENT; }
                    let w2 = arrow_w + gap + tl_name_w(pred) * s;
                    let ax = x0 + max((i32(tl.tile_w) - w2) / 2, 0);
                    if (px.x < x1 && glyph_on(GLYPH_ARROW, px - vec2<i32>(ax, y0 + line_h), s)) { colour = TEXT; }
                    if (tl_name_on(pred, px, vec2<i32>(ax + arrow_w + gap, y0 + line_h), s, x1)) { colour = WRONG; }
                }
            }
        }
    }
    // Selection ring also on the top / left gap of the selected tile.
    if (tl.mode == 0u && tl.selected != 0xffffffffu && tl.selected >= tl.first
        && tl.selected < tl.first + tl.cols * tl.rows) {
        let t = tl.selected - tl.first;
        let x0 = i32((t % tl.cols) * pw);
        let y0 = i32((t / tl.cols) * ph);
        let x1 = x0 + i32(pw + tl.gap) - 1;
        let y1 = y0 + i32(ph + tl.gap) - 1;
        let ring = px.x >= x0 && px.x <= x1 && px.y >= y0 && px.y <= y1
            && (px.x < x0 + i32(tl.gap) || px.x > x1 - i32(tl.gap) || px.y < y0 + i32(tl.gap) || px.y > y1 - i32(tl.gap));
        if (ring) { colour = ACCENT; }
    }
    textureStore(tl_tex, px, vec4<f32>(colour, 1.0));
}
