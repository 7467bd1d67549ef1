"""Dispatch recording and replay: the step program.

Every op appends a `Dispatch` (pipeline, bind group, workgroup counts) to the
device's pending list instead of talking to wgpu directly. Running eagerly means
encoding the pending list and submitting it. Tracing means also appending each
dispatch to a `Program`; replaying the program re-encodes the same dispatches
against the same buffers, with no Python op code, autograd walk or allocation in
the way (tinygrad's JIT idea). Whatever changes between replays (the batch, the
learning rate) is read by the kernels from GPU buffers, the step counter first.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Dispatch:
    pipeline: object
    bind_group: object
    workgroups: tuple
    label: str = ""


class Program:
    """A flat list of dispatches that can be encoded any number of times."""

    def __init__(self, dispatches=None, label: str = ""):
        self.dispatches: list[Dispatch] = list(dispatches or [])
        self.label = label

    def __len__(self) -> int:
        return len(self.dispatches)

    def append(self, d: Dispatch) -> None:
        self.dispatches.append(d)

    def encode(self, encoder, repeat: int = 1, timestamps=None) -> None:
        """Encode `repeat` back-to-back copies into one compute pass.

        WebGPU orders dispatches of a pass and makes each one's writes visible to
        the next, so one pass holds a whole run of training steps. Encoding is on
        the critical path of a fast step (a few microseconds of GPU per dispatch),
        so redundant pipeline / bind-group switches are dropped and the calls go
        straight to wgpu-native when its binding is the one in use.
        """
        if not self.dispatches or repeat <= 0:
            return
        cpass = encoder.begin_compute_pass(timestamp_writes=timestamps) if timestamps else encoder.begin_compute_pass()
        native = self._native_calls(cpass)
        if native is not None:
            first, steady = native
            for fn, args in first:
                fn(*args)
            for _ in range(repeat - 1):
                for fn, args in steady:
                    fn(*args)
        else:
            pipe = group = None
            for _ in range(repeat):
                for d in self.dispatches:
                    if d.pipeline is not pipe:
                        cpass.set_pipeline(d.pipeline)
                        pipe = d.pipeline
                    if d.bind_group is not group:
                        cpass.set_bind_group(0, d.bind_group)
                        group = d.bind_group
                    cpass.dispatch_workgroups(*d.workgroups)
        cpass.end()

    def _native_calls(self, cpass):
        """(first repeat, later repeats) as lists of (C function, args); None off wgpu-native.

        A pipeline or bind group that is already bound is not bound again; a bind
        group shared by pipelines of one layout stays bound across set_pipeline."""
        try:
            from wgpu.backends.wgpu_native._api import ffi, libf
            handle = cpass._internal
        except (ImportError, AttributeError):  # pragma: no cover - other backends
            return None

        def calls(pipe, group):
            out = []
            for d in self.dispatches:
                if d.pipeline is not pipe:
                    out.append((libf.wgpuComputePassEncoderSetPipeline, (handle, d.pipeline._internal)))
                    pipe = d.pipeline
                if d.bind_group is not group:
                    out.append((libf.wgpuComputePassEncoderSetBindGroup, (handle, 0, d.bind_group._internal, 0, ffi.NULL)))
                    group = d.bind_group
                out.append((libf.wgpuComputePassEncoderDispatchWorkgroups, (handle, *d.workgroups)))
            return out

        last = self.dispatches[-1]
        return calls(None, None), calls(last.pipeline, last.bind_group)


class Stream:
    """The device's pending dispatches plus any programs being traced."""

    def __init__(self, device):
        self.device = device
        self.pending = Program(label="pending")
        self._captures: list[Program] = []

    def record(self, d: Dispatch) -> None:
        self.pending.append(d)
        for prog in self._captures:
            prog.append(d)

    def flush(self) -> None:
        """Submit everything recorded so far (no wait)."""
        if not self.pending.dispatches:
            return
        enc = self.device.device.create_command_encoder()
        self.pending.encode(enc)
        self.device.queue.submit([enc.finish()])
        self.pending = Program(label="pending")

    def discard(self) -> None:
        self.pending = Program(label="pending")

    @contextmanager
    def capture(self, label: str = ""):
        """Trace the dispatches recorded inside the block into a Program."""
        prog = Program(label=label)
        self._captures.append(prog)
        try:
            yield prog
        finally:
            self._captures.remove(prog)
