"""The network: any supported nn.Sequential (compute/arch.py), its parameters in one GPU arena.

Parameters live in a single flat f32 buffer and their gradients in a second one
with the same offsets, so one optimizer dispatch updates every parameter and a
GPU-side snapshot of the model is one buffer copy. Names are PyTorch's
(`<layer index>.weight`). Linear weights are stored [in, out] (x @ W reads them
coalesced) and transposed to PyTorch's [out, in] at the checkpoint boundary;
Conv2d weights are stored as PyTorch has them, [out, in, k, k].
"""
from __future__ import annotations

import math

import numpy as np

from . import ops
from .arch import Architecture, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU
from .budget import Limits, arena_layout, check_model
from .device import get_device
from .tensor import Tensor


class ParamArena:
    """One buffer for all parameters, one for their gradients; tensors are views."""

    def __init__(self, shapes: list[tuple[str, tuple]], label: str = "params"):
        dev = get_device()
        self.offsets, self.size = arena_layout([(name, math.prod(shape)) for name, shape in shapes],
                                               dev.offset_alignment)
        self.shapes = dict(shapes)
        self.buffer = dev.buffer(self.size * 4, label)
        self.grad_buffer = dev.buffer(self.size * 4, label + ".grad")
        self.params: dict[str, Tensor] = {}
        for name, shape in shapes:
            t = Tensor(shape, self.buffer, self.offsets[name] * 4, requires_grad=True, label=name)
            t.grad = Tensor(shape, self.grad_buffer, self.offsets[name] * 4, label=f"grad({name})")
            self.params[name] = t

    def write(self, name: str, array: np.ndarray) -> None:
        self.params[name].write(array)


def _stored_shape(layer, name: str, torch_shape: tuple) -> tuple:
    """The arena's layout of a PyTorch tensor: Linear weights transposed, the rest as is."""
    if isinstance(layer, Linear) and name == "weight":
        return torch_shape[::-1]
    return torch_shape


