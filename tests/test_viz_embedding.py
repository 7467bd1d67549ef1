"""The live embedding (viz/embedding.py, shaders/embedding.wgsl): the projection is
numpy's PCA of the same activations, the scatter puts each class's colour where the
points project, the pick finds the point under the cursor on the GPU and publishes it
in the readout's `hover` word, and the window shows all of it with zero readback."""
import math
import time

import numpy as np
import pytest

from mnist_viz.compute.device import get_device

N_TEST = 500


@pytest.fixture(scope="module")
def setup(mnist):
    """The pretrained MLP over the first N_TEST test digits, in chunks of 128 (the last one
    partial), refreshed with enough iterations to converge."""
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.metrics import RunMetrics
    from mnist_viz.compute.model_io import default_model_path, load_model
    from mnist_viz.compute.program import Program
    from mnist_viz.compute.tensor import Tensor
    from mnist_viz.viz.embedding import Embedding
    from mnist_viz.viz.structs import READOUT
    dev = get_device()
    model, _ = load_model(default_model_path())
    data = GpuDataset(mnist, limit=64, test_limit=N_TEST)
    canvas_hidden = Tensor((1, 128), label="test.canvas_hidden")
    readout = dev.buffer(READOUT.size, "test.readout")
    emb = Embedding(model, data, RunMetrics(10).state, canvas_hidden, readout, chunk=128)
    enc = dev.device.create_command_encoder()
    Program(emb.refresh_dispatches(iterations=120)).encode(enc)
    dev.submit(enc)
    emb.refreshes = 1
    return emb, model, canvas_hidden, readout, mnist


def numpy_pca(acts: np.ndarray):
    """(projections onto the top two components, their variances) in float64."""
    a = acts.astype(np.float64)
    c = a - a.mean(0)
    w, v = np.linalg.eigh(c.T @ c / len(a))
    return c @ v[:, ::-1][:, :2], w[::-1][:2]


def gpu_proj(emb) -> np.ndarray:
    return np.frombuffer(get_device().read(emb.proj), np.float32)[: emb.n * 2].reshape(-1, 2)


def test_activations_are_the_last_hidden_layer_of_every_test_digit(setup):
    """Guards against a chunk stored at the wrong rows (base offset, the partial last chunk)
    or the wrong layer (the logits, the input): the [N, H] buffer equals numpy's ReLU(x W1 + b1)."""
    emb, model, _, _, mnist = setup
    x = mnist.test_images[:N_TEST].reshape(N_TEST, -1).astype(np.float32) / 255
    sd = model.state_dict()
    hidden = np.maximum(x @ sd["0.weight"].T + sd["0.bias"], 0)
    assert len(emb.chunks) == 4
    np.testing.assert_allclose(emb.acts.to_numpy(), hidden, atol=2e-4)


def test_projection_equals_numpy_pca_up_to_sign(setup):
    """Guards against a wrong power iteration or deflation (the second component not made
    orthogonal to the first, the mean not removed, an eigenvalue mis-scaled): each GPU
    projection equals numpy's eigenvector projection of the same activations, up to sign."""
    emb, *_ = setup
    proj, var = numpy_pca(emb.acts.to_numpy())
    gpu = gpu_proj(emb)
    for k in range(2):
        sign = np.sign(proj[:, k] @ gpu[:, k])
        assert np.abs(proj[:, k] * sign - gpu[:, k]).max() < 1e-3 * np.abs(proj[:, k]).max(), k
    basis = np.frombuffer(get_device().read(emb.basis), np.float32)
    np.testing.assert_allclose(basis[:2], var, rtol=1e-3)


def _settled_scatter(emb, cursor=None, marker=False):
    """Draw the scatter with the points at their targets (the move over) and read it."""
    later = time.perf_counter() + 100.0
    emb._moved_at = later - 10.0
    from mnist_viz.compute.program import Program
    dev = get_device()
    enc = dev.device.create_command_encoder()
    Program(emb.dispatches(0, 0, later, True, cursor, marker, object())).encode(enc)
    dev.submit(enc)
    return emb.texture.read()


def pixel_of(p: np.ndarray, size: int) -> np.ndarray:
    """embedding.wgsl's to_px: normalised position -> integer texture pixel (x, y)."""
    half = size * 0.5
    return np.floor(np.stack([half + p[:, 0] * half * 0.94, half - p[:, 1] * half * 0.94], 1)).astype(int)


