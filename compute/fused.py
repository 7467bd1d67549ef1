"""The fused training step: two dependent dispatches per step (fused_step.wgsl).

It covers the network the product trains by default (one hidden ReLU layer, no
dropout); anything else goes through the traced autograd program, which stays
the reference the fused step is tested against.
"""
from __future__ import annotations

import math

from .device import get_device
from .arch import Linear, ReLU
from .program import Dispatch, Program
from .structs import FUSED_STEP

MAX_D, MAX_H, MAX_C = 1024, 512, 64


def fused_supported(model, recipe) -> bool:
    layers = model.layers
    if len(layers) != 3 or not (isinstance(layers[0], Linear) and isinstance(layers[1], ReLU)
                                and isinstance(layers[2], Linear)):
        return False
    d, h, c = layers[0].in_features, layers[0].out_features, layers[2].out_features
    return (d <= MAX_D and h <= MAX_H and c <= MAX_C and d % 4 == 0 and h % 4 == 0
            and recipe.batch_size <= 65535)


class FusedStep:
    def __init__(self, model, data, metrics, optimizer, recipe, wg: int | None = None):
        dev = get_device()
        # A GPU hides load latency with many invocations per row; lavapipe runs a
        # workgroup's invocations in SIMD batches on one core and prefers fewer.
        wg = wg or (256 if dev.is_cpu else 512)  # 512: fastest at batch 32-256 on an H100
        layers = model.layers
        d, h, c = layers[0].in_features, layers[0].out_features, layers[2].out_features
        b = recipe.batch_size
        arena = model.arena
        off = {name: arena.offsets[name] for name in ("0.weight", "0.bias", "2.weight", "2.bias")}
        self.scratch = {name: dev.buffer(size * 4, f"fused.{name}") for name, size in
                        (("x", b * d), ("h", b * h), ("dz", b * c), ("dh", b * h), ("rows", b * 2))}
        split = data.train
        nw1 = math.ceil(d // 4 * h / 256)
        n_small = h + h * c + c + 1                       # b1, W2, b2, metrics
        prm = dev.uniform(FUSED_STEP, B=b, N=split.n, W=split.width, shift=recipe.shift, seed=recipe.seed,
                          w1=off["0.weight"], b1=off["0.bias"], w2=off["2.weight"], b2=off["2.bias"], nw1=nw1)
        resources = [prm, optimizer.hyper, metrics.state, arena.buffer, optimizer.m1, optimizer.m2,
                     split.images, split.labels, data.perm, self.scratch["x"], self.scratch["h"],
                     self.scratch["dz"], self.scratch["dh"], self.scratch["rows"], metrics.history, arena.buffer]
        consts = dict(D=d, H=h, C=c, WG=wg)
        # Both passes share one layout (one block of bindings) and so one bind group.
        p1 = dev.pipeline("fused_step.wgsl", "forward_backward", **consts)
        p2 = dev.pipeline("fused_step.wgsl", "update", **consts)
        group = dev.bind_group(p1, resources)
        groups = nw1 + math.ceil(n_small / 16)
        self.program = Program([
            Dispatch(p1, group, (b, 1, 1), "fused:forward_backward"),
            Dispatch(p2, group, (min(groups, 65535), math.ceil(groups / 65535), 1), "fused:update"),
        ], label="fused_step")
