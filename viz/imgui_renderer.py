"""Draws Dear ImGui's draw data into a wgpu render pass that the caller owns.

Only public APIs of wgpu-py and imgui-bundle are used, so a new release of either
cannot break us through private members. The renderer never creates a command
encoder or submits: the app records one encoder per frame and hands us its pass.

Textures, all named by one integer id space (0 is imgui's "no texture"):
  * imgui's own (the font atlas, whose glyphs are baked on demand since Dear ImGui
    1.92): created, updated and destroyed as `draw_data.textures` asks;
  * ours (the view textures): registered with a sampler of their own, nearest for
    small views whose pixels must stay crisp when magnified, else linear.
"""
from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass

import numpy as np
import wgpu
from imgui_bundle import imgui

from ..compute.shaders import load_wgsl

UNIFORM_BYTES = 32           # struct Uniforms in imgui.wgsl
MIN_VERTICES = 4096          # first vertex / index buffer capacities (they grow by doubling)
MIN_INDICES = 8192
ST = imgui.ImTextureStatus


@dataclass
class _Texture:
    view: object
    sampler: object
    texture: object = None       # the GPU texture, for the ones we created for imgui
    bind_group: object = None    # built on first use, then cached


def target_gamma(target_format: str) -> float:
    """2.2 for *-srgb targets (the shader hands the GPU linear light), else 1.0."""
    return 2.2 if str(target_format).endswith("srgb") else 1.0


