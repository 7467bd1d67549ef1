"""One GPU device for the whole process: adapter, queue, pipeline cache, readback meter.

Everything that touches wgpu directly funnels through here so that two things stay
true and testable: pipelines are built once (cache keyed by shader + entry point +
override constants), and every byte that travels GPU -> CPU is counted.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import wgpu

from .bindings import entry_bindings
from .budget import buffer_bytes
from .gpu_struct import GpuStruct
from .program import Dispatch, Stream
from .shaders import load_wgsl

STORAGE = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
UNIFORM = wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST


class NoAdapterError(RuntimeError):
    """No GPU adapter: the message says what to install."""


class DeviceLostError(RuntimeError):
    """The GPU device was lost (driver reset, GPU removed, out of memory)."""


class _LostWatcher(logging.Handler):
    """wgpu-native reports a lost device only through the 'wgpu' logger; catch it there."""

    def __init__(self, device: "Device"):
        super().__init__(level=logging.ERROR)
        self.device = device

    def emit(self, record):
        msg = record.getMessage()
        if "device was lost" in msg.lower():
            self.device.lost = msg.strip().splitlines()[0]


@dataclass
class ReadbackMeter:
    """Counts every GPU -> CPU mapping, so 'zero readback' is an assertion, not a hope."""

    total_bytes: int = 0
    count: int = 0
    largest: int = 0
    log: list = field(default_factory=list)

    def record(self, nbytes: int, label: str) -> None:
        self.total_bytes += nbytes
        self.count += 1
        self.largest = max(self.largest, nbytes)
        if len(self.log) < 1000:
            self.log.append((label, nbytes))

    def snapshot(self) -> tuple[int, int, int]:
        return self.total_bytes, self.count, self.largest

    def reset(self) -> None:
        self.total_bytes = self.count = self.largest = 0
        self.log.clear()


def _request_adapter():
    """Prefer a discrete GPU; fall back to whatever Vulkan/Metal/DX12 offers (lavapipe on CI)."""
    forced = os.environ.get("MNIST_VIZ_ADAPTER", "").lower()
    try:
        adapters = wgpu.gpu.enumerate_adapters_sync()
    except Exception:  # pragma: no cover - backend failure looks like "no adapter"
        adapters = []
    if forced == "none":
        adapters = []
    if forced and forced != "none":
        adapters = [a for a in adapters if forced in a.info["device"].lower()] or adapters
    if not adapters:
        raise NoAdapterError(
            "no GPU adapter found: install a Vulkan driver (your GPU vendor's driver, or "
            "Mesa's CPU driver with `apt-get install mesa-vulkan-drivers`)"
        )
    rank = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3}
    return min(adapters, key=lambda a: rank.get(a.info.get("adapter_type", ""), 4))


def _lowered_limits(text: str, adapter_limits) -> dict:
    """MNIST_VIZ_LIMITS='max-storage-buffer-binding-size=4194304,...': run as a GPU with these
    smaller limits would (the device enforces them), to see whether a model fits a smaller
    GPU; the tests use it to reach the limits with small data. Only lowering is possible."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if not name.startswith("max-") or name not in adapter_limits or not value.strip().isdigit():
            raise ValueError(f"MNIST_VIZ_LIMITS: {item!r} is not NAME=NUMBER with a limit this GPU has (e.g. "
                             f"max-storage-buffer-binding-size=4194304; only max-* limits can be lowered)")
        out[name] = min(int(value), adapter_limits[name])
    return out


