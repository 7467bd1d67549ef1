"""Our imgui renderer and input bridge (viz/imgui_renderer.py, viz/imgui_input.py, viz/gui.py),
checked by the pixels of offscreen frames and by what imgui sees of submitted events.

Each test builds a real Gui on an offscreen rendercanvas with the program's device, draws
one imgui window per frame and reads the frame back."""
import ast
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import wgpu
from imgui_bundle import imgui

from mnist_viz.compute.device import get_device

ROOT = Path(__file__).resolve().parent.parent
CLEAR = (0.0, 0.0, 0.0, 1.0)
WINDOW_FLAGS = (imgui.WindowFlags_.no_decoration | imgui.WindowFlags_.no_move
                | imgui.WindowFlags_.no_saved_settings)
PALETTE = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255),
                    (0, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0)], np.uint8)


class Harness:
    """An offscreen canvas + Gui; `frame(build)` draws `build()` inside a full-size window."""

    def __init__(self, size=(320, 240), pixel_ratio=1.0, fmt=None):
        from rendercanvas.offscreen import RenderCanvas
        from mnist_viz.viz.gui import Gui
        self.dev = get_device()
        self.canvas = RenderCanvas(size=size, pixel_ratio=pixel_ratio)
        self.ratio = pixel_ratio
        ctx = self.canvas.get_wgpu_context()
        self.format = fmt or ctx.get_preferred_format(self.dev.adapter)
        ctx.configure(device=self.dev.device, format=self.format)
        self.context = ctx
        self.gui = Gui(self.dev.device, self.canvas, self.format)
        self.size = size
        self._build = None
        self.canvas.request_draw(self._draw)

    def _draw(self):
        self.gui.begin()
        imgui.set_next_window_pos(imgui.ImVec2(0, 0))
        imgui.set_next_window_size(imgui.ImVec2(*self.size))
        imgui.begin("test", None, WINDOW_FLAGS)
        self._build()
        imgui.end()
        encoder = self.dev.device.create_command_encoder()
        rp = encoder.begin_render_pass(color_attachments=[{
            "view": self.context.get_current_texture().create_view(), "clear_value": CLEAR,
            "load_op": "clear", "store_op": "store"}])
        self.gui.record(rp)
        rp.end()
        self.dev.device.queue.submit([encoder.finish()])

    def frame(self, build=lambda: None) -> np.ndarray:
        self._build = build
        self.canvas._process_events()
        return np.asarray(self.canvas.draw())[..., :3].astype(int)

    def event(self, **ev) -> None:
        base = {"modifiers": (), "buttons": (), "ntouches": 0, "touches": {}}
        self.canvas.submit_event({**base, **ev})

    def px(self, v: float) -> int:
        """Logical coordinate -> physical pixel index."""
        return int(round(v * self.ratio))

    def close(self):
        self.canvas.close()