def test_scatter_has_each_points_class_colour_where_it_projects(setup):
    """Guards against points drawn at the wrong place (axes swapped, y not flipped, the
    normalisation off) or in the wrong colour (label bytes misread): at numpy's projected
    position of nearly every point, within its 3 x 3 dot, is its class's colour."""
    from mnist_viz.viz.embedding import class_colour
    emb, *_, mnist = setup
    emb._version = 0          # no refresh due in this draw
    img = _settled_scatter(emb)
    proj, var = numpy_pca(emb.acts.to_numpy())
    proj *= np.sign(np.sum(proj * gpu_proj(emb), 0))
    px = pixel_of(proj / (3 * np.sqrt(var)), emb.size)
    labels = mnist.test_labels[:N_TEST]
    hits = 0
    for (x, y), label in zip(px, labels):
        if not (1 <= x < emb.size - 1 and 1 <= y < emb.size - 1):
            continue
        patch = img[y - 1:y + 2, x - 1:x + 2, :3].reshape(-1, 3).astype(int)
        hits += np.any(np.abs(patch - class_colour(int(label))).max(1) <= 2)
    assert hits >= 0.95 * N_TEST, hits
    # And the colours are the classes', not one colour for all: every class's colour is there.
    for c in set(int(label) for label in labels):
        assert np.any(np.abs(img[..., :3].astype(int) - class_colour(c)).max(-1) <= 2), c


def test_pick_finds_the_point_under_the_cursor_and_publishes_it(setup):
    """Guards against the pick reading the positions differently from the drawing, a wrong
    readout word, or a stale result: with the cursor on a point's pixel the readout's
    `hover` word is that point's index + 1 (the nearest of points on the same pixel, lowest
    index), a ring is drawn around it and the digit texture is its image; far from all
    points the word is 0."""
    from mnist_viz.viz.structs import READOUT
    emb, _, _, readout, mnist = setup
    emb._version = 0
    pos = np.frombuffer(get_device().read(emb.pos), np.float32)[: emb.n * 4].reshape(-1, 4)[:, 2:]
    px = pixel_of(pos, emb.size)
    i = 123
    same = [j for j in range(emb.n) if (px[j] == px[i]).all()]
    img = _settled_scatter(emb, cursor=(px[i][0] + 0.5, px[i][1] + 0.5))
    word = np.frombuffer(get_device().read(readout), np.uint32)[READOUT.index("hover")]
    assert word == min(same) + 1
    x, y = px[min(same)]
    ring = img[y - 6:y + 7, x - 6:x + 7, :3]
    assert (ring == 255).all(-1).sum() >= 12
    np.testing.assert_array_equal(emb.digit.read()[..., 0], mnist.test_images[min(same)])
    _settled_scatter(emb, cursor=(-50.0, -50.0))
    assert np.frombuffer(get_device().read(readout), np.uint32)[READOUT.index("hover")] == 0


def test_marker_is_the_canvas_digit_projected_with_the_same_components(setup):
    """Guards against the canvas's marker projected without the mean, with other
    components or another scale: given the hidden activation of test digit k, the marker's
    white cross is centred on digit k's point."""
    emb, _, canvas_hidden, _, _ = setup
    emb._version = 0
    k = 7
    canvas_hidden.write(emb.acts.to_numpy()[k])
    pos = np.frombuffer(get_device().read(emb.pos), np.float32)[: emb.n * 4].reshape(-1, 4)[:, 2:]
    x, y = pixel_of(pos, emb.size)[k]
    img = _settled_scatter(emb, marker=True)
    white = (img[..., :3] == 255).all(-1)
    assert white[y, x - 6:x + 7].all() and white[y - 6:y + 7, x].all()
    img = _settled_scatter(emb, marker=False)
    assert not (img[y, x - 6:x + 7, :3] == 255).all(-1).all()


def test_refresh_is_due_every_few_hundred_steps_or_on_other_weight_changes(setup):
    """Guards against a refresh every frame of training (10,000 forward passes each) or
    never: due after REFRESH_STEPS steps, or when the weights changed without steps."""
    from mnist_viz.viz.embedding import REFRESH_STEPS
    emb, *_ = setup
    emb._version, emb._steps = 5, 1000
    assert not emb.due(5, 2000)
    assert not emb.due(6, 1000 + REFRESH_STEPS - 1)
    assert emb.due(6, 1000 + REFRESH_STEPS)
    assert emb.due(6, 1000)        # a load: new weights, no steps
    assert emb.due(6, 10)          # a reset


