"""Convolutional networks in the window: filter tiles and feature maps checked pixel by
pixel against numpy, the GPU-printed hover value, the network chooser, and an
offscreen app with the shipped CNN that renders and trains (textures are read back
here, in the tests only)."""
import functools

import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from mnist_viz.compute.program import Program
from mnist_viz.viz import colormap
from conftest import act

SMALL_CNN = "Conv2d(1,4,3,padding=1),ReLU(),MaxPool2d(2),Flatten(),Linear(784,10)"
GRID = colormap.to_u8(np.array([0.16, 0.17, 0.20]))


def run(dispatches):
    dev = get_device()
    enc = dev.device.create_command_encoder()
    Program(dispatches).encode(enc)
    dev.submit(enc)


def build(text=SMALL_CNN, seed=2):
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.viz.canvas import PaintCanvas
    from mnist_viz.viz.inference import Forward
    from mnist_viz.viz.views import ModelViews, ScaleBank
    model = Sequential(parse(text), seed=seed)
    canvas = PaintCanvas()
    scales = ScaleBank()
    fwd = Forward(model, canvas.x)
    return model, canvas, scales, fwd, ModelViews(model, fwd, scales)


def tiles(tex, tile_w, tile_h, cols, n, gap=1):
    """The n tiles of a heatmap texture (gap pixels around each), as [n, tile_h, tile_w, 3] ints."""
    out = []
    for t in range(n):
        cy, cx = divmod(t, cols)
        y0, x0 = gap + cy * (tile_h + gap), gap + cx * (tile_w + gap)
        out.append(tex[y0:y0 + tile_h, x0:x0 + tile_w, :3].astype(int))
    return np.stack(out)


def conv_relu_pool(img, w, b):
    """numpy Conv2d(padding=1) + ReLU, and MaxPool2d(2) of that: img [28, 28], w [C, 1, 3, 3]."""
    p = np.pad(img, 1)
    c = w.shape[0]
    out = np.zeros((c, 28, 28), np.float32)
    for o in range(c):
        for ky in range(3):
            for kx in range(3):
                out[o] += w[o, 0, ky, kx] * p[ky:ky + 28, kx:kx + 28]
        out[o] += b[o]
    relu = np.maximum(out, 0)
    return relu, relu.reshape(c, 14, 2, 14, 2).max(axis=(2, 4))


def test_filter_tiles_are_the_colour_mapped_weights():
    """Guards against filters drawn from the wrong arena offset or with in/out channels swapped
    (tile (o, c) must be weight [o, c] as PyTorch lays it out), or scaled by another layer's
    max |w|: a two-conv network, both layers' tiles compared with numpy."""
    text = "Conv2d(1,3,3),ReLU(),Conv2d(3,2,5,padding=2),ReLU(),Flatten(),Linear(1352,10)"
    model, canvas, scales, fwd, mv = build(text, seed=4)
    run(scales.dispatches() + mv.conv.dispatches())
    sd = model.state_dict()
    blocks = [b for b in mv.conv.blocks if b.filters is not None]
    assert [b.layers[0][0] for b in blocks] == [0, 2]
    for block, name in zip(blocks, ("0.weight", "2.weight")):
        w = sd[name]                                   # [out, in, k, k]
        out_c, in_c, k, _ = w.shape
        hm = block.filters
        cols, rows = (3, 1) if in_c == 1 else (in_c, out_c)   # one input channel: a grid of filters
        assert (hm.cols, hm.rows) == (cols, rows)
        tex = hm.texture.read()
        assert tex.shape == (rows * (k + 1) + 1, cols * (k + 1) + 1, 4)
        want = colormap.to_u8(colormap.diverging(w / np.abs(w).max())).astype(int).reshape(out_c * in_c, k, k, 3)
        got = tiles(tex, k, k, cols, out_c * in_c)
        assert np.abs(got - want).max() <= 1
        assert (tex[0, :, :3] == GRID).all() and (tex[:, k + 1, :3] == GRID).all()    # the gaps


