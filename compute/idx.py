"""IDX dataset loading (MNIST and look-alikes) with strict validation.

Every problem surfaces as a one-line DataError naming the file, so a user who
points the visualizer at a broken download learns what is wrong, not where
numpy tripped over it.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pathinfo import non_file_kind, printable_path

GZIP_MAGIC = b"\x1f\x8b"
MAX_DATA_BYTES = 4 << 30  # a header declaring more than this is rejected outright
CHUNK_BYTES = 1 << 20  # bounded reads: memory follows the data actually present

_TYPE_NAMES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}

_ROLE_STEMS = {
    "train_images": ("train-images",),
    "train_labels": ("train-labels",),
    "test_images": ("t10k-images", "test-images"),
    "test_labels": ("t10k-labels", "test-labels"),
}


class DataError(Exception):
    """A dataset file or directory is unusable; the message is one line naming it."""


def _error(path: str | Path, problem: str) -> DataError:
    return DataError(f"{printable_path(Path(path).name)}: {problem}")


def _unreadable(path: Path, exc: OSError) -> DataError:
    """The system would not read the file: its path (where to act) and the reason once; str(exc)
    would repeat the path with an errno ('[Errno 13] Permission denied: ...')."""
    fix = "check its permissions" if isinstance(exc, PermissionError) else "copy the file again or check its disk"
    return DataError(f"{printable_path(path)}: cannot read the file ({exc.strerror or exc}); {fix}")


def _warn(message: str) -> None:
    """A problem that does not stop loading: one line on stderr."""
    print(f"warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- IDX


def read_idx(path: str | Path) -> np.ndarray:
    """Read a raw or gzipped IDX file of unsigned bytes into an array of the header's shape."""
    return _read_idx_with_bytes(path)[0]


