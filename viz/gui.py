"""imgui on wgpu: input bridge, theme, fonts, and a renderer that draws into the
frame's own render pass (one command encoder per frame) with per-texture
sampling (nearest for small view textures, so pixels stay crisp).

Built on wgpu-py's `ImguiRenderer` / `ImguiWgpuBackend` (wgpu.utils.imgui): the
event handlers and the texture upload logic are theirs; `render` is redone here
so it takes a render pass instead of creating an encoder and submitting, and so
each texture can pick its sampler.
"""
from __future__ import annotations

from pathlib import Path

import wgpu
from imgui_bundle import imgui
from wgpu.utils.imgui import ImguiRenderer
from wgpu.utils.imgui.imgui_backend import ImguiWgpuBackend

FONT_SIZE = 15.0


class ViewBackend(ImguiWgpuBackend):
    """ImguiWgpuBackend plus nearest sampling per registered texture."""

    def __init__(self, device, target_format):
        super().__init__(device, target_format)
        layout = self._render_pipeline.get_bind_group_layout(0)
        self._nearest_sampler = device.create_sampler(
            mag_filter="nearest", min_filter="linear", mipmap_filter="nearest",
            address_mode_u="clamp-to-edge", address_mode_v="clamp-to-edge")
        self._linear_clamp = device.create_sampler(
            mag_filter="linear", min_filter="linear", mipmap_filter="linear",
            address_mode_u="clamp-to-edge", address_mode_v="clamp-to-edge")
        entry = {"binding": 0, "resource": {"buffer": self._uniform_buffer, "offset": 0,
                                            "size": self._uniform_data.nbytes}}
        self._group_nearest = device.create_bind_group(
            layout=layout, entries=[entry, {"binding": 1, "resource": self._nearest_sampler}])
        self._group_linear = device.create_bind_group(
            layout=layout, entries=[entry, {"binding": 1, "resource": self._linear_clamp}])
        self._sampling: dict[int, object] = {}   # texture id -> group 0 for our textures
        self._tex_groups: dict[int, object] = {}

    def register_view(self, texture_view, nearest: bool):
        ref = self.register_texture(texture_view)
        tid = ref.get_tex_id()
        self._sampling[tid] = self._group_nearest if nearest else self._group_linear
        return ref

    def unregister_view(self, ref) -> None:
        tid = ref.get_tex_id()
        self._sampling.pop(tid, None)
        self._tex_groups.pop(tid, None)
        self.unregister_texture(ref)

    def _texture_group(self, tid: int):
        group = self._tex_groups.get(tid)
        if group is None:
            group = self._device.create_bind_group(
                layout=self._texture_bind_group_layout,
                entries=[{"binding": 0, "resource": self._texture_views[tid]}])
            self._tex_groups[tid] = group
        return group

    def render(self, draw_data, render_pass):
        """Record imgui's draw lists into `render_pass` (same logic as the base class,
        plus the per-texture sampler choice)."""
        self._clear_pending_textures()
        if draw_data is None:
            return
        dw, dh = draw_data.display_size
        fb_w = int(dw * draw_data.framebuffer_scale.x)
        fb_h = int(dh * draw_data.framebuffer_scale.y)
        if fb_w <= 0 or fb_h <= 0 or draw_data.cmd_lists_count == 0:
            return
        if draw_data.textures is not None:
            for tex in draw_data.textures:
                if tex.status != imgui.ImTextureStatus.ok:
                    self._update_texture(tex)
        self._update_vertex_buffer(draw_data)
        self._set_render_state(draw_data)
        render_pass.set_viewport(0, 0, fb_w, fb_h, 0, 1)
        render_pass.set_pipeline(self._render_pipeline)
        render_pass.set_vertex_buffer(0, self._vertex_buffer)
        index_fmt = wgpu.IndexFormat.uint16 if imgui.INDEX_SIZE == 2 else wgpu.IndexFormat.uint32
        render_pass.set_index_buffer(self._index_buffer, index_fmt, 0)
        group0 = self._bind_group
        render_pass.set_bind_group(0, group0)
        clip_scale = draw_data.framebuffer_scale
        clip_off = draw_data.display_pos
        vtx_off = idx_off = 0
        for commands in draw_data.cmd_lists:
            for command in commands.cmd_buffer:
                tid = command.tex_ref.get_tex_id()
                if tid not in self._texture_views:
                    continue  # unregistered since the draw list was built
                want0 = self._sampling.get(tid, self._bind_group)
                if want0 is not group0:
                    render_pass.set_bind_group(0, want0)
                    group0 = want0
                render_pass.set_bind_group(1, self._texture_group(tid))
                c = command.clip_rect
                x0 = max(0.0, (c.x - clip_off.x) * clip_scale.x)
                y0 = max(0.0, (c.y - clip_off.y) * clip_scale.y)
                x1 = min(float(fb_w), (c.z - clip_off.x) * clip_scale.x)
                y1 = min(float(fb_h), (c.w - clip_off.y) * clip_scale.y)
                if x1 - x0 <= 0 or y1 - y0 <= 0:
                    continue
                render_pass.set_scissor_rect(int(x0), int(y0), int(x1 - x0), int(y1 - y0))
                render_pass.draw_indexed(command.elem_count, 1, command.idx_offset + idx_off,
                                         command.vtx_offset + vtx_off, 0)
            vtx_off += commands.vtx_buffer.size()
            idx_off += commands.idx_buffer.size()


