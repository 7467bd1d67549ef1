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
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy

_FLOAT_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
_PARAM_KEY = re.compile(r"(0|[1-9][0-9]*)\.(weight|bias)")


class CheckpointError(Exception):
    """A checkpoint is unusable; the message is one line naming the file."""


# -------------------------------------------------------------------------- save


def save_state_dict(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write tensors as float32 safetensors, atomically: a crash leaves the old file intact."""
    path = Path(path)
    arrays = {name: np.asarray(value, dtype=np.float32, order="C") for name, value in tensors.items()}
    data = safetensors.numpy.save(arrays, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        raise CheckpointError(f"{path.name}: not a valid safetensors file ({_one_line(exc)})") from None
    tensors = {name: _to_float32(path, name, view) for name, view in views}
    return tensors, _metadata(path, data)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path.name}: checkpoint file not found ({path})") from None
    except OSError as exc:
        raise CheckpointError(f"{path.name}: cannot read checkpoint: {exc.strerror or exc}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _to_float32(path: Path, name: str, view: dict) -> np.ndarray:
    """Convert one stored tensor to a writable float32 array; non-float or non-finite is an error."""
    dtype, shape, raw = view["dtype"], tuple(view["shape"]), view["data"]
    if dtype in _FLOAT_DTYPES:
        array = np.frombuffer(raw, dtype=_FLOAT_DTYPES[dtype]).astype(np.float32)
    elif dtype == "BF16":  # numpy has no bfloat16: it is the top half of a float32
        array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        raise CheckpointError(f"{path.name}: tensor '{name}' has dtype {dtype}; expected a float type (F32, F16, BF16, F64)")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise CheckpointError(f"{path.name}: tensor '{name}' has {bad} NaN or infinite values")
    return array.reshape(shape)


def _metadata(path: Path, data: bytes) -> dict[str, str]:
    """The header's __metadata__ (safetensors has already validated the header)."""
    header_len = int.from_bytes(data[:8], "little")
    try:
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except ValueError as exc:
        raise CheckpointError(f"{path.name}: unreadable header: {exc}") from None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path.name}: __metadata__ must map strings to strings")
    return metadata


# ------------------------------------------------------------------------ layers


def mlp_layers(tensors: dict[str, np.ndarray], source: str = "checkpoint") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The Linear layers (prefix, W [out, in], b [out]) in order, checked to form a chain.

    source names the checkpoint in error messages.
    """
    weights, biases, unexpected = {}, {}, []
    for key, value in tensors.items():
        match = _PARAM_KEY.fullmatch(key)
        if match is None:
            unexpected.append(key)
        else:
            (weights if match[2] == "weight" else biases)[int(match[1])] = np.asarray(value)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensors {', '.join(sorted(unexpected))} (expected N.weight / N.bias)")
    if not weights and not biases:
        raise CheckpointError(f"{source}: no layers (expected tensors named 0.weight, 0.bias, ...)")
    layers = [_layer(source, index, weights, biases) for index in sorted(weights.keys() | biases.keys())]
    for (prev, w_prev, _), (name, w, _) in zip(layers, layers[1:]):
        if w.shape[1] != w_prev.shape[0]:
            raise CheckpointError(
                f"{source}: layers do not chain: {name}.weight {w.shape} takes {w.shape[1]} inputs "
                f"but {prev}.weight {w_prev.shape} has {w_prev.shape[0]} outputs"
            )
    return layers


def _layer(source: str, index: int, weights: dict, biases: dict) -> tuple[str, np.ndarray, np.ndarray]:
    if index not in biases:
        raise CheckpointError(f"{source}: {index}.weight has no {index}.bias")
    if index not in weights:
        raise CheckpointError(f"{source}: {index}.bias has no {index}.weight")
    w, b = weights[index], biases[index]
    if w.ndim != 2:
        raise CheckpointError(f"{source}: {index}.weight must be 2-D [out, in], got shape {w.shape}")
    if b.shape != (w.shape[0],):
        raise CheckpointError(f"{source}: {index}.bias has shape {b.shape}, expected ({w.shape[0]},) to match {index}.weight {w.shape}")
    return str(index), w, b


def sequential_names(num_linear: int, dropout: bool) -> list[str]:
    """Prefixes of the Linear layers in Sequential(Linear, ReLU, [Dropout,] ..., Linear)."""
    if num_linear < 1:
        raise ValueError(f"num_linear must be at least 1, got {num_linear}")
    step = 3 if dropout else 2
    return [str(i * step) for i in range(num_linear)]
