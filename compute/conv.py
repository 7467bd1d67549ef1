"""Spatial ops with autograd: conv2d, max_pool2d, flatten (NCHW, f32, contiguous).

Layouts follow PyTorch (x [N, C, H, W], w [O, C, KH, KW], b [O]) so checkpoints
carry over untransposed and `flatten` keeps nn.Flatten's (C, H, W) order.
The kernels live in shaders/conv2d.wgsl (implicit GEMM: forward, input gradient,
weight + bias gradient; the tiling is explained there) and shaders/maxpool.wgsl;
this module validates shapes, picks tile variants (override constants), binds
buffers and sizes grids. The `*_into` functions are the raw passes, for callers
that manage their own buffers (a compiled step); the ops build on them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from . import ops
from .device import get_device
from .structs import CONV2D, POOL2D
from .tensor import Tensor, result

MAX_GROUPS = 65535          # workgroups per grid dimension (WebGPU's default limit)
CONV_INVOCATIONS = 64       # conv2d.wgsl's WG
SLAB_WORDS = 2048           # conv2d.wgsl's pslab / x_slab: words of a slab (depth x tile width)
SLAB_DEPTHS = (32, 16, 8)   # TK / TQ: the slab depths the kernels take (MAX_SLAB first)
MIN_SLICE = 64              # weight gradient: fewest positions worth a slice of their own
REDUCE_OUTPUTS = 16         # conv2d.wgsl's RED_OUT: weight-gradient outputs per reduction workgroup
GPU_BUSY = 256              # workgroups that keep a big GPU busy (132 SMs on an H100)


def fold(groups: int) -> tuple[int, int]:
    """`groups` workgroups as a 2-D grid within MAX_GROUPS per dimension; the
    kernel numbers them wg.x + wg.y * nwg.x and skips those past `groups`."""
    groups = max(1, groups)
    x = min(groups, MAX_GROUPS)
    return x, math.ceil(groups / x)


def _check_grid(*sizes: int) -> None:
    if max(sizes) > MAX_GROUPS:
        raise ValueError(f"conv2d: a grid of {sizes} workgroups exceeds {MAX_GROUPS} per dimension")


# -- convolution ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvGeometry:
    """One convolution's shapes (what the kernels read as Conv2dDims)."""
    N: int
    C: int
    H: int
    W: int
    O: int
    KH: int
    KW: int
    stride: int = 1
    pad: int = 0

    @property
    def OH(self) -> int:
        return (self.H + 2 * self.pad - self.KH) // self.stride + 1

    @property
    def OW(self) -> int:
        return (self.W + 2 * self.pad - self.KW) // self.stride + 1

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return self.N, self.O, self.OH, self.OW

    def uniform(self, slice: int = 0, splits: int = 0):
        return get_device().uniform(CONV2D, N=self.N, C=self.C, H=self.H, W=self.W, O=self.O, OH=self.OH,
                                    OW=self.OW, KH=self.KH, KW=self.KW, stride=self.stride, pad=self.pad,
                                    slice=slice, splits=splits)


