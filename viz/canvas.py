"""The paint canvas: mouse strokes in, the network's 28 x 28 input out, all on the GPU.

The canvas is a hi-res f32 buffer (112 x 112 by default: four canvas pixels per
MNIST pixel, so strokes stay smooth). Mouse segments are queued on the CPU and
sent once per frame as one small buffer write (32 bytes a segment); paint.wgsl
splats the brush along them. normalize.wgsl then measures the ink (bounding box,
centre of mass) and resamples it into the [1, 784] input tensor the traced
forward pass reads, the way MNIST digits were normalised. Nothing comes back.
"""
from __future__ import annotations

import struct

from compute.device import get_device
from compute.tensor import Tensor

from .gpu import Params, grid_2d, make_dispatch

CANVAS_SIZE = 112
MAX_SEGMENTS = 256          # per frame; more wait for the next frame
SEGMENT_BYTES = 32
DEFAULT_BRUSH = 4.5         # radius in canvas pixels (about 2 MNIST pixels wide after normalisation)


class PaintCanvas:
    def __init__(self, size: int = CANVAS_SIZE, image_w: int = 28, image_h: int = 28):
        dev = get_device()
        self.size = size
        self.image_w, self.image_h = image_w, image_h
        self.canvas = dev.buffer(size * size * 4, "canvas")
        self.strokes = dev.buffer(16 + MAX_SEGMENTS * SEGMENT_BYTES, "canvas.strokes")
        self.norm = dev.buffer(64, "canvas.norm")
        self.x = Tensor((1, image_w * image_h), label="canvas.x")   # the inference input
        self.brush = DEFAULT_BRUSH
        self.normalise = True
        self.norm_params = Params("<5I2fI", size, size, image_w, image_h, 1, 20.0, 0.1, 0, label="canvas.normparams")
        self.load_params = Params("<8I", 0, image_w, image_h, 0, size, size, 0, 0, label="canvas.loadparams")
        self._segments: list[tuple] = []
        self._clear = False
        self._load: tuple[str, int] | None = None
        self._loaders: dict = {}
        self.revision = 0       # bumped whenever the canvas content changes
        self.loaded: tuple[str, int] | None = None   # (split, index) last loaded from the dataset
        wg = grid_2d(size, size)
        self._paint = make_dispatch("paint.wgsl", "paint", [self.strokes, self.canvas], wg)
        self._clear_d = make_dispatch("paint.wgsl", "clear", [self.strokes, self.canvas], wg)
        res = [self.norm_params.buffer, self.canvas, self.norm, self.x]
        self._measure = make_dispatch("normalize.wgsl", "measure", res, (1,))
        self._resample = make_dispatch("normalize.wgsl", "resample", res, (-(-image_w * image_h // 64),))
        # The header (count, width, height) of an empty stroke list, so `clear` sees the size.
        dev.queue.write_buffer(self.strokes, 0, struct.pack("<4I", 0, size, size, 0))

    # -- input (CPU side: queue work for the next frame) ---------------------------------------
    def stroke(self, a: tuple[float, float], b: tuple[float, float], erase: bool = False,
               radius: float | None = None) -> None:
        """Paint (or erase) along a -> b, in canvas pixels (x right, y down)."""
        r = self.brush if radius is None else radius
        self._segments.append((float(a[0]), float(a[1]), float(b[0]), float(b[1]), float(r), 0.0 if erase else 1.0))

    def clear(self) -> None:
        self._clear = True
        self._segments.clear()
        self._load = None
        self.loaded = None

    def load_sample(self, split: str, index: int) -> None:
        """Replace the canvas with image `index` of split 'train', 'test' or 'mistakes'."""
        self._load = (split, int(index))
        self._segments.clear()
        self._clear = False

    def attach_dataset(self, data, history=None) -> None:
        """Enable `load_sample` for 'train' and 'test', and for 'mistakes' (entry k of the
        last evaluation's misclassified test digits, whose indices stay on the GPU)."""
        wg = grid_2d(self.size, self.size)
        for name in ("train", "test"):
            split = getattr(data, name)
            self._loaders[name] = (split, make_dispatch("paint.wgsl", "load_image",
                                                       [self.load_params.buffer, split.images, self.canvas], wg))
        if history is not None:
            test = data.test
            self._loaders["mistakes"] = (test, make_dispatch(
                "paint.wgsl", "load_listed",
                [self.load_params.buffer, test.images, self.canvas, history.wrong, history.counters], wg))

    @property
    def busy(self) -> bool:
        return bool(self._segments or self._clear or self._load)

    # -- per frame --------------------------------------------------------------------------------
    def dispatches(self) -> list:
        """This frame's canvas work: clear / load / paint, then normalise into `x`."""
        out = []
        dev = get_device()
        self.norm_params.set(self.size, self.size, self.image_w, self.image_h, int(self.normalise), 20.0, 0.1, 0)
        if self._clear:
            out.append(self._clear_d)
            self._clear = False
            self.revision += 1
        if self._load is not None and self._load[0] in self._loaders:
            split, d = self._loaders[self._load[0]]
            self.load_params.set(self._load[1], self.image_w, self.image_h, split.n, self.size, self.size, 0, 0)
            out.append(d)
            self.loaded = self._load
            self._load = None
            self.revision += 1
        if self._segments:
            segs = self._segments[:MAX_SEGMENTS]
            del self._segments[:MAX_SEGMENTS]
            raw = struct.pack("<4I", len(segs), self.size, self.size, 0)
            raw += b"".join(struct.pack("<8f", *s, 0.0, 0.0) for s in segs)
            dev.queue.write_buffer(self.strokes, 0, raw)
            out.append(self._paint)
            self.revision += 1
            self.loaded = None
        out += [self._measure, self._resample]
        return out
