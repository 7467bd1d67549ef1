// Histogram ribbons: the distribution of a layer's weights (or of their change) over
// time, as TensorBoard's distributions, built and drawn on the GPU (viz/histograms.py).
//
//   change : d = w - prev; prev = w, over the whole arena (the weight change since the
//            last column; the compiled step keeps no gradients, see histograms.py)
//   bin    : one column of a ribbon: counts of a buffer range in `bins` equal bins
//            (bin_part over many workgroups, then bin)
//   draw   : the ribbon ring -> an rgba8 texture (x: time, oldest left; y: value)
//
// A ribbon is one u32 buffer: word 0 counts the columns taken (the next column goes to
// slot count % cols), then `cols` columns of (bins counts, the range a as f32 bits,
// the largest count). The kernel advances the count itself, so several columns taken
// in one frame need no CPU-written index.
//
// Binning is exact, as numpy's histogram(x, bins, range=(-a, a)) with edges
// -a + i * 2a / bins: a is the power of two above max |x| (from the ScaleBank
// reduction), so x * bins / 2a is exact in f32 (a power-of-two multiply) and its
// floor is the bin, with no rounding of x - lo that could move a value across an edge.
// The last bin is closed (x = a counts in it), as numpy's.

//!include colormap.wgsl

const HEADER: u32 = 4u;          // words before the first column
const MIN_RANGE: f32 = 9.094947e-13;   // 2^-40: the range of an all-zero column

// -- change -------------------------------------------------------------------------------------

//!struct OptimDims

@group(0) @binding(0) var<storage, read> chg: OptimDims;
@group(0) @binding(1) var<storage, read> chg_w: array<f32>;
@group(0) @binding(2) var<storage, read_write> chg_prev: array<f32>;
@group(0) @binding(3) var<storage, read_write> chg_out: array<f32>;

@compute @workgroup_size(256)
fn change(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= chg.n) { return; }
    let w = chg_w[i];
    chg_out[i] = w - chg_prev[i];
    chg_prev[i] = w;
}

// -- bin: the column in two dispatches --------------------------------------------------------
//   bin_part : workgroup k folds elements k*256 + lid, + G*256, ... into a workgroup histogram
//              and adds its nonzero bins to `hb_acc` (G workgroups share the range: one
//              workgroup walking a 100k-weight layer took about 0.1 ms on an H100)
//   bin      : one workgroup takes the sums out of `hb_acc` (leaving it zero for the next
//              column), stores the column, its range and its largest count, and advances
//              the ring's count.

//!struct HistBin

@group(0) @binding(0) var<storage, read> hb: HistBin;
@group(0) @binding(1) var<storage, read> hb_src: array<f32>;
@group(0) @binding(2) var<storage, read> hb_scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> hb_ring: array<u32>;
@group(0) @binding(4) var<storage, read_write> hb_acc: array<atomic<u32>>;   // [bins], zero between columns

var<workgroup> counts: array<atomic<u32>, 256>;
var<workgroup> top: atomic<u32>;
var<workgroup> slot: u32;

// The smallest power of two above m (>= MIN_RANGE): 2^(e+1) for m in [2^e, 2^(e+1)).
fn range_above(m: f32) -> f32 {
    if (!(m >= MIN_RANGE)) { return MIN_RANGE; }
    return bitcast<f32>((bitcast<u32>(m) & 0x7f800000u) + 0x00800000u);
}

@compute @workgroup_size(256)
fn bin_part(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let nb = hb.bins;
    for (var b = lid.x; b < nb; b += 256u) { atomicStore(&counts[b], 0u); }
    workgroupBarrier();
    let a = range_above(hb_scales[hb.slot]);
    let per = f32(nb) / (2.0 * a);            // a power of two: x * per is exact
    let half = i32(nb / 2u);
    for (var i = wg.x * 256u + lid.x; i < hb.count; i += nwg.x * 256u) {
        let x = hb_src[hb.offset + i];
        if (abs(x) <= a) {                     // NaN and inf are left out (as the colour scales do)
            let k = clamp(i32(floor(x * per)) + half, 0, i32(nb) - 1);
            atomicAdd(&counts[k], 1u);
        }
    }
    workgroupBarrier();
    for (var b = lid.x; b < nb; b += 256u) {
        let c = atomicLoad(&counts[b]);
        if (c != 0u) { atomicAdd(&hb_acc[b], c); }
    }
}

