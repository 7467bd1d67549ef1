"""Every kernel against numpy, on odd shapes (not multiples of the tile sizes, batch 1)."""
import numpy as np
import pytest

from mnist_viz.compute import ops
from mnist_viz.compute.tensor import Tensor

SHAPES = [(1, 7, 3), (33, 17, 65), (70, 130, 5), (5, 1, 129), (65, 64, 63)]


def T(a):
    return Tensor.from_numpy(np.asarray(a, np.float32))


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(m, k, n, ta, tb, rng):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    out = ops.matmul(T(a.T if ta else a), T(b.T if tb else b), ta, tb).to_numpy()
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_linear_fused_bias_relu(m, k, n, relu, rng):
    x, w, b = rng.standard_normal((m, k)), rng.standard_normal((k, n)), rng.standard_normal(n)
    ref = x @ w + b
    if relu:
        ref = np.maximum(ref, 0)
    np.testing.assert_allclose(ops.linear(T(x), T(w), T(b), relu=relu).to_numpy(), ref, rtol=1e-4, atol=1e-4)


def test_matmul_accumulate(rng, device):
    a, b, c0 = rng.standard_normal((9, 5)), rng.standard_normal((5, 11)), rng.standard_normal((9, 11))
    c = T(c0)
    ops.matmul_into(T(a), T(b), c, 9, 11, 5, accumulate=True)
    np.testing.assert_allclose(c.to_numpy(), c0 + a @ b, rtol=1e-4, atol=1e-4)


def test_matmul_shape_mismatch():
    with pytest.raises(ValueError, match="inner sizes"):
        ops.matmul(T(np.zeros((2, 3))), T(np.zeros((4, 5))))


@pytest.mark.parametrize("m,n", [(1, 1), (37, 19), (300, 3), (2, 1000)])
def test_sum_rows_transpose_relu_bias(m, n, rng):
    x = rng.standard_normal((m, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    np.testing.assert_allclose(ops.sum_rows(T(x)).to_numpy(), x.sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ops.transpose(T(x)).to_numpy(), x.T)
    np.testing.assert_array_equal(ops.relu(T(x)).to_numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(ops.bias_add(T(x), T(b)).to_numpy(), x + b, rtol=1e-6)


def test_elementwise(rng):
    x, y = rng.standard_normal(1001).astype(np.float32), rng.standard_normal(1001).astype(np.float32)
    np.testing.assert_allclose(ops.add(T(x), T(y)).to_numpy(), x + y, rtol=1e-6)
    np.testing.assert_allclose(ops.mul(T(x), T(y)).to_numpy(), x * y, rtol=1e-6)
    out = T(np.zeros(1001))
    ops.axpby_into(T(x), T(y), out, 2.0, -3.0)
    np.testing.assert_allclose(out.to_numpy(), 2 * x - 3 * y, rtol=1e-5, atol=1e-6)
    ops.fill(out, 0.25)
    assert np.all(out.to_numpy() == 0.25)


def test_elementwise_large_grid(rng):
    """Past 65535 workgroups the grid folds into 2-D; every element still gets one invocation."""
    n = 65535 * 256 + 777
    x = np.arange(n, dtype=np.float32) % 97 - 48
    np.testing.assert_array_equal(ops.relu(T(x)).to_numpy(), np.maximum(x, 0))


@pytest.mark.parametrize("r,c", [(1, 10), (7, 3), (300, 10)])
def test_softmax(r, c, rng):
    z = (rng.standard_normal((r, c)) * 10).astype(np.float32)
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(ops.softmax(T(z)).to_numpy(), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def _state_and_history():
    return Tensor((16,), dtype="u32"), Tensor((64,))


@pytest.mark.parametrize("r,c,valid", [(1, 10, 1), (37, 10, 37), (300, 7, 299), (40, 10, 33)])
def test_cross_entropy_loss_grad_metrics(r, c, valid, rng):
    z = (rng.standard_normal((r, c)) * 3).astype(np.float32)
    y = rng.integers(0, c, r).astype(np.uint32)
    y[valid:] = 0xFFFFFFFF  # the tail of a short batch
    state, hist = _state_and_history()
    loss = ops.cross_entropy(T(z), Tensor.from_numpy(y), state, hist)
    zv, yv = z[:valid].astype(np.float64), y[:valid]
    lse = np.log(np.exp(zv - zv.max(1, keepdims=True)).sum(1)) + zv.max(1)
    ref_loss = (lse - zv[np.arange(valid), yv]).mean()
    p = np.exp(zv - lse[:, None])
    grad = np.zeros((r, c))
    grad[:valid] = p
    grad[np.arange(valid), yv] -= 1
    grad[:valid] /= valid
    np.testing.assert_allclose(loss.to_numpy()[0], ref_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss.dlogits.to_numpy(), grad, rtol=1e-4, atol=1e-6)
    h = hist.to_numpy()
    assert h[0] == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    assert h[1] == pytest.approx((zv.argmax(1) == yv).mean())


def test_cross_entropy_flags_nonfinite():
    state, hist = _state_and_history()
    z = np.array([[np.inf, 0.0, 1.0]], np.float32)
    ops.cross_entropy(T(z), Tensor.from_numpy(np.array([1], np.uint32)), state, hist)
    assert state.to_numpy()[3] & 1


def test_dropout_mask_statistics_and_backward(rng):
    x = np.ones((200, 50), np.float32)
    state = Tensor((16,), dtype="u32")
    xt = T(x)
    xt.requires_grad = True
    y = ops.dropout(xt, 0.3, seed=7, state=state)
    out = y.to_numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    # backward redraws the same mask
    y.grad = T(np.full((200, 50), 2.0))
    y.backward()
    np.testing.assert_allclose(xt.grad.to_numpy(), np.where(kept, 2 / 0.7, 0), rtol=1e-6)
    # a new step draws a new mask
    state.write(np.array([1] + [0] * 15, np.uint32))
    assert (ops.dropout(xt, 0.3, seed=7, state=state).to_numpy() != 0).mean() == pytest.approx(0.7, abs=0.02)
    assert not np.array_equal(ops.dropout(xt, 0.3, seed=7, state=state).to_numpy() != 0, kept)


@pytest.mark.parametrize("m,k,n", [(1, 7, 3), (32, 784, 128), (33, 130, 65)])
@pytest.mark.parametrize("split", [2, 5])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, True)])
def test_matmul_split_k(m, k, n, split, ta, tb, rng):
    """Split-K (chosen on big GPUs for batch-sized M) gives the same product, bias, ReLU, accumulation."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    out = T(c0)
    ops.matmul_into(T(a.T if ta else a), T(b.T if tb else b), out, m, n, k, ta, tb, bias=T(bias), relu=True,
                    accumulate=True, split=split)
    np.testing.assert_allclose(out.to_numpy(), c0 + np.maximum(a @ b + bias, 0), rtol=1e-4, atol=1e-4)
