"""Time travel: weight snapshots kept on the GPU, and the arena the model views read.

Every `every` run steps the session (a StepObserver) has the live parameter arena
copied into the next slot of a ring of K copies (K from a memory cap), GPU to GPU
(`copy_buffer_to_buffer`) in the frame's encoder, between the steps.

The views never read the live arena: they read `display`, a second Sequential of the
same architecture whose arena holds either a copy of the live arena (refreshed in each
frame the live weights changed) or of the chosen snapshot (copied once when the choice
changes). The traced forward pass and every model view are built on `display`, so a
past step is shown while training goes on, and nothing is traced twice. "Restore to
here" copies the display arena (the chosen snapshot) back into the live one.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..compute.budget import MIB, mib
from ..compute.device import get_device
from ..compute.nn import Sequential
from .session import StepObserver

DEFAULT_EVERY = 100            # run steps between snapshots
DEFAULT_CAP_MIB = 32           # GPU memory for the ring
MAX_SNAPSHOTS = 512


@dataclass(frozen=True)
class Snapshot:
    slot: int                  # where in the ring
    run_step: int              # steps of the run (the curves' x axis) it was taken after
    schedule_step: int         # the schedule's step then (learning rate, epoch position)
    serial: int                # the n-th snapshot taken (slots are reused)


class SnapshotRing:
    """K copies of a parameter arena in one GPU buffer; the oldest is overwritten first."""

    def __init__(self, floats: int, cap_bytes: int):
        dev = get_device()
        self.stride = floats * 4
        most = dev.limits.get("max-buffer-size", 256 * MIB) // self.stride
        self.capacity = min(cap_bytes // self.stride, most, MAX_SNAPSHOTS)    # 0: the cap holds none
        self.buffer = dev.buffer(self.capacity * self.stride, "timeline.snapshots") if self.capacity else None
        self.entries: list[Snapshot] = []        # oldest first
        self.taken = 0

    @property
    def memory_bytes(self) -> int:
        return self.capacity * self.stride

    def take(self, encoder, arena, run_step: int, schedule_step: int) -> Snapshot | None:
        if not self.capacity:
            return None
        slot = self.taken % self.capacity
        encoder.copy_buffer_to_buffer(arena, 0, self.buffer, slot * self.stride, self.stride)
        if len(self.entries) == self.capacity:
            self.entries.pop(0)
        snap = Snapshot(slot, run_step, schedule_step, self.taken)
        self.entries.append(snap)
        self.taken += 1
        return snap

    def clear(self) -> None:
        self.entries.clear()


class Timeline(StepObserver):
    kind = "snapshot"

    def __init__(self, model, every: int = DEFAULT_EVERY, cap_mib: int = DEFAULT_CAP_MIB):
        self.live = model
        self.display = Sequential(model.arch)       # the views' model: its arena is a copy
        self.every = max(1, int(every))
        self.cap_mib = max(1, int(cap_mib))
        self.ring = SnapshotRing(model.arena.size, self.cap_mib * MIB)
        self.selected: Snapshot | None = None       # None: live
        self.version = 0                            # bumped whenever the display arena changes
        self._shown = None

    # -- what the panel asks -----------------------------------------------------------------------
    @property
    def snapshots(self) -> list[Snapshot]:
        return self.ring.entries

    @property
    def memory_text(self) -> str:
        r = self.ring
        if not r.capacity:
            return f"the cap holds no snapshot of {mib(r.stride)}: raise it"
        return f"{len(r.entries)}/{r.capacity} snapshots of {mib(r.stride)}, {mib(r.memory_bytes)} on the GPU"

    @property
    def memory_short(self) -> str:
        return f"{len(self.ring.entries)}/{self.ring.capacity}, {mib(self.ring.memory_bytes)}"

    def select(self, index: int | None) -> None:
        """A snapshot (index into `snapshots`, oldest first) or None / -1: the live weights."""
        if index is None or index < 0 or index >= len(self.ring.entries):
            self.selected = None
        else:
            self.selected = self.ring.entries[index]

    def configure(self, every: int | None = None, cap_mib: int | None = None) -> None:
        """New settings; a new memory cap is a new ring (the snapshots taken so far go)."""
        if every is not None:
            self.every = max(1, int(every))
        if cap_mib is not None and max(1, int(cap_mib)) != self.cap_mib:
            self.cap_mib = max(1, int(cap_mib))
            self.ring = SnapshotRing(self.live.arena.size, self.cap_mib * MIB)
            self.selected = None
            self.last_step = None

    # -- the session's observer ---------------------------------------------------------------------
    def take(self, encoder, run) -> None:
        self.ring.take(encoder, self.live.arena.buffer, run.metrics.steps, run.step)

    def clear(self) -> None:
        super().clear()
        self.ring.clear()
        self.selected = None

    # -- per frame -----------------------------------------------------------------------------------
    def encode_display(self, encoder, weights_version: int, steps: int) -> None:
        """Bring the display arena up to date: the live weights when they changed (one
        copy), or the chosen snapshot once when the choice changed."""
        if self.last_step is not None and steps < self.last_step:
            self.clear()                            # the run started over: its past is gone
        want = ("live", weights_version) if self.selected is None else ("snapshot", self.selected.serial)
        if want == self._shown:
            return
        if self.selected is None:
            src, offset = self.live.arena.buffer, 0
        else:
            src, offset = self.ring.buffer, self.selected.slot * self.ring.stride
        encoder.copy_buffer_to_buffer(src, offset, self.display.arena.buffer, 0, self.ring.stride)
        self._shown = want
        self.version += 1

    def restore(self, session) -> None:
        """Continue training from the chosen snapshot (the display arena holds it)."""
        snap, run = self.selected, session.run
        if snap is None or run is None or self._shown != ("snapshot", snap.serial):
            return
        run.restore_weights(self.display.arena.buffer, snap.schedule_step)
        self.selected = None
        session.weights_restored(f"continuing from the weights of step {snap.run_step:,}")
