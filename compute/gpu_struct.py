"""GPU structs declared once, in Python: the WGSL text and the packer come from one list.

A shader names the struct with a line `//!struct Name`; the shader loader replaces
it with the generated WGSL declaration. Python packs values by field name, so a
field added, removed or reordered changes both sides at once (pygfx builds its
uniform structs from one numpy dtype the same way). Every field is a 4-byte
scalar (u32, i32, f32), so the WGSL and the byte layout agree without alignment
rules; the packed size is rounded up to 16 bytes (uniform buffer rule).

`atomic=True` also generates `<Name>Atomic`, the same words as atomic<u32>, for
kernels that update them with atomics (the training state): read-only bindings
use `Name`, read-write ones `NameAtomic`, and both read `state.step`.
"""
from __future__ import annotations

import math
import struct

_FORMATS = {"u32": "I", "i32": "i", "f32": "f"}

REGISTRY: dict[str, "GpuStruct"] = {}


class GpuStruct:
    """An ordered list of named 4-byte fields, shared by Python and WGSL."""

    def __init__(self, name: str, fields: list[tuple[str, str] | tuple[str, str, str]], atomic: bool = False,
                 tail: tuple[str, str] | None = None):
        self.name = name
        self.tail = tail          # (field, element struct): a runtime-sized array after the fields
        self.fields = [(f[0], f[1], f[2] if len(f) > 2 else "") for f in fields]
        names = [f[0] for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"struct {name}: duplicate field names")
        for fname, ftype, _ in self.fields:
            if ftype not in _FORMATS:
                raise ValueError(f"struct {name}.{fname}: type {ftype!r} (u32, i32 or f32)")
            if atomic and ftype != "u32":
                raise ValueError(f"struct {name}.{fname}: atomic structs hold u32 words only")
        self.atomic = atomic
        self._index = {fname: i for i, fname in enumerate(names)}
        self._format = "<" + "".join(_FORMATS[t] for _, t, _ in self.fields)
        self.words = len(self.fields)
        self.size = max(16, math.ceil(self.words * 4 / 16) * 16)
        if name in REGISTRY:
            raise ValueError(f"struct {name} is declared twice")
        REGISTRY[name] = self

    def index(self, field: str) -> int:
        """Word index of a field (the struct read as an array of u32)."""
        return self._index[field]

    def offset(self, field: str) -> int:
        """Byte offset of a field."""
        return 4 * self._index[field]

    def pack(self, **values) -> bytes:
        """Bytes of the struct; fields not given are zero, unknown names are an error."""
        unknown = set(values) - self._index.keys()
        if unknown:
            raise KeyError(f"struct {self.name} has no field {', '.join(sorted(unknown))}")
        row = []
        for fname, ftype, _ in self.fields:
            v = values.get(fname, 0)
            row.append(float(v) if ftype == "f32" else int(v))
        raw = struct.pack(self._format, *row)
        return raw + b"\0" * (self.size - len(raw))

    def unpack(self, raw: bytes) -> dict:
        """Field values from the struct's bytes (readouts, tests)."""
        return dict(zip((f[0] for f in self.fields), struct.unpack(self._format, bytes(raw[: self.words * 4]))))

    def wgsl(self) -> str:
        text = self._declare(self.name, lambda t: t)
        if self.atomic:
            text += "\n" + self._declare(self.name + "Atomic", lambda t: "atomic<u32>")
        return text

    def _declare(self, name: str, wgsl_type) -> str:
        # Explicit padding up to `size`, so WGSL and Python agree on the size too
        # (and a tail array starts where Python puts it).
        pads = [(f"_pad{i}", "u32", "") for i in range(self.size // 4 - self.words)]
        fields = self.fields + pads
        width = max(len(f) for f, _, _ in fields) + 1
        lines = [f"struct {name} {{"]
        for fname, ftype, doc in fields:
            decl = f"    {fname + ':':<{width}} {wgsl_type(ftype)},"
            lines.append(f"{decl:<40}// {doc}" if doc else decl)
        if self.tail is not None:
            lines.append(f"    {self.tail[0]}: array<{self.tail[1]}>,")
        lines.append("};")
        return "\n".join(lines)


def struct_wgsl(name: str) -> str:
    """The WGSL declaration of a registered struct (the shader loader's `//!struct Name`)."""
    try:
        return REGISTRY[name].wgsl()
    except KeyError:
        raise KeyError(f"//!struct {name}: no GpuStruct of that name is declared") from None
