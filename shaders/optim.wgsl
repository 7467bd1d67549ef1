// One update kernel for every parameter: the model's parameters, gradients and
// optimizer moments each live in one flat buffer, so a single dispatch updates
// all of them. The learning rate comes from the schedule at the GPU step counter.
//
//   g = grad + weight_decay * p
//   SGD : m = momentum * m + g ; p -= lr * (nesterov ? g + momentum * m : m)   (m = g when momentum = 0)
//   Adam: m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ; p -= lr * m_hat / (sqrt(v_hat) + eps)
// Nothing moves while the divergence flag is up or the model is frozen; a step
// whose result would be non-finite raises the flag instead of writing it.

//!include common.wgsl
//!include schedule.wgsl

struct Params { n: u32, _a: u32, _b: u32, _c: u32 };

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> hyper: Hyper;
@group(0) @binding(2) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> params: array<f32>;
@group(0) @binding(4) var<storage, read> grads: array<f32>;
@group(0) @binding(5) var<storage, read_write> m1: array<f32>;
@group(0) @binding(6) var<storage, read_write> m2: array<f32>;

fn update(i: u32, step: u32, lr: f32) {
    let p = params[i];
    let g = grads[i] + hyper.weight_decay * p;
    var next: f32;
    if (hyper.optimizer == 1u) {
        let t = f32(step - min(step, hyper.step_offset) + 1u);
        let m = hyper.beta1 * m1[i] + (1.0 - hyper.beta1) * g;
        let v = hyper.beta2 * m2[i] + (1.0 - hyper.beta2) * g * g;
        let mh = m / (1.0 - pow(hyper.beta1, t));
        let vh = v / (1.0 - pow(hyper.beta2, t));
        next = p - lr * mh / (sqrt(vh) + hyper.eps);
        if (!is_finite(next)) { atomicOr(&state[3], FLAG_NONFINITE); return; }
        m1[i] = m;
        m2[i] = v;
    } else {
        var d = g;
        if (hyper.momentum > 0.0) {
            let m = hyper.momentum * m1[i] + g;
            m1[i] = m;
            d = select(m, g + hyper.momentum * m, hyper.nesterov == 1u);
        }
        next = p - lr * d;
        if (!is_finite(next)) { atomicOr(&state[3], FLAG_NONFINITE); return; }
    }
    params[i] = next;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    _ = m2[0];
    if (i >= prm.n) { return; }
    if ((atomicLoad(&state[3]) & FLAG_NONFINITE) != 0u || hyper.frozen == 1u) { return; }
    let step = atomicLoad(&state[0]);
    update(i, step, learning_rate(hyper, step));
}

// The last dispatch of a step: advance the counter the next step reads.
@compute @workgroup_size(1)
fn advance() {
    _ = prm.n; _ = hyper.lr; _ = params[0]; _ = grads[0]; _ = m1[0]; _ = m2[0];
    atomicAdd(&state[0], 1u);
}
