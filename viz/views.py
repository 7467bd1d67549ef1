"""Buffer -> texture view passes for the model: weights, biases, activations,
probabilities, and the paint canvas (views.wgsl).

Every view is a compute dispatch built once; its per-frame cost is the dispatch.
Colour scales come from GPU reductions (`ScaleBank`: max |x| of each weight
matrix, bias vector and activation), so nothing is read back to choose them.
"""
from __future__ import annotations

import math

from ..compute.device import get_device

from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import BADGE, BARS, CANVAS_VIEW, HEAT, NONE, REDUCE

CMAP_DIVERGING, CMAP_SEQUENTIAL, CMAP_GREY = 0, 1, 2
MOSAIC_WEIGHTS, MOSAIC_CONTRIBUTION, MOSAIC_FIRING = 0, 1, 2
MOSAIC_MODES = ("weights", "weights x input", "firing units")


ABSMAX_ELEMENTS = 8192   # elements per workgroup of a scale's fold (32 an invocation)
ABSMAX_GROUPS = 256      # most workgroups of one fold


class ScaleBank:
    """max |x| of buffer ranges, one slot each in a small GPU buffer the views read."""

    SLOTS = 256

    def __init__(self):
        self.buffer = get_device().buffer(self.SLOTS * 4, "view.scales")
        self.acc = get_device().buffer(self.SLOTS * 4, "view.scales.acc")     # absmax_part's maxima (bits)
        self._dispatches: list = []
        self._slots: dict[tuple, int] = {}     # a range asked for twice shares its slot

    def add(self, buffer, offset_elems: int, count: int) -> int:
        key = (id(buffer), offset_elems, count)
        if key in self._slots:
            return self._slots[key]
        slot = len(self._slots)
        if slot >= self.SLOTS:
            raise ValueError("too many view scales")
        prm = get_device().uniform(REDUCE, offset=offset_elems, count=count, slot=slot)
        res = [prm, buffer, self.buffer, self.acc]
        groups = max(1, min(ABSMAX_GROUPS, -(-count // ABSMAX_ELEMENTS)))
        self._dispatches += [make_dispatch("views.wgsl", "absmax_part", res, (groups,)),
                             make_dispatch("views.wgsl", "absmax", res, (1,))]
        self._slots[key] = slot
        return slot

    def dispatches(self) -> list:
        return list(self._dispatches)


def grid_cols(n: int) -> int:
    """Columns of a roughly 2:1 grid of n tiles."""
    return max(1, math.ceil(math.sqrt(2 * n)))


class Heatmap:
    """One `heatmap` dispatch drawing a matrix into its own texture."""

    def __init__(self, label: str, src, offset: int, tile_w: int, tile_h: int, tiles: int, cols: int, gap: int,
                 sx: int, sy: int, st: int, cmap: int, scale_slot: int, scales, gain: float = 1.0,
                 mod=None, mod_mode: int = 0, mod_offset: int = 0, mod_sx: int = 0, mod_sy: int = 0,
                 mod_slot: int = 0, nearest: bool = True, texture: ViewTexture | None = None):
        rows = math.ceil(tiles / cols)
        self.tile_w, self.tile_h, self.cols, self.rows, self.gap = tile_w, tile_h, cols, rows, gap
        size = (cols * (tile_w + gap) + gap, rows * (tile_h + gap) + gap)
        if texture is not None and texture.size != size:
            raise ValueError(f"{label}: shared texture is {texture.size}, view needs {size}")
        self.texture = texture or ViewTexture(*size, label, nearest)
        self._base = dict(offset=offset, tile_w=tile_w, tile_h=tile_h, tiles=tiles, cols=cols, gap=gap, sx=sx,
                          sy=sy, st=st, cmap=cmap, scale_slot=scale_slot)
        self._mod = dict(mod_offset=mod_offset, mod_sx=mod_sx, mod_sy=mod_sy, mod_slot=mod_slot)
        self.gain = gain
        self.mod_mode = mod_mode
        self.highlight = NONE
        self.params = Params(HEAT, f"{label}.params", **self._values())
        dev = get_device()
        self.dispatch = make_dispatch("views.wgsl", "heatmap",
                                      [self.params.buffer, src, mod if mod is not None else dev.dummy_ro, scales,
                                       self.texture.view], grid_2d(*self.texture.size))

    def _values(self):
        return dict(**self._base, gain=self.gain, mod_mode=self.mod_mode, **self._mod, highlight=self.highlight)

    def update(self, gain: float | None = None, mod_mode: int | None = None, highlight: int | None = None):
        if gain is not None:
            self.gain = float(gain)
        if mod_mode is not None:
            self.mod_mode = int(mod_mode)
        if highlight is not None:
            self.highlight = int(highlight)
        self.params.set(**self._values())

    def tile_at(self, u: float, v: float) -> int | None:
        """Tile under texture coordinates (u, v) in [0, 1], or None."""
        x, y = u * self.texture.width, v * self.texture.height
        cx, cy = int((x - self.gap) // (self.tile_w + self.gap)), int((y - self.gap) // (self.tile_h + self.gap))
        if 0 <= cx < self.cols and 0 <= cy < self.rows:
            return cy * self.cols + cx
        return None

    def cell_at(self, u: float, v: float) -> tuple[int, int, int] | None:
        """(tile, x, y inside it) under texture coordinates (u, v) in [0, 1]; None on a gap or outside."""
        px, py = int(u * self.texture.width) - self.gap, int(v * self.texture.height) - self.gap
        if px < 0 or py < 0:
            return None
        (cx, x), (cy, y) = divmod(px, self.tile_w + self.gap), divmod(py, self.tile_h + self.gap)
        if cx >= self.cols or cy >= self.rows or x >= self.tile_w or y >= self.tile_h:
            return None
        t = cy * self.cols + cx
        return (t, x, y) if t < self._base["tiles"] else None


class Bars:
    """A labelled bar chart of a short vector (probabilities: mode 0, logits: mode 1).
    `gate`: a buffer whose first float is the canvas's ink (no bars while it is 0);
    `names`: the class-name bitmaps (viz/glyphs.py) to label the bars with."""

    def __init__(self, label: str, src, offset: int, n: int, mode: int, scale_slot: int, scales,
                 size=(320, 150), label_h: int = 22, font_scale: int = 2, gate=None, names=None):
        dev = get_device()
        self.texture = ViewTexture(size[0], size[1], label, nearest=True)
        prm = dev.uniform(BARS, offset=offset, n=n, mode=mode, scale_slot=scale_slot, label_h=label_h,
                          font_scale=font_scale, gated=int(gate is not None), named=int(names is not None))
        self.dispatch = make_dispatch("views.wgsl", "bar_chart",
                                      [prm, src, scales, self.texture.view,
                                       dev.dummy_ro if gate is None else gate,
                                       dev.dummy_ro if names is None else names], grid_2d(*self.texture.size))


class ModelViews:
    """Every view of one model: weights, biases, activations for the canvas input, output."""

    def __init__(self, model, forward, scales: ScaleBank, image_shape=(28, 28), canvas_norm=None, names=None,
                 badge_names: bool = False):
        self.model = model
        self.forward = forward
        arena = model.arena.buffer
        params = [(layer, model.weight(i), model.bias(i)) for i, layer in model.linears]
        linears = [layer for layer, _, _ in params]
        self.weight_slots, self.bias_slots = [], []
        for _, w, b in params:
            self.weight_slots.append(scales.add(arena, w.offset // 4, w.size))
            self.bias_slots.append(scales.add(arena, b.offset // 4, b.size))
        acts = forward.activations
        self.act_slots = [scales.add(a.buffer, a.offset // 4, a.size) for a in acts]
        ih, iw = image_shape
        sb = scales.buffer

        # W1 as a mosaic of receptive fields: tile j = column j of W1 [D, H], drawn as an image.
        # (A network of convolutions alone, Conv2d(1,10,14,stride=14),MaxPool2d(2),Flatten(), has no Linear.)
        first, first_w = (linears[0], params[0][1]) if params else (None, None)
        d, h = (first.in_features, first.out_features) if first else (0, 0)
        # Three variants share one texture: plain weights, weights x the canvas input (what
        # each unit sees of the digit), weights faded by how strongly each unit fires.
        self.mosaic_mode = MOSAIC_WEIGHTS
        self.mosaics: list[Heatmap] = []
        if model.arch.is_mlp and d == ih * iw:       # the first Linear reads the image itself
            x = forward.x
            common = dict(sx=h, sy=iw * h, st=1, cmap=CMAP_DIVERGING, scale_slot=self.weight_slots[0], scales=sb)
            plain = Heatmap("W1 mosaic", arena, first_w.offset // 4, iw, ih, h, grid_cols(h), 1, **common)
            seen = Heatmap("W1 mosaic", arena, first_w.offset // 4, iw, ih, h, grid_cols(h), 1, **common,
                           gain=2.0, mod=x.buffer, mod_mode=1, mod_offset=x.offset // 4, mod_sx=1, mod_sy=iw,
                           texture=plain.texture)
            firing = Heatmap("W1 mosaic", arena, first_w.offset // 4, iw, ih, h, grid_cols(h), 1, **common,
                             mod=acts[0].buffer, mod_mode=2, mod_offset=acts[0].offset // 4,
                             mod_slot=self.act_slots[0], texture=plain.texture)
            self.mosaics = [plain, seen, firing]
        # Later weight matrices [in, out]: one row per output unit, `in` pixels long, 4 tall.
        # Named W1, W2, ... in an MLP, by PyTorch's names (10.weight) among convolutions.
        labels = [f"W{k + 1}" if model.arch.is_mlp else f"{i}.weight" for k, (i, _) in enumerate(model.linears)]
        self.weights: list[Heatmap] = []
        for k, (layer, w, _) in enumerate(params):
            if k == 0 and self.mosaics:
                continue
            n_in, n_out = layer.in_features, layer.out_features
            self.weights.append(Heatmap(labels[k], arena, w.offset // 4, n_in, 4, n_out, 1, 1,
                                        sx=n_out, sy=0, st=1, cmap=CMAP_DIVERGING,
                                        scale_slot=self.weight_slots[k], scales=sb))
        bias_labels = [t.replace("W", "b").replace("weight", "bias") for t in labels]
        self.biases = [Heatmap(bias_labels[k], arena, b.offset // 4, layer.out_features, 1, 1, 1, 0,
                               sx=1, sy=0, st=0, cmap=CMAP_DIVERGING, scale_slot=self.bias_slots[k], scales=sb)
                       for k, (layer, _, b) in enumerate(params)]
        # Hidden activations of Linear layers (flat): one 6 x 6 cell per unit. A CNN's
        # feature maps are ConvViews'.
        self.hidden, self.hidden_outputs = [], []
        for k, a in enumerate(acts[:-1]):
            if len(a.shape) != 2:
                continue
            n = a.size
            self.hidden.append(Heatmap(f"h{len(self.hidden) + 1}", a.buffer, a.offset // 4, 6, 6, n, grid_cols(n),
                                       1, sx=0, sy=0, st=1, cmap=CMAP_SEQUENTIAL, scale_slot=self.act_slots[k],
                                       scales=sb))
            self.hidden_outputs.append(a)
        x = forward.x
        self.input = Heatmap("input", x.buffer, x.offset // 4, iw, ih, 1, 1, 0, sx=1, sy=iw, st=0,
                             cmap=CMAP_GREY, scale_slot=NONE, scales=sb)
        c = forward.logits.size
        self.logits = Bars("logits", forward.logits.buffer, forward.logits.offset // 4, c, 1,
                           self.act_slots[-1], sb, size=(360, 100), gate=canvas_norm, names=names)
        self.probs = Bars("probabilities", forward.probs.buffer, forward.probs.offset // 4, c, 0, NONE, sb,
                          size=(400, 110), gate=canvas_norm, names=names)
        self.badge = (PredictionBadge(forward, canvas_norm, names=names if badge_names else None)
                      if canvas_norm is not None else None)
        from .conv_views import ConvViews     # (it builds on this module's Heatmap)
        self.conv = None if model.arch.is_mlp else ConvViews(model, forward, scales)
        # The two weight scales the 64-byte readout carries: the first two Linears' (else the
        # first convolutions').
        slots = self.weight_slots or [b.filter_slot for b in self.conv.blocks if b.filters is not None]
        self.readout_slots = (slots[0], slots[1] if len(slots) > 1 else slots[0])

    def cycle_mosaic(self) -> None:
        if self.mosaics:
            self.mosaic_mode = (self.mosaic_mode + 1) % len(self.mosaics)

    def set_mosaic(self, mode: int) -> None:
        if self.mosaics:
            self.mosaic_mode = max(0, min(mode, len(self.mosaics) - 1))

    @property
    def probe_key(self) -> tuple:
        """What the hover value shows (the frame redraws only it when this alone changes)."""
        return self.conv.probe.key if self.conv is not None else ()

    def probe_dispatches(self) -> list:
        return self.conv.probe.dispatches() if self.conv is not None else []

    @property
    def mosaic(self) -> Heatmap | None:
        return self.mosaics[self.mosaic_mode] if self.mosaics else None

    @property
    def textures(self) -> list[ViewTexture]:
        views = ([self.mosaic] if self.mosaic else []) + self.weights + self.biases + self.hidden + [self.input]
        extra = ([self.badge.texture] if self.badge else []) + (self.conv.textures if self.conv else [])
        return [v.texture for v in views] + [self.logits.texture, self.probs.texture] + extra

    def dispatches(self) -> list:
        views = ([self.mosaic] if self.mosaic else []) + self.weights + self.biases + self.hidden + [self.input]
        extra = ([self.badge.dispatch] if self.badge else []) + (self.conv.dispatches() if self.conv else [])
        return [v.dispatch for v in views] + [self.logits.dispatch, self.probs.dispatch] + extra


def badge_digit_scale(classes: int, width: int, text_scale: int = 2, largest: int = 8) -> int:
    """The scale of the badge's class number such that the widest one (two digits from 11 classes)
    and "100%" at `text_scale` fit `width` (shaders/views.wgsl prediction_badge's layout: a margin
    of one scale, the number, one scale, the percentage); a scale of 8 made "14" push "5%" off."""
    from ..compute.shaders import wgsl_constant
    advance = int(wgsl_constant("font.wgsl", "GLYPH_W")) + 1
    digits = len(str(max(classes - 1, 0)))
    percent = 3 * advance * text_scale - text_scale + text_scale + (advance - 1) * text_scale   # "100" "%"
    return max(1, min(largest, (width - percent) // (advance * digits + 1)))


class PredictionBadge:
    """The predicted digit, large, with its probability (blank while the canvas is empty);
    `names` (class-name bitmaps): the predicted class's name instead of its number."""

    def __init__(self, forward, canvas_norm, size=(116, 64), names=None):
        dev = get_device()
        self.texture = ViewTexture(size[0], size[1], "prediction", nearest=True)
        scale = badge_digit_scale(forward.probs.size, size[0])
        prm = dev.uniform(BADGE, n=forward.probs.size, digit_scale=scale, text_scale=2, named=int(names is not None))
        self.dispatch = make_dispatch("views.wgsl", "prediction_badge",
                                      [prm, forward.probs.buffer, canvas_norm, self.texture.view,
                                       dev.dummy_ro if names is None else names], grid_2d(*size))


class CanvasView:
    """The raw paint canvas (with the normaliser's box and centre of mass)."""

    def __init__(self, canvas):
        self.texture = ViewTexture(canvas.width, canvas.height, "canvas", nearest=False)
        self.params = Params(CANVAS_VIEW, "canvasview.params", cw=canvas.width, ch=canvas.height, show_box=1)
        self.dispatch = make_dispatch("views.wgsl", "canvas_view",
                                      [self.params.buffer, canvas.canvas, canvas.norm, self.texture.view],
                                      grid_2d(canvas.width, canvas.height))

    def set_show_box(self, show: bool) -> None:
        self.params.update(show_box=int(show))
