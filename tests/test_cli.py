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


def run(*args, timeout=600, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"), XDG_RUNTIME_DIR="/tmp")
    return subprocess.run([sys.executable, "-m", "mnist_viz.viz", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd)


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
    (["--offscreen", "--size", "10x10"], "--size 10x10: the panels need at least 320x240"),
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


def idx_dataset(d: Path, side: int = 28, classes: int = 10, n_train: int = 40, n_test: int = 20) -> Path:
    """A tiny IDX dataset of random side x side images in `classes` classes."""
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 255, (n, side, side), dtype=np.uint8)
        (d / f"{name}-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"".join(
            int(s).to_bytes(4, "big") for s in images.shape) + images.tobytes())
        (d / f"{name}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") +
                                                      (np.arange(n) % classes).astype(np.uint8).tobytes())
    return d


@pytest.mark.parametrize("args,line", [
    (["trian", "--epochs", "1"], "error: unknown command 'trian'; did you mean 'train'? (commands: train, eval)"),
    (["evl"], "error: unknown command 'evl'; did you mean 'eval'? (commands: train, eval)"),
    (["model.safetensors"], "error: unknown command 'model.safetensors' (commands: train, eval)"),
    (["--offscreen", "trian"], "error: unknown command 'trian'; did you mean 'train'? (commands: train, eval)"),
    (["--offscreen", "train"], "error: 'train' is a command: put it first (mnist-viz train [options])"),
    (["--epochs", "1"], "error: unrecognized arguments: --epochs 1"),      # not close to a command: argparse's
    (["--data", "train", "--frames", "3"], "error: --frames only applies offscreen"),   # an option's value
])
def test_a_mistyped_command_is_named_with_the_closest_one(args, line):
    """Guards against `mnist-viz trian` saying only 'unrecognized arguments' (the window takes no
    words, so a word in first place is a command), and against an option's value (`--data train`)
    being taken for one."""
    p = run(*args)
    assert_one_line_error(p)
    assert p.stderr.strip().startswith(line), p.stderr


def test_version_is_the_installed_packages():
    """Guards against a missing --version (it was an unrecognized argument)."""
    from importlib import metadata
    p = run("--version")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout == f"mnist-viz {metadata.version('mnist-viz')}\n"