def test_feature_maps_are_a_numpy_convolution_of_the_canvas_input(mnist):
    """Guards against maps read at the wrong offset, channels in the wrong tiles, a missing ReLU
    or pool, and the wrong colour scale: the maps after Conv2d+ReLU and after MaxPool2d of
    a test digit equal numpy's, colour-mapped by their own max."""
    model, canvas, scales, fwd, mv = build()
    img = mnist.test_images[0].astype(np.float32) / 255
    canvas.x.write(img.reshape(1, 784))
    run(fwd.dispatches() + scales.dispatches() + mv.conv.dispatches())
    sd = model.state_dict()
    relu, pooled = conv_relu_pool(img, sd["0.weight"], sd["0.bias"])
    conv_block, pool_block = [b for b in mv.conv.blocks if b.maps is not None]
    assert [i for i, _ in conv_block.layers] == [0, 1] and [i for i, _ in pool_block.layers] == [2]
    for block, want_maps, side in ((conv_block, relu, 28), (pool_block, pooled, 14)):
        hm = block.maps
        assert block.shape == (4, side, side)
        got = tiles(hm.texture.read(), side, side, hm.cols, 4)
        want = colormap.to_u8(colormap.sequential(want_maps / want_maps.max())).astype(int)
        assert np.abs(got - want).max() <= 2, block.title
    # The hover mapping: texture coordinates of channel 3, pixel (y 5, x 7) of the conv maps.
    hm = conv_block.maps
    cy, cx = divmod(3, hm.cols)
    u = (1 + cx * 29 + 7 + 0.5) / hm.texture.width
    v = (1 + cy * 29 + 5 + 0.5) / hm.texture.height
    c, y, x, element = conv_block.map_at(u, v)
    assert (c, y, x) == (3, 5, 7)
    assert element == conv_block.output.offset // 4 + 3 * 784 + 5 * 28 + 7


def glyph_string(tex) -> str:
    """Read the probe texture's text back with the 5 x 7 font (scale 2, one font pixel of margin)."""
    font = {
        "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
        "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
        "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
        "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
        "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
        ".": (0, 0, 0, 0, 0, 0x0C, 0x0C), "-": (0, 0, 0, 0x1F, 0, 0, 0)}
    ink = tex[..., :3].max(axis=2) > 128
    text = ""
    for k in range(9):
        rows = tuple(int("".join("1" if ink[2 + 2 * r, 2 + 12 * k + 2 * c] else "0" for c in range(5)), 2)
                     for r in range(7))
        text += next((ch for ch, g in font.items() if g == rows), " " if not any(rows) else "?")
    return text.strip()


def test_hover_value_is_printed_on_the_gpu():
    """Guards against the tooltip's value coming from the wrong element (or not from the GPU at
    all): the probe pointed at a weight prints that weight, rounded to 3 decimals."""
    model, canvas, scales, fwd, mv = build()
    w = np.zeros((4, 1, 3, 3), np.float32)
    w[2, 0, 1, 2] = -1.2346
    w[1, 0, 0, 0] = 0.0627
    model.arena.write("0.weight", w)
    block = next(b for b in mv.conv.blocks if b.filters is not None)
    hm = block.filters
    assert (hm.cols, hm.rows) == (2, 2)                 # 4 filters of one input channel: a 2 x 2 grid
    for (o, ky, kx), text in (((2, 1, 2), "-1.235"), ((1, 0, 0), "0.063"), ((0, 2, 2), "0.000")):
        cy, cx = divmod(o, 2)
        u = (1 + cx * 4 + kx + 0.5) / hm.texture.width
        v = (1 + cy * 4 + ky + 0.5) / hm.texture.height
        got_o, got_c, got_y, got_x, element = block.filter_at(u, v)
        assert (got_o, got_c, got_y, got_x) == (o, 0, ky, kx)
        mv.conv.probe_at(mv.conv.blocks.index(block), "filters", element)
        run(mv.conv.probe.dispatches())
        assert glyph_string(mv.conv.probe.texture.read()) == text


# -- the window ------------------------------------------------------------------------------------------
@pytest.fixture
def make_app(make_app):
    """This file's apps: 1000 x 700 on 64 training and 16 test images in batches of 8, no
    evaluation on load, no autosave."""
    from mnist_viz.compute.recipe import Recipe
    return functools.partial(make_app, size=(1000, 700), limit=64, test_limit=16, evaluate_on_load=False,
                             autosave=False, recipe=Recipe(batch_size=8))


