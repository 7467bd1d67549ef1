"""What the classes are called, and whether the data is MNIST-like.

Names come from, in order: a `classes.txt` in the data directory (one name per line),
the Fashion-MNIST names when the test labels are Fashion-MNIST's (recognised by the
MD5 of the test labels file, as stored or decompressed: a re-packed .gz still
matches), else the class numbers. The canvas is normalised the MNIST way (bounding
box into 20 x 20, centre of mass) only for MNIST-like data: 28 x 28 images of the
ten digits; clothes or bands are not drawn like digits.
"""
from __future__ import annotations

import gzip
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

CLASSES_FILE = "classes.txt"
FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
# t10k-labels-idx1-ubyte: the published .gz, and its decompressed content.
FASHION_TEST_LABELS_MD5 = {"bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"}
MNIST_TEST_LABELS_MD5 = {"ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"}


@dataclass(frozen=True)
class ClassInfo:
    names: tuple[str, ...]
    source: str                    # "classes.txt", "Fashion-MNIST" or "numbers"
    image_shape: tuple[int, int]   # (height, width)
    dataset: str = "MNIST"         # "MNIST" (recognised), "Fashion-MNIST", else the directory's name

    @property
    def is_mnist(self) -> bool:
        """The data is MNIST itself (what the pretrained model was trained on)."""
        return self.dataset == "MNIST"

    @property
    def numbered(self) -> bool:
        """The names are just the class numbers (digits for MNIST)."""
        return self.source == "numbers"

    @property
    def mnist_like(self) -> bool:
        """28 x 28 images of the ten digits: the canvas is normalised as MNIST was."""
        return self.numbered and len(self.names) == 10 and self.image_shape == (28, 28)

    def name(self, k: int | None) -> str:
        if k is None:
            return "?"
        return self.names[k] if 0 <= k < len(self.names) else str(k)


def numbered(num_classes: int, image_shape=(28, 28), dataset: str = "MNIST") -> ClassInfo:
    return ClassInfo(tuple(str(k) for k in range(num_classes)), "numbers", tuple(image_shape), dataset)


def class_info(data_dir: Path | None, num_classes: int, image_shape: tuple[int, int]) -> ClassInfo:
    """The classes of the dataset in `data_dir` (None: the bundled MNIST)."""
    if data_dir is None:
        return numbered(num_classes, image_shape)
    data_dir = Path(data_dir)
    md5s = _test_labels_md5s(data_dir)
    dataset = ("MNIST" if md5s & MNIST_TEST_LABELS_MD5 else
               "Fashion-MNIST" if md5s & FASHION_TEST_LABELS_MD5 else data_dir.resolve().name)
    listed = _read_classes_file(data_dir / CLASSES_FILE, num_classes)
    if listed is not None:
        return ClassInfo(listed, CLASSES_FILE, tuple(image_shape), dataset)
    if dataset == "Fashion-MNIST" and num_classes == len(FASHION_MNIST):
        return ClassInfo(FASHION_MNIST, "Fashion-MNIST", tuple(image_shape), dataset)
    return numbered(num_classes, image_shape, dataset)


def _read_classes_file(path: Path, num_classes: int) -> tuple[str, ...] | None:
    """One name per line (blank lines at the end ignored); missing names are numbered,
    extra ones dropped, each with a warning. None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        _warn(f"{path.name}: cannot read class names ({e}); using the class numbers")
        return None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != num_classes:
        _warn(f"{path.name}: {len(lines)} name{'s' * (len(lines) != 1)} for {num_classes} classes; "
              + ("the rest are numbered" if len(lines) < num_classes else "the extra ones are ignored"))
    names = [lines[k] if k < len(lines) and lines[k] else str(k) for k in range(num_classes)]
    wide = [name for name in names if not name.isascii()]
    if wide:        # viz/glyphs.py and imgui's default font draw ASCII only
        more = f" and {len(wide) - 1} more" if len(wide) > 1 else ""
        _warn(f"{path.name}: names with characters outside ASCII ({wide[0]!r}{more}) are drawn as '?' in the "
              "window's views, whose font has ASCII only")
    return tuple(names)


def _test_labels_md5s(data_dir: Path) -> set[str]:
    """MD5s of the test labels file: as stored, and decompressed when it is gzipped."""
    from ..compute.idx import find_idx_files
    try:
        raw = find_idx_files(data_dir)["test_labels"].read_bytes()
    except Exception:  # noqa: BLE001 - the loader reports a bad directory; here it just is not Fashion
        return set()
    out = {hashlib.md5(raw).hexdigest()}
    if raw[:2] == b"\x1f\x8b":
        try:
            out.add(hashlib.md5(gzip.decompress(raw)).hexdigest())
        except (OSError, EOFError):
            pass
    return out


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
