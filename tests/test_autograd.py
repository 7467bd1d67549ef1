"""Every backward against numerical gradients (central differences of the GPU forward)."""
import numpy as np
import pytest

from mnist_viz.compute import ops
from mnist_viz.compute.tensor import Tensor

EPS = 1e-2


def T(a, grad=False):
    return Tensor.from_numpy(np.asarray(a, np.float32), requires_grad=grad)


def gradcheck(fn, arrays, rng, which=None, rtol=2e-2, atol=2e-3):
    """Compare d(sum(fn(*x) * R))/dx from backward() with central differences."""
    which = range(len(arrays)) if which is None else which
    xs = [T(a, grad=i in which) for i, a in enumerate(arrays)]
    out = fn(*xs)
    r = rng.standard_normal(out.shape).astype(np.float32)
    if out.shape != (1,):
        out.grad = T(r)
    else:
        r[:] = 1.0
    out.backward()
    for i in which:
        analytic = xs[i].grad.to_numpy()
        numeric = np.zeros_like(arrays[i], dtype=np.float64)
        for idx in np.ndindex(arrays[i].shape):
            vals = []
            for sign in (1, -1):
                pert = [a.copy() for a in arrays]
                pert[i][idx] += sign * EPS
                vals.append(float((fn(*[T(a) for a in pert]).to_numpy() * r).sum()))
            numeric[idx] = (vals[0] - vals[1]) / (2 * EPS)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=f"input {i}")


def away_from_kinks(a, margin=0.05):
    """Keep values out of ReLU's kink so finite differences do not straddle it."""
    return np.where(np.abs(a) < margin, np.sign(a + 1e-9) * margin, a).astype(np.float32)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_backward(ta, tb, rng):
    a = rng.standard_normal((3, 5) if not ta else (5, 3)).astype(np.float32)
    b = rng.standard_normal((5, 4) if not tb else (4, 5)).astype(np.float32)
    gradcheck(lambda x, y: ops.matmul(x, y, ta, tb), [a, b], rng)


@pytest.mark.parametrize("relu", [False, True])
def test_linear_backward(relu, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    if relu:  # keep pre-activations off zero
        z = x @ w + b
        b = (b + np.where(np.abs(z).min(0) < 0.1, 0.3, 0)).astype(np.float32)
    gradcheck(lambda x, w, b: ops.linear(x, w, b, relu=relu), [x, w, b], rng)


def test_relu_bias_sum_transpose_add_mul_backward(rng):
    x = away_from_kinks(rng.standard_normal((4, 3)))
    y = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    gradcheck(ops.relu, [x], rng)
    gradcheck(ops.bias_add, [x, b], rng)
    gradcheck(lambda t: ops.sum_rows(t), [x], rng)
    gradcheck(ops.transpose, [x], rng)
    gradcheck(ops.add, [x, y], rng)
    gradcheck(ops.mul, [x, y], rng)


def test_dropout_backward(rng):
    state = Tensor((16,), dtype="u32")
    x = rng.standard_normal((6, 5)).astype(np.float32)
    gradcheck(lambda t: ops.dropout(t, 0.4, seed=3, state=state), [x], rng)


def test_cross_entropy_backward(rng):
    state, hist = Tensor((16,), dtype="u32"), Tensor((8,))
    labels = Tensor.from_numpy(np.array([2, 0, 1, 0xFFFFFFFF], np.uint32))
    z = rng.standard_normal((4, 3)).astype(np.float32)
    gradcheck(lambda t: ops.cross_entropy(t, labels, state, hist), [z], rng)


def test_mlp_graph_backward_shared_input(rng):
    """A graph where one tensor feeds two paths: gradients must accumulate, not overwrite."""
    state, hist = Tensor((16,), dtype="u32"), Tensor((8,))
    labels = Tensor.from_numpy(np.array([1, 0, 2], np.uint32))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    w1 = rng.standard_normal((4, 6)).astype(np.float32) * 0.5
    w2 = rng.standard_normal((6, 3)).astype(np.float32) * 0.5

    def net(x, w1, w2):
        h = ops.relu(ops.matmul(x, w1))
        z = ops.add(ops.matmul(h, w2), ops.mul(ops.matmul(h, w2), ops.matmul(h, w2)))  # h, w2 used 3 times
        return ops.cross_entropy(z, labels, state, hist)

    x = away_from_kinks(x)
    gradcheck(net, [x, w1, w2], rng, which=[1, 2])
