"""Bad input and faults end in one clear line and a known exit code, never a
traceback or a half-loaded model."""
import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mnist_viz.compute.checkpoint import CheckpointError, save_state_dict

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "assets" / "mnist"


def run_py(code, timeout=300, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp", **(env or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=ROOT)


def cli(*args, env=None, timeout=300):
    e = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp", **(env or {}))
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, text=True, timeout=timeout,
                          env=e, cwd=ROOT)


def one_line_error(p, code=2):
    assert p.returncode == code, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def idx_bytes(arr, magic=None):
    head = bytes(magic or [0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def small_dataset(d: Path, n=50, test=20):
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": rng.integers(0, 255, (n, 28, 28)),
             "train-labels-idx1-ubyte": rng.integers(0, 10, n),
             "t10k-images-idx3-ubyte": rng.integers(0, 255, (test, 28, 28)),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, test)}
    for name, a in files.items():
        (d / name).write_bytes(idx_bytes(np.asarray(a)))
    return files


@pytest.mark.parametrize("case", ["truncated", "magic", "counts", "label_range", "billions", "missing", "empty_dir",
                                  "corrupt_gzip"])
def test_bad_datasets(case, tmp_path):
    files = small_dataset(tmp_path)
    bad = "train-images-idx3-ubyte"
    if case == "truncated":
        (tmp_path / bad).write_bytes((tmp_path / bad).read_bytes()[:-100])
        want = "truncated"
    elif case == "magic":
        (tmp_path / bad).write_bytes(b"\x12\x34" + (tmp_path / bad).read_bytes()[2:])
        want = "magic"
    elif case == "counts":
        bad = "train-labels-idx1-ubyte"
        (tmp_path / bad).write_bytes(idx_bytes(np.zeros(49)))
        want = "50"
    elif case == "label_range":
        bad = "t10k-labels-idx1-ubyte"
        labels = files[bad].copy()
        labels[3] = 200
        (tmp_path / bad).write_bytes(idx_bytes(labels))
        want = "200"
    elif case == "billions":
        (tmp_path / bad).write_bytes(bytes([0, 0, 8, 3]) + (2_000_000_000).to_bytes(4, "big")
                                     + (28).to_bytes(4, "big") * 2 + b"\0" * 1000)
        want = bad
    elif case == "missing":
        (tmp_path / bad).unlink()
        want = "train"
    elif case == "empty_dir":
        for f in tmp_path.iterdir():
            f.unlink()
        want = str(tmp_path)
    elif case == "corrupt_gzip":
        (tmp_path / bad).unlink()
        (tmp_path / (bad + ".gz")).write_bytes(gzip.compress(b"x" * 1000)[:30] + b"garbage")
        want = bad
    line = one_line_error(cli("train", "--data", str(tmp_path), "--epochs", "1"))
    assert want.lower() in line.lower(), line
    if case not in ("missing", "empty_dir"):
        assert bad in line, line  # names the file


def _good_state():
    rng = np.random.default_rng(0)
    return {"0.weight": rng.standard_normal((128, 784)).astype(np.float32),
            "0.bias": np.zeros(128, np.float32),
            "2.weight": rng.standard_normal((10, 128)).astype(np.float32),
            "2.bias": np.zeros(10, np.float32)}


@pytest.mark.parametrize("case,want", [
    ("truncated", "safetensors"), ("not_safetensors", "safetensors"), ("missing_tensor", "2.bias"),
    ("no_chain", "takes 100 inputs"), ("nan", "0.weight"), ("inf", "2.bias"), ("pickle", "safetensors"),
])
def test_bad_checkpoints(case, want, tmp_path):
    path = tmp_path / "model.safetensors"
    sd = _good_state()
    if case == "missing_tensor":
        del sd["2.bias"]
    elif case == "no_chain":
        sd["2.weight"] = sd["2.weight"][:, :100].copy()
    elif case == "nan":
        sd["0.weight"][3, 4] = np.nan
    elif case == "inf":
        sd["2.bias"][1] = np.inf
    if case in ("nan", "inf", "missing_tensor", "no_chain", "truncated"):
        save_state_dict(path, sd) if case not in ("nan", "inf") else _save_raw(path, sd)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif case == "not_safetensors":
        path.write_bytes(os.urandom(5000))
    elif case == "pickle":
        import pickle
        path.write_bytes(pickle.dumps({"0.weight": [1, 2, 3]}))
    line = one_line_error(cli("eval", "--checkpoint", str(path)))
    assert want.lower() in line.lower(), line
    assert "model.safetensors" in line


