"""--arch through the command line: errors name the layer, checkpoints record the string, PyTorch
state dicts of other MLP layouts load (and say what was assumed)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_cli import idx_dataset

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp")
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def one_line_error(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize("args,fragments", [
    (["--arch", "Linear(784,64),ReLU(),Linear(32,10)"], ["--arch", "layer 2 Linear(32,10)", "use Linear(64,10)"]),
    (["--arch", "Linear(784,32),ReLU(),Linear(32,5)"], ["layer 2 Linear(32,5)", "5 class scores", "10 classes"]),
    (["--arch", "Linear(784,10),Softmax()"], ["layer 1", "unsupported layer Softmax"]),
    (["--arch", "Linear(784,10)", "--hidden", "64"], ["--arch gives the whole network"]),
    (["--arch", "Conv2d(1,4,3),Linear(2704,10)"], ["layer 1 Linear(2704,10)", "flatten first", "Flatten(),Linear(2704,10)"]),
    (["--arch", "Flatten(),Linear(784,10),ReLU()", "--engine", "compiled"],
     ["--engine compiled: it ends in ReLU() (layer 2), not in the Linear", "use --engine graph"]),
    (["--arch", "Conv2d(1,4,3),Flatten(),ReLU(),Linear(2704,10)", "--engine", "compiled"],
     ["--engine compiled: layer 2 ReLU() stands where a Linear must", "after its last Flatten()"]),
])
def test_bad_architectures_are_one_line_naming_the_layer(args, fragments):
    """Guards against a bad --arch reaching the GPU or failing with a traceback / without the layer."""
    one_line_error(run("train", "--limit", "64", "--epochs", "1", *args), *fragments)


@pytest.mark.slow
def test_an_arch_string_trains_records_itself_and_evaluates_without_arch(tmp_path):
    """Guards against checkpoints that do not record the architecture (eval would need --arch)."""
    from mnist_viz.compute.checkpoint import load_state_dict
    arch = "Flatten(),Linear(784,32),ReLU(),Dropout(0.2),Linear(32,10)"
    ckpt = tmp_path / "m.safetensors"
    p = run("train", "--arch", arch, "--limit", "600", "--epochs", "1", "--batch-size", "50", "--save", str(ckpt))
    assert p.returncode == 0, p.stderr
    tensors, meta = load_state_dict(ckpt)
    assert meta["architecture"] == arch and set(tensors) == {"1.weight", "1.bias", "4.weight", "4.bias"}
    e = run("eval", "--checkpoint", str(ckpt))
    assert e.returncode == 0 and "warning" not in e.stderr, e.stderr
    assert e.stdout.strip().splitlines()[-1] == p.stdout.strip().splitlines()[-1]


def test_a_pytorch_flatten_first_mlp_loads_and_says_what_it_assumed(tmp_path):
    """Sequential(Flatten(), Linear, ReLU, Linear) has keys 1.* and 3.*: it loads (it was refused with an
    unnamed mismatch), with a warning that the activations were assumed to be ReLU."""
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    path = tmp_path / "torch.safetensors"
    st.save_file(model.state_dict(), path)
    e = run("eval", "--checkpoint", str(path))
    assert e.returncode == 0, e.stderr
    assert "warning: torch.safetensors: no architecture recorded" in e.stderr
    explicit = run("eval", "--checkpoint", str(path), "--arch", "Flatten(),Linear(784,16),ReLU(),Linear(16,10)")
    assert explicit.returncode == 0 and "warning" not in explicit.stderr
    assert explicit.stdout.splitlines()[-1] == e.stdout.splitlines()[-1]
    bad = run("eval", "--checkpoint", str(path), "--arch", "Linear(784,16),ReLU(),Linear(16,10)")
    one_line_error(bad, "--arch", "torch.safetensors", "layer 0 Linear(784,16) needs 0.weight, which the file does "
                   "not have (it has 1.bias, 1.weight, 3.bias, 3.weight instead)")


def test_a_conv_checkpoint_read_as_an_mlp_names_the_first_layer_that_differs(tmp_path):
    """Guards against `eval --checkpoint conv.safetensors --arch 784-128-10` answering with the
    conv file's leftover tensor names (a first user's trial: `unexpected tensors 4.bias, ...`):
    layer 0's shape differs first, and says more."""
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import Sequential
    path = tmp_path / "conv.safetensors"
    save_model(path, Sequential(parse("Conv2d(1,4,5),ReLU(),MaxPool2d(2),Flatten(),Linear(576,10)")), {})
    bad = run("eval", "--checkpoint", str(path), "--arch", "784-128-10", "--test-limit", "64")
    one_line_error(bad, "--arch", "conv.safetensors", "layer 0 Linear(784,128) needs 0.weight of shape (128, 784), "
                   "the file has (4, 1, 5, 5)")


def test_recipe_cnn_trains_the_cnn_it_was_tuned_for():
    """Guards against `train --recipe cnn` training the 784-128-10 MLP with the CNN's
    hyper-parameters (the recipe names its network; --arch and --hidden still override it)."""
    from types import SimpleNamespace
    from mnist_viz.compute.recipe import CNN_ARCH
    from mnist_viz.viz.cli import build_parser
    from mnist_viz.viz.headless import architecture_for
    ds = SimpleNamespace(image_shape=(28, 28), num_classes=10)
    parse_args = lambda *a: build_parser()[0].parse_args(list(a))
    assert architecture_for(parse_args("--recipe", "cnn"), ds).text == CNN_ARCH
    assert architecture_for(parse_args("--recipe", "cnn", "--hidden", "32"), ds).short == "784-32-10"
    assert architecture_for(parse_args("--recipe", "cnn", "--arch", "Linear(784,10)"), ds).short == "784-10"
    assert architecture_for(parse_args("--recipe", "default"), ds).short == "784-128-10"


@pytest.mark.parametrize("side,classes,fragment", [
    (14, 10, "these 14 x 14 images in 10 classes (layer 11 Linear(3136,256): takes 3136 inputs"),
    (28, 3, "these 28 x 28 images in 3 classes (layer 14 Linear(256,10) gives 10 class scores"),
])
def test_the_recipes_network_that_does_not_fit_names_the_recipe(tmp_path, side, classes, fragment):
    """Guards against `--recipe cnn` on other data blaming an --arch the user never gave: the line
    names the recipe and what to give instead."""
    p = run("train", "--recipe", "cnn", "--data", str(idx_dataset(tmp_path, side, classes)), "--epochs", "1")
    one_line_error(p, "error: --recipe cnn: its network does not fit", fragment,
                   "give --arch or --hidden for a network that fits them")


def test_the_windows_arch_error_is_trains(tmp_path):
    """Guards against the window's --arch error missing the `--arch:` that train's has: one line, the same."""
    data = str(idx_dataset(tmp_path))
    train = run("train", "--arch", "Linear(3,4)", "--data", data)
    view = run("--arch", "Linear(3,4)", "--data", data, "--offscreen", "--no-autosave")
    one_line_error(train, "error: --arch: layer 0 Linear(3,4): takes 3 inputs")
    one_line_error(view)
    assert view.stderr == train.stderr
