"""Sizes past the device's limits (compute/budget.py): what a run, an evaluation or the window
would allocate is checked before the GPU holds anything. What does not fit is one `error:`
line naming the size, the limit and the option to change (with the largest value that
fits), exit 2, nothing written; what just fits trains, evaluates and shows.

Reaching 128 MiB on lavapipe takes minutes of training, so the at-the-limit runs use
MNIST_VIZ_LIMITS: a real device created with smaller limits, which wgpu enforces."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import act

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def write_dataset(d: Path, h: int, w: int, n_train: int, n_test: int, classes: int = 10) -> Path:
    """Raw IDX files; the class is which horizontal band of the image is bright."""
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)

    def idx(name, arr):
        dims = b"".join(int(x).to_bytes(4, "big") for x in arr.shape)
        with open(d / name, "wb") as f:
            f.write(bytes([0, 0, 8, arr.ndim]) + dims)
            f.write(np.ascontiguousarray(arr, np.uint8).tobytes())

    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % classes).astype(np.uint8)
        images = rng.integers(0, 40, (n, h, w), dtype=np.uint8)
        band = max(1, h // classes)
        for c in range(classes):
            images[labels == c, (c * band) % h: (c * band) % h + band] += 200
        idx(f"{split}-images-idx3-ubyte", images)
        idx(f"{split}-labels-idx1-ubyte", labels)
    return d


def cli(*args, env=None, timeout=600):
    e = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp", **(env or {}))
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)


def one_error_line(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def suggested(line: str, option: str) -> int:
    """The value in '... use <option> N or less'."""
    return int(line.split(f"use {option} ")[1].split()[0])


# -- what the budget says is what the engine makes ------------------------------------------------------------
ARCHS = ["Linear(784,128),ReLU(),Linear(128,10)",
         "Linear(784,33),ReLU(),Dropout(0.2),Linear(33,17),ReLU(),Linear(17,10)",
         "Conv2d(1,8,5,padding=2),ReLU(),MaxPool2d(2),Flatten(),Linear(1568,10)"]


@pytest.mark.parametrize("text", ARCHS, ids=["mlp", "deep", "conv"])
def test_budget_sizes_are_the_buffers_the_engine_makes(text, device, mnist):
    """Guards against the budget drifting from the engine (a check that passes while the real
    parameter arena, snapshot, data buffers or evaluation chunk are larger, and then fail with a
    validation error): each size the budget computes is compared with the real buffer."""
    from mnist_viz.compute import budget
    from mnist_viz.compute.arch import parse
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    arch = parse(text)
    model = Sequential(arch)
    assert model.arena.size == budget.arena_floats(arch, device.offset_alignment)
    data = GpuDataset(mnist, 1003, 301)
    sizes = budget.split_bytes(1003, 784)
    assert (data.train.images.size, data.train.labels.size) == (sizes["images"], sizes["labels"])
    assert data.test.images.size == budget.split_bytes(301, 784)["images"]
    assert data.perm.size == budget.perm_bytes(1003)
    run = Run(model, data, Recipe(batch_size=32, epochs=1))
    assert run.snapshot.size == budget.buffer_bytes((model.arena.size + 1) * 4)
    limits = budget.Limits.current()
    assert run.evaluation.chunk == budget.eval_rows(arch, 301, limits) == 301
    assert budget.buffer_bytes((model.arena.size + 1) * 4) <= limits.binding


# -- at the limit and one past it (a smaller device) ---------------------------------------------------------
# A binding of exactly 1600 MNIST images: the training split, the test split and a batch of 400
# input rows (400 x 784 f32) each fill it to the byte.
AT = 1600 * 784
SMALL_GPU = {"MNIST_VIZ_LIMITS": f"max-storage-buffer-binding-size={AT}"}


@pytest.fixture(scope="module")
def near_limit(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("near") / "data", 28, 28, 1601, 1601)


def test_one_past_the_limit_names_the_largest_value_that_fits(near_limit):
    """Guards against sizes past the binding limit reaching wgpu (a validation traceback) and against
    a suggested value that is off by one: each refusal names the option and exactly the value the
    run at the limit (next test) uses."""
    line = one_error_line(cli("train", "--data", str(near_limit), "--epochs", "1", env=SMALL_GPU))
    assert "training set's 1,601 images" in line and "storage-binding limit" in line
    assert suggested(line, "--limit") == 1600
    line = one_error_line(cli("train", "--data", str(near_limit), "--limit", "1600", "--epochs", "1", env=SMALL_GPU))
    assert "test set's 1,601 images" in line and suggested(line, "--test-limit") == 1600
    line = one_error_line(cli("train", "--data", str(near_limit), "--limit", "1600", "--test-limit", "1600",
                              "--batch-size", "401", env=SMALL_GPU))
    assert line.startswith("error: --batch-size 401: ") and suggested(line, "--batch-size") == 400
    line = one_error_line(cli("eval", "--data", str(near_limit), env=SMALL_GPU))
    assert suggested(line, "--test-limit") == 1600


@pytest.mark.slow
def test_at_the_limit_the_cli_trains_evaluates_and_saves(near_limit, tmp_path):
    """Guards against a budget that is too strict or too loose at the boundary: data splits and a
    batch that fill the binding limit to the byte train, evaluate (in 4 chunks of 400) and save,
    with no validation error from the real (smaller) device."""
    save = tmp_path / "m.safetensors"
    p = cli("train", "--data", str(near_limit), "--limit", "1600", "--test-limit", "1600", "--batch-size", "400",
            "--epochs", "1", "--lr", "0.05", "--save", str(save), env=SMALL_GPU)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "1,600 train / 1,600 test images" in p.stdout
    assert float(p.stdout.strip().splitlines()[-1].split()[-1].rstrip("%")) > 50
    e = cli("eval", "--data", str(near_limit), "--test-limit", "1600", "--checkpoint", str(save), env=SMALL_GPU)
    assert e.returncode == 0, e.stderr[-3000:]
    assert e.stdout.strip().splitlines()[-1] == p.stdout.strip().splitlines()[-1]


def test_the_window_at_the_limit_and_one_past_it(near_limit, tmp_path):
    """Guards against the window failing on data the CLI can hold (or crashing past it): at the
    limit it opens, evaluates and renders; one image past it is one error line, no screenshot."""
    shot = tmp_path / "at.png"
    p = cli("--offscreen", "--frames", "3", "--size", "640x400", "--data", str(near_limit), "--limit", "1600",
            "--test-limit", "1600", "--screenshot", str(shot), env=SMALL_GPU)
    assert p.returncode == 0, p.stderr[-3000:]
    assert shot.stat().st_size > 1000
    shot = tmp_path / "past.png"
    line = one_error_line(cli("--offscreen", "--frames", "1", "--size", "640x400", "--data", str(near_limit),
                              "--limit", "1600", "--screenshot", str(shot), env=SMALL_GPU))
    assert suggested(line, "--test-limit") == 1600 and not shot.exists()


def test_bad_limits_setting_is_one_line():
    """Guards against MNIST_VIZ_LIMITS raising the limits or being misread: only max-* limits, lowered."""
    line = one_error_line(cli("eval", env={"MNIST_VIZ_LIMITS": "min-storage-buffer-offset-alignment=4"}))
    assert "MNIST_VIZ_LIMITS" in line


# -- this GPU's own limits -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limits():
    from mnist_viz.compute.budget import Limits
    return Limits.current()


def mlp_bytes(sizes, align_floats=64):
    """Bytes of an MLP's parameter arena plus the snapshot's step word (each tensor aligned to
    256 bytes), computed here independently of compute/budget.py."""
    floats = sum(-(-n // align_floats) * align_floats
                 for a, b in zip(sizes[:-1], sizes[1:]) for n in (a * b, b))
    return -(-(floats + 1) * 4 // 16) * 16


def test_too_wide_and_too_large_batches_name_the_largest_that_fits(limits, device):
    """Guards against --hidden 65535 and --batch-size 65535 (both allowed by the parser) ending in a
    GPUValidationError traceback, and against a suggestion that does not fit or is not the largest."""
    align = device.offset_alignment // 4
    line = one_error_line(cli("train", "--hidden", "65535", "--limit", "64"))
    assert line.startswith("error: --hidden 65535: the model 784-65535-10 has") and "storage-binding" in line
    h = suggested(line, "--hidden")
    assert mlp_bytes([784, h, 10], align) <= limits.binding < mlp_bytes([784, h + 1, 10], align)
    line = one_error_line(cli("train", "--batch-size", "65535", "--limit", "64"))
    assert line.startswith("error: --batch-size 65535: a training step holds the input images [65535, 784]")
    assert suggested(line, "--batch-size") == limits.binding // (784 * 4)


@pytest.fixture(scope="module")
def megapixel(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("mega") / "data", 1000, 1000, 20, 10)


def test_megapixel_images_through_the_cli_and_the_window(megapixel, limits, device, tmp_path):
    """Guards against 1000 x 1000 images failing inside wgpu: the default MLP is refused with the
    widest --hidden that fits, then the batch with the largest that fits; the window (whose
    gallery pages of such images hold 16, fewer than a batch) refuses the batch in one line and writes no screenshot; a
    convolution whose output for one image is above the limit names that layer."""
    line = one_error_line(cli("train", "--data", str(megapixel), "--epochs", "1"))
    h = suggested(line, "--hidden")
    assert line.startswith("error: --hidden 128: the model 1000000-128-10")
    assert mlp_bytes([10**6, h, 10], device.offset_alignment // 4) <= limits.binding
    line = one_error_line(cli("train", "--data", str(megapixel), "--epochs", "1", "--hidden", str(h)))
    assert suggested(line, "--batch-size") == limits.binding // (4 * 10**6) and "[64, 1000000]" in line
    shot = tmp_path / "s.png"
    line = one_error_line(cli("--offscreen", "--frames", "1", "--data", str(megapixel), "--screenshot", str(shot)))
    assert line.startswith("error: batch size 64: a training step") and "storage-binding" in line
    assert not shot.exists()
    conv = "Conv2d(1,4096,3,padding=1),ReLU(),MaxPool2d(15),MaxPool2d(15),Flatten(),Linear(65536,10)"
    line = one_error_line(cli("train", "--data", str(megapixel), "--epochs", "1", "--arch", conv))
    assert "layer 0 Conv2d(1,4096,3,padding=1)'s output [1, 4096, 1000, 1000]" in line and "single image" in line


@pytest.fixture(scope="module")
def big_test_set(tmp_path_factory, limits):
    """A test set just over this GPU's binding limit (135 MB on lavapipe)."""
    n = limits.binding // 784 + 1000
    return write_dataset(tmp_path_factory.mktemp("bigtest") / "data", 28, 28, 100, n), n


