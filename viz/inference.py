"""Inference as a traced program: the model's forward pass for a fixed input tensor,
recorded once through the engine's ops and replayed every frame.

It keeps every layer's output (the activations the Layers panel draws) and the
softmax probabilities. No autograd walk happens; the recorded dispatches read the
model's parameter arena, so the replay always uses the weights as they are now (the
window traces it on the timeline's display model: the live weights or a snapshot).
"""
from __future__ import annotations

from ..compute import ops
from ..compute.device import get_device
from ..compute.program import Program
from ..compute.tensor import Tensor


class Forward:
    def __init__(self, model, x: Tensor, label: str = "viz.forward"):
        dev = get_device()
        dev.stream.flush()  # nothing of anyone else's may end up in the trace
        self.model = model
        self.x = x
        self.trace: list[tuple[int, Tensor]] = []   # (index of the last layer it includes, output)
        with dev.stream.capture(label) as prog:
            self.logits = model.forward(x, train=False, trace=self.trace)
            self.probs = ops.softmax(self.logits)
        dev.stream.discard()
        self.program: Program = prog
        # The output of every layer with parameters (after its ReLU, if fused): what the views draw.
        layers = model.layers
        self.activations: list[Tensor] = []
        for index, t in self.trace:
            owner = index - 1 if layers[index].__class__.__name__ == "ReLU" and index > 0 else index
            if layers[owner].has_params:
                self.activations.append(t)

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    def dispatches(self) -> list:
        return list(self.program.dispatches)
