"""Architectures as PyTorch writes them: the comma-separated `nn.Sequential` constructor calls.

    Conv2d(1,8,5,padding=2),ReLU(),MaxPool2d(2),Flatten(),Linear(1568,64),ReLU(),Linear(64,10)

The string is parsed, never evaluated (Python's own parser reads it as calls with
literal arguments; anything else is refused), each layer is checked against the
shape flowing into it, and errors name the offending layer by its index, as
PyTorch's state_dict names its tensors (`3.weight`). `--hidden 256,128` is the
MLP shorthand for `Linear(784,256),ReLU(),Linear(256,128),ReLU(),Linear(128,10)`.
A network whose first layer is Linear reads the image flattened (an explicit
leading Flatten() is accepted too).
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field, replace

from .recipe import as_f32

MAX_WIDTH = 65535


class ArchError(ValueError):
    """An architecture string or layer that cannot be built; the message names the layer."""


# -- layers ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Linear:
    in_features: int
    out_features: int
    has_params = True

    def out_shape(self, shape: tuple) -> tuple:
        n = math.prod(shape)
        if len(shape) != 1:
            raise ArchError(f"a Linear needs flat input, but {_shape_text(shape)} arrives: flatten first "
                            f"(Flatten(),Linear({n},{self.out_features}))")
        if n != self.in_features:
            raise ArchError(f"takes {self.in_features} inputs, but {_shape_text(shape)} = {n} values arrive; "
                            f"use Linear({n},{self.out_features})")
        return (self.out_features,)

    def param_shapes(self) -> dict[str, tuple]:
        """PyTorch's shapes (weight [out, in])."""
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def __str__(self) -> str:
        return f"Linear({self.in_features},{self.out_features})"


@dataclass(frozen=True)
class Conv2d:
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    has_params = True

    def out_shape(self, shape: tuple) -> tuple:
        if len(shape) != 3:
            raise ArchError(f"needs [channels, height, width] input, but {_shape_text(shape)} arrives "
                            "(a Conv2d cannot follow Flatten or Linear)")
        c, h, w = shape
        if c != self.in_channels:
            raise ArchError(f"takes {self.in_channels} input channels, but {c} arrive"
                            f"{' (the images have one channel)' if c == 1 else ''}; "
                            f"use {replace(self, in_channels=c)}")
        oh = (h + 2 * self.padding - self.kernel_size) // self.stride + 1
        ow = (w + 2 * self.padding - self.kernel_size) // self.stride + 1
        if oh < 1 or ow < 1:
            fits = min(h, w) + 2 * self.padding
            raise ArchError(f"a {self.kernel_size}x{self.kernel_size} kernel does not fit a {h}x{w} input "
                            f"(padding {self.padding}); use kernel_size {fits} or less, or more padding")
        return (self.out_channels, oh, ow)

    def param_shapes(self) -> dict[str, tuple]:
        k = self.kernel_size
        return {"weight": (self.out_channels, self.in_channels, k, k), "bias": (self.out_channels,)}

    def __str__(self) -> str:
        extra = (f",stride={self.stride}" if self.stride != 1 else "") + (f",padding={self.padding}" if self.padding else "")
        return f"Conv2d({self.in_channels},{self.out_channels},{self.kernel_size}{extra})"


@dataclass(frozen=True)
class MaxPool2d:
    kernel_size: int
    stride: int | None = None
    has_params = False

    @property
    def step(self) -> int:
        return self.stride or self.kernel_size

    def out_shape(self, shape: tuple) -> tuple:
        if len(shape) != 3:
            raise ArchError(f"needs [channels, height, width] input, but {_shape_text(shape)} arrives")
        c, h, w = shape
        oh, ow = (h - self.kernel_size) // self.step + 1, (w - self.kernel_size) // self.step + 1
        if oh < 1 or ow < 1:
            raise ArchError(f"a {self.kernel_size}x{self.kernel_size} window does not fit a {h}x{w} input")
        return (c, oh, ow)

    def param_shapes(self) -> dict:
        return {}

    def __str__(self) -> str:
        return f"MaxPool2d({self.kernel_size}" + (f",stride={self.stride}" if self.stride not in (None, self.kernel_size) else "") + ")"


class _Parameterless:
    """A layer without tensors that leaves the shape as it is (unless it says otherwise)."""
    has_params = False

    def out_shape(self, shape: tuple) -> tuple:
        return shape

    def param_shapes(self) -> dict:
        return {}

    def __str__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True)
