// Runs side by side: one other run's numbers for the Runs panel, 16 bytes (`RunReadout`)
// written after the 64-byte Readout in the same buffer, so the one readback of the
// frame loop (viz/readout.py) carries every run: its class for the canvas (from the
// run's own forward pass on the same canvas input), its recent loss, its last test
// accuracy.

//!struct RunStatsFrame

@group(0) @binding(0) var<storage, read> fr: RunStatsFrame;
@group(0) @binding(1) var<storage, read> hist: array<f32>;
@group(0) @binding(2) var<storage, read> evals: array<u32>;     // (run step, accuracy bits)
@group(0) @binding(3) var<storage, read> probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(1)
fn pack_run() {
    var best = 0u;
    for (var c = 1u; c < fr.classes; c++) {
        if (probs[c] > probs[best]) { best = c; }
    }
    var loss = 0.0;
    let k = min(fr.steps, 100u);
    for (var i = 0u; i < k; i++) {
        loss += hist[((fr.steps - 1u - i) % fr.cap) * 2u];
    }
    loss /= max(f32(k), 1.0);
    var test_acc = -1.0;
    if (fr.nevals > 0u) { test_acc = bitcast<f32>(evals[((fr.nevals - 1u) % fr.eval_cap) * 2u + 1u]); }
    out[fr.word] = best;
    out[fr.word + 1u] = bitcast<u32>(probs[best]);
    out[fr.word + 2u] = bitcast<u32>(loss);
    out[fr.word + 3u] = bitcast<u32>(test_acc);
}