class Sequential:
    """A network of Linear, Conv2d, ReLU, MaxPool2d, Flatten and Dropout layers."""

    def __init__(self, arch: Architecture, seed: int = 0, init: str = "he_uniform"):
        if not isinstance(arch, Architecture):
            raise TypeError(f"Sequential takes an Architecture, got {type(arch).__name__}")
        check_model(arch, Limits.current())      # before any buffer: one line, not a validation error
        self.arch = arch
        self.layers = arch.layers
        shapes = []
        for name, shape in arch.param_shapes().items():
            index, kind = name.split(".")
            shapes.append((name, _stored_shape(self.layers[int(index)], kind, shape)))
        self.arena = ParamArena(shapes)
        self.init(init, seed)

    # -- description --------------------------------------------------------------------------------
    def weight(self, index: int) -> Tensor:
        return self.arena.params[f"{index}.weight"]

    def bias(self, index: int) -> Tensor:
        return self.arena.params[f"{index}.bias"]

    @property
    def linears(self) -> list[tuple[int, Linear]]:
        return [(i, l) for i, l in enumerate(self.layers) if isinstance(l, Linear)]

    @property
    def convs(self) -> list[tuple[int, Conv2d]]:
        return [(i, l) for i, l in enumerate(self.layers) if isinstance(l, Conv2d)]

    def parameters(self) -> list[Tensor]:
        return list(self.arena.params.values())

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- initialisation -----------------------------------------------------------------------------
    def init(self, scheme: str = "he_uniform", seed: int = 0) -> None:
        """He (Kaiming) init for ReLU nets: uniform(+-sqrt(6/fan_in)) or normal(0, sqrt(2/fan_in));
        zero biases. fan_in: a Linear's inputs, a Conv2d's in_channels x k x k."""
        rng = np.random.default_rng(seed)
        for i, layer in enumerate(self.layers):
            if not layer.has_params:
                continue
            w = self.weight(i)
            if isinstance(layer, Linear):
                fan_in = layer.in_features
            else:
                fan_in = layer.in_channels * layer.kernel_size ** 2
            if scheme == "he_uniform":
                bound = np.sqrt(6.0 / fan_in)
                values = rng.uniform(-bound, bound, size=w.shape)
            elif scheme == "he_normal":
                values = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=w.shape)
            else:
                raise ValueError(f"unknown init {scheme!r} (he_uniform, he_normal)")
            w.write(values.astype(np.float32))
            self.bias(i).write(np.zeros(self.bias(i).shape, np.float32))

    # -- the forward pass ---------------------------------------------------------------------------
    def forward(self, x: Tensor, train: bool = False, state: Tensor | None = None, seed: int = 0,
                trace: list | None = None, stop: int | None = None) -> Tensor:
        """x: [B, H*W] (a batch of flattened images) -> class scores [B, classes], or the output
        of the layers before index `stop` (a compiled head takes it from there).

        A Linear or Conv2d followed by ReLU runs as one fused kernel; Dropout only when
        training. `trace`, if given, receives (layer index, output) for every layer whose
        output is materialised (the visualizer's activations)."""
        b = x.shape[0]
        spatial = isinstance(self.layers[0], (Conv2d, MaxPool2d))
        h = x.view((b, *self.arch.input_shape)) if spatial else x      # [B, H*W] is [B, 1, H, W] in memory
        i, end = 0, len(self.layers) if stop is None else stop
        while i < end:
            layer = self.layers[i]
            fuse = i + 1 < end and isinstance(self.layers[i + 1], ReLU)
            if isinstance(layer, Linear):
                if len(h.shape) != 2:
                    h = h.view((b, math.prod(h.shape[1:])))
                h = ops.linear(h, self.weight(i), self.bias(i), relu=fuse)
            elif isinstance(layer, Conv2d):
                from . import conv
                h = conv.conv2d(h, self.weight(i), self.bias(i), stride=layer.stride, padding=layer.padding, relu=fuse)
            elif isinstance(layer, MaxPool2d):
                from . import conv
                h = conv.max_pool2d(h, layer.kernel_size, layer.step)
                fuse = False
            elif isinstance(layer, Flatten):
                if len(h.shape) != 2:           # a leading Flatten() of an MLP: the input is flat already
                    from . import conv
                    h = conv.flatten(h)
                fuse = False
            elif isinstance(layer, ReLU):
                h = ops.relu(h)
                fuse = False
            elif isinstance(layer, Dropout):
                if train and layer.p > 0:
                    h = ops.dropout(h, layer.p, seed + i, state)
                fuse = False
            if fuse:
                i += 1                      # the ReLU ran inside the layer's kernel
            if trace is not None:
                trace.append((i, h))
            i += 1
        return h

    # -- host I/O (checkpoints; never per frame) ----------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """PyTorch layout: Linear weight [out, in]."""
        out = {}
        for name, t in self.arena.params.items():
            a = t.to_numpy()
            index, kind = name.split(".")
            out[name] = np.ascontiguousarray(a.T) if isinstance(self.layers[int(index)], Linear) and kind == "weight" else a
        return out

    def load_state_dict(self, tensors: dict[str, np.ndarray]) -> None:
        """Load PyTorch-layout arrays; every name and shape is checked before anything is written."""
        expected = self.arch.param_shapes()
        if set(tensors) != set(expected):
            missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
            raise ValueError(f"tensors do not match the architecture {self.arch.text}"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; unexpected {', '.join(extra)}" if extra else ""))
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != tuple(shape):
                i = int(name.split(".")[0])
                raise ValueError(f"{name} has shape {tuple(tensors[name].shape)}, but layer {i} {self.layers[i]} "
                                 f"needs {tuple(shape)}")
        for name, a in tensors.items():
            a = np.asarray(a, np.float32)
            index, kind = name.split(".")
            self.arena.write(name, a.T if isinstance(self.layers[int(index)], Linear) and kind == "weight" else a)

    def restore_from(self, encoder, buffer) -> None:
        """All parameters from a GPU-side copy (the run's divergence snapshot)."""
        encoder.copy_buffer_to_buffer(buffer, 0, self.arena.buffer, 0, self.arena.size * 4)


def mlp(sizes: list[int], dropout: float = 0.0, seed: int = 0, image_shape=None) -> Sequential:
    """The MLP shorthand: Linear, ReLU[, Dropout], ..., Linear for sizes [in, hidden..., classes]."""
    if image_shape is None:
        side = math.isqrt(sizes[0])
        image_shape = (side, side) if side * side == sizes[0] else (1, sizes[0])
    return Sequential(Architecture.mlp(sizes, dropout, image_shape), seed=seed)
