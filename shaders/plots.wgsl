// Training curves drawn from the GPU history ring, never read back.
//
// `hist` is the visualizer's ring of (loss, batch accuracy) per global step (slot
// step % cap); `evals` holds (global step, test accuracy) per evaluation. The plot
// shows steps [start, end) over the texture width:
//
//   bin  : one invocation per column: the mean of the column's steps (over at least
//          `smoothing` steps) and a band of +- one standard deviation (sampled at most
//          64 steps per column), written to `cols`
//   draw : one invocation per pixel: background grid, the band, the mean as
//          an anti-aliased line joining neighbouring columns, and (accuracy plot)
//          the test accuracy of each evaluation as dots joined by a line.
//
// kind 0 = loss on a log10 axis [lo, hi]; kind 1 = accuracy on a linear axis [lo, hi].
//
// Runs side by side (viz/plots.py): every other run's ring is binned over the same
// step range into its own block of `extra` (`col_offset`; `valid_end` stops a run
// at its own last step), and `draw` lays their mean lines, each in its own colour,
// under the main run's curve. Their last EVAL_POINTS test accuracies are copied by their
// `bin` into `extra` after the columns (`evals_base`), and drawn as dots joined by lines
// in the run's colour.

//!include colormap.wgsl

//!struct Plot

@group(0) @binding(0) var<storage, read> plot: Plot;
@group(0) @binding(1) var<storage, read> hist: array<f32>;
@group(0) @binding(2) var<storage, read> evals: array<u32>;   // (run step, accuracy bits) per evaluation
@group(0) @binding(3) var<storage, read_write> cols: array<vec4<f32>>;   // mean, band low, band high, valid
@group(0) @binding(4) var plot_tex: texture_storage_2d<rgba8unorm, write>;
@group(0) @binding(5) var<storage, read> extra: array<vec4<f32>>;   // other runs' columns, `width` per run

const SAMPLES: u32 = 64u;
const EVAL_POINTS: u32 = 64u;      // test accuracies drawn per run (plots.py EVAL_POINTS)
const NO_BLOCK: u32 = 0xffffffffu;
const CURVE_LOSS: vec3<f32> = vec3<f32>(0.40, 0.66, 1.00);
const CURVE_ACC: vec3<f32> = vec3<f32>(0.36, 0.82, 0.52);
const TEST: vec3<f32> = vec3<f32>(1.00, 0.72, 0.28);

// The band's statistics are taken in the axis' own space (log10 for the loss).
fn to_band_space(v: f32) -> f32 {
    if (plot.kind == 0u) { return log2(max(v, 1e-12)); }
    return v;
}

fn from_band_space(u: f32) -> f32 {
    if (plot.kind == 0u) { return exp2(u); }
    return u;
}

@compute @workgroup_size(64)
fn bin(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = textureDimensions(plot_tex).x;
    let x = gid.x;
    if (x >= w) { return; }
    let span = plot.end - min(plot.start, plot.end);
    var out = vec4<f32>(0.0, 1e30, -1e30, 0.0);
    let end = min(plot.end, plot.valid_end);
    if (span > 0u) {
        let a = plot.start + u32(f32(span) * f32(x) / f32(w));
        var b = plot.start + u32(f32(span) * f32(x + 1u) / f32(w));
        b = min(max(b, a + 1u), end);
        if (a < end) {
            // Band: mean +- one standard deviation of the column's own steps (of log10 loss on
            // the log axis), so it shows the step-to-step noise without its outliers.
            let stride = max(1u, (b - a + SAMPLES - 1u) / SAMPLES);
            var m1 = 0.0;
            var m2 = 0.0;
            var n = 0.0;
            for (var s = a; s < b; s += stride) {
                let u = to_band_space(hist[(s % plot.cap) * 2u + plot.kind]);
                m1 += u;
                m2 += u * u;
                n += 1.0;
            }
            m1 /= max(n, 1.0);
            let sd = sqrt(max(m2 / max(n, 1.0) - m1 * m1, 0.0));
            out.y = from_band_space(m1 - sd);
            out.z = from_band_space(m1 + sd);
            // Line: mean over the column, widened back to `smoothing` steps when the column is narrow.
            let a2 = max(plot.start, b - min(b - plot.start, max(b - a, plot.smoothing)));
            let stride2 = max(1u, (b - a2 + SAMPLES - 1u) / SAMPLES);
            var sum = 0.0;
            var k = 0.0;
            for (var s = a2; s < b; s += stride2) {
                sum += hist[(s % plot.cap) * 2u + plot.kind];
                k += 1.0;
            }
            out.x = sum / max(k, 1.0);
            out.w = 1.0;
        }
    }
    cols[plot.col_offset + x] = out;
    // Another run: its last test accuracies as (step, accuracy, 1, 0) points for `draw`.
    if (plot.eval_block != NO_BLOCK) {
        let n = min(plot.nevals, min(plot.eval_cap, EVAL_POINTS));
        let first = plot.nevals - n;
        for (var i = x; i < EVAL_POINTS; i += w) {
            var q = vec4<f32>(0.0);
            if (i < n) {
                let slot = (first + i) % plot.eval_cap;
                q = vec4<f32>(f32(evals[slot * 2u]), bitcast<f32>(evals[slot * 2u + 1u]), 1.0, 0.0);
            }
            cols[plot.evals_base + plot.eval_block * EVAL_POINTS + i] = q;
        }
    }
}

