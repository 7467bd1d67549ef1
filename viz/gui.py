"""imgui for the app: one context, its input bridge, theme, fonts and renderer.

Frames are begun and recorded by the app: `begin()`, build the panels,
`record(render_pass)` into the frame's one render pass. Rendering is
imgui_renderer.py, input imgui_input.py; both use only public APIs of wgpu-py
and imgui-bundle.
"""
from __future__ import annotations

from pathlib import Path

from imgui_bundle import imgui

from .imgui_input import InputBridge
from .imgui_renderer import ImguiRenderer

FONT_SIZE = 15.0


class Gui:
    def __init__(self, device, canvas, render_target_format: str):
        # The canvas, not its wgpu context: the app alone holds the context, so that dropping
        # it when the window closes releases the surface (App._release_surface says why).
        self._canvas = canvas
        self._imgui_context = imgui.create_context()
        imgui.set_current_context(self._imgui_context)
        io = self.io = imgui.get_io()
        io.set_ini_filename("")                         # no imgui.ini: the layout is computed every frame
        io.config_error_recovery = True
        io.config_error_recovery_enable_assert = False   # a panel bug must not stop the frame loop
        self._sync_display()
        self.renderer = ImguiRenderer(device, render_target_format)
        self.input = InputBridge(io, canvas)
        self._recovery = None
        self.fonts = load_fonts()
        apply_theme()

    def _sync_display(self) -> None:
        ratio = self._canvas.get_pixel_ratio()
        self.io.display_size = self._canvas.get_logical_size()
        self.io.display_framebuffer_scale = (ratio, ratio)

    def set_scale(self, scale: float) -> None:
        """UI scale: the fonts and every size of the style (padding, spacing, rounding) together."""
        imgui.set_current_context(self._imgui_context)
        apply_theme()
        style = imgui.get_style()
        style.scale_all_sizes(scale)
        style.font_scale_main = scale

    def register(self, view_texture) -> None:
        """Give a ViewTexture the reference `imgui.image` takes (sampled as its `.nearest` says)."""
        tid = self.renderer.register_texture(view_texture.view, view_texture.nearest)
        view_texture.ref = imgui.ImTextureRef(tid)

    def unregister(self, view_texture) -> None:
        if view_texture.ref is not None:
            self.renderer.unregister_texture(view_texture.ref.get_tex_id())
            view_texture.ref = None

    def begin(self) -> None:
        imgui.set_current_context(self._imgui_context)
        self._sync_display()
        imgui.new_frame()
        self._recovery = imgui.internal.ErrorRecoveryState()
        imgui.internal.error_recovery_store_state(self._recovery)

    def recover(self) -> None:
        """After an exception in a panel: close whatever it left open, so the frame ends."""
        if self._recovery is not None:
            imgui.internal.error_recovery_try_to_recover_state(self._recovery)

    def record(self, render_pass) -> None:
        """End the frame and draw it into `render_pass` (no encoder, no submit)."""
        imgui.set_current_context(self._imgui_context)
        imgui.render()
        self.renderer.render(imgui.get_draw_data(), render_pass)


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
