"""View passes: textures drawn on the GPU from the model's buffers, checked pixel by
pixel against numpy (textures are read back here, in the tests only)."""
import dataclasses

import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from mnist_viz.compute.program import Program
from mnist_viz.viz import colormap


def run(dispatches):
    dev = get_device()
    enc = dev.device.create_command_encoder()
    Program(dispatches).encode(enc)
    dev.submit(enc)


@pytest.fixture(scope="module")
def small(mnist):
    return dataclasses.replace(mnist, train_images=mnist.train_images[:256], train_labels=mnist.train_labels[:256],
                               test_images=mnist.test_images[:64], test_labels=mnist.test_labels[:64])


def build(model):
    from mnist_viz.viz.canvas import PaintCanvas
    from mnist_viz.viz.inference import Forward
    from mnist_viz.viz.views import ModelViews, ScaleBank
    canvas = PaintCanvas()
    scales = ScaleBank()
    fwd = Forward(model, canvas.x)
    return canvas, scales, fwd, ModelViews(model, fwd, scales)


def fresh_model(seed=3):
    from mnist_viz.compute.nn import mlp
    return mlp([784, 128, 10], seed=seed)


@pytest.mark.parametrize("count,offset", [(1, 0), (255, 3), (8193, 7), (400_003, 1)])
def test_scale_is_the_largest_finite_magnitude(count, offset):
    """A view's colour scale: max |x| over a buffer range, folded by many workgroups (atomicMax on the
    bits) and taken into its slot, the accumulator left at 0: a second fold of smaller values gives
    their maximum, not the first's. NaN and inf are left out; an all-zero range gives 0."""
    from mnist_viz.viz.views import ScaleBank
    dev = get_device()
    rng = np.random.default_rng(count)
    x = rng.normal(size=offset + count + 5).astype(np.float32)
    x[offset + count // 2] = np.nan
    x[offset + count - 1] = -np.inf if count > 2 else x[offset + count - 1]
    x[offset + count] = 1e6                     # just past the range: not counted
    buf = dev.buffer(x.nbytes, "test.absmax")
    zeros = dev.buffer(x.nbytes, "test.zeros")
    dev.queue.write_buffer(buf, 0, x.tobytes())
    scales = ScaleBank()
    slots = [scales.add(buf, offset, count), scales.add(zeros, 0, count)]
    run(scales.dispatches())
    got = np.frombuffer(dev.queue.read_buffer(scales.buffer), np.float32)
    part = x[offset:offset + count]
    assert got[slots[0]] == np.abs(part[np.isfinite(part)]).max(initial=0.0) and got[slots[1]] == 0.0
    dev.queue.write_buffer(buf, 0, (x * 0.5).tobytes())
    run(scales.dispatches())
    got = np.frombuffer(dev.queue.read_buffer(scales.buffer), np.float32)
    assert got[slots[0]] == np.abs(part[np.isfinite(part)] * 0.5).max(initial=0.0)


def test_w1_mosaic_is_the_colour_mapped_weights():
    model = fresh_model()
    canvas, scales, fwd, mv = build(model)
    run(scales.dispatches() + [mv.mosaic.dispatch])
    tex = mv.mosaic.texture.read()
    w1 = model.state_dict()["0.weight"]            # [128, 784], PyTorch layout
    expected_all = colormap.to_u8(colormap.diverging(w1 / np.abs(w1).max()))   # [128, 784, 3]
    m = mv.mosaic
    assert (m.cols, m.rows) == (16, 8) and tex.shape == (8 * 29 + 1, 16 * 29 + 1, 4)
    worst = 0
    for j in range(128):
        cy, cx = divmod(j, m.cols)
        y0, x0 = 1 + cy * 29, 1 + cx * 29
        got = tex[y0:y0 + 28, x0:x0 + 28, :3].astype(int)
        want = expected_all[j].reshape(28, 28, 3).astype(int)
        worst = max(worst, np.abs(got - want).max())
    assert worst <= 1
    assert (tex[..., 3] == 255).all()
    grid = colormap.to_u8(np.array([0.16, 0.17, 0.20]))
    assert (tex[0, :, :3] == grid).all() and (tex[:, 29, :3] == grid).all()   # tile gaps


def test_second_layer_and_bias_views_match_numpy():
    model = fresh_model(5)
    model.arena.write("2.bias", np.linspace(-1, 1, 10, dtype=np.float32))
    canvas, scales, fwd, mv = build(model)
    run(scales.dispatches() + mv.dispatches())
    sd = model.state_dict()
    w2 = sd["2.weight"]                             # [10, 128]
    tex = mv.weights[0].texture.read()
    assert tex.shape == (10 * 5 + 1, 128 + 2, 4)
    want = colormap.to_u8(colormap.diverging(w2 / np.abs(w2).max()))
    for c in range(10):
        got = tex[1 + c * 5: 1 + c * 5 + 4, 1:129, :3].astype(int)
        assert np.abs(got - want[c][None].astype(int)).max() <= 1
    b2 = mv.biases[1].texture.read()[0, :, :3].astype(int)
    assert np.abs(b2 - colormap.to_u8(colormap.diverging(np.linspace(-1, 1, 10))).astype(int)).max() <= 1


def test_probability_bars_follow_the_model_output_on_a_test_image(mnist):
    """Feed test image k straight into the input tensor; the bar chart's bar heights
    are the softmax of the numpy forward pass, the winner drawn in the accent colour."""
    from mnist_viz.compute.model_io import default_model_path, load_model
    if default_model_path().exists():
        model, _ = load_model(default_model_path())
    else:
        model = fresh_model()
    canvas, scales, fwd, mv = build(model)
    sd = model.state_dict()
    accent = colormap.to_u8(np.array([0.36, 0.82, 0.52]))
    for k in (0, 1, 8):   # 8 is a digit the network is unsure of
        img = mnist.test_images[k].astype(np.float32).reshape(1, 784) / 255
        canvas.x.write(img)
        run(fwd.dispatches() + scales.dispatches() + [mv.probs.dispatch])
        h = np.maximum(img @ sd["0.weight"].T + sd["0.bias"], 0)
        z = h @ sd["2.weight"].T + sd["2.bias"]
        p = np.exp(z - z.max())
        p = (p / p.sum())[0]
        tex = mv.probs.texture.read()
        H, W = tex.shape[:2]
        chart_h = H - 22
        band = W / 10
        for c in range(10):
            col = tex[:chart_h, int((c + 0.5) * band), :3]
            bg = colormap.to_u8(colormap.BG)
            lit = np.array([not (np.abs(px.astype(int) - bg).max() <= 2 or px.max() < 60) for px in col])
            height = lit[: chart_h - 1].sum()       # the bottom row is the bar's cap
            assert abs(height - p[c] * chart_h) <= 2.5, (k, c, height, p[c] * chart_h)
            if c == p.argmax() and p[c] > 0.05:
                assert (np.abs(col[chart_h - 3].astype(int) - accent).max() <= 2)
        assert p.argmax() == mnist.test_labels[k] or k == 8


def test_training_steps_visibly_change_the_w1_mosaic(small):
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    model = fresh_model(7)
    canvas, scales, fwd, mv = build(model)
    run(scales.dispatches() + [mv.mosaic.dispatch])
    before = mv.mosaic.texture.read().astype(int)
    data = GpuDataset(small)
    run_ = Run(model, data, Recipe(epochs=1, batch_size=32, lr=0.5, schedule="constant", momentum=0.0, shift=0))
    dev = get_device()
    enc = dev.device.create_command_encoder()
    run_.advance(enc, 8)
    Program(scales.dispatches() + [mv.mosaic.dispatch]).encode(enc)
    dev.submit(enc)
    after = mv.mosaic.texture.read().astype(int)
    changed = (np.abs(after - before).max(axis=2) > 8).mean()
    assert changed > 0.2, changed


def test_mosaic_firing_mode_dims_silent_units():
    model = fresh_model(9)
    canvas, scales, fwd, mv = build(model)
    from mnist_viz.viz.demo import demo_segments
    for a, b in demo_segments(canvas.width, canvas.height):
        canvas.stroke(a, b)
    mv.mosaic_mode = 2
    run(canvas.dispatches() + fwd.dispatches() + scales.dispatches() + [mv.mosaic.dispatch])
    tex = mv.mosaic.texture.read().astype(int)
    h = fwd.activations[0].to_numpy()[0]
    silent, firing = np.argmin(h), np.argmax(h)
    assert h[silent] == 0 and h[firing] > 0

    def energy(j):
        cy, cx = divmod(j, 16)
        tile = tex[1 + cy * 29: 29 + cy * 29, 1 + cx * 29: 29 + cx * 29, :3]
        return np.abs(tile - colormap.to_u8(colormap.BG)).mean()
    assert energy(firing) > 2 * energy(silent)


def test_curves_confusion_and_mistakes_draw_from_gpu_metrics(small):
    """Guards against views that draw the wrong buffer or the wrong cells: the expected confusion
    matrix and mistakes come from a numpy forward pass, not from the GPU buffers the views draw."""
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    from mnist_viz.viz.dataviews import ConfusionView, DatasetView, MistakesView
    from mnist_viz.viz.glyphs import upload_names
    from mnist_viz.viz.plots import CurvePlots
    digits = [str(k) for k in range(10)]
    names = upload_names(digits)
    model = fresh_model(11)
    data = GpuDataset(small)
    run_ = Run(model, data, Recipe(epochs=1, batch_size=32))
    m = run_.metrics
    plots, conf = CurvePlots(m), ConfusionView(m, names, digits)
    mistakes, browser = MistakesView(m, data, model, names, digits), DatasetView(data, names, digits)
    dev = get_device()
    enc = dev.device.create_command_encoder()
    run_.advance(enc, 8)
    run_.encode_evaluation(enc)
    Program(plots.dispatches() + conf.dispatches() + mistakes.dispatches(0)
            + browser.dispatches("test", 0, None)).encode(enc)
    dev.submit(enc)
    assert m.steps == 8 and m.evaluations == 1
    sd = model.state_dict()
    x = small.test_images.reshape(len(small.test_images), -1) / 255.0
    pred = (np.maximum(x @ sd["0.weight"].T + sd["0.bias"], 0) @ sd["2.weight"].T + sd["2.bias"]).argmax(1)
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (small.test_labels.astype(int), pred), 1)
    n_wrong = int((pred != small.test_labels).sum())
    bg = colormap.to_u8(colormap.BG).astype(int)
    loss = plots.loss.texture.read()[..., :3].astype(int)
    blue = (loss[..., 2] > 150) & (loss[..., 0] < 140)
    assert blue.any(axis=0).mean() > 0.9          # the loss line spans the width
    # Confusion: diagonal cells green in proportion to the counts, zero-count cells dim.
    cm = conf.texture.read()[..., :3].astype(int)
    for t in range(10):
        for p in range(10):
            px = cm[16 + t * 18 + 2, conf.margin_x + p * 32 + 2]
            if t == p and confusion[t, p] > 0:
                assert px[1] > px[0] + 20, (t, p, px)
            elif confusion[t, p] > 0:
                assert px[0] > px[1] + 20, (t, p, px)
    # Mistakes: as many non-empty tiles as misclassified digits (up to a page).
    tiles = mistakes.texture.read()[..., :3].astype(int)
    g = mistakes.grid
    x0 = 2 + (g.tile_w - g.iw) // 2
    filled = sum(np.abs(tiles[2 + (t // g.cols) * g.ph + 14, x0 + (t % g.cols) * g.pw: x0 + (t % g.cols) * g.pw + 28]
                        - bg).max() > 30 for t in range(g.page))
    assert filled == min(n_wrong, g.page) > 0
    # Dataset browser: tile 0 is test image 0.
    b = browser.texture.read()[..., :3].astype(int)
    img = colormap.to_u8(colormap.grey(small.test_images[0] / 255)).astype(int)
    gb = browser.grid
    x0 = 2 + (gb.tile_w - gb.iw) // 2
    assert np.abs(b[2:30, x0:x0 + 28] - img).max() <= 1


def test_prediction_badge_shows_the_winning_digit_in_the_same_frame():
    from mnist_viz.compute.model_io import default_model_path, load_model
    from mnist_viz.viz.demo import demo_segments
    from mnist_viz.viz.views import PredictionBadge
    if not default_model_path().exists():
        pytest.skip("no pretrained model")
    model, _ = load_model(default_model_path())
    canvas, scales, fwd, mv = build(model)
    badge = PredictionBadge(fwd, canvas.norm)
    run(canvas.dispatches() + fwd.dispatches() + [badge.dispatch])
    assert (badge.texture.read()[..., :3] == colormap.to_u8(colormap.BG)).all()   # no ink: blank
    for a, b in demo_segments(canvas.width, canvas.height):
        canvas.stroke(a, b)
    run(canvas.dispatches() + fwd.dispatches() + [badge.dispatch])
    tex = badge.texture.read()[..., :3].astype(int)
    # The big '2' of the 5x7 font (shaders/font.wgsl), 8 texels a font pixel, at x = 8.
    rows = [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F]
    top = (tex.shape[0] - 7 * 8) // 2
    accent = colormap.to_u8(np.array([0.36, 0.82, 0.52])).astype(int)
    for r, bits in enumerate(rows):
        for c in range(5):
            px = tex[top + r * 8 + 4, 8 + c * 8 + 4]
            on = bool(bits >> (4 - c) & 1)
            assert (np.abs(px - accent).max() <= 3) == on, (r, c, px)


@pytest.mark.parametrize("classes", [2, 10, 11, 20, 100, 101, 256])
def test_the_badge_fits_every_class_number_and_its_percentage(classes):
    """Guards against a two-digit class pushing its probability off the badge (20 classes: a big
    '14' and a lone '5' without its '%', read as 5%: a first user's trial). The layout of
    shaders/views.wgsl prediction_badge: a margin of one scale, the number, one scale, then
    '100%' at scale 2 (a 5-pixel glyph and 1 pixel of advance); MNIST's digits keep scale 8."""
    from mnist_viz.viz.views import badge_digit_scale
    s, digits = badge_digit_scale(classes, 116), len(str(classes - 1))
    right = s + (digits * 6 * s - s) + s + (3 * 6 * 2 - 2) + 2 + 5 * 2
    assert right <= 116 and 7 * s <= 64, (classes, s, right)
    assert badge_digit_scale(10, 116) == 8


def test_tile_labels_of_small_images_are_readable():
    """Guards against the dataset browser cutting class names to a letter and a half under 8 x 8
    images (a first user's trial: 'r:', 'mi'): a tile may widen to LABEL_MIN_CHARS characters of
    label, so 'middle' fits; 28 x 28 digits keep their 28-pixel tiles, and a long name is still cut."""
    from mnist_viz.viz import glyphs
    from mnist_viz.viz.dataviews import LABEL_SCALE, TileGrid
    small = TileGrid(8, 8, ["left", "middle", "right"])
    assert small.tile_w >= glyphs.text_width("middle", LABEL_SCALE) and small.lines == 1
    assert TileGrid(28, 28, [str(d) for d in range(10)]).tile_w == 28
    assert TileGrid(28, 28, [str(d) for d in range(10)], arrow=True).tile_w == 40     # as before
    assert TileGrid(8, 8, ["a very long class name"]).tile_w < glyphs.text_width("a very long class name", LABEL_SCALE)
