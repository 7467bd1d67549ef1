"""What a run, an evaluation and the window allocate on the GPU, checked against the device's
limits before any GPU object is created.

The engine binds every buffer whole, so each one must fit the device's storage-binding
limit (and its buffer-size limit); dispatch grids must fit the workgroups-per-dimension
limit. The largest buffers are, by what sets their size:
  * the data: each split's images (u8, N x H x W), the labels, the permutation (u32 x N);
  * the model: one arena of all parameters (and its gradient, optimizer moments, snapshot);
  * the step: every layer's activation for a batch, [batch, values per image] f32
    (the input batch, each layer's output and its gradient), as the autograd trace
    holds them; the compiled step keeps all layers in one scratch buffer, checks that
    itself (compute/step_compiler.py) and, when it does not fit, leaves `auto` to the
    trace, so the trace's sizes are the ones a batch must fit;
  * the evaluation: the same activations for a chunk of the test set (the chunk is sized
    here to fit, so only a network whose one image does not fit is refused).
Everything else is small and bounded (rings, counters, split-K partials of at most 2 MiB).
Problems are `BudgetError`s: one line naming the size, the limit and the option to change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MIB = 1 << 20
EVAL_MAX_ROWS = 4096          # test images per evaluation chunk at most
MATMUL_TILE = 64              # matmul.wgsl: output rows / columns per workgroup


class BudgetError(ValueError):
    """A size above a device limit; the message names it, the limit and the fix."""


def mib(nbytes: int, beside: int | None = None) -> str:
    """'196 MiB'; with `beside` (a limit it is compared with) as many decimals as tell them apart."""
    for digits in (0, 1, 2, 3) if nbytes >= 10 * MIB else (1, 2, 3):
        text = f"{nbytes / MIB:,.{digits}f} MiB"
        if beside is None or text != f"{beside / MIB:,.{digits}f} MiB":
            return text
    return f"{nbytes:,} bytes"


def round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def buffer_bytes(nbytes: int) -> int:
    """Bytes of the GPU buffer made for `nbytes` of data (Device.buffer: 16-byte multiples, 16 at least)."""
    return max(16, round_up(nbytes, 16))


def largest(fits, hi: int) -> int:
    """The largest n in 0..hi with fits(n) (fits is monotone: true up to some n, false after)."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class Limits:
    binding: int                  # bytes: the largest buffer a kernel can bind
    binding_name: str             # which device limit that is
    texture: int                  # pixels: the largest side of a 2-D texture
    groups: int                   # workgroups per dispatch dimension
    align: int                    # bytes: storage-binding offset alignment (parameter views)

    @staticmethod
    def of(limits: dict, align: int = 256) -> "Limits":
        bind = limits.get("max-storage-buffer-binding-size", 128 * MIB)
        size = limits.get("max-buffer-size", 256 * MIB)
        name = "storage-binding" if bind <= size else "buffer-size"
        return Limits(min(bind, size), name, limits.get("max-texture-dimension-2d", 8192),
                      limits.get("max-compute-workgroups-per-dimension", 65535), align)

    @staticmethod
    def current() -> "Limits":
        """The limits of the process's device (creates the device, nothing on it)."""
        from .device import get_device
        dev = get_device()
        return Limits.of(dev.limits, dev.offset_alignment)

    @property
    def text(self) -> str:
        return f"this GPU's {mib(self.binding)} {self.binding_name} limit"


