"""conv2d, max_pool2d and flatten (compute/conv.py) against float64 numpy references,
numerical gradients and, where installed, PyTorch; shapes are odd on purpose (not
multiples of any tile, batch 1, one channel) and tiny, so lavapipe runs them in seconds."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from mnist_viz.compute import conv, ops
from mnist_viz.compute.tensor import Tensor

TOL = dict(rtol=1e-4, atol=1e-4)


def T(a, grad=False):
    return Tensor.from_numpy(np.asarray(a, np.float32), requires_grad=grad)


# -- float64 references --------------------------------------------------------------------
def conv_ref(x, w, b, s, p):
    """Forward by stride tricks: every window of the padded input, contracted with w."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    o, _, kh, kw = w.shape
    oh, ow = (x.shape[2] - kh) // s + 1, (x.shape[3] - kw) // s + 1
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::s, ::s][:, :, :oh, :ow]  # [N,C,OH,OW,KH,KW]
    y = np.einsum("ncyxij,ocij->noyx", win, np.asarray(w, np.float64))
    return y if b is None else y + np.asarray(b, np.float64)[None, :, None, None]


def conv_grads_ref(x, w, g, s, p):
    """(dx, dw, db) for upstream gradient g, by scattering each kernel tap (a
    different formulation from the forward's, so the two check each other)."""
    x, w, g = (np.asarray(a, np.float64) for a in (x, w, g))
    n, c, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh, ow = g.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for ky in range(kh):
        for kx in range(kw):
            tap = (slice(None), slice(None), slice(ky, ky + s * (oh - 1) + 1, s), slice(kx, kx + s * (ow - 1) + 1, s))
            dxp[tap] += np.einsum("noyx,oc->ncyx", g, w[:, :, ky, kx])
            dw[:, :, ky, kx] = np.einsum("noyx,ncyx->oc", g, xp[tap])
    return dxp[:, :, p:p + h, p:p + wd], dw, g.sum((0, 2, 3))


