// The resident training step: many training steps of an MLP in one dispatch.
//
// The compiled step (compiled_step.wgsl) gives each batch row a workgroup, so at batch 32
// a step runs on 32 SMs, each streaming the whole network from L2. Here every workgroup
// (one per SM, all resident at once) owns a share of every layer's output units for the
// whole batch: it keeps its weight columns, computes those units for every row, and meets
// the other workgroups at a barrier across the grid between dependent phases. A step is
//
//   f0 .. f{L-2}  each hidden layer's forward: this workgroup's units, every row
//   top           every workgroup: the last layer, softmax / cross-entropy, dlogits, and
//                 the top hidden layer's output gradient for its own units
//   b{L-3} .. b0  each hidden layer's output gradient, for its own units
//   u             the updates still pending (the first layer's, the next one's), merged
//                 with the next step's f0 (no workgroup reads what another updates there)
//
// each update placed in the first phase after every workgroup has read the old weights.
// The step compiler's Python side (compute/resident_step.py) generates the phases for one
// network and batch; this file is what they share.
//
// Memory between workgroups: the activations and gradients other workgroups read live in
// `exchange`, double-buffered by the step's parity. They (and weights another workgroup
// updates) are read with atomic loads: a plain load on NVIDIA may be served from the SM's
// L1, which is not coherent across SMs inside a dispatch (benchmarks/grid_barrier.py counts
// the stale values plain loads see; atomic loads see none and cost the same).
//
// On a CPU adapter, or wherever the workgroups cannot all be resident, the same phases run
// as one dispatch each (the `phase_*` entry points), the dispatch boundary standing in for
// the barrier.

//!include training_step.wgsl
@group(0) @binding(8) var<storage, read_write> exchange: array<atomic<u32>>;  // f32 bits, see above
@group(0) @binding(9) var<storage, read_write> history: array<f32>;
@group(0) @binding(10) var<storage, read_write> params_shared: array<atomic<u32>>; // the arena again
@group(0) @binding(11) var<storage, read_write> launch: array<atomic<u32>>;  // steps, arrivals, stalled

// A value another workgroup wrote in this dispatch, and one for others to read.
fn xget(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&exchange[i])); }
fn xput(i: u32, v: f32) { atomicStore(&exchange[i], bitcast<u32>(v)); }
// ... into each of the COPIES copies, `stride` apart (workgroup w reads copy w % COPIES)
fn xput_copies(i: u32, stride: u32, v: f32) {
    for (var c = 0u; c < COPIES; c++) { atomicStore(&exchange[i + c * stride], bitcast<u32>(v)); }
}
// A parameter another workgroup may have updated in this dispatch.
fn pget(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&params_shared[i])); }

// Barrier k (counted from 0 in this dispatch) across all G workgroups: every workgroup's
// writes are made visible (storageBarrier is device-scoped), one invocation counts the
// arrival; the last to arrive raises the release flag (k + 1) in FLAG_COPIES copies, 128
// bytes apart, and the others poll their workgroup's copy (polls of one word by 128 SMs
// queue, as broadcast reads do). A GPU that cannot keep all G resident would wait forever:
// the wait gives up after SPIN_LIMIT polls, or once another workgroup has given up, and marks
// the dispatch stalled (launch[2]); the run then throws the chunk away.
const FLAG_COPIES: u32 = 16u;

fn grid_sync(w: u32, t: u32, k: u32, record: bool) {
    storageBarrier();
    if (t == 0u) {
        let goal = (k + 1u) * G;
        let last = atomicAdd(&launch[1], 1u) + 1u == goal;
        if (last) {
            for (var c = 0u; c < FLAG_COPIES; c++) { atomicStore(&launch[32u + c * 32u], k + 1u); }
        }
        if (record && w == METRICS) { record_metrics(); }   // arrived: the others need not wait for it
        if (!last) {
            let flag = 32u + (w % FLAG_COPIES) * 32u;
            var spins = 0u;
            loop {
                if (atomicLoad(&launch[flag]) > k) { break; }
                spins += 1u;
                if ((spins & 1023u) == 0u && (spins > SPIN_LIMIT || atomicLoad(&launch[2]) != 0u)) {
                    atomicStore(&launch[2], 1u);
                    break;
                }
            }
        }
    }
    storageBarrier();
}

// The step's metrics (sh_metrics, left by `top`) into the history; the counters advance.
fn record_metrics() {
    record_step(sh_metrics.x, sh_metrics.y, CLASSES);
    atomicAdd(&state.run_step, 1u);
}

// Staging: every phase first copies what its sums read (input rows, weight columns) into
// workgroup memory, LOADS independent loads in flight an invocation. One workgroup of one
// SM cannot hide a load's latency with other warps, so a loop that loads and uses one
// value at a time would wait the whole L2 latency every term (the first cut of this step
// did: 3.8x slower than the two-pass step).

// count words from src into stage[dst ..]: of `exchange`, or (in_params) of the parameters,
// which another workgroup may have updated
fn stage_words(in_params: bool, src: u32, dst: u32, count: u32, t: u32) {
    for (var i0 = 0u; i0 < count; i0 += 8u * WG) {
        let i = i0 + t;
        let last = count - 1u;
        let v0 = shared_word(in_params, src + min(i, last));
        let v1 = shared_word(in_params, src + min(i + WG, last));
        let v2 = shared_word(in_params, src + min(i + 2u * WG, last));
        let v3 = shared_word(in_params, src + min(i + 3u * WG, last));
        let v4 = shared_word(in_params, src + min(i + 4u * WG, last));
        let v5 = shared_word(in_params, src + min(i + 5u * WG, last));
        let v6 = shared_word(in_params, src + min(i + 6u * WG, last));
        let v7 = shared_word(in_params, src + min(i + 7u * WG, last));
        if (i < count) { stage[dst + i] = v0; }
        if (i + WG < count) { stage[dst + i + WG] = v1; }
        if (i + 2u * WG < count) { stage[dst + i + 2u * WG] = v2; }
        if (i + 3u * WG < count) { stage[dst + i + 3u * WG] = v3; }
        if (i + 4u * WG < count) { stage[dst + i + 4u * WG] = v4; }
        if (i + 5u * WG < count) { stage[dst + i + 5u * WG] = v5; }
        if (i + 6u * WG < count) { stage[dst + i + 6u * WG] = v6; }
        if (i + 7u * WG < count) { stage[dst + i + 7u * WG] = v7; }
    }
}

