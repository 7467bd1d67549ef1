"""Layers (Linear, ReLU, Dropout, Sequential) with all parameters in one GPU arena.

Parameters live in a single flat f32 buffer and their gradients in a second one
with the same offsets, so one optimizer dispatch updates every parameter and a
GPU-side snapshot of the model is one buffer copy. Weights are stored [in, out]
(x @ W reads them coalesced); checkpoints transpose to PyTorch's [out, in].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ops
from .device import get_device
from .tensor import Tensor


class ParamArena:
    """One buffer for all parameters, one for their gradients; tensors are views."""

    def __init__(self, shapes: list[tuple[str, tuple]], label: str = "params"):
        dev = get_device()
        align = dev.offset_alignment // 4
        self.offsets: dict[str, int] = {}
        n = 0
        for name, shape in shapes:
            self.offsets[name] = n
            n += -(-int(np.prod(shape)) // align) * align
        self.size = n
        self.shapes = dict(shapes)
        self.buffer = dev.buffer(n * 4, label)
        self.grad_buffer = dev.buffer(n * 4, label + ".grad")
        self.params: dict[str, Tensor] = {}
        for name, shape in shapes:
            t = Tensor(shape, self.buffer, self.offsets[name] * 4, requires_grad=True, label=name)
            t.grad = Tensor(shape, self.grad_buffer, self.offsets[name] * 4, label=f"grad({name})")
            self.params[name] = t

    def write(self, name: str, array: np.ndarray) -> None:
        self.params[name].write(array)


class Linear:
    def __init__(self, in_features: int, out_features: int):
        self.in_features, self.out_features = in_features, out_features
        self.weight: Tensor | None = None  # [in, out], bound by Sequential
        self.bias: Tensor | None = None

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"


class ReLU:
    def __repr__(self) -> str:
        return "ReLU()"


class Dropout:
    def __init__(self, p: float):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def __repr__(self) -> str:
        return f"Dropout({self.p})"


@dataclass
class MLPSpec:
    sizes: list[int]          # [in, hidden..., classes]
    dropout: float = 0.0

    def misfit(self, height: int, width: int, classes: int) -> str | None:
        """Why this network cannot read width x height images in `classes` classes (None if it can)."""
        if self.sizes[0] == height * width and self.sizes[-1] == classes:
            return None
        return (f"model {'-'.join(map(str, self.sizes))} does not fit the dataset "
                f"({width} x {height} images = {height * width} inputs, {classes} classes)")

    def layers(self) -> list:
        out: list = []
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            out.append(Linear(a, b))
            if i < len(self.sizes) - 2:
                out.append(ReLU())
                if self.dropout > 0:
                    out.append(Dropout(self.dropout))
        return out


class Sequential:
    """An MLP; layer indices match PyTorch's nn.Sequential (0.weight, 2.weight, ...)."""

    def __init__(self, spec: MLPSpec, seed: int = 0):
        self.spec = spec
        self.layers = spec.layers()
        shapes = []
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                shapes += [(f"{i}.weight", (layer.in_features, layer.out_features)), (f"{i}.bias", (layer.out_features,))]
        self.arena = ParamArena(shapes)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Linear):
                layer.weight = self.arena.params[f"{i}.weight"]
                layer.bias = self.arena.params[f"{i}.bias"]
        self.init("he_uniform", seed)

    @property
    def linears(self) -> list[tuple[int, Linear]]:
        return [(i, l) for i, l in enumerate(self.layers) if isinstance(l, Linear)]

    def parameters(self) -> list[Tensor]:
        return list(self.arena.params.values())

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def init(self, scheme: str = "he_uniform", seed: int = 0) -> None:
        """He (Kaiming) init for ReLU nets: uniform(+-sqrt(6/fan_in)) or normal(0, sqrt(2/fan_in)); zero biases."""
        rng = np.random.default_rng(seed)
        for i, layer in self.linears:
            fan_in = layer.in_features
            shape = (layer.in_features, layer.out_features)
            if scheme == "he_uniform":
                bound = np.sqrt(6.0 / fan_in)
                w = rng.uniform(-bound, bound, size=shape)
            elif scheme == "he_normal":
                w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
            else:
                raise ValueError(f"unknown init {scheme!r} (he_uniform, he_normal)")
            layer.weight.write(w.astype(np.float32))
            layer.bias.write(np.zeros(layer.out_features, np.float32))

    def forward(self, x: Tensor, train: bool = False, state: Tensor | None = None, seed: int = 0) -> Tensor:
        """Linear followed by ReLU runs as one fused kernel; Dropout only when training."""
        i = 0
        while i < len(self.layers):
            layer = self.layers[i]
            if isinstance(layer, Linear):
                fuse = i + 1 < len(self.layers) and isinstance(self.layers[i + 1], ReLU)
                x = ops.linear(x, layer.weight, layer.bias, relu=fuse)
                i += 2 if fuse else 1
                continue
            if isinstance(layer, ReLU):
                x = ops.relu(x)
            elif isinstance(layer, Dropout) and train and layer.p > 0:
                x = ops.dropout(x, layer.p, seed + i, state)
            i += 1
        return x

    # -- host I/O (checkpoints; never per frame) ----------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """PyTorch layout: weight [out, in]."""
        out = {}
        for name, t in self.arena.params.items():
            a = t.to_numpy()
            out[name] = np.ascontiguousarray(a.T) if name.endswith(".weight") else a
        return out

    def load_state_dict(self, tensors: dict[str, np.ndarray]) -> None:
        """Load PyTorch-layout arrays; every shape is checked before anything is written."""
        expected = {name: (t.shape[::-1] if name.endswith(".weight") else t.shape) for name, t in self.arena.params.items()}
        if set(tensors) != set(expected):
            raise ValueError(f"checkpoint tensors {sorted(tensors)} do not match the model's {sorted(expected)}")
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != tuple(shape):
                raise ValueError(f"{name}: checkpoint shape {tuple(tensors[name].shape)}, model needs {tuple(shape)}")
        for name, a in tensors.items():
            a = np.asarray(a, np.float32)
            self.arena.write(name, a.T if name.endswith(".weight") else a)

    def snapshot_to(self, encoder, buffer) -> None:
        """GPU-side copy of all parameters (for restoring the last good weights)."""
        encoder.copy_buffer_to_buffer(self.arena.buffer, 0, buffer, 0, self.arena.size * 4)

    def restore_from(self, encoder, buffer) -> None:
        encoder.copy_buffer_to_buffer(buffer, 0, self.arena.buffer, 0, self.arena.size * 4)


def spec_from_state_dict(tensors: dict[str, np.ndarray], metadata: dict | None = None) -> MLPSpec:
    """Architecture read from the shapes and names of a PyTorch nn.Sequential state dict.

    Index gaps of 3 (Linear, ReLU, Dropout, Linear) mean dropout; its probability is
    not a tensor, so it comes from the metadata when we wrote the file (else 0.1)."""
    idx = sorted(int(k.split(".")[0]) for k in tensors if k.endswith(".weight"))
    sizes = [int(tensors[f"{idx[0]}.weight"].shape[1])] + [int(tensors[f"{i}.weight"].shape[0]) for i in idx]
    gaps = {b - a for a, b in zip(idx, idx[1:])}
    if gaps - {2, 3} or len(gaps) > 1:
        raise ValueError(f"layer indices {idx} are not an nn.Sequential of Linear, ReLU[, Dropout] blocks")
    dropout = 0.0
    if gaps == {3}:
        dropout = float((metadata or {}).get("dropout", 0.1)) or 0.1
    return MLPSpec(sizes=sizes, dropout=dropout)
