"""Files shipped inside the package: shaders, the bundled MNIST, pretrained models.

They are found through importlib.resources, so they resolve the same way in a
checkout, an editable install and an installed wheel, from any working directory.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = __name__.split(".")[0]          # "mnist_viz"


def shader_source(name: str) -> str:
    """The text of shaders/<name>."""
    return (resources.files(f"{PACKAGE}.shaders") / name).read_text(encoding="utf-8")


def asset_path(*parts: str) -> Path:
    """A file or directory under assets/ as a filesystem path (packages install unzipped)."""
    return Path(str(resources.files(f"{PACKAGE}.assets").joinpath(*parts)))