class Flatten(_Parameterless):
    def out_shape(self, shape: tuple) -> tuple:
        return (math.prod(shape),)


@dataclass(frozen=True)
class ReLU(_Parameterless):
    pass


@dataclass(frozen=True)
class Dropout(_Parameterless):
    p: float = 0.5

    def __str__(self) -> str:
        return f"Dropout({self.p:g})"


LAYERS = {"Linear": Linear, "Conv2d": Conv2d, "MaxPool2d": MaxPool2d, "Flatten": Flatten, "ReLU": ReLU,
          "Dropout": Dropout}


def _shape_text(shape: tuple) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


# -- the network ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    layers: tuple
    input_shape: tuple = (1, 28, 28)            # channels, height, width of the images it reads
    shapes: tuple = field(default=(), compare=False)   # the output shape of every layer

    @staticmethod
    def build(layers, input_shape=(1, 28, 28)) -> "Architecture":
        """Check every layer against the shape flowing into it (errors name the layer's index)."""
        layers = tuple(layers)
        if not layers:
            raise ArchError("an architecture needs at least one layer")
        shapes, shape = [], tuple(input_shape)
        if isinstance(layers[0], Linear):      # an MLP reads the image flattened
            shape = (math.prod(shape),)
        for i, layer in enumerate(layers):
            try:
                shape = layer.out_shape(shape)
            except ArchError as e:
                raise ArchError(f"layer {i} {layer}: {e}") from None
            shapes.append(shape)
        if len(shapes[-1]) != 1:
            raise ArchError(f"the last layer {len(layers) - 1} {layers[-1]} gives {_shape_text(shapes[-1])}; the "
                            "network must end in class scores (end with Flatten() and Linear(...,classes))")
        return Architecture(layers, tuple(input_shape), tuple(shapes))

    @staticmethod
    def mlp(sizes: list[int], dropout: float = 0.0, image_shape=(28, 28)) -> "Architecture":
        """Linear, ReLU[, Dropout], ..., Linear for sizes [in, hidden..., classes]."""
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ReLU())
                if dropout > 0:
                    layers.append(Dropout(dropout))
        return Architecture.build(layers, (1, *image_shape))

    @property
    def text(self) -> str:
        return ",".join(str(layer) for layer in self.layers)

    @property
    def classes(self) -> int:
        return self.shapes[-1][0]

    @property
    def is_mlp(self) -> bool:
        return not any(isinstance(l, (Conv2d, MaxPool2d)) for l in self.layers)

    @property
    def short(self) -> str:
        """'784-128-10' for an MLP of Linear layers with a ReLU (and one dropout rate) between each
        two, a leading Flatten() allowed; any other network by its layers (a trailing ReLU, two in a
        row, a missing one: the widths would hide what changes its results)."""
        lin = [l for l in self.layers if isinstance(l, Linear)]
        if self.is_mlp and lin:
            sizes = [lin[0].in_features] + [l.out_features for l in lin]
            drops = [l.p for l in self.layers if isinstance(l, Dropout)]
            body = self.layers[1:] if isinstance(self.layers[0], Flatten) else self.layers
            try:
                canonical = Architecture.mlp(sizes, drops[0] if drops else 0.0, self.input_shape[1:]).layers
            except ValueError:
                canonical = None
            if canonical is not None and list(body) == list(canonical):
                return "-".join(map(str, sizes))
        return self.text

    def widths(self) -> list[int]:
        """Values per sample after every layer (the widest sets the evaluation chunk)."""
        return [math.prod(s) for s in self.shapes]

    def macs(self) -> int:
        """Multiply-adds of one image's forward pass (what sizes an evaluation piece for a frame)."""
        total = 0
        for layer, shape in zip(self.layers, self.shapes):
            if isinstance(layer, Linear):
                total += layer.in_features * layer.out_features
            elif isinstance(layer, Conv2d):
                total += math.prod(shape) * layer.in_channels * layer.kernel_size ** 2
        return total

    def param_shapes(self) -> dict[str, tuple]:
        """PyTorch state_dict names and shapes: '<layer index>.weight' / '.bias'."""
        out = {}
        for i, layer in enumerate(self.layers):
            for name, shape in layer.param_shapes().items():
                out[f"{i}.{name}"] = shape
        return out

    def misfit(self, height: int, width: int, classes: int) -> str | None:
        """Why this network cannot read height x width images in `classes` classes (None if it can)."""
        fits = (self.input_shape[1] * self.input_shape[2] == height * width if self.is_mlp
                else (self.input_shape[1], self.input_shape[2]) == (height, width))
        if fits and self.classes == classes:
            return None
        return (f"model {self.short} does not fit the dataset ({width} x {height} images = {height * width} "
                f"inputs, {classes} classes)")

    def for_images(self, height: int, width: int) -> "Architecture":
        """The same layers reading height x width single-channel images (shapes re-checked)."""
        return Architecture.build(self.layers, (1, height, width))


