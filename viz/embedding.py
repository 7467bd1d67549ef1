"""The live embedding: the test set's last hidden layer (the input of the last Linear)
projected to 2-D on the GPU and drawn as a scatter of points coloured by class.

A refresh is a few replayable programs (shaders/embedding.wgsl): the forward pass
over the test set in chunks (traced once, like compute/evaluation.py), each chunk's
hidden rows stored into one [N, H] buffer; then PCA by power iteration with
deflation, warm-started from the last refresh's components; then the new positions
become the points' target, and the view moves them there smoothly over
TRANSITION_S. A refresh starts every REFRESH_STEPS training steps (or when the
weights change otherwise), on a CPU adapter one chunk a frame.

Nothing is read back: the point under the cursor is found by a GPU pick pass that
writes its index into the readout's `hover` word (viz/structs.py READOUT); the
canvas's digit is a marker projected with the same components from the canvas's
own forward pass.
"""
from __future__ import annotations

import math

import numpy as np

from ..compute.budget import Limits, eval_rows
from ..compute.device import get_device
from ..compute.program import Program
from ..compute.tensor import Tensor
from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import EMBED, EMBED_CHUNK, READOUT

SIZE = 384                 # scatter texture side, pixels
REFRESH_STEPS = 300        # training steps between refreshes
TRANSITION_S = 0.8         # seconds the points take to reach a new projection
FIRST_ITERATIONS = 40      # power iterations from a random start
ITERATIONS = 8             # warm-started ones (the network changes little in REFRESH_STEPS)
PICK_RADIUS = 8.0          # pixels: a point farther than this from the cursor is not picked
DOT = 1                    # dot radius: 3 x 3 pixels

# Class colours (matplotlib's tab10), cycled past ten classes; the shader reads them packed.
CLASS_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (160, 160, 160), (188, 189, 34), (23, 190, 207))


def class_colour(label: int) -> tuple[int, int, int]:
    return CLASS_COLOURS[label % len(CLASS_COLOURS)]


def hidden_of(model, x: Tensor, trace: list) -> Tensor:
    """The input of the model's last Linear, as [B, H], from a forward trace (the input
    image itself for a network with one Linear)."""
    last = model.linears[-1][0]
    before = [t for index, t in trace if index < last]
    h = before[-1] if before else x
    return h if len(h.shape) == 2 else h.view((h.shape[0], math.prod(h.shape[1:])))


def _groups(n: int, size: int) -> tuple[int, int]:
    """Workgroups of `size` for n items, folded into 2-D past the 65535 limit."""
    g = max(1, math.ceil(n / size))
    x = min(g, 65535)
    return x, math.ceil(g / x)


