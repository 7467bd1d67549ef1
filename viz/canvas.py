"""The paint canvas: mouse strokes in, the network's input image out, all on the GPU.

The canvas is a hi-res f32 buffer with the input image's aspect ratio, about 112
pixels on its long side (112 x 112 for MNIST: four canvas pixels per image
pixel, so strokes stay smooth). Mouse segments are queued on the CPU and
sent once per frame as one small buffer write (32 bytes a segment); paint.wgsl
splats the brush along them. normalize.wgsl then measures the ink (bounding box,
centre of mass) and resamples it into the [1, H*W] input tensor the traced
forward pass reads, the way MNIST digits were normalised. Nothing comes back.

A sample loaded from the dataset (or the mistakes gallery) is shown upsampled on
the canvas, but the network reads the sample's own pixels, exactly the input the
evaluation saw, until the user paints on it; `sample` (one u32 on the GPU) says
which sample that is for the readout.
"""
from __future__ import annotations

from ..compute.device import get_device
from ..compute.tensor import Tensor

from .gpu import Params, grid_2d, make_dispatch
from .structs import LOAD, NONE, NORMALIZE, SEGMENT, STROKES

CANVAS_LONG_SIDE = 112     # canvas pixels along the image's longer side (about)
MAX_SEGMENTS = 256          # per frame; more wait for the next frame
DEFAULT_BRUSH = 4.5         # radius in canvas pixels (about 2 MNIST pixels wide after normalisation)
MNIST_BOX = 20 / 28         # MNIST fitted each digit's bounding box into 20 of the image's 28 pixels


def canvas_shape(image_w: int, image_h: int) -> tuple[int, int]:
    """Canvas pixels for an image: a whole number of canvas pixels per image pixel."""
    k = max(1, round(CANVAS_LONG_SIDE / max(image_w, image_h)))
    return k * image_w, k * image_h


