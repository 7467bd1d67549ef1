// The few scalars the UI prints as text, packed into one 64-byte `Readout` on the
// GPU so that one small non-blocking readback a few times a second serves every
// number on screen (everything else is drawn from GPU buffers directly).
// The learning rate comes from the same schedule code the optimizer runs.

//!include common.wgsl
//!include schedule.wgsl
//!struct StatsFrame
//!struct State
//!struct Readout

@group(0) @binding(0) var<storage, read> fr: StatsFrame;
@group(0) @binding(1) var<storage, read> state: State;
@group(0) @binding(2) var<storage, read> hist: array<f32>;
@group(0) @binding(3) var<storage, read> evals: array<u32>;     // (run step, accuracy bits)
@group(0) @binding(4) var<storage, read> counters: array<u32>;
@group(0) @binding(5) var<storage, read> probs: array<f32>;
@group(0) @binding(6) var<storage, read> norm: array<f32>;
@group(0) @binding(7) var<storage, read> scales: array<f32>;
@group(0) @binding(8) var<storage, read> hyper: Hyper;
@group(0) @binding(9) var<storage, read> sample: array<u32>;      // canvas.py: the loaded sample, or NONE
@group(0) @binding(10) var<storage, read> estimate: array<u32>;   // counters of the running estimate
@group(0) @binding(11) var<storage, read_write> out: Readout;

@compute @workgroup_size(1)
fn pack() {
    out.step = state.step;
    out.flags = state.flags;
    var mloss = 0.0;
    var macc = 0.0;
    if (fr.steps > 0u) {
        let k = min(fr.steps, 100u);
        for (var i = 0u; i < k; i++) {
            let s = (fr.steps - 1u - i) % fr.cap;
            mloss += hist[s * 2u];
            macc += hist[s * 2u + 1u];
        }
        mloss /= f32(k);
        macc /= f32(k);
    }
    out.loss_avg = mloss;
    out.acc_avg = macc;
    var test_acc = 0.0;
    if (fr.nevals > 0u) { test_acc = bitcast<f32>(evals[((fr.nevals - 1u) % fr.eval_cap) * 2u + 1u]); }
    out.test_acc = test_acc;
    out.correct = counters[0];
    out.seen = counters[1];
    // out.hover is the embedding's pick pass's (embedding.wgsl); wrong = seen - correct.
    var best = 0u;
    for (var c = 1u; c < fr.classes; c++) {
        if (probs[c] > probs[best]) { best = c; }
    }
    out.pred = best;
    out.pred_prob = probs[best];
    out.ink = norm[0];
    out.sample = sample[0];
    // Two colour scales in one word: the panel prints them with 3 digits, f16 has enough.
    out.w_absmax = pack2x16float(vec2<f32>(min(scales[fr.w1_slot], 65000.0), min(scales[fr.w2_slot], 65000.0)));
    out.lr = learning_rate(hyper, state.step);
    out.at_step = fr.steps;
    // Running estimate: correct / seen of the last subset pass; -1 before the first.
    var est = -1.0;
    if (estimate[1] > 0u) { est = f32(estimate[0]) / f32(estimate[1]); }
    out.est_acc = est;
}
