"""Files and paths past the happy path: odd names, odd file types, full disks, crashes.

Every case ends in what the README promises: one `error:` line naming the file or
option and the fix, exit 2, no traceback, and nothing the user had lost or overwritten.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_viz.compute.atomic import WriteError, check_can_write, remove_stale_temps
from mnist_viz.compute.checkpoint import CheckpointError, load_state_dict, save_state_dict
from mnist_viz.compute.idx import DataError, load_dataset
from mnist_viz.compute.model_io import read_checkpoint
from mnist_viz.compute.pathinfo import printable_path

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ---------------------------------------------------------------------- helpers


def cli(*args, env=None, timeout=120):
    """`python -m mnist_viz.viz ARGS` from this checkout; args may be str or bytes (file names)."""
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, timeout=timeout,
                          env={**ENV, **(env or {})}, cwd=ROOT)


def one_line_error(p, code=2) -> str:
    """The single stderr line of a failed run (bytes decoded as the CLI wrote them)."""
    err = p.stderr.decode("utf-8", "backslashreplace")
    assert p.returncode == code, (p.returncode, p.stdout[-500:], err[-2000:])
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def refused_before_training(target: Path, tmp_path: Path, *options: str) -> str:
    """`train --save target [options]` on a tiny dataset: the error line, checked to come before any training."""
    data = tmp_path.parent / f"{tmp_path.name}-data"
    tiny_mnist(data)
    p = cli("train", "--data", str(data), "--limit", "64", "--epochs", "1", "--quiet", "--save", str(target),
            *options)
    line = one_line_error(p)
    assert p.stdout == b"", p.stdout  # nothing printed: training never started
    return line


def small_state(value: float = 1.0, hidden: int = 8) -> dict[str, np.ndarray]:
    return {"0.weight": np.full((hidden, 784), value, np.float32), "0.bias": np.full(hidden, value, np.float32),
            "2.weight": np.full((10, hidden), value, np.float32), "2.bias": np.full(10, value, np.float32)}


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array)
    data = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def tiny_mnist(directory: Path, gz: bool = False, train_labels=None, test_labels=None) -> dict[str, Path]:
    """A 28 x 28, 10-class IDX dataset small enough to train and evaluate in seconds."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    train_labels = np.arange(64) % 10 if train_labels is None else np.asarray(train_labels)
    test_labels = np.arange(20) % 10 if test_labels is None else np.asarray(test_labels)
    ext = ".gz" if gz else ""
    files = {"train_images": (f"train-images-idx3-ubyte{ext}", rng.integers(0, 256, (len(train_labels), 28, 28))),
             "train_labels": (f"train-labels-idx1-ubyte{ext}", train_labels),
             "test_images": (f"t10k-images-idx3-ubyte{ext}", rng.integers(0, 256, (len(test_labels), 28, 28))),
             "test_labels": (f"t10k-labels-idx1-ubyte{ext}", test_labels)}
    paths = {}
    for role, (name, array) in files.items():
        paths[role] = directory / name
        write_idx(paths[role], array)
    return paths


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@contextlib.contextmanager
def file_attribute(path: Path, flag: str):
    """chattr +flag for the block; always chattr -flag afterwards (else tmp_path cannot be removed)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    p = subprocess.run(["chattr", f"+{flag}", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"chattr +{flag} is not possible here: {p.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", f"-{flag}", str(path)], capture_output=True)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs: the smallest full disk we can make (root only)."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# --------------------------------------------------------- A. targets that cannot be replaced


def _make_target(kind: str, directory: Path) -> tuple[Path, str]:
    """A --save target of the given kind and the phrase its error must contain."""
    if kind == "directory":
        (directory / "out").mkdir()
        return directory / "out", "is a directory"
    if kind == "fifo":
        os.mkfifo(directory / "pipe.safetensors")
        return directory / "pipe.safetensors", "FIFO"
    if kind == "char device":
        if not IS_ROOT:
            pytest.skip("mknod needs root")
        os.mknod(directory / "null.safetensors", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return directory / "null.safetensors", "character device"
    if kind == "symlink loop":
        os.symlink("b.safetensors", directory / "a.safetensors")
        os.symlink("a.safetensors", directory / "b.safetensors")
        return directory / "a.safetensors", "loops"
    if kind == "name too long":
        return directory / ("m" * 300 + ".safetensors"), "over the file system's limit"
    raise AssertionError(kind)


def _snapshot(path: Path):
    st_ = os.lstat(path) if os.path.lexists(path) else None
    return None if st_ is None else (stat.S_IFMT(st_.st_mode), st_.st_ino, st_.st_size)


@pytest.mark.parametrize("kind", ["directory", "fifo", "char device", "symlink loop", "name too long"])
def test_unreplaceable_targets_are_refused_before_training(kind, tmp_path):
    """Guards against: os.replace replacing a FIFO or a device node (as root, --save /dev/null
    would replace the device), a directory error after training, and a too-long name
    failing only when the model is saved."""
    target, phrase = _make_target(kind, tmp_path)
    before = _snapshot(target)
    with pytest.raises(WriteError, match=phrase) as pre:
        check_can_write(target)
    with pytest.raises(WriteError, match=phrase) as save:
        save_state_dict(target, small_state())
    for exc in (pre.value, save.value):
        assert str(exc).startswith(printable_path(target)) and "\n" not in str(exc)
    line = refused_before_training(target, tmp_path)
    assert line.startswith(f"error: --save {printable_path(target)}: ") and phrase in line, line
    assert _snapshot(target) == before and temps(tmp_path) == []


@pytest.mark.parametrize("flag,fix", [("i", "chattr -i"), ("a", "chattr -a")])
def test_immutable_target_is_refused_before_training(flag, fix, tmp_path):
    """Guards against: an immutable (or append-only) checkpoint passing the pre-check, training
    running, and the save then failing with a message naming our temp file."""
    target = tmp_path / "frozen.safetensors"
    save_state_dict(target, small_state(1.0))
    before = target.read_bytes()
    with file_attribute(target, flag):
        line = refused_before_training(target, tmp_path)
        assert line.startswith(f"error: --save {target}: ") and fix in line, line
        with pytest.raises(WriteError) as exc:
            save_state_dict(target, small_state(2.0))
        message = str(exc.value)
        assert message.startswith(f"{target}: ") and fix in message, message
        assert ".tmp" not in message and "mnist-viz-" not in message
    assert target.read_bytes() == before and temps(tmp_path) == []


def test_save_error_names_the_target_when_its_directory_becomes_immutable_after_the_check(tmp_path):
    """Guards against: a failed save reported under the temp file's name (the user never
    typed it: `.model.safetensors.1234.tmp: Operation not permitted`)."""
    directory = tmp_path / "runs"
    target = directory / "model.safetensors"
    save_state_dict(target, small_state(1.0))
    check_can_write(target)  # passes: nothing wrong yet
    with file_attribute(directory, "i"):
        with pytest.raises(WriteError) as exc:
            save_state_dict(target, small_state(2.0))
        message = str(exc.value)
        assert message.startswith(f"{target}: cannot save (its directory has the immutable attribute); "
                                  f"run 'chattr -i {directory}'"), message
        assert message.endswith("the previous file is unchanged") and ".tmp" not in message
        with pytest.raises(WriteError, match="cannot write there"):
            check_can_write(target)
    assert temps(directory) == []
    np.testing.assert_array_equal(load_state_dict(target)[0]["0.bias"], small_state(1.0)["0.bias"])


def test_full_disk_fails_cleanly_and_keeps_the_old_checkpoint(tiny_tmpfs):
    """Guards against: ENOSPC half-writing or truncating the previous checkpoint, leaving the
    temp file filling the disk, or a message without the target's name and a fix."""
    target = tiny_tmpfs / "model.safetensors"
    save_state_dict(target, small_state(1.0, hidden=1))  # about 3 KB: fits
    before = target.read_bytes()
    with pytest.raises(WriteError) as exc:
        save_state_dict(target, small_state(2.0, hidden=64))  # about 200 KB: does not
    message = str(exc.value)
    assert message.startswith(f"{target}: cannot save (No space left on device)"), message
    assert "free some space" in message and "the previous file is unchanged" in message
    assert target.read_bytes() == before and temps(tiny_tmpfs) == []


