"""Saliency: which input pixels raise or lower a class's score, and "push toward class k".

A separate traced program over the canvas's input tensor: the same buffer as the
canvas's `x`, viewed as a tensor that requires grad, through the model's forward
pass and the autograd ops' backward (compute/ops.py, compute/conv.py) from one
class's score to the input. The parameters are traced as not requiring grad, so
the training's gradient arena is never written. saliency.wgsl seeds the backward
pass and draws the gradient as a signed overlay on the canvas (red raises the
score, blue lowers it) in the same frame as the stroke.

The push is gradient ascent on the input image itself (the network's input,
clamped to [0, 1]): a few steps a frame of the log-probability's gradient, so the
views (the network input, the prediction) show the digit turning into what the
network thinks a k looks like. Painting, clearing or loading replaces the input
again.
"""
from __future__ import annotations

from ..compute.device import get_device
from ..compute.program import Program
from ..compute.tensor import Tensor
from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import NONE, SALIENCY

PUSH_STEPS = 30            # ascent steps of one push
PUSH_PER_FRAME = 3         # of them encoded in one frame (watchable)
PUSH_STEP = 0.06           # the largest change of a pixel in one step
GAIN = 0.5                 # overlay: opaque at half the largest |gradient|


def trace_input_gradient(model, x: Tensor, params) -> tuple[Program, Tensor]:
    """Forward + backward from the score `params` (a SALIENCY Params) selects to `x`, traced
    into a Program; returns it and the gradient tensor it writes (the shape of x)."""
    dev = get_device()
    dev.stream.flush()           # nothing of anyone else's may end up in the trace
    xg = Tensor(x.shape, x.buffer, x.offset, requires_grad=True, label="saliency.x")
    weights = model.parameters()
    kept = [p.requires_grad for p in weights]
    try:
        for p in weights:
            p.requires_grad = False
        with dev.stream.capture("saliency") as prog:
            logits = model.forward(xg, train=False)
            seed = Tensor(logits.shape, label="saliency.seed")
            dev.dispatch("saliency.wgsl", "seed_grad", [params.buffer, logits, seed], (1,))
            logits.grad = seed
            logits.backward()
    finally:
        dev.stream.discard()
        for p, k in zip(weights, kept):
            p.requires_grad = k
    return prog, xg.grad


class Saliency:
    def __init__(self, model, x: Tensor, norm, image_size: tuple[int, int], canvas_size: tuple[int, int],
                 classes: int):
        """`x`: the network's input [1, D] (canvas.x); `norm`: canvas.norm (the resampling's
        measure, to map input pixels back onto the canvas)."""
        dev = get_device()
        iw, ih = image_size
        cw, ch = canvas_size
        common = dict(classes=classes, d=iw * ih, iw=iw, ih=ih, cw=cw, ch=ch, step=PUSH_STEP, gain=GAIN)
        self.map_params = Params(SALIENCY, "saliency.map", mode=0, class_index=NONE, **common)
        self.push_params = Params(SALIENCY, "saliency.push", mode=1, class_index=0, **common)
        self._map, self.grad = trace_input_gradient(model, x, self.map_params)
        self._push, push_grad = trace_input_gradient(model, x, self.push_params)
        self.stats = dev.buffer(16, "saliency.stats")
        self.texture = ViewTexture(cw, ch, "saliency", nearest=True)

        def tail(params, grad, entry, wg):
            return make_dispatch("saliency.wgsl", entry, [params.buffer, grad, self.stats, x, norm,
                                                          self.texture.view], wg)
        self._map_tail = [tail(self.map_params, self.grad, "absmax", (1,)),
                          tail(self.map_params, self.grad, "overlay", grid_2d(cw, ch))]
        self._push_tail = [tail(self.push_params, push_grad, "absmax", (1,)),
                           tail(self.push_params, push_grad, "ascend", (-(-iw * ih // 256),))]
        self.target: int | None = None     # the class the map explains (None: the predicted one)
        self.pushing: int | None = None    # the class a push is heading for
        self._left = 0
        self.revision = 0                  # bumped by every push step (the input changed)
        self._drawn = None

    # -- settings (actions) ----------------------------------------------------------------------------
    def set_target(self, k: int | None) -> None:
        self.target = None if k is None else int(k)

    def push(self, k: int, steps: int = PUSH_STEPS) -> None:
        """Start `steps` ascent steps of class k's log-probability on the input."""
        self.pushing = int(k)
        self.push_params.update(class_index=int(k))
        self._left = int(steps)

    # -- per frame ---------------------------------------------------------------------------------------
    def push_dispatches(self) -> list:
        """This frame's push steps (before the views' forward pass reads the input)."""
        if self._left <= 0:
            self.pushing = None
            return []
        n = min(PUSH_PER_FRAME, self._left)
        self._left -= n
        self.revision += 1
        return (list(self._push.dispatches) + self._push_tail) * n

    def map_dispatches(self, plain: bool, centred: bool, key) -> list:
        """The map and its overlay, when `key` (the input and the weights) or a setting changed."""
        self.map_params.update(class_index=NONE if self.target is None else self.target, plain=int(plain),
                               centred=int(centred))
        full = (key, self.revision, tuple(self.map_params.values.items()))
        if full == self._drawn:
            return []
        self._drawn = full
        return list(self._map.dispatches) + self._map_tail
