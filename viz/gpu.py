"""Small wgpu helpers for the visualizer's own passes.

The engine's `Device.dispatch` records onto the training stream; the visualizer
instead builds its per-frame passes once as `Program`s (lists of dispatches) and
encodes them every frame. What changes between frames lives in small mutable
parameter buffers (`Params`) written with `queue.write_buffer` only when a value
actually changed.
"""
from __future__ import annotations

import math

import wgpu

from ..compute.device import UNIFORM, get_device
from ..compute.gpu_struct import GpuStruct
from ..compute.program import Dispatch
from . import structs as _view_structs  # noqa: F401 - registers the view structs
from .structs import NONE

TEXTURE_USAGE = (wgpu.TextureUsage.STORAGE_BINDING | wgpu.TextureUsage.TEXTURE_BINDING
                 | wgpu.TextureUsage.COPY_SRC)
PARAMS = UNIFORM | wgpu.BufferUsage.STORAGE


def make_dispatch(shader: str, entry: str, resources: list, workgroups, **constants) -> Dispatch:
    """A dispatch (pipeline + bind group + grid) that is NOT recorded on the engine's stream."""
    dev = get_device()
    pipe = dev.pipeline(shader, entry, **constants)
    wg = tuple(int(w) for w in workgroups) + (1,) * (3 - len(tuple(workgroups)))
    return Dispatch(pipe, dev.bind_group(pipe, resources), wg, f"{shader}:{entry}")


def grid_2d(width: int, height: int, tile: int = 16) -> tuple[int, int]:
    return max(1, math.ceil(width / tile)), max(1, math.ceil(height / tile))


class Params:
    """A small parameter buffer holding one struct (viz/structs.py); rewritten only on change.

    The view shaders read it as read-only *storage*, not as a uniform: Mesa's
    lavapipe recompiles a shader that uses a uniform in a loop condition
    ("inlined uniforms") and leaked that memory on every dispatch (found by
    benchmarks/soak.py; about 0.4 MB a dispatch)."""

    def __init__(self, layout: GpuStruct, label: str = "params", **fields):
        self.layout = layout
        self.buffer = get_device().buffer(layout.size, label, usage=PARAMS)
        self.values: dict = {}
        self._written: bytes | None = None
        self.set(**fields)

    def set(self, **fields) -> bool:
        """Replace all fields (those not given are zero); returns whether the bytes changed."""
        raw = self.layout.pack(**fields)
        if raw == self._written:
            return False
        get_device().queue.write_buffer(self.buffer, 0, raw)
        self._written = raw
        self.values = dict(fields)
        return True

    def update(self, **changes) -> bool:
        """Change some fields, keep the others."""
        return self.set(**{**self.values, **changes})


class ViewTexture:
    """An rgba8unorm texture a compute pass writes and imgui shows.

    `nearest`: shown with nearest sampling (crisp pixels for small textures)."""

    def __init__(self, width: int, height: int, label: str, nearest: bool = True):
        self.width, self.height = int(width), int(height)
        self.label = label
        self.nearest = nearest
        side = get_device().limits.get("max-texture-dimension-2d", 8192)
        if max(self.width, self.height) > side:
            from ..compute.budget import BudgetError
            raise BudgetError(f"the window's {label} view needs a {self.width} x {self.height} texture, above this "
                              f"GPU's {side}-pixel texture limit; use a narrower network in the window, or train "
                              f"and evaluate it headless (mnist-viz train / eval)")
        self.texture = get_device().device.create_texture(
            size=(self.width, self.height, 1), format=wgpu.TextureFormat.rgba8unorm,
            usage=TEXTURE_USAGE, label=label)
        self.view = self.texture.create_view()
        self.ref = None  # imgui texture reference, set when registered with the GUI

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def read(self):
        """Test helper: the texture's pixels as an [H, W, 4] u8 array (a blocking readback
        counted by the readback meter; never called by the frame loop)."""
        import numpy as np
        dev = get_device()
        data = dev.queue.read_texture({"texture": self.texture}, {"bytes_per_row": self.width * 4},
                                      (self.width, self.height, 1))
        dev.readback.record(self.width * self.height * 4, f"texture:{self.label}")
        return np.frombuffer(data, np.uint8).reshape(self.height, self.width, 4).copy()
