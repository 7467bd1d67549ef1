"""Signals and pipes while training: SIGTERM and SIGHUP save exactly the weights of the steps
the checkpoint says were taken and exit 128 + signum; a closed stdout (`| head -1`) keeps
training and saves; a signal after the divergence flag saves the restored snapshot, never
a diverged step, and never overwrites --save with weights that learned nothing; an interrupted
run saves beside a file that is there, never over it."""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp", PYTHONUNBUFFERED="1")


def _default_signals():
    """The child starts with SIGHUP, SIGINT and SIGTERM at their defaults: a suite run under
    `nohup`, or as a background job of a non-interactive shell (which starts it with SIGINT
    ignored), would otherwise give it ignored signals (SIG_IGN is inherited across exec), which
    the program keeps ignored by design (`nohup mnist-viz train &` outlives its terminal; a
    background job is not stopped by the terminal's Ctrl-C)."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "mnist_viz.viz", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, preexec_fn=_default_signals)


def wait_for(p, prefix: str, timeout: float = 300) -> str:
    """The first stdout line whose words start with `prefix`'s (epoch numbers are padded)."""
    deadline = time.time() + timeout
    words = prefix.split()
    while time.time() < deadline:
        line = p.stdout.readline()       # (iterating the pipe would wait for a full read-ahead buffer)
        if not line:
            break
        if line.split()[:len(words)] == words:
            return line
    p.kill()
    raise AssertionError(f"no line starting {prefix!r}: {p.communicate()[1][-2000:]}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_save_the_weights_of_the_steps_counted(sig, tmp_path, mnist, device):
    """Guards against a signal raised as an exception between encoding a chunk and submitting it
    (the saved step count ahead of the saved weights), against saving before the GPU finished,
    and against the default handler (killed, nothing saved): the checkpoint's tensors must equal
    a replay of the same run for exactly the steps its metadata names."""
    from mnist_viz.compute.arch import Architecture
    from mnist_viz.compute.checkpoint import load_state_dict
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    ckpt = tmp_path / "m.safetensors"
    p = start("train", "--limit", 512, "--epochs", 200, "--batch-size", 32, "--no-eval", "--quiet", "--seed", 3,
              "--save", ckpt)
    wait_for(p, "epoch 2/200")
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    assert "saved the model so far" in err and "Traceback" not in err
    tensors, meta = load_state_dict(ckpt)
    steps = int(meta["interrupted_at_step"])
    assert steps >= 32 and int(meta["steps"]) == steps

    recipe = RECIPES["default"].with_changes(epochs=200, batch_size=32, seed=3)
    model = Sequential(Architecture.mlp([784, 128, 10]), seed=3, init=recipe.init)
    run = Run(model, GpuDataset(mnist, 512, 16), recipe)
    assert run.run_steps(steps) == steps
    replay = model.state_dict()
    for name, value in replay.items():
        np.testing.assert_array_equal(tensors[name], value, err_msg=name)


def test_a_closed_stdout_keeps_training_and_saves(tmp_path):
    """Guards against `train ... | head -1` dying of a broken pipe (or exiting 120 when Python
    flushes stdout at exit): the run finishes, exits 0 and saves."""
    ckpt = tmp_path / "m.safetensors"
    cmd = (f"{sys.executable} -m mnist_viz.viz train --limit 256 --test-limit 200 --epochs 3 --save {ckpt} "
           f"| head -1; echo \"status ${{PIPESTATUS[0]}}\"")
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)
    lines = p.stdout.splitlines()
    assert lines[0].startswith("device: ") and lines[-1] == "status 0", (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr
    from mnist_viz.compute.checkpoint import load_state_dict
    _, meta = load_state_dict(ckpt)
    assert int(meta["steps"]) == 3 * 4 and "test_accuracy" in meta


def test_ctrl_c_after_the_divergence_flag_keeps_a_good_save_target(tmp_path):
    """Guards against Ctrl-C after the GPU raised the divergence flag (mid-epoch, before the CLI's
    epoch-end check) saving the frozen diverged weights over a good checkpoint: the run had
    learned nothing (it diverged in its first epoch), so --save is left as it was. Exit 130."""
    good = tmp_path / "good.safetensors"
    good.write_bytes((ROOT / "assets" / "mnist-784-128-10.safetensors").read_bytes())
    before = good.read_bytes()
    p = start("train", "--recipe", "original", "--lr", 1000, "--batch-size", 4, "--epochs", 1, "--quiet",
              "--save", good, "--overwrite")
    wait_for(p, "data:")
    # the flag rises within about a hundred steps (under a second on lavapipe); the epoch is 15,000
    # steps, 1-3 ms each on lavapipe (a 25 s wait at batch 8, 7,500 steps, outlasted the epoch on a
    # fast machine: the run ended by itself with exit 3)
    time.sleep(8)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted before anything was learned" in err, err
    assert good.read_bytes() == before


def test_an_interrupt_saves_beside_an_existing_save_target(tmp_path):
    """Guards against Ctrl-C replacing the checkpoint --save names (a model trained earlier; --overwrite
    is for a finished run) by the partial model: that goes beside it, and the message says where."""
    from mnist_viz.compute.checkpoint import load_state_dict
    good = tmp_path / "good.safetensors"
    good.write_bytes((ROOT / "assets" / "mnist-784-128-10.safetensors").read_bytes())
    before = good.read_bytes()
    p = start("train", "--limit", 512, "--epochs", 200, "--batch-size", 32, "--no-eval", "--quiet", "--save", good,
              "--overwrite")
    wait_for(p, "epoch 2/200")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    beside = tmp_path / "good.interrupted.safetensors"
    assert f"interrupted: saved the model so far to {beside} ({good} was left as it was)" in err, err
    assert good.read_bytes() == before
    assert int(load_state_dict(beside)[1]["interrupted_at_step"]) >= 16


def test_partial_models_take_the_next_free_name_beside_the_target(tmp_path, mnist, device):
    """Guards against a second interrupted (or diverged) run replacing the first one's partial model,
    --overwrite letting a partial model replace --save, and a finished run without --overwrite
    replacing a file that appeared at --save while it trained (a second run into the same path)."""
    from mnist_viz.compute.arch import Architecture
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    from mnist_viz.viz.cli import _save_model
    run = Run(Sequential(Architecture.mlp([784, 8, 10]), seed=1), GpuDataset(mnist, 64, 16), RECIPES["default"])
    path = tmp_path / "m.safetensors"
    args = argparse.Namespace(save=path, recipe="default", overwrite=False)
    beside = lambda name: f"{tmp_path / name} ({path} was left as it was)"
    assert _save_model(args, run, "interrupted") == str(path)       # nothing there: --save itself
    assert _save_model(args, run, "interrupted") == beside("m.interrupted.safetensors")
    assert _save_model(args, run, "interrupted") == beside("m.interrupted-2.safetensors")
    assert _save_model(args, run, "diverged") == beside("m.diverged.safetensors")
    assert _save_model(args, run) == beside("m.new.safetensors")
    args.overwrite = True
    assert _save_model(args, run, "interrupted") == beside("m.interrupted-3.safetensors")
    assert _save_model(args, run) == str(path)
    long = tmp_path / ("a" * 240 + ".safetensors")             # 252 bytes: ".interrupted" would pass 255
    args = argparse.Namespace(save=long, recipe="default", overwrite=False)
    assert _save_model(args, run, "interrupted") == str(long)
    where = _save_model(args, run, "interrupted")                # beside it, its stem shortened to fit
    saved = Path(where.split(" (")[0])
    assert saved.exists() and saved.name.endswith(".interrupted.safetensors") and len(saved.name) == 255


def test_interrupt_after_divergence_saves_the_snapshot_weights(tmp_path, mnist, device, capsys):
    """Guards against the interrupted save writing the diverged (frozen, exploded) weights or a torn
    step: after a healthy epoch the run diverges (learning rate raised to 1e3 mid-run); the save
    holds exactly the weights of the last healthy epoch start, and says so."""
    from mnist_viz.compute.arch import Architecture
    from mnist_viz.compute.checkpoint import load_state_dict
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    from mnist_viz.viz.cli import _interrupted
    recipe = Recipe(batch_size=32, lr=0.05, momentum=0.0, nesterov=False, schedule="constant", epochs=50, shift=0)
    run = Run(Sequential(Architecture.mlp([784, 32, 10]), seed=1), GpuDataset(mnist, 256, 16), recipe)
    run.run_steps(8)                                    # epoch 1: healthy
    healthy = run.model.state_dict()
    run.set_recipe(recipe.with_changes(lr=1e3))
    while not run.diverged(run.read_flags()) and run.step < 200:
        run.run_steps(8)
    assert run.diverged(run.read_flags())
    path = tmp_path / "m.safetensors"
    args = argparse.Namespace(save=path, recipe="default")
    assert _interrupted(args, run, signal.SIGINT) == 130
    assert "after training diverged" in capsys.readouterr().err
    tensors, meta = load_state_dict(path)
    assert meta["interrupted_at_step"] == "8" and meta["diverged"] == "True"
    for name, value in healthy.items():
        np.testing.assert_array_equal(tensors[name], value, err_msg=name)


def test_nohup_keeps_training_after_sighup(tmp_path):
    """Guards against the SIGHUP handler overriding nohup: a signal ignored when the program
    started (SIGHUP under `nohup`) stays ignored, so the run outlives its terminal and finishes."""
    ckpt = tmp_path / "m.safetensors"
    p = subprocess.Popen(["nohup", sys.executable, "-m", "mnist_viz.viz", "train", "--limit", "128", "--test-limit",
                          "64", "--epochs", "6", "--save", str(ckpt)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
    wait_for(p, "epoch 1/6")
    p.send_signal(signal.SIGHUP)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith("test accuracy:") and ckpt.exists()
