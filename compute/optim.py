"""Optimizers (SGD with optional momentum / Nesterov, Adam) and learning-rate
schedules, run as one GPU dispatch over the whole parameter arena.

The hyper-parameters sit in a small GPU buffer that the kernel reads every step;
the learning rate is computed there from the GPU step counter. Changing a
setting live is one `queue.write_buffer`, never a rebuild of the step program.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from .device import get_device
from .ops import grid_1d
from .tensor import Tensor

SCHEDULES = ("constant", "step", "exponential", "cosine")
OPTIMIZERS = ("sgd", "adam")


@dataclass
class OptimConfig:
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "cosine"
    min_lr: float = 0.001
    total_steps: int = 1            # cosine length
    period: int = 1                 # steps per step/exponential decay period
    gamma: float = 0.5
    warmup: int = 0
    step_offset: int = 0            # schedule restarts at this step
    frozen: bool = False

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULES)})")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.min_lr < 0:
            raise ValueError(f"min-lr must be >= 0, got {self.min_lr}")

    def pack(self) -> bytes:
        """Byte image of the WGSL `Hyper` struct (schedule.wgsl)."""
        return struct.pack(
            "<11f5I", self.lr, self.min_lr, float(self.total_steps), float(self.period), self.gamma,
            float(self.warmup), self.momentum, self.beta1, self.beta2, self.eps, self.weight_decay,
            SCHEDULES.index(self.schedule), OPTIMIZERS.index(self.optimizer), int(self.nesterov),
            self.step_offset, int(self.frozen))

    def lr_at(self, step: int) -> float:
        """CPU mirror of `learning_rate()` in schedule.wgsl (for display and tests)."""
        import math
        t = max(0, step - self.step_offset)
        lr = self.lr
        if self.schedule == "step":
            lr = self.lr * self.gamma ** math.floor(t / max(self.period, 1))
        elif self.schedule == "exponential":
            lr = self.lr * self.gamma ** (t / max(self.period, 1))
        elif self.schedule == "cosine":
            x = min(t, self.total_steps) / max(self.total_steps, 1)
            lr = self.min_lr + (self.lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * x))
        if self.warmup > 0 and t < self.warmup:
            lr *= (t + 1) / self.warmup
        return lr


class Optimizer:
    """Owns the moment buffers and the hyper-parameter buffer for one arena."""

    def __init__(self, arena, config: OptimConfig, state: Tensor):
        config.validate()
        dev = get_device()
        self.arena = arena
        self.state = state
        self.m1 = dev.buffer(arena.size * 4, "optim.m1")
        self.m2 = dev.buffer(arena.size * 4, "optim.m2")
        self.hyper = dev.buffer(64, "optim.hyper")
        self.config = config
        self.configure(config)

    def configure(self, config: OptimConfig) -> None:
        """Apply new settings from the next step on (a queue write, no rebuild)."""
        config.validate()
        self.config = config
        get_device().queue.write_buffer(self.hyper, 0, config.pack())

    def update(self, **changes) -> None:
        self.configure(replace(self.config, **changes))

    def reset_state(self) -> None:
        dev = get_device()
        zeros = bytes(self.arena.size * 4)
        dev.queue.write_buffer(self.m1, 0, zeros)
        dev.queue.write_buffer(self.m2, 0, zeros)

    def _resources(self):
        dev = get_device()
        return [dev.uniform("<4I", self.arena.size, 0, 0, 0), self.hyper, self.state,
                self.arena.buffer, self.arena.grad_buffer, self.m1, self.m2]

    def record_step(self) -> None:
        """Record the update of every parameter, then the step-counter advance."""
        dev = get_device()
        dev.dispatch("optim.wgsl", "main", self._resources(), grid_1d(self.arena.size))
        dev.dispatch("optim.wgsl", "advance", self._resources(), (1,))
