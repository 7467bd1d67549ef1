"""Differentiable ops: each records GPU dispatches for its forward pass and
attaches a backward closure that records the dispatches of its gradient.

The kernels live in shaders/*.wgsl; this module only picks variants (override
constants), binds buffers and sizes grids.
"""
from __future__ import annotations

import math

from .device import get_device
from .structs import DROPOUT, ELEMENTWISE, MATMUL, REDUCE, TRANSPOSE, XENT
from .tensor import Tensor, result


def grid_1d(n: int) -> tuple[int, int]:
    """Workgroups of 256 for n elements, folded into 2-D past the 65535 limit."""
    groups = max(1, math.ceil(n / 256))
    x = min(groups, 65535)
    return x, math.ceil(groups / x)


def _ew(entry: str, n: int, x, y, out: Tensor, accumulate=False, row=0, a=0.0, b=0.0) -> None:
    dev = get_device()
    prm = dev.uniform(ELEMENTWISE, n=n, row=row, a=a, b=b)
    dev.dispatch("elementwise.wgsl", entry,
                 [prm, x if x is not None else dev.dummy_ro, y if y is not None else dev.dummy_ro, out],
                 grid_1d(n), ACCUMULATE=accumulate)


# -- matmul --------------------------------------------------------------------------------
def split_k_for(m: int, n: int, k: int) -> int:
    """K slices for a product: enough workgroups to fill a big GPU, never on a CPU
    adapter (lavapipe runs two cores: more workgroups only add a reduction pass)."""
    dev = get_device()
    if dev.is_cpu:
        return 1
    tiles = math.ceil(m / 64) * math.ceil(n / 64)
    return max(1, min(32, 128 // tiles, k // 64))


def matmul_into(a: Tensor, b: Tensor, out: Tensor, m: int, n: int, k: int, trans_a=False, trans_b=False,
                bias: Tensor | None = None, relu=False, accumulate=False, split: int | None = None) -> None:
    dev = get_device()
    split = split_k_for(m, n, k) if split is None else split
    consts = dict(TRANS_A=trans_a, TRANS_B=trans_b, HAS_BIAS=bias is not None, RELU=relu, ACCUMULATE=accumulate,
                  SPLIT=split)
    partials = _scratch(split * m * n) if split > 1 else dev.dummy_rw
    res = [dev.uniform(MATMUL, M=m, N=n, K=k), a, b, bias if bias is not None else dev.dummy_ro, out, partials]
    dev.dispatch("matmul.wgsl", "main", res, (math.ceil(n / 64), math.ceil(m / 64), split), **consts)
    if split > 1:
        dev.dispatch("matmul.wgsl", "reduce_split", res, grid_1d(m * n), **consts)


_SCRATCH: dict = {}


def _scratch(floats: int):
    """One growing scratch buffer for split-K partials, shared by all products:
    every use is a write-then-read inside consecutive dispatches."""
    dev = get_device()
    buf = _SCRATCH.get(dev)
    if buf is None or buf.size < floats * 4:
        buf = _SCRATCH[dev] = dev.buffer(max(floats * 4, 1 << 20), "matmul.partials")
    return buf


def _mm_dims(a: Tensor, b: Tensor, trans_a: bool, trans_b: bool) -> tuple[int, int, int]:
    m, ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if ka != kb:
        raise ValueError(f"matmul: inner sizes differ: {a.shape}{'^T' if trans_a else ''} @ {b.shape}{'^T' if trans_b else ''}")
    return m, n, ka


def matmul(a: Tensor, b: Tensor, trans_a=False, trans_b=False) -> Tensor:
    """op(a) @ op(b), op = transpose where asked (read transposed, never copied)."""
    m, n, k = _mm_dims(a, b, trans_a, trans_b)
    out = result((m, n), (a, b), "matmul")
    matmul_into(a, b, out, m, n, k, trans_a, trans_b)
    if out.requires_grad:
        def backward():
            g = out.grad
            if a.requires_grad:
                ga, acc = a.grad_target()
                if trans_a:   # a stored [K,M]: dA = op(B) @ dC^T
                    matmul_into(b, g, ga, k, m, n, trans_a=trans_b, trans_b=True, accumulate=acc)
                else:         # dA = dC @ op(B)^T
                    matmul_into(g, b, ga, m, k, n, trans_a=False, trans_b=not trans_b, accumulate=acc)
            if b.requires_grad:
                gb, acc = b.grad_target()
                if trans_b:   # b stored [N,K]: dB = dC^T @ op(A)
                    matmul_into(g, a, gb, n, k, m, trans_a=True, trans_b=trans_a, accumulate=acc)
                else:         # dB = op(A)^T @ dC
                    matmul_into(a, g, gb, k, n, m, trans_a=not trans_a, trans_b=False, accumulate=acc)
        out._backward = backward
    return out


# -- reductions, transpose -------------------------------------------------------------------
def sum_rows_into(x: Tensor, out: Tensor, m: int, n: int, accumulate=False) -> None:
    dev = get_device()
    dev.dispatch("reduce.wgsl", "sum_rows", [dev.uniform(REDUCE, M=m, N=n), x, out], (math.ceil(n / 16),),
                 ACCUMULATE=accumulate)


def sum_rows(x: Tensor) -> Tensor:
    """SumReduce over axis 0: [M, N] -> [N]."""
    m, n = x.shape
    out = result((n,), (x,), "sum_rows")
    sum_rows_into(x, out, m, n)
    if out.requires_grad:
        def backward():
            gx, acc = x.grad_target()
            _broadcast_rows(out.grad, gx, m, n, acc)
        out._backward = backward
    return out


def _broadcast_rows(g: Tensor, out: Tensor, m: int, n: int, accumulate: bool) -> None:
    """out[i, j] = g[j]: the gradient of a row sum, written as bias_add(0, g)."""
    zeros = _zeros_like_rows(m, n)
    _ew("bias_add", m * n, zeros, g, out, accumulate, row=n)


_ZERO_CACHE: dict = {}


def _zeros_like_rows(m: int, n: int) -> Tensor:
    key = (get_device(), m * n)
    t = _ZERO_CACHE.get(key)
    if t is None:
        t = _ZERO_CACHE[key] = Tensor((m * n,), label="zeros")
    return t


def transpose(x: Tensor) -> Tensor:
    m, n = x.shape
    out = result((n, m), (x,), "transpose")
    _transpose_into(x, out, m, n)
    if out.requires_grad:
        def backward():
            gx, acc = x.grad_target()
            _transpose_into(out.grad, gx, n, m, acc)
        out._backward = backward
    return out


def _transpose_into(x: Tensor, out: Tensor, m: int, n: int, accumulate=False) -> None:
    dev = get_device()
    dev.dispatch("transpose.wgsl", "main", [dev.uniform(TRANSPOSE, M=m, N=n), x, out],
                 (math.ceil(n / 16), math.ceil(m / 16)), ACCUMULATE=accumulate)


# -- elementwise ---------------------------------------------------------------------------------
def relu(x: Tensor) -> Tensor:
    out = result(x.shape, (x,), "relu")
    _ew("relu", x.size, x, None, out)
    if out.requires_grad:
        def backward():
            gx, acc = x.grad_target()
            _ew("relu_backward", x.size, out, out.grad, gx, acc)
        out._backward = backward
    return out


def bias_add(x: Tensor, b: Tensor) -> Tensor:
    m, n = x.shape
    out = result(x.shape, (x, b), "bias_add")
    _ew("bias_add", x.size, x, b, out, row=n)
    if out.requires_grad:
        def backward():
            if x.requires_grad:
                gx, acc = x.grad_target()
                _ew("axpby", x.size, out.grad, out.grad, gx, acc, a=1.0, b=0.0)
            if b.requires_grad:
                gb, acc = b.grad_target()
                sum_rows_into(out.grad, gb, m, n, acc)
        out._backward = backward
    return out


def add(x: Tensor, y: Tensor) -> Tensor:
    out = result(x.shape, (x, y), "add")
    _ew("axpby", x.size, x, y, out, a=1.0, b=1.0)
    if out.requires_grad:
        def backward():
            for t in (x, y):
                if t.requires_grad:
                    g, acc = t.grad_target()
                    _ew("axpby", t.size, out.grad, out.grad, g, acc, a=1.0, b=0.0)
        out._backward = backward
    return out


def mul(x: Tensor, y: Tensor) -> Tensor:
    out = result(x.shape, (x, y), "mul")
    _ew("mul", x.size, x, y, out)
    if out.requires_grad:
        def backward():
            for t, other in ((x, y), (y, x)):
                if t.requires_grad:
                    g, acc = t.grad_target()
                    _ew("mul", t.size, out.grad, other, g, acc)
        out._backward = backward
    return out


def fill(t: Tensor, value: float) -> None:
    _ew("fill", t.size, None, None, t, a=value)


def axpby_into(x: Tensor, y: Tensor, out: Tensor, a: float, b: float) -> None:
    _ew("axpby", out.size, x, y, out, a=a, b=b)


# -- fused layer ----------------------------------------------------------------------------------
def linear(x: Tensor, w: Tensor, b: Tensor | None, relu: bool = False) -> Tensor:
    """x @ w + b, optionally ReLU'd, in one kernel (w stored [in, out])."""
    m, k = x.shape
    n = w.shape[1]
    if w.shape[0] != k:
        raise ValueError(f"linear: input has {k} features, weight expects {w.shape[0]}")
    parents = (x, w) + ((b,) if b is not None else ())
    out = result((m, n), parents, "linear_relu" if relu else "linear")
    matmul_into(x, w, out, m, n, k, bias=b, relu=relu)
    if out.requires_grad:
        def backward():
            g = out.grad
            if relu:  # mask the upstream gradient where the unit was off
                masked = _relu_mask_buffer(out)
                _ew("relu_backward", out.size, out, g, masked)
                g = masked
            if x.requires_grad:
                gx, acc = x.grad_target()
                matmul_into(g, w, gx, m, k, n, trans_b=True, accumulate=acc)
            if w.requires_grad:
                gw, acc = w.grad_target()
                matmul_into(x, g, gw, k, n, m, trans_a=True, accumulate=acc)
            if b is not None and b.requires_grad:
                gb, acc = b.grad_target()
                sum_rows_into(g, gb, m, n, acc)
        out._backward = backward
    return out


def _relu_mask_buffer(out: Tensor) -> Tensor:
    if not hasattr(out, "_masked_grad"):
        out._masked_grad = Tensor(out.shape, label="masked_grad")
    return out._masked_grad


# -- dropout ------------------------------------------------------------------------------------
def dropout(x: Tensor, p: float, seed: int, state: Tensor) -> Tensor:
    """Inverted dropout; the mask is a hash of (seed, step counter in `state`, index)."""
    out = result(x.shape, (x,), "dropout")
    _dropout_into(x, out, p, seed, state)
    if out.requires_grad:
        def backward():
            gx, acc = x.grad_target()
            _dropout_into(out.grad, gx, p, seed, state, acc)
        out._backward = backward
    return out


def _dropout_into(x: Tensor, out: Tensor, p: float, seed: int, state: Tensor, accumulate=False) -> None:
    dev = get_device()
    dev.dispatch("dropout.wgsl", "main", [dev.uniform(DROPOUT, n=x.size, seed=seed, p=p), x, out, state],
                 grid_1d(x.size), ACCUMULATE=accumulate)


# -- softmax / cross-entropy ---------------------------------------------------------------------
def softmax(x: Tensor) -> Tensor:
    """Row-wise softmax (inference; not differentiated)."""
    dev = get_device()
    r, c = x.shape
    out = Tensor((r, c), label="softmax")
    dev.dispatch("softmax_xent.wgsl", "softmax",
                 [dev.uniform(XENT, R=r, C=c), x, dev.dummy_ro, out, dev.dummy_rw, dev.dummy_rw, dev.dummy_rw],
                 (math.ceil(r / 64),))
    return out


def cross_entropy(logits: Tensor, labels: Tensor, state: Tensor, history: Tensor) -> Tensor:
    """Mean softmax cross-entropy over rows with a valid label; one fused kernel that
    also writes d(loss)/d(logits) and the step's (loss, accuracy) into `history`.
    Calling `.backward()` on the result starts from that stored gradient."""
    dev = get_device()
    r, c = logits.shape
    loss = result((1,), (logits,), "loss")
    dlogits = Tensor((r, c), label="dlogits")
    dev.dispatch("softmax_xent.wgsl", "xent",
                 [dev.uniform(XENT, R=r, C=c), logits, labels, dlogits, loss, state, history], (1,))
    loss.dlogits = dlogits
    if loss.requires_grad:
        def backward():
            if logits.grad is None or logits.grad is dlogits:
                logits.grad, logits._grad_written = dlogits, True  # hand the buffer over, no copy
                return
            g, acc = logits.grad_target()
            _ew("axpby", r * c, dlogits, dlogits, g, acc, a=1.0, b=0.0)
        loss._backward = backward
    return loss
