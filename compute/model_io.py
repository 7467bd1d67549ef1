"""Models to and from safetensors checkpoints (PyTorch nn.Sequential names and layouts).

Our checkpoints record the architecture string in their metadata, so they load
with nothing else. A file written by PyTorch (`safetensors.torch.save_file(
model.state_dict())`) holds only tensors: pass the architecture (`--arch`), or,
for a plain MLP, let it be read from the tensors (Linear layers joined by ReLU,
an optional leading Flatten; a note says what was assumed). Everything is
validated before a model is built, so a bad file never leaves a half-loaded model.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from .arch import ArchError, Architecture, Dropout, Flatten, Linear, ReLU, parse
from .checkpoint import CheckpointError, load_state_dict, save_state_dict
from .nn import Sequential
from .pathinfo import printable_path
from .recipe import as_f32

_PARAM_KEY = re.compile(r"(0|[1-9][0-9]*)\.(weight|bias)")
INFERRED_NOTE = ("no architecture recorded: read as Linear layers joined by ReLU; pass --arch if the "
                 "network used other layers")


def read_checkpoint(path, arch: str | Architecture | None = None, image_shape=None):
    """Load and validate a checkpoint; returns (tensors, metadata, architecture, note).

    arch: the architecture to read the tensors as (a string or an Architecture; None: the
    one recorded in the file, else an MLP read from the tensors). image_shape (h, w): the
    images the model will read, when known. note: what was assumed, or ''."""
    name = printable_path(Path(path).name)
    tensors, metadata = load_state_dict(path)
    architecture, note = architecture_of(tensors, metadata, arch, image_shape, source=name)
    return tensors, metadata, architecture, note


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
    if not (math.isfinite(p) and 0.0 <= as_f32(p) < 1.0):     # as the GPU holds it (1 / (1 - p))
        raise CheckpointError(f"{name}: metadata 'dropout' is {text!r}; expected a probability in [0, 1), "
                              f"e.g. '0.1' (edit or remove that metadata key)")


def architecture_of(tensors: dict, metadata: dict | None = None, arch=None, image_shape=None,
                    source: str = "checkpoint") -> tuple[Architecture, str]:
    """(architecture, note) of a state dict, checked against its tensors; errors name `source`
    and the offending layer or tensor."""
    metadata = metadata or {}
    _check_dropout_metadata(source, metadata)
    note = ""
    try:
        if isinstance(arch, Architecture):
            architecture = arch
        elif arch is not None:
            architecture = parse(arch, image_shape or (28, 28))
        elif "(" in metadata.get("architecture", ""):
            architecture = parse(metadata["architecture"], _recorded_image_shape(metadata) or image_shape or (28, 28))
        else:
            architecture = infer_mlp(tensors, metadata, image_shape)
            note = "" if "architecture" in metadata else INFERRED_NOTE
        _check_tensors(architecture, tensors)
    except (ArchError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from None
    return architecture, note


def _recorded_image_shape(metadata: dict):
    text = metadata.get("image_shape", "")
    try:
        h, w = (int(v) for v in text.split("x"))
        return (h, w)
    except ValueError:
        return None


def data_it_fits(metadata: dict, arch: Architecture) -> str:
    """The fix for a checkpoint that does not fit the data: the kind of dataset it was trained on
    where the file records its image size (ours do), else --data in general."""
    shape = _recorded_image_shape(metadata)
    if shape is None:
        return "use --data DIR with the images and classes it was trained on, or a --checkpoint trained on this dataset"
    h, w = shape
    return (f"it was trained on {w} x {h} images in {arch.classes} classes: use --data DIR with such a dataset, "
            f"or a --checkpoint trained on this one")


def infer_mlp(tensors: dict, metadata: dict, image_shape=None) -> Architecture:
    """Linear layers from '<index>.weight' [out, in] / '<index>.bias': index gaps of 2 are a ReLU,
    gaps of 3 a ReLU and a Dropout (its p from our metadata, else 0.1); a first index of 1 is
    a leading Flatten."""
    unexpected = sorted(k for k in tensors if not _PARAM_KEY.fullmatch(k))
    if unexpected:
        raise ValueError(f"unexpected tensors {', '.join(unexpected)} (expected N.weight / N.bias)")
    indices = sorted({int(k.split(".")[0]) for k in tensors})
    if not indices:
        raise ValueError("no layers (expected tensors named 0.weight, 0.bias, ...)")
    for i in indices:
        w = tensors.get(f"{i}.weight")
        if w is None:
            raise ValueError(f"{i}.bias has no {i}.weight")
        if w.ndim == 4:
            raise ValueError(f"{i}.weight {tuple(w.shape)} is a convolution, and the file records no architecture: "
                             "pass it with --arch, e.g. --arch 'Conv2d(1,8,5,padding=2),ReLU(),...'")
        if w.ndim != 2:
            raise ValueError(f"{i}.weight must be 2-D [out, in], got shape {tuple(w.shape)}")
        if 0 in w.shape:
            raise ValueError(f"tensor {i}.weight has shape {tuple(w.shape)}: a layer needs at least one input and "
                             "one output")
    gaps = {b - a for a, b in zip(indices, indices[1:])}
    if indices[0] not in (0, 1) or gaps - {2, 3} or len(gaps) > 1:
        raise ValueError(f"layer indices {indices} are not an nn.Sequential of Linear, ReLU[, Dropout] blocks; "
                         "pass the architecture with --arch")
    dropout = float(metadata.get("dropout", 0.1)) or 0.1 if gaps == {3} else 0.0
    layers = [Flatten()] if indices[0] == 1 else []
    for k, i in enumerate(indices):
        out_f, in_f = tensors[f"{i}.weight"].shape
        layers.append(Linear(int(in_f), int(out_f)))
        if k < len(indices) - 1:
            layers.append(ReLU())
            if dropout:
                layers.append(Dropout(dropout))
    first = layers[1] if indices[0] == 1 else layers[0]
    if image_shape is None or image_shape[0] * image_shape[1] != first.in_features:
        side = math.isqrt(first.in_features)
        image_shape = (side, side) if side * side == first.in_features else (1, first.in_features)
    return Architecture.build(layers, (1, *image_shape))


def _check_tensors(arch: Architecture, tensors: dict) -> None:
    """Every tensor the architecture needs, with its shape; nothing else (errors name the layer).
    A layer that finds another shape, or nothing, is said before the tensors left over: a conv
    net's file read as an MLP differs first at layer 0, which says more than its extra names."""
    expected = arch.param_shapes()
    extra = sorted(set(tensors) - set(expected))
    for key, shape in expected.items():
        if key in tensors and tuple(tensors[key].shape) != tuple(shape):
            i = int(key.split(".")[0])
            raise ValueError(f"layer {i} {arch.layers[i]} needs {key} of shape {tuple(shape)}, the file has "
                             f"{tuple(tensors[key].shape)}")
    for key in expected:
        if key not in tensors:
            i = int(key.split(".")[0])
            instead = f" (it has {', '.join(extra)} instead)" if extra else ""
            raise ValueError(f"layer {i} {arch.layers[i]} needs {key}, which the file does not have{instead}")
    if extra:
        raise ValueError(f"unexpected tensors {', '.join(extra)} for {arch.text}")


def load_model(path, seed: int = 0, arch=None, image_shape=None) -> tuple[Sequential, dict]:
    tensors, metadata, architecture, note = read_checkpoint(path, arch, image_shape)
    model = Sequential(architecture, seed=seed)
    model.load_state_dict(tensors)
    if note:
        metadata = {**metadata, "_note": note}
    return model, metadata


def load_into(model: Sequential, path) -> dict:
    """Load a checkpoint into an existing model of the same architecture (all or nothing)."""
    tensors, metadata, architecture, _ = read_checkpoint(path, image_shape=model.arch.input_shape[1:])
    if architecture.layers != model.arch.layers:
        raise CheckpointError(f"{printable_path(Path(path).name)}: architecture {architecture.text} differs from "
                              f"the model's {model.arch.text}")
    model.load_state_dict(tensors)
    return metadata


def save_model(path, model: Sequential, metadata: dict | None = None) -> None:
    h, w = model.arch.input_shape[1:]
    meta = {"architecture": model.arch.text, "image_shape": f"{h}x{w}", "format": "mnist-viz 2"}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    save_state_dict(path, model.state_dict(), meta)


def default_model_path() -> Path:
    from .resources import asset_path
    return asset_path("mnist-784-128-10.safetensors")