def test_a_test_set_over_the_limit_names_test_limit(big_test_set, limits, tmp_path):
    """Guards against a test set larger than one binding crashing evaluation in train, eval and the
    window: one line each with the number of test images that fits."""
    data, n = big_test_set
    fits = limits.binding // 784
    shot = tmp_path / "s.png"
    for args in (["train", "--epochs", "1"], ["eval"], ["--offscreen", "--frames", "1", "--screenshot", str(shot)]):
        line = one_error_line(cli(*args, "--data", str(data)))
        assert f"test set's {n:,} images of 28 x 28" in line and suggested(line, "--test-limit") == fits, line
    assert not shot.exists()


def test_a_checkpoint_wider_than_the_gpu_is_refused_by_name(tmp_path, limits):
    """Guards against a 50,000-wide checkpoint failing inside wgpu when evaluated or opened."""
    from safetensors.numpy import save_file
    w = 50000
    path = tmp_path / "wide.safetensors"
    save_file({"0.weight": np.zeros((w, 784), np.float32), "0.bias": np.zeros(w, np.float32),
               "2.weight": np.zeros((10, w), np.float32), "2.bias": np.zeros(10, np.float32)}, str(path))
    assert (784 * w + w + 10 * w + 10) * 4 > limits.binding
    line = one_error_line(cli("eval", "--checkpoint", str(path)))
    assert line.startswith("error: wide.safetensors: the model 784-50000-10 has 39,750,010 parameters")
    line = one_error_line(cli("--offscreen", "--frames", "1", "--checkpoint", str(path)))
    assert line.startswith("error: wide.safetensors: the model 784-50000-10")