# -- parsing --------------------------------------------------------------------------------------------------
def parse(text: str, image_shape=(28, 28)) -> Architecture:
    """An architecture from PyTorch constructor calls, checked against 1-channel images; or an
    MLP's layer widths as the program names it everywhere ('784-512-256-128-10': Linear layers
    with a ReLU between each two); or a named network ('cnn': the shipped CNN, recipe.RECIPE_ARCH)."""
    from .recipe import RECIPE_ARCH
    text = text.strip()
    if not text:
        raise ArchError("empty architecture")
    if text.lower() in RECIPE_ARCH:     # a name: its layers are not the user's to fix, so say so
        try:
            return parse(RECIPE_ARCH[text.lower()], image_shape)
        except ArchError:
            h, w = image_shape or (28, 28)
            raise ArchError(f"{text.lower()!r} is the shipped CNN, whose layers are made for 28 x 28 images, not "
                            f"{w} x {h}; write an architecture for these images (--help shows how)") from None
    if _WIDTHS.fullmatch(text):
        sizes = [int(v) for v in text.split("-")]
        calls = [f"Linear({a},{b})" for a, b in zip(sizes, sizes[1:])]
        return parse(",ReLU(),".join(calls), image_shape)
    try:
        tree = ast.parse(f"[{text}]", mode="eval")
    except SyntaxError:
        raise ArchError(f"cannot read {text!r}: write the nn.Sequential layers as calls separated by commas, "
                        "e.g. Linear(784,128),ReLU(),Linear(128,10)") from None
    nodes, source = tree.body.elts, f"[{text}]"
    if len(nodes) == 1 and _call_name(nodes[0]) == "Sequential":    # nn.Sequential(...) written whole
        if nodes[0].keywords:
            raise ArchError("Sequential(...) takes the layers only, as calls separated by commas")
        nodes = nodes[0].args
        if not nodes:
            raise ArchError("empty architecture: Sequential() holds no layers")
    layers = []
    for i, node in enumerate(nodes):
        src = ast.get_source_segment(source, node) or f"layer {i}"
        layers.append(_layer(i, node, src))
    return Architecture.build(layers, (1, *image_shape))