def pool_ref(x, k, s):
    """(max, flat arg-max index) per window; np.argmax keeps the first of ties."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out, idx = np.zeros((n, c, oh, ow)), np.zeros((n, c, oh, ow), np.int64)
    for a, b, oy, ox in np.ndindex(n, c, oh, ow):
        win = x[a, b, oy * s:oy * s + k, ox * s:ox * s + k]
        ky, kx = np.unravel_index(np.argmax(win), win.shape)
        out[a, b, oy, ox] = win[ky, kx]
        idx[a, b, oy, ox] = ((a * c + b) * h + oy * s + ky) * w + ox * s + kx
    return out, idx


def pool_back_ref(g, idx, shape):
    dx = np.zeros(int(np.prod(shape)))
    np.add.at(dx, idx.reshape(-1), np.asarray(g, np.float64).reshape(-1))
    return dx.reshape(shape)


# -- conv2d forward -------------------------------------------------------------------------
# (N, C, H, W, O, K, stride, pad, bias, relu)
ODD = [
    (1, 1, 7, 5, 1, 3, 1, 0, False, False),
    (3, 6, 9, 13, 17, 5, 2, 1, True, True),
    (2, 1, 9, 13, 17, 7, 1, 3, True, False),
    (1, 6, 7, 5, 8, 1, 2, 0, True, True),
    (3, 6, 7, 5, 1, 3, 1, 1, False, True),
    (2, 3, 5, 5, 4, 5, 2, 3, True, False),
    (1, 2, 7, 5, 5, 7, 2, 3, False, False),
]


def odd_case(case, rng):
    n, c, h, w, o, k, s, p, bias, relu = case
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    return x, wt, b, s, p, relu


@pytest.mark.parametrize("case", ODD)
def test_conv2d_forward_odd_shapes(case, rng):
    """Guards the implicit-GEMM gather (padding, stride, non-square images, K not a
    multiple of the slab, O not a multiple of the channel tile, batch 1, C = 1) and
    the fused bias / ReLU epilogue."""
    x, w, b, s, p, relu = odd_case(case, rng)
    ref = conv_ref(x, w, b, s, p)
    if relu:
        ref = np.maximum(ref, 0)
    out = conv.conv2d(T(x), T(w), None if b is None else T(b), stride=s, padding=p, relu=relu)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.to_numpy(), ref, **TOL)


@pytest.mark.parametrize("case", ODD)
def test_conv2d_backward_odd_shapes(case, rng):
    """Guards dX (the transposed convolution: exact-division test, padding crop,
    stride holes), dW and db (the bias column of the weight-gradient product), and
    the ReLU mask applied to dy, on the same odd shapes as the forward."""
    x, w, b, s, p, relu = odd_case(case, rng)
    xs, ws = T(x, True), T(w, True)
    bs = None if b is None else T(b, True)
    out = conv.conv2d(xs, ws, bs, stride=s, padding=p, relu=relu)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.grad = T(g)
    out.backward()
    if relu:
        g = g * (conv_ref(x, w, b, s, p) > 0)
    dx, dw, db = conv_grads_ref(x, w, g, s, p)
    np.testing.assert_allclose(xs.grad.to_numpy(), dx, **TOL)
    np.testing.assert_allclose(ws.grad.to_numpy(), dw, **TOL)
    if b is not None:
        np.testing.assert_allclose(bs.grad.to_numpy(), db, **TOL)


def test_references_match_torch(rng):
    """Guards the numpy references themselves (and so every test built on them):
    forward and gradients of conv and max pool agree with PyTorch's."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for case in ODD[1:4]:
        x, w, b, s, p, _ = odd_case(case, rng)
        xt, wt = torch.tensor(x, dtype=torch.float64, requires_grad=True), torch.tensor(w, dtype=torch.float64, requires_grad=True)
        bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
        y = F.conv2d(xt, wt, bt, stride=s, padding=p)
        np.testing.assert_allclose(conv_ref(x, w, b, s, p), y.detach().numpy(), rtol=1e-10, atol=1e-10)
        g = rng.standard_normal(y.shape)
        (y * torch.tensor(g)).sum().backward()
        dx, dw, db = conv_grads_ref(x, w, g, s, p)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
        if bt is not None:
            np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)
    x = rng.integers(0, 3, (2, 3, 7, 9)).astype(np.float64)   # many ties
    xt = torch.tensor(x, requires_grad=True)
    y, idx = F.max_pool2d(xt, 3, 2, return_indices=True)
    out, ref_idx = pool_ref(x, 3, 2)
    np.testing.assert_array_equal(out, y.detach().numpy())
    plane = x.shape[2] * x.shape[3]
    np.testing.assert_array_equal(ref_idx % plane, idx.numpy())
    g = rng.standard_normal(y.shape)
    (y * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(pool_back_ref(g, ref_idx, x.shape), xt.grad.numpy(), rtol=1e-12)


def test_conv2d_matches_torch_on_gpu(rng):
    """Guards the layout contract: a weight in PyTorch's [O, C, KH, KW] order, used
    as is, gives PyTorch's output and gradients (no transposition anywhere)."""
    torch = pytest.importorskip("torch")
    x, w, b, s, p, _ = odd_case(ODD[1], rng)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = torch.relu(torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p))
    g = rng.standard_normal(y.shape).astype(np.float32)
    (y * torch.tensor(g)).sum().backward()
    xs, ws, bs = T(x, True), T(w, True), T(b, True)
    out = conv.conv2d(xs, ws, bs, stride=s, padding=p, relu=True)
    out.grad = T(g)
    out.backward()
    np.testing.assert_allclose(out.to_numpy(), y.detach().numpy(), **TOL)
    for mine, theirs in ((xs, xt), (ws, wt), (bs, bt)):
        np.testing.assert_allclose(mine.grad.to_numpy(), theirs.grad.numpy(), **TOL)


@pytest.mark.parametrize("tile", [(16, 1), (16, 2), (8, 1), (4, 2), (16, 1, 32), (8, 2, 16), (16, 4, 32), (4, 4, 8)])
def test_conv2d_every_tile_variant(tile, rng):
    """A CPU adapter always takes positions-per-invocation 4; a GPU takes 1 or 2 for
    small batches, and slabs 8, 16 or 32 deep. Guards the tile variants a GPU picks
    (lane strides, the partial last tile, a slab deeper than the reduction, whose
    last rows are padding) by forcing each on forward and input gradient."""
    x, w, b, s, p, _ = odd_case((3, 6, 9, 13, 17, 3, 1, 1, True, False), rng)
    geo = conv.conv_geometry(x.shape, w.shape, s, p)
    out = Tensor(geo.out_shape)
    conv.conv2d_into(T(x), T(w), T(b), out, geo, tile=tile)
    np.testing.assert_allclose(out.to_numpy(), conv_ref(x, w, b, s, p), **TOL)
    g = rng.standard_normal(geo.out_shape).astype(np.float32)
    gx = Tensor(x.shape)
    conv.conv2d_input_grad_into(T(g), T(w), gx, geo, tile=tile)
    np.testing.assert_allclose(gx.to_numpy(), conv_grads_ref(x, w, g, s, p)[0], **TOL)


