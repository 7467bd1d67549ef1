"""WGSL sources live in `shaders/`; this loads them, resolving two directives.

WGSL has no include mechanism. Shared helpers (the learning-rate schedule, the
hash RNG) would otherwise be copied into every kernel that needs them, so a line
`//!include common.wgsl` is replaced by that file's text, once per source. A line
`//!struct Name` is replaced by the WGSL declaration of the GpuStruct `Name`
(compute/structs.py, viz/structs.py), once per source: Python declares every GPU
struct, the shaders never restate one.
"""
from __future__ import annotations

import re
from functools import lru_cache
from .resources import shader_source

from . import structs as _engine_structs  # noqa: F401 - registers the engine's structs
from .gpu_struct import struct_wgsl

_INCLUDE = re.compile(r"^//!include\s+(\S+)\s*$", re.MULTILINE)
_STRUCT = re.compile(r"^//!struct\s+(\w+)\s*$", re.MULTILINE)


@lru_cache(maxsize=None)
def load_wgsl(name: str) -> str:
    seen: set[str] = set()

    def expand(fname: str) -> str:
        if fname in seen:
            return ""
        seen.add(fname)
        text = shader_source(fname)
        text = _INCLUDE.sub(lambda m: expand(m.group(1)), text)
        return _STRUCT.sub(lambda m: declare(m.group(1)), text)

    def declare(struct: str) -> str:
        if "struct:" + struct in seen:
            return ""
        seen.add("struct:" + struct)
        return struct_wgsl(struct)

    return expand(name)


def wgsl_constant(name: str, constant: str) -> float:
    """The value of `const <constant>: <type> = <value>;` in shader `name`: a constant the GPU
    applies and the host must agree with (the divergence bound) is written once, in the shader."""
    m = re.search(rf"^const\s+{constant}\s*:\s*\w+\s*=\s*([0-9.eE+-]+)u?\s*;", load_wgsl(name), re.MULTILINE)
    if m is None:
        raise KeyError(f"{name} declares no constant {constant}")
    return float(m.group(1))

