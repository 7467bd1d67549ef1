// Per-step metrics and the divergence guard, shared by softmax_xent.wgsl and
// fused_step.wgsl. Expects module-scope bindings `state` (StateAtomic) and
// `history` (array<f32>, a ring of (loss, accuracy) per step of the run).
//
// A loss that is NaN or infinite raises FLAG_NONFINITE at once. A loss can also
// explode and stay finite (a learning rate of 1e3 gives 1e17): FLAG_EXPLODED is
// raised when the mean loss (an exponential mean over about 10 steps) stays above
// EXPLODE_FACTOR x ln(C) for EXPLODE_STEPS steps in a row, or, in a run's first
// steps, for more than half of them and at least EXPLODE_EARLY in a row (a run of 8
// steps at a learning rate of 1e3 never reaches 50). ln(C) is the loss of a uniform
// guess; an honest run spends at most its first steps near it and never long three
// times above it, however noisy its batches (the mean starts at the first batch's
// loss, about ln(C): lifting it past 3 ln(C) in a few steps takes batch losses of ~50).

const EXPLODE_FACTOR: f32 = 3.0;
const EXPLODE_STEPS: u32 = 50u;
const EXPLODE_EARLY: u32 = 4u;
const LOSS_EMA: f32 = 0.9;

fn record_step(loss: f32, accuracy: f32, classes: u32) {
    let cap = arrayLength(&history) / 2u;
    let slot = atomicLoad(&state.run_step) % cap;
    history[slot * 2u] = loss;
    history[slot * 2u + 1u] = accuracy;
    if (!is_finite(loss)) {
        atomicOr(&state.flags, FLAG_NONFINITE);
        return;
    }
    let prev = bitcast<f32>(atomicLoad(&state.loss_ema));
    let ema = select(LOSS_EMA * prev + (1.0 - LOSS_EMA) * loss, loss, prev == 0.0);
    atomicStore(&state.loss_ema, bitcast<u32>(ema));
    if (ema > EXPLODE_FACTOR * log(f32(max(classes, 2u)))) {
        let over = atomicAdd(&state.over, 1u) + 1u;
        let steps = atomicLoad(&state.run_step) + 1u;          // this run's steps, this one included
        if (over >= EXPLODE_STEPS || (over >= EXPLODE_EARLY && 2u * over > steps)) {
            atomicOr(&state.flags, FLAG_EXPLODED);
        }
    } else {
        atomicStore(&state.over, 0u);
    }
}
