"""Runs side by side (compute/comparison.py, `mnist-viz train --compare`): a run in a
comparison trains exactly as it does alone, removing one leaves the others alone, and
the command line's table and its errors. Tiny nets and subsets: lavapipe is slow."""
import re

import numpy as np
import pytest

from mnist_viz.compute.comparison import Comparison
from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.device import get_device
from mnist_viz.compute.nn import mlp
from mnist_viz.compute.recipe import Recipe
from mnist_viz.compute.run import Run

LIMIT = 96


def recipes():
    """Two runs that differ in everything a comparison varies: optimizer, learning rate,
    batch size (so their epochs end at different steps), seed, shifts, engine."""
    a = Recipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, seed=3, shift=1)
    b = Recipe(epochs=2, batch_size=32, optimizer="adam", lr=0.002, seed=7, shift=0, schedule="constant")
    return [(a, [784, 12, 10], "auto"), (b, [784, 8, 10], "graph")]


def alone(mnist, recipe, sizes, engine, steps):
    """The run trained by itself, on a dataset of its own."""
    run = Run(mlp(sizes, seed=recipe.seed), GpuDataset(mnist, limit=LIMIT, test_limit=64), recipe, engine=engine)
    run.run_steps(steps)
    return run.model.state_dict()


def advance_all(comp, chunk, total):
    """Drive a comparison as the front ends do: several runs' steps in each encoder."""
    dev = get_device()
    while any(e.run.steps_taken < total and not e.run.finished for e in comp):
        enc = dev.device.create_command_encoder()
        comp.advance(enc, min(chunk, total))
        dev.submit(enc)


def test_runs_sharing_the_data_train_to_exactly_the_weights_of_each_run_alone(mnist):
    """Guards against runs disturbing each other through what they share: one epoch order
    for all (the second run's shuffle overwriting the first's before its steps run), one
    scratch or uniform buffer, or a step encoded for the wrong run. Bit-identical weights
    over two epochs (reshuffled) with different batch sizes and engines."""
    data = GpuDataset(mnist, limit=LIMIT, test_limit=64)
    comp = Comparison(data)
    for recipe, sizes, engine in recipes():
        comp.add(mlp(sizes, seed=recipe.seed), recipe, engine=engine)
    assert {e.run.engine for e in comp} == {"compiled", "graph"}
    assert all(e.run.data.train.images is data.train.images for e in comp)   # uploaded once
    advance_all(comp, 5, 10 ** 6)
    assert all(e.run.finished for e in comp)
    for e, (recipe, sizes, engine) in zip(comp, recipes()):
        want = alone(mnist, recipe, sizes, engine, e.run.steps_taken)
        got = e.model.state_dict()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{e.name} {k}")


def test_removing_a_run_leaves_the_other_bit_identical(mnist):
    """Guards against remove() tearing down shared state (the dataset, the other run's
    permutation or buffers): after run 1 goes, run 2 keeps training to exactly the
    weights it has alone."""
    data = GpuDataset(mnist, limit=LIMIT, test_limit=64)
    comp = Comparison(data)
    (ra, sa, ea), (rb, sb, eb) = recipes()
    first = comp.add(mlp(sa, seed=ra.seed), ra, engine=ea)
    second = comp.add(mlp(sb, seed=rb.seed), rb, engine=eb)
    advance_all(comp, 2, 2)
    before = second.model.state_dict()
    comp.remove(first)
    del first
    assert [e for e in comp] == [second]
    np.testing.assert_array_equal(second.model.state_dict()["0.weight"], before["0.weight"])
    advance_all(comp, 2, 5)
    want = alone(mnist, rb, sb, eb, 5)
    for k in want:
        np.testing.assert_array_equal(second.model.state_dict()[k], want[k], err_msg=k)


def test_pause_and_step_one_run(mnist):
    """Guards against pause or step reaching the wrong run: a paused run takes no step,
    a step request takes exactly one, the other runs keep their pace."""
    data = GpuDataset(mnist, limit=LIMIT, test_limit=64)
    comp = Comparison(data, max_runs=2)
    a = comp.add(mlp([784, 4, 10], seed=1), Recipe(epochs=1, batch_size=8))
    b = comp.add(mlp([784, 4, 10], seed=2), Recipe(epochs=1, batch_size=8))
    with pytest.raises(ValueError, match="at most 2 runs"):
        comp.add(mlp([784, 4, 10]), Recipe())
    enc = get_device().device.create_command_encoder()
    comp.pause(a)
    assert comp.advance(enc, 3) == {a: 0, b: 3}
    comp.step(a)
    assert comp.advance(enc, 3) == {a: 1, b: 3}
    assert comp.advance(enc, 3) == {a: 0, b: 3}
    comp.resume(a)
    assert comp.advance(enc, 2) == {a: 2, b: 2}
    get_device().submit(enc)
    assert (a.run.steps_taken, b.run.steps_taken) == (3, 11) and a.status == "running"


