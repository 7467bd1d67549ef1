"""Models to and from safetensors checkpoints (PyTorch nn.Sequential layout).

Validation happens in `checkpoint` before a model is built, so a bad file never
leaves a half-loaded model behind.
"""
from __future__ import annotations

import math
from pathlib import Path

from .checkpoint import CheckpointError, load_state_dict, mlp_layers, save_state_dict
from .nn import MLPSpec, Sequential, spec_from_state_dict
from .pathinfo import printable_path


def read_checkpoint(path) -> tuple[dict, dict, MLPSpec]:
    """Load and validate a checkpoint; returns (tensors, metadata, architecture)."""
    name = printable_path(Path(path).name)
    tensors, metadata = load_state_dict(path)
    mlp_layers(tensors, source=name)  # raises CheckpointError on missing tensors, shapes that do not chain
    _check_dropout_metadata(name, metadata)
    try:
        spec = spec_from_state_dict(tensors, metadata)
    except ValueError as e:
        raise CheckpointError(f"{name}: {e}") from None
    return tensors, metadata, spec


def _check_dropout_metadata(name: str, metadata: dict) -> None:
    """Our 'dropout' metadata key must be a probability in [0, 1) (the model would reject it later,
    without naming the file)."""
    if "dropout" not in metadata:
        return
    text = metadata["dropout"]
    try:
        p = float(text)
    except ValueError:
        p = math.nan
    if not (math.isfinite(p) and 0.0 <= p < 1.0):
        raise CheckpointError(f"{name}: metadata 'dropout' is {text!r}; expected a probability in [0, 1), "
                              f"e.g. '0.1' (edit or remove that metadata key)")


def load_model(path, seed: int = 0) -> tuple[Sequential, dict]:
    tensors, metadata, spec = read_checkpoint(path)
    model = Sequential(spec, seed=seed)
    model.load_state_dict(tensors)
    return model, metadata


def load_into(model: Sequential, path) -> dict:
    """Load a checkpoint into an existing model of the same architecture (all or nothing)."""
    tensors, metadata, spec = read_checkpoint(path)
    if spec.sizes != model.spec.sizes:
        raise CheckpointError(f"{printable_path(Path(path).name)}: architecture {spec.sizes} differs from the model's {model.spec.sizes}")
    model.load_state_dict(tensors)
    return metadata


def save_model(path, model: Sequential, metadata: dict | None = None) -> None:
    meta = {"architecture": "-".join(map(str, model.spec.sizes)), "dropout": str(model.spec.dropout)}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    save_state_dict(path, model.state_dict(), meta)


def default_model_path() -> Path:
    from .resources import asset_path
    return asset_path("mnist-784-128-10.safetensors")