class Gui(ImguiRenderer):
    """Event bridge (inherited handlers) + our backend; frames are begun and recorded
    by the app: `begin()`, build panels, `record(render_pass)`."""

    def __init__(self, device, canvas, render_target_format: str):
        # Not ImguiRenderer.__init__: it would build a second backend; the rest is the same.
        self._canvas_context = canvas.get_wgpu_context()
        self._imgui_context = imgui.create_context()
        imgui.set_current_context(self._imgui_context)
        self._backend = ViewBackend(device, render_target_format)
        self._backend.io.display_size = self._canvas_context.logical_size
        scale = self._canvas_context.pixel_ratio
        self._backend.io.display_framebuffer_scale = (scale, scale)
        canvas.add_event_handler(self._on_resize, "resize")
        canvas.add_event_handler(self._on_mouse_move, "pointer_move", order=-99)
        canvas.add_event_handler(self._on_mouse, "pointer_up", "pointer_down", order=-99)
        canvas.add_event_handler(self._on_key, "key_up", "key_down", order=-99)
        canvas.add_event_handler(self._on_wheel, "wheel", order=-99)
        canvas.add_event_handler(self._on_char_input, "char", order=-99)
        self._update_gui_function = None
        self._recovery = None
        io = self._backend.io
        io.config_error_recovery = True
        io.config_error_recovery_enable_assert = False   # a panel bug must not stop the frame loop
        self.fonts = load_fonts()
        apply_theme()

    @property
    def io(self):
        return self._backend.io

    def register(self, view_texture) -> None:
        view_texture.ref = self._backend.register_view(view_texture.view, view_texture.nearest)

    def unregister(self, view_texture) -> None:
        if view_texture.ref is not None:
            self._backend.unregister_view(view_texture.ref)
            view_texture.ref = None

    def begin(self) -> None:
        imgui.set_current_context(self._imgui_context)
        ratio = self._canvas_context.pixel_ratio
        self._backend.io.display_framebuffer_scale = (ratio, ratio)
        self._backend.io.display_size = self._canvas_context.logical_size
        imgui.new_frame()
        self._recovery = imgui.internal.ErrorRecoveryState()
        imgui.internal.error_recovery_store_state(self._recovery)

    def recover(self) -> None:
        """After an exception in a panel: close whatever it left open, so the frame ends."""
        if self._recovery is not None:
            imgui.internal.error_recovery_try_to_recover_state(self._recovery)

    def record(self, render_pass) -> None:
        imgui.render()
        self._backend.render(imgui.get_draw_data(), render_pass)