def _read_idx_with_bytes(path: str | Path) -> tuple[np.ndarray, bytearray]:
    """Like read_idx, also returning the decompressed file content (for checksums)."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            is_gzip = raw.read(2) == GZIP_MAGIC
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse_idx(stream, path)
            return _parse_idx(raw, path)
    except FileNotFoundError:
        raise _error(path, "file not found") from None
    except IsADirectoryError:
        raise _error(path, "is a directory, not an IDX file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _error(path, f"corrupt gzip data: {exc}") from None
    except OSError as exc:
        raise _unreadable(path, exc) from None


def _parse_idx(stream, path: Path) -> tuple[np.ndarray, bytearray]:
    """Validate the header, then read exactly the declared data in bounded chunks."""
    buf = bytearray(stream.read(4))
    if len(buf) < 4:
        raise _error(path, f"truncated: {len(buf)} bytes, too short for an IDX header")
    if buf[:2] != b"\0\0":
        raise _error(path, f"not an IDX file: magic starts with {buf[:2].hex(' ')}, expected 00 00")
    type_code, ndim = buf[2], buf[3]
    if type_code != 0x08:
        kind = _TYPE_NAMES.get(type_code, "unknown")
        raise _error(path, f"unsupported IDX type code 0x{type_code:02X} ({kind}); only 0x08 (unsigned byte) is "
                           f"supported: write the images as uint8 0..255 (and the labels as uint8)")
    if not 1 <= ndim <= 4:
        raise _error(path, f"unsupported number of dimensions {ndim}; expected 1 to 4")
    buf += stream.read(4 * ndim)
    if len(buf) < 4 + 4 * ndim:
        raise _error(path, f"truncated: header of {ndim} dimensions needs {4 + 4 * ndim} bytes, file has {len(buf)}")
    dims = struct.unpack(f">{ndim}I", buf[4:])
    if math.prod(max(d, 1) for d in dims) > MAX_DATA_BYTES:  # zeros too: numpy rejects such shapes
        shape = "x".join(map(str, dims))
        raise _error(path, f"header declares dimensions {shape}, over the {MAX_DATA_BYTES >> 30} GiB limit")
    size = math.prod(dims)
    header_len = len(buf)
    _read_bounded(stream, buf, size, path)
    if stream.read(1):
        raise _error(path, f"trailing bytes after the {size} bytes of data the header declares")
    array = np.frombuffer(buf, dtype=np.uint8, offset=header_len).reshape(dims)
    return array, buf


def _read_bounded(stream, buf: bytearray, size: int, path: Path) -> None:
    """Append size bytes from stream to buf; a short stream is a truncated file."""
    header_len = len(buf)
    while len(buf) - header_len < size:
        chunk = stream.read(min(CHUNK_BYTES, size - (len(buf) - header_len)))
        if not chunk:
            raise _error(path, f"truncated: header says {size} bytes of data, file has {len(buf) - header_len}")
        buf += chunk


# ----------------------------------------------------------------------- dataset


@dataclass
class Dataset:
    """Train and test splits of an image-classification dataset, as uint8 arrays."""

    train_images: np.ndarray  # u8 [N, H, W]
    train_labels: np.ndarray  # u8 [N]
    test_images: np.ndarray  # u8 [M, H, W]
    test_labels: np.ndarray  # u8 [M]
    num_classes: int
    name: str  # the dataset directory's name

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.train_images.shape[1], self.train_images.shape[2]

    @property
    def input_size(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


def bundled_mnist_dir() -> Path:
    """The MNIST copy shipped with the program."""
    from .resources import asset_path
    return asset_path("mnist")


def _accepted_names(role: str) -> list[str]:
    kind = "idx3" if role.endswith("images") else "idx1"
    names = [f"{stem}{sep}{kind}-ubyte" for stem in _ROLE_STEMS[role] for sep in ("-", ".")]
    return names + [name + ".gz" for name in names]


def find_idx_files(directory: str | Path, need_train: bool = True) -> dict[str, Path]:
    """Map train/test images/labels to files in directory, accepting the usual MNIST names
    (without `need_train`, the training files may be missing: evaluation reads the test set only)."""
    directory = Path(directory)
    if not directory.is_dir():
        if directory.exists():   # a file given for its directory: say so, not 'not found'
            raise DataError(f"{printable_path(directory)}: is {non_file_kind(directory) or 'a file'}, not a dataset "
                            f"directory; give the directory that holds the IDX files")
        raise DataError(f"{printable_path(directory)}: dataset directory not found")
    found, missing = {}, []
    for role in _ROLE_STEMS:
        candidates = [directory / name for name in _accepted_names(role)]
        present = [path for path in candidates if path.is_file()]
        match = present[0] if present else None
        if len(present) > 1:     # e.g. the .gz beside its unpacked copy: say which one is read
            _warn(f"{printable_path(directory)}: {', '.join(p.name for p in present)} each hold the {role.replace('_', ' ')}; "
                  f"reading {match.name}")
        if match is None:
            _reject_non_files(role, candidates)
            if need_train or not role.startswith("train"):
                missing.append(f"{role.replace('_', ' ')} (one of {', '.join(_accepted_names(role))})")
        else:
            found[role] = match
    colour = sorted(p.name for p in directory.glob("*-images*idx4-ubyte*"))
    channels = (f" (found {', '.join(colour[:2])}: images with channels are not supported; convert them to "
                f"grayscale idx3 files, uint8 [N, H, W])") if colour and (missing or not found) else ""
    if not found:
        raise DataError(f"{printable_path(directory)}: no IDX files found; expected e.g. "
                        f"{', '.join(_accepted_names('train_images')[:2])}{channels}")
    if missing:
        raise DataError(f"{printable_path(directory)}: missing {'; '.join(missing)}{channels}")
    return found


def _reject_non_files(role: str, candidates: list[Path]) -> None:
    """A directory, FIFO or broken or looping symlink with the right name is named as what it is,
    not reported as missing."""
    for path in candidates:
        kind = non_file_kind(path)
        if kind is not None:
            raise DataError(f"{printable_path(path)}: is {kind}, not an IDX file; "
                            f"put the {role.replace('_', ' ')} IDX file there")


def _read_md5sums(path: Path) -> dict[str, str]:
    """Parse 'md5  filename' lines, as written by md5sum."""
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise _error(path, f"cannot read checksums: {exc}") from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 32 or not all(c in "0123456789abcdef" for c in digest):
            raise _error(path, f"line {number} is not 'md5  filename': {line.strip()!r}")
        sums[parts[1].strip().lstrip("*")] = digest
    return sums


def _expected_checksums(directory: Path, verify: bool | None) -> dict[str, str] | None:
    md5sums = directory / "MD5SUMS"
    if verify is False or (verify is None and not md5sums.is_file()):
        return None
    if not md5sums.is_file():
        raise DataError(f"{directory}: checksum verification requested but there is no MD5SUMS file")
    return _read_md5sums(md5sums)


def _verify_checksum(path: Path, content: bytearray, sums: dict[str, str]) -> None:
    """MD5SUMS may list the decompressed content (as published for MNIST, under the name
    without .gz) or the file as stored (as `md5sum *.gz` writes it); either matching is fine."""
    keys = list(dict.fromkeys([path.name, path.name.removesuffix(".gz")]))
    expected = next((sums[key] for key in keys if key in sums), None)
    if expected is None:
        raise _error(path, f"not listed in MD5SUMS (looked for {' or '.join(map(repr, keys))})")
    if hashlib.md5(content).hexdigest() == expected or _file_md5(path) == expected:
        return
    raise _error(path, f"checksum does not match the published one in MD5SUMS (expected md5 {expected})")


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return digest.hexdigest()


def _check_split(images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray) -> None:
    if images.ndim != 3:
        more = ("; images with channels are not supported: convert them to grayscale, uint8 [N, H, W]"
                if images.ndim == 4 else "")
        raise _error(images_path, f"expected 3-D images (N, H, W), got shape {images.shape}{more}")
    if labels.ndim != 1:
        raise _error(labels_path, f"expected 1-D labels (N,), got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path.name} has {images.shape[0]} images but {labels_path.name} has {labels.shape[0]} labels"
        )
    if images.size == 0:
        raise _error(images_path, f"no image data (shape {images.shape})")


def _num_classes(train_labels_path: Path, train_labels: np.ndarray) -> int:
    num_classes = int(train_labels.max()) + 1
    if num_classes < 2:
        raise _error(train_labels_path, "all labels are 0; need at least 2 classes")
    return num_classes


def _check_label_ranges(paths: dict, train: np.ndarray, test: np.ndarray) -> int:
    """The classes both splits number (0 .. the largest label), refusing a stray label: one past
    the other split's largest beyond a class no file has (a 255 among 0..9 would silently make the
    model 256 classes wide). A split that only lacks its top classes is a real dataset (a small
    test set without class 9): a warning says what it means. Also warns when most classes have
    no training samples. Returns the number of classes."""
    num_classes = max(int(train.max()), int(test.max())) + 1
    present = np.bincount(np.concatenate([train, test]).astype(np.int64), minlength=num_classes) > 0
    splits = [("train_labels", train, "test_labels", test, "test set's"),
              ("test_labels", test, "train_labels", train, "training set's")]
    for role, labels, other_role, other, whose in splits:
        top = int(other.max())
        gaps = np.flatnonzero(~present[top + 1:])
        if gaps.size:
            bad = labels > top + 1 + int(gaps[0])
            value, n = int(labels[bad.argmax()]), int(bad.sum())
            raise _error(paths[role], f"label {value} ({n} sample{'s' * (n != 1)}) is outside the {whose} classes "
                                      f"0..{top} ({printable_path(paths[other_role].name)}); fix the label file")
    for role, labels, what in (("train_labels", train, "training images: the model cannot learn"),
                               ("test_labels", test, "test images: the accuracy does not measure")):
        missing = list(range(int(labels.max()) + 1, num_classes))
        if missing:
            named = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            _warn(f"{printable_path(paths[role].name)}: class{'es' * (len(missing) > 1)} {named} "
                  f"{'have' if len(missing) > 1 else 'has'} no {what} {'them' if len(missing) > 1 else 'it'}")
    counts = np.bincount(train, minlength=num_classes)
    empty = int(np.count_nonzero(counts == 0))
    if 2 * empty > counts.size:
        _warn(f"{printable_path(paths['train_labels'].name)}: {empty} of the {counts.size} classes 0..{counts.size - 1} "
              f"have no training samples; labels should number the classes from 0 without gaps")
    return num_classes


def load_dataset(directory: str | Path, verify_checksums: bool | None = None, need_train: bool = True) -> Dataset:
    """Load and cross-check an IDX dataset directory.

    verify_checksums: None verifies when MD5SUMS exists, True requires it, False skips it.
    need_train False: a directory with the test files only is a dataset with no training images,
    its classes those the test labels number (what evaluating a model needs).
    """
    directory = Path(directory)
    paths = find_idx_files(directory, need_train)
    sums = _expected_checksums(directory, verify_checksums)
    arrays = {}
    for role, path in paths.items():
        arrays[role], content = _read_idx_with_bytes(path)
        if sums is not None:
            _verify_checksum(path, content, sums)
    _check_split(paths["test_images"], arrays["test_images"], paths["test_labels"], arrays["test_labels"])
    if not {"train_images", "train_labels"} <= paths.keys():    # the test split alone (need_train False)
        test_images, test_labels = arrays["test_images"], arrays["test_labels"]
        return Dataset(train_images=test_images[:0], train_labels=test_labels[:0], test_images=test_images,
                       test_labels=test_labels, num_classes=_num_classes(paths["test_labels"], test_labels),
                       name=directory.resolve().name)
    _check_split(paths["train_images"], arrays["train_images"], paths["train_labels"], arrays["train_labels"])
    train_hw, test_hw = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train_hw != test_hw:
        raise DataError(
            f"{paths['train_images'].name} has {train_hw[0]}x{train_hw[1]} images "
            f"but {paths['test_images'].name} has {test_hw[0]}x{test_hw[1]}"
        )
    _num_classes(paths["train_labels"], arrays["train_labels"])       # at least two classes to learn
    num_classes = _check_label_ranges(paths, arrays["train_labels"], arrays["test_labels"])
    return Dataset(**arrays, num_classes=num_classes, name=directory.resolve().name)