// The colour of run r (0 = the main run), from the Plot's packed colours (plots.RUN_COLOURS).
fn run_colour(r: u32) -> vec3<f32> {
    var packed = plot.colour0;
    if (r == 1u) { packed = plot.colour1; } else if (r == 2u) { packed = plot.colour2; } else if (r == 3u) { packed = plot.colour3; }
    return unpack4x8unorm(packed).xyz;
}

// Axis position of value v in [0, 1] (0 = bottom).
fn axis(v: f32) -> f32 {
    if (plot.kind == 0u) {
        let l0 = log2(plot.lo);
        let l1 = log2(plot.hi);
        return (log2(max(v, 1e-12)) - l0) / (l1 - l0);
    }
    return (v - plot.lo) / (plot.hi - plot.lo);
}

// Inverse of row_of: the value at (fractional) row y.
fn value_at(y: f32, h: f32) -> f32 {
    let t = 1.0 - (y - 0.5) / (h - 1.0);
    if (plot.kind == 0u) {
        return exp2(log2(plot.lo) + t * (log2(plot.hi) - log2(plot.lo)));
    }
    return plot.lo + t * (plot.hi - plot.lo);
}

fn row_of(v: f32, h: f32) -> f32 {
    return (1.0 - axis(v)) * (h - 1.0) + 0.5;
}

fn dist_to_segment(p: vec2<f32>, a: vec2<f32>, b: vec2<f32>) -> f32 {
    let ab = b - a;
    let t = clamp(dot(p - a, ab) / max(dot(ab, ab), 1e-9), 0.0, 1.0);
    return length(p - (a + t * ab));
}

