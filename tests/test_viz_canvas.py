"""The paint canvas and the MNIST normaliser, on the GPU (reads back only in the tests)."""
import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from mnist_viz.compute.program import Program


def run(dispatches):
    dev = get_device()
    enc = dev.device.create_command_encoder()
    Program(dispatches).encode(enc)
    dev.submit(enc)


@pytest.fixture()
def canvas():
    from mnist_viz.viz.canvas import PaintCanvas
    return PaintCanvas()


def read_canvas(c):
    dev = get_device()
    return np.frombuffer(dev.read(c.canvas), np.float32)[: c.width * c.height].reshape(c.height, c.width)


def read_input(c):
    return c.x.to_numpy().reshape(c.image_h, c.image_w)


def centre_of_mass(img):
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    m = img.sum()
    return (xs * img).sum() / m + 0.5, (ys * img).sum() / m + 0.5


def test_stroke_lands_where_painted_and_shows_in_the_canvas_texture(canvas):
    from mnist_viz.viz.views import CanvasView
    view = CanvasView(canvas)
    view.set_show_box(False)
    canvas.stroke((20.0, 30.0), (70.0, 30.0), radius=3.0)
    run(canvas.dispatches() + [view.dispatch])
    ink = read_canvas(canvas)
    assert ink[30, 20:71].min() > 0.99            # along the segment
    assert ink[30, 45] == pytest.approx(1.0)
    assert ink[26:35, 45].sum() > 5               # a round brush of radius 3 around it
    assert ink[40:, :].max() == 0 and ink[:20, :].max() == 0   # nothing elsewhere
    assert 0 < ink[33, 45] < 1 or 0 < ink[34, 45] < 1          # anti-aliased rim
    tex = view.texture.read()
    bright = tex[..., :3].mean(axis=2) > 200
    assert bright[30, 25:66].all()
    assert not bright[60:, :].any() and not bright[:, 90:].any()


def test_brush_radius_sets_the_stroke_width(canvas):
    """Guards against paint.wgsl ignoring the segment's radius (every other canvas test paints
    with one radius): the same horizontal segment painted with radius 2 and radius 6 covers,
    across its middle, the pixels whose centres lie within the radius (4 and 12 of them), and
    its ink adds up to the area of the capsule, 2 r L + pi r^2."""
    ys = np.arange(canvas.height) + 0.5
    for radius in (2.0, 6.0):
        canvas.clear()
        canvas.stroke((20.0, 56.0), (90.0, 56.0), radius=radius)
        run(canvas.dispatches())
        ink = read_canvas(canvas)
        inside = np.abs(ys - 56.0) < radius            # pixel centres within the radius of the line
        np.testing.assert_array_equal(ink[:, 55] > 0.5, inside, err_msg=f"radius {radius}")
        area = 2 * radius * 70 + np.pi * radius ** 2
        assert ink.sum() == pytest.approx(area, rel=0.03), radius


def test_erasing_removes_ink_and_clear_empties_the_canvas(canvas):
    canvas.stroke((10.0, 50.0), (100.0, 50.0), radius=5.0)
    run(canvas.dispatches())
    canvas.stroke((50.0, 30.0), (50.0, 70.0), erase=True, radius=6.0)
    run(canvas.dispatches())
    ink = read_canvas(canvas)
    assert ink[50, 20] == pytest.approx(1.0) and ink[50, 90] == pytest.approx(1.0)
    assert ink[50, 48:53].max() == 0.0
    canvas.clear()
    run(canvas.dispatches())
    assert read_canvas(canvas).max() == 0.0
    assert read_input(canvas).max() == 0.0


def test_normaliser_centres_a_small_off_centre_digit(canvas):
    """A small '2' in the top-left corner comes out like an MNIST digit: bounding box
    fitted into 20 x 20, centre of mass on the centre pixel (14, 14), i.e. at 14.5."""
    from mnist_viz.viz.demo import demo_segments
    for a, b in demo_segments(canvas.width, canvas.height, box=(0.04, 0.06, 0.28)):
        canvas.stroke(a, b, radius=2.5)
    canvas.normalise = False
    run(canvas.dispatches())
    plain = read_input(canvas)
    cx, cy = centre_of_mass(plain)
    assert cx < 8 and cy < 8                        # as drawn: small, top left
    canvas.normalise = True
    run(canvas.dispatches())
    x = read_input(canvas)
    cx, cy = centre_of_mass(x)
    assert abs(cx - 14.5) < 0.1 and abs(cy - 14.5) < 0.1
    rows, cols = np.nonzero(x > 0.05)
    extent = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    assert 19 <= extent <= 22                       # the longer side fills the 20-pixel box
    assert x.max() > 0.9 and x.min() >= 0.0
    norm = np.frombuffer(get_device().read(canvas.norm), np.float32)
    assert norm[0] == 1.0 and norm[8] == pytest.approx(20 / max(norm[3] - norm[1], norm[4] - norm[2]))