def _call_name(node) -> str | None:
    """'Linear' for Linear(...), nn.Linear(...) or torch.nn.Linear(...); None for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
        return node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
    return None


# The constructor's signature as a user reads it, and PyTorch's keyword arguments each layer accepts
# at the one value this program implements (their defaults: bias=True, dilation=1, ...).
SIGNATURES = {"Linear": "Linear(in_features, out_features)",
              "Conv2d": "Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0)",
              "MaxPool2d": "MaxPool2d(kernel_size, stride=kernel_size)",
              "Flatten": "Flatten()", "ReLU": "ReLU()", "Dropout": "Dropout(p=0.5)"}
_ONLY = {"Linear": {"bias": True},
         "Conv2d": {"bias": True, "dilation": 1, "groups": 1, "padding_mode": "zeros"},
         "MaxPool2d": {"padding": 0, "dilation": 1, "return_indices": False, "ceil_mode": False},
         "Flatten": {"start_dim": 1, "end_dim": -1},
         "ReLU": {"inplace": None}, "Dropout": {"inplace": None}}     # None: any value (it changes nothing here)


def _torch_keywords(i: int, src: str, name: str, args: list, kwargs: dict) -> None:
    """Take out of kwargs (and Flatten's args) what PyTorch accepts and this program implements at
    one value only, refusing other values by name; padding='same' / 'valid' become numbers."""
    if name == "Flatten":
        for key, value in zip(("start_dim", "end_dim"), args):
            kwargs.setdefault(key, value)
        args.clear()
    for key, only in _ONLY.get(name, {}).items():
        if key in kwargs:
            value = kwargs.pop(key)
            if only is not None and value != only:
                raise ArchError(f"layer {i} {src!r}: {key}={value!r} is not supported (only {key}={only!r}, "
                                f"PyTorch's default: remove it)")
    if name == "Conv2d" and isinstance(kwargs.get("padding"), str):
        mode = kwargs["padding"]
        kernel = kwargs.get("kernel_size", args[2] if len(args) > 2 else None)
        stride = kwargs.get("stride", args[3] if len(args) > 3 else 1)
        if mode == "valid":
            kwargs["padding"] = 0
        elif mode == "same" and isinstance(kernel, int) and kernel % 2 == 1 and stride == 1:
            kwargs["padding"] = kernel // 2
        else:
            raise ArchError(f"layer {i} {src!r}: padding={mode!r} is supported as 'valid' and, for an odd "
                            f"kernel_size at stride 1, 'same'; or give the padding in pixels (padding=1)")


_WIDTHS = re.compile(r"\d+(?:\s*-\s*\d+)+")     # 784-128-10: an MLP's widths


def _layer(i: int, node, src: str):
    name = _call_name(node)
    if name is None:
        raise ArchError(f"layer {i} {src!r}: not a layer call like Linear(784,128) (or write an MLP's widths: "
                        "784-128-10, or 'cnn' for the shipped CNN)")
    cls = LAYERS.get(name)
    if cls is None:
        hint = " (write its layers alone, or as one Sequential(...))" if name == "Sequential" else ""
        raise ArchError(f"layer {i} {src!r}: unsupported layer {name}{hint} (supported: {', '.join(LAYERS)})")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        raise ArchError(f"layer {i} {src!r}: arguments must be numbers") from None
    _torch_keywords(i, src, name, args, kwargs)
    if name in ("Conv2d", "MaxPool2d"):
        for key in ("kernel_size", "stride", "padding"):
            v = kwargs.get(key)
            if isinstance(v, tuple):
                if len(set(v)) != 1:
                    raise ArchError(f"layer {i} {src!r}: only square {key} are supported")
                kwargs[key] = v[0]
        for k, a in enumerate(args):
            if isinstance(a, tuple):
                if len(set(a)) != 1:
                    raise ArchError(f"layer {i} {src!r}: only square {('kernel_size', 'stride', 'padding')[min(k, 2) if name == 'MaxPool2d' else max(0, min(k - 2, 2))]} are supported")
                args[k] = a[0]
    try:
        layer = cls(*args, **kwargs)
    except TypeError as e:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        what = f"{name} has no argument {m.group(1)!r} here" if m else f"{name} got {len(args)} positional argument" \
            + "s" * (len(args) != 1)
        raise ArchError(f"layer {i} {src!r}: {what}; it takes {SIGNATURES[name]}") from None
    _check_values(i, src, layer)
    return layer


def _check_values(i: int, src: str, layer) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ArchError(f"layer {i} {src!r}: {what}")

    ints = {k: v for k, v in vars(layer).items() if k != "p" and v is not None}
    for k, v in ints.items():
        need(isinstance(v, int) and not isinstance(v, bool), f"{k} must be a whole number, got {v!r}")
    if isinstance(layer, Linear):
        need(1 <= layer.in_features <= 1 << 24 and 1 <= layer.out_features <= MAX_WIDTH,
             f"sizes must be between 1 and {MAX_WIDTH}")
    elif isinstance(layer, Conv2d):
        need(1 <= layer.in_channels <= 4096 and 1 <= layer.out_channels <= 4096, "channels must be in 1..4096")
        need(1 <= layer.kernel_size <= 15, "kernel_size must be in 1..15")
        need(1 <= layer.stride <= 15 and 0 <= layer.padding <= 15, "stride must be in 1..15, padding in 0..15")
    elif isinstance(layer, MaxPool2d):
        need(1 <= layer.kernel_size <= 15 and (layer.stride is None or 1 <= layer.stride <= 15),
             "kernel_size and stride must be in 1..15")
    elif isinstance(layer, Dropout):
        need(isinstance(layer.p, (int, float)) and 0 <= as_f32(layer.p) < 1,   # the GPU scales by 1 / (1 - p)
             f"p must be in [0, 1) as a float32 holds it, got {layer.p!r}")