def _save_raw(path, sd):
    from safetensors.numpy import save_file
    save_file(sd, str(path))


def test_failed_load_leaves_running_model_untouched(tmp_path, device):
    from mnist_viz.compute.model_io import load_into
    from mnist_viz.compute.nn import mlp
    model = mlp([784, 128, 10], seed=5)
    before = model.state_dict()
    bad = _good_state()
    bad["2.bias"][0] = np.nan
    path = tmp_path / "bad.safetensors"
    _save_raw(path, bad)
    with pytest.raises(CheckpointError):
        load_into(model, path)
    other = mlp([784, 64, 10], seed=1)
    save_state_dict(path, other.state_dict())
    with pytest.raises(CheckpointError, match="architecture"):
        load_into(model, path)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_no_adapter_names_the_driver():
    line = one_line_error(cli("train", "--epochs", "1", env={"MNIST_VIZ_ADAPTER": "none"}))
    assert "mesa-vulkan-drivers" in line and "Vulkan" in line


def test_lost_device_is_reported_not_hung():
    """The device disappears mid-training: a clear line and exit code 4, within seconds."""
    p = run_py("""
        import sys
        import mnist_viz.compute.run as T
        from mnist_viz.compute.device import get_device
        orig = T.Run.run_steps
        calls = []
        def run_steps(self, n, per_submit=256, queued=0):
            calls.append(n)
            if len(calls) == 3:
                get_device().device.destroy()
            return orig(self, n, per_submit, queued)
        T.Run.run_steps = run_steps
        from mnist_viz.viz.cli import main
        sys.exit(main(["train", "--limit", "2000", "--epochs", "1", "--batch-size", "16"]))
    """, timeout=120)
    assert p.returncode == 4, (p.returncode, p.stderr[-2000:])
    assert p.stderr.strip().splitlines()[-1].startswith("error: the GPU device was lost")


def test_unwritable_save_path_fails_before_training():
    line = one_line_error(cli("train", "--save", "/proc/no-such-dir/m.safetensors", "--epochs", "1"))
    assert "cannot write" in line


def test_ctrl_c_saves_what_was_trained(tmp_path, mnist):
    """Guards against Ctrl-C saving stale weights (the epoch start's, say) under the current
    step: the saved weights must be the weights of that very step, which an in-process run
    of the same recipe, data and seed reproduces."""
    import signal
    import time
    ckpt = tmp_path / "m.safetensors"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp", PYTHONUNBUFFERED="1")
    # Ctrl-C's default action even where this test runs as a background job (which ignores SIGINT).
    p = subprocess.Popen([sys.executable, "-m", "mnist_viz.viz", "train", "--limit", "640", "--epochs", "500", "--no-eval",
                          "--save", str(ckpt)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline:
        line = p.stdout.readline()  # (iterating the pipe would wait for a full read-ahead buffer)
        if not line or line.split()[:2] == ["epoch", "2/500"]:
            break
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "saved the model so far" in err
    from mnist_viz.compute.checkpoint import load_state_dict
    tensors, meta = load_state_dict(ckpt)
    step = int(meta["interrupted_at_step"])
    assert step >= 20
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    recipe = RECIPES["default"].with_changes(epochs=500)      # what the command line asked for
    model = mlp([784, 128, 10], seed=recipe.seed)
    run = Run(model, GpuDataset(mnist, 640), recipe)
    assert run.run_steps(step) == step
    for name, want in model.state_dict().items():
        np.testing.assert_allclose(tensors[name], want, rtol=1e-5, atol=1e-7, err_msg=name)


def test_lost_device_in_the_visualizer_is_reported():
    p = run_py("""
        import sys
        import mnist_viz.viz.app as A
        from mnist_viz.compute.device import get_device
        orig = A.App.frame
        def frame(self):
            if self.frames == 5:
                get_device().device.destroy()
            return orig(self)
        A.App.frame = frame
        from mnist_viz.viz.cli import main
        sys.exit(main(["--offscreen", "--frames", "40", "--size", "640x400", "--limit", "500"]))
    """, timeout=180)
    assert p.returncode == 4, (p.returncode, p.stderr[-2000:])
    assert p.stderr.strip().splitlines()[-1].startswith("error: the GPU device was lost")
