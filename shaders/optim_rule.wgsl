// The per-parameter optimizer rule, shared by optim.wgsl and fused_step.wgsl.
// Expects module-scope bindings named `hyper`, `state` (StateAtomic), `params`,
// `m1`, `m2` in the including shader.
//
//   g = grad + weight_decay * p
//   SGD : m = momentum * m + g ; p -= lr * (nesterov ? g + momentum * m : m)   (m = g when momentum = 0)
//   Adam: m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ; p -= lr * m_hat / (sqrt(v_hat) + eps)
// A result that is not finite raises the divergence flag and is not written (an SGD momentum
// buffer is, as the trace's optimizer does).

// One rule for 4 parameters at once (a scalar call uses lane x): the new values of p and of the
// moments, and which lanes are finite.
struct Rule4 {
    p: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
    ok: vec4<bool>,
}

fn rule4(p: vec4<f32>, grad: vec4<f32>, m1v: vec4<f32>, m2v: vec4<f32>, step: u32, lr: f32) -> Rule4 {
    let g = grad + hyper.weight_decay * p;
    var r: Rule4;
    if (hyper.optimizer == 1u) {
        let t = f32(step - min(step, hyper.moment_step) + 1u);   // steps since the moments started
        r.m = hyper.beta1 * m1v + (1.0 - hyper.beta1) * g;
        r.v = hyper.beta2 * m2v + (1.0 - hyper.beta2) * g * g;
        let mh = r.m / (1.0 - pow(hyper.beta1, t));
        let vh = r.v / (1.0 - pow(hyper.beta2, t));
        r.p = p - lr * mh / (sqrt(vh) + hyper.eps);
    } else {
        r.m = hyper.momentum * m1v + g;
        r.v = m2v;
        r.p = p - lr * select(r.m, g + hyper.momentum * r.m, hyper.nesterov == 1u);
    }
    r.ok = vec4<bool>(is_finite(r.p.x), is_finite(r.p.y), is_finite(r.p.z), is_finite(r.p.w));
    if (!all(r.ok)) { atomicOr(&state.flags, FLAG_NONFINITE); }
    return r;
}

fn uses_m1() -> bool { return hyper.optimizer == 1u || hyper.momentum > 0.0; }

fn apply_update(i: u32, grad: f32, step: u32, lr: f32) {
    var mv = 0.0;
    var vv = 0.0;
    if (uses_m1()) { mv = m1[i]; }
    if (hyper.optimizer == 1u) { vv = m2[i]; }
    let r = rule4(vec4<f32>(params[i]), vec4<f32>(grad), vec4<f32>(mv), vec4<f32>(vv), step, lr);
    store_rule(i, r, 0u);
}

// Lane k of a rule's result into parameter i (SGD's momentum is kept even where p is not finite).
fn store_rule(i: u32, r: Rule4, k: u32) {
    let sgd_m = hyper.optimizer == 0u && hyper.momentum > 0.0;
    if (sgd_m) { m1[i] = r.m[k]; }
    if (!r.ok[k]) { return; }
    if (hyper.optimizer == 1u) { m1[i] = r.m[k]; m2[i] = r.v[k]; }
    params[i] = r.p[k];
}

fn load4(i: u32, stride: u32) -> vec4<f32> {
    return vec4<f32>(params[i], params[i + stride], params[i + 2u * stride], params[i + 3u * stride]);
}
fn load4_m1(i: u32, stride: u32) -> vec4<f32> {
    if (!uses_m1()) { return vec4<f32>(0.0); }
    return vec4<f32>(m1[i], m1[i + stride], m1[i + 2u * stride], m1[i + 3u * stride]);
}
fn load4_m2(i: u32, stride: u32) -> vec4<f32> {
    if (hyper.optimizer != 1u) { return vec4<f32>(0.0); }
    return vec4<f32>(m2[i], m2[i + stride], m2[i + 2u * stride], m2[i + 3u * stride]);
}
fn store4(i: u32, stride: u32, r: Rule4) {
    for (var k = 0u; k < 4u; k++) { store_rule(i + k * stride, r, k); }
}

// Four parameters `stride` apart (a column of 4 rows): every load before any store, so the four
// read-modify-writes are one memory round trip, not four in a chain.
fn apply_update4(i: u32, stride: u32, g: vec4<f32>, step: u32, lr: f32) {
    store4(i, stride, rule4(load4(i, stride), g, load4_m1(i, stride), load4_m2(i, stride), step, lr));
}

// A 4 x 4 block: rows `stride` apart, 4 consecutive parameters each; gc: column c's gradients
// (gc[k]: row k). Sixteen loads of each array in flight, then sixteen stores.
fn apply_update16(i: u32, stride: u32, g0: vec4<f32>, g1: vec4<f32>, g2: vec4<f32>, g3: vec4<f32>,
                  step: u32, lr: f32) {
    let p0 = load4(i, stride);
    let p1 = load4(i + 1u, stride);
    let p2 = load4(i + 2u, stride);
    let p3 = load4(i + 3u, stride);
    let m0 = load4_m1(i, stride);
    let m1c = load4_m1(i + 1u, stride);
    let m2c = load4_m1(i + 2u, stride);
    let m3 = load4_m1(i + 3u, stride);
    let v0 = load4_m2(i, stride);
    let v1 = load4_m2(i + 1u, stride);
    let v2 = load4_m2(i + 2u, stride);
    let v3 = load4_m2(i + 3u, stride);
    let r0 = rule4(p0, g0, m0, v0, step, lr);
    let r1 = rule4(p1, g1, m1c, v1, step, lr);
    let r2 = rule4(p2, g2, m2c, v2, step, lr);
    let r3 = rule4(p3, g3, m3, v3, step, lr);
    store4(i, stride, r0);
    store4(i + 1u, stride, r1);
    store4(i + 2u, stride, r2);
    store4(i + 3u, stride, r3);
}