@compute @workgroup_size(16, 16)
fn draw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(plot_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let h = f32(dims.y);
    let p = vec2<f32>(f32(gid.x) + 0.5, f32(gid.y) + 0.5);
    var colour = BG;

    // Grid: decades (and 2x, 5x faintly) on the loss axis; every grid_step on accuracy.
    // A row holds a grid value when the value crosses it between the row's two edges.
    let a = value_at(p.y + 0.5, h);     // bottom edge of the row (smaller value)
    let b = value_at(p.y - 0.5, h);     // top edge
    if (plot.kind == 0u) {
        let la = log2(max(a, 1e-12)) / log2(10.0);
        let lb = log2(max(b, 1e-12)) / log2(10.0);
        if (floor(lb) > floor(la)) {
            colour = GRID * 1.25;
        } else if (floor(lb - 0.30103) > floor(la - 0.30103) || floor(lb - 0.69897) > floor(la - 0.69897)) {
            colour = mix(BG, GRID, 0.5);
        }
    } else {
        let step = plot.grid_step;      // plots.py grid_step: the axis labels sit on these lines
        if (floor(b / step + 1e-4) > floor(a / step + 1e-4)) { colour = GRID * 1.25; }
    }

    // Other runs first (mean lines only), so the main run's curve stays on top.
    let w = dims.x;
    for (var r = 0u; r < plot.runs; r++) {
        let e = extra[r * w + gid.x];
        if (e.w > 0.5) {
            var ya = row_of(e.x, h);
            var yb = ya;
            if (gid.x > 0u && extra[r * w + gid.x - 1u].w > 0.5) { yb = row_of(extra[r * w + gid.x - 1u].x, h); }
            let d = max(max(min(ya, yb) - 0.5 - p.y, p.y - max(ya, yb) - 0.5), 0.0);
            colour = mix(colour, run_colour(r + 1u), clamp(1.5 - d, 0.0, 1.0));
        }
        // Its test accuracies (accuracy plot): dots joined by lines, in its colour.
        if (plot.kind == 1u && plot.end > plot.start) {
            let span = f32(plot.end - plot.start);
            var prev = vec2<f32>(-1.0);
            var best = 1e9;
            var dot_d = 1e9;
            for (var i = 0u; i < EVAL_POINTS; i++) {
                let t = extra[plot.evals_base + r * EVAL_POINTS + i];
                if (t.z < 0.5) { break; }
                if (t.x < f32(plot.start)) { continue; }
                let q = vec2<f32>((t.x - f32(plot.start)) / span * f32(w), row_of(t.y, h));
                dot_d = min(dot_d, length(p - q));
                if (prev.x >= 0.0) { best = min(best, dist_to_segment(p, prev, q)); }
                prev = q;
            }
            colour = mix(colour, run_colour(r + 1u), clamp(1.2 - best, 0.0, 1.0) * 0.8);
            colour = mix(colour, run_colour(r + 1u), clamp(3.0 - dot_d, 0.0, 1.0));
        }
    }

    var curve = select(CURVE_ACC, CURVE_LOSS, plot.kind == 0u);
    if (plot.colour0 != 0u) { curve = run_colour(0u); }
    let c = cols[gid.x];
    if (c.w > 0.5) {
        // Band: spread of the steps within the column.
        let y0 = row_of(c.z, h);
        let y1 = row_of(c.y, h);
        if (p.y >= y0 - 0.5 && p.y <= y1 + 0.5) { colour = mix(colour, curve, 0.22); }
        // Line from the previous column's mean to this one's.
        var ya = row_of(c.x, h);
        var yb = ya;
        if (gid.x > 0u && cols[gid.x - 1u].w > 0.5) { yb = row_of(cols[gid.x - 1u].x, h); }
        let lo = min(ya, yb) - 0.5;
        let hi = max(ya, yb) + 0.5;
        let d = max(max(lo - p.y, p.y - hi), 0.0);
        colour = mix(colour, curve, clamp(1.5 - d, 0.0, 1.0));
    }

    // Test accuracy per evaluation (accuracy plot): dots joined by lines.
    if (plot.kind == 1u && plot.nevals > 0u && plot.end > plot.start) {
        let span = f32(plot.end - plot.start);
        let first = plot.nevals - min(plot.nevals, min(plot.eval_cap, 64u));
        var prev = vec2<f32>(-1.0);
        var best = 1e9;
        var dot_d = 1e9;
        for (var i = first; i < plot.nevals; i++) {
            let slot = i % plot.eval_cap;
            let step = f32(evals[slot * 2u]);
            if (step < f32(plot.start)) { continue; }
            let q = vec2<f32>((step - f32(plot.start)) / span * f32(dims.x), row_of(bitcast<f32>(evals[slot * 2u + 1u]), h));
            dot_d = min(dot_d, length(p - q));
            if (prev.x >= 0.0) { best = min(best, dist_to_segment(p, prev, q)); }
            prev = q;
        }
        colour = mix(colour, TEST, clamp(1.2 - best, 0.0, 1.0) * 0.8);
        colour = mix(colour, TEST, clamp(3.5 - dot_d, 0.0, 1.0));
    }
    textureStore(plot_tex, vec2<i32>(gid.xy), vec4<f32>(colour, 1.0));
}
