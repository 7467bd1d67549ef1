"""Inference as a traced program: the model's forward pass for a fixed input tensor,
recorded once through the engine's ops and replayed every frame.

It keeps every layer's output (the activations the Layers panel draws) and the
softmax probabilities. No autograd walk happens; the recorded dispatches read the
live parameter arena, so the replay always uses the weights as they are now.
"""
from __future__ import annotations

from ..compute import ops
from ..compute.device import get_device
from ..compute.nn import Dropout, Linear, ReLU
from ..compute.program import Program
from ..compute.tensor import Tensor


class Forward:
    def __init__(self, model, x: Tensor, label: str = "viz.forward"):
        dev = get_device()
        dev.stream.flush()  # nothing of anyone else's may end up in the trace
        self.model = model
        self.x = x
        self.activations: list[Tensor] = []   # output of every Linear (after its ReLU, if any)
        with dev.stream.capture(label) as prog:
            h = x
            layers = model.layers
            i = 0
            while i < len(layers):
                layer = layers[i]
                if isinstance(layer, Linear):
                    fuse = i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)
                    h = ops.linear(h, layer.weight, layer.bias, relu=fuse)
                    self.activations.append(h)
                    i += 2 if fuse else 1
                    continue
                if isinstance(layer, ReLU):
                    h = ops.relu(h)
                    self.activations[-1] = h
                elif not isinstance(layer, Dropout):  # dropout is the identity at inference
                    raise ValueError(f"cannot draw layer {layer!r}")
                i += 1
            self.logits = h
            self.probs = ops.softmax(h)
        dev.stream.discard()
        self.program: Program = prog

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    def dispatches(self) -> list:
        return list(self.program.dispatches)