@pytest.fixture
def harness():
    made = []

    def make(**kw):
        h = Harness(**kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def shown(rgb, fmt: str) -> np.ndarray:
    """What an sRGB colour becomes in the frame: on an *-srgb target the shader raises it to
    2.2 (linear light) and the GPU encodes it with the sRGB curve; a unorm target stores it."""
    c = np.asarray(rgb, float) / 255
    if fmt.endswith("srgb"):
        lin = c ** 2.2
        c = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(c * 255)


def item_rect():
    lo, hi = imgui.get_item_rect_min(), imgui.get_item_rect_max()
    return lo.x, lo.y, hi.x, hi.y


def region(img, h: Harness, rect, inset: float = 0.0):
    x0, y0, x1, y1 = rect
    return img[h.px(y0 + inset): h.px(y1 - inset), h.px(x0 + inset): h.px(x1 - inset)]


# -- drawing -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,ratio", [("rgba8unorm-srgb", 1.0), ("rgba8unorm-srgb", 2.0), ("rgba8unorm", 1.0)])
def test_text_and_a_filled_rect_land_where_imgui_put_them(harness, fmt, ratio):
    """Guards: a wrong projection (rect off its place or flipped), a framebuffer scale not applied
    (HiDPI: the rect at half size), the colour space mishandled (too bright on an srgb target, or
    darkened on a plain one), and a font atlas never uploaded (blank text)."""
    h = harness(fmt=fmt, pixel_ratio=ratio)
    colour = (200, 120, 40)
    got = {}

    def build():
        imgui.text("Hello, MNIST 0123")
        got["text"] = item_rect()
        imgui.set_cursor_screen_pos(imgui.ImVec2(100, 120))
        imgui.dummy(imgui.ImVec2(60, 40))
        got["rect"] = item_rect()
        imgui.get_window_draw_list().add_rect_filled(imgui.ImVec2(100, 120), imgui.ImVec2(160, 160),
                                                     imgui.IM_COL32(*colour, 255))
    h.frame(build)
    img = h.frame(build)
    assert img.shape[:2] == (h.px(240), h.px(320))
    want = shown(colour, fmt)
    inside = region(img, h, got["rect"], inset=1)
    assert inside.size and np.abs(inside - want).max() <= 2, (inside.reshape(-1, 3)[0], want)
    # Just outside the rect (3 logical px away, all four sides): not the rect's colour.
    x0, y0, x1, y1 = got["rect"]
    for x, y in [(x0 - 3, (y0 + y1) / 2), (x1 + 3, (y0 + y1) / 2), ((x0 + x1) / 2, y0 - 3), ((x0 + x1) / 2, y1 + 3)]:
        assert np.abs(img[h.px(y), h.px(x)] - want).max() > 40, (x, y)
    # The text: bright glyph pixels inside its item rect, none on the row below it.
    text = region(img, h, got["text"])
    assert (text.min(axis=-1) > 150).sum() > 30 * ratio * ratio
    tx0, _, tx1, ty1 = got["text"]
    assert img[h.px(ty1) + 3, h.px(tx0): h.px(tx1)].max() < 60


def make_texture(pixels: np.ndarray, nearest: bool):
    """A GPU texture of known pixels in the shape Gui.register takes (view, nearest, ref)."""
    dev = get_device().device
    hgt, wid = pixels.shape[:2]
    tex = dev.create_texture(size=(wid, hgt, 1), format=wgpu.TextureFormat.rgba8unorm,
                             usage=wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.COPY_DST)
    rgba = np.concatenate([pixels, np.full((hgt, wid, 1), 255, np.uint8)], axis=-1)
    dev.queue.write_texture({"texture": tex}, np.ascontiguousarray(rgba), {"bytes_per_row": wid * 4}, (wid, hgt, 1))
    return SimpleNamespace(texture=tex, view=tex.create_view(), nearest=nearest, ref=None)


def test_registered_texture_shows_crisp_with_nearest_sampling_at_its_item_rect(harness):
    """Guards: the per-texture sampler ignored (nearest views blurred, or every view nearest),
    the texture upside down or transposed (uv), the image off its item rect, and a texture
    unregistered after the panels were built crashing the frame (KeyError) instead of being skipped."""
    h = harness()
    texels = PALETTE[(np.arange(4)[None, :] + 3 * np.arange(4)[:, None]) % 8]   # neighbours always differ
    crisp, smooth, gone = make_texture(texels, True), make_texture(texels, False), make_texture(texels, True)
    for t in (crisp, smooth, gone):
        h.gui.register(t)
    assert isinstance(crisp.ref, imgui.ImTextureRef) and crisp.ref.get_tex_id() != smooth.ref.get_tex_id()
    got = {}

    def build():
        for name, t, x in (("crisp", crisp, 20), ("smooth", smooth, 110), ("gone", gone, 200)):
            imgui.set_cursor_screen_pos(imgui.ImVec2(x, 40))
            imgui.image(t.ref, imgui.ImVec2(64, 64))
            got[name] = item_rect()
        if "unregister" in got:
            h.gui.unregister(gone)   # after imgui.image named it, before the frame is recorded
    h.frame(build)
    got["unregister"] = True
    img = h.frame(build)
    assert gone.ref is None
    assert got["crisp"] == (20, 40, 84, 104)
    block = region(img, h, got["crisp"])
    assert block.shape[:2] == (64, 64)
    # Every pixel is exactly one texel's colour (no blends), in the texel's place.
    want = np.repeat(np.repeat(texels.astype(int), 16, axis=0), 16, axis=1)
    assert np.abs(block - want).max() <= 1
    # The same texture registered with linear sampling blends across texel edges.
    soft = region(img, h, got["smooth"]).reshape(-1, 3)
    off_palette = np.abs(soft[:, None, :] - PALETTE[None].astype(int)).max(-1).min(-1) > 8
    assert off_palette.mean() > 0.2
    # The unregistered one was skipped: the window background shows there.
    assert region(img, h, got["gone"]).max() < 40


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_scissor_clipped_child_does_not_draw_outside_its_clip(harness, ratio):
    """Guards: clip rects not applied as scissors (a child's content spills over its parent),
    and scissors not scaled by the framebuffer scale (HiDPI: the clip in the wrong place)."""
    h = harness(pixel_ratio=ratio)
    magenta = (255, 0, 255)
    got = {}

    def build():
        imgui.set_cursor_screen_pos(imgui.ImVec2(120, 100))
        imgui.begin_child("clipped", imgui.ImVec2(80, 50))
        lo, hi = imgui.get_window_pos(), imgui.get_window_size()
        got["child"] = (lo.x, lo.y, lo.x + hi.x, lo.y + hi.y)
        # A rect 30 px larger than the child on every side: only the scissor keeps it inside.
        imgui.get_window_draw_list().add_rect_filled(imgui.ImVec2(lo.x - 30, lo.y - 30),
                                                     imgui.ImVec2(lo.x + hi.x + 30, lo.y + hi.y + 30),
                                                     imgui.IM_COL32(*magenta, 255))
        imgui.end_child()
    h.frame(build)
    img = h.frame(build)
    x0, y0, x1, y1 = got["child"]
    assert (x0, y0, x1, y1) == (120, 100, 200, 150)
    is_magenta = (np.abs(img - np.array(magenta)).max(-1) <= 2)
    inside = is_magenta[h.px(y0): h.px(y1), h.px(x0): h.px(x1)]
    assert inside.mean() > 0.95
    outside = is_magenta.copy()
    outside[h.px(y0): h.px(y1), h.px(x0): h.px(x1)] = False
    assert outside.sum() == 0, np.argwhere(outside)[:5]


def test_geometry_buffers_grow_for_a_large_frame(harness):
    """Guards: vertex / index buffers sized once (a frame with more vertices than the first
    capacity would fail validation or drop its last shapes)."""
    h = harness()
    h.frame(lambda: imgui.text("small"))
    n = 3000   # 4 vertices, 6 indices each: past the first 4096-vertex capacity

    def build():
        dl = imgui.get_window_draw_list()
        for i in range(n):
            x, y = 10 + (i % 100) * 3, 10 + (i // 100) * 3
            dl.add_rect_filled(imgui.ImVec2(x, y), imgui.ImVec2(x + 2, y + 2), imgui.IM_COL32(0, 255, 0, 255))
    img = h.frame(build)
    last = n - 1
    x, y = 10 + (last % 100) * 3, 10 + (last // 100) * 3
    assert tuple(img[y, x]) == (0, 255, 0)
    assert tuple(img[10, 10]) == (0, 255, 0)


def test_font_atlas_follows_dynamic_glyphs_at_a_new_size(harness):
    """Guards: imgui's texture updates ignored (glyphs baked on demand at a new size, or into a
    grown atlas, would be blank: Dear ImGui 1.92 adds them to the atlas after the first upload)."""
    h = harness()
    h.frame(lambda: imgui.text("abc"))
    got = {}

    def build():
        imgui.push_font(None, 56.0)
        imgui.text("WXYZ@&")
        got["text"] = item_rect()
        imgui.pop_font()
    h.frame(build)
    img = h.frame(build)
    text = region(img, h, got["text"])
    assert got["text"][3] - got["text"][1] > 50
    assert (text.min(axis=-1) > 150).mean() > 0.08


# -- glyphs ------------------------------------------------------------------------------------------------------
def ui_characters() -> set[str]:
    """Every character of every string literal in the panels, plus what numbers format to."""
    chars = set("0123456789.,%+-e/:() ")
    for path in [*(ROOT / "viz" / "panels").glob("*.py"), ROOT / "viz" / "actions.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                chars |= set(node.value)
    return {c for c in chars if c.isprintable()}


def test_every_glyph_the_ui_uses_is_in_the_fonts(harness):
    """Guards the status dot that showed as '?': a character in the UI (the status line and
    every other panel string) that a font lacks renders as imgui's fallback glyph."""
    h = harness()
    chars = ui_characters()
    assert {"%", "/", "("} <= chars
    for name in ("regular", "bold", "mono"):
        font = h.gui.fonts[name]
        baked = font.get_font_baked(font.legacy_size)
        missing = [c for c in sorted(chars) if baked.find_glyph_no_fallback(ord(c)) is None]
        assert not missing, f"{name} lacks {missing}"
    # The check can fail: Roboto really lacks U+25CF, the reason the dot is drawn.
    assert h.gui.fonts["regular"].get_font_baked(15.0).find_glyph_no_fallback(0x25CF) is None


def test_status_dot_is_drawn_in_the_status_colour(harness):
    """Guards: the menu bar's status dot missing or not in its colour (it was a glyph the font lacks)."""
    from mnist_viz.viz.panels import widgets as panels
    h = harness()
    got = {}

    def build():
        imgui.set_cursor_screen_pos(imgui.ImVec2(40, 60))
        panels.status_label(panels.RED, "running   step 12   loss 0.1234")
        got["text"] = item_rect()
    h.frame(build)
    img = h.frame(build)
    x0, y0, x1, y1 = got["text"]
    strip = img[int(y0): int(y1), 30: int(x0)]
    red = shown(np.array([0.95, 0.36, 0.33]) * 255, h.format)
    dot = np.abs(strip - red).max(-1) <= 12
    r = 0.28 * (y1 - y0)                                       # the dot radius status_label uses
    assert 0.5 * math.pi * r * r < dot.sum() < 2.0 * math.pi * r * r, dot.sum()
    ys, xs = np.nonzero(dot)
    assert abs(ys.mean() + int(y0) - (y0 + y1) / 2) <= 1.5     # centred on the text line


# -- input -------------------------------------------------------------------------------------------------------
def test_key_events_reach_imgui_and_text_input_keeps_keys_from_the_app(harness):
    """Guards: key names not mapped to imgui keys, modifiers not forwarded, characters not
    typed into text fields, and shortcuts firing while the user types (imgui must stop a key
    event from reaching the app's handler when it wants the keyboard)."""
    h = harness()
    app_keys = []
    h.canvas.add_event_handler(lambda ev: app_keys.append(ev["key"]), "key_down")   # like the app's, order 0
    seen = {}

    def probe():
        seen["a"] = imgui.is_key_down(imgui.Key.a)
        seen["f5"] = imgui.is_key_down(imgui.Key.f5)
        seen["ctrl"] = imgui.get_io().key_ctrl
    h.frame(probe)
    assert not seen["a"]
    h.event(event_type="key_down", key="a")
    h.event(event_type="key_down", key="F5")
    h.frame(probe)
    assert seen["a"] and seen["f5"] and not seen["ctrl"]
    assert app_keys == ["a", "F5"]                     # nothing wants the keyboard: the app sees them
    h.event(event_type="key_up", key="a")
    h.event(event_type="key_down", key="Control", modifiers=("Control",))
    h.frame(probe)
    assert not seen["a"] and seen["ctrl"]
    h.event(event_type="key_up", key="Control", modifiers=())
    h.frame(probe)
    assert not seen["ctrl"]

    # A focused text field: typed characters land in it, and the keys stop at imgui.
    field = {"text": "", "focus": True}

    def text_field():
        if field["focus"]:
            imgui.set_keyboard_focus_here()
            field["focus"] = False
        _, field["text"] = imgui.input_text("path", field["text"])
    for _ in range(3):                                  # focus requested, taken, reported
        h.frame(text_field)
    assert h.gui.io.want_capture_keyboard and h.gui.io.want_text_input
    app_keys.clear()
    for ch in "s7":
        h.event(event_type="key_down", key=ch)
        h.event(event_type="char", data=ch)
        h.event(event_type="key_up", key=ch)
        h.frame(text_field)
    h.frame(text_field)
    assert field["text"] == "s7"
    assert app_keys == []                               # 's' did not reach the app (it would save)


def click(h: Harness, x: float, y: float, build) -> None:
    h.event(event_type="pointer_move", x=x, y=y, button=0)
    h.frame(build)
    h.event(event_type="pointer_down", x=x, y=y, button=1, buttons=(1,))
    h.frame(build)
    h.event(event_type="pointer_up", x=x, y=y, button=1, buttons=())
    h.frame(build)


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_mouse_click_on_a_button_is_seen_by_imgui(harness, ratio):
    """Guards: pointer positions or buttons not forwarded (rendercanvas 1 = left is imgui's 0),
    positions scaled by the pixel ratio (events are in logical pixels, as imgui's layout), and
    a right click taken for a left one."""
    h = harness(pixel_ratio=ratio)
    clicks = {"ok": 0, "rect": None}

    def build():
        imgui.set_cursor_screen_pos(imgui.ImVec2(150, 90))
        if imgui.button("OK", imgui.ImVec2(60, 30)):
            clicks["ok"] += 1
        clicks["rect"] = item_rect()
    h.frame(build)
    click(h, 30, 30, build)                             # outside the button
    assert clicks["ok"] == 0
    h.event(event_type="pointer_move", x=180, y=105, button=0)
    h.frame(build)
    h.event(event_type="pointer_down", x=180, y=105, button=2, buttons=(2,))    # right button
    h.frame(build)
    h.event(event_type="pointer_up", x=180, y=105, button=2, buttons=())
    h.frame(build)
    assert clicks["ok"] == 0
    click(h, 180, 105, build)
    assert clicks["ok"] == 1
    assert h.gui.io.want_capture_mouse                  # over a widget: the app must not paint


def test_wheel_scrolls_the_way_the_wheel_turns(harness):
    """Guards: the wheel's sign or scale wrong (rendercanvas: positive dy is down, ~100 per notch;
    imgui: positive y is up, 1 per notch)."""
    h = harness()
    got = {}

    def build():
        imgui.begin_child("list", imgui.ImVec2(200, 120))
        for i in range(100):
            imgui.text(f"line {i}")
        got["scroll"] = imgui.get_scroll_y()
        imgui.end_child()
    h.event(event_type="pointer_move", x=60, y=60, button=0)
    h.frame(build)
    h.frame(build)
    assert got["scroll"] == 0
    h.event(event_type="wheel", dx=0.0, dy=100.0, x=60, y=60)     # one notch down
    h.frame(build)
    h.frame(build)
    one_notch = got["scroll"]
    assert 20 < one_notch < 200
    h.event(event_type="wheel", dx=0.0, dy=-100.0, x=60, y=60)    # and back up
    h.frame(build)
    h.frame(build)
    assert got["scroll"] == 0


def test_resize_event_sets_display_size_and_framebuffer_scale(harness):
    """Guards: imgui laying out for a stale window size or pixel ratio after a resize."""
    h = harness(size=(320, 240))
    h.canvas.set_logical_size(400, 300)
    h.size = (400, 300)
    img = h.frame()
    assert img.shape[:2] == (300, 400)
    io = h.gui.io
    assert (io.display_size.x, io.display_size.y) == (400, 300)
    assert io.display_framebuffer_scale.x == 1.0


def test_no_wgpu_imgui_utils_in_the_program():
    """Guards the point of our own renderer: nothing imports wgpu.utils.imgui (private members of
    it broke with wgpu-py releases)."""
    offenders = [str(p.relative_to(ROOT)) for folder in ("viz", "compute")
                 for p in (ROOT / folder).rglob("*.py") if "wgpu.utils.imgui" in p.read_text(encoding="utf-8")]
    assert offenders == []
