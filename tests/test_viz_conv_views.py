"""Convolutional networks in the window: filter tiles and feature maps checked pixel by
pixel against numpy, the GPU-printed hover value, the network chooser, and an
offscreen app with the shipped CNN that renders and trains (textures are read back
here, in the tests only)."""
import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from mnist_viz.compute.program import Program
from mnist_viz.viz import colormap

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
        assert (hm.cols, hm.rows) == (in_c, out_c)
        tex = hm.texture.read()
        assert tex.shape == (out_c * (k + 1) + 1, in_c * (k + 1) + 1, 4)
        want = colormap.to_u8(colormap.diverging(w / np.abs(w).max())).astype(int).reshape(out_c * in_c, k, k, 3)
        got = tiles(tex, k, k, in_c, out_c * in_c)
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
    for (o, ky, kx), text in (((2, 1, 2), "-1.235"), ((1, 0, 0), "0.063"), ((0, 2, 2), "0.000")):
        hm = block.filters
        u = (1 + 0 + kx + 0.5) / hm.texture.width
        v = (1 + o * 4 + ky + 0.5) / hm.texture.height
        got_o, got_c, got_y, got_x, element = block.filter_at(u, v)
        assert (got_o, got_c, got_y, got_x) == (o, 0, ky, kx)
        mv.conv.probe_at(mv.conv.blocks.index(block), "filters", element)
        run(mv.conv.probe.dispatches())
        assert glyph_string(mv.conv.probe.texture.read()) == text
