"""PyTorch interop, end to end: a model trained in PyTorch evaluates here to the
accuracy PyTorch reports, and our shipped model evaluates in PyTorch to ours."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")


def torch_accuracy(model, mnist) -> float:
    x = torch.tensor(mnist.test_images.reshape(len(mnist.test_images), -1), dtype=torch.float32) / 255
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    return float((pred == mnist.test_labels).mean())


def our_accuracy(path, mnist) -> float:
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.model_io import load_model
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    model, _ = load_model(path)
    data = GpuDataset(mnist, limit=1)
    return Run(model, data, Recipe()).evaluate()["accuracy"]


def test_pytorch_trained_model_evaluates_to_the_same_accuracy(mnist, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.tensor(mnist.train_images[:6000].reshape(6000, -1), dtype=torch.float32) / 255
    y = torch.tensor(mnist.train_labels[:6000].astype(np.int64))
    for i in range(0, 6000, 64):
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    theirs = torch_accuracy(model, mnist)
    assert theirs > 0.85
    assert abs(our_accuracy(path, mnist) - theirs) <= 1e-4  # at most one digit on a float tie


def test_our_model_evaluates_in_pytorch_to_our_accuracy(mnist):
    from mnist_viz.compute.model_io import default_model_path
    path = default_model_path()
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    model.load_state_dict(safetensors_torch.load_file(str(path)))
    ours = our_accuracy(path, mnist)
    assert ours >= 0.98
    assert abs(torch_accuracy(model, mnist) - ours) <= 1e-4


# -- convolutional networks ---------------------------------------------------------------------------------
CNN = "Conv2d(1,6,5,stride=2),ReLU(),MaxPool2d(2),Flatten(),Linear(216,10)"


def torch_cnn():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, stride=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(216, 10))


def test_a_pytorch_cnn_loads_with_arch_and_evaluates_to_pytorchs_accuracy(mnist, tmp_path):
    """A file written by safetensors.torch.save_file(model.state_dict()) of a CNN: refused without --arch
    (a convolution's layout cannot be guessed), and with it, the same predictions as PyTorch."""
    import dataclasses

    from mnist_viz.compute.checkpoint import CheckpointError
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.model_io import load_model
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    torch.manual_seed(0)
    model = torch_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.tensor(mnist.train_images[:3000], dtype=torch.float32)[:, None] / 255
    y = torch.tensor(mnist.train_labels[:3000].astype(np.int64))
    for i in range(0, 3000, 50):
        loss = torch.nn.functional.cross_entropy(model(x[i:i + 50]), y[i:i + 50])
        opt.zero_grad()
        loss.backward()
        opt.step()
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


def test_our_cnn_runs_in_pytorch_to_the_same_logits(mnist, tmp_path):
    """Our CNN's checkpoint loads into torch.nn.Sequential as is (names and layouts), same outputs."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.tensor import Tensor
    ours = Sequential(parse(CNN), seed=3)
    path = tmp_path / "ours.safetensors"
    save_model(path, ours)
    model = torch_cnn()
    model.load_state_dict(safetensors_torch.load_file(str(path)))
    images = mnist.test_images[:16].astype(np.float32) / 255
    x = Tensor.from_numpy(images.reshape(16, -1))
    logits = ours.forward(x).to_numpy()
    with torch.no_grad():
        ref = model(torch.tensor(images)[:, None]).numpy()
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