# -- the command line --------------------------------------------------------------------------------
COMMON = ["--limit", "128", "--test-limit", "100", "--epochs", "2", "--hidden", "8", "--quiet"]


def cli(capsys, *args):
    from mnist_viz.viz.cli import main
    code = main(["train", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_table_equals_each_run_trained_alone(capsys):
    """Guards against the comparison changing a run (shared epoch order, a run stepping past
    its epoch end while the others catch up, overrides applied to the wrong run): each
    row's test accuracy and loss are those of `mnist-viz train` of that run alone, with
    the same seed; and a line per run per epoch is printed."""
    code, out, err = cli(capsys, "--compare", "sgd lr=0.05 seed=1", "adam lr=0.003 batch=32 seed=2 hidden=12", *COMMON)
    assert code == 0, err
    assert len(re.findall(r"^epoch [12]/2  run [12]  loss \d\.\d{4}  train acc .*test acc", out, re.M)) == 4, out
    rows = re.findall(r"^\s+(\d)  (.+?)\s+(\d+\.\d\d)%\s+(\d\.\d{4})\s+(\d+\.\d\d)$", out, re.M)
    assert [(r[0], r[1]) for r in rows] == [("1", "sgd lr=0.05 seed=1"), ("2", "adam lr=0.003 batch=32 seed=2 hidden=12")]
    alone = [["--optimizer", "sgd", "--lr", "0.05", "--seed", "1", *COMMON],
             ["--optimizer", "adam", "--lr", "0.003", "--batch-size", "32", "--seed", "2", *COMMON, "--hidden", "12"]]
    for row, args in zip(rows, alone):
        code, out1, err1 = cli(capsys, *args)
        assert code == 0, err1
        assert out1.strip().splitlines()[-1] == f"test accuracy: {row[2]}%", (row, out1)
        last_epoch = re.findall(r"^epoch 2/2  loss (\d\.\d{4})", out1, re.M)
        assert last_epoch == [row[3]], (row, out1)


@pytest.mark.parametrize("runs,fragment", [
    (["sgd lr=x", "adam"], "--compare run 1 ('sgd lr=x'): lr: expected a number, got 'x'"),
    (["sgd", "adam lrr=1"], "--compare run 2 ('adam lrr=1'): unknown key 'lrr'"),
    (["sgd", "adam batch=0"], "--compare run 2 ('adam batch=0'): batch must be in 1..65535"),
    (["sgd", "rmsprop"], "--compare run 2 ('rmsprop'): 'rmsprop' is neither a recipe"),
    (["cnn original", "sgd"], "--compare run 1 ('cnn original'): 'original' is a recipe too; a run starts from one "
                              "recipe, named first ('cnn' here), then its changes"),
    (["sgd", "lr=0.1 cnn"], "--compare run 2 ('lr=0.1 cnn'): 'cnn' is a recipe too; a run starts from one recipe, "
                            "named first, then its changes"),
    (["sgd", "nesterov=maybe"], "--compare run 2 ('nesterov=maybe'): nesterov: expected true or false"),
    (["sgd", "arch=Linear(3,10)"], "--compare run 2 ('arch=Linear(3,10)'): arch=Linear(3,10): layer 0"),
    (["sgd", "adam lr=1 lr=2"], "--compare run 2 ('adam lr=1 lr=2'): 'lr=1' and 'lr=2' both set lr; give it once"),
    (["sgd", "adam sgd"], "--compare run 2 ('adam sgd'): 'adam' and 'sgd' both set optimizer"),
    (["sgd", "lr=0.01 min_lr=0.1"], "--compare run 2 ('lr=0.01 min_lr=0.1'): min_lr must be at most the learning "
                                    "rate (0.01)"),
    (["sgd"], "--compare takes 2 to 4 runs, got 1"),
    (["a=1"] * 5, "--compare takes 2 to 4 runs, got 5"),
])
def test_compare_errors_name_the_run_and_the_key(capsys, runs, fragment):
    """Guards against a bad run reaching the GPU or failing with a traceback, and against
    an error that does not say which run and which key to fix: one `error:` line, exit 2."""
    code, out, err = cli(capsys, "--compare", *runs, "--limit", "64")
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "run 1:" not in out      # nothing was built


def test_a_runs_network_error_names_the_key_it_wrote_not_the_option(capsys):
    """Guards against a --compare run's too-wide hidden= (or a wrong arch=) being reported as
    `--hidden` / `--arch`, options the user never typed (a first user's trial), and against the
    command's own --hidden being renamed: each line names the setting and its fix as written."""
    code, out, err = cli(capsys, "--compare", "sgd", "hidden=65535", "--limit", "64")
    assert code == 2 and err.startswith("error: --compare run 2 ('hidden=65535'): hidden=65535: the model "), err
    assert "; use hidden=" in err and "--hidden" not in err, err
    code, out, err = cli(capsys, "--compare", "sgd", "lr=0.01 hidden=65535,8", "--limit", "64")
    assert code == 2 and "): hidden=65535,8: the model" in err and err.rstrip().endswith("use smaller hidden= sizes")
    code, out, err = cli(capsys, "--compare", "sgd", "arch=Linear(784,5)", "--limit", "64")
    assert code == 2 and "): arch=Linear(784,5): layer 0 Linear(784,5) gives 5 class scores" in err, err
    code, out, err = cli(capsys, "--compare", "sgd", "adam", "--hidden", "65535", "--limit", "64")
    assert code == 2 and "('sgd'): --hidden 65535: the model" in err and "use --hidden " in err, err


def test_compare_given_twice_adds_its_runs(capsys):
    """Guards against a second --compare silently replacing the first's runs (argparse's default:
    a first user's trial trained 2 runs of 3)."""
    code, out, err = cli(capsys, "--compare", "hidden=8", "--compare", "hidden=8 seed=1", "hidden=6", "--limit", "64",
                         "--test-limit", "64", "--epochs", "1", "--quiet")
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines() if re.match(r"run \d: ", line)] == ["run 1", "run 2", "run 3"]


def test_a_run_that_blew_up_unflagged_is_named_in_a_warning(capsys):
    """Guards against a run too short for the divergence guard (4 steps at lr 1000) sitting in
    the table with loss 1e5-1e9 as if it were a result: one warning line names it (and not the
    healthy run), with a rate to try in the run's own key."""
    code, out, err = cli(capsys, "--compare", "lr=1000", "sgd", "--hidden", "8", "--limit", "64", "--test-limit", "64",
                         "--batch-size", "16", "--epochs", "1", "--quiet")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("warning: run 1 (lr=1000): the training loss ended at "), err
    assert "(lr=100)" in lines[0]


def test_an_optimizer_named_without_a_rate_gets_its_usual_one():
    """Guards against `--compare sgd adam` racing Adam at SGD's 0.1 (a first user's 67% against
    90%): a change of optimizer without lr= brings that optimizer's usual rate (Adam 1e-3), a
    given lr= wins, and naming the recipe's own optimizer changes nothing."""
    from mnist_viz.compute.comparison import parse_run
    from mnist_viz.compute.recipe import RECIPES, Recipe
    base = Recipe()
    assert parse_run("adam", base, RECIPES).recipe.lr == 1e-3
    assert parse_run("adam lr=0.01", base, RECIPES).recipe.lr == 0.01
    assert parse_run("lr=0.01 adam", base, RECIPES).recipe.lr == 0.01
    assert parse_run("sgd", base, RECIPES).recipe == base
    # the cosine floor keeps its share of the rate (0.05 -> 0.001 becomes 0.001 -> 2e-05), not a flat 0.001
    assert parse_run("original adam", base, RECIPES).recipe.min_lr == pytest.approx(2e-5)


def test_the_compare_command_does_not_import_the_cli_that_imports_it():
    """Guards against the import circle viz/cli.py -> viz/compare.py -> viz/cli.py (`train
    --compare` reused the train helpers from cli.py, which imports compare for --compare):
    in a fresh interpreter, importing the compare command must not load cli.py; the helpers
    both use come from viz/headless.py."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    code = ("import sys, mnist_viz.viz.compare as c; "
            "print('mnist_viz.viz.cli' in sys.modules, c.say.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(root / "tests" / "checkout"), "PATH": "/usr/bin:/bin"}, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "mnist_viz.viz.headless"], out.stdout


def test_a_runs_own_network_over_the_commands_options_is_said(capsys):
    """Guards against `--compare 'hidden=32' 'lr=0.05' --arch 784-64-10` (a first user's trial)
    quietly training run 1 without the --arch the command gave (alone, --arch with --hidden is an
    error): one `note:` line per run whose arch= / hidden= sets the command's network options
    aside, naming them; a run that keeps them gets none."""
    code, out, err = cli(capsys, "--compare", "hidden=32", "lr=0.05", "--arch", "784-64-10", "--limit", "64",
                         "--test-limit", "64", "--epochs", "1")
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert code == 0 and notes == ["note: --compare run 1 ('hidden=32'): its own network replaces --arch 784-64-10 "
                                   "for this run"], err
    code, out, err = cli(capsys, "--compare", "arch=784-32-10", "hidden=16", "--dropout", "0.5", "--limit", "64",
                         "--test-limit", "64", "--epochs", "1")
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert code == 0 and notes == ["note: --compare run 1 ('arch=784-32-10'): its own network replaces --dropout 0.5 "
                                   "for this run"], err