class PaintCanvas:
    def __init__(self, image_w: int = 28, image_h: int = 28):
        dev = get_device()
        self.width, self.height = width, height = canvas_shape(image_w, image_h)
        self.image_w, self.image_h = image_w, image_h
        self.box_size = MNIST_BOX * min(image_w, image_h)
        self.canvas = dev.buffer(width * height * 4, "canvas")
        self.strokes = dev.buffer(STROKES.size + MAX_SEGMENTS * SEGMENT.size, "canvas.strokes")
        self.norm = dev.buffer(64, "canvas.norm")
        self.sample = dev.buffer(16, "canvas.sample")          # index << 8 | label of a loaded sample
        dev.queue.write_buffer(self.sample, 0, NONE.to_bytes(4, "little"))
        self.x = Tensor((1, image_w * image_h), label="canvas.x")   # the inference input
        self.brush = DEFAULT_BRUSH
        self.normalise = True
        self.norm_params = Params(NORMALIZE, "canvas.normparams", **self._norm_values())
        self.load_params = Params(LOAD, "canvas.loadparams", iw=image_w, ih=image_h, cw=width, ch=height)
        self._segments: list[tuple] = []
        self._clear = False
        self._load: tuple[str, int] | None = None
        self._loaders: dict = {}
        self.revision = 0       # bumped whenever the canvas content changes
        self._normalised = None  # (revision, normalise) that `x` was last computed from
        self.loaded: tuple[str, int] | None = None   # (split, index) feeding the network as it is
        # Whether the canvas is blank: True after a clear, False after ink or a load; None
        # after an erase (only the GPU knows then: the readout's `ink`).
        self.blank: bool | None = True
        wg = grid_2d(width, height)
        self._paint = make_dispatch("paint.wgsl", "paint", [self.strokes, self.canvas], wg)
        self._clear_d = make_dispatch("paint.wgsl", "clear", [self.strokes, self.canvas], wg)
        res = [self.norm_params.buffer, self.canvas, self.norm, self.x]
        self._measure = make_dispatch("normalize.wgsl", "measure", res, (1,))
        self._resample = make_dispatch("normalize.wgsl", "resample", res, (-(-image_w * image_h // 64),))
        # The header (count, width, height) of an empty stroke list, so `clear` sees the size.
        dev.queue.write_buffer(self.strokes, 0, STROKES.pack(count=0, width=width, height=height))

    def _norm_values(self) -> dict:
        return dict(cw=self.width, ch=self.height, ow=self.image_w, oh=self.image_h, mode=int(self.normalise),
                    box_size=self.box_size, thresh=0.1)

    # -- input (CPU side: queue work for the next frame) ---------------------------------------
    def stroke(self, a: tuple[float, float], b: tuple[float, float], erase: bool = False,
               radius: float | None = None) -> None:
        """Paint (or erase) along a -> b, in canvas pixels (x right, y down)."""
        r = self.brush if radius is None else radius
        if erase:
            self.blank = True if self.blank else None
        else:
            self.blank = False
        self._segments.append((float(a[0]), float(a[1]), float(b[0]), float(b[1]), float(r), 0.0 if erase else 1.0))

    def clear(self) -> None:
        self._clear = True
        self._segments.clear()
        self._load = None
        self.blank = True             # the empty-canvas state: the hint, no prediction

    def load_sample(self, split: str, index: int) -> None:
        """Replace the canvas with image `index` of split 'train', 'test' or 'mistakes'."""
        self._load = (split, int(index))
        self._segments.clear()
        self._clear = False
        self.blank = False

    def attach_dataset(self, data, metrics=None) -> None:
        """Enable `load_sample` for 'train' and 'test', and for 'mistakes' (entry k of the
        last evaluation's misclassified test digits, whose indices stay on the GPU).
        Each loader is two dispatches: the image onto the canvas (upsampled, for the eye
        and for painting over), and its own pixels into the network's input."""
        dev = get_device()
        wg = grid_2d(self.width, self.height)
        inputs = (-(-self.image_w * self.image_h // 64),)
        lists = {"train": (data.train, dev.dummy_ro, dev.dummy_ro), "test": (data.test, dev.dummy_ro, dev.dummy_ro)}
        if metrics is not None:
            lists["mistakes"] = (data.test, metrics.wrong, metrics.counters)
        for name, (split, wrong, counters) in lists.items():
            entry = "load_listed" if name == "mistakes" else "load_image"
            show = make_dispatch("paint.wgsl", entry, [self.load_params.buffer, split.images, self.canvas,
                                                      wrong, counters], wg)
            feed = make_dispatch("paint.wgsl", "load_input", [self.load_params.buffer, split.images, split.labels,
                                                             wrong, counters, self.x, self.sample], inputs)
            self._loaders[name] = (split, show, feed)

    @property
    def busy(self) -> bool:
        return bool(self._segments or self._clear or self._load)

    # -- per frame --------------------------------------------------------------------------------
    def dispatches(self) -> list:
        """This frame's canvas work: clear / load / paint, then (if anything changed) normalise into `x`."""
        out = []
        dev = get_device()
        self.norm_params.set(**self._norm_values())
        was = self.loaded
        if self._clear:
            out.append(self._clear_d)
            self._clear = False
            self.revision += 1
            self.loaded = None
        if self._load is not None and self._load[0] in self._loaders:
            split, show, feed = self._loaders[self._load[0]]
            self.load_params.update(index=self._load[1], n=split.n, listed=int(self._load[0] == "mistakes"))
            out += [show, feed]
            self.loaded = self._load
            self._load = None
            self.revision += 1
        if self._segments:
            segs = self._segments[:MAX_SEGMENTS]
            del self._segments[:MAX_SEGMENTS]
            raw = STROKES.pack(count=len(segs), width=self.width, height=self.height)
            raw += b"".join(SEGMENT.pack(ax=s[0], ay=s[1], bx=s[2], by=s[3], radius=s[4], ink=s[5]) for s in segs)
            dev.queue.write_buffer(self.strokes, 0, raw)
            out.append(self._paint)
            self.revision += 1
            self.loaded = None            # painted over: the canvas feeds the network again
        if was is not None and self.loaded is None:
            dev.queue.write_buffer(self.sample, 0, NONE.to_bytes(4, "little"))
        key = (self.revision, self.normalise, self.loaded is None)
        if key != self._normalised:       # `x` only changes with the canvas or the mode
            # The ink measure always (box, centre of mass, "is there ink"); the resampled
            # canvas only when no loaded sample feeds the network its own pixels.
            out += [self._measure] if self.loaded is not None else [self._measure, self._resample]
            self._normalised = key
        return out