def conv_geometry(x_shape, w_shape, stride: int = 1, padding: int = 0) -> ConvGeometry:
    """Check an input [N, C, H, W] against a weight [O, C, KH, KW]; ValueError says what is wrong."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"conv2d: input {tuple(x_shape)} and weight {tuple(w_shape)} must both be 4-D "
                         f"([N, C, H, W] and [O, C, KH, KW])")
    n, c, h, w = (int(s) for s in x_shape)
    o, wc, kh, kw = (int(s) for s in w_shape)
    if wc != c:
        raise ValueError(f"conv2d: input has {c} channels, weight {tuple(w_shape)} expects {wc}")
    if min(n, c, h, w, o, kh, kw) < 1 or stride < 1 or padding < 0:
        raise ValueError(f"conv2d: empty shape or bad stride/padding: input {tuple(x_shape)}, "
                         f"weight {tuple(w_shape)}, stride {stride}, padding {padding}")
    geo = ConvGeometry(n, c, h, w, o, kh, kw, int(stride), int(padding))
    if geo.OH < 1 or geo.OW < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} does not fit the {h}x{w} input padded by {padding}")
    return geo


def _channel_tile(channels: int) -> int:
    """TO: the channel tile (4, 8 or 16) that wastes least of `channels`."""
    return 4 if channels <= 4 else 8 if channels <= 8 else 16


def _lanes(to: int) -> int:
    """Invocations along the position / column axis of a 64-invocation tile of TO channels."""
    return CONV_INVOCATIONS // (to // 4)


def slab_depth(width: int, reduction: int) -> int:
    """TK / TQ: the deepest slab whose depth x `width` words fit the workgroup slab,
    no deeper than the `reduction` needs (rounded up to 8). Each slab is a round of
    dependent global loads and two barriers: fewer, deeper slabs run a small layer
    several times faster on a GPU."""
    need = max(8, math.ceil(reduction / 8) * 8)
    return next(d for d in SLAB_DEPTHS if d * width <= SLAB_WORDS and (d <= need or d == 8))


def conv_tile(channels: int, positions: int) -> tuple[int, int]:
    """(TO, PPT) for a conv pass: the channel tile that wastes least of `channels`,
    then the most positions per invocation that still leaves a big GPU GPU_BUSY
    workgroups (a CPU adapter takes the biggest tile: fewer, fuller workgroups)."""
    to = _channel_tile(channels)
    if get_device().is_cpu:
        return to, 4
    lanes = _lanes(to)
    tiles = math.ceil(channels / to)
    for ppt in (4, 2):
        if math.ceil(positions / (lanes * ppt)) * tiles >= GPU_BUSY:
            return to, ppt
    return to, 1


def _conv_pass(src: Tensor, mask: Tensor | None, w: Tensor, b: Tensor | None, dst: Tensor, geo: ConvGeometry,
               dx: bool, relu: bool, accumulate: bool, tile: tuple[int, ...] | None) -> None:
    """`tile`: (TO, PPT) or (TO, PPT, TK) to force a variant (tests); picked for the shapes otherwise."""
    dev = get_device()
    channels, positions = (geo.C, geo.N * geo.H * geo.W) if dx else (geo.O, geo.N * geo.OH * geo.OW)
    to, ppt = (tile or conv_tile(channels, positions))[:2]
    per_tile = ppt * _lanes(to)
    reduction = (geo.O if dx else geo.C) * geo.KH * geo.KW
    tk = tile[2] if tile and len(tile) > 2 else slab_depth(per_tile, reduction)
    gx, gy = fold(math.ceil(positions / per_tile))
    gz = math.ceil(channels / to)
    _check_grid(gz)
    res = [geo.uniform(), src, mask if mask is not None else dev.dummy_ro, w,
           b if b is not None else dev.dummy_ro, dst]
    dev.dispatch("conv2d.wgsl", "conv", res, (gx, gy, gz), DX=dx, HAS_BIAS=b is not None, RELU=relu,
                 MASK=mask is not None, ACCUMULATE=accumulate, TO=to, PPT=ppt, TK=tk)


def conv2d_into(x: Tensor, w: Tensor, b: Tensor | None, out: Tensor, geo: ConvGeometry, relu: bool = False,
                tile: tuple[int, int] | None = None) -> None:
    """out = conv(x, w) + b, ReLU'd if asked (one dispatch)."""
    _conv_pass(x, None, w, b, out, geo, dx=False, relu=relu, accumulate=False, tile=tile)


def conv2d_input_grad_into(g: Tensor, w: Tensor, gx: Tensor, geo: ConvGeometry, relu_out: Tensor | None = None,
                           accumulate: bool = False, tile: tuple[int, int] | None = None) -> None:
    """gx (+)= the transposed convolution of g (the output's gradient, masked by
    relu_out > 0 when the forward fused a ReLU with output relu_out)."""
    _conv_pass(g, relu_out, w, None, gx, geo, dx=True, relu=False, accumulate=accumulate, tile=tile)


def weight_grad_tile(channels: int, columns: int) -> tuple[int, int]:
    """(TO, PPT) for the weight gradient's channels x columns (C*KH*KW, +1 for the
    bias): the snuggest tile, since O x J is small and the work is in the reduction."""
    to = _channel_tile(channels)
    lanes = _lanes(to)
    return to, next((p for p in (1, 2) if lanes * p >= columns), 4)