def move_mouse(app, x, y):
    app.rc.submit_event({"event_type": "pointer_move", "x": x, "y": y, "button": 0, "buttons": (), "modifiers": (),
                         "ntouches": 0, "touches": {}})


def overflow(app) -> dict:
    from test_viz_ux import overflow as panel_overflow   # how far each panel's content reaches past it
    return panel_overflow(app)


def test_chooser_builds_the_network_and_refuses_a_bad_string(make_app):
    """Guards against a chooser that changes the running model on a bad string, shows no
    error (or one not naming the layer), or builds something other than the string says:
    the Net tab parses the field as it is typed, Fresh builds the CNN with He-init
    weights and a new Run, Shipped weights brings back the trained MLP and its mosaic."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.viz.files import SHIPPED
    app = make_app(size=(1100, 700))                   # the smallest window the layout supports
    mlp = app.model
    assert app.ui.network_choice == "mlp" and app.model_views.conv is None and app.model_views.mosaic is not None
    app.ui.select_tabs.add("Net")
    bad = "Conv2d(1,4,3),ReLU(),Linear(10,10)"
    app.ui.arch_text = bad
    app.draw_offscreen()
    app.draw_offscreen()                               # the tab is selected a frame after it is asked for
    text, ok, line = app.ui.arch_checked
    assert text == bad and not ok and line.startswith("error: layer 2 Linear(10,10)"), line
    assert overflow(app)["Training"] == (0.0, 0.0)      # the tab fits the narrowest column
    act(app, "new_network", bad)                       # the action checks again: nothing changes
    app.draw_offscreen()
    app.draw_offscreen()
    assert app.model is mlp and app.ui.network_message.startswith("error: layer 2 Linear(10,10)")
    app.ui.arch_text = SMALL_CNN
    app.draw_offscreen()
    assert app.ui.arch_checked[1], app.ui.arch_checked
    act(app, "new_network", SMALL_CNN)
    app.draw_offscreen()
    app.draw_offscreen()
    app.draw_offscreen()                               # the CNN's layout settles (imgui sizes content a frame late)
    model = app.model
    assert model is not mlp and model.arch == parse(SMALL_CNN)
    assert app.session.run.model is model and app.model_views.conv is not None and app.model_views.mosaic is None
    w = model.state_dict()["0.weight"]
    bound = np.sqrt(6 / 9)                             # He uniform, fan-in 1 x 3 x 3
    assert np.abs(w).max() <= bound and np.abs(w).max() > bound / 2
    assert app.ui.network_choice == "custom" and "fresh" in app.ui.network_message
    clipped = {k: d for k, d in overflow(app).items() if max(d) > 1}
    assert not clipped, clipped                          # the CNN's layer list and filters fit their panels
    act(app, "load_shipped", "mlp")
    app.draw_offscreen()
    app.draw_offscreen()
    assert app.model.arch.text == SHIPPED["mlp"].architecture and app.model_views.mosaic is not None
    assert app.ui.network_choice == "mlp" and app.model_views.conv is None


@pytest.mark.parametrize("size", [(1100, 700), (1600, 1000), (2560, 1440)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_cnns_layout_clips_nothing(make_app, size):
    """Guards against the CNN's layout (its Canvas panel gets a third of the middle column) pushing
    the canvas tools out of the panel: at 1600 x 1000 the canvas caption wrapped to two lines and
    the saliency row was cut off (a first user's screenshot of the shipped CNN)."""
    app = make_app(arch=SMALL_CNN, size=size)
    c = app.canvas
    c.stroke((0.3 * c.width, 0.3 * c.height), (0.6 * c.width, 0.7 * c.height), radius=5)
    app.draw_offscreen()
    app.draw_offscreen()
    clipped = {k: d for k, d in overflow(app).items() if max(d) > 1}
    assert not clipped, (size, clipped)


def test_the_filters_tab_is_there_only_with_filters(make_app):
    """Guards against an empty 'Conv filters' tab (no text, nothing drawn) for a front of pools
    alone (a first user's trial): the tab shows for a network with a Conv2d, not without one.
    A tab asked for and drawn takes the request out of ui.select_tabs."""
    for arch, shown in (("MaxPool2d(2),Flatten(),Linear(196,10)", False), (SMALL_CNN, True)):
        app = make_app(arch=arch, size=(1200, 800))
        app.ui.select_tabs.add("Conv filters")
        app.draw_offscreen()
        assert ("Conv filters" not in app.ui.select_tabs) == shown, arch


def test_hovering_a_feature_map_prints_its_value(make_app):
    """Guards against hover reporting another element than the one under the mouse, or a value
    that is not the map's: the pointer over a feature map in the Layers panel makes the probe
    print exactly that activation (read back here, in the test only) for a loaded test digit."""
    app = make_app(arch=SMALL_CNN, size=(1200, 800))
    act(app, "load_sample", "test", 1)
    app.draw_offscreen()
    app.draw_offscreen()                                  # the layout settles (the list's scrollbar appears)
    x0, y0, x1, y1 = app.ui.layer_rects[(0, "maps")]
    block = app.model_views.conv.blocks[0]
    maps = block.maps
    out = np.frombuffer(get_device().read(block.output.buffer), np.float32)
    out = out[block.output.offset // 4:][:4 * 784].reshape(4, 28, 28)
    c = int(out.reshape(4, -1).max(axis=1).argmax())
    y, x = np.unravel_index(int(out[c].argmax()), (28, 28))     # the brightest activation of a channel
    cy, cx = divmod(c, maps.cols)
    u = (1 + cx * 29 + x + 0.5) / maps.texture.width
    v = (1 + cy * 29 + y + 0.5) / maps.texture.height
    assert block.map_at(u, v)[:3] == (c, y, x)
    element = block.map_at(u, v)[3]
    move_mouse(app, x0 + (x1 - x0) * u, y0 + (y1 - y0) * v)
    app.draw_offscreen()
    app.draw_offscreen()
    probe = app.model_views.conv.probe
    assert probe.active == id(block.output.buffer) and probe.params.values["offset"] == element
    value = float(np.frombuffer(get_device().read(block.output.buffer), np.float32)[element])
    assert value > 0.01 and value == out[c, y, x]
    assert glyph_string(probe.texture.read()) == f"{value:.3f}"
    move_mouse(app, 2, 2)                                 # away: the probe stops
    app.draw_offscreen()
    assert probe.active is None


def test_offscreen_app_with_the_shipped_cnn_renders_and_trains_a_step(make_app, wgpu_reads, tmp_path):
    """Guards against a CNN the window cannot show or train (views built for MLPs only), and
    against any readback the conv views might add: the shipped CNN with a test digit on the
    canvas renders its filters and feature maps, takes a training step, and wgpu transfers
    nothing but the 64-byte readout (and the offscreen frames' own downloads)."""
    from PIL import Image
    from mnist_viz.viz.files import SHIPPED
    from mnist_viz.viz.structs import READOUT
    app = make_app(checkpoint=SHIPPED["cnn"].path, size=(1200, 800))
    wgpu_reads.reset()
    act(app, "load_sample", "test", 1)                 # a digit on the canvas (painting one costs many frames)
    app.draw_offscreen()
    act(app, "step")
    img = np.asarray(app.draw_offscreen())
    frames = 2
    assert app.metrics.steps == 1
    reads = wgpu_reads.excluding(wgpu_reads.OFFSCREEN_FRAME)
    assert all(n <= READOUT.size for _, n in reads), reads[:5]
    assert len(wgpu_reads.only(wgpu_reads.OFFSCREEN_FRAME)) == frames
    Image.fromarray(img[..., :3]).save(tmp_path / "cnn.png")
    conv = app.model_views.conv
    assert len([b for b in conv.blocks if b.filters is not None]) == 4
    assert len([b for b in conv.blocks if b.maps is not None]) == 6
    # The first feature maps are on screen (their rect in the Layers panel) and show the digit.
    x0, y0, x1, y1 = (int(round(c)) for c in app.ui.layer_rects[(0, "maps")])
    shown = img[y0 + 2:y1 - 2, x0 + 2:x1 - 2, :3].astype(int)
    assert shown.size and (shown.max(axis=2) > 120).mean() > 0.01
    maps = conv.blocks[0].maps.texture.read()[..., :3]
    bg = colormap.to_u8(colormap.sequential(0.0)).astype(int)
    assert (np.abs(maps.astype(int) - bg).max(axis=2) > 30).mean() > 0.02
