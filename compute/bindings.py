"""Explicit bind group layouts, read from the shader's own binding declarations.

wgpu's automatic layouts keep only the bindings an entry point uses, so a kernel
variant that ignores a buffer would reject the bind group every variant shares
(hence the old `touch()` functions). Here the layout of an entry point is the
whole *block* of bindings it belongs to, as declared in the WGSL: a file with
several entry points declares one block per family of entries, each starting
again at @binding(0). An entry point's block is the one whose variables its body
(and the functions it calls) refers to. The WGSL stays the only statement of the
bindings; nothing is mirrored in Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_DECL = re.compile(
    r"@group\(\s*0\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var(?:<\s*([\w\s,]+?)\s*>)?\s+(\w+)\s*:\s*([^;]+);")
_FN = re.compile(r"\bfn\s+(\w+)\s*\(")
_WORD = re.compile(r"\b[A-Za-z_]\w*\b")
_COMMENT = re.compile(r"//[^\n]*")


@dataclass(frozen=True)
class Binding:
    index: int
    name: str
    entry: dict          # the bind group layout entry, less binding and visibility


def _layout_entry(space: str | None, wgsl_type: str) -> dict:
    space = (space or "").replace(" ", "")
    t = wgsl_type.strip()
    if space == "uniform":
        return {"buffer": {"type": "uniform"}}
    if space == "storage" or space == "storage,read":
        return {"buffer": {"type": "read-only-storage"}}
    if space == "storage,read_write":
        return {"buffer": {"type": "storage"}}
    m = re.fullmatch(r"texture_storage_2d\s*<\s*(\w+)\s*,\s*(\w+)\s*>", t)
    if m:
        access = {"write": "write-only", "read": "read-only", "read_write": "read-write"}[m[2]]
        return {"storage_texture": {"access": access, "format": m[1], "view_dimension": "2d"}}
    if re.fullmatch(r"texture_2d\s*<\s*f32\s*>", t):
        return {"texture": {"sample_type": "float", "view_dimension": "2d"}}
    if t == "sampler":
        return {"sampler": {"type": "filtering"}}
    raise ValueError(f"unsupported binding type var<{space}> {t}")


def _blocks(source: str) -> list[list[Binding]]:
    """Binding declarations in source order, split where the binding index starts again."""
    blocks: list[list[Binding]] = []
    last = None
    for m in _DECL.finditer(source):
        b = Binding(int(m[1]), m[3], _layout_entry(m[2], m[4]))
        if last is None or b.index <= last:
            blocks.append([])
        blocks[-1].append(b)
        last = b.index
    for block in blocks:
        if [b.index for b in block] != list(range(len(block))):
            raise ValueError(f"bindings {[b.index for b in block]} are not numbered 0..n-1 in one block")
    return blocks


def _functions(source: str) -> dict[str, str]:
    """Function name -> body text (braces matched)."""
    out = {}
    for m in _FN.finditer(source):
        start = source.index("{", m.end())
        depth, i = 0, start
        while True:
            c = source[i]
            depth += (c == "{") - (c == "}")
            i += 1
            if depth == 0:
                break
        out[m[1]] = source[m.end():i]
    return out


@lru_cache(maxsize=None)
def entry_bindings(source: str, entry: str) -> tuple[Binding, ...]:
    """The block of bindings that entry point `entry` of this WGSL source belongs to."""
    text = _COMMENT.sub("", source)
    blocks = _blocks(text)
    if not blocks:
        return ()
    fns = _functions(text)
    if entry not in fns:
        raise ValueError(f"no entry point {entry!r}")
    seen, todo, words = set(), [entry], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        body_words = set(_WORD.findall(fns[f]))
        words |= body_words
        todo += [g for g in body_words if g in fns]
    used = [k for k, block in enumerate(blocks) if any(b.name in words for b in block)]
    if len(used) > 1:
        raise ValueError(f"entry point {entry!r} uses bindings of {len(used)} blocks; one block per entry point")
    return tuple(blocks[used[0] if used else 0])
