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
