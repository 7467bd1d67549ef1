// A 5 x 7 pixel font for the digits and a few signs, so views can label
// themselves on the GPU (confusion counts, class labels, true -> predicted) and
// no number has to come back to the CPU to be printed.
// (`//!include font.wgsl`)
//
// Glyph g, row r (top to bottom) is FONT[g * 7 + r]; bit 4 is the leftmost column.
// Glyphs: 0-9 the digits, 10 an arrow (->), 11 '%', 12 '.', 13 '-'.

const GLYPH_W: i32 = 5;
const GLYPH_H: i32 = 7;
const GLYPH_ARROW: u32 = 10u;
const GLYPH_PERCENT: u32 = 11u;
const GLYPH_DOT: u32 = 12u;
const GLYPH_MINUS: u32 = 13u;

const FONT = array<u32, 98>(
    0x0Eu, 0x11u, 0x13u, 0x15u, 0x19u, 0x11u, 0x0Eu,   // 0
    0x04u, 0x0Cu, 0x04u, 0x04u, 0x04u, 0x04u, 0x0Eu,   // 1
    0x0Eu, 0x11u, 0x01u, 0x02u, 0x04u, 0x08u, 0x1Fu,   // 2
    0x1Fu, 0x02u, 0x04u, 0x02u, 0x01u, 0x11u, 0x0Eu,   // 3
    0x02u, 0x06u, 0x0Au, 0x12u, 0x1Fu, 0x02u, 0x02u,   // 4
    0x1Fu, 0x10u, 0x1Eu, 0x01u, 0x01u, 0x11u, 0x0Eu,   // 5
    0x06u, 0x08u, 0x10u, 0x1Eu, 0x11u, 0x11u, 0x0Eu,   // 6
    0x1Fu, 0x01u, 0x02u, 0x04u, 0x08u, 0x08u, 0x08u,   // 7
    0x0Eu, 0x11u, 0x11u, 0x0Eu, 0x11u, 0x11u, 0x0Eu,   // 8
    0x0Eu, 0x11u, 0x11u, 0x0Fu, 0x01u, 0x02u, 0x0Cu,   // 9
    0x00u, 0x04u, 0x02u, 0x1Fu, 0x02u, 0x04u, 0x00u,   // ->
    0x18u, 0x19u, 0x02u, 0x04u, 0x08u, 0x13u, 0x03u,   // %
    0x00u, 0x00u, 0x00u, 0x00u, 0x00u, 0x0Cu, 0x0Cu,   // .
    0x00u, 0x00u, 0x00u, 0x1Fu, 0x00u, 0x00u, 0x00u,   // -
);

// Is pixel q (relative to the glyph's top-left corner, in units of `scale` pixels) ink?
fn glyph_on(g: u32, q: vec2<i32>, scale: i32) -> bool {
    let c = vec2<i32>(floor(vec2<f32>(q) / f32(scale)));
    if (c.x < 0 || c.y < 0 || c.x >= GLYPH_W || c.y >= GLYPH_H || g > 13u) { return false; }
    return ((FONT[g * 7u + u32(c.y)] >> u32(GLYPH_W - 1 - c.x)) & 1u) == 1u;
}

// Number of decimal digits of n (n = 0 has one).
fn digit_count(n: u32) -> u32 {
    var k = 1u;
    var m = n;
    while (m >= 10u) { m = m / 10u; k += 1u; }
    return k;
}

// Is pixel p ink of the decimal number n drawn with its top-left corner at `origin`
// (glyphs 5 x 7 plus one column of spacing, each font pixel `scale` pixels)?
fn number_on(n: u32, p: vec2<i32>, origin: vec2<i32>, scale: i32) -> bool {
    let q = p - origin;
    let adv = (GLYPH_W + 1) * scale;
    if (q.x < 0 || q.y < 0) { return false; }
    let k = u32(q.x / adv);
    let nd = digit_count(n);
    if (k >= nd) { return false; }
    var d = n;
    for (var j = 0u; j < nd - 1u - k; j++) { d = d / 10u; }
    return glyph_on(d % 10u, vec2<i32>(q.x - i32(k) * adv, q.y), scale);
}

// Width in pixels of n drawn by number_on.
fn number_width(n: u32, scale: i32) -> i32 {
    return i32(digit_count(n)) * (GLYPH_W + 1) * scale - scale;
}

// Class names, rasterised once on the CPU (viz/glyphs.py, the same constants): NAME_SLOT
// words per class, [0] the name's width in pixels, then NAME_H rows of NAME_ROW_WORDS words
// of bits (bit x % 32 of word x / 32 is pixel x). A shader binds the words and asks
// name_word / name_bit for a pixel (WGSL cannot pass a storage array to a function).
const NAME_H: i32 = 7;
const NAME_ADVANCE: i32 = 5;
const NAME_SLOT: u32 = 32u;
const NAME_ROW_WORDS: u32 = 4u;

fn name_word(c: u32, row: u32, x: u32) -> u32 {
    return c * NAME_SLOT + 1u + row * NAME_ROW_WORDS + x / 32u;
}

fn name_bit(word: u32, x: u32) -> bool {
    return ((word >> (x % 32u)) & 1u) == 1u;
}

// The largest scale (at most `most`) at which a name `w` pixels wide fits in `room` pixels (>= 1).
fn name_scale(w: i32, room: i32, most: i32) -> i32 {
    var s = max(most, 1);
    while (s > 1 && w * s > room) { s -= 1; }
    return s;
}
