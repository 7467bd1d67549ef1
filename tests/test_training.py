"""Whole training steps against numpy (both engines); real learning; no readback while training."""
import numpy as np
import pytest

from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.device import get_device
from mnist_viz.compute.nn import mlp
from mnist_viz.compute.recipe import RECIPES, Recipe
from mnist_viz.compute.run import Run


def plain(**kw) -> Recipe:
    """A recipe with every extra off unless asked for (the default recipe has momentum and shifts)."""
    return Recipe(**{"momentum": 0.0, "nesterov": False, "shift": 0, "schedule": "constant", **kw})


def numpy_step(sd, x, y, lr):
    """One SGD step of Linear-ReLU-Linear + mean softmax cross-entropy, float64: the new weights,
    the batch's mean loss and its correct predictions (before the step)."""
    w1, b1, w2, b2 = (sd[k].astype(np.float64) for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    n = len(y)
    h = np.maximum(x @ w1.T + b1, 0)
    z = h @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(n), y]).mean()
    dz = p.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    dh = dz @ w2 * (h > 0)
    new = {"0.weight": w1 - lr * (dh.T @ x), "0.bias": b1 - lr * dh.sum(0),
           "2.weight": w2 - lr * (dz.T @ h), "2.bias": b2 - lr * dz.sum(0)}
    return new, loss, int((z.argmax(1) == y).sum())


@pytest.mark.parametrize("engine", ["graph", "compiled"])
def test_training_steps_match_numpy_including_tail_batch(engine, mnist):
    data = GpuDataset(mnist, limit=90)                   # batch 40: steps of 40, 40, then a tail of 10
    model = mlp([784, 24, 10], seed=2)
    tr = Run(model, data, plain(epochs=1, batch_size=40, lr=0.2), engine=engine)
    assert tr.engine == engine
    sd = model.state_dict()
    tr.run_steps(1)  # writes the epoch permutation, then one step
    perm = np.frombuffer(get_device().read(data.perm), np.uint32)[:90]
    losses = []
    for step in range(3):
        if step:
            tr.run_steps(1)
        rows = perm[step * 40: step * 40 + 40]
        x = mnist.train_images[rows].reshape(len(rows), -1) / 255.0
        sd, loss, _ = numpy_step(sd, x, mnist.train_labels[rows].astype(int), 0.2)
        losses.append(loss)
        got = model.state_dict()
        for k in sd:
            np.testing.assert_allclose(got[k], sd[k], rtol=1e-4, atol=2e-6, err_msg=f"step {step} {k}")
    np.testing.assert_allclose(tr.metrics.read_history(0, 3)[:, 0], losses, rtol=1e-4)


@pytest.mark.parametrize("engine", ["graph", "compiled"])
def test_epoch_loss_and_accuracy_weigh_images_not_steps(engine, mnist):
    """Guards against an epoch's train loss and accuracy (Run.train_means, the CLI's epoch line)
    being the plain mean of its steps: 65 images at batch 64 are a step of 64 and a step of 1,
    and weighing the 1-image step as much as the other, `mnist-viz train` printed 56.25% (no
    k/65). Two epochs (the second's steps are not the run's first) against numpy's mean over
    the epoch's 65 images."""
    data = GpuDataset(mnist, limit=65)
    model = mlp([784, 24, 10], seed=2)
    tr = Run(model, data, plain(epochs=2, batch_size=64, lr=0.2), engine=engine)
    assert tr.engine == engine
    sd = model.state_dict()
    for epoch in range(2):
        first = tr.steps_taken
        tr.run_steps(1)  # writes the epoch's permutation, then its first step
        perm = np.frombuffer(get_device().read(data.perm), np.uint32)[:65]
        tr.run_steps(1)  # the 1-image tail
        loss_sum = correct = 0
        for rows in (perm[:64], perm[64:]):
            x = mnist.train_images[rows].reshape(len(rows), -1) / 255.0
            sd, loss, right = numpy_step(sd, x, mnist.train_labels[rows].astype(int), 0.2)
            loss_sum, correct = loss_sum + loss * len(rows), correct + right
        loss, acc = tr.train_means(first)
        np.testing.assert_allclose(loss, loss_sum / 65, rtol=1e-4, err_msg=f"epoch {epoch + 1}")
        assert abs(acc * 65 - round(acc * 65)) < 1e-4, f"epoch {epoch + 1}: {acc} is no k/65"
        assert abs(acc - correct / 65) <= 1 / 65 + 1e-6, (epoch, acc, correct)  # a float tie at most


def test_evaluation_matches_numpy(mnist):
    data = GpuDataset(mnist, limit=64)
    model = mlp([784, 16, 10], seed=4)
    tr = Run(model, data, plain(epochs=1, batch_size=32))
    r = tr.evaluate()
    sd = model.state_dict()
    x = mnist.test_images.reshape(10000, -1) / 255.0
    z = np.maximum(x @ sd["0.weight"].T + sd["0.bias"], 0) @ sd["2.weight"].T + sd["2.bias"]
    pred = z.argmax(1)
    y = mnist.test_labels
    assert r["seen"] == 10000
    assert abs(r["correct"] - int((pred == y).sum())) <= 2  # float ties at most
    conf = np.zeros((10, 10), int)
    np.add.at(conf, (y, pred), 1)
    assert np.abs(r["confusion"] - conf).sum() <= 4
    assert all(pred[i] != y[i] for i in r["wrong"][:50])


@pytest.mark.slow
def test_default_recipe_learns_on_a_subset(mnist):
    """Real learning on lavapipe: 5000 images, 3 epochs -> > 90% on the 10k test set."""
    data = GpuDataset(mnist, limit=5000)
    model = mlp([784, 128, 10], seed=0)
    tr = Run(model, data, RECIPES["default"].with_changes(epochs=3))
    before = tr.evaluate()["accuracy"]
    tr.run_steps(tr.total_steps)
    after = tr.evaluate()["accuracy"]
    hist = tr.metrics.read_history(0, tr.total_steps)
    assert before < 0.3
    assert after > 0.90, after
    assert hist[-20:, 0].mean() < hist[:20, 0].mean() / 3


def test_training_does_not_read_back(mnist, device, wgpu_reads):
    """Guards against a read-back creeping into the step or the evaluation: nothing at all
    travels GPU -> CPU, counted at the wgpu level (raw reads included) and by the device."""
    data = GpuDataset(mnist, limit=200)
    model = mlp([784, 32, 10], seed=0)
    tr = Run(model, data, plain(epochs=2, batch_size=32))
    before = device.readback.snapshot()
    wgpu_reads.reset()
    tr.run_steps(tr.total_steps)
    enc = device.device.create_command_encoder()
    tr.encode_evaluation(enc)
    device.submit(enc)
    device.sync()
    assert wgpu_reads.reads == []
    assert device.readback.snapshot() == before
