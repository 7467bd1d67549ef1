// Optimizer hyper-parameters and the learning-rate schedule, evaluated on the GPU
// from the step counter, so a replayed step needs no value from the CPU.
// The CPU rewrites this buffer only when the user changes a setting.

//!struct Hyper

const PI: f32 = 3.14159265358979;

fn learning_rate(h: Hyper, step: u32) -> f32 {
    let t = f32(step - min(step, h.step_offset));
    var lr = h.lr;
    if (h.schedule == 1u) {
        lr = h.lr * pow(h.gamma, floor(t / max(h.period, 1.0)));
    } else if (h.schedule == 2u) {
        lr = h.lr * pow(h.gamma, t / max(h.period, 1.0));
    } else if (h.schedule == 3u) {
        let x = min(t, h.total_steps) / max(h.total_steps, 1.0);
        lr = h.min_lr + (h.lr - h.min_lr) * 0.5 * (1.0 + cos(PI * x));
    }
    return lr;
}
