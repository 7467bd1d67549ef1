"""Optimizers (SGD with optional momentum / Nesterov, Adam) and learning-rate
schedules, run as one GPU dispatch over the whole parameter arena.

The hyper-parameters sit in a small GPU buffer (`Hyper`, compute/structs.py) that
the kernel reads every step; the learning rate is computed there from the GPU
step counter (shaders/schedule.wgsl is the only statement of the schedules).
Changing a setting live is one `queue.write_buffer`, never a rebuild.
"""
from __future__ import annotations

from .device import get_device
from .ops import grid_1d
from .recipe import OPTIMIZERS, SCHEDULES, Recipe
from .structs import HYPER, OPTIM
from .tensor import Tensor


def hyper_bytes(recipe: Recipe, total_steps: int, period: int, step_offset: int = 0, frozen: bool = False,
                moment_step: int = 0) -> bytes:
    """The GPU `Hyper` struct for a recipe whose cosine spans `total_steps` and whose
    step / exponential decay period is `period` steps."""
    return HYPER.pack(
        lr=recipe.lr, min_lr=min(recipe.min_lr, recipe.lr), total_steps=max(total_steps, 1), period=max(period, 1),
        gamma=recipe.gamma, momentum=recipe.momentum if recipe.optimizer == "sgd" else 0.0,
        beta1=recipe.beta1, beta2=recipe.beta2, eps=recipe.eps, weight_decay=recipe.weight_decay,
        schedule=SCHEDULES.index(recipe.schedule), optimizer=OPTIMIZERS.index(recipe.optimizer),
        nesterov=int(recipe.nesterov), step_offset=step_offset, frozen=int(frozen), moment_step=moment_step)


class Optimizer:
    """Owns the moment buffers and the hyper-parameter buffer for one arena."""

    def __init__(self, arena, state: Tensor):
        dev = get_device()
        self.arena = arena
        self.state = state
        self.m1 = dev.buffer(arena.size * 4, "optim.m1")
        self.m2 = dev.buffer(arena.size * 4, "optim.m2")
        self.hyper = dev.buffer(HYPER.size, "optim.hyper")
        self.moment_step = 0
        self._settings = None

    def configure(self, recipe: Recipe, total_steps: int, period: int, step_offset: int = 0,
                  frozen: bool = False) -> None:
        """Apply settings from the next step on (a queue write, no rebuild)."""
        self._settings = (recipe, total_steps, period, step_offset, frozen)
        get_device().queue.write_buffer(self.hyper, 0, hyper_bytes(recipe, total_steps, period, step_offset, frozen,
                                                                   self.moment_step))

    def reset_state(self, at_step: int = 0) -> None:
        """Zero the moments (a new optimizer, restored weights) before step `at_step`: Adam's bias
        correction then counts from there, as for a fresh optimizer."""
        dev = get_device()
        zeros = bytes(self.arena.size * 4)
        dev.queue.write_buffer(self.m1, 0, zeros)
        dev.queue.write_buffer(self.m2, 0, zeros)
        self.moment_step = at_step
        if self._settings is not None:
            self.configure(*self._settings)

    def _resources(self):
        dev = get_device()
        return [dev.uniform(OPTIM, n=self.arena.size), self.hyper, self.state,
                self.arena.buffer, self.arena.grad_buffer, self.m1, self.m2]

    def record_step(self) -> None:
        """Record the update of every parameter, then the step-counter advance."""
        dev = get_device()
        dev.dispatch("optim.wgsl", "main", self._resources(), grid_1d(self.arena.size))
        dev.dispatch("optim.wgsl", "advance", self._resources(), (1,))