def test_full_disk_after_training_is_one_error_line(tiny_tmpfs, tmp_path):
    """Guards against: the CLI's final save on a full disk ending in a traceback or an
    error naming something other than --save's file."""
    target = tiny_tmpfs / "model.safetensors"
    save_state_dict(target, small_state(1.0, hidden=1))
    before = target.read_bytes()
    tiny_mnist(tmp_path / "data")
    p = cli("train", "--data", str(tmp_path / "data"), "--limit", "64", "--epochs", "1", "--quiet",
            "--save", str(target), "--overwrite")
    line = one_line_error(p)
    assert line.startswith(f"error: {target}: cannot save (No space left on device)"), line
    assert target.read_bytes() == before and temps(tiny_tmpfs) == []


# ------------------------------------------------------------ A. files that are there already


def existing_file(path, checkpoint: bool):
    """A file already at path, as a user's earlier work: a checkpoint, or a few lines of text."""
    if checkpoint:
        save_state_dict(path, small_state())
    else:
        path.write_text("my notes\n")
    return path


@pytest.mark.parametrize("existing,overwrite,reason", [
    ("checkpoint", False, "the file exists; choose another path, or add --overwrite to replace it"),
    ("notes", False, "the file exists and is not a safetensors checkpoint; choose another path"),
    ("notes", True, "the file exists and is not a safetensors checkpoint; choose another path"),
], ids=["checkpoint", "notes", "notes with --overwrite"])
def test_save_never_replaces_a_file_unasked(existing, overwrite, reason, tmp_path):
    """Guards against: a second `train --save m.safetensors` replacing the first run's model without
    a word, and `--save notes.txt` (a slip of tab completion) turning the user's notes into a model,
    with --overwrite too (it replaces only a checkpoint)."""
    target = existing_file(tmp_path / ("m.safetensors" if existing == "checkpoint" else "notes.txt"),
                           existing == "checkpoint")
    before = target.read_bytes()
    line = refused_before_training(target, tmp_path, *(["--overwrite"] if overwrite else []))
    assert line.startswith(f"error: --save {target}: {reason}"), line
    assert target.read_bytes() == before and temps(tmp_path) == []