def weight_grad_split(geo: ConvGeometry, columns: int) -> int:
    """Slices of the N*OH*OW positions for the weight gradient: enough workgroups
    to fill the GPU (each CPU core on a CPU adapter), none shorter than MIN_SLICE."""
    positions = geo.N * geo.OH * geo.OW
    to, ppt = weight_grad_tile(geo.O, columns)
    tiles = math.ceil(columns / (_lanes(to) * ppt)) * math.ceil(geo.O / to)
    target = (os.cpu_count() or 2) if get_device().is_cpu else GPU_BUSY
    return max(1, min(math.ceil(target / tiles), positions // MIN_SLICE, MAX_GROUPS))


def conv2d_weight_grad_into(x: Tensor, g: Tensor, geo: ConvGeometry, gw: Tensor | None, gb: Tensor | None,
                            relu_out: Tensor | None = None, acc_w: bool = False, acc_b: bool = False,
                            split: int | None = None) -> None:
    """gw (+)= dL/dw and gb (+)= dL/db from the input x and the output's gradient g
    (masked by relu_out > 0 when given); either target may be None. One kernel,
    plus a reduction pass when the positions are split (`split` forces the count)."""
    if gw is None and gb is None:
        return
    dev = get_device()
    columns = geo.C * geo.KH * geo.KW + (gb is not None)
    positions = geo.N * geo.OH * geo.OW
    wanted = weight_grad_split(geo, columns) if split is None else max(1, split)
    to, ppt = weight_grad_tile(geo.O, columns)
    tq = slab_depth(_lanes(to) * ppt, math.ceil(positions / wanted))
    per = math.ceil(positions / (wanted * tq)) * tq      # whole slabs per slice
    splits = math.ceil(positions / per)
    grid = (math.ceil(columns / (_lanes(to) * ppt)), math.ceil(geo.O / to), splits)
    _check_grid(*grid)
    consts = dict(WANT_DW=gw is not None, WANT_DB=gb is not None, ACC_W=acc_w, ACC_B=acc_b,
                  MASK=relu_out is not None, SPLIT=splits > 1, TO=to, PPT=ppt, TQ=tq)
    partials = ops._scratch(splits * geo.O * columns) if splits > 1 else dev.dummy_rw
    res = [geo.uniform(slice=per, splits=splits), x, g, relu_out if relu_out is not None else dev.dummy_ro,
           gw if gw is not None else dev.dummy_rw, gb if gb is not None else dev.dummy_rw, partials]
    dev.dispatch("conv2d.wgsl", "weight_grad", res, grid, **consts)
    if splits > 1:
        dev.dispatch("conv2d.wgsl", "weight_grad_reduce", res, fold(math.ceil(geo.O * columns / REDUCE_OUTPUTS)),
                     **consts)


def conv2d(x: Tensor, w: Tensor, b: Tensor | None = None, stride: int = 1, padding: int = 0,
           relu: bool = False) -> Tensor:
    """y = conv(x, w) + b (cross-correlation, as PyTorch), optionally ReLU'd in the same kernel."""
    geo = conv_geometry(x.shape, w.shape, stride, padding)
    if b is not None and tuple(b.shape) != (geo.O,):
        raise ValueError(f"conv2d: bias {tuple(b.shape)} must be ({geo.O},)")
    parents = (x, w) + ((b,) if b is not None else ())
    out = result(geo.out_shape, parents, "conv2d_relu" if relu else "conv2d")
    conv2d_into(x, w, b, out, geo, relu)
    if out.requires_grad:
        def backward():
            g = out.grad
            mask = out if relu else None   # relu(z) > 0 exactly where z > 0
            if x.requires_grad:
                gx, acc = x.grad_target()
                conv2d_input_grad_into(g, w, gx, geo, relu_out=mask, accumulate=acc)
            gw, acc_w = w.grad_target() if w.requires_grad else (None, False)
            gb, acc_b = b.grad_target() if b is not None and b.requires_grad else (None, False)
            conv2d_weight_grad_into(x, g, geo, gw, gb, relu_out=mask, acc_w=acc_w, acc_b=acc_b)
        out._backward = backward
    return out


# -- max pooling ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolGeometry:
    planes: int       # N * C
    H: int
    W: int
    K: int
    stride: int

    @property
    def OH(self) -> int:
        return (self.H - self.K) // self.stride + 1

    @property
    def OW(self) -> int:
        return (self.W - self.K) // self.stride + 1

    def uniform(self):
        return get_device().uniform(POOL2D, planes=self.planes, H=self.H, W=self.W, OH=self.OH, OW=self.OW,
                                    K=self.K, stride=self.stride)


def pool_geometry(x_shape, kernel_size: int, stride: int | None = None) -> PoolGeometry:
    if len(x_shape) != 4:
        raise ValueError(f"max_pool2d: input {tuple(x_shape)} must be [N, C, H, W]")
    n, c, h, w = (int(s) for s in x_shape)
    k = int(kernel_size)
    s = k if stride is None else int(stride)
    if k < 1 or s < 1:
        raise ValueError(f"max_pool2d: kernel {kernel_size} and stride {stride} must be positive")
    if k > h or k > w:
        raise ValueError(f"max_pool2d: window {k}x{k} does not fit the {h}x{w} input")
    return PoolGeometry(n * c, h, w, k, s)


def max_pool2d_into(x: Tensor, out: Tensor, argmax: Tensor, geo: PoolGeometry) -> None:
    """out = the window maxima; argmax (u32) = the flat index in x of each."""
    get_device().dispatch("maxpool.wgsl", "forward", [geo.uniform(), x, argmax, out],
                          fold(math.ceil(geo.planes * geo.OH * geo.OW / 256)))


def max_pool2d_backward_into(g: Tensor, argmax: Tensor, gx: Tensor, geo: PoolGeometry,
                             accumulate: bool = False) -> None:
    """gx (+)= g routed to the arg-max of each window (summed where windows overlap)."""
    get_device().dispatch("maxpool.wgsl", "backward", [geo.uniform(), g, argmax, gx],
                          fold(math.ceil(geo.planes * geo.H * geo.W / 256)), ACCUMULATE=accumulate)


def max_pool2d(x: Tensor, kernel_size: int, stride: int | None = None) -> Tensor:
    """Max over K x K windows (stride defaults to K; no padding; floor output size).
    The result's `argmax` (u32, same shape) holds the chosen input indices."""
    geo = pool_geometry(x.shape, kernel_size, stride)
    n, c = x.shape[:2]
    out = result((n, c, geo.OH, geo.OW), (x,), "max_pool2d")
    out.argmax = Tensor(out.shape, dtype="u32", label="max_pool2d.argmax")
    max_pool2d_into(x, out, out.argmax, geo)
    if out.requires_grad:
        def backward():
            gx, acc = x.grad_target()
            max_pool2d_backward_into(out.grad, out.argmax, gx, geo, acc)
        out._backward = backward
    return out


# -- flatten --------------------------------------------------------------------------------
def flatten(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C*H*W] in (C, H, W) order: a view of the same storage.

    The gradient passes through without a copy when it can: if x has no gradient
    buffer yet, x.grad becomes a view of the output's gradient (other consumers of
    x then add into that buffer, after this op has passed it on). A gradient that
    already exists (a parameter's, or one written first by another consumer) is
    written or accumulated by a copy."""
    if len(x.shape) < 2:
        raise ValueError(f"flatten: input {x.shape} needs a batch dimension and at least one more")
    out = Tensor((x.shape[0], x.size // x.shape[0]), x.buffer, x.offset, x.dtype, label="flatten")
    out.requires_grad = x.requires_grad
    if out.requires_grad:
        out._parents = (x,)

        def backward():
            g = out.grad
            if x.grad is None:
                x.grad = Tensor(x.shape, g.buffer, g.offset, label=f"grad({x.label})")
                x._grad_written = True
                return
            if x.grad.buffer is g.buffer and x.grad.offset == g.offset and not x._grad_written:
                x._grad_written = True          # handed over in an earlier pass: already in place
                return
            gx, acc = x.grad_target()
            ops._ew("axpby", x.size, g, g, gx, acc, a=1.0, b=0.0)
        out._backward = backward
    return out
