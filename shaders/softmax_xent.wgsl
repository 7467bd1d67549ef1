// Softmax, and the fused logits -> softmax -> cross-entropy -> gradient kernel.
//
// For a row with logits l, label y and n valid rows in the batch:
//   loss_r  = logsumexp(l) - l[y]
//   dL/dl_c = (softmax(l)_c - [c == y]) / n      (gradient of the batch mean)
// Rows whose label is >= C (the sentinel the gather kernel writes past the end of
// a tail batch) contribute neither loss nor gradient.

//!include common.wgsl
//!include step_metrics.wgsl

//!struct XentDims
//!struct State

@group(0) @binding(0) var<uniform> dims: XentDims;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;   // [R, C] (softmax: the probabilities)
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;   // [1] mean loss of the batch
@group(0) @binding(5) var<storage, read_write> state: StateAtomic;
@group(0) @binding(6) var<storage, read_write> history: array<f32>; // ring of (loss, accuracy) per step

fn row_max(r: u32) -> f32 {
    var m = logits[r * dims.C];
    for (var c = 1u; c < dims.C; c++) { m = max(m, logits[r * dims.C + c]); }
    return m;
}

// Row-wise softmax of [R, C] into `grad`; one invocation per row.
@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= dims.R) { return; }
    let m = row_max(r);
    var s = 0.0;
    for (var c = 0u; c < dims.C; c++) { s += exp(logits[r * dims.C + c] - m); }
    for (var c = 0u; c < dims.C; c++) { grad[r * dims.C + c] = exp(logits[r * dims.C + c] - m) / s; }
}

var<workgroup> red_a: array<f32, 256>;
var<workgroup> red_b: array<f32, 256>;

fn reduce2(lid: u32, a: f32, b: f32) {
    red_a[lid] = a;
    red_b[lid] = b;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) { red_a[lid] += red_a[lid + s]; red_b[lid] += red_b[lid + s]; }
        workgroupBarrier();
    }
}

// One workgroup for the whole batch: count valid rows, then loss, gradient and
// metrics. The step's mean loss and accuracy land in `history[step % cap]`.
@compute @workgroup_size(256)
fn xent(@builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    var count = 0.0;
    for (var r = lid; r < dims.R; r += 256u) { count += select(0.0, 1.0, labels[r] < dims.C); }
    reduce2(lid, count, 0.0);
    let n = max(red_a[0], 1.0);
    workgroupBarrier();

    var loss_sum = 0.0;
    var correct = 0.0;
    for (var r = lid; r < dims.R; r += 256u) {
        let y = labels[r];
        if (y >= dims.C) {
            for (var c = 0u; c < dims.C; c++) { grad[r * dims.C + c] = 0.0; }
            continue;
        }
        let m = row_max(r);
        var s = 0.0;
        var best = 0u;
        for (var c = 0u; c < dims.C; c++) {
            let v = logits[r * dims.C + c];
            s += exp(v - m);
            if (v > logits[r * dims.C + best]) { best = c; }
        }
        loss_sum += log(s) + m - logits[r * dims.C + y];
        correct += select(0.0, 1.0, best == y);
        for (var c = 0u; c < dims.C; c++) {
            let p = exp(logits[r * dims.C + c] - m) / s;
            grad[r * dims.C + c] = (p - select(0.0, 1.0, c == y)) / n;
        }
    }
    reduce2(lid, loss_sum, correct);
    if (lid == 0u) {
        let mean = red_a[0] / n;
        loss[0] = mean;
        record_step(mean, red_b[0] / n, dims.C);
    }
}