def test_overwrite_replaces_a_checkpoint_and_an_empty_file_needs_none(tmp_path):
    """Guards against: --overwrite not replacing the checkpoint it names, and an empty file (mktemp's)
    refused: it holds nothing to lose, so `--save "$(mktemp)"` works as it did."""
    data = tmp_path / "data"
    tiny_mnist(data)
    target, empty = tmp_path / "m.safetensors", tmp_path / "empty.safetensors"
    save_state_dict(target, small_state())
    empty.touch()
    for path, options in ((target, ["--overwrite"]), (empty, [])):
        p = cli("train", "--data", str(data), "--limit", "64", "--epochs", "1", "--quiet", "--save", str(path),
                *options)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        assert f"\nsaved {path}\n" in p.stdout.decode(), p.stdout
        assert "test_accuracy" in load_state_dict(path)[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "empty.safetensors", "m.safetensors"]


def test_a_save_named_for_another_format_is_saved_with_one_warning(tmp_path):
    """Guards against `--save model.pt` (a first user's name) writing safetensors under a name that
    says PyTorch pickle without a word: one `warning:` line on stderr says the format and the name
    to use, the run goes on and saves there; a .safetensors name (any case) or none gets none."""
    data = tmp_path / "data"
    tiny_mnist(data)
    for name, warned in (("m.pt", True), ("M.SafeTensors", False), ("model", False)):
        path = tmp_path / name
        p = cli("train", "--data", str(data), "--limit", "64", "--epochs", "1", "--quiet", "--save", str(path))
        err = p.stderr.decode()
        assert p.returncode == 0 and f"\nsaved {path}\n" in p.stdout.decode(), err[-2000:]
        want = (f"warning: --save {path}: the file is written in the safetensors format, not as its .pt suffix "
                f"suggests; name it {tmp_path / 'm.safetensors'}\n") if warned else ""
        assert err == want, err
        assert "architecture" in load_state_dict(path)[1]


def raised_unprivileged(fn) -> str:
    """str() of what fn() raises ('' if nothing) as an unprivileged user: here when the tests run as one;
    as root (who may enter any directory), in a forked child that has become nobody (uid 65534)."""
    if not IS_ROOT:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - the message is what is tested
            return str(exc)
        return ""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                fn()
                text = ""
            except Exception as exc:  # noqa: BLE001
                text = str(exc)
            os.write(write, text.encode("utf-8", "surrogateescape"))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    os.waitpid(pid, 0)
    return text


def test_save_into_a_directory_that_cannot_be_entered_names_the_directory(tmp_path):
    """Guards against: `--save /root/x.safetensors` as another user reported as 'is unreadable
    (Permission denied), not a regular file' for a file that does not exist: the directory on the
    way is the problem, and the line names it and the fix."""
    from mnist_viz.viz.cli import check_writable
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0)
    target = locked / "x.safetensors"
    try:
        message = raised_unprivileged(lambda: check_writable(target))
    finally:
        os.chmod(locked, 0o700)
    barred = (next(d for d in reversed(target.parents) if not os.stat(d).st_mode & 0o001) if IS_ROOT else locked)
    assert message == (f"--save {target}: cannot write there: the directory {barred} cannot be searched "
                       f"(Permission denied); check its permissions or choose another path"), message
    assert not os.path.exists(target)


# ----------------------------------------------------------------- A. names, links, modes


