"""Saliency (viz/saliency.py, shaders/saliency.wgsl): the traced input gradient equals
finite differences of the class score (an MLP and a CNN), the overlay shows its sign
in colour where the input pixel lands on the canvas, the training's gradients are left
alone, and the push raises the class's probability."""
import numpy as np
import pytest

from mnist_viz.compute.device import get_device


def run(dispatches) -> None:
    from mnist_viz.compute.program import Program
    dev = get_device()
    enc = dev.device.create_command_encoder()
    Program(dispatches).encode(enc)
    dev.submit(enc)


def saliency_of(model, xv: np.ndarray, image: tuple[int, int], classes: int, target, scale: int = 4):
    from mnist_viz.compute.tensor import Tensor
    from mnist_viz.viz.saliency import Saliency
    x = Tensor.from_numpy(xv[None].astype(np.float32))
    norm = get_device().buffer(64, "test.norm")          # zeros: no ink measured -> the plain mapping
    s = Saliency(model, x, norm, image, (image[0] * scale, image[1] * scale), classes)
    s.set_target(target)
    run(s.map_dispatches(plain=True, centred=False, key=0))
    return s, x


def central_differences(f, x: np.ndarray, eps: float) -> np.ndarray:
    return np.array([(f(x + e * eps) - f(x - e * eps)) / (2 * eps) for e in np.eye(x.size)])


def test_mlp_saliency_equals_finite_differences_of_the_logit(rng):
    """Guards against a wrong backward through the traced program (a missing ReLU mask, the
    seed on the wrong logit, a transposed weight): the gradient on the GPU equals central
    differences of numpy's class-2 logit at the same input, for a small MLP."""
    from mnist_viz.compute.nn import mlp
    model = mlp([16, 8, 4], seed=3)
    xv = rng.uniform(0, 1, 16)
    s, _ = saliency_of(model, xv, (4, 4), 4, target=2)
    sd = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    logit = lambda v: (np.maximum(v @ sd["0.weight"].T + sd["0.bias"], 0) @ sd["2.weight"].T + sd["2.bias"])[2]
    fd = central_differences(logit, xv, 1e-5)
    np.testing.assert_allclose(s.grad.to_numpy()[0], fd, atol=1e-5 * np.abs(fd).max() + 1e-7)