def _font_dir() -> Path:
    import imgui_bundle
    return Path(imgui_bundle.__file__).parent / "assets" / "fonts"


def load_fonts() -> dict:
    """Roboto for text (imgui's built-in font if the file is missing); a bold face for headings."""
    io = imgui.get_io()
    fonts = {}
    d = _font_dir()
    try:
        fonts["regular"] = io.fonts.add_font_from_file_ttf(str(d / "Roboto" / "Roboto-Regular.ttf"), FONT_SIZE)
        fonts["bold"] = io.fonts.add_font_from_file_ttf(str(d / "Roboto" / "Roboto-Bold.ttf"), FONT_SIZE)
        fonts["mono"] = io.fonts.add_font_from_file_ttf(str(d / "Inconsolata-Medium.ttf"), FONT_SIZE)
        io.font_default = fonts["regular"]
    except Exception:  # pragma: no cover - fonts are part of imgui-bundle
        fonts = {}
    imgui.get_style().font_size_base = FONT_SIZE
    return fonts


def apply_theme() -> None:
    """A calm dark theme: near-black panels, one green accent (the colour of 'correct')."""
    imgui.style_colors_dark()
    style = imgui.get_style()
    style.window_rounding = 6.0
    style.child_rounding = 4.0
    style.frame_rounding = 4.0
    style.grab_rounding = 4.0
    style.tab_rounding = 4.0
    style.popup_rounding = 4.0
    style.window_border_size = 1.0
    style.frame_padding = (8.0, 4.0)
    style.item_spacing = (8.0, 6.0)
    style.window_padding = (10.0, 8.0)
    style.window_title_align = (0.0, 0.5)
    style.separator_text_border_size = 1.0
    c = imgui.Col_
    v = imgui.ImVec4
    accent = v(0.36, 0.82, 0.52, 1.0)
    colours = {
        c.window_bg: v(0.067, 0.071, 0.086, 1.0),
        c.child_bg: v(0.067, 0.071, 0.086, 1.0),
        c.popup_bg: v(0.09, 0.095, 0.115, 0.98),
        c.border: v(0.18, 0.19, 0.23, 1.0),
        c.title_bg: v(0.09, 0.095, 0.115, 1.0),
        c.title_bg_active: v(0.11, 0.12, 0.15, 1.0),
        c.title_bg_collapsed: v(0.09, 0.095, 0.115, 1.0),
        c.frame_bg: v(0.13, 0.14, 0.17, 1.0),
        c.frame_bg_hovered: v(0.17, 0.18, 0.22, 1.0),
        c.frame_bg_active: v(0.20, 0.22, 0.27, 1.0),
        c.button: v(0.17, 0.19, 0.24, 1.0),
        c.button_hovered: v(0.24, 0.27, 0.34, 1.0),
        c.button_active: v(0.28, 0.50, 0.38, 1.0),
        c.header: v(0.17, 0.19, 0.24, 1.0),
        c.header_hovered: v(0.24, 0.27, 0.34, 1.0),
        c.header_active: v(0.28, 0.31, 0.38, 1.0),
        c.check_mark: accent,
        c.slider_grab: v(0.36, 0.66, 0.50, 1.0),
        c.slider_grab_active: accent,
        c.tab: v(0.12, 0.13, 0.16, 1.0),
        c.tab_hovered: v(0.24, 0.27, 0.34, 1.0),
        c.tab_selected: v(0.19, 0.21, 0.27, 1.0),
        c.tab_selected_overline: accent,
        c.plot_histogram: accent,
        c.separator: v(0.18, 0.19, 0.23, 1.0),
        c.text: v(0.88, 0.89, 0.92, 1.0),
        c.text_disabled: v(0.50, 0.52, 0.58, 1.0),
    }
    for idx, colour in colours.items():
        style.set_color_(idx, colour)