@pytest.mark.parametrize("length", [200, 240, 245, 250, 255])
def test_long_file_names_save_load_and_probe(length, tmp_path):
    """Guards against: the temp name `.<name>.<pid>.tmp` pushing a name the file system
    accepts past its 255-byte limit, so such a --save is refused or fails."""
    name = ("n" * length)[: length - len(".st")] + ".st"
    target = tmp_path / name
    check_can_write(target)
    save_state_dict(target, small_state(3.0))
    save_state_dict(target, small_state(4.0))  # replacing works too
    np.testing.assert_array_equal(load_state_dict(target)[0]["2.bias"], small_state(4.0)["2.bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("link", ["relative", "absolute", "chain", "dangling", "into a subdirectory"])
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_symlinked_target_is_written_through_keeping_its_mode(link, mode, tmp_path):
    """Guards against: os.replace swapping the user's symlink for a plain file (their link to
    a shared model silently stops updating), and a replaced file's permissions resetting."""
    real_dir = tmp_path / "store" if link == "into a subdirectory" else tmp_path
    real_dir.mkdir(exist_ok=True)
    real = real_dir / "real.safetensors"
    if link != "dangling":
        save_state_dict(real, small_state(1.0))
        os.chmod(real, mode)
    target = tmp_path / "link.safetensors"
    if link == "absolute":
        os.symlink(real, target)
    elif link == "chain":
        os.symlink(real.name, tmp_path / "middle.safetensors")
        os.symlink("middle.safetensors", target)
    else:
        os.symlink(os.path.relpath(real, tmp_path), target)
    check_can_write(target)
    save_state_dict(target, small_state(5.0))
    assert target.is_symlink()
    np.testing.assert_array_equal(load_state_dict(real)[0]["0.bias"], small_state(5.0)["0.bias"])
    if link != "dangling":
        assert stat.S_IMODE(os.stat(real).st_mode) == mode
    assert temps(tmp_path) == [] and temps(real_dir) == []


def test_new_file_mode_follows_the_umask(tmp_path):
    """Guards against: a temp-file API (mkstemp) making every new checkpoint 0600."""
    old = os.umask(0o022)
    try:
        save_state_dict(tmp_path / "new.safetensors", small_state())
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.safetensors").st_mode) == 0o644


FILE_NAME_BYTES = st.binary(min_size=1, max_size=240).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..") and not b.startswith(b".mnist-viz-"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=FILE_NAME_BYTES)
def test_any_file_name_saves_loads_and_prints(tmp_path, raw):
    """Guards against: a file name that is not UTF-8 (or not printable in the terminal's
    encoding) breaking a save, a load, or the print of its name."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example (hypothesis replays examples)
    target = directory / os.fsdecode(raw)
    save_state_dict(target, small_state(2.0))
    assert load_state_dict(target)[0]["0.bias"][0] == 2.0
    shown = printable_path(target)
    shown.encode("utf-8")  # strict: no lone surrogates
    shown.encode(sys.stdout.encoding or "utf-8")
    if all(32 <= c < 127 for c in raw):
        assert shown.endswith(raw.decode("ascii"))  # plain names are shown as they are
    garbage = directory / "x"
    garbage.write_bytes(b"\x01" * 16)
    os.replace(garbage, target)
    with pytest.raises(CheckpointError) as exc:
        load_state_dict(target)
    str(exc.value).encode("utf-8")
    assert sorted(os.listdir(os.fsencode(directory))) == [raw]


@pytest.mark.parametrize("name,io_encoding", [
    (b"model-\xff.safetensors", "utf-8:strict"),  # not UTF-8 at all
    (b"mod\xe8le.safetensors", "utf-8:strict"),  # Latin-1 bytes
    ("modèle-ü.safetensors".encode(), "ascii:strict"),  # valid UTF-8, ASCII terminal
])
def test_odd_names_through_the_cli_with_a_strict_stdout(name, io_encoding, tmp_path):
    """Guards against: `print(f"saved {path}")` raising UnicodeEncodeError after a save that
    worked, so training reports exit 2 (and eval cannot print the checkpoint it read)."""
    data = tmp_path / "data"
    tiny_mnist(data)
    target = os.fsencode(tmp_path) + b"/" + name
    env = {"PYTHONIOENCODING": io_encoding}
    p = cli("train", "--data", str(data), "--limit", "64", "--epochs", "1", "--quiet", "--save", target, env=env)
    assert p.returncode == 0, p.stderr.decode("utf-8", "backslashreplace")[-2000:]
    assert p.stderr == b""
    shown = name.decode("utf-8", "backslashreplace").encode("ascii", "backslashreplace")
    assert b"\nsaved " + target.replace(name, shown) + b"\n" in p.stdout, p.stdout
    assert os.path.exists(target)
    p = cli("eval", "--data", str(data), "--checkpoint", target, env=env)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode("utf-8", "backslashreplace")[-2000:]
    assert shown in p.stdout and b"test accuracy" in p.stdout
    with open(target, "r+b") as f:  # now a broken checkpoint: the error line names it too
        f.truncate(100)
    line = one_line_error(cli("eval", "--data", str(data), "--checkpoint", target, env=env))
    assert shown.decode() in line and "not a valid safetensors file" in line


# ------------------------------------------------------------ A. crashes and stale temps


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from mnist_viz.compute.checkpoint import save_state_dict
    target = sys.argv[1]
    version = 1
    while True:
        version += 1
        save_state_dict(target, {"0.weight": np.full((1024, 2048), version, np.float32),
                                 "0.bias": np.full(1024, version, np.float32)})
""")


def test_kill_9_during_writes_keeps_a_whole_checkpoint_and_the_next_save_cleans_up(tmp_path):
    """A writer SIGKILLed in the middle of writing (the temp file exists, 8 MB being written).

    Guards against: a torn or missing checkpoint after a crash, and every crashed save
    leaving a hidden 8 MB temp file behind forever.
    """
    target = tmp_path / "model.safetensors"
    save_state_dict(target, {"0.weight": np.full((1024, 2048), 1, np.float32), "0.bias": np.full(1024, 1, np.float32)})
    stale = []
    for _ in range(20):
        p = subprocess.Popen([sys.executable, "-c", SAVER, str(target)], env=ENV, cwd=ROOT)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not any(name.startswith(f".mnist-viz-{p.pid}-") for name in temps(tmp_path)):
                time.sleep(0.002)
            os.kill(p.pid, signal.SIGKILL)
        finally:
            p.kill()
            p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        tensors, _ = load_state_dict(target)  # whole: either the old or one complete new version
        version = tensors["0.bias"][0]
        assert (tensors["0.weight"] == version).all() and (tensors["0.bias"] == version).all()
        stale = [name for name in temps(tmp_path) if name.startswith(f".mnist-viz-{p.pid}-")]
        if stale:
            break
    assert stale, "the writer was never killed while its temp file existed"
    save_state_dict(target, small_state(9.0))
    assert temps(tmp_path) == []
    assert load_state_dict(target)[0]["0.bias"][0] == 9.0


@pytest.mark.parametrize("make_name,removed", [
    (lambda dead, live: f".mnist-viz-{dead}-0123abcd.tmp", True),  # ours, writer gone
    (lambda dead, live: f".model.safetensors.{dead}.tmp", True),  # an earlier version's name for this target
    (lambda dead, live: f".mnist-viz-{live}-0123abcd.tmp", False),  # ours, writer still running
    (lambda dead, live: f".other.safetensors.{dead}.tmp", False),  # an earlier version's, another target
    (lambda dead, live: "notes.tmp", False),  # the user's
    (lambda dead, live: f".mnist-viz-{dead}-zzzz.tmp", False),  # not our pattern
    (lambda dead, live: f"mnist-viz-{dead}-0123abcd.tmp", False),  # not hidden: not ours
])
def test_next_save_removes_only_stale_temps_of_ours(make_name, removed, tmp_path):
    """Guards against: crashed saves piling up temp files, and the clean-up deleting a file
    that a running save (or the user) still owns."""
    live = os.getppid()  # the pytest runner's parent: certainly running
    name = make_name(dead_pid(), live)
    (tmp_path / name).write_bytes(b"partial")
    save_state_dict(tmp_path / "model.safetensors", small_state())
    assert (tmp_path / name).exists() == (not removed)
    assert load_state_dict(tmp_path / "model.safetensors")[0]["0.bias"][0] == 1.0


def test_stale_temp_removal_reports_what_it_removed(tmp_path):
    """Guards against: remove_stale_temps touching files when the writer's pid is alive."""
    dead = dead_pid()
    (tmp_path / f".mnist-viz-{dead}-00000000.tmp").write_bytes(b"x")
    (tmp_path / f".mnist-viz-{os.getpid()}-00000000.tmp").write_bytes(b"x")
    assert [p.name for p in remove_stale_temps(tmp_path)] == [f".mnist-viz-{dead}-00000000.tmp"]
    assert temps(tmp_path) == [f".mnist-viz-{os.getpid()}-00000000.tmp"]


# ------------------------------------------------------------- B. bounded checkpoint reads


def _read_case(kind: str, directory: Path) -> tuple[str, str]:
    """A path that is not a checkpoint, and the phrase its error must contain."""
    path = directory / "model.safetensors"
    if kind == "/dev/zero":
        return "/dev/zero", "character device"
    if kind == "fifo":
        os.mkfifo(path)
        return str(path), "FIFO"
    if kind == "directory":
        path.mkdir()
        return str(path), "directory"
    if kind == "symlink loop":
        os.symlink(path.name, path)
        return str(path), "loops"
    if kind == "broken symlink":
        os.symlink("gone.safetensors", path)
        return str(path), "broken symbolic link"
    if kind == "header longer than file":
        path.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
        return str(path), "header length"
    if kind == "header over the cap":
        with open(path, "wb") as f:
            f.write((200_000_000).to_bytes(8, "little"))
            f.truncate(300_000_000)  # sparse: the size check alone must not be the only guard
        return str(path), "header length"
    if kind == "file over the cap":
        with open(path, "wb") as f:
            f.write((16).to_bytes(8, "little") + b'{"a":1}' + b" " * 9)
            f.truncate(5 << 30)  # sparse 5 GiB
        return str(path), "GiB limit"
    if kind == "seven bytes":
        path.write_bytes(b"\x10" * 7)
        return str(path), "too short"
    raise AssertionError(kind)


READ_CASES = ["/dev/zero", "fifo", "directory", "symlink loop", "broken symlink", "header longer than file",
              "header over the cap", "file over the cap", "seven bytes"]


@pytest.mark.parametrize("kind", READ_CASES)
def test_reading_a_non_checkpoint_is_bounded(kind, tmp_path):
    """Guards against: /dev/zero growing memory until MemoryError, a FIFO blocking forever,
    and a header length read as gigabytes to allocate. Runs in a child with 2 GiB of
    address space and a timeout, so a regression fails instead of hanging or swapping."""
    path, phrase = _read_case(kind, tmp_path)
    child = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from mnist_viz.compute.checkpoint import CheckpointError, load_state_dict
        try:
            load_state_dict({path!r})
        except CheckpointError as e:
            print(e)
            sys.exit(0)
        sys.exit(1)
    """)
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60, env=ENV, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert phrase in p.stdout and Path(path).name in p.stdout, p.stdout
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_eval_of_a_device_or_fifo_is_one_error_line(kind, tmp_path):
    """Guards against: `eval --checkpoint /dev/zero` ending in a MemoryError traceback and a
    FIFO hanging the CLI (the timeout turns a hang into a failure)."""
    path, phrase = _read_case(kind, tmp_path)
    line = one_line_error(cli("eval", "--checkpoint", path, timeout=60))
    assert phrase in line and Path(path).name in line, line


# ------------------------------------------------------------------- C. clear messages


def _checkpoint_case(case: str, path: Path) -> str:
    """Write a checkpoint with one problem; returns the phrase the error must contain."""
    state = small_state(0.5, hidden=16)
    if case.startswith("dropout"):
        value = case.split()[1]
        state = {"0.weight": state["0.weight"], "0.bias": state["0.bias"],  # 0, 3: a Dropout in between
                 "3.weight": state["2.weight"], "3.bias": state["2.bias"]}
        safetensors.numpy.save_file(state, path, metadata={"dropout": value})
        return "metadata 'dropout'"
    if case == "zero-width hidden layer":
        state.update({"0.weight": np.zeros((0, 784), np.float32), "0.bias": np.zeros(0, np.float32),
                      "2.weight": np.zeros((10, 0), np.float32)})
        safetensors.numpy.save_file(state, path)
        return "0.weight has shape (0, 784)"
    if case == "zero-width output layer":
        state.update({"2.weight": np.zeros((0, 16), np.float32), "2.bias": np.zeros(0, np.float32)})
        safetensors.numpy.save_file(state, path)
        return "2.weight has shape (0, 16)"
    if case.startswith("float64"):
        value = float(case.split()[1])
        state = {k: v.astype(np.float64) for k, v in state.items()}
        state["2.weight"][3, 4] = value
        safetensors.numpy.save_file(state, path)
        return "'2.weight' has 1 values outside the float32 range"
    raise AssertionError(case)


CHECKPOINT_CASES = ["dropout 1.5", "dropout nan", "dropout -0.1", "dropout inf", "dropout 1", "dropout abc",
                    "zero-width hidden layer", "zero-width output layer", "float64 1e300", "float64 -1e300",
                    "float64 3.5e38"]


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_bad_checkpoint_messages_name_the_file_and_the_problem(case, tmp_path):
    """Guards against: 'dropout probability must be in [0, 1), got 1.5' without the file,
    'Invalid data_offset' from wgpu for a zero-width layer, and numpy's overflow
    RuntimeWarning on stderr for float64 values float32 cannot hold."""
    path = tmp_path / "odd.safetensors"
    phrase = _checkpoint_case(case, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        with pytest.raises(CheckpointError) as exc:
            read_checkpoint(path)
    message = str(exc.value)
    assert message.startswith("odd.safetensors: ") and phrase in message, message
    if case.startswith("dropout"):
        assert "[0, 1)" in message and repr(case.split()[1]) in message
    line = one_line_error(cli("eval", "--checkpoint", str(path), timeout=60))
    assert line == f"error: {message}"


@pytest.mark.parametrize("value", ["0.0", "0.1", "0.5", "0.999"])
def test_valid_dropout_metadata_loads(value, tmp_path):
    """Guards against: the dropout check rejecting the values our own saves write."""
    state = small_state(0.5, hidden=16)
    state = {"0.weight": state["0.weight"], "0.bias": state["0.bias"], "3.weight": state["2.weight"],
             "3.bias": state["2.bias"]}
    safetensors.numpy.save_file(state, tmp_path / "ok.safetensors", metadata={"dropout": value})
    assert read_checkpoint(tmp_path / "ok.safetensors")[2].short == "784-16-10"


@pytest.mark.parametrize("dtype,value", [(np.float16, 65504.0), (np.float32, 3.4e38), (np.float64, 3.4e38),
                                         (np.float64, -1e-300)])
def test_extreme_but_representable_values_load_without_warnings(dtype, value, tmp_path):
    """Guards against: the float32 range check itself warning (float16 compared with 3.4e38)
    or refusing values float32 holds."""
    state = {k: v.astype(dtype) for k, v in small_state(0.5, hidden=16).items()}
    state["0.weight"][0, 0] = value
    safetensors.numpy.save_file(state, tmp_path / "edge.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensors, _, _, _ = read_checkpoint(tmp_path / "edge.safetensors")
    assert tensors["0.weight"][0, 0] == np.float32(value)


# ---------------------------------------------------------------------------- D. data


def _break_dataset(case: str, paths: dict[str, Path]) -> tuple[str, str]:
    """Replace one dataset file by something that is not a file; returns (its name, phrase)."""
    role, kind = case.split(": ")
    path = paths[role]
    path.unlink()
    if kind == "directory":
        path.mkdir()
    elif kind == "symlink loop":
        os.symlink(path.name, path)
    elif kind == "broken symlink":
        os.symlink("elsewhere/" + path.name, path)
    elif kind == "fifo":
        os.mkfifo(path)
    phrase = {"directory": "is a directory", "symlink loop": "loops", "broken symlink": "broken symbolic link",
              "fifo": "FIFO"}[kind]
    return path.name, phrase


@pytest.mark.parametrize("case", ["train_images: directory", "train_labels: symlink loop",
                                  "test_images: broken symlink", "test_labels: fifo"])
def test_dataset_entry_that_is_not_a_file_is_named_as_what_it_is(case, tmp_path):
    """Guards against: a directory or a symlink loop with the right name reported as
    'missing', which sends the user looking for a file that is there."""
    paths = tiny_mnist(tmp_path / "data")
    name, phrase = _break_dataset(case, paths)
    with pytest.raises(DataError) as exc:
        load_dataset(tmp_path / "data")
    message = str(exc.value)
    assert name in message and phrase in message and "missing" not in message, message
    line = one_line_error(cli("train", "--data", str(tmp_path / "data"), "--epochs", "1", timeout=60))
    assert name in line and phrase in line, line


def test_data_naming_a_file_says_it_is_a_file(tmp_path):
    """Guards against: `--data <an IDX file>` (the file, not its directory) reported as 'dataset
    directory not found', which sends the user looking for a path that is there."""
    paths = tiny_mnist(tmp_path / "data")
    line = one_line_error(cli("train", "--data", str(paths["train_images"]), "--epochs", "1", timeout=60))
    assert line == (f"error: {paths['train_images']}: is a file, not a dataset directory; give the directory that "
                    f"holds the IDX files"), line


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("listing,ok", [
    ("md5sum *.gz", True),  # the stored files, as the md5sum tool writes it
    ("content, names without .gz", True),  # as published for MNIST
    ("content, names with .gz", True),
    ("stored, binary-mode marker", True),  # md5sum -b: '*name'
    ("md5sum *.gz, one file changed after", False),
    ("content, one digest wrong", False),
])
def test_md5sums_of_stored_files_or_content(listing, ok, tmp_path):
    """Guards against: an MD5SUMS written by `md5sum *.gz` (digests of the files as stored)
    failing a valid dataset, and either kind of listing letting a changed file through."""
    paths = tiny_mnist(tmp_path, gz=True)
    sums = tmp_path / "MD5SUMS"
    if listing.startswith("md5sum"):
        if shutil.which("md5sum") is None:
            pytest.skip("md5sum is not installed")
        with open(sums, "wb") as f:
            subprocess.run("md5sum *.gz", shell=True, cwd=tmp_path, stdout=f, check=True)
    else:
        lines = []
        for path in paths.values():
            stored = path.read_bytes()
            if listing.startswith("content"):
                name = path.name if "with .gz" in listing else path.name.removesuffix(".gz")
                lines.append(f"{_md5(gzip.decompress(stored))}  {name}")
            else:
                lines.append(f"{_md5(stored)} *{path.name}")
        if "wrong" in listing:
            lines[1] = "0" * 32 + lines[1][32:]
        sums.write_text("\n".join(lines) + "\n")
    if "changed after" in listing:
        write_idx(paths["train_labels"], (np.arange(64) + 1) % 10)
    if ok:
        assert load_dataset(tmp_path, verify_checksums=True).num_classes == 10
    else:
        bad = "train-labels-idx1-ubyte.gz"
        with pytest.raises(DataError, match=rf"^{bad}: checksum does not match"):
            load_dataset(tmp_path, verify_checksums=True)


@pytest.mark.parametrize("train,test,outcome", [
    ([*range(10)] * 6 + [255], [*range(10)] * 2, "error: label 255 (1 sample) is outside the test set's classes 0..9"),
    ([*range(10)] * 6 + [200, 200], [*range(10)] * 2, "error: label 200 (2 samples)"),
    ([*range(10)] * 6, [*range(9)] * 2, "test warning: class 9 has no test images: the accuracy does not measure it"),
    ([*range(8)] * 6, [*range(10)] * 2, "warning: classes 8, 9 have no training images: the model cannot learn them"),
    ([*range(8)] * 6, [*range(8)] * 2 + [10], "test error: label 10 (1 sample) is outside the training set's classes 0..7"),
    ([*range(10)] * 6 + [255], [*range(10)] * 2 + [255], "warning: 245 of the 256 classes 0..255"),
    ([0, 1, 2, 30] * 16, [0, 1, 2, 30] * 5, "warning: 27 of the 31 classes"),
    ([*range(10)] * 6, [*range(10)] * 2, "ok"),
    ([0, 2] * 32, [0, 1, 2] * 6, "ok"),  # one of 3 classes empty: not most
])
def test_stray_training_labels(train, test, outcome, tmp_path, capsys):
    """Guards against: one stray label (255 among 0..9) silently making a 256-class model, and a
    real dataset refused because one split lacks its top classes (a small test set without 9).
    An outcome starting "test " is about the test labels' file."""
    paths = tiny_mnist(tmp_path, train_labels=train, test_labels=test)
    named, other = ("test_labels", "train-labels-idx1-ubyte") if outcome.startswith("test ") else \
        ("train_labels", "t10k-labels-idx1-ubyte")
    outcome = outcome.removeprefix("test ")
    if outcome.startswith("error: "):
        with pytest.raises(DataError) as exc:
            load_dataset(tmp_path)
        assert str(exc.value).startswith(f"{paths[named].name}: {outcome[len('error: '):]}"), str(exc.value)
        assert other in str(exc.value)
        return
    dataset = load_dataset(tmp_path)
    err = capsys.readouterr().err
    assert dataset.num_classes == max(train + test) + 1
    if outcome == "ok":
        assert err == ""
    else:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"warning: {paths[named].name}: {outcome[9:]}"), err


