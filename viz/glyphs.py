"""Class names as tiny bitmaps the view shaders draw (GPU text for what only the GPU knows:
a misclassified digit's true and predicted class).

The glyphs are the X.Org misc-fixed 5x7 font (public domain), printable ASCII: each
glyph is 7 rows of 5 bits, bit 4 the leftmost column, drawn 4 pixels wide with one of
spacing (ADVANCE). `NameBitmaps` rasterises every class name once on the CPU and uploads
them, so a shader draws a name with one bit lookup per pixel and no font table.
"""
from __future__ import annotations

import numpy as np

GLYPH_H = 7
ADVANCE = 5
WORDS_PER_ROW = 4                   # 128 pixels: names are cut at 25 characters
SLOT_WORDS = 32                     # per class: [0] width in pixels, [1 + row * 4 + x / 32] bits
MAX_CHARS = WORDS_PER_ROW * 32 // ADVANCE

# Printable ASCII 32..126, each glyph as 7 rows of two hex digits.
_GLYPHS = (
    "00000000000000", "04040404000400", "0a0a0a00000000", "000a1f0a1f0a00",   # ' ' '!' '"' '#'
    "000e140e050e00", "10120408120200", "00081408140a00", "04040400000000",   # '$' '%' '&' "'"
    "04080808080400", "08040404040800", "000a040e040a00", "0004041f040400",   # '(' ')' '*' '+'
    "00000000060408", "0000001e000000", "000000000c0c00", "00020408100000",   # ',' '-' '.' '/'
    "040a0a0a0a0400", "040c0404040e00", "0c120204081e00", "1e020c02120c00",   # '0' '1' '2' '3'
    "040c141e040400", "1e101c02120c00", "0c101c12120c00", "1e020404080800",   # '4' '5' '6' '7'
    "0c120c12120c00", "0c12120e020c00", "000c0c000c0c00", "000c0c000c0810",   # '8' '9' ':' ';'
    "00020408040200", "00001e001e0000", "00080402040800", "040a0204000400",   # '<' '=' '>' '?'
    "0c121616100c00", "0c12121e121200", "1c121c12121c00", "0c121010120c00",   # '@' 'A' 'B' 'C'
    "1c121212121c00", "1e101c10101e00", "1e101c10101000", "0c121016120e00",   # 'D' 'E' 'F' 'G'
    "12121e12121200", "0e040404040e00", "02020202120c00", "12141818141200",   # 'H' 'I' 'J' 'K'
    "10101010101e00", "121e1e12121200", "121a1a16161200", "0c121212120c00",   # 'L' 'M' 'N' 'O'
    "1c12121c101000", "0c1212121a0c02", "1c12121c141200", "0c120804120c00",   # 'P' 'Q' 'R' 'S'
    "0e040404040400", "12121212120c00", "121212120c0c00", "1212121e1e1200",   # 'T' 'U' 'V' 'W'
    "12120c0c121200", "0a0a0a04040400", "1e020408101e00", "0e080808080e00",   # 'X' 'Y' 'Z' '['
    "00100804020000", "0e020202020e00", "040a0000000000", "00000000001e00",   # '\\' ']' '^' '_'
    "08040000000000", "00000e12160a00", "10101c12121c00", "00000c10100c00",   # '`' 'a' 'b' 'c'
    "02020e12120e00", "00000c16180c00", "040a081c080800", "00000e120c100e",   # 'd' 'e' 'f' 'g'
    "10101c12121200", "04000c04040e00", "02000202020a04", "10101418141200",   # 'h' 'i' 'j' 'k'
    "0c040404040e00", "0000141e121200", "00001c12121200", "00000c12120c00",   # 'l' 'm' 'n' 'o'
    "00001c12121c10", "00000e12120e02", "00001c12101000", "00000e18061c00",   # 'p' 'q' 'r' 's'
    "08081c08080600", "00001212120e00", "00000a0a0a0400", "000012121e1e00",   # 't' 'u' 'v' 'w'
    "0000120c0c1200", "000012120a0408", "00001e04081e00", "02040c04040200",   # 'x' 'y' 'z' '{'
    "04040404040400", "08040604040800", "0a140000000000",   # '|' '}' '~'
)


def glyph_rows(ch: str) -> list[int]:
    code = ord(ch)
    if not 32 <= code <= 126:
        code = ord("?")
    g = _GLYPHS[code - 32]
    return [int(g[2 * r: 2 * r + 2], 16) for r in range(GLYPH_H)]


def rasterise(text: str) -> np.ndarray:
    """`text` as a [GLYPH_H, width] bool bitmap (width = ADVANCE * len - 1)."""
    text = text[:MAX_CHARS]
    out = np.zeros((GLYPH_H, max(1, ADVANCE * len(text) - 1)), bool)
    for i, ch in enumerate(text):
        for r, bits in enumerate(glyph_rows(ch)):
            for c in range(5):
                if bits >> (4 - c) & 1 and ADVANCE * i + c < out.shape[1]:
                    out[r, ADVANCE * i + c] = True
    return out


def pack_names(names: list[str]) -> np.ndarray:
    """The u32 words of `NameBitmaps`: SLOT_WORDS per class (see the module docstring)."""
    words = np.zeros(len(names) * SLOT_WORDS, np.uint32)
    for k, name in enumerate(names):
        bm = rasterise(name)
        base = k * SLOT_WORDS
        words[base] = bm.shape[1] if name else 0
        for r in range(GLYPH_H):
            for x in np.nonzero(bm[r])[0]:
                words[base + 1 + r * WORDS_PER_ROW + x // 32] |= np.uint32(1 << (x % 32))
    return words


def text_width(name: str, scale: int = 1) -> int:
    """Pixels `name` takes when drawn at `scale` (as the shaders draw it)."""
    n = min(len(name), MAX_CHARS)
    return (ADVANCE * n - 1) * scale if n else 0


def upload_names(names: list[str]):
    """The class names as a GPU buffer of `pack_names` words (drawn by the view shaders)."""
    from ..compute.device import get_device
    return get_device().upload(pack_names(list(names)), "class names")