class Device:
    """The process's GPU: create with `get_device()`."""

    def __init__(self):
        self.adapter = _request_adapter()
        limits = self.adapter.limits
        wanted = [
            "max-storage-buffers-per-shader-stage",
            "max-storage-buffer-binding-size",
            "max-buffer-size",
            "max-compute-workgroup-storage-size",
            "max-compute-invocations-per-workgroup",
            "max-compute-workgroup-size-x",
            "max-storage-textures-per-shader-stage",
            "max-texture-dimension-2d",
        ]
        required_limits = {k: limits[k] for k in wanted if k in limits}
        required_limits.update(_lowered_limits(os.environ.get("MNIST_VIZ_LIMITS", ""), limits))
        features = [f for f in ("timestamp-query", "timestamp-query-inside-passes") if f in self.adapter.features]
        self.device = self.adapter.request_device_sync(
            required_features=features, required_limits=required_limits
        )
        self.queue = self.device.queue
        self.info = dict(self.adapter.info)
        self.limits = dict(self.device.limits)
        self.features = set(self.device.features)
        self.offset_alignment = max(256, self.limits.get("min-storage-buffer-offset-alignment", 256))
        self.readback = ReadbackMeter()
        self._pipelines: dict = {}
        self._modules: dict = {}
        self._layouts: dict = {}
        self._uniforms: dict = {}
        self._bindings: dict = {}        # id(pipeline) -> (bind group layout, bindings, label)
        self._staging: dict = {}         # bytes -> mappable buffers free for read_in
        self.lost: str | None = None
        logging.getLogger("wgpu").addHandler(_LostWatcher(self))
        self.stream = Stream(self)
        # Placeholders for bindings a kernel variant ignores (read-only and writable
        # uses of one buffer may not meet in one dispatch, hence two).
        self.dummy_ro = self.buffer(256, "dummy_ro")
        self.dummy_rw = self.buffer(256, "dummy_rw")

    # -- description -------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.info.get('device', '?')} ({self.info.get('backend_type', '?')})"

    @property
    def is_cpu(self) -> bool:
        return self.info.get("adapter_type") == "CPU"

    # -- buffers -------------------------------------------------------------------
    def buffer(self, nbytes: int, label: str = "", usage=STORAGE):
        """A zero-initialised GPU buffer (wgpu zero-fills new buffers)."""
        return self.device.create_buffer(size=buffer_bytes(nbytes), usage=usage, label=label)

    def upload(self, array: np.ndarray, label: str = "", usage=STORAGE):
        data = np.ascontiguousarray(array)
        buf = self.buffer(data.nbytes, label, usage)
        if data.nbytes:
            self.write(buf, data)
        return buf

    def write(self, buffer, array, offset: int = 0) -> None:
        data = np.ascontiguousarray(array)
        raw = data.tobytes()
        if len(raw) % 4:
            raw += b"\0" * (4 - len(raw) % 4)
        self.queue.write_buffer(buffer, offset, raw)

    def uniform(self, layout: GpuStruct, **fields) -> object:
        """An immutable parameter buffer holding one packed struct, shared between
        identical requests; bindable as a uniform or as read-only storage."""
        raw = layout.pack(**fields)
        buf = self._uniforms.get(raw)
        if buf is None:
            buf = self.device.create_buffer_with_data(data=raw, usage=UNIFORM | wgpu.BufferUsage.STORAGE)
            self._uniforms[raw] = buf
        return buf

    def read(self, buffer, offset: int = 0, size: int | None = None, label: str = "") -> bytes:
        """Blocking GPU -> CPU copy. Counted by the readback meter; never used per frame."""
        size = buffer.size - offset if size is None else size
        self.check()
        try:
            data = self.queue.read_buffer(buffer, offset, size)
        except Exception:
            self.check()
            raise
        self.readback.record(size, label or buffer.label)
        return bytes(data)

    def read_async(self, buffer, offset: int, size: int, label: str = ""):
        """Start a non-blocking readback of a few bytes (a copy submitted on its own); returns a
        `PendingRead`."""
        enc = self.device.create_command_encoder()
        pending = self.read_in(enc, buffer, offset, size, label)
        self.queue.submit([enc.finish()])
        pending.start()
        return pending

    def read_in(self, encoder, buffer, offset: int, size: int, label: str = ""):
        """A non-blocking readback of a few bytes copied by `encoder` (a frame's): no submission of
        its own (a submission, with the staging buffer made and destroyed for it, cost the H100
        host's window 10-16 ms of CPU now and then: a dropped frame per read). The returned
        `PendingRead` starts (`start()`) once the encoder is submitted; its staging buffer is
        reused by later reads."""
        n = _round_up(size, 4)
        pool = self._staging.setdefault(n, [])
        staging = pool.pop() if pool else self.device.create_buffer(
            size=n, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST, label=f"read.{label}")
        encoder.copy_buffer_to_buffer(buffer, offset, staging, 0, n)
        self.readback.record(size, label or buffer.label)
        return PendingRead(staging, size, release=pool.append)

    # -- pipelines -------------------------------------------------------------------
    def module(self, shader: str, source: str | None = None):
        """The shader module of shaders/<shader>, or of generated `source` cached under that name."""
        mod = self._modules.get(shader)
        if mod is None:
            mod = self.device.create_shader_module(code=source if source is not None else load_wgsl(shader),
                                                   label=shader)
            self._modules[shader] = mod
        return mod

    def pipeline(self, shader: str, entry: str = "main", source: str | None = None, **constants):
        """Compute pipeline for `shader`'s `entry` with WGSL override constants; built once.

        Its bind group layout is explicit: the whole block of bindings the shader
        declares for this entry point (bindings.py), used or not, so every variant
        of a kernel takes the same resources and pipelines of one block share bind groups."""
        key = (shader, entry, tuple(sorted(constants.items())))
        pipe = self._pipelines.get(key)
        if pipe is None:
            bindings = entry_bindings(source if source is not None else load_wgsl(shader), entry)
            bgl, pipe_layout = self._layout(shader, bindings)
            stage = {"module": self.module(shader, source), "entry_point": entry}
            if constants:
                stage["constants"] = {k: float(v) for k, v in constants.items()}
            pipe = self.device.create_compute_pipeline(layout=pipe_layout, compute=stage, label=f"{shader}:{entry}")
            self._pipelines[key] = pipe
            self._bindings[id(pipe)] = (bgl, bindings, f"{shader}:{entry}")
        return pipe

    def _layout(self, shader: str, bindings: tuple):
        """(bind group layout, pipeline layout) of one block of a shader's bindings."""
        key = (shader, tuple(b.name for b in bindings))
        cached = self._layouts.get(key)
        if cached is None:
            entries = [{"binding": b.index, "visibility": wgpu.ShaderStage.COMPUTE, **b.entry} for b in bindings]
            bgl = self.device.create_bind_group_layout(entries=entries, label=f"{shader}:{bindings[0].name if bindings else ''}")
            cached = self._layouts[key] = (bgl, self.device.create_pipeline_layout(bind_group_layouts=[bgl]))
        return cached

    def bind_group(self, pipeline, resources: list):
        """Bind group for `pipeline` with `resources` at bindings 0..n-1 (buffers, views or Tensors)."""
        bgl, bindings, label = self._bindings[id(pipeline)]
        if len(resources) != len(bindings):
            raise ValueError(f"{label}: {len(resources)} resources for the {len(bindings)} bindings "
                             f"({', '.join(b.name for b in bindings)})")
        entries = [{"binding": i, "resource": _resource(res)} for i, res in enumerate(resources)]
        return self.device.create_bind_group(layout=bgl, entries=entries)

    def dispatch(self, shader: str, entry: str, resources: list, workgroups, **constants) -> Dispatch:
        """Record one dispatch on the stream (run at the next flush, traced if capturing)."""
        pipe = self.pipeline(shader, entry, **constants)
        wg = tuple(workgroups) + (1,) * (3 - len(tuple(workgroups)))
        d = Dispatch(pipe, self.bind_group(pipe, resources), wg, f"{shader}:{entry}")
        self.stream.record(d)
        return d

    def submit(self, encoder) -> None:
        self.check()
        self.queue.submit([encoder.finish()])

    def check(self) -> None:
        """Raise DeviceLostError once the device is gone, instead of failing obscurely later."""
        if self.lost:
            raise DeviceLostError(f"the GPU device was lost ({self.lost}); restart the program")

    def sync(self) -> None:
        """Wait for all submitted work (costs no readback)."""
        self.device._poll_wait() if hasattr(self.device, "_poll_wait") else self.queue.on_submitted_work_done_sync()


