"""Finite divergence past the happy path (the CLI's exit 3 is in test_cli.py): the window
notices it and restores the epoch-start weights exactly; the snapshot it restores is one
taken while the run was healthy, even when epochs are shorter than the detector's 50-step
window; and an honest but noisy run is never flagged."""
import numpy as np
import pytest

from mnist_viz.compute.recipe import Recipe
from conftest import act

PLAIN = dict(momentum=0.0, nesterov=False, schedule="constant", shift=0)


def test_the_window_restores_the_epoch_start_weights_exactly_after_finite_divergence(make_app):
    """Guards against the window missing a finite explosion (lr 1e3: the loss grows to 1e17 and never
    becomes NaN), and against restoring anything but the weights of the last healthy epoch start:
    the second epoch explodes, the flag rises after the third epoch has begun (a snapshot taken
    then would hold exploded weights), and the restored weights equal, bit for bit, the ones read
    at the start of the second epoch."""
    from mnist_viz.viz.session import WatchSettings
    from conftest import speed_index
    # 16 steps a frame: an epoch (32 steps) ends at a frame's end, so its start can be read (a
    # frame at full speed goes on past an epoch's end)
    app = make_app(limit=512, test_limit=64, recipe=Recipe(batch_size=16, lr=0.05, epochs=20, **PLAIN),
                   watch=WatchSettings(eval_each_epoch=False, speed=speed_index(16)))
    app.readout.interval = 0.0
    run = app.session.run
    act(app, "train")
    for _ in range(400):
        app.draw_offscreen()
        if run.step >= run.steps_per_epoch:
            break
    assert run.step == run.steps_per_epoch
    act(app, "pause")
    app.draw_offscreen()
    assert run.step == run.steps_per_epoch
    epoch_start = app.model.state_dict()
    act(app, "set_recipe", app.session.recipe.with_changes(lr=1e3))
    act(app, "train")
    for _ in range(600):
        app.draw_offscreen()
        if app.session.status == "diverged":
            break
    assert app.session.status == "diverged", (app.session.status, run.step)
    assert "diverged" in app.session.message and "restored" in app.session.message
    assert run.step == run.steps_per_epoch
    restored = app.model.state_dict()
    for name, value in epoch_start.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)


def test_epochs_shorter_than_the_detector_restore_the_last_healthy_snapshot(mnist, device):
    """Guards against the snapshot being taken while the loss is already exploding: with 4 steps an
    epoch, a dozen epoch starts pass between the explosion and the flag (50 steps over the bound).
    A plain copy at each would keep exploded weights; the GPU copies only while the run is healthy,
    so the restore goes back to the last healthy epoch start, its weights and its step."""
    from mnist_viz.compute.arch import Architecture
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.run import Run
    recipe = Recipe(batch_size=16, lr=0.05, epochs=200, **PLAIN)
    run = Run(Sequential(Architecture.mlp([784, 32, 10]), seed=1), GpuDataset(mnist, 64, 16), recipe)
    # 25 healthy epochs: long enough that the detector's early rule (more than half of the run's
    # steps over the bound) cannot fire before its 50-step one
    run.run_steps(100)
    healthy = run.model.state_dict()
    run.set_recipe(recipe.with_changes(lr=1e3))
    while not run.diverged(run.read_flags()) and run.step < 300:
        run.run_steps(4)
    assert run.diverged(run.read_flags()) and run.step >= 100 + 48
    run.restore_snapshot()
    assert run.step == 100 and run.read_flags() == 0
    restored = run.model.state_dict()
    for name, value in healthy.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)


def test_a_run_too_short_for_the_50_step_window_is_flagged(mnist, device):
    """Guards against a short exploding run passing as healthy (a first user's `train --limit 500
    --epochs 1 --lr 1000`: 8 steps, a loss of 7e15, exit 0 and the garbage saved): the detector's
    early rule flags a run whose loss stayed over the bound for more than half of its steps."""
    from mnist_viz.compute.arch import Architecture
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.run import Run
    run = Run(Sequential(Architecture.mlp([784, 32, 10]), seed=1), GpuDataset(mnist, 128, 16),
              Recipe(batch_size=16, lr=1e3, epochs=1, **PLAIN))
    assert run.steps_per_epoch == 8
    run.run_steps(8)
    assert run.diverged(run.read_flags()), run.metrics.read_state()


def test_the_cli_exits_3_for_a_short_run_that_exploded(tmp_path):
    """The same through the command line: exit 3, the error line, and no --save written."""
    from test_cli import run as cli
    ckpt = tmp_path / "exploded.safetensors"
    p = cli("train", "--limit", "500", "--test-limit", "200", "--epochs", "1", "--lr", "1000", "--quiet",
            "--save", str(ckpt))
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "diverged" in p.stderr and "Traceback" not in p.stderr
    assert not ckpt.exists() and "nothing was saved" in p.stdout, p.stdout     # not "left as it was": there was none


