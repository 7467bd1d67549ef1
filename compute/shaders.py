"""WGSL sources live in `shaders/`; this loads them, resolving `//!include name.wgsl` lines.

WGSL has no include mechanism. Shared helpers (the learning-rate schedule, the
hash RNG) would otherwise be copied into every kernel that needs them, so a line
`//!include common.wgsl` is replaced by that file's text, once per source.
"""
from __future__ import annotations

import re
from functools import lru_cache
from .resources import shader_source

_INCLUDE = re.compile(r"^//!include\s+(\S+)\s*$", re.MULTILINE)


@lru_cache(maxsize=None)
def load_wgsl(name: str) -> str:
    seen: set[str] = set()

    def expand(fname: str) -> str:
        if fname in seen:
            return ""
        seen.add(fname)
        text = shader_source(fname)
        return _INCLUDE.sub(lambda m: expand(m.group(1)), text)

    return expand(name)
