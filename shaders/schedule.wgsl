// Optimizer hyper-parameters and the learning-rate schedule, evaluated on the GPU
// from the step counter, so a replayed step needs no value from the CPU.
// The CPU rewrites this buffer only when the user changes a setting.

struct Hyper {
    lr: f32,            // base learning rate
    min_lr: f32,        // floor of cosine annealing
    total_steps: f32,   // length of the cosine (all epochs)
    period: f32,        // steps per decay period (step / exponential)
    gamma: f32,         // decay factor per period
    warmup: f32,        // linear warm-up steps
    momentum: f32,      // SGD momentum (0 = plain SGD)
    beta1: f32,         // Adam
    beta2: f32,
    eps: f32,
    weight_decay: f32,  // L2, added to the gradient
    schedule: u32,      // 0 constant, 1 step, 2 exponential, 3 cosine
    optimizer: u32,     // 0 SGD, 1 Adam
    nesterov: u32,
    step_offset: u32,   // subtracted from the step counter (a schedule restart)
    frozen: u32,        // 1 = no parameter changes (paused by the divergence guard)
};

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
    if (h.warmup > 0.0 && t < h.warmup) {
        lr = lr * (t + 1.0) / h.warmup;
    }
    return lr;
}
