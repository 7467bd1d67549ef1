"""Tensors on GPU storage buffers, and reverse-mode autograd over them.

A Tensor is a view (buffer, byte offset, shape, dtype). Ops record their parents
and a backward closure; `backward()` walks the graph in reverse topological
order (micrograd's idea) and each closure writes or accumulates its parents'
gradients with GPU kernels. Nothing is read back unless `to_numpy()` is called,
and that goes through the device's readback meter.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .device import get_device

_ITEMSIZE = {"f32": 4, "u32": 4, "u8": 1}
_NUMPY = {"f32": np.float32, "u32": np.uint32, "u8": np.uint8}


class Tensor:
    def __init__(self, shape, buffer=None, offset: int = 0, dtype: str = "f32",
                 requires_grad: bool = False, label: str = ""):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.label = label
        dev = get_device()
        self.buffer = buffer if buffer is not None else dev.buffer(self.nbytes, label)
        self.offset = offset
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self._grad_written = False
        self._parents: tuple[Tensor, ...] = ()
        self._backward: Callable[[], None] | None = None

    # -- shape ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * _ITEMSIZE[self.dtype]

    def binding(self) -> dict:
        return {"buffer": self.buffer, "offset": self.offset, "size": max(16, (self.nbytes + 3) // 4 * 4)}

    def view(self, shape) -> "Tensor":
        """Same storage, new shape (no copy). A view of a tensor that requires grad is a
        node of the graph: its gradient flows back to the tensor viewed (a copy), so an
        input image that requires grad (viz/saliency.py) reaches a CNN's first layer."""
        t = Tensor(shape, self.buffer, self.offset, self.dtype, label=self.label)
        assert t.size == self.size, (shape, self.shape)
        if self.requires_grad:
            t.requires_grad, t._parents = True, (self,)

            def backward():
                from .ops import _ew
                g, acc = self.grad_target()
                _ew("axpby", self.size, t.grad, t.grad, g, acc, a=1.0, b=0.0)
            t._backward = backward
        return t

    def __repr__(self) -> str:
        return f"Tensor({self.label or '?'}, shape={self.shape}, dtype={self.dtype})"

    # -- host transfer (tests, CLI; never the frame loop) -------------------------------
    @staticmethod
    def from_numpy(array, requires_grad: bool = False, label: str = "") -> "Tensor":
        a = np.asarray(array)
        dtype = {np.dtype(np.float32): "f32", np.dtype(np.uint32): "u32", np.dtype(np.uint8): "u8"}.get(a.dtype)
        if dtype is None:
            a = a.astype(np.float32)
            dtype = "f32"
        t = Tensor(a.shape, dtype=dtype, requires_grad=requires_grad, label=label)
        t.write(a)
        return t

    def write(self, array) -> None:
        a = np.ascontiguousarray(array, dtype=_NUMPY[self.dtype]).reshape(-1)
        assert a.size == self.size, (a.shape, self.shape)
        get_device().write(self.buffer, a, self.offset)

    def to_numpy(self) -> np.ndarray:
        dev = get_device()
        dev.stream.flush()
        raw = dev.read(self.buffer, self.offset, (self.nbytes + 3) // 4 * 4, label=self.label)
        return np.frombuffer(raw, dtype=_NUMPY[self.dtype])[: self.size].reshape(self.shape).copy()

    # -- autograd -----------------------------------------------------------------------
    def grad_target(self) -> tuple["Tensor", bool]:
        """The gradient buffer to write, and whether to add to it (already written this pass)."""
        if self.grad is None:
            self.grad = Tensor(self.shape, label=f"grad({self.label})")
        accumulate = self._grad_written
        self._grad_written = True
        return self.grad, accumulate

    def backward(self) -> None:
        """Reverse-mode pass from this tensor (a loss whose op seeds its own gradient)."""
        order: list[Tensor] = []
        seen: set[int] = set()

        def visit(t: Tensor) -> None:
            if id(t) in seen:
                return
            seen.add(id(t))
            for p in t._parents:
                visit(p)
            order.append(t)

        visit(self)
        for t in order:
            t._grad_written = False
        for t in reversed(order):
            if t._backward is not None:
                t._backward()


def result(shape, parents, label: str = "", dtype: str = "f32") -> Tensor:
    """A fresh output tensor that requires grad iff any parent does."""
    out = Tensor(shape, dtype=dtype, label=label)
    out.requires_grad = any(p.requires_grad for p in parents)
    if out.requires_grad:
        out._parents = tuple(parents)
    return out
