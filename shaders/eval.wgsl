// Evaluation on the GPU: correct count, confusion matrix and the indices of
// misclassified samples, accumulated with atomics over chunks of the test set.
//
// counters layout (u32): [0] correct, [1] seen, [2] misclassified found,
//                        [3 .. 3+C*C) confusion[true * C + pred]
// Misclassified sample indices go to `wrong` (first `arrayLength(wrong)` found).

//!struct EvalChunk
//!struct State

@group(0) @binding(0) var<uniform> prm: EvalChunk;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> counters: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> wrong: array<u32>;
@group(0) @binding(5) var<storage, read_write> results: array<u32>;  // ring of (run step, accuracy bits) per evaluation
@group(0) @binding(6) var<storage, read_write> state: StateAtomic;

@compute @workgroup_size(64)
fn score(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= prm.R) { return; }
    let y = labels[r];
    if (y >= prm.C) { return; }
    var best = 0u;
    for (var c = 1u; c < prm.C; c++) {
        if (logits[r * prm.C + c] > logits[r * prm.C + best]) { best = c; }
    }
    atomicAdd(&counters[1], 1u);
    atomicAdd(&counters[3u + y * prm.C + best], 1u);
    if (best == y) {
        atomicAdd(&counters[0], 1u);
    } else {
        let k = atomicAdd(&counters[2], 1u);
        if (k < arrayLength(&wrong)) { wrong[k] = prm.base + r; }
    }
}

// Zero the counters before an evaluation.
@compute @workgroup_size(64)
fn reset(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x < arrayLength(&counters)) { atomicStore(&counters[gid.x], 0u); }
}

// After the last chunk: append (the run's step, the accuracy) to the `results` ring;
// state.evals counts the evaluations recorded.
@compute @workgroup_size(1)
fn finish() {
    let seen = max(f32(atomicLoad(&counters[1])), 1.0);
    let k = atomicAdd(&state.evals, 1u) % (arrayLength(&results) / 2u);
    results[k * 2u] = atomicLoad(&state.run_step);
    results[k * 2u + 1u] = bitcast<u32>(f32(atomicLoad(&counters[0])) / seen);
}