def test_empty_canvas_gives_a_blank_input(canvas):
    run(canvas.dispatches())
    assert read_input(canvas).max() == 0.0
    assert np.frombuffer(get_device().read(canvas.norm), np.float32)[0] == 0.0


def gathered(image):
    """An image as the evaluation's gather converts it (byte * (1 / 255) in f32)."""
    return image.astype(np.float32) * np.float32(1 / 255)


def read_sample(c):
    """The canvas's record of the sample feeding the network: (index, label) or None."""
    word = int(np.frombuffer(get_device().read(c.sample), np.uint32)[0])
    return None if word == 0xFFFFFFFF else (word >> 8, word & 0xFF)


def test_a_loaded_sample_feeds_the_network_its_own_pixels_until_painted_over(canvas, mnist):
    """Loading test image k: the network's input is exactly that image as the evaluation
    gathers it (byte / 255), whatever the normalise mode; the canvas shows it upsampled.
    Guards against re-normalising the upsampled copy (the gallery said "5 -> 6", the canvas
    then read the digit as a 5). A stroke over it hands the input back to the canvas."""
    from mnist_viz.compute.data import GpuDataset
    import dataclasses
    small = dataclasses.replace(mnist, train_images=mnist.train_images[:64], train_labels=mnist.train_labels[:64],
                                test_images=mnist.test_images[:16], test_labels=mnist.test_labels[:16])
    data = GpuDataset(small)
    canvas.attach_dataset(data)
    for k, normalise in ((0, True), (3, False), (7, True)):
        canvas.normalise = normalise
        canvas.load_sample("test", k)
        run(canvas.dispatches())
        np.testing.assert_array_equal(read_input(canvas), gathered(mnist.test_images[k]))
        assert canvas.loaded == ("test", k) and read_sample(canvas) == (k, mnist.test_labels[k])
        big = read_canvas(canvas)
        assert big.max() > 0.9 and big.shape == (canvas.height, canvas.width)
    canvas.normalise = not canvas.normalise      # a mode change does not replace the sample's pixels
    run(canvas.dispatches())
    np.testing.assert_array_equal(read_input(canvas), gathered(mnist.test_images[7]))
    canvas.stroke((5.0, 5.0), (20.0, 5.0), radius=3.0)
    run(canvas.dispatches())
    assert canvas.loaded is None and read_sample(canvas) is None
    assert not np.array_equal(read_input(canvas), gathered(mnist.test_images[7]))


@pytest.mark.parametrize("box", [(0.04, 0.06, 0.28), (0.05, 0.05, 0.9), (0.55, 0.5, 0.42)],
                         ids=["small-top-left", "large", "bottom-right"])
def test_pretrained_model_reads_a_drawn_two_wherever_it_is_drawn(canvas, box):
    from mnist_viz.compute.model_io import default_model_path, load_model
    from mnist_viz.viz.demo import demo_segments
    from mnist_viz.viz.inference import Forward
    if not default_model_path().exists():
        pytest.skip("no pretrained model")
    model, _ = load_model(default_model_path())
    fwd = Forward(model, canvas.x)
    for a, b in demo_segments(canvas.width, canvas.height, box=box):
        canvas.stroke(a, b, radius=max(2.0, 9.0 * box[2]))
    run(canvas.dispatches() + fwd.dispatches())
    p = fwd.probs.to_numpy()[0]
    assert p.argmax() == 2, p.round(3)


def test_a_mistake_is_loaded_by_its_slot_without_the_index_leaving_the_gpu(canvas, mnist):
    """'mistakes' entry k loads test image wrong[k]; the CPU never learns which image that is."""
    import dataclasses
    import struct
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.metrics import RunMetrics
    small = dataclasses.replace(mnist, train_images=mnist.train_images[:64], train_labels=mnist.train_labels[:64],
                                test_images=mnist.test_images[:32], test_labels=mnist.test_labels[:32])
    data = GpuDataset(small)
    hist = RunMetrics(10)
    dev = get_device()
    dev.queue.write_buffer(hist.wrong, 0, struct.pack("<3I", 17, 5, 23))
    dev.queue.write_buffer(hist.counters, 0, struct.pack("<3I", 29, 32, 3))
    canvas.attach_dataset(data, hist)
    canvas.normalise = False
    for k, index in ((0, 17), (2, 23)):
        canvas.load_sample("mistakes", k)
        run(canvas.dispatches())
        np.testing.assert_array_equal(read_input(canvas), gathered(mnist.test_images[index]))
        assert read_sample(canvas) == (index, mnist.test_labels[index])   # for the readout only
    canvas.load_sample("mistakes", 3)   # past the misclassified count: a blank canvas
    run(canvas.dispatches())
    assert read_input(canvas).max() == 0.0 and read_sample(canvas) is None
