"""PyTorch interop, end to end: a model trained in PyTorch evaluates here to the
accuracy PyTorch reports, and our shipped model evaluates in PyTorch to ours.
torch comes from the conftest fixture: skipped without it, failed without it on CI."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def torch_accuracy(torch, model, mnist) -> float:
    x = torch.tensor(mnist.test_images.reshape(len(mnist.test_images), -1), dtype=torch.float32) / 255
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    return float((pred == mnist.test_labels).mean())


def train_one_epoch(torch, model, x, y, lr: float, batch: int) -> None:
    """One epoch of SGD (momentum 0.9) in PyTorch over (x, y) in order: a model PyTorch trained."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for i in range(0, len(x), batch):
        loss = torch.nn.functional.cross_entropy(model(x[i:i + batch]), y[i:i + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()


def our_accuracy(path, mnist) -> float:
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.model_io import load_model
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    model, _ = load_model(path)
    data = GpuDataset(mnist, limit=1)
    return Run(model, data, Recipe()).evaluate()["accuracy"]


def test_pytorch_trained_model_evaluates_to_the_same_accuracy(mnist, tmp_path, torch, safetensors_torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    x = torch.tensor(mnist.train_images[:6000].reshape(6000, -1), dtype=torch.float32) / 255
    y = torch.tensor(mnist.train_labels[:6000].astype(np.int64))
    train_one_epoch(torch, model, x, y, lr=0.1, batch=64)
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    theirs = torch_accuracy(torch, model, mnist)
    assert theirs > 0.85
    assert abs(our_accuracy(path, mnist) - theirs) <= 1e-4  # at most one digit on a float tie


def test_our_model_evaluates_in_pytorch_to_our_accuracy(mnist, torch, safetensors_torch):
    from mnist_viz.compute.model_io import default_model_path
    path = default_model_path()
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    model.load_state_dict(safetensors_torch.load_file(str(path)))
    ours = our_accuracy(path, mnist)
    assert ours >= 0.98
    assert abs(torch_accuracy(torch, model, mnist) - ours) <= 1e-4


def test_without_torch_the_interop_tests_skip_but_fail_on_ci(tmp_path):
    """Guards against the interop tests vanishing from CI: with torch unimportable they skip
    on a developer's machine and fail when CI is set."""
    shadow = tmp_path / "no-torch" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    node = "tests/test_interop.py::test_our_model_evaluates_in_pytorch_to_our_accuracy"
    outcomes = {}
    for ci in ("", "1"):
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        env.update(PYTHONPATH=str(shadow.parent), XDG_RUNTIME_DIR="/tmp", **({"CI": ci} if ci else {}))
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsf", node],
                           capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        outcomes[ci] = (p.returncode, p.stdout[-600:])
    assert outcomes[""][0] == 0 and "1 skipped" in outcomes[""][1], outcomes[""]
    assert outcomes["1"][0] == 1 and "1 error" in outcomes["1"][1] and "CI is set" in outcomes["1"][1], outcomes["1"]


# -- convolutional networks ---------------------------------------------------------------------------------
CNN = "Conv2d(1,6,5,stride=2),ReLU(),MaxPool2d(2),Flatten(),Linear(216,10)"


def torch_cnn(torch):
    return torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, stride=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(216, 10))


def test_a_pytorch_cnn_loads_with_arch_and_evaluates_to_pytorchs_accuracy(mnist, tmp_path, torch, safetensors_torch):
    """A file written by safetensors.torch.save_file(model.state_dict()) of a CNN: refused without --arch
    (a convolution's layout cannot be guessed), and with it, the same predictions as PyTorch."""
    import dataclasses

    from mnist_viz.compute.checkpoint import CheckpointError
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.model_io import load_model
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    torch.manual_seed(0)
    model = torch_cnn(torch)
    x = torch.tensor(mnist.train_images[:3000], dtype=torch.float32)[:, None] / 255
    y = torch.tensor(mnist.train_labels[:3000].astype(np.int64))
    train_one_epoch(torch, model, x, y, lr=0.05, batch=50)
    path = tmp_path / "cnn.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="--arch"):
        load_model(path)
    small = dataclasses.replace(mnist, test_images=mnist.test_images[:600], test_labels=mnist.test_labels[:600])
    with torch.no_grad():
        theirs = float((model(torch.tensor(small.test_images, dtype=torch.float32)[:, None] / 255).argmax(1).numpy()
                        == small.test_labels).mean())
    ours_model, _ = load_model(path, arch=CNN)
    ours = Run(ours_model, GpuDataset(small, limit=1), Recipe()).evaluate()["accuracy"]
    assert theirs > 0.7                      # it learned (1 epoch of 3000 images)
    assert abs(ours - theirs) <= 2 / 600       # a float tie or two at most


def test_our_cnn_runs_in_pytorch_to_the_same_logits(mnist, tmp_path, torch, safetensors_torch):
    """Our CNN's checkpoint loads into torch.nn.Sequential as is (names and layouts), same outputs."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.tensor import Tensor
    ours = Sequential(parse(CNN), seed=3)
    path = tmp_path / "ours.safetensors"
    save_model(path, ours)
    model = torch_cnn(torch)
    model.load_state_dict(safetensors_torch.load_file(str(path)))
    images = mnist.test_images[:16].astype(np.float32) / 255
    x = Tensor.from_numpy(images.reshape(16, -1))
    logits = ours.forward(x).to_numpy()
    with torch.no_grad():
        ref = model(torch.tensor(images)[:, None]).numpy()
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
