// The few scalars the UI prints as text, packed into 64 bytes on the GPU so that
// one small non-blocking readback a few times a second serves every number on
// screen (everything else is drawn from GPU buffers directly).
//
// out (16 words):  [0] step counter  [1] flags  [2] loss  [3] batch accuracy
//   [4] loss, mean of the last <= 100 steps  [5] accuracy, same  [6] last test accuracy
//   [7] correct  [8] seen  [9] misclassified  [10] predicted class  [11] its probability
//   [12] canvas has ink  [13] max |W1|  [14] max |W2|  [15] global step these reflect
// Words 0, 1, 7-10, 15 are u32; the others f32 bit patterns.

struct Frame {
    steps: u32,         // global steps recorded in `hist`
    cap: u32,           // hist ring capacity
    nevals: u32,        // evaluations recorded in `evals`
    eval_cap: u32,
    classes: u32,
    w1_slot: u32,       // scales slots of the first two weight matrices
    w2_slot: u32,
    _pad: u32,
};

@group(0) @binding(0) var<storage, read> fr: Frame;
@group(0) @binding(1) var<storage, read> state: array<u32>;
@group(0) @binding(2) var<storage, read> hist: array<f32>;
@group(0) @binding(3) var<storage, read> evals: array<f32>;
@group(0) @binding(4) var<storage, read> counters: array<u32>;
@group(0) @binding(5) var<storage, read> probs: array<f32>;
@group(0) @binding(6) var<storage, read> norm: array<f32>;
@group(0) @binding(7) var<storage, read> scales: array<f32>;
@group(0) @binding(8) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(1)
fn pack() {
    out[0] = state[0];
    out[1] = state[3];
    var loss = 0.0;
    var acc = 0.0;
    var mloss = 0.0;
    var macc = 0.0;
    if (fr.steps > 0u) {
        let last = (fr.steps - 1u) % fr.cap;
        loss = hist[last * 2u];
        acc = hist[last * 2u + 1u];
        let k = min(fr.steps, 100u);
        for (var i = 0u; i < k; i++) {
            let s = (fr.steps - 1u - i) % fr.cap;
            mloss += hist[s * 2u];
            macc += hist[s * 2u + 1u];
        }
        mloss /= f32(k);
        macc /= f32(k);
    }
    out[2] = bitcast<u32>(loss);
    out[3] = bitcast<u32>(acc);
    out[4] = bitcast<u32>(mloss);
    out[5] = bitcast<u32>(macc);
    var test_acc = 0.0;
    if (fr.nevals > 0u) { test_acc = evals[((fr.nevals - 1u) % fr.eval_cap) * 2u + 1u]; }
    out[6] = bitcast<u32>(test_acc);
    out[7] = counters[0];
    out[8] = counters[1];
    out[9] = counters[2];
    var best = 0u;
    for (var c = 1u; c < fr.classes; c++) {
        if (probs[c] > probs[best]) { best = c; }
    }
    out[10] = best;
    out[11] = bitcast<u32>(probs[best]);
    out[12] = bitcast<u32>(norm[0]);
    out[13] = bitcast<u32>(scales[fr.w1_slot]);
    out[14] = bitcast<u32>(scales[fr.w2_slot]);
    out[15] = fr.steps;
}