def test_window_size_over_the_texture_limit(tmp_path, limits):
    """Guards against --size 100000x100000 failing in the surface or texture code (or claiming a
    screenshot it never wrote)."""
    shot = tmp_path / "s.png"
    p = cli("--offscreen", "--frames", "1", "--size", "100000x100000", "--screenshot", str(shot))
    line = one_error_line(p)
    assert "--size 100000x100000" in line and str(limits.texture) in line
    assert not shot.exists() and "wrote" not in p.stdout


# -- the window keeps working when asked for too much --------------------------------------------------------
def test_a_model_the_window_cannot_show_leaves_the_running_one(make_app, tmp_path, limits):
    """Guards against the window's Load rebuilding half its views for a model whose views need a
    texture above the limit (a 20,000-unit layer) and then failing every frame: the load fails with
    a message naming the view and the limit, and the running model keeps training."""
    from safetensors.numpy import save_file
    w = limits.texture + 1000
    path = tmp_path / "wide.safetensors"
    save_file({"0.weight": np.zeros((w, 784), np.float32), "0.bias": np.zeros(w, np.float32),
               "2.weight": np.zeros((10, w), np.float32), "2.bias": np.zeros(10, np.float32)}, str(path))
    app = make_app(limit=256, test_limit=64, evaluate_on_load=False)
    model, views = app.model, app.model_views
    app.ui.checkpoint_path = str(path)
    act(app, "load")
    for _ in range(3):
        app.draw_offscreen()
    assert app.ui.file_message.startswith("load failed") and "texture limit" in app.ui.file_message
    assert app.model is model and app.model_views is views and app.model.arch.short == "784-128-10"
    act(app, "step")
    app.draw_offscreen()
    app.draw_offscreen()
    assert app.metrics.steps >= 1 and app.ui_error is None and app.fatal is None


