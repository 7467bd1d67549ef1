"""MLP checkpoints as safetensors files in PyTorch nn.Sequential naming.

safetensors holds only raw tensors and a JSON header, so loading a checkpoint
never executes code (unlike pickle-based .pt files). Names follow
nn.Sequential ('0.weight' [out, in], '0.bias' [out], '2.weight', ...), so the
files load straight into torch and back.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

from .atomic import write_bytes
from .pathinfo import PNG_SIGNATURE, non_file_kind, printable_path, suffix_note

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header
MAX_FILE_BYTES = 4 << 30  # far above any MLP we train; a bigger "checkpoint" is not one
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
_PARAM_KEY = re.compile(r"(0|[1-9][0-9]*)\.(weight|bias)")


class CheckpointError(Exception):
    """A checkpoint is unusable; the message is one line naming the file."""


# -------------------------------------------------------------------------- save


def save_state_dict(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write tensors as float32 safetensors, atomically: a crash or a failed write leaves the
    old file intact (errors are atomic.WriteError, naming path)."""
    arrays = {name: np.asarray(value, dtype=np.float32, order="C") for name, value in tensors.items()}
    write_bytes(path, safetensors.numpy.save(arrays, metadata=metadata))


def misleading_name(path: str | Path) -> str | None:
    """Why a checkpoint's name misleads, where it ends in another suffix (`model.pt` suggests
    a PyTorch pickle; save_state_dict writes safetensors whatever the name); else None."""
    return suffix_note(path, ".safetensors", "safetensors")


def is_safetensors_file(path: str | Path) -> bool:
    """Whether path begins as a safetensors file does (a header length that fits the file, then a
    JSON object): how --overwrite tells a checkpoint, which it may replace, from notes or an image.
    Reads only the header; raises OSError when the file cannot be read."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        header_len = int.from_bytes(head, "little")
        if size < 8 or header_len > min(MAX_HEADER_BYTES, size - 8):
            return False
        return _header_is_whole(head + f.read(header_len))


# -------------------------------------------------------------------------- load


def load_state_dict(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into float32 arrays and its metadata, rejecting anything unusable."""
    path = Path(path)
    data = _read_file(path)
    try:
        views = safetensors.deserialize(data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # SafetensorError, and pyo3 panics, which derive from BaseException
        what = "a damaged safetensors checkpoint" if _header_is_whole(data) else "not a valid safetensors file"
        raise CheckpointError(f"{printable_path(path.name)}: {what} ({_one_line(exc)})") from None
    tensors = {name: _to_float32(path, name, view) for name, view in views}
    return tensors, _metadata(path, data)


def _read_file(path: Path) -> bytes:
    """The whole file, read only once it is known to be a regular file of a plausible size.

    A FIFO would block open() forever and /dev/zero would never end, so the type is
    checked with stat first (and again on the open file); the 8-byte header length is
    checked against the file size before the rest is read.
    """
    name = printable_path(path.name)
    try:
        kind = non_file_kind(path)
        if kind is not None:
            raise CheckpointError(f"{printable_path(path)}: is {kind}, not a checkpoint file; "
                                  f"give the path of a .safetensors file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        where = printable_path(path)
        raise CheckpointError(f"{name}: checkpoint file not found" + (f" ({where})" if where != name else "")) from None
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read checkpoint: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CheckpointError(f"{name}: not a regular file; give the path of a .safetensors file")
            return _read_bounded(f, info.st_size, name)
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read checkpoint: {exc.strerror or exc}") from None


def _read_bounded(f, size: int, name: str) -> bytes:
    invalid = f"{name}: not a valid safetensors file"
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{invalid} (it is {size:,} bytes, over the {MAX_FILE_BYTES >> 30} GiB limit)")
    head = f.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{invalid} ({len(head)} bytes, too short for the 8-byte header length)")
    if head == PNG_SIGNATURE:                          # a screenshot picked by mistake
        raise CheckpointError(f"{name}: is a PNG image, not a checkpoint; give the path of a .safetensors file")
    header_len = int.from_bytes(head, "little")
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{invalid} (header length {header_len:,} bytes, over the {MAX_HEADER_BYTES:,}-byte limit)")
    if 8 + header_len > size:
        raise CheckpointError(f"{invalid} (header length {header_len:,} bytes, but the file has only {size:,})")
    data = head + f.read(size - 8)
    if len(data) != size:
        raise CheckpointError(f"{invalid} (the file changed while it was read)")
    return data


def _header_is_whole(data: bytes) -> bool:
    """Whether `data` (a file's bytes from its start) begins with a whole safetensors header: the one
    test is_safetensors_file (what --overwrite may replace) and load_state_dict (what `eval` calls a
    damaged checkpoint, not an invalid file) share."""
    header_len = int.from_bytes(data[:8], "little")
    try:
        return isinstance(json.loads(data[8:8 + header_len]), dict)
    except ValueError:
        return False


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _to_float32(path: Path, name: str, view: dict) -> np.ndarray:
    """Convert one stored tensor to a writable float32 array; non-float, non-finite, or a
    float64 beyond the float32 range (it would become inf) is an error."""
    dtype, shape, raw = view["dtype"], tuple(view["shape"]), view["data"]
    file = printable_path(path.name)
    if dtype in _FLOAT_DTYPES:
        stored = np.frombuffer(raw, dtype=_FLOAT_DTYPES[dtype])
    elif dtype == "BF16":  # numpy has no bfloat16: it is the top half of a float32
        stored = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise CheckpointError(f"{file}: tensor '{name}' has dtype {dtype}; expected a float type (F32, F16, BF16, F64)")
    bad = int(np.count_nonzero(~np.isfinite(stored)))
    if bad:
        raise CheckpointError(f"{file}: tensor '{name}' has {bad} NaN or infinite values")
    too_big = np.abs(stored) > _FLOAT32_MAX if stored.dtype.itemsize > 4 else np.zeros(0, bool)
    if too_big.any():
        raise CheckpointError(
            f"{file}: tensor '{name}' has {int(too_big.sum())} values outside the float32 range "
            f"(largest magnitude {float(np.abs(stored).max()):.3g}, float32 holds up to {_FLOAT32_MAX:.3g})")
    return stored.astype(np.float32).reshape(shape)


def _metadata(path: Path, data: bytes) -> dict[str, str]:
    """The header's __metadata__ (safetensors has already validated the header)."""
    header_len = int.from_bytes(data[:8], "little")
    try:
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except ValueError as exc:
        raise CheckpointError(f"{printable_path(path.name)}: unreadable header: {exc}") from None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{printable_path(path.name)}: __metadata__ must map strings to strings")
    return metadata
