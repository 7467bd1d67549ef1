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
        the next, so one pass holds a whole run of training steps.
        """
        if not self.dispatches or repeat <= 0:
            return
        cpass = encoder.begin_compute_pass(timestamp_writes=timestamps) if timestamps else encoder.begin_compute_pass()
        current = None
        for _ in range(repeat):
            for d in self.dispatches:
                if d.pipeline is not current:
                    cpass.set_pipeline(d.pipeline)
                    current = d.pipeline
                cpass.set_bind_group(0, d.bind_group)
                cpass.dispatch_workgroups(*d.workgroups)
        cpass.end()


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