def test_version_without_metadata_is_pyprojects(monkeypatch):
    """Guards against --version failing in a checkout that was never installed."""
    import importlib.metadata
    import tomllib
    from mnist_viz.viz.cli import version

    def none(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", none)
    assert version() == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_help_gives_every_recipes_value_of_every_option():
    """Guards against `train --help` showing the default and original recipes' values only (the cnn
    recipe's shift 2 and lr 0.05 were nowhere)."""
    from mnist_viz.compute.recipe import FIELDS, RECIPES
    from mnist_viz.viz.cli import build_parser
    actions = [a for a in build_parser()[0]._actions if a.dest in FIELDS]
    assert {a.dest for a in actions} >= {"epochs", "lr", "shift", "momentum", "nesterov", "schedule"}
    for a in actions:
        for name, recipe in RECIPES.items():
            value = getattr(recipe, a.dest)
            assert (f"default {value}" if name == "default" else f"{name} recipe {value}") in a.help, (a.dest, a.help)


@pytest.mark.parametrize("recorded", [True, False])
def test_a_checkpoint_for_other_data_says_which_data_it_reads(tmp_path, recorded):
    """Guards against 'model 196-128-3 does not fit the dataset' with no fix: a file that records its
    images says what it was trained on and --data; one that records nothing still names --data."""
    from safetensors.numpy import save_file
    rng = np.random.default_rng(0)
    tensors = {"0.weight": rng.standard_normal((128, 196), np.float32), "0.bias": np.zeros(128, np.float32),
               "2.weight": rng.standard_normal((3, 128), np.float32), "2.bias": np.zeros(3, np.float32)}
    meta = {"architecture": "Linear(196,128),ReLU(),Linear(128,3)", "image_shape": "14x14", "format": "mnist-viz 2"}
    save_file(tensors, tmp_path / "s14.safetensors", metadata=meta if recorded else None)
    (tmp_path / "d28").mkdir()
    p = run("eval", "--checkpoint", str(tmp_path / "s14.safetensors"), "--data", str(idx_dataset(tmp_path / "d28")))
    fix = ("it was trained on 14 x 14 images in 3 classes: use --data DIR with such a dataset" if recorded
           else "use --data DIR with the images and classes it was trained on")
    assert_one_line_error(p, "s14.safetensors: model 196-128-3 does not fit the dataset (28 x 28 images", fix)


@pytest.fixture(scope="module")
def dropout_run(tmp_path_factory):
    """One tiny run: 40 images, a batch of 64 (one step, 24 of its rows padding), an MLP with dropout."""
    data = idx_dataset(tmp_path_factory.mktemp("tiny"))
    p = run("train", "--data", str(data), "--epochs", "1", "--hidden", "64,32", "--dropout", "0.2",
            "--batch-size", "64", "--optimizer", "adam")
    assert p.returncode == 0, p.stderr
    return p


def test_adam_without_a_rate_gets_its_usual_one_and_one_epoch_is_singular(dropout_run):
    """Guards against `--optimizer adam` training Adam at SGD's 0.1 (Recipe.with_optimizer: 1e-3
    unless --lr says otherwise) and against "1 epochs" on the recipe line."""
    assert "recipe: default: adam, lr 0.001 cosine to 0, batch 64, 1 epoch," in dropout_run.stdout, dropout_run.stdout


@pytest.mark.parametrize("args,notes", [
    (["--optimizer", "adam", "--momentum", "0.5", "--nesterov"], ["--momentum", "--nesterov"]),
    (["--momentum", "0", "--nesterov"], ["--nesterov changes nothing in this run: Nesterov needs momentum above 0"]),
    (["--schedule", "constant", "--min-lr", "0.01", "--gamma", "0.3"], ["--min-lr", "--gamma"]),
    (["--schedule", "step", "--gamma", "0.3", "--step-epochs", "2"], []),
    (["--optimizer", "adam"], []),
])
def test_settings_the_run_never_reads_get_a_note(args, notes, capsys):
    """Guards against `--optimizer adam --momentum 0.5` (and the like) being taken without a word
    though the setting changes nothing (a first user's trial): one note line each, none for
    settings the run uses."""
    from mnist_viz.viz.cli import build_parser, note_idle_settings, recipe_from_args
    parsed = build_parser()[0].parse_args(args)
    note_idle_settings(parsed, recipe_from_args(parsed))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(notes), lines
    for line, note in zip(lines, notes):
        assert line.startswith(f"note: {note}"), line


def test_the_model_line_shows_the_dropout(dropout_run):
    """Guards against `--hidden 64,32 --dropout 0.2` printing `model: 784-64-32-10`, as if it had none."""
    assert "model: 784-64-32-10, dropout 0.2 (" in dropout_run.stdout, dropout_run.stdout


def test_samples_per_second_counts_the_images_not_the_padded_rows(dropout_run):
    """Guards against samples/s counting a padded batch: 40 images at batch 64 were 64 samples."""
    m = re.search(r"  (\d+\.\d+) s  ([\d,]+) samples/s", dropout_run.stdout)
    assert m, dropout_run.stdout
    seconds, rate = float(m.group(1)), int(m.group(2).replace(",", ""))
    # rate * seconds is the images, up to the rounding of both numbers
    assert abs(rate * seconds - 40) <= 0.5 * seconds + 0.0005 * rate + 0.01, (rate, seconds)


@pytest.mark.parametrize("args,fragment", [
    (["train", "--save", ""], "--save: an empty path"),
    (["--offscreen", "--screenshot", " "], "--screenshot: an empty path"),
    (["eval", "--checkpoint", ""], "--checkpoint: an empty path"),
])
def test_an_empty_path_is_refused(args, fragment):
    """Guards against '' becoming '.' (argparse's Path('')): `--save ''` said '--save .: is a directory'."""
    assert_one_line_error(run(*args), fragment)


def test_a_checkpoint_that_is_a_png_or_missing_says_so_plainly(tmp_path):
    """Guards against a screenshot given as a checkpoint reading as a header length of 7e17 bytes,
    and a missing file's name printed twice."""
    png = tmp_path / "shot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert_one_line_error(run("eval", "--checkpoint", str(png)), "shot.png: is a PNG image, not a checkpoint")
    p = run("eval", "--checkpoint", "nope.safetensors")
    assert_one_line_error(p, "--checkpoint nope.safetensors: no such file; give a .safetensors file, or mlp / cnn "
                             "for the shipped models")
    assert p.stderr.count("nope.safetensors") == 1, p.stderr


def test_the_shipped_models_are_reachable_by_name_from_anywhere(tmp_path):
    """Guards against the shipped CNN being out of reach once installed (a first user's trial): the
    README's `--checkpoint assets/mnist-cnn.safetensors` failed outside the checkout, `eval --arch
    cnn` read the shipped MLP's file as a CNN and blamed it, and `--checkpoint cnn` was a missing
    file. From a directory with no assets/: the shipped file's name, `cnn`, and `--arch cnn` alone
    all evaluate the shipped CNN; a file of that name that is there is still read as given."""
    for args in (["--checkpoint", "assets/mnist-cnn.safetensors"], ["--checkpoint", "cnn"], ["--arch", "cnn"]):
        p = run("eval", *args, "--test-limit", "64", cwd=tmp_path)
        assert p.returncode == 0 and "mnist-cnn.safetensors (" in p.stdout and "Conv2d" in p.stdout, (args, p.stderr)
    p = run("eval", "--checkpoint", "mlp", "--test-limit", "64", cwd=tmp_path)
    assert p.returncode == 0 and "mnist-784-128-10.safetensors (784-128-10)" in p.stdout, p.stderr
    (tmp_path / "cnn").write_text("not a model")
    assert_one_line_error(run("eval", "--checkpoint", "cnn", cwd=tmp_path), "cnn: ")


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch, tmp_path):
    """Guards against autosaves following the working directory (the XDG spec ignores a relative value)."""
    from mnist_viz.viz.files import default_autosave_dir
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", "relcache")
    assert default_autosave_dir() == tmp_path / ".cache" / "mnist-viz" / "autosaves"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "abs"))
    assert default_autosave_dir() == tmp_path / "abs" / "mnist-viz" / "autosaves"


