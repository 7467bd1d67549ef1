"""The convolutional views, as ConvNetJS and CNN Explainer show a CNN: every Conv2d's
filters, and the painted digit's feature maps after every Conv2d (its ReLU) and
MaxPool2d; plus the value under the mouse, printed on the GPU (`ValueProbe`).

Filters and maps are `heatmap` dispatches (views.wgsl) straight over buffers the engine
already has, so nothing is copied or read back:
  * filters read the parameter arena. Conv2d weights are stored as PyTorch has them,
    [out, in, k, k], so with one row per output channel and the input channels side by
    side, tile t = o * in + c is the k x k block at t * k * k (a layer with one input
    channel lays its filters out as a grid: tile t = o);
  * feature maps read the traced forward pass on the canvas (`Forward.trace`): an output
    [1, C, H, W] is C tiles of H x W, tile c at c * H * W.
Colour scales are GPU reductions (`ScaleBank`): a layer's max |w|, a map's max |a|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..compute.arch import Conv2d, Linear, ReLU
from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import PROBE
from .views import CMAP_DIVERGING, CMAP_SEQUENTIAL, Heatmap, ScaleBank


def map_cols(channels: int) -> int:
    """Columns of the feature-map grid: a divisor of the channel count near a 2:1 grid (no
    half-empty last row), else the 2:1 grid."""
    target = math.sqrt(2 * channels)
    divisors = [d for d in range(1, channels + 1) if channels % d == 0 and target / 2 <= d <= target * 1.5]
    if divisors:
        return min(divisors, key=lambda d: abs(d - target))
    return min(channels, max(1, math.ceil(target)))


@dataclass
class LayerBlock:
    """One output of the traced forward pass and the layers it covers (PyTorch indices):
    a Conv2d with the ReLU fused into it is one block, whose output is after the ReLU."""
    layers: tuple              # ((index, layer), ...)
    shape: tuple               # output shape of one sample ([C, H, W] or [N])
    output: object             # compute.tensor.Tensor, [1, *shape]
    signed: bool               # the output can be negative (no ReLU since the last Conv2d / Linear)
    filters: Heatmap | None = None
    filter_layer: Conv2d | None = None
    filter_offset: int = 0     # first element of the Conv2d's weights in the arena
    filter_slot: int = 0       # their colour scale (max |w|) in the ScaleBank
    maps: Heatmap | None = None
    passthrough: bool = False  # the output is the block before's (Dropout at inference): no views of its own

    @property
    def title(self) -> str:
        return "  ".join(f"{i} {layer}" for i, layer in self.layers)

    @property
    def last(self) -> int:
        return self.layers[-1][0]

    def filter_at(self, u: float, v: float) -> tuple[int, int, int, int, int] | None:
        """(out channel, in channel, ky, kx, element of the arena) under (u, v) of the filters, or None."""
        cell = self.filters.cell_at(u, v) if self.filters is not None else None
        if cell is None:
            return None
        t, x, y = cell
        conv = self.filter_layer
        if t >= conv.out_channels * conv.in_channels:
            return None
        o, c = divmod(t, conv.in_channels)
        k = conv.kernel_size
        return o, c, y, x, self.filter_offset + t * k * k + y * k + x

    def map_at(self, u: float, v: float) -> tuple[int, int, int, int] | None:
        """(channel, y, x, element of the output's buffer) under (u, v) of the feature maps, or None."""
        cell = self.maps.cell_at(u, v) if self.maps is not None else None
        if cell is None:
            return None
        c, x, y = cell
        channels, h, w = self.shape
        if c >= channels:
            return None
        return c, y, x, self.output.offset // 4 + (c * h + y) * w + x


class ConvViews:
    """The filters and feature maps of every block of a network with convolutions."""

    def __init__(self, model, forward, scales: ScaleBank):
        arena = model.arena.buffer
        layers, shapes = model.layers, model.arch.shapes
        sb = scales.buffer
        self.blocks: list[LayerBlock] = []
        prev, signed, prev_out = -1, False, forward.x     # the input image is >= 0
        for index, out in forward.trace:
            covered = tuple((i, layers[i]) for i in range(prev + 1, index + 1))
            prev = index
            for _, layer in covered:
                if isinstance(layer, (Conv2d, Linear)):
                    signed = True
                elif isinstance(layer, ReLU):
                    signed = False
            block = LayerBlock(covered, tuple(shapes[index]), out, signed, passthrough=out is prev_out)
            prev_out = out
            self.blocks.append(block)
            if block.passthrough:
                continue
            conv = next(((i, layer) for i, layer in covered if isinstance(layer, Conv2d)), None)
            if conv is not None:
                i, layer = conv
                w, k = model.weight(i), layer.kernel_size
                slot = scales.add(arena, w.offset // 4, w.size)
                block.filter_layer, block.filter_offset, block.filter_slot = layer, w.offset // 4, slot
                # One row per output channel, its input channels side by side; a layer reading one
                # channel (the image) would be a one-tile column, so its filters wrap into a grid.
                cols = layer.in_channels if layer.in_channels > 1 else map_cols(layer.out_channels)
                block.filters = Heatmap(f"{i}.weight filters", arena, w.offset // 4, k, k,
                                        layer.out_channels * layer.in_channels, cols, 1,
                                        sx=1, sy=k, st=k * k, cmap=CMAP_DIVERGING, scale_slot=slot, scales=sb)
            if len(block.shape) == 3:
                c, h, w_ = block.shape
                slot = scales.add(out.buffer, out.offset // 4, out.size)
                block.maps = Heatmap(f"{index} feature maps", out.buffer, out.offset // 4, w_, h, c, map_cols(c), 1,
                                     sx=1, sy=w_, st=h * w_, cmap=CMAP_DIVERGING if signed else CMAP_SEQUENTIAL,
                                     scale_slot=slot, scales=sb)
        self._arena = arena
        self.probe = ValueProbe()

    @property
    def heatmaps(self) -> list[Heatmap]:
        return [h for b in self.blocks for h in (b.filters, b.maps) if h is not None]

    @property
    def textures(self) -> list[ViewTexture]:
        return [h.texture for h in self.heatmaps] + [self.probe.texture]

    def probe_at(self, block: int | None, what: str = "maps", element: int = 0) -> None:
        """Print element `element` of block `block`'s filters (the arena) or maps (its output)
        under the mouse; None: nothing hovered."""
        if block is None or not 0 <= block < len(self.blocks):
            self.probe.clear()
            return
        b = self.blocks[block]
        self.probe.point(self._arena if what == "filters" else b.output.buffer, element)

    def dispatches(self) -> list:
        """After the forward pass and the scales: every view, then the probe (it may read a map)."""
        return [h.dispatch for h in self.heatmaps] + self.probe.dispatches()


class ValueProbe:
    """One element of a GPU buffer, printed into a small texture for the hover tooltip."""

    SCALE = 2
    GLYPHS = 9                      # "-9999.999"

    def __init__(self):
        s = self.SCALE
        self.texture = ViewTexture((self.GLYPHS * 6 + 1) * s, 9 * s, "value", nearest=True)
        self.params = Params(PROBE, "probe.params", offset=0, scale=s)
        self._dispatches: dict[int, object] = {}     # id(buffer) -> dispatch printing from it
        self._buffers: dict[int, object] = {}
        self.active: int | None = None

    def point(self, buffer, element: int) -> None:
        """Print element `element` (in f32 words) of `buffer` from now on."""
        key = id(buffer)
        if key not in self._dispatches:
            self._buffers[key] = buffer      # keeps id(buffer) unique while the dispatch lives
            self._dispatches[key] = make_dispatch("probe.wgsl", "value_label",
                                                  [self.params.buffer, buffer, self.texture.view],
                                                  grid_2d(*self.texture.size))
        self.active = key
        self.params.update(offset=int(element))

    def clear(self) -> None:
        self.active = None

    @property
    def key(self) -> tuple:
        """What the texture shows (the frame redraws it when this changes)."""
        return (self.active, self.params.values.get("offset")) if self.active is not None else (None,)

    def dispatches(self) -> list:
        return [self._dispatches[self.active]] if self.active is not None else []
