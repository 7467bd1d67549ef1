"""The command line as a user meets it: output format, exit codes, one-line errors."""
import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp")
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def assert_one_line_error(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.slow
def test_train_save_eval_roundtrip(tmp_path):
    ckpt = tmp_path / "m.safetensors"
    p = run("train", "--limit", "2000", "--epochs", "1", "--batch-size", "50", "--save", str(ckpt), "--seed", "1")
    assert p.returncode == 0, p.stderr
    assert re.search(r"epoch 1/1 .*loss \d+\.\d+ .*samples/s", p.stdout)
    last = p.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"test accuracy: (\d+\.\d\d)%", last)
    assert m and float(m.group(1)) > 80, p.stdout
    e = run("eval", "--checkpoint", str(ckpt))
    assert e.returncode == 0, e.stderr
    assert e.stdout.strip().splitlines()[-1] == last  # same model, same number


@pytest.mark.parametrize("args,fragment", [
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--batch-size", "x"], "--batch-size"),
    (["train", "--hidden", "12,a"], "--hidden"),
    (["train", "--schedule", "linear"], "--schedule"),
    (["train", "--optimizer", "rmsprop"], "--optimizer"),
    (["train", "--dropout", "1.5"], "dropout"),
    (["train", "--bogus"], "unrecognized"),
    (["train", "--data", "/nonexistent"], "/nonexistent"),
    (["eval", "--checkpoint"], "--checkpoint"),
    (["eval", "--checkpoint", "/nonexistent.safetensors"], "nonexistent"),
    (["--screenshot", "out.png"], "--offscreen"),            # offscreen options without --offscreen:
    (["--frames", "30"], "--offscreen"),                     # said, not silently ignored for a window
    (["--frames", "3", "--screenshot", "o.png"], "--frames and --screenshot"),
    (["train", "--overwrite"], "--overwrite only applies with --save"),   # said, not ignored
])
def test_bad_arguments_one_line_exit_2(args, fragment):
    assert_one_line_error(run(*args), fragment)


def test_bad_checkpoint_file(tmp_path):
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"\x80\x04not a checkpoint at all")
    assert_one_line_error(run("eval", "--checkpoint", str(bad)), "junk.safetensors")


def test_bad_dataset_directory(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"\x00" * 10)
    assert_one_line_error(run("train", "--data", str(tmp_path)), str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("lr,optimizer", [("1e6", "sgd"), ("1000", "sgd"), ("1000", "adam")])
def test_divergence_exits_3_and_keeps_a_good_save_target(tmp_path, lr, optimizer):
    """Guards against finite divergence passing as success (lr 1e3 gives a loss of 1e17, not NaN)
    and against a run that diverged in its first epoch overwriting --save with untrained weights."""
    ckpt = tmp_path / "d.safetensors"
    good = run("train", "--limit", "256", "--epochs", "1", "--save", str(ckpt))
    assert good.returncode == 0, good.stderr
    before = ckpt.read_bytes()
    p = run("train", "--limit", "3200", "--epochs", "2", "--lr", lr, "--optimizer", optimizer, "--recipe", "original",
            "--save", str(ckpt), "--overwrite")
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "diverged" in p.stderr and "smaller learning rate" in p.stderr
    assert "left as it was" in p.stdout
    assert ckpt.read_bytes() == before


def test_custom_dataset_any_size_and_classes(tmp_path):
    """--data takes any IDX directory: 6x5 images, 3 classes, gzipped or raw."""
    rng = np.random.default_rng(0)

    def write(name, arr, gz):
        dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        raw = bytes([0, 0, 8, arr.ndim]) + dims + arr.astype(np.uint8).tobytes()
        (tmp_path / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)

    labels = rng.integers(0, 3, 300)
    images = np.zeros((300, 6, 5), np.uint8)
    for i, l in enumerate(labels):  # class = which third of the image is lit
        images[i, 2 * l: 2 * l + 2] = 200
    write("train-images-idx3-ubyte", images[:240], True)
    write("train-labels-idx1-ubyte", labels[:240], True)
    write("t10k-images-idx3-ubyte", images[240:], False)
    write("t10k-labels-idx1-ubyte", labels[240:], False)
    p = run("train", "--data", str(tmp_path), "--epochs", "3", "--hidden", "8", "--batch-size", "16", "--shift", "0")
    assert p.returncode == 0, p.stderr
    assert "30-8-3" in p.stdout
    assert float(p.stdout.strip().splitlines()[-1].split()[-1].rstrip("%")) > 90