class PendingRead:
    """A few bytes on their way back (`start()` once their copy is submitted); `ready()` checks
    without blocking."""

    def __init__(self, staging, size, release):
        self.staging = staging
        self.size = size
        self._release = release        # takes the staging buffer back once read (Device.read_in's pool)
        self._promise = None
        self._data = None

    @property
    def started(self) -> bool:
        return self._promise is not None

    def start(self) -> None:
        """Map the staging buffer (once the copy into it has been submitted)."""
        self._promise = self.staging.map_async(wgpu.MapMode.READ)

    def ready(self) -> bool:
        if self._data is None and self.started and self._arrived():
            self._take()
        return self._data is not None

    def _arrived(self) -> bool:
        # wgpu-py's poll thread fulfils the map promise ('pending-fulfilled') but
        # sets map_state only when the promise is waited on; either means arrived.
        return self.staging.map_state == "mapped" or getattr(self._promise, "_state", "pending") != "pending"

    def _take(self) -> None:
        self._promise.sync_wait()  # returns at once once fulfilled
        self._data = bytes(self.staging.read_mapped(0, self.size))
        self.staging.unmap()
        self._release(self.staging)

    def result(self) -> bytes:
        """The bytes (waits if they have not arrived yet)."""
        if not self.started:
            raise RuntimeError("this read's copy was not submitted yet: start() it after the submission")
        if self._data is None:
            self._take()
        return self._data


def _resource(res):
    if hasattr(res, "binding"):  # Tensor
        return res.binding()
    if isinstance(res, dict):
        return res
    if isinstance(res, wgpu.GPUBuffer):
        return {"buffer": res, "offset": 0, "size": res.size}
    return res  # texture view, sampler


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


_device: Device | None = None


def get_device() -> Device:
    """The process-wide device (created on first use)."""
    global _device
    if _device is None:
        _device = Device()
    return _device