fn shared_word(in_params: bool, i: u32) -> f32 {
    if (in_params) { return pget(i); }
    return xget(i);
}

fn stage_exchange(src: u32, dst: u32, count: u32, t: u32) { stage_words(false, src, dst, count, t); }
fn stage_shared_params(src: u32, dst: u32, count: u32, t: u32) { stage_words(true, src, dst, count, t); }

// This workgroup's weight columns u0 + q G (q < cols) of a [k, n] matrix at w, into
// stage[q k + i] (only this workgroup writes them: plain loads are coherent)
fn stage_columns(w: u32, k: u32, n: u32, u0: u32, cols: u32, t: u32) {
    let count = cols * k;
    let last = count - 1u;
    for (var i0 = 0u; i0 < count; i0 += 4u * WG) {
        let i = i0 + t;
        let j0 = min(i, last); let j1 = min(i + WG, last); let j2 = min(i + 2u * WG, last); let j3 = min(i + 3u * WG, last);
        let v0 = params[w + (j0 % k) * n + min(u0 + (j0 / k) * G, n - 1u)];
        let v1 = params[w + (j1 % k) * n + min(u0 + (j1 / k) * G, n - 1u)];
        let v2 = params[w + (j2 % k) * n + min(u0 + (j2 / k) * G, n - 1u)];
        let v3 = params[w + (j3 % k) * n + min(u0 + (j3 / k) * G, n - 1u)];
        if (i < count) { stage[i] = v0; }
        if (i + WG < count) { stage[i + WG] = v1; }
        if (i + 2u * WG < count) { stage[i + 2u * WG] = v2; }
        if (i + 3u * WG < count) { stage[i + 3u * WG] = v3; }
    }
}

// The images of batch rows b0 .. b0 + rows into img (IMG_ROW words a row: the row's first
// word onwards, its first pixel at byte row_off[r]), with each row's shift offset drawn once.
fn stage_images(base: u32, nvalid: u32, b0: u32, rows: u32, step: u32, t: u32) {
    if (t < rows) {
        let b = b0 + t;
        var first = 0u;
        var off = 0u;
        if (b < nvalid) {
            let byte = perm[base + b] * PIXELS;
            first = byte >> 2u;
            off = byte & 3u;
        }
        row_word[t] = first;
        row_off[t] = off;
        row_shift[t] = shift_offset(SHIFT, SEED, step, b);
    }
    workgroupBarrier();
    // every row its share of the invocations, each with 8 independent loads in flight
    let per_row = WG / rows;
    let r = t / per_row;
    let lane = t % per_row;
    let words = arrayLength(&images) - 1u;
    if (r < rows) {
        let first = row_word[r];
        for (var j0 = lane; j0 < IMG_ROW; j0 += 8u * per_row) {
            let v0 = images[min(first + min(j0, IMG_ROW - 1u), words)];
            let v1 = images[min(first + min(j0 + per_row, IMG_ROW - 1u), words)];
            let v2 = images[min(first + min(j0 + 2u * per_row, IMG_ROW - 1u), words)];
            let v3 = images[min(first + min(j0 + 3u * per_row, IMG_ROW - 1u), words)];
            let v4 = images[min(first + min(j0 + 4u * per_row, IMG_ROW - 1u), words)];
            let v5 = images[min(first + min(j0 + 5u * per_row, IMG_ROW - 1u), words)];
            let v6 = images[min(first + min(j0 + 6u * per_row, IMG_ROW - 1u), words)];
            let v7 = images[min(first + min(j0 + 7u * per_row, IMG_ROW - 1u), words)];
            let o = r * IMG_ROW + j0;
            img[o] = v0;
            if (j0 + per_row < IMG_ROW) { img[o + per_row] = v1; }
            if (j0 + 2u * per_row < IMG_ROW) { img[o + 2u * per_row] = v2; }
            if (j0 + 3u * per_row < IMG_ROW) { img[o + 3u * per_row] = v3; }
            if (j0 + 4u * per_row < IMG_ROW) { img[o + 4u * per_row] = v4; }
            if (j0 + 5u * per_row < IMG_ROW) { img[o + 5u * per_row] = v5; }
            if (j0 + 6u * per_row < IMG_ROW) { img[o + 6u * per_row] = v6; }
            if (j0 + 7u * per_row < IMG_ROW) { img[o + 7u * per_row] = v7; }
        }
    }
    workgroupBarrier();
}

// Pixel k of staged row r (the same value image_pixel gives)
fn staged_pixel(r: u32, k: u32) -> f32 {
    var src = i32(k);
    if (SHIFT > 0u) {
        src = shifted_by(k, IMAGE_W, PIXELS, row_shift[r]);
        if (src < 0) { return 0.0; }
    }
    let byte = row_off[r] + u32(src);
    return f32((img[r * IMG_ROW + (byte >> 2u)] >> ((byte & 3u) * 8u)) & 0xffu) * (1.0 / 255.0);
}

//!generated