def test_a_batch_larger_than_the_training_set_is_said_once():
    """Guards against `--batch-size 5000` over 2000 images passing without a word (a first user's
    trial: the header said batch 5000, each epoch was one step of 2000): one `warning:` line, the
    run goes on; a batch that fits gets none."""
    p = run("train", "--limit", "40", "--test-limit", "40", "--epochs", "1", "--batch-size", "64", "--quiet")
    warned = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert p.returncode == 0 and warned == ["warning: --batch-size 64 is above the 40 training images: each epoch "
                                            "is one step of 40"], p.stderr
    p = run("train", "--limit", "40", "--test-limit", "40", "--epochs", "1", "--batch-size", "40", "--quiet")
    assert p.returncode == 0 and "warning:" not in p.stderr, p.stderr


@pytest.mark.parametrize("argv,hint", [
    (["--trian"], "unrecognized arguments: --trian; did you mean '--train'?"),
    (["train", "--epohcs", "2"], "unrecognized arguments: --epohcs 2; did you mean '--epochs'?"),
    (["eval", "--chekpoint=x"], "unrecognized arguments: --chekpoint=x; did you mean '--checkpoint'?"),
    (["--evla"], "unrecognized arguments: --evla; did you mean the command 'eval' (mnist-viz eval [options])?"),
    (["train", "--hidden", "8", "--", "--epochs", "5"], "a lone '--' ends the options"),
    (["--size", "-1600x1000"], "argument --size: '-1600x1000' is not a value for it"),
    (["--offscreen", "--frames", "99999999999999999999"], "argument --frames: expected a number in 1..1,000,000"),
])
def test_a_mistyped_option_gets_the_closest_one(argv, hint):
    """Guards against `mnist-viz --trian` (a first user's typo) answering only `unrecognized
    arguments` where a mistyped command gets a suggestion: the closest option of that command,
    or the command a dashed word is close to; one line, exit 2."""
    p = run(*argv)
    assert_one_line_error(p, hint)


def test_eval_needs_only_the_test_files(tmp_path):
    """Guards against `eval --data DIR` refusing a directory of the test files alone (a first
    user's trial: evaluation reads no training image, yet it asked for them by internal key
    names): eval scores the test set; train still needs, and names, the training files."""
    import shutil
    for f in (ROOT / "assets" / "mnist").glob("t10k-*"):
        shutil.copy(f, tmp_path / f.name)
    p = run("eval", "--data", str(tmp_path), "--test-limit", "200")
    assert p.returncode == 0 and "test accuracy: " in p.stdout, p.stderr
    assert float(p.stdout.split("test accuracy: ")[1].split("%")[0]) > 90
    assert_one_line_error(run("train", "--data", str(tmp_path), "--limit", "64"),
                          f"{tmp_path}: missing train images (one of train-images-idx3-ubyte, ",
                          "; train labels (one of ")


def test_eval_of_a_test_set_without_its_top_class(tmp_path):
    """Guards against a test set that lacks class 9 (a small or filtered one) being read as a
    9-class dataset the 10-class model does not fit (a first user's trial): it is scored."""
    from mnist_viz.compute.idx import load_dataset
    from test_idx_and_checkpoint import write_idx
    ds = load_dataset(ROOT / "assets" / "mnist")
    keep = ds.test_labels != 9
    write_idx(tmp_path / "t10k-images-idx3-ubyte", ds.test_images[keep][:300])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", ds.test_labels[keep][:300])
    p = run("eval", "--data", str(tmp_path))
    assert p.returncode == 0 and float(p.stdout.split("test accuracy: ")[1].split("%")[0]) > 90, p.stderr


def test_a_saved_accuracy_says_on_how_many_test_images(tmp_path):
    """Guards against a checkpoint's recorded test accuracy hiding a --test-limit subset (an
    autosave said 99.00% on 200 images of a model `eval` scores 97.40% on 2,000: a first user's
    trial): the file records the test images, and loading it says so."""
    from mnist_viz.compute.checkpoint import load_state_dict
    from mnist_viz.viz.files import describe_accuracy
    path = tmp_path / "m.safetensors"
    p = run("train", "--hidden", "8", "--limit", "64", "--test-limit", "50", "--epochs", "1", "--quiet",
            "--save", str(path))
    assert p.returncode == 0, p.stderr
    meta = load_state_dict(path)[1]
    assert meta["test_images"] == "50"
    assert describe_accuracy(meta).endswith(" on 50 test images)"), describe_accuracy(meta)
    assert describe_accuracy({"test_accuracy": "0.9740"}) == " (test accuracy 97.40%)"   # an older file
