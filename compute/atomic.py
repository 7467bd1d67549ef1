"""Replace a file atomically: a temp file next to it, fsync, rename.

A crash or a full disk at any point leaves the previous file as it was. The temp
name is short and fixed-length (`.mnist-viz-<pid>-<hex>.tmp`), so a target name
near the 255-byte limit still fits; a crashed writer's temp file (its pid no
longer running) is removed by the next save into that directory. A symlink is
written through to its target, and a replaced file keeps its permission bits.
Every error is a WriteError: one line naming the path the caller gave and the fix.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import struct
import sys
from pathlib import Path

from .pathinfo import non_file_kind, printable_path

TEMP_PATTERN = re.compile(r"\.mnist-viz-([0-9]{1,10})-[0-9a-f]{8}\.tmp")
_FS_IOC_GETFLAGS = 0x80006601 | struct.calcsize("l") << 16  # _IOR('f', 1, long) on Linux
_FS_IMMUTABLE_FL, _FS_APPEND_FL = 0x10, 0x20


class WriteError(OSError):
    """A file could not be written; str() is one line: the path, the cause, the fix."""

    def __str__(self) -> str:
        return str(self.args[0])


def write_bytes(path, data: bytes, example: str = "model.safetensors") -> None:
    """Atomically make path hold data (through a symlink, keeping the old file's mode).
    example: a file name to suggest when path is a directory."""
    shown = printable_path(path)
    target = _prepare(path, example)
    old_mode = _mode_or_none(target)
    tmp = None
    try:
        tmp, fd = _create_temp(target.parent)
        with os.fdopen(fd, "wb") as f:
            if old_mode is not None:
                os.fchmod(f.fileno(), old_mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        raise WriteError(f"{shown}: cannot save ({_cause(exc, target)}); {_fix(exc, target, path)}; "
                         f"{'the previous file is unchanged' if old_mode is not None else 'nothing was written'}") from None
    except BaseException:
        _discard(tmp)
        raise
    _fsync_directory(target.parent)


def check_can_write(path, example: str = "model.safetensors") -> None:
    """Raise WriteError now if write_bytes(path) would fail for a reason known in advance.

    Checks what is there (a directory, a FIFO, an immutable file), the name's length,
    and that a temp file can be created next to the target (then removes it).
    """
    target = _prepare(path, example)
    try:
        tmp, fd = _create_temp(target.parent)
    except OSError as exc:
        raise WriteError(f"{printable_path(path)}: cannot write there ({_cause(exc, target)}); "
                         f"{_fix(exc, target, path)}") from None
    os.close(fd)
    _discard(tmp)


def _prepare(path, example: str) -> Path:
    """The file to replace (a symlink's target), checked, its directory made, stale temps removed."""
    shown = printable_path(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    problem = _target_problem(target, path, example)
    if problem:
        raise WriteError(f"{shown}: {problem}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{shown}: cannot write there: cannot create the directory "
                         f"{printable_path(target.parent)} ({exc.strerror or exc}); choose another path") from None
    remove_stale_temps(target.parent, target.name)
    return target


def _target_problem(target: Path, given, example: str) -> str | None:
    """Why target cannot be replaced by a new file, or None."""
    most = name_max(target.parent)
    if len(os.fsencode(target.name)) > most:
        return (f"the file name is {len(os.fsencode(target.name))} bytes, over the file system's limit of "
                f"{most}; choose a shorter name")
    try:
        os.stat(target)
    except PermissionError:     # only a directory on the way can refuse a stat: nothing can be written there
        return (f"cannot write there: the directory {printable_path(_unsearchable(target.parent))} cannot be "
                f"searched (Permission denied); check its permissions or choose another path")
    except OSError:
        pass
    kind = non_file_kind(target)
    if kind == "a directory":
        return f"is a directory; give a file name, e.g. {printable_path(os.path.join(given, example))}"
    if kind is not None:
        return f"is {kind}, not a regular file; choose a file path"
    attribute = _blocking_attribute(target)
    if attribute:
        return f"has the {attribute} and cannot be replaced; {_attribute_fix(attribute, target)}"
    return None


def _unsearchable(directory: Path) -> Path:
    """The first directory on the way to directory that this user may not enter (else directory)."""
    return next((d for d in reversed((directory, *directory.parents)) if not os.access(d, os.X_OK)), directory)


def name_max(directory: Path) -> int:
    """Bytes a file name may have in directory (its file system's PC_NAME_MAX; 255 if none says)."""
    for candidate in (directory, *directory.parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            continue
    return 255


def _blocking_attribute(target: Path) -> str | None:
    """'immutable attribute' / 'append-only attribute' when Linux file flags forbid replacing target."""
    try:
        import fcntl
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (ImportError, OSError):
        return None
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        flags = int.from_bytes(buf[:4], sys.byteorder)  # the kernel writes an int
    except OSError:
        return None
    finally:
        os.close(fd)
    if flags & _FS_IMMUTABLE_FL:
        return "immutable attribute"
    if flags & _FS_APPEND_FL:
        return "append-only attribute"
    return None


def _attribute_fix(attribute: str, target: Path) -> str:
    flag = "i" if attribute.startswith("immutable") else "a"
    return f"run 'chattr -{flag} {printable_path(target)}' (as root) or choose another path"


def _blocker(exc: OSError, target: Path) -> tuple[str, str, Path] | None:
    """(who, attribute, path) when EPERM comes from a file attribute on target or its directory."""
    if exc.errno != errno.EPERM:
        return None
    for who, path in (("it", target), ("its directory", target.parent)):
        attribute = _blocking_attribute(path)
        if attribute:
            return who, attribute, path
    return None


def _cause(exc: OSError, target: Path) -> str:
    blocker = _blocker(exc, target)
    return f"{blocker[0]} has the {blocker[1]}" if blocker else (exc.strerror or str(exc))


def _fix(exc: OSError, target: Path, given) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space or choose another path"
    if exc.errno == errno.EROFS:
        return "the file system is read-only; choose another path"
    blocker = _blocker(exc, target)
    if blocker:
        return _attribute_fix(blocker[1], blocker[2])
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"check the permissions of {printable_path(target.parent)} or choose another path"
    return "choose another path"


def _mode_or_none(target: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return None


def _create_temp(directory: Path) -> tuple[Path, int]:
    """A new temp file of ours in directory (mode 0666 less the umask, like open())."""
    while True:
        tmp = directory / f".mnist-viz-{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def remove_stale_temps(directory: Path, target_name: str = "") -> list[Path]:
    """Remove temp files of ours whose writer is no longer running; returns those removed.

    Also the older `.<target_name>.<pid>.tmp` names that earlier versions wrote.
    """
    legacy = re.compile(re.escape(f".{target_name}.") + r"([0-9]{1,10})\.tmp") if target_name else None
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = TEMP_PATTERN.fullmatch(entry.name) or (legacy and legacy.fullmatch(entry.name))
        if match and not _running(int(match[1])):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this pid exists (POSIX; elsewhere assume it does: keep the file)."""
    if os.name != "posix" or pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX only). The file is already in place, so a
    directory that cannot be synced is not a failed save."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