def test_a_batch_size_the_gpu_cannot_hold_is_refused_in_the_panel(make_app, tmp_path, limits):
    """Guards against the panel's batch size (up to 1024) rebuilding the step for images whose
    batch is above the binding limit (a validation error mid-frame) or leaving the session and
    the run with different recipes: a message names the largest batch that fits; the run goes on."""
    side = 200                                  # 1024 x 200 x 200 f32 = 156 MiB > 128 MiB
    if 1024 * side * side * 4 <= limits.binding:
        pytest.skip("this GPU holds a batch of 1024 such images")
    data = write_dataset(tmp_path / "d", side, side, 40, 10)
    app = make_app(data_dir=data, evaluate_on_load=False)
    act(app, "set_recipe", app.session.recipe.with_changes(batch_size=1024))
    app.draw_offscreen()
    assert "batch size 1024" in app.session.message, app.session.message
    assert suggested(app.session.message, "batch size") == limits.binding // (4 * side * side)
    assert app.session.recipe.batch_size == app.session.run.recipe.batch_size == 64
    act(app, "step")
    app.draw_offscreen()
    app.draw_offscreen()
    assert app.metrics.steps >= 1 and app.ui_error is None


# -- errors the budget cannot foresee ----------------------------------------------------------------------
def test_gpu_memory_and_limit_errors_are_one_line(device, limits):
    """Guards against a GPU out-of-memory or an unforeseen limit error ending as a traceback.
    The limit error is a real one from this device (a binding one byte-row over the limit);
    an out-of-memory error cannot be provoked safely on a shared machine, so wgpu's own
    exception type is used as wgpu raises it."""
    import wgpu
    from mnist_viz.viz.cli import _gpu_limit_message
    code = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n@compute @workgroup_size(1) fn main() { x[0] = 1.0; }"
    pipe = device.device.create_compute_pipeline(
        layout="auto", compute={"module": device.device.create_shader_module(code=code), "entry_point": "main"})
    big = device.device.create_buffer(size=limits.binding + 256, usage=wgpu.BufferUsage.STORAGE)
    with pytest.raises(wgpu.GPUValidationError) as err:
        device.device.create_bind_group(layout=pipe.get_bind_group_layout(0),
                                        entries=[{"binding": 0, "resource": {"buffer": big, "offset": 0,
                                                                              "size": big.size}}])
    big.destroy()
    text = _gpu_limit_message(err.value)
    assert "\n" not in text and "limit" in text and "--batch-size" in text
    text = _gpu_limit_message(wgpu.GPUOutOfMemoryError("Not enough memory left"))
    assert "\n" not in text and text.startswith("the GPU ran out of memory") and "--limit" in text


def test_a_cnn_head_above_the_workgroup_memory_runs_the_trace():
    """Guards the compiled head's fallback on a GPU with little workgroup memory: `auto` trains a
    CNN whose dense head does not fit with the whole autograd trace (and says so), and
    `--engine compiled` refuses in one line that says why, instead of a pipeline error."""
    arch = "Conv2d(1,2,3),ReLU(),Flatten(),Linear(1352,1024),ReLU(),Linear(1024,10)"
    small = {"MNIST_VIZ_LIMITS": "max-compute-workgroup-storage-size=8192"}
    args = ("train", "--arch", arch, "--limit", "64", "--test-limit", "64", "--epochs", "1", "--batch-size", "32")
    p = cli(*args, env=small)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "engine: graph" in p.stdout and "test accuracy:" in p.stdout
    p = cli(*args, "--engine", "compiled")  # this GPU's own limits: the head is compiled (auto may take the
    assert p.returncode == 0 and "engine: compiled" in p.stdout, p.stderr[-2000:]   # trace on a CPU adapter)
    line = one_error_line(cli(*args, "--engine", "compiled", env=small))
    assert line.startswith("error: --engine compiled:") and "workgroup memory" in line
