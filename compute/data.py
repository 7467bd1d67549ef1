"""The dataset resident on the GPU as u8 (MNIST train: 47 MB, not 188 MB of f32),
batches gathered on the GPU through a per-epoch shuffled permutation.

A new epoch's order can be written into a command encoder (`shuffle(rng, encoder=...)`):
it goes to one of ORDER_SLOTS staging buffers by a queue write and is copied into `perm`
by the encoder, so the steps of the epoch before, encoded earlier in the same encoder,
still read the old order. The visualizer's frames then run on past an epoch's end
without a submission of their own in between (each cost 2-3 ms of CPU on the H100).
"""
from __future__ import annotations

import copy
import math

import numpy as np

from .budget import Limits, check_data
from .device import get_device
from .ops import grid_1d
from .structs import GATHER
from .tensor import Tensor

ORDER_SLOTS = 2        # epoch orders one command encoder can take in (each slot written once per encoder)


class GpuSplit:
    """Images and labels of one split as packed u8 storage buffers."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, label: str):
        dev = get_device()
        self.n = int(images.shape[0])
        self.height, self.width = int(images.shape[1]), int(images.shape[2])
        self.input_size = self.height * self.width
        self.images = dev.upload(_pad4(images.reshape(-1)), f"{label}.images")
        self.labels = dev.upload(_pad4(labels.reshape(-1)), f"{label}.labels")
        self.nbytes = self.images.size + self.labels.size


def _pad4(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    pad = -a.size % 4
    return np.concatenate([a, np.zeros(pad, np.uint8)]) if pad else a


class GpuDataset:
    """The first `limit` training and `test_limit` test images (all when None), checked against
    the device's limits (compute/budget.py) before anything is uploaded."""

    def __init__(self, dataset, limit: int | None = None, test_limit: int | None = None):
        n = dataset.train_images.shape[0] if limit is None else min(limit, dataset.train_images.shape[0])
        m = dataset.test_images.shape[0] if test_limit is None else min(test_limit, dataset.test_images.shape[0])
        check_data(n, m, dataset.train_images.shape[1:], Limits.current())
        self.source = dataset
        self.num_classes = int(dataset.num_classes)
        self.train = GpuSplit(dataset.train_images[:n], dataset.train_labels[:n], "train")
        self.test = GpuSplit(dataset.test_images[:m], dataset.test_labels[:m], "test")
        self.perm = get_device().buffer(self.train.n * 4, "perm")
        self._orders: list = []           # staging buffers of orders written into encoders (made on first use)
        self._order_uses: tuple = (None, 0, 0)   # (encoder, orders it took, next slot)
        self.shuffle(np.random.default_rng(0), identity=True)

    def with_own_order(self) -> "GpuDataset":
        """The same image and label buffers (no second upload) with an epoch permutation of its
        own: runs training side by side (compute/comparison.py) each shuffle their own epochs,
        and a permutation shared between runs would be overwritten by the other run's."""
        other = copy.copy(self)
        other.perm = get_device().buffer(self.train.n * 4, "perm")
        other._orders, other._order_uses = [], (None, 0, 0)
        other.shuffle(np.random.default_rng(0), identity=True)
        return other

    @property
    def input_size(self) -> int:
        return self.train.input_size

    @property
    def nbytes(self) -> int:
        return self.train.nbytes + self.test.nbytes + self.perm.size + sum(b.size for b in self._orders)

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.train.n / batch_size)

    def can_shuffle_into(self, encoder) -> bool:
        """Whether `encoder` can take in one more epoch order (ORDER_SLOTS a command encoder)."""
        last, used, _ = self._order_uses
        return last is not encoder or used < ORDER_SLOTS

    def draw_order(self, rng: np.random.Generator) -> np.ndarray:
        """An epoch order: rng's next permutation of the training rows."""
        return rng.permutation(self.train.n).astype(np.uint32)

    def shuffle(self, rng: np.random.Generator, identity: bool = False, encoder=None,
                order: np.ndarray | None = None) -> None:
        """New epoch order (`order`, drawn ahead by draw_order, else drawn from rng now): a CPU -> GPU
        write of N indices, ordered with the queue; with `encoder`, into a staging slot that the
        encoder copies into `perm` (can_shuffle_into must allow it; an encoder that took an order is
        submitted before another one takes one)."""
        if identity:
            perm = np.arange(self.train.n, dtype=np.uint32)
        else:
            perm = self.draw_order(rng) if order is None else order
        dev = get_device()
        if encoder is None:
            dev.write(self.perm, perm)
            return
        if not self.can_shuffle_into(encoder):
            raise RuntimeError("this command encoder holds as many epoch orders as it can; submit it first")
        last, used, slot = self._order_uses
        if not self._orders:
            self._orders = [dev.buffer(self.train.n * 4, f"perm.order{k}") for k in range(ORDER_SLOTS)]
        # A queue write lands before every command buffer submitted after it: the slot is free (its
        # copy from an earlier encoder ran), and nothing in this encoder reads it yet (one order a slot)
        dev.write(self._orders[slot], perm)
        encoder.copy_buffer_to_buffer(self._orders[slot], 0, self.perm, 0, self.train.n * 4)
        self._order_uses = (encoder, (used if last is encoder else 0) + 1, (slot + 1) % ORDER_SLOTS)

    def gather(self, split: GpuSplit, x: Tensor, y: Tensor, state: Tensor, base: int = 0,
               eval_mode: bool = False, shift: int = 0, seed: int = 0) -> None:
        """Record the gather of one batch into x [B, D] (f32) and y [B] (u32)."""
        dev = get_device()
        b = x.shape[0]
        prm = dev.uniform(GATHER, B=b, D=split.input_size, N=split.n, W=split.width, base=base,
                          eval_mode=int(eval_mode), shift=shift, seed=seed)
        dev.dispatch("gather.wgsl", "main", [prm, split.images, split.labels, self.perm, state, x, y],
                     grid_1d(b * split.input_size))