def test_window_embedding_and_saliency_zero_readback(tmp_path, wgpu_reads):
    """Guards against any read-back with the new views open (the 10,000 positions, the
    activations, the gradient): while training, painting, pushing and hovering, wgpu
    transfers only the 64-byte stats pack (and each offscreen frame's own download); the
    hovered point comes back in that pack, and a click loads it into the canvas. The
    embedding is built only once its tab is shown."""
    from rendercanvas.offscreen import RenderCanvas
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.viz.actions import Action
    from mnist_viz.viz.app import App, AppConfig
    from mnist_viz.viz.pacing import SPEEDS
    from mnist_viz.viz.readout import READ_INTERVAL_S
    from mnist_viz.viz.session import WatchSettings
    from mnist_viz.viz.structs import READOUT
    app = App(RenderCanvas(size=(1100, 700), pixel_ratio=1.0),
              AppConfig(background_load=False, limit=256, test_limit=300, autosave_dir=tmp_path,
                        recipe=Recipe(batch_size=16), watch=WatchSettings(speed=[v for v, _ in SPEEDS].index(1)), paint_demo=True))
    try:
        assert app.wait_for_data()
        app.draw_offscreen()
        assert app.embedding is None        # nothing is built (or computed) for a view never shown
        app.ui.select_tabs.add("Embedding")
        app.actions.emit(Action.SET_SALIENCY, True)
        app.actions.emit(Action.SET_SALIENCY_CLASS, 3)
        for _ in range(3):         # the tab opens, the embedding is built once shown, then drawn
            app.draw_offscreen()
        dev = get_device()
        dev.readback.reset()
        wgpu_reads.reset()
        app.actions.emit(Action.TRAIN)
        app.actions.emit(Action.PUSH_TOWARD, 3)
        x0, y0, x1, y1 = app.ui.embedding_rect
        assert x1 - x0 > 100
        move = dict(event_type="pointer_move", button=0, buttons=(), modifiers=(), ntouches=0, touches={})
        t0 = time.perf_counter()
        for i in range(12):
            a = 2 * math.pi * i / 12
            app.rc.submit_event({**move, "x": x0 + (x1 - x0) * (0.5 + 0.2 * math.cos(a)),
                                 "y": y0 + (y1 - y0) * (0.5 + 0.2 * math.sin(a))})
            app.draw_offscreen()
        elapsed = time.perf_counter() - t0
        assert app.ui.embedding_open and app.embedding.refreshes >= 1
        assert app.metrics.steps > 0 and app.saliency.revision > 0
        reads = wgpu_reads.excluding(wgpu_reads.OFFSCREEN_FRAME)
        assert all(n <= READOUT.size for _, n in reads), reads[:5]
        assert 1 <= len(reads) <= elapsed / READ_INTERVAL_S + 2, (len(reads), elapsed)
        assert all(label == "stats" for label, _ in dev.readback.log), dev.readback.log[:5]
    finally:
        app.fence.drain()
    # Hover a point and wait for the readout to bring its index; a click loads it. Training is
    # paused first and any refresh under way finished, so the points stay where they are read.
    app.actions.emit(Action.PAUSE)
    emb = app.embedding
    for _ in range(50):
        app.draw_offscreen()
        if not emb.refreshing and app.session.status != "running":
            break
    app.fence.drain()
    pos = np.frombuffer(get_device().read(emb.pos), np.float32)[: emb.n * 4].reshape(-1, 4)[:, 2:]
    x, y = pixel_of(pos, emb.size)[42] + 0.5
    sx, sy = x0 + x / emb.size * (x1 - x0), y0 + y / emb.size * (y1 - y0)
    emb._moved_at = -1e9          # the move is over
    app.rc.submit_event({**move, "x": sx, "y": sy})
    wanted = pixel_of(pos, emb.size)[42]
    index = None
    for _ in range(60):            # a readout in flight may still carry the last circle's point
        app.draw_offscreen()
        index = app.readout.values.get("hover_index")
        if index is not None and (pixel_of(pos, emb.size)[index] == wanted).all():
            break
        time.sleep(0.05)
    assert index is not None and (pixel_of(pos, emb.size)[index] == wanted).all(), (index, wanted)
    click = dict(button=1, buttons=(1,), modifiers=(), ntouches=0, touches={}, x=sx, y=sy)
    app.rc.submit_event({"event_type": "pointer_down", **click})
    app.draw_offscreen()
    app.rc.submit_event({"event_type": "pointer_up", **click})
    app.draw_offscreen()
    app.draw_offscreen()
    assert app.canvas.loaded == ("test", index)
    app.fence.drain()
    app.rc.close()