def test_stray_training_label_through_the_cli(tmp_path):
    """Guards against: the refusal reaching the user as a traceback instead of one line."""
    tiny_mnist(tmp_path, train_labels=[*range(10)] * 6 + [255])
    line = one_line_error(cli("train", "--data", str(tmp_path), "--epochs", "1", timeout=60))
    assert "train-labels-idx1-ubyte: label 255" in line and "0..9" in line, line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(train=st.lists(st.integers(0, 255), min_size=1, max_size=40), test=st.lists(st.integers(0, 255), min_size=1,
                                                                                    max_size=20))
def test_label_checks_fuzz(tmp_path, train, test):
    """Any labels: either a one-line error naming a labels file (a label past a class neither
    split has, above the other split's largest), or classes covering both splits with a warning
    for each split that lacks the top classes and one when most classes have no training samples.
    Guards against: a label set that slips past the checks into a model of the wrong width."""
    import io
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    tiny_mnist(directory, train_labels=train, test_labels=test)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            dataset = load_dataset(directory)
        except DataError as exc:
            message = str(exc)
            assert "\n" not in message and "labels-idx1-ubyte" in message.split(":")[0], message
            if max(train) == 0:
                return                                       # a single class
            low, high = sorted((max(train), max(test)))
            assert set(range(low + 1, high)) - set(train) - set(test), (train, test)    # a class no file has
            return
    assert dataset.num_classes == max(train + test) + 1
    empty = dataset.num_classes - len(set(train))
    lines = err.getvalue().splitlines()
    want = (max(train) < max(test)) + (max(test) < max(train)) + (2 * empty > dataset.num_classes)
    assert len(lines) == want and all(line.startswith("warning: ") for line in lines), err.getvalue()