@compute @workgroup_size(256)
fn bin(@builtin(local_invocation_id) lid: vec3<u32>) {
    let nb = hb.bins;
    if (lid.x == 0u) {
        atomicStore(&top, 0u);
        slot = hb_ring[0] % hb.cols;
    }
    workgroupBarrier();
    let a = range_above(hb_scales[hb.slot]);
    let s = slot;
    let base = HEADER + s * (nb + 2u);
    for (var b = lid.x; b < nb; b += 256u) {
        let c = atomicExchange(&hb_acc[b], 0u);
        hb_ring[base + b] = c;
        atomicMax(&top, c);
    }
    workgroupBarrier();
    if (lid.x == 0u) {
        hb_ring[base + nb] = bitcast<u32>(a);
        hb_ring[base + nb + 1u] = atomicLoad(&top);
        hb_ring[0] = hb_ring[0] + 1u;
    }
}

// -- draw: the ribbon as a heat map ---------------------------------------------------------------
//
// Pixel column x shows ribbon column count - (width - x) (the newest at the right edge).
// The y axis is the widest range A of the columns shown, top +A, bottom -A, one pixel row
// per bin of a column whose range is A; a column of a narrower range a = A / k (k a
// power of two) has k bins per pixel row, summed, so the picture is a density:
// intensity = sqrt(count per bin / the column's largest count) (a log scale saturates:
// each bin of a layer holds thousands of values).

//!struct HistDraw

@group(0) @binding(0) var<storage, read> hd: HistDraw;
@group(0) @binding(1) var<storage, read> hd_ring: array<u32>;
@group(0) @binding(2) var hd_tex: texture_storage_2d<rgba8unorm, write>;

var<workgroup> widest: atomic<u32>;

@compute @workgroup_size(16, 16)
fn draw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let nb = hd.bins;
    let taken = hd_ring[0];
    let shown = min(taken, hd.cols);
    // A: the widest range of the shown columns (positive f32 bits order as u32).
    if (li == 0u) { atomicStore(&widest, 0u); }
    workgroupBarrier();
    for (var c = li; c < shown; c += 256u) {
        atomicMax(&widest, hd_ring[HEADER + c * (nb + 2u) + nb]);
    }
    workgroupBarrier();
    let big_a = bitcast<f32>(atomicLoad(&widest));
    let dims = textureDimensions(hd_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let x = gid.x;
    let y = gid.y;
    var colour = BG;
    if (x + shown >= hd.cols && shown > 0u) {
        let col = (taken - (hd.cols - x)) % hd.cols;
        let base = HEADER + col * (nb + 2u);
        let a = bitcast<f32>(hd_ring[base + nb]);
        let most = f32(hd_ring[base + nb + 1u]);
        // Pixel row y covers [A - (y + 1) h, A - y h), h = 2A / height; in this column's
        // bins (width 2a / nb) that is [j0, j0 + k) with k = (A / a) * nb / height.
        let k = big_a / a * f32(nb) / f32(dims.y);
        let lo = big_a - f32(y + 1u) * 2.0 * big_a / f32(dims.y);
        let j0 = clamp(floor(lo * f32(nb) / (2.0 * a)) + f32(nb / 2u), -1.0, f32(nb) + 1.0);
        let j1 = clamp(j0 + max(k, 1.0), -1.0, f32(nb) + 1.0);
        var sum = 0.0;
        for (var j = i32(max(j0, 0.0)); j < i32(min(j1, f32(nb))); j += 1) {
            sum += f32(hd_ring[base + u32(j)]);
        }
        if (sum > 0.0) {
            let t = sqrt(sum / max(k, 1.0) / max(most, 1.0));
            colour = sequential(0.15 + 0.85 * clamp(t, 0.0, 1.0));
        }
    }
    // The zero line, faint, for orientation.
    if (y == dims.y / 2u && colour.r == BG.r && colour.g == BG.g && colour.b == BG.b) {
        colour = mix(BG, vec3<f32>(0.5, 0.52, 0.58), 0.5);
    }
    textureStore(hd_tex, vec2<i32>(i32(x), i32(y)), vec4<f32>(colour, 1.0));
}
