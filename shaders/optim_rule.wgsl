// The per-parameter optimizer rule, shared by optim.wgsl and fused_step.wgsl.
// Expects module-scope bindings named `hyper`, `state` (StateAtomic), `params`,
// `m1`, `m2` in the including shader.
//
//   g = grad + weight_decay * p
//   SGD : m = momentum * m + g ; p -= lr * (nesterov ? g + momentum * m : m)   (m = g when momentum = 0)
//   Adam: m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ; p -= lr * m_hat / (sqrt(v_hat) + eps)
// A result that is not finite raises the divergence flag and is not written.

fn apply_update(i: u32, grad: f32, step: u32, lr: f32) {
    apply_update_from(i, params[i], grad, step, lr);
}

// The same, with the parameter's current value p already loaded (the compiled step loads it
// before summing the gradient, so the rule waits on no load of its own for SGD).
fn apply_update_from(i: u32, p: f32, grad: f32, step: u32, lr: f32) {
    let g = grad + hyper.weight_decay * p;
    var next: f32;
    if (hyper.optimizer == 1u) {
        let t = f32(step - min(step, hyper.moment_step) + 1u);   // steps since the moments started
        let m = hyper.beta1 * m1[i] + (1.0 - hyper.beta1) * g;
        let v = hyper.beta2 * m2[i] + (1.0 - hyper.beta2) * g * g;
        let mh = m / (1.0 - pow(hyper.beta1, t));
        let vh = v / (1.0 - pow(hyper.beta2, t));
        next = p - lr * mh / (sqrt(vh) + hyper.eps);
        if (!is_finite(next)) { atomicOr(&state.flags, FLAG_NONFINITE); return; }
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
        if (!is_finite(next)) { atomicOr(&state.flags, FLAG_NONFINITE); return; }
    }
    params[i] = next;
}
