"""Paths described for people: a name any stream can print, what is there if not a file, and a
name whose suffix says another format than the one written there.

A Linux file name is bytes. One that is not valid UTF-8 reaches Python as lone
surrogates, and print() of it under a strict stdout (PYTHONIOENCODING=utf-8:strict,
or an ASCII locale) raises, so a save that worked would end in a traceback. Every
path shown to the user goes through printable_path, which cannot fail.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path


def printable_path(path) -> str:
    """The path as text the current stdout can encode: odd bytes become \\xNN escapes."""
    try:
        text = os.fsencode(path).decode("utf-8", "backslashreplace")
    except (TypeError, ValueError):
        text = repr(path)
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        return text.encode(encoding, "backslashreplace").decode(encoding)
    except (LookupError, UnicodeError):
        return text.encode("ascii", "backslashreplace").decode("ascii")


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def non_file_kind(path) -> str | None:
    """What is at path when something is there that cannot be read as a regular file.

    None for a regular file (through symlinks) and for nothing at all; else a phrase
    such as 'a directory' or 'a symbolic link that loops', for messages like
    '<path>: is a directory, not ...'. Never opens the path (a FIFO would block).
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            return f"a broken symbolic link (to {printable_path(os.readlink(path))})"
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that loops (too many levels of symbolic links)"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"     # the first bytes of every PNG file (our screenshots')


def is_png(path) -> bool:
    """Whether the file starts with the PNG signature (OSError when it cannot be read)."""
    with open(path, "rb") as f:
        return f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def has_content(path) -> bool:
    """Whether path is a regular file (through symlinks) holding at least one byte: a file whose
    replacement would lose something (an empty one, `mktemp`'s, holds nothing)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0


def suffix_note(path, suffix: str, file_format: str) -> str | None:
    """Why the name misleads, where it ends in another suffix than the format written there
    (`--save model.pt` is safetensors all the same, and a reader goes by the name); None for
    `suffix` itself (any case) and for a name without one."""
    given = Path(path).suffix
    if not given or given.lower() == suffix:
        return None
    return (f"the file is written in the {file_format} format, not as its {printable_path(given)} suffix "
            f"suggests; name it {printable_path(Path(path).with_suffix(suffix))}")