class ImguiRenderer:
    def __init__(self, device, target_format: str):
        self.device = device
        self.gamma = target_gamma(target_format)
        self._ids = itertools.count(1)
        self._textures: dict[int, _Texture] = {}
        self._vertex_buffer = self._index_buffer = None
        clamp = {"address_mode_u": "clamp-to-edge", "address_mode_v": "clamp-to-edge"}
        self.linear_sampler = device.create_sampler(
            mag_filter="linear", min_filter="linear", mipmap_filter="linear", **clamp)
        # Magnify with nearest (a 28 x 28 digit shown at 300 px stays blocky), minify smoothly.
        self.nearest_sampler = device.create_sampler(
            mag_filter="nearest", min_filter="linear", mipmap_filter="nearest", **clamp)
        self._uniform_buffer = device.create_buffer(
            size=UNIFORM_BYTES, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST, label="imgui uniforms")
        self._uniform_values = None
        self._build_pipeline(target_format)
        io = imgui.get_io()
        io.backend_flags |= imgui.BackendFlags_.renderer_has_vtx_offset | imgui.BackendFlags_.renderer_has_textures
        limit = device.limits["max-texture-dimension-2d"]
        platform = imgui.get_platform_io()
        platform.renderer_texture_max_width = platform.renderer_texture_max_height = limit

    def _build_pipeline(self, target_format: str) -> None:
        d = self.device
        module = d.create_shader_module(code=load_wgsl("imgui.wgsl"), label="imgui.wgsl")
        uniform_layout = d.create_bind_group_layout(entries=[{
            "binding": 0, "visibility": wgpu.ShaderStage.VERTEX | wgpu.ShaderStage.FRAGMENT,
            "buffer": {"type": wgpu.BufferBindingType.uniform}}])
        self._texture_layout = d.create_bind_group_layout(entries=[
            {"binding": 0, "visibility": wgpu.ShaderStage.FRAGMENT,
             "sampler": {"type": wgpu.SamplerBindingType.filtering}},
            {"binding": 1, "visibility": wgpu.ShaderStage.FRAGMENT,
             "texture": {"sample_type": wgpu.TextureSampleType.float,
                         "view_dimension": wgpu.TextureViewDimension.d2}}])
        self._uniform_group = d.create_bind_group(layout=uniform_layout, entries=[
            {"binding": 0, "resource": {"buffer": self._uniform_buffer, "offset": 0, "size": UNIFORM_BYTES}}])
        vertex_layout = {
            "array_stride": imgui.VERTEX_SIZE, "step_mode": wgpu.VertexStepMode.vertex,
            "attributes": [
                {"format": wgpu.VertexFormat.float32x2, "offset": imgui.VERTEX_BUFFER_POS_OFFSET, "shader_location": 0},
                {"format": wgpu.VertexFormat.float32x2, "offset": imgui.VERTEX_BUFFER_UV_OFFSET, "shader_location": 1},
                {"format": wgpu.VertexFormat.unorm8x4, "offset": imgui.VERTEX_BUFFER_COL_OFFSET, "shader_location": 2},
            ]}
        # Dear ImGui's blending: straight alpha for colour; alpha accumulates coverage.
        blend = {
            "color": {"src_factor": wgpu.BlendFactor.src_alpha, "dst_factor": wgpu.BlendFactor.one_minus_src_alpha,
                      "operation": wgpu.BlendOperation.add},
            "alpha": {"src_factor": wgpu.BlendFactor.one, "dst_factor": wgpu.BlendFactor.one_minus_src_alpha,
                      "operation": wgpu.BlendOperation.add}}
        self._pipeline = d.create_render_pipeline(
            label="imgui",
            layout=d.create_pipeline_layout(bind_group_layouts=[uniform_layout, self._texture_layout]),
            vertex={"module": module, "entry_point": "vs_main", "buffers": [vertex_layout]},
            primitive={"topology": wgpu.PrimitiveTopology.triangle_list, "cull_mode": wgpu.CullMode.none},
            fragment={"module": module, "entry_point": "fs_main",
                      "targets": [{"format": target_format, "blend": blend}]})
        self._index_format = wgpu.IndexFormat.uint16 if imgui.INDEX_SIZE == 2 else wgpu.IndexFormat.uint32

    # -- our textures --------------------------------------------------------------------------------------
    def register_texture(self, view, nearest: bool) -> int:
        """Make `view` drawable by `imgui.image(imgui.ImTextureRef(id), ...)`; returns the id."""
        tid = next(self._ids)
        self._textures[tid] = _Texture(view, self.nearest_sampler if nearest else self.linear_sampler)
        return tid

    def unregister_texture(self, tid: int) -> None:
        """Forget a texture; draw commands still naming it this frame are skipped."""
        self._textures.pop(tid, None)

    # -- imgui's textures (1.92 protocol) ------------------------------------------------------------------
    def update_textures(self, textures) -> None:
        """Create, upload to or destroy imgui's textures as their status asks."""
        for tex in textures or ():
            if tex.status == ST.want_create:
                self._create_texture(tex)
            elif tex.status == ST.want_updates:
                entry = self._textures[tex.tex_id]
                for rect in tex.updates:
                    self._upload(tex, entry.texture, rect.x, rect.y, rect.w, rect.h)
                tex.set_status(ST.ok)
            elif tex.status == ST.want_destroy and tex.unused_frames > 0:
                # Dropping our references is enough: wgpu keeps the texture alive for
                # command buffers still in flight (an explicit destroy() would not).
                self._textures.pop(tex.tex_id, None)
                tex.set_tex_id(0)
                tex.set_status(ST.destroyed)

    def _create_texture(self, tex) -> None:
        texture = self.device.create_texture(
            label="imgui texture", size=(tex.width, tex.height, 1), format=wgpu.TextureFormat.rgba8unorm,
            usage=wgpu.TextureUsage.COPY_DST | wgpu.TextureUsage.TEXTURE_BINDING)
        tid = next(self._ids)
        # The atlas needs bilinear sampling (imgui bakes anti-aliased lines into it).
        self._textures[tid] = _Texture(texture.create_view(), self.linear_sampler, texture)
        self._upload(tex, texture, 0, 0, tex.width, tex.height)
        tex.set_tex_id(tid)
        tex.set_status(ST.ok)

    def _upload(self, tex, texture, x: int, y: int, w: int, h: int) -> None:
        if w <= 0 or h <= 0:
            return
        pixels = tex.get_pixels_array().reshape(tex.height, tex.width, tex.bytes_per_pixel)[y:y + h, x:x + w]
        if tex.format == imgui.ImTextureFormat.alpha8:   # white with coverage in alpha
            rgba = np.full((h, w, 4), 255, np.uint8)
            rgba[..., 3] = pixels[..., 0]
            pixels = rgba
        self.device.queue.write_texture(
            {"texture": texture, "mip_level": 0, "origin": (x, y, 0)},
            np.ascontiguousarray(pixels), {"offset": 0, "bytes_per_row": w * 4}, (w, h, 1))

    # -- per frame ---------------------------------------------------------------------------------------------
    def render(self, draw_data, render_pass) -> None:
        """Record `draw_data` (after imgui.render()) into `render_pass`."""
        if draw_data is None:
            return
        self.update_textures(draw_data.textures)   # even when nothing is drawn: keep imgui's textures current
        scale = draw_data.framebuffer_scale
        fb_w = int(draw_data.display_size.x * scale.x)
        fb_h = int(draw_data.display_size.y * scale.y)
        if fb_w <= 0 or fb_h <= 0 or draw_data.total_idx_count == 0:
            return
        self._upload_geometry(draw_data)
        self._write_uniforms(draw_data)
        render_pass.set_viewport(0, 0, fb_w, fb_h, 0, 1)
        render_pass.set_pipeline(self._pipeline)
        render_pass.set_vertex_buffer(0, self._vertex_buffer)
        render_pass.set_index_buffer(self._index_buffer, self._index_format, 0)
        render_pass.set_bind_group(0, self._uniform_group)
        bound = None
        vtx_base = idx_base = 0
        for draw_list in draw_data.cmd_lists:
            for cmd in draw_list.cmd_buffer:
                if cmd.elem_count == 0:
                    continue
                tid = cmd.tex_ref.get_tex_id()
                entry = self._textures.get(tid)
                if entry is None:
                    continue   # unregistered after this frame's panels were built
                scissor = scissor_rect(cmd.clip_rect, draw_data.display_pos, scale, fb_w, fb_h)
                if scissor is None:
                    continue
                if tid != bound:
                    render_pass.set_bind_group(1, self._bind_group(entry))
                    bound = tid
                render_pass.set_scissor_rect(*scissor)
                render_pass.draw_indexed(cmd.elem_count, 1, idx_base + cmd.idx_offset, vtx_base + cmd.vtx_offset, 0)
            vtx_base += draw_list.vtx_buffer.size()
            idx_base += draw_list.idx_buffer.size()

    def _bind_group(self, entry: _Texture):
        if entry.bind_group is None:
            entry.bind_group = self.device.create_bind_group(layout=self._texture_layout, entries=[
                {"binding": 0, "resource": entry.sampler}, {"binding": 1, "resource": entry.view}])
        return entry.bind_group

    def _write_uniforms(self, draw_data) -> None:
        l, t = draw_data.display_pos.x, draw_data.display_pos.y
        w, h = draw_data.display_size.x, draw_data.display_size.y
        values = (2.0 / w, -2.0 / h, -1.0 - 2.0 * l / w, 1.0 + 2.0 * t / h, self.gamma, 0.0, 0.0, 0.0)
        if values != self._uniform_values:
            self.device.queue.write_buffer(self._uniform_buffer, 0, np.array(values, np.float32).tobytes())
            self._uniform_values = values

    def _upload_geometry(self, draw_data) -> None:
        """All draw lists into one vertex and one index buffer (grown by doubling), one write each."""
        vertices = b"".join(_bytes_of(dl.vtx_buffer, imgui.VERTEX_SIZE) for dl in draw_data.cmd_lists)
        indices = b"".join(_bytes_of(dl.idx_buffer, imgui.INDEX_SIZE) for dl in draw_data.cmd_lists)
        indices += b"\0" * (-len(indices) % 4)     # write_buffer wants a multiple of 4 bytes
        self._vertex_buffer = self._fit(self._vertex_buffer, len(vertices),
                                        MIN_VERTICES * imgui.VERTEX_SIZE, wgpu.BufferUsage.VERTEX)
        self._index_buffer = self._fit(self._index_buffer, len(indices),
                                       MIN_INDICES * imgui.INDEX_SIZE, wgpu.BufferUsage.INDEX)
        self.device.queue.write_buffer(self._vertex_buffer, 0, vertices)
        self.device.queue.write_buffer(self._index_buffer, 0, indices)

    def _fit(self, buffer, nbytes: int, minimum: int, usage):
        if buffer is not None and buffer.size >= nbytes:
            return buffer
        size = max(minimum, buffer.size * 2 if buffer is not None else 0)
        while size < nbytes:
            size *= 2
        # The old buffer is dropped, not destroyed: a frame in flight may still read it.
        return self.device.create_buffer(size=size, usage=usage | wgpu.BufferUsage.COPY_DST, label="imgui geometry")


def scissor_rect(clip, display_pos, scale, fb_w: int, fb_h: int):
    """imgui's clip rect (x0, y0, x1, y1 in logical pixels) as a scissor (x, y, w, h) in
    framebuffer pixels, clipped to the framebuffer; None when nothing is left."""
    x0 = max(0, int((clip.x - display_pos.x) * scale.x))
    y0 = max(0, int((clip.y - display_pos.y) * scale.y))
    x1 = min(fb_w, int((clip.z - display_pos.x) * scale.x))
    y1 = min(fb_h, int((clip.w - display_pos.y) * scale.y))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _bytes_of(vector, item_size: int) -> bytes:
    """The raw contents of an imgui ImVector (ImDrawVert or ImDrawIdx)."""
    return ctypes.string_at(vector.data_address(), vector.size() * item_size)