def test_a_run_too_short_for_the_guard_still_warns(tmp_path):
    """Guards against a run of 4 steps at learning rate 1000 (3 of them exploded: under the guard's
    4) ending with loss 1.6e9, exit 0 and not a word (a first user's trial): one warning line with
    a smaller rate to try; the run itself is as asked (exit 0, saved)."""
    from test_cli import run as cli
    ckpt = tmp_path / "short.safetensors"
    p = cli("train", "--hidden", "8", "--limit", "64", "--test-limit", "64", "--batch-size", "16", "--epochs", "1",
            "--lr", "1000", "--quiet", "--save", str(ckpt))
    assert p.returncode == 0 and ckpt.exists(), (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: the training loss ended at ") and "(--lr 100)" in lines[0]
    quiet = cli("train", "--hidden", "8", "--limit", "64", "--test-limit", "64", "--batch-size", "16", "--epochs", "1",
                "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr        # an ordinary run: no warning


@pytest.mark.slow
def test_an_honest_noisy_run_is_not_flagged(mnist, device):
    """Guards against the explosion detector firing on noise: plain SGD at learning rate 0.5 (10x the
    original recipe's) with batches of 8 swings its batch loss well above the epoch's mean, yet
    trains to over 80% on a 2,000-image subset in one epoch; no flag may rise at any point."""
    from mnist_viz.compute.arch import Architecture
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.recipe import RECIPES
    from mnist_viz.compute.run import Run
    recipe = RECIPES["original"].with_changes(batch_size=8, lr=0.5, epochs=1)
    run = Run(Sequential(Architecture.mlp([784, 128, 10]), seed=0), GpuDataset(mnist, 2000, 2000), recipe)
    while not run.finished:
        run.run_steps(25)
        assert run.read_flags() == 0, run.metrics.read_state()
    loss = run.metrics.read_history(0, run.steps_taken)[:, 0]
    assert loss[50:].max() > 3 * loss[50:].mean()           # noisy: batches far above the mean
    assert run.evaluate()["accuracy"] > 0.80


def _accuracy_of_current_weights(app) -> float:
    """The test accuracy of the weights in the model now, by an evaluation of its own (its own
    metrics: the window's record of evaluations is left alone)."""
    from mnist_viz.compute.device import get_device
    from mnist_viz.compute.evaluation import Evaluation
    from mnist_viz.compute.metrics import RunMetrics
    dev = get_device()
    metrics = RunMetrics(app.session.data.num_classes)
    enc = dev.device.create_command_encoder()
    Evaluation(app.model, app.session.data, metrics).encode(enc)
    dev.submit(enc)
    return metrics.read_evaluation()["accuracy"]


def _shown_test_percent(app) -> str | None:
    """The test accuracy the status bar prints ('97.33'), or None where it prints none."""
    import re
    from mnist_viz.viz.panels.menu import status_line
    found = re.search(r"test (\d+\.\d\d)%", status_line(app.view_state()))
    return found.group(1) if found else None


def test_the_test_accuracy_shown_after_a_divergence_is_of_the_restored_weights(make_app):
    """Guards against the window showing, after a divergence restore, the test accuracy of the
    diverged weights: an evaluation (Evaluate pressed, or the epoch's) that ran after the GPU
    raised the flag but before the readout brought the flag to the CPU scored the blown-up
    weights (about 10%); the restore then put the epoch-start weights back (97%) while the
    status bar went on printing the 10% as 'test'. Whatever is printed from the restore on
    must be the restored weights' accuracy, and it must come back by itself."""
    from mnist_viz.viz.session import WatchSettings
    from conftest import speed_index
    app = make_app(limit=1024, test_limit=300,
                   recipe=Recipe(batch_size=16, lr=1e6, **PLAIN), watch=WatchSettings(speed=speed_index(4)))
    app.readout.interval = float("inf")          # no read: the CPU does not learn of the flag yet
    run = app.session.run
    act(app, "train")
    for _ in range(40):
        app.draw_offscreen()
        if run.diverged(run.read_flags()):
            break
    assert run.diverged(run.read_flags()) and app.session.status == "running"
    act(app, "evaluate")                         # of the diverged weights
    for _ in range(40):
        app.draw_offscreen()
        if not app.session.evaluating:
            break
    assert not app.session.evaluating
    app.readout.interval = 0.0                   # now the flag comes back: noticed, restored
    for _ in range(40):
        app.draw_offscreen()
        if app.session.status == "diverged":
            break
    assert app.session.status == "diverged"
    restored = _accuracy_of_current_weights(app)
    want = f"{restored * 100:.2f}"
    seen = []
    for _ in range(40):
        shown = _shown_test_percent(app)
        seen.append(shown)
        assert shown in (None, want), (shown, want, seen)
        if shown == want:
            break
        app.draw_offscreen()
    assert seen[-1] == want, seen


def test_the_cli_says_when_the_first_epoch_was_already_unhealthy(tmp_path):
    """Guards against "nothing was learned before it diverged" right after the user watched epoch 1
    finish (at 20%): its loss was already over the bound, so no healthy snapshot was taken."""
    from test_cli import run as cli
    p = cli("train", "--limit", "500", "--test-limit", "200", "--epochs", "6", "--lr", "0.85", "--schedule",
            "constant", "--quiet", "--save", str(tmp_path / "m.safetensors"))
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "diverged in epoch 2" in p.stderr, p.stderr
    assert "the loss was already over the divergence bound in epoch 1, so no healthy weights were learned: " \
           "nothing was saved" in p.stdout, p.stdout