# ---------------------------------------------------------------------- E. screenshots


@contextlib.contextmanager
def unwritable(directory: Path):
    """directory cannot take new files for the block: read-only for a user, immutable for root."""
    if IS_ROOT:
        with file_attribute(directory, "i"):
            yield f"run 'chattr -i {directory}' (as root) or choose another path"
    else:
        os.chmod(directory, 0o555)
        try:
            yield f"check the permissions of {directory} or choose another path"
        finally:
            os.chmod(directory, 0o755)


@pytest.mark.parametrize("case", ["directory", "unwritable directory", "checkpoint", "notes"])
def test_screenshot_target_is_checked_before_the_gpu_starts(case, tmp_path):
    """Guards against: `--screenshot victim.safetensors` replacing a trained model by a PNG, and an
    unusable path found only after the frames were rendered, without a fix (`error: /tmp: Is a
    directory`). The GPU is switched off (MNIST_VIZ_ADAPTER=none): a check made once it starts would
    show as the no-adapter error instead."""
    shoot = lambda path: one_line_error(cli("--offscreen", "--frames", "1", "--screenshot", str(path),
                                            env={"MNIST_VIZ_ADAPTER": "none"}))
    if case == "directory":
        assert shoot(tmp_path) == f"error: --screenshot {tmp_path}: is a directory; give a file name, e.g. " \
                                  f"{tmp_path / 'screenshot.png'}"
    elif case == "unwritable directory":
        (tmp_path / "ro").mkdir()
        with unwritable(tmp_path / "ro") as fix:
            line = shoot(tmp_path / "ro" / "x.png")
        assert line.startswith(f"error: --screenshot {tmp_path / 'ro' / 'x.png'}: cannot write there (") and \
            line.endswith(fix), line
    else:
        target = existing_file(tmp_path / ("victim.safetensors" if case == "checkpoint" else "notes.png"),
                               case == "checkpoint")
        before = target.read_bytes()
        assert shoot(target) == f"error: --screenshot {target}: the file exists and is not a PNG image; choose " \
                                "another path (a screenshot replaces only an earlier PNG)"
        assert target.read_bytes() == before
    assert temps(tmp_path) == []