# -- the model ------------------------------------------------------------------------------------------------
def arena_layout(sizes: list[tuple[str, int]], align_bytes: int) -> tuple[dict[str, int], int]:
    """(offset of each tensor, total) in floats: every tensor starts on a binding-offset boundary."""
    align = align_bytes // 4
    offsets, n = {}, 0
    for name, size in sizes:
        offsets[name] = n
        n += -(-size // align) * align
    return offsets, max(n, align)


def arena_floats(arch, align_bytes: int) -> int:
    sizes = [(name, math.prod(shape)) for name, shape in arch.param_shapes().items()]
    return arena_layout(sizes, align_bytes)[1]


def arena_fits(arch, limits: Limits) -> bool:
    """The arena (and the run's snapshot of it, one word longer: its step) fits one binding."""
    return buffer_bytes((arena_floats(arch, limits.align) + 1) * 4) <= limits.binding


def check_model(arch, limits: Limits, fix: str = "use a narrower network") -> None:
    """The parameters fit one buffer, and every product's grid fits the dispatch limit."""
    from .arch import Linear
    n = arena_floats(arch, limits.align)
    if not arena_fits(arch, limits):
        params = sum(math.prod(s) for s in arch.param_shapes().values())
        most = limits.binding // 4
        raise BudgetError(f"the model {arch.short} has {params:,} parameters ({mib(n * 4, limits.binding)}), above {limits.text} "
                          f"(about {most:,} parameters); {fix}")
    for i, layer in enumerate(arch.layers):
        if isinstance(layer, Linear):
            wide = max(layer.in_features, layer.out_features)
            if math.ceil(wide / MATMUL_TILE) > limits.groups:
                raise BudgetError(f"layer {i} {layer}: {wide:,} features need {math.ceil(wide / MATMUL_TILE):,} "
                                  f"workgroups in one dispatch dimension, above this GPU's {limits.groups:,}; "
                                  f"at most {limits.groups * MATMUL_TILE:,} features fit; {fix}")


def mlp_hidden_fit(inputs: int, classes: int, limits: Limits, at_most: int = 65535) -> int:
    """The widest single hidden layer whose inputs-h-classes MLP fits (0: none does)."""
    from .arch import Architecture

    def fits(h: int) -> bool:
        return h == 0 or arena_fits(Architecture.mlp([inputs, h, classes], image_shape=(1, inputs)), limits)
    return largest(fits, at_most)


# -- activations ------------------------------------------------------------------------------------------------
def activations(arch) -> list[tuple[str, tuple]]:
    """(what, shape per image) of every activation a pass over the network holds: the input
    and each layer's output (a layer's gradient has its output's shape)."""
    first = ("the input images", (arch.input_shape[1] * arch.input_shape[2],))
    return [first] + [(f"layer {i} {layer}'s output", shape) for i, (layer, shape) in
                      enumerate(zip(arch.layers, arch.shapes))]


def widest(arch) -> tuple[str, tuple]:
    return max(activations(arch), key=lambda a: math.prod(a[1]))


def rows_fit(arch, limits: Limits, at_most: int = 1 << 24) -> int:
    """The most images a pass can hold at once (0: not even one)."""
    width = math.prod(widest(arch)[1])
    return largest(lambda rows: rows == 0 or buffer_bytes(rows * width * 4) <= limits.binding, at_most)


def _shape(rows: int, shape: tuple) -> str:
    return "[" + ", ".join(str(s) for s in (rows, *shape)) + "]"


def check_one_image(arch, limits: Limits) -> None:
    if rows_fit(arch, limits, 1) < 1:
        what, shape = widest(arch)
        raise BudgetError(f"{what} {_shape(1, shape)} takes {mib(math.prod(shape) * 4, limits.binding)} for a single image, above "
                          f"{limits.text}; use a narrower network or smaller images")


def check_rows(arch, rows: int, limits: Limits, option: str | None = "--batch-size", who: str = "a training step",
               fix: str | None = None) -> None:
    """`rows` images at a time fit every activation (`option` names the setting that gives
    `rows`, `who` what holds them; `fix` replaces the advice to lower the option)."""
    check_one_image(arch, limits)
    most = min(rows_fit(arch, limits), limits.groups)
    if rows <= most:
        return
    head = f"{option} {rows}: " if option else ""
    fix = fix or f"use {option} {most} or less"
    if rows > limits.groups:
        raise BudgetError(f"{head}one workgroup per image is above this GPU's {limits.groups:,} per dispatch "
                          f"dimension; {fix}")
    what, shape = widest(arch)
    need = buffer_bytes(rows * math.prod(shape) * 4)
    raise BudgetError(f"{head}{who} holds {what} {_shape(rows, shape)} ({mib(need, limits.binding)}), above "
                      f"{limits.text}; {fix}")


def eval_rows(arch, n_test: int, limits: Limits) -> int:
    """Test images per evaluation chunk: as many as fit, at most EVAL_MAX_ROWS."""
    check_one_image(arch, limits)
    return max(1, min(EVAL_MAX_ROWS, n_test, rows_fit(arch, limits, EVAL_MAX_ROWS)))


# -- the data ---------------------------------------------------------------------------------------------------
def split_bytes(n: int, pixels: int) -> dict[str, int]:
    """Buffer bytes of one split on the GPU (GpuSplit: u8 images and labels, padded to 4 bytes)."""
    return {"images": buffer_bytes(round_up(n * pixels, 4)), "labels": buffer_bytes(round_up(n, 4))}


def perm_bytes(n_train: int) -> int:
    return buffer_bytes(n_train * 4)


def check_data(n_train: int, n_test: int, image_shape, limits: Limits) -> None:
    """Both splits (and the training permutation) fit one binding each; else the count that does."""
    h, w = image_shape
    pixels = h * w
    for split, n, option in (("training", n_train, "--limit"), ("test", n_test, "--test-limit")):
        def fits(k: int) -> bool:
            sizes = split_bytes(k, pixels)
            if split == "training":
                sizes["perm"] = perm_bytes(k)
            return max(sizes.values()) <= limits.binding
        if not fits(n):
            sizes = split_bytes(n, pixels)
            need = max(sizes["images"], perm_bytes(n) if split == "training" else 0)
            raise BudgetError(f"the {split} set's {n:,} images of {w} x {h} take {mib(need, limits.binding)} on the GPU, above "
                              f"{limits.text}; use {option} {largest(fits, n)} or less")
