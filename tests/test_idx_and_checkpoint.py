"""Dataset loading (compute.idx) and checkpoint files (compute.checkpoint)."""

from __future__ import annotations

import gzip
import math
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_viz.compute.checkpoint import CheckpointError, load_state_dict, save_state_dict
from mnist_viz.compute.model_io import architecture_of
from mnist_viz.compute.idx import DataError, bundled_mnist_dir, find_idx_files, load_dataset, read_idx

REPO = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if (path.suffix == ".gz" if compress is None else compress) else data)
    return path


def make_dataset(
    directory: Path,
    n_train: int = 12,
    n_test: int = 6,
    hw: tuple[int, int] = (4, 4),
    classes: int = 3,
    gz: bool = True,
    test_prefix: str = "t10k",
    sep: str = "-",
) -> dict[str, Path]:
    """A small random IDX dataset; returns the written paths by role."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {
        "train_images": (f"train-images{sep}idx3-ubyte", rng.integers(0, 256, (n_train, *hw))),
        "train_labels": (f"train-labels{sep}idx1-ubyte", np.arange(n_train) % classes),
        "test_images": (f"{test_prefix}-images{sep}idx3-ubyte", rng.integers(0, 256, (n_test, *hw))),
        "test_labels": (f"{test_prefix}-labels{sep}idx1-ubyte", np.arange(n_test) % classes),
    }
    return {role: write_idx(directory / (name + ext), array) for role, (name, array) in arrays.items()}


def header_dims(content: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{content[3]}I", content[4 : 4 + 4 * content[3]])


# ---------------------------------------------------------------- bundled MNIST


@pytest.fixture(scope="module")
def mnist():
    start = time.perf_counter()
    dataset = load_dataset(bundled_mnist_dir(), verify_checksums=True)
    return dataset, time.perf_counter() - start


def test_bundled_mnist_loads_with_verified_checksums(mnist):
    dataset, seconds = mnist
    assert dataset.train_images.shape == (60000, 28, 28)
    assert dataset.train_labels.shape == (60000,)
    assert dataset.test_images.shape == (10000, 28, 28)
    assert dataset.test_labels.shape == (10000,)
    assert dataset.train_images.dtype == dataset.train_labels.dtype == np.uint8
    assert dataset.num_classes == 10
    assert dataset.image_shape == (28, 28) and dataset.input_size == 784
    assert dataset.name == "mnist"
    assert seconds < 5  # well under 2 s on an idle machine; slack for a shared one


def test_tampered_mnist_copy_fails_checksum(tmp_path):
    for path in bundled_mnist_dir().iterdir():
        shutil.copyfile(path, tmp_path / path.name)
    labels_path = tmp_path / "t10k-labels.idx1-ubyte.gz"
    labels = read_idx(labels_path).copy()
    labels[0] = (labels[0] + 1) % 10  # still a valid IDX file: only the checksum can tell
    write_idx(labels_path, labels)
    with pytest.raises(DataError, match=r"t10k-labels\.idx1-ubyte\.gz: checksum does not match the published one"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, verify_checksums=False).test_labels[0] == labels[0]


def test_required_checksums_need_md5sums(tmp_path):
    make_dataset(tmp_path)
    assert load_dataset(tmp_path).num_classes == 3  # no MD5SUMS: nothing to verify
    with pytest.raises(DataError, match="no MD5SUMS"):
        load_dataset(tmp_path, verify_checksums=True)


# ------------------------------------------------------------------ good inputs


def test_raw_files_with_odd_image_size_load(tmp_path):
    make_dataset(tmp_path, hw=(5, 7), classes=3, gz=False, test_prefix="test", sep=".")
    dataset = load_dataset(tmp_path)
    assert dataset.image_shape == (5, 7) and dataset.input_size == 35
    assert dataset.num_classes == 3
    assert dataset.train_images.shape == (12, 5, 7) and dataset.test_labels.shape == (6,)


def test_gzip_detected_by_magic_not_name(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(5), compress=True)
    np.testing.assert_array_equal(read_idx(path), np.arange(5))


def test_find_idx_files_accepts_usual_names(tmp_path):
    paths = make_dataset(tmp_path, test_prefix="test", sep=".")
    assert find_idx_files(tmp_path) == paths


# ------------------------------------------------------------------- bad inputs


def test_truncated_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((10, 4, 4)))[:-7])
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte: truncated: header says 160 bytes of data, file has 153$"):
        read_idx(path)


def test_truncated_gzip_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 4, 4))))[:-12])
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte\.gz: "):
        read_idx(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(idx_bytes(np.arange(4)) + b"\0")
    with pytest.raises(DataError, match="x-idx1-ubyte: trailing bytes"):
        read_idx(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: not an IDX file"):
        read_idx(path)


def test_unsupported_type_code(tmp_path):
    path = tmp_path / "floats-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(4), type_code=0x0D))
    with pytest.raises(DataError, match=r"floats-idx1-ubyte: unsupported IDX type code 0x0D \(float32\).*write the "
                                        r"images as uint8 0\.\.255"):
        read_idx(path)


def test_bad_dimension_count(tmp_path):
    path = tmp_path / "x-idx0-ubyte"
    path.write_bytes(bytes([0, 0, 8, 0]))
    with pytest.raises(DataError, match="x-idx0-ubyte: unsupported number of dimensions 0"):
        read_idx(path)


def test_image_and_label_counts_differ(tmp_path):
    paths = make_dataset(tmp_path)
    write_idx(paths["train_labels"], np.arange(11) % 3)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz has 12 images but train-labels-idx1-ubyte\.gz has 11 labels"):
        load_dataset(tmp_path)


def test_test_label_outside_training_classes(tmp_path):
    paths = make_dataset(tmp_path, classes=3)
    write_idx(paths["test_labels"], np.array([0, 1, 2, 7, 1, 0]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: label 7 \(1 sample\) is outside the training "
                                        r"set's classes 0\.\.2 \(train-labels-idx1-ubyte\.gz\)"):
        load_dataset(tmp_path)


def test_single_class_is_rejected(tmp_path):
    paths = make_dataset(tmp_path)
    write_idx(paths["train_labels"], np.zeros(12))
    write_idx(paths["test_labels"], np.zeros(6))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: .*at least 2 classes"):
        load_dataset(tmp_path)


def test_images_must_be_3d(tmp_path):
    paths = make_dataset(tmp_path)
    write_idx(paths["test_images"], np.zeros((6, 16)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: expected 3-D images"):
        load_dataset(tmp_path)
    write_idx(paths["test_images"], np.zeros((6, 3, 4, 4)))     # colour: what to do about it
    with pytest.raises(DataError, match=r"images with channels are not supported: convert them to grayscale"):
        load_dataset(tmp_path)


def test_two_copies_of_a_file_say_which_is_read(tmp_path, capsys):
    """Guards against a directory holding a file both raw and gzipped using one of them without a word."""
    paths = make_dataset(tmp_path)
    raw = paths["train_labels"].with_suffix("")
    raw.write_bytes(gzip.decompress(paths["train_labels"].read_bytes()))
    load_dataset(tmp_path)
    err = capsys.readouterr().err
    assert f"{raw.name}, {raw.name}.gz each hold the train labels; reading {raw.name}" in err, err


def test_colour_idx4_files_are_named_not_missing(tmp_path):
    """Guards against a directory of [N, 3, H, W] idx4 files being told only that its images are missing."""
    paths = make_dataset(tmp_path)
    for role in ("train_images", "test_images"):
        target = paths[role].with_name(paths[role].name.replace("idx3", "idx4"))
        write_idx(target, np.zeros((12 if role == "train_images" else 6, 3, 4, 4)))
        paths[role].unlink()
    with pytest.raises(DataError, match=r"missing .*\(found t10k-images-idx4-ubyte\.gz, train-images-idx4-ubyte\.gz: "
                                        r"images with channels are not supported; convert them to grayscale"):
        load_dataset(tmp_path)


def test_train_and_test_image_sizes_differ(tmp_path):
    paths = make_dataset(tmp_path, hw=(4, 4))
    write_idx(paths["test_images"], np.zeros((6, 4, 5)))
    with pytest.raises(DataError, match="has 4x4 images but t10k-images-idx3-ubyte.gz has 4x5"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    "dims",
    [(2_000_000_000, 28, 28), (5_000_000, 28, 28), (65536, 1 << 24, 0, 1 << 24)],  # over the cap, under it, empty
)
def test_huge_header_fails_fast_without_allocating(tmp_path, dims):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + bytes(1000))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError, match="train-images-idx3-ubyte: "):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1
    assert peak < 4 << 20


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte: file not found"):
        read_idx(tmp_path / "train-images-idx3-ubyte")


@pytest.mark.parametrize("unreadable", ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte.gz", "MD5SUMS"])
def test_unreadable_file_is_named_once_with_the_fix(unreadable, tmp_path, monkeypatch):
    """Guards against a file the user may not read (chmod 000) printed as Python's exception text,
    'cannot read file: [Errno 13] Permission denied: 'd/t10k-labels-idx1-ubyte'': the path once,
    the reason, what to do. Read as nobody when the tests run as root (who reads any file), from
    inside tmp_path (its parents are closed to nobody)."""
    from test_hardening_files import raised_unprivileged
    data = tmp_path / "d"
    paths = make_dataset(data, gz=False)
    if unreadable.endswith(".gz"):                   # one read through gzip
        write_idx(data / unreadable, read_idx(paths["train_images"]))
        paths["train_images"].unlink()
    if unreadable == "MD5SUMS":
        (data / unreadable).write_text("")
    os.chmod(tmp_path, 0o755)
    monkeypatch.chdir(tmp_path)
    os.chmod(data / unreadable, 0)
    message = raised_unprivileged(lambda: load_dataset("d"))
    assert message == f"d/{unreadable}: cannot read the file (Permission denied); check its permissions", message


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="nowhere: dataset directory not found"):
        load_dataset(tmp_path / "nowhere")


def test_directory_without_idx_files(tmp_path):
    (tmp_path / "README.txt").write_text("not a dataset")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: no IDX files found; expected e.g. train-images-idx3-ubyte")):
        load_dataset(tmp_path)


def test_directory_missing_one_file(tmp_path):
    make_dataset(tmp_path)["test_labels"].unlink()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: missing test labels (one of t10k-labels-idx1-ubyte, ")):
        load_dataset(tmp_path)


@pytest.mark.parametrize(
    ("start", "garbage"),
    [(-8, b"\xde\xad\xbe\xef"), (2, b"\x07"), (10, b"\xff" * 6)],  # CRC, compression method, deflate data
)
def test_corrupt_gzip(tmp_path, start, garbage):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(gzip.compress(idx_bytes(np.arange(200).reshape(2, 10, 10))))
    data[start : start + len(garbage) or None] = garbage
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte\.gz: "):
        read_idx(path)


# ------------------------------------------------------------------------- fuzz


@st.composite
def mutated_idx(draw):
    """A valid small IDX file with random byte edits, truncation, appended bytes, maybe gzipped."""
    shape = draw(st.lists(st.integers(0, 4), min_size=1, max_size=4))
    data = bytearray(idx_bytes(np.arange(math.prod(shape)).reshape(shape)))
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=3)):
        data[position] = value
    data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
    data += draw(st.binary(max_size=3))
    if draw(st.booleans()):
        data = bytearray(gzip.compress(bytes(data)))
        if draw(st.booleans()):  # damage the compressed stream too
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
    return bytes(data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=64), mutated_idx()))
def test_read_idx_fuzz(tmp_path, data):
    path = tmp_path / "fuzz-idx-ubyte"
    path.write_bytes(data)
    try:
        array = read_idx(path)
    except DataError as exc:
        assert str(exc).startswith("fuzz-idx-ubyte: ") and "\n" not in str(exc)
        return
    content = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    dims = header_dims(content)
    assert array.dtype == np.uint8 and array.shape == dims and array.size == math.prod(dims)
    assert array.tobytes() == content[4 + 4 * len(dims) :]


# ------------------------------------------------------------------ checkpoints


def mlp_tensors(sizes=(784, 16, 10), dropout=False, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    step = 3 if dropout else 2          # Linear, ReLU[, Dropout], Linear: PyTorch's layer indices
    for prefix, (n_in, n_out) in zip((str(k * step) for k in range(len(sizes) - 1)), zip(sizes, sizes[1:])):
        tensors[f"{prefix}.weight"] = rng.standard_normal((n_out, n_in)).astype(np.float32)
        tensors[f"{prefix}.bias"] = rng.standard_normal(n_out).astype(np.float32)
    return tensors


def test_architecture_read_from_pytorch_layer_indices():
    """Guards the layer-index rule: gaps of 2 are ReLU, 3 ReLU + Dropout, a first index 1 a Flatten."""
    assert architecture_of(mlp_tensors((784, 16, 12, 10)))[0].text == "Linear(784,16),ReLU(),Linear(16,12),ReLU(),Linear(12,10)"
    assert architecture_of(mlp_tensors((784, 16, 10), dropout=True))[0].text == "Linear(784,16),ReLU(),Dropout(0.1),Linear(16,10)"
    shifted = {f"{int(k.split('.')[0]) + 1}.{k.split('.')[1]}": v for k, v in mlp_tensors().items()}
    arch, note = architecture_of(shifted)
    assert arch.text == "Flatten(),Linear(784,16),ReLU(),Linear(16,10)" and "--arch" in note


def test_checkpoint_round_trip(tmp_path):
    tensors = mlp_tensors(sizes=(12, 11, 10, 9, 8, 7, 6))  # prefixes up to '10': integer, not string, order
    tensors["0.weight"] = tensors["0.weight"].astype(np.float64)  # stored as float32
    path = tmp_path / "runs" / "model.safetensors"
    save_state_dict(path, tensors, metadata={"step": "42"})
    loaded, metadata = load_state_dict(path)
    assert metadata == {"step": "42"}
    assert loaded.keys() == tensors.keys()
    for name, array in tensors.items():
        assert loaded[name].dtype == np.float32
        np.testing.assert_array_equal(loaded[name], array.astype(np.float32))
    arch, _ = architecture_of(loaded)
    linears = [(i, l) for i, l in enumerate(arch.layers) if l.has_params]
    assert [i for i, _ in linears] == [0, 2, 4, 6, 8, 10]
    assert [(l.out_features, l.in_features) for _, l in linears] == [(11, 12), (10, 11), (9, 10), (8, 9), (7, 8), (6, 7)]
    assert list(tmp_path.glob("runs/.*.tmp")) == []


def test_checkpoint_half_and_double_precision_become_float32(tmp_path):
    path = tmp_path / "m.safetensors"
    safetensors.numpy.save_file({"0.weight": np.ones((2, 3), np.float16), "0.bias": np.full(2, 0.5)}, path)
    loaded, _ = load_state_dict(path)
    assert loaded["0.weight"].dtype == loaded["0.bias"].dtype == np.float32
    np.testing.assert_array_equal(loaded["0.bias"], [0.5, 0.5])


def test_checkpoint_bfloat16_becomes_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625], np.float32)  # exactly representable in bf16
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = b'{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}'
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bf16)
    np.testing.assert_array_equal(load_state_dict(path)[0]["x"], values)


def test_interrupted_save_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "model.safetensors"
    old = mlp_tensors(seed=1)
    save_state_dict(path, old)
    child = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from mnist_viz.compute import checkpoint
        os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # die between write and rename
        checkpoint.save_state_dict({str(path)!r}, {{"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(3)}})
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "checkout")}
    result = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr.decode()
    assert len(list(tmp_path.glob(".mnist-viz-*.tmp"))) == 1  # it did die after writing the temp file
    loaded, _ = load_state_dict(path)
    for name, array in old.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_failed_save_removes_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_state_dict(path, mlp_tensors(seed=1))

    def failing_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_state_dict(path, mlp_tensors(seed=2))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    np.testing.assert_array_equal(load_state_dict(path)[0]["0.bias"], mlp_tensors(seed=1)["0.bias"])


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: checkpoint file not found"):
        load_state_dict(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("cut", [1, 100, 3000])
def test_truncated_checkpoint(tmp_path, cut):
    path = tmp_path / "model.safetensors"
    save_state_dict(path, mlp_tensors())
    path.write_bytes(path.read_bytes()[:-cut])
    # its header is whole: a damaged checkpoint, the words `--save --overwrite` acts on (it may replace it)
    with pytest.raises(CheckpointError, match="model.safetensors: a damaged safetensors checkpoint"):
        load_state_dict(path)


@pytest.mark.parametrize("cut", [1, 3000, "header"])
def test_eval_and_overwrite_agree_on_a_damaged_checkpoint(tmp_path, cut):
    """What `eval` calls a damaged checkpoint is what `--save --overwrite` may replace (a file cut in
    its header is neither: not a checkpoint to either)."""
    from mnist_viz.compute.checkpoint import is_safetensors_file
    path = tmp_path / "model.safetensors"
    save_state_dict(path, mlp_tensors())
    data = path.read_bytes()
    path.write_bytes(data[:20] if cut == "header" else data[:-cut])
    with pytest.raises(CheckpointError) as caught:
        load_state_dict(path)
    assert ("a damaged safetensors checkpoint" in str(caught.value)) == is_safetensors_file(path) == (cut != "header")


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, os.urandom(4096), b"\x80\x04\x95" + bytes(64)])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="model.pt: not a valid safetensors file"):
        load_state_dict(path)


class _CreatesMarkerWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickle_checkpoint_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"0.weight": _CreatesMarkerWhenUnpickled(marker)})
    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match="model.safetensors: not a valid safetensors file"):
        load_state_dict(path)
    assert not marker.exists()
    pickle.loads(payload).clear()  # the payload is live: unpickling it does create the marker
    assert marker.exists()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path, value):
    tensors = mlp_tensors()
    tensors["2.bias"][3] = value
    path = tmp_path / "model.safetensors"
    safetensors.numpy.save_file(tensors, path)
    with pytest.raises(CheckpointError, match="model.safetensors: tensor '2.bias' has 1 NaN or infinite values"):
        load_state_dict(path)


def test_integer_tensor_is_rejected(tmp_path):
    path = tmp_path / "model.safetensors"
    safetensors.numpy.save_file({"0.weight": np.ones((2, 2), np.int32), "0.bias": np.ones(2, np.float32)}, path)
    with pytest.raises(CheckpointError, match="tensor '0.weight' has dtype I32"):
        load_state_dict(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("2.bias"), r"layer 2 Linear\(16,10\) needs 2\.bias"),
        (lambda t: t.pop("0.weight"), r"0\.bias has no 0\.weight"),
        (lambda t: t.update({"0.weight": np.zeros(784 * 16)}), r"0\.weight must be 2-D"),
        (lambda t: t.update({"0.bias": np.zeros(15)}), r"needs 0\.bias of shape \(16,\), the file has \(15,\)"),
        (
            lambda t: t.update({"2.weight": np.zeros((10, 32))}),
            r"layer 2 Linear\(32,10\): takes 32 inputs, but \[16\] = 16 values arrive",
        ),
        (lambda t: t.update({"1.running_mean": np.zeros(3), "head": np.zeros(1)}), r"unexpected tensors 1\.running_mean, head"),
        (lambda t: t.clear(), "no layers"),
    ],
)
def test_malformed_models_are_refused_naming_the_tensor_or_layer(edit, message):
    tensors = mlp_tensors()
    edit(tensors)
    with pytest.raises(CheckpointError, match=f"^model.safetensors: .*{message}"):
        architecture_of(tensors, source="model.safetensors")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4), cut=st.integers(0, 200))
def test_load_state_dict_fuzz(tmp_path, edits, cut):
    data = bytearray(safetensors.numpy.save(mlp_tensors(sizes=(8, 4, 3)), metadata={"k": "v"}))
    for position, value in edits:
        data[position % len(data)] = value
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(bytes(data[: len(data) - cut]))
    try:
        tensors, _ = load_state_dict(path)
    except CheckpointError as exc:
        assert str(exc).startswith("fuzz.safetensors: ") and "\n" not in str(exc)
        return
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in tensors.values())


# ------------------------------------------------------------------ torch interop


def test_torch_state_dict_loads(tmp_path, torch, safetensors_torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file(model.state_dict(), path)
    loaded = load_state_dict(path)[0]
    arch, _ = architecture_of(loaded)
    assert arch.text == "Linear(784,16),ReLU(),Linear(16,10)"
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded[name], value.numpy())


def test_saved_checkpoint_loads_into_torch(tmp_path, torch, safetensors_torch):
    tensors = mlp_tensors()
    path = tmp_path / "ours.safetensors"
    save_state_dict(path, tensors)
    model = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    model.load_state_dict(safetensors_torch.load_file(path))
    x = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    hidden = np.maximum(x @ tensors["0.weight"].T + tensors["0.bias"], 0)
    expected = hidden @ tensors["2.weight"].T + tensors["2.bias"]
    with torch.no_grad():
        actual = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_a_checkpoints_recorded_recipe_reads_back_as_written():
    """Guards against Recipe.from_metadata losing or mistyping a field (a bool read as the
    truthy string 'False', an int as a float): every built-in recipe, and one with every
    field changed, round-trips through to_metadata; the shipped files read as the recipes
    they were trained with ('recipe' names it; the MLP's file records no fields); a file
    with no recipe reads as None; a bad value raises naming its key."""
    from mnist_viz.compute.model_io import default_model_path
    from mnist_viz.compute.recipe import RECIPES, Recipe
    from mnist_viz.compute.resources import asset_path
    odd = Recipe(epochs=3, batch_size=7, optimizer="adam", lr=0.003, min_lr=1e-5, schedule="step", gamma=0.25,
                 step_epochs=2.5, momentum=0.0, nesterov=False, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-4,
                 shift=3, init="he_normal", seed=11)
    for recipe in (*RECIPES.values(), odd):
        assert Recipe.from_metadata(recipe.to_metadata()) == recipe
    for name, file in (("cnn", asset_path("mnist-cnn.safetensors")), ("default", default_model_path())):
        _, meta = load_state_dict(file)
        assert Recipe.from_metadata(meta) == RECIPES[name]
    assert Recipe.from_metadata({"architecture": "784-128-10"}) is None
    with pytest.raises(ValueError, match="recipe.nesterov: expected True or False"):
        Recipe.from_metadata({**odd.to_metadata(), "recipe.nesterov": "no"})
    with pytest.raises(ValueError, match="recipe.lr must be a positive number"):
        Recipe.from_metadata({**odd.to_metadata(), "recipe.lr": "-1"})