def test_screenshot_replaces_an_earlier_png_by_a_rename(tmp_path):
    """Guards against: a screenshot taken again being refused (regenerating them is normal), and the
    PNG written in place, where a crash or a full disk mid-write leaves a torn image: the old file is
    replaced by a rename, so a reader that has it open still reads it whole."""
    from PIL import Image

    from mnist_viz.viz.launch import write_png
    shot = tmp_path / "shot.png"
    write_png(shot, np.zeros((4, 6, 4), np.uint8))
    before = shot.read_bytes()
    with open(shot, "rb") as held:
        p = cli("--offscreen", "--frames", "1", "--size", "480x300", "--limit", "64", "--test-limit", "64",
                "--screenshot", str(shot), timeout=300)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        assert held.read() == before
    assert Image.open(shot).size == (480, 300) and temps(tmp_path) == []


def test_a_screenshot_named_for_another_format_is_written_with_one_warning(tmp_path):
    """Guards against `--screenshot shot.safetensors` writing a PNG under a checkpoint's name without
    a word: one `warning:` line on stderr (beside the frame-rate line) says it is a PNG and the name
    to use, and the image is written there; a .png name gets none."""
    for name, warned in (("shot.safetensors", True), ("shot.png", False)):
        shot = tmp_path / name
        p = cli("--offscreen", "--frames", "1", "--size", "480x300", "--limit", "64", "--test-limit", "64",
                "--no-autosave", "--screenshot", str(shot), timeout=300)
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        shown = [line for line in p.stderr.decode().splitlines() if line.startswith("warning:")]
        want = [f"warning: --screenshot {shot}: the file is written in the PNG format, not as its .safetensors "
                f"suffix suggests; name it {tmp_path / 'shot.png'}"] if warned else []
        assert shown == want, p.stderr.decode()
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
