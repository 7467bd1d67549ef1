"""Numeric options past the happy path: a value the GPU cannot use as given (1e-50 is 0 in
float32, 0.99999999999 is 1.0, 1e39 overflows, -1 wraps as a u32 seed) is one `error:`
line naming the option and its valid range, exit 2, before the GPU starts; no value
ever gives a traceback."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_viz.viz.cli import main

ROOT = Path(__file__).resolve().parent.parent
MISSING = "/nonexistent/mnist-viz-data"     # a valid value stops at the data, before any GPU work


def tiny_dataset(d: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (40, 28, 28)), ("t10k-images-idx3-ubyte", (20, 28, 28))):
        a = rng.integers(0, 255, shape, dtype=np.uint8)
        (d / name).write_bytes(bytes([0, 0, 8, 3]) + b"".join(int(s).to_bytes(4, "big") for s in shape) + a.tobytes())
    for name, n in (("train-labels-idx1-ubyte", 40), ("t10k-labels-idx1-ubyte", 20)):
        (d / name).write_bytes(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + (np.arange(n) % 10).astype(np.uint8).tobytes())
    return d


# (arguments, the option the line must name, a fragment of the valid range it must state)
TABLE = [
    (["--lr", "1e-50"], "--lr", "float32"),
    (["--lr", "5e-39"], "--lr", "float32"),                  # a float32 denormal: flushed to 0 on GPUs
    (["--lr", "1e39"], "--lr", "1e6"),
    (["--lr", "nan"], "--lr", "finite"),
    (["--lr=-inf"], "--lr", "finite"),
    (["--lr", "0"], "--lr", "positive"),
    (["--min-lr", "1e39"], "--min-lr", "1e6"),
    (["--min-lr=-1"], "--min-lr", "between 0 and"),
    (["--weight-decay", "1e39"], "--weight-decay", "[0, 1]"),
    (["--weight-decay=-0.1"], "--weight-decay", "[0, 1]"),
    (["--gamma", "1e39"], "--gamma", "(0, 1]"),
    (["--gamma", "0"], "--gamma", "(0, 1]"),
    (["--gamma=-0.5"], "--gamma", "(0, 1]"),
    (["--gamma", "1e-50"], "--gamma", "holds it as 0.0"),
    (["--momentum", "0.99999999999"], "--momentum", "holds it as 1.0"),
    (["--momentum", "1e39"], "--momentum", "[0, 1)"),
    (["--step-epochs=-1"], "--step-epochs", "positive"),
    (["--step-epochs", "1e39"], "--step-epochs", "1e6"),
    (["--seed", str(2**32)], "--seed", "0..4294967295"),
    (["--seed=-1"], "--seed", "0..4294967295"),
    (["--dropout=-0.1"], "--dropout", "[0, 1)"),
    (["--dropout", "0.99999999999"], "--dropout", "holds it as 1.0"),
    (["--hidden", "128,,64"], "--hidden", "128 or 256,128"),
    (["--hidden", "0"], "--hidden", "between 1 and"),
    (["--epochs", "10**12"], "--epochs", "whole number"),
    (["--epochs", "0"], "--epochs", ">= 1"),
    (["--batch-size", "65536"], "--batch-size", "1..65535"),
    (["--shift", "9"], "--shift", "0..8"),
    (["--limit", "0"], "--limit", ">= 1"),
    (["--test-limit=-5"], "--test-limit", ">= 1"),
]


def run_cli(*args, env=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp", **(env or {}))
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, text=True,
                          timeout=120, env=e, cwd=ROOT)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("args,option,valid_range", TABLE, ids=[" ".join(a) for a, _, _ in TABLE])
def test_bad_numbers_are_one_line_before_the_gpu(args, option, valid_range, data_dir, tmp_path):
    """Guards against a value reaching the GPU as something else (lr 1e-50 training at 0 without a
    word, a seed of -1 wrapping), and against a check that runs only once the GPU holds the data:
    the GPU is switched off (MNIST_VIZ_ADAPTER=none), so a check that came too late would show as
    the no-adapter error instead. The data is a real dataset, so every check before the GPU runs."""
    save = tmp_path / "m.safetensors"
    p = run_cli("train", *args, "--data", str(data_dir), "--save", str(save), env={"MNIST_VIZ_ADAPTER": "none"})
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert option in lines[0] and valid_range in lines[0], lines[0]
    assert "Traceback" not in p.stderr and not save.exists()


def test_epochs_past_the_step_counter_are_refused_before_the_gpu(data_dir):
    """Guards against --epochs 10^12 failing only when the Run is built (after the data is on the GPU):
    the total steps against the u32 step counter is checked right after the data is read."""
    p = run_cli("train", "--epochs", str(10**12), "--data", str(data_dir), env={"MNIST_VIZ_ADAPTER": "none"})
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"error: --epochs {10**12}:") and "step counter" in lines[0], lines[0]
    most = int(lines[0].split("use --epochs ")[1].split()[0])
    assert most == (2**32 - 1) // 1       # 40 images at batch 64: one step an epoch


# -- every numeric option, any text ---------------------------------------------------------------------
F32_TINY = float(np.finfo(np.float32).tiny)


def f32(x: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.float32(x))


def valid_float(text, ok) -> bool:
    try:
        x = float(text)
    except ValueError:
        return False
    return math.isfinite(x) and ok(x)


def valid_int(text, ok) -> bool:
    try:
        return ok(int(text))
    except ValueError:
        return False


# option -> whether a text is a value the GPU can use as given (an oracle written from the help text,
# not from the code under test)
ORACLES = {
    "--lr": lambda t: valid_float(t, lambda x: F32_TINY <= f32(x) <= 1e6),
    "--min-lr": lambda t: valid_float(t, lambda x: 0 <= f32(x) <= f32(0.1)),    # at most the default lr (cosine)
    "--gamma": lambda t: valid_float(t, lambda x: 0 < f32(x) <= 1),
    "--momentum": lambda t: valid_float(t, lambda x: 0 <= f32(x) < 1),
    "--weight-decay": lambda t: valid_float(t, lambda x: 0 <= f32(x) <= 1),
    "--step-epochs": lambda t: valid_float(t, lambda x: 0 < x <= 1e6),
    "--dropout": lambda t: valid_float(t, lambda x: 0 <= f32(x) < 1),
    "--epochs": lambda t: valid_int(t, lambda n: n >= 1),
    "--batch-size": lambda t: valid_int(t, lambda n: 1 <= n <= 65535),
    "--shift": lambda t: valid_int(t, lambda n: 0 <= n <= 8),
    "--seed": lambda t: valid_int(t, lambda n: 0 <= n < 2**32),
    "--limit": lambda t: valid_int(t, lambda n: n >= 1),
    "--test-limit": lambda t: valid_int(t, lambda n: n >= 1),
}

number_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:g}"),
    st.floats(min_value=-2.0, max_value=2.0).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=-2, max_value=70000).map(str),
    st.sampled_from(["", " ", "nan", "-inf", "1e", "0x10", "1e400", "-0", "1e-50", "1e-45", "4294967296", "1_000",
                     "0.99999999999", "1.0000000001", "3.4028236e38", "1e6", "1000001", "٣"]),
    st.text(max_size=6),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(sorted(ORACLES)), text=number_texts)
def test_any_number_for_any_option_is_one_line_naming_it(option, text, capsys):
    """Guards against tracebacks and multi-line errors from odd numbers (huge ints, nan, denormals,
    non-ASCII digits, control characters) and against values the GPU would hold differently
    slipping through: each value either passes the checks (the run then stops at the missing
    dataset, before any GPU work) or is refused in one line naming the option."""
    code = main(["train", f"{option}={text}", "--data", MISSING])
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (option, text, lines)
    if ORACLES[option](text):
        assert MISSING in lines[0], (option, text, lines[0])
    else:
        assert option in lines[0], (option, text, lines[0])


def test_the_tables_dataset_reaches_the_gpu(data_dir):
    """Guards the table's premise: with good values the run gets past every check to the GPU (here:
    none, so the no-adapter error), so a refusal above really came before the GPU."""
    p = run_cli("train", "--lr", "0.1", "--data", str(data_dir), env={"MNIST_VIZ_ADAPTER": "none"})
    assert p.returncode == 2 and "no GPU adapter" in p.stderr, p.stderr