class Embedding:
    def __init__(self, model, data, state, canvas_hidden: Tensor, readout_buffer, size: int = SIZE,
                 chunk: int | None = None):
        """`state`: the run's state words (the gather reads them); `canvas_hidden`: [1, H], the
        same layer of the canvas's forward pass; `readout_buffer`: where the pick is published;
        `chunk`: test images per forward pass (default: as many as the device binds)."""
        dev = get_device()
        test = data.test
        self.model = model
        self.classes = data.num_classes
        self.size = size
        limits = Limits.current()
        chunk = eval_rows(model.arch, test.n, limits) if chunk is None else chunk
        x = Tensor((chunk, test.input_size), label="embedding.x")
        y = Tensor((chunk,), dtype="u32", label="embedding.y")
        dev.stream.flush()
        trace: list = []
        with dev.stream.capture("embedding.forward") as fwd:
            model.forward(x, train=False, trace=trace)
        dev.stream.discard()
        hidden = hidden_of(model, x, trace)
        h = self.h = hidden.shape[1]
        if canvas_hidden.size != h:
            raise ValueError(f"embedding: the canvas's hidden layer has {canvas_hidden.size} features, not {h}")
        # As many points as one binding holds (all 10,000 for any hidden layer up to ~3,000 wide).
        self.n = n = min(test.n, limits.binding // (4 * h))
        self.labels = test.labels
        self.acts = Tensor((n, h), label="embedding.acts")
        self.basis = dev.buffer((4 + 3 * h) * 4, "embedding.basis")
        rng = np.random.default_rng(0)
        start = np.zeros(4 + 3 * h, np.float32)
        start[4 + h:] = rng.standard_normal(2 * h) / math.sqrt(h)     # random first vectors
        dev.write(self.basis, start)
        self.work = dev.buffer(2 * h * 4, "embedding.work")
        self.proj = dev.buffer(n * 2 * 4, "embedding.proj")
        self.pos = dev.buffer(n * 4 * 4, "embedding.pos")
        self.pick = dev.buffer(16, "embedding.pick")
        self.palette = dev.upload(np.array([r | g << 8 | b << 16 | 255 << 24 for r, g, b in CLASS_COLOURS],
                                           np.uint32), "embedding.palette")
        self.params = Params(EMBED, "embedding.params", n=n, h=h, size=size, t=1.0, classes=len(CLASS_COLOURS),
                             pick_radius=PICK_RADIUS, hover_word=READOUT.index("hover"), dot=DOT)
        self.texture = ViewTexture(size, size, "embedding", nearest=True)
        self.digit = ViewTexture(test.width, test.height, "embedding.digit", nearest=True)

        # The chunks: gather, the traced forward, store the hidden rows.
        self.chunks: list[Program] = []
        for base in range(0, n, chunk):
            with dev.stream.capture(f"embedding.chunk[{base}]") as prog:
                data.gather(test, x, y, state, base=base, eval_mode=True)
                for d in fwd.dispatches:
                    dev.stream.record(d)
                prm = dev.uniform(EMBED_CHUNK, n=n, h=h, base=base, rows=chunk)
                dev.dispatch("embedding.wgsl", "store", [prm, hidden, self.acts], _groups(chunk * h, 256))
            dev.stream.discard()
            self.chunks.append(prog)

        p = self.params.buffer
        pca = [p, self.acts, self.basis, self.work, self.proj]
        one = lambda entry, wg: make_dispatch("embedding.wgsl", entry, pca, wg)
        self._mean = one("mean", (h,))
        self._iteration = [one("project", (math.ceil(n / 64),)), one("back", (h,)),
                           one("orthonormalise", (1,))]
        self._project = self._iteration[0]
        # settle and place read their own copy of the parameters: the moment a refresh lands, `settle`
        # needs the old animation time, while the frame's drawing already starts the new move (t = 0).
        self.settle_params = Params(EMBED, "embedding.settle", n=n, h=h, t=1.0)
        place = [self.settle_params.buffer, self.proj, self.basis, self.pos]
        self._settle = make_dispatch("embedding.wgsl", "settle", place, (math.ceil(n / 64),))
        self._place = make_dispatch("embedding.wgsl", "place", place, (math.ceil(n / 64),))
        draw = [p, self.pos, self.labels, self.palette, self.basis, canvas_hidden, self.pick, self.texture.view]
        self._draw = [make_dispatch("embedding.wgsl", "clear", draw, grid_2d(size, size)),
                      make_dispatch("embedding.wgsl", "splat", draw, _groups(n, 64)),
                      make_dispatch("embedding.wgsl", "marks", draw, (1, 1, 2))]
        pick = [p, self.pos, self.pick, readout_buffer]
        self._pick = [make_dispatch("embedding.wgsl", "pick_reset", pick, (1,)),
                      make_dispatch("embedding.wgsl", "pick_nearest", pick, _groups(n, 64)),
                      make_dispatch("embedding.wgsl", "pick_index", pick, _groups(n, 64)),
                      make_dispatch("embedding.wgsl", "pick_publish", pick, (1,)),
                      make_dispatch("embedding.wgsl", "digit", [p, self.pick, test.images, self.digit.view],
                                    grid_2d(test.width, test.height))]

        self.refreshes = 0            # refreshes finished
        self._piece = None            # next chunk of a refresh under way (None: none)
        self._version = None          # weights version of the last refresh started
        self._steps = 0               # training steps at that refresh
        self._moved_at = None         # when the last refresh finished (the animation's clock)
        self._drawn = None            # what the texture shows (redraw key)
        self._picked = None

    # -- refresh --------------------------------------------------------------------------------------------
    def solve(self, iterations: int) -> list:
        """The PCA after the activations are stored: mean, power iterations, the new targets."""
        out = [self._mean]
        for _ in range(iterations):
            out += self._iteration
        return out + [self._project, self._settle, self._place]

    def refresh_dispatches(self, iterations: int | None = None) -> list:
        """A whole refresh at once (tests; a GPU): every chunk, then the solve."""
        out = [d for prog in self.chunks for d in prog.dispatches]
        return out + self.solve(iterations or (FIRST_ITERATIONS if self.refreshes == 0 else ITERATIONS))

    def due(self, weights_version: int, steps: int) -> bool:
        """A refresh is due: none yet, or the weights changed and either REFRESH_STEPS steps
        passed or they changed some other way (a load, a reset: the step count went back
        or did not move)."""
        if self._version is None:
            return True
        if weights_version == self._version:
            return False
        moved = steps - self._steps
        return moved >= REFRESH_STEPS or moved <= 0

    def dispatches(self, weights_version: int, steps: int, now: float, all_at_once: bool,
                   cursor: tuple[float, float] | None, marker: bool, canvas_key) -> list:
        """This frame's work: a piece of a refresh (all of it when `all_at_once`), the
        animation, the pick (cursor in texture pixels, None: not over the view), the redraw."""
        out = []
        if self._piece is None and self.due(weights_version, steps):
            self._piece, self._version, self._steps = 0, weights_version, steps
        while self._piece is not None:
            if self._piece < len(self.chunks):
                out += self.chunks[self._piece].dispatches
                self._piece += 1
            else:
                self.settle_params.update(t=self._t(now))   # the next move starts where the points are now
                out += self.solve(FIRST_ITERATIONS if self.refreshes == 0 else ITERATIONS)
                self._piece = None
                self.refreshes += 1
                self._moved_at = now
            if not all_at_once:
                break
        t = self._t(now)
        pick = dict(picking=0) if cursor is None else dict(picking=1, cursor_x=cursor[0], cursor_y=cursor[1])
        self.params.update(t=t, marker=int(marker), **pick)
        if self.refreshes == 0:
            return out
        pick_key = (self.refreshes, t, cursor)
        if pick_key != self._picked:
            out += self._pick
            self._picked = pick_key
        key = (pick_key, marker, canvas_key)
        if key != self._drawn:
            out += self._draw
            self._drawn = key
        return out

    def _t(self, now: float) -> float:
        if self._moved_at is None:
            return 1.0
        return min(1.0, (now - self._moved_at) / TRANSITION_S)

    @property
    def refreshing(self) -> bool:
        return self._piece is not None
