// The value under the mouse, printed on the GPU: one element of a buffer (a feature map's
// activation, a filter's weight) drawn as decimal text into a small texture that the
// hover tooltip shows. The number never comes back to the CPU (zero readback).
//
// Format: an optional '-', the integer part, '.', three decimals (|v| rounded to 1/1000,
// clamped to 999999.999). NaN and infinities print as a lone '-'.

//!include colormap.wgsl
//!include font.wgsl

//!struct Probe

@group(0) @binding(0) var<storage, read> probe: Probe;
@group(0) @binding(1) var<storage, read> probe_src: array<f32>;
@group(0) @binding(2) var probe_tex: texture_storage_2d<rgba8unorm, write>;

const PROBE_GLYPHS: u32 = 12u;   // '-' + 6 integer digits + '.' + 3 decimals, and a spare

@compute @workgroup_size(16, 16)
fn value_label(@builtin(global_invocation_id) gid: vec3<u32>) {
    let dims = textureDimensions(probe_tex);
    if (gid.x >= dims.x || gid.y >= dims.y) { return; }
    let v = probe_src[probe.offset];
    let finite = abs(v) <= 3.4e38;
    // The glyph string, left to right.
    var glyphs: array<u32, PROBE_GLYPHS>;
    var n = 0u;
    if (v < 0.0 || !finite) { glyphs[n] = GLYPH_MINUS; n += 1u; }
    if (finite) {
        let milli = u32(round(min(abs(v), 999999.999) * 1000.0));
        let whole = milli / 1000u;
        let frac = milli % 1000u;
        let nd = digit_count(whole);
        for (var k = 0u; k < nd; k++) {
            var d = whole;
            for (var j = 0u; j < nd - 1u - k; j++) { d = d / 10u; }
            glyphs[n] = d % 10u;
            n += 1u;
        }
        glyphs[n] = GLYPH_DOT;
        glyphs[n + 1u] = frac / 100u;
        glyphs[n + 2u] = (frac / 10u) % 10u;
        glyphs[n + 3u] = frac % 10u;
        n += 4u;
    }
    let s = i32(max(probe.scale, 1u));
    let adv = (GLYPH_W + 1) * s;
    let q = vec2<i32>(gid.xy) - vec2<i32>(s, s);     // one font pixel of margin
    var colour = BG;
    if (q.x >= 0 && q.y >= 0) {
        let k = u32(q.x / adv);
        if (k < n && glyph_on(glyphs[k], vec2<i32>(q.x - i32(k) * adv, q.y), s)) { colour = INK; }
    }
    textureStore(probe_tex, vec2<i32>(gid.xy), vec4<f32>(colour, 1.0));
}