# -- numerical gradients -------------------------------------------------------------------
def numeric_grads(fn, arrays, r, eps):
    """d(sum(fn(*arrays) * r))/d(each array) by float64 central differences of the GPU forward."""
    grads = []
    for i, a in enumerate(arrays):
        num = np.zeros(a.shape)
        for idx in np.ndindex(a.shape):
            vals = []
            for sign in (1, -1):
                pert = [b.copy() for b in arrays]
                pert[i][idx] += sign * eps
                vals.append((fn(*[T(b) for b in pert]).to_numpy().astype(np.float64) * r).sum())
            num[idx] = (vals[0] - vals[1]) / (2 * eps)
        grads.append(num)
    return grads


@pytest.mark.parametrize("n,c,h,w,o,k,s,p,relu", [(2, 2, 5, 4, 3, 3, 1, 1, False), (1, 2, 6, 5, 2, 3, 2, 1, True)])
def test_conv2d_backward_numerical(n, c, h, w, o, k, s, p, relu):
    """Guards backward against the GPU forward itself (no numpy convolution involved):
    a wrong sign, a flipped kernel or a transposed index in dX / dW / db shows here."""
    eps = 1e-2
    for seed in range(100):  # with ReLU: inputs whose pre-activations stay clear of the kink
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((o, c, k, k)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        margin = 2 * eps * max(np.abs(x).max(), np.abs(wt).max(), 1.0)
        if not relu or np.abs(conv_ref(x, wt, b, s, p)).min() > margin:
            break
    fn = lambda x, wt, b: conv.conv2d(x, wt, b, stride=s, padding=p, relu=relu)  # noqa: E731
    xs, ws, bs = T(x, True), T(wt, True), T(b, True)
    out = fn(xs, ws, bs)
    r = rng.standard_normal(out.shape)
    out.grad = T(r)
    out.backward()
    for mine, num in zip((xs, ws, bs), numeric_grads(fn, [x, wt, b], r, eps)):
        np.testing.assert_allclose(mine.grad.to_numpy(), num, rtol=1e-3, atol=1e-3)


# -- accumulation, stale buffers, split weight gradient ----------------------------------------
def test_conv2d_gradients_accumulate_over_consumers(rng):
    """x, w and b feed two convolutions (one with ReLU): the second backward must add
    to the first's gradients (grad_target's accumulate), not overwrite them. Guards
    the ACCUMULATE / ACC_W / ACC_B paths of both gradient kernels."""
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    xs, ws, bs = T(x, True), T(w, True), T(b, True)
    y1 = conv.conv2d(xs, ws, bs, padding=1)
    y2 = conv.conv2d(xs, ws, bs, padding=1, relu=True)
    total = ops.add(conv.flatten(y1), conv.flatten(y2))
    g = rng.standard_normal(total.shape).astype(np.float32)
    total.grad = T(g)
    total.backward()
    g4 = g.reshape(y1.shape)
    ref1 = conv_grads_ref(x, w, g4, 1, 1)
    ref2 = conv_grads_ref(x, w, g4 * (conv_ref(x, w, b, 1, 1) > 0), 1, 1)
    for t, a, c in zip((xs, ws, bs), ref1, ref2):
        np.testing.assert_allclose(t.grad.to_numpy(), a + c, **TOL)


def test_conv2d_overwrites_stale_gradient_buffers(rng):
    """Gradient buffers that already hold values from an earlier step (a parameter
    arena's) must be overwritten by a fresh backward, not added to."""
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    xs, ws, bs = T(x, True), T(w, True), T(b, True)
    for t in (xs, ws, bs):
        t.grad = T(np.full(t.shape, 1e3))
    out = conv.conv2d(xs, ws, bs)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.grad = T(g)
    out.backward()
    for t, ref in zip((xs, ws, bs), conv_grads_ref(x, w, g, 1, 0)):
        np.testing.assert_allclose(t.grad.to_numpy(), ref, **TOL)


@pytest.mark.parametrize("split", [1, 3, 100])
@pytest.mark.parametrize("accumulate", [False, True])
def test_conv2d_weight_grad_split(split, accumulate, rng):
    """The weight gradient split over slices of the N*OH*OW positions (what a GPU
    does at batch 32-256): partial tiles plus the reduction, with several channel
    and column tiles, a last slice shorter than the rest, more slices asked for than
    there are slabs (100), the ReLU mask, and accumulation into existing dW / db."""
    x, w, b, s, p, _ = odd_case((3, 6, 9, 13, 17, 5, 2, 1, True, True), rng)
    geo = conv.conv_geometry(x.shape, w.shape, s, p)
    y = np.maximum(conv_ref(x, w, b, s, p), 0).astype(np.float32)
    g = rng.standard_normal(y.shape).astype(np.float32)
    w0, b0 = rng.standard_normal(w.shape), rng.standard_normal(b.shape)
    gw, gb = T(w0 if accumulate else np.zeros(w.shape)), T(b0 if accumulate else np.zeros(b.shape))
    conv.conv2d_weight_grad_into(T(x), T(g), geo, gw, gb, relu_out=T(y), acc_w=accumulate, acc_b=accumulate,
                                 split=split)
    _, dw, db = conv_grads_ref(x, w, g * (y > 0), s, p)
    np.testing.assert_allclose(gw.to_numpy(), dw + (w0 if accumulate else 0), **TOL)
    np.testing.assert_allclose(gb.to_numpy(), db + (b0 if accumulate else 0), **TOL)


def test_conv2d_weight_grad_without_bias(rng):
    """With no bias the bias column must vanish: guards against dW being shifted or
    a write past the end of dW when WANT_DB is off (split and unsplit)."""
    x = rng.standard_normal((2, 2, 6, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    geo = conv.conv_geometry(x.shape, w.shape, 1, 1)
    g = rng.standard_normal(geo.out_shape).astype(np.float32)
    for split in (1, 2):
        guard = T(np.full(w.size + 64, 7.0))          # dW followed by canaries in one buffer
        gw = Tensor(w.shape, guard.buffer, 0)
        conv.conv2d_weight_grad_into(T(x), T(g), geo, gw, None, split=split)
        got = guard.to_numpy()
        np.testing.assert_allclose(got[:w.size].reshape(w.shape), conv_grads_ref(x, w, g, 1, 1)[1], **TOL)
        assert np.all(got[w.size:] == 7.0)


def test_grids_fold_past_the_dimension_limit(rng, monkeypatch):
    """With the per-dimension limit lowered to 3 workgroups, every dispatch must fold
    into 2-D and the kernels must number workgroups wg.x + wg.y * nwg.x and skip the
    spare ones. Guards real 65535-limit folding (batch 256 of large images) cheaply."""
    monkeypatch.setattr(conv, "MAX_GROUPS", 3)
    assert conv.fold(10) == (3, 4) and conv.fold(3) == (3, 1) and conv.fold(0) == (1, 1)
    x = rng.standard_normal((4, 2, 13, 15)).astype(np.float32)   # 780 positions: 13 forward tiles, 4 dX tiles
    w = rng.standard_normal((9, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    xs, ws, bs = T(x, True), T(w, True), T(b, True)
    y = conv.conv2d(xs, ws, bs, padding=1, relu=True)
    pooled = conv.max_pool2d(y, 2)                              # 1512 outputs: 6 groups of 256
    g = rng.standard_normal(pooled.shape).astype(np.float32)
    pooled.grad = T(g)
    pooled.backward()
    y_ref = np.maximum(conv_ref(x, w, b, 1, 1), 0)
    p_ref, idx = pool_ref(y_ref, 2, 2)
    np.testing.assert_allclose(pooled.to_numpy(), p_ref, **TOL)
    gy = pool_back_ref(g, idx, y_ref.shape) * (y_ref > 0)
    for t, ref in zip((xs, ws, bs), conv_grads_ref(x, w, gy, 1, 1)):
        np.testing.assert_allclose(t.grad.to_numpy(), ref, **TOL)


def test_conv2d_shape_errors():
    """Guards the messages a wrong architecture string would meet (instead of a GPU fault)."""
    x = T(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="3 channels"):
        conv.conv2d(x, T(np.zeros((2, 4, 3, 3))))
    with pytest.raises(ValueError, match="does not fit"):
        conv.conv2d(x, T(np.zeros((2, 3, 7, 7))))
    with pytest.raises(ValueError, match="bias"):
        conv.conv2d(x, T(np.zeros((2, 3, 3, 3))), T(np.zeros(3)))
    with pytest.raises(ValueError, match="4-D"):
        conv.conv2d(T(np.zeros((3, 5, 5))), T(np.zeros((2, 3, 3, 3))))
    with pytest.raises(ValueError, match="does not fit"):
        conv.max_pool2d(x, 6)


# -- max pooling ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,k,s", [((2, 3, 5, 7), 2, None), ((1, 2, 7, 9), 3, 2), ((3, 1, 6, 6), 2, 2),
                                       ((1, 1, 4, 5), 3, 1)])
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool2d(shape, k, s, ties, rng):
    """Guards the floor output size (5x7 / 2: last row and column dropped, their
    gradient 0), arg-max ties (first in row-major order, as PyTorch), and overlapping
    windows (kernel 3 stride 2 or 1: an element that wins several windows gets the
    sum of their gradients)."""
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(np.float32)
    xs = T(x, True)
    out = conv.max_pool2d(xs, k, s)
    ref, idx = pool_ref(x, k, k if s is None else s)
    np.testing.assert_array_equal(out.to_numpy(), ref)
    np.testing.assert_array_equal(out.argmax.to_numpy(), idx)
    g = rng.standard_normal(out.shape).astype(np.float32)
    out.grad = T(g)
    out.backward()
    np.testing.assert_allclose(xs.grad.to_numpy(), pool_back_ref(g, idx, x.shape), rtol=1e-6, atol=1e-6)


def test_max_pool2d_accumulates_and_propagates_nan(rng):
    """Guards the ACCUMULATE path of the pooling backward (a tensor pooled twice) and
    NaN propagation (a NaN in a window wins it, as in PyTorch, so a diverged
    activation is not silently dropped)."""
    x = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    xs = T(x, True)
    a, b = conv.max_pool2d(xs, 2), conv.max_pool2d(xs, 3, 1)
    total = ops.add(conv.flatten(a), ops.mul(conv.flatten(conv.max_pool2d(xs, 2)), conv.flatten(a)))
    ga = rng.standard_normal(total.shape).astype(np.float32)
    total.grad = T(ga)
    total.backward()
    ra, ia = pool_ref(x, 2, 2)
    ga4 = ga.reshape(ra.shape)
    # total = a + a2 * a with a2 == a: d/da = 1 + a, d/da2 = a
    ref = pool_back_ref(ga4 * (1 + ra), ia, x.shape) + pool_back_ref(ga4 * ra, ia, x.shape)
    np.testing.assert_allclose(xs.grad.to_numpy(), ref, rtol=1e-5, atol=1e-5)
    assert b.shape == (1, 2, 2, 4)
    x[0, 1, 1, 1] = np.nan
    out = conv.max_pool2d(T(x), 2).to_numpy()
    assert np.isnan(out[0, 1, 0, 0]) and np.isfinite(np.delete(out.reshape(-1), 6)).all()


# -- flatten --------------------------------------------------------------------------------
def test_flatten_is_a_view_in_torch_order(rng):
    """Guards the (C, H, W) order nn.Flatten uses (a Linear after it loads PyTorch
    checkpoints unchanged) and that no copy is made."""
    x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    xs = T(x)
    f = conv.flatten(xs)
    assert f.shape == (3, 40) and f.buffer is xs.buffer and f.offset == xs.offset
    np.testing.assert_array_equal(f.to_numpy(), x.reshape(3, -1))
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(f.to_numpy(), torch.nn.Flatten()(torch.tensor(x)).numpy())


def test_flatten_gradient_passes_through(rng):
    """Guards the three gradient paths: handed over (x has no gradient buffer yet),
    accumulated (x flattened twice), written over a stale buffer (a parameter's)."""
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    g = rng.standard_normal((2, 12)).astype(np.float32)
    xs = T(x, True)
    f = conv.flatten(xs)
    f.grad = T(g)
    f.backward()
    np.testing.assert_array_equal(xs.grad.to_numpy(), g.reshape(x.shape))

    xs = T(x, True)
    twice = ops.add(conv.flatten(xs), conv.flatten(xs))
    twice.grad = T(g)
    twice.backward()
    np.testing.assert_allclose(xs.grad.to_numpy(), 2 * g.reshape(x.shape), rtol=1e-6)

    xs = T(x, True)
    xs.grad = T(np.full(x.shape, 5.0))
    f = conv.flatten(xs)
    f.grad = T(g)
    f.backward()
    np.testing.assert_array_equal(xs.grad.to_numpy(), g.reshape(x.shape))


# -- end to end -------------------------------------------------------------------------------
def small_cnn_ref(x, labels, w1, b1, w2, b2, w3, b3):
    """Loss and gradients of conv(5, pad 2)-ReLU-pool2-conv(3, pad 1)-ReLU-pool2-flatten-
    linear-softmax cross-entropy (mean), in float64 numpy, forward and backward by hand."""
    n = x.shape[0]
    z1 = conv_ref(x, w1, b1, 1, 2)
    a1 = np.maximum(z1, 0)
    p1, i1 = pool_ref(a1, 2, 2)
    z2 = conv_ref(p1, w2, b2, 1, 1)
    a2 = np.maximum(z2, 0)
    p2, i2 = pool_ref(a2, 2, 2)
    f = p2.reshape(n, -1)
    logits = f @ w3 + b3
    e = np.exp(logits - logits.max(1, keepdims=True))
    prob = e / e.sum(1, keepdims=True)
    loss = -np.log(prob[np.arange(n), labels]).mean()
    dlogits = prob.copy()
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n
    dw3, db3 = f.T @ dlogits, dlogits.sum(0)
    dz2 = pool_back_ref((dlogits @ w3.T).reshape(p2.shape), i2, a2.shape) * (z2 > 0)
    dp1, dw2, db2 = conv_grads_ref(p1, w2, dz2, 1, 1)
    dz1 = pool_back_ref(dp1, i1, a1.shape) * (z1 > 0)
    _, dw1, db1 = conv_grads_ref(x, w1, dz1, 1, 2)
    return loss, (dw1, db1, dw2, db2, dw3, db3)


def test_small_cnn_end_to_end(rng):
    """The reference the compiled CNN step will be tested against: every op of a
    small MNIST-style CNN chained through autograd (fused ReLU in the first conv, a
    separate ops.relu after the second, input gradient of the second conv, pooling,
    flatten, linear, cross-entropy); loss and all six parameter gradients match
    a float64 numpy implementation. Guards the ops' composition: shapes, layouts
    and gradient hand-offs between them."""
    n, classes = 3, 10
    x = rng.random((n, 1, 8, 8)).astype(np.float32)
    labels = np.array([3, 7, 0], np.uint32)
    w1 = (rng.standard_normal((4, 1, 5, 5)) * 0.4).astype(np.float32)
    b1 = (rng.standard_normal(4) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((6, 4, 3, 3)) * 0.3).astype(np.float32)
    b2 = (rng.standard_normal(6) * 0.1).astype(np.float32)
    w3 = (rng.standard_normal((24, classes)) * 0.3).astype(np.float32)   # [in, out], as ops.linear
    b3 = (rng.standard_normal(classes) * 0.1).astype(np.float32)
    params = [T(a, True) for a in (w1, b1, w2, b2, w3, b3)]
    pw1, pb1, pw2, pb2, pw3, pb3 = params
    state, history = Tensor((16,), dtype="u32"), Tensor((8,))

    h = conv.max_pool2d(conv.conv2d(T(x), pw1, pb1, padding=2, relu=True), 2)
    h = conv.max_pool2d(ops.relu(conv.conv2d(h, pw2, pb2, padding=1)), 2)
    logits = ops.linear(conv.flatten(h), pw3, pb3)
    loss = ops.cross_entropy(logits, Tensor.from_numpy(labels), state, history)
    loss.backward()

    ref_loss, ref_grads = small_cnn_ref(x.astype(np.float64), labels.astype(np.int64), w1, b1, w2, b2, w3, b3)
    np.testing.assert_allclose(loss.to_numpy()[0], ref_loss, rtol=1e-5)
    for name, p, ref in zip(("w1", "b1", "w2", "b2", "w3", "b3"), params, ref_grads):
        np.testing.assert_allclose(p.grad.to_numpy(), ref, rtol=1e-4, atol=1e-6, err_msg=name)


def test_slab_depth_is_the_deepest_that_fits():
    """Guards the slab choice: the deepest of 32 / 16 / 8 whose words fit the 2048-word
    workgroup slab, never deeper than the reduction needs (a 25-long reduction takes 32,
    one of 9 takes 16), and 8 for the widest tile (a deeper one would overrun the array)."""
    assert conv.slab_depth(64, 25) == 32
    assert conv.slab_depth(64, 9) == 16
    assert conv.slab_depth(64, 3) == 8
    assert conv.slab_depth(128, 1000) == 16
    assert conv.slab_depth(256, 1000) == 8
    assert all(conv.slab_depth(w, r) * w <= conv.SLAB_WORDS for w in (16, 32, 64, 128, 256) for r in (1, 40, 999))