def test_cnn_saliency_equals_finite_differences(rng, torch):
    """Guards against the gradient stopping at a CNN's input (the [B, D] -> [B, 1, H, W]
    view that must pass it back) or a wrong conv / max-pool backward: equal to central
    differences of PyTorch's float64 class-1 logit."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.nn import Sequential
    F = torch.nn.functional
    model = Sequential(parse("Conv2d(1,2,3),ReLU(),MaxPool2d(2),Flatten(),Linear(18,3)", image_shape=(8, 8)), seed=1)
    xv = rng.uniform(0, 1, 64)
    s, _ = saliency_of(model, xv, (8, 8), 3, target=1)
    sd = {k: torch.tensor(v, dtype=torch.float64) for k, v in model.state_dict().items()}

    def logit(v):
        t = torch.tensor(v, dtype=torch.float64).reshape(1, 1, 8, 8)
        h = F.max_pool2d(torch.relu(F.conv2d(t, sd["0.weight"], sd["0.bias"])), 2)
        return float((h.reshape(1, -1) @ sd["4.weight"].T + sd["4.bias"])[0, 1])
    fd = central_differences(logit, xv, 1e-5)
    np.testing.assert_allclose(s.grad.to_numpy()[0], fd, atol=1e-5 * np.abs(fd).max() + 1e-7)


def test_predicted_class_is_the_default_target(rng):
    """Guards against the 'predicted' setting explaining class 0 (or another fixed class):
    with no class chosen, the map is the gradient of the largest logit."""
    from mnist_viz.compute.nn import mlp
    model = mlp([16, 8, 4], seed=5)
    xv = rng.uniform(0, 1, 16)
    s, x = saliency_of(model, xv, (4, 4), 4, target=None)
    sd = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    logits = np.maximum(xv @ sd["0.weight"].T + sd["0.bias"], 0) @ sd["2.weight"].T + sd["2.bias"]
    best = int(np.argmax(logits))
    expected, _ = saliency_of(model, xv, (4, 4), 4, target=best)
    np.testing.assert_allclose(s.grad.to_numpy(), expected.grad.to_numpy(), rtol=1e-6)


def test_training_gradients_and_flags_are_left_alone(rng):
    """Guards against the saliency program writing the training's gradient arena (the
    parameters traced as requiring grad) or leaving the parameters marked as not
    requiring grad (training would then stop learning)."""
    from mnist_viz.compute.nn import mlp
    model = mlp([16, 8, 4], seed=3)
    marker = np.full(model.arena.size, 7.0, np.float32)
    get_device().write(model.arena.grad_buffer, marker)
    saliency_of(model, rng.uniform(0, 1, 16), (4, 4), 4, target=1)
    raw = np.frombuffer(get_device().read(model.arena.grad_buffer), np.float32)[: model.arena.size]
    np.testing.assert_array_equal(raw, marker)
    assert all(p.requires_grad for p in model.parameters())


def test_overlay_is_red_where_the_gradient_raises_the_score_blue_where_it_lowers(rng):
    """Guards against a mis-mapped or sign-swapped overlay: each canvas pixel shows the
    gradient of the input pixel it was downsampled into (a loaded sample: 4 canvas
    pixels per input pixel), red where positive and blue where negative, opaque where
    |g| is at least half the largest."""
    from mnist_viz.compute.nn import mlp
    model = mlp([64, 8, 3], seed=2, image_shape=(8, 8))
    s, _ = saliency_of(model, rng.uniform(0, 1, 64), (8, 8), 3, target=0)
    g = s.grad.to_numpy().reshape(8, 8)
    img = s.texture.read().astype(int)
    assert img.shape == (32, 32, 4)
    per_pixel = g.repeat(4, 0).repeat(4, 1)
    strong = np.abs(per_pixel) >= 0.5 * np.abs(g).max()
    red = img[..., 0] > img[..., 2]
    assert strong.any() and (red[strong] == (per_pixel[strong] > 0)).all()
    assert (img[..., 3][strong] >= 180).all()
    weak = np.abs(per_pixel) < 0.05 * np.abs(g).max()
    assert (img[..., 3][weak] < 30).all()


def test_overlay_follows_the_normalisation_onto_the_canvas():
    """Guards against the overlay drawn as if the input were the whole canvas while the
    normaliser scaled and moved the digit: a canvas point maps to the input pixel
    centre + (p - centre of mass) * scale, as normalize.wgsl resamples it."""
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.tensor import Tensor
    from mnist_viz.viz.saliency import Saliency
    model = mlp([64, 4, 2], seed=0, image_shape=(8, 8))
    x = Tensor.from_numpy(np.full((1, 64), 0.5, np.float32))
    norm = get_device().upload(np.array([1, 0, 0, 0, 0, 1, 20.0, 12.0, 0.5] + [0] * 7, np.float32))
    s = Saliency(model, x, norm, (8, 8), (32, 32), 2)
    s.set_target(1)
    run(s.map_dispatches(plain=False, centred=True, key=0))
    g = s.grad.to_numpy().reshape(8, 8)
    img = s.texture.read().astype(int)
    k = np.unravel_index(np.argmax(np.abs(g)), g.shape)       # (row, column) of the largest |g|
    for cy in range(32):
        for cx in range(32):
            o = np.array([4.5, 4.5]) + (np.array([cx + 0.5, cy + 0.5]) - [20.0, 12.0]) * 0.5
            inside = (0 <= o).all() and (o < 8).all()
            if inside and (int(o[1]), int(o[0])) == k:
                assert img[cy, cx, 3] >= 180 and (img[cy, cx, 0] > img[cy, cx, 2]) == (g[k] > 0), (cx, cy)
            if not inside:
                assert img[cy, cx, 3] == 0, (cx, cy)


def test_push_raises_the_class_probability_and_keeps_pixels_in_range(mnist):
    """Guards against ascent on the wrong sign, the wrong class, or an unclamped image: a
    push toward 3 on a test '7' raises the pretrained network's probability of 3 from
    nearly nothing to the most likely class, every pixel staying in [0, 1]."""
    from mnist_viz.compute import ops
    from mnist_viz.compute.model_io import default_model_path, load_model
    model, _ = load_model(default_model_path())
    assert mnist.test_labels[0] == 7
    s, x = saliency_of(model, mnist.test_images[0].reshape(-1) / 255.0, (28, 28), 10, target=3)
    probs = lambda: ops.softmax(model.forward(x)).to_numpy()[0]
    before = probs()
    s.push(3, steps=12)
    frames = 0
    while s.pushing is not None or frames == 0:
        run(s.push_dispatches())
        frames += 1
    after = probs()
    assert frames >= 4                      # a few steps a frame: watchable, not one jump
    assert before[3] < 0.01 and after[3] > 0.5 and after.argmax() == 3, (before, after)
    xv = x.to_numpy()
    assert xv.min() >= 0.0 and xv.max() <= 1.0


def test_window_map_is_of_the_input_of_the_same_frame(tmp_path):
    """Guards against the map lagging the canvas (computed before the stroke's
    normalisation, or not recomputed when the canvas changed): after each frame with new
    strokes, the map is the gradient of the predicted class's logit at that frame's input,
    computed by numpy from the input as it is."""
    from rendercanvas.offscreen import RenderCanvas
    from mnist_viz.viz.actions import Action
    from mnist_viz.viz.app import App, AppConfig
    app = App(RenderCanvas(size=(900, 560), pixel_ratio=1.0),
              AppConfig(background_load=False, limit=64, test_limit=64, autosave_dir=tmp_path, paint_demo=True))
    try:
        assert app.wait_for_data()
        app.actions.emit(Action.SET_SALIENCY, True)
        sd = {k: v.astype(np.float64) for k, v in app.model.state_dict().items()}
        seen = set()
        for _ in range(3):
            app.draw_offscreen()
            app.fence.drain()
            x = app.canvas.x.to_numpy()[0].astype(np.float64)
            pre = x @ sd["0.weight"].T + sd["0.bias"]
            logits = np.maximum(pre, 0) @ sd["2.weight"].T + sd["2.bias"]
            k = int(np.argmax(logits))
            expected = (sd["2.weight"][k] * (pre > 0)) @ sd["0.weight"]
            np.testing.assert_allclose(app.saliency.grad.to_numpy()[0], expected, atol=1e-4 * np.abs(expected).max())
            seen.add(x.tobytes())
        assert len(seen) == 3            # the input did change from frame to frame (the demo strokes)
    finally:
        app.fence.drain()
        app.rc.close()
