// Dear ImGui's draw lists: textured, vertex-coloured triangles in screen space.
//
// Vertices come straight from ImDrawVert (20 bytes): pos (2 x f32, logical
// pixels, y down), uv (2 x f32), col (u32 RGBA, read as unorm8x4).
//
// The projection maps the display rectangle [pos, pos + size] to clip space,
// flipping y: x_clip = x * scale.x + offset.x, y_clip = y * scale.y + offset.y,
// with scale = (2 / w, -2 / h) and offset = (-1 - 2 l / w, 1 + 2 t / h)
// (computed on the CPU once per frame). The framebuffer scale (HiDPI) needs
// nothing here: the viewport covers the physical framebuffer, so clip space
// lands on physical pixels.
//
// Colour space: imgui's colours (style, vertex colours, our view textures) are
// sRGB values. On an *-srgb target the GPU encodes what we return, so we hand
// it linear light by raising to `gamma` = 2.2 (1.0 on a plain unorm target,
// where values are stored as they are). Blending then happens in linear light.

struct Uniforms {
    scale: vec2<f32>,
    offset: vec2<f32>,
    gamma: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(1) @binding(0) var tex_sampler: sampler;   // per texture: linear, or nearest for crisp views
@group(1) @binding(1) var tex: texture_2d<f32>;

struct VertexIn {
    @location(0) pos: vec2<f32>,
    @location(1) uv: vec2<f32>,
    @location(2) col: vec4<f32>,
};

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) col: vec4<f32>,
};

@vertex
fn vs_main(v: VertexIn) -> VertexOut {
    var out: VertexOut;
    out.position = vec4<f32>(v.pos * u.scale + u.offset, 0.0, 1.0);
    out.uv = v.uv;
    out.col = v.col;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let c = in.col * textureSample(tex, tex_sampler, in.uv);
    // max() keeps pow's argument non-negative (pow of a negative is undefined in WGSL).
    return vec4<f32>(pow(max(c.rgb, vec3<f32>(0.0)), vec3<f32>(u.gamma)), c.a);
}
