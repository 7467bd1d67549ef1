"""What the headless commands share: `mnist-viz train` of one run (cli.py) and of runs side
by side (`--compare`, compare.py). The exit codes, the line printer that outlives a closed
pipe, the stop on a signal, the dataset, the recipe fields given as options, and the checks
made before the GPU holds anything, whose errors name a setting as the user wrote it (an
option, or a key of a --compare run: `written`; the window's Runs panel reads runs the same
way). It imports neither command, so both import it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_GPU_LOST = 4


def say(text: str, err: bool = False) -> None:
    """Print a line; a closed stdout (`... | head -1`) must not stop a training run."""
    stream = sys.stderr if err else sys.stdout
    try:
        try:
            print(text, file=stream, flush=True)
        except UnicodeEncodeError:  # a file name the stream's encoding cannot show
            enc = getattr(stream, "encoding", None) or "ascii"
            print(text.encode(enc, "backslashreplace").decode(enc), file=stream, flush=True)
    except (BrokenPipeError, ValueError):
        # Nobody reads any more: send the rest to /dev/null and carry on.
        devnull = open(os.devnull, "w")
        if err:
            sys.stderr = devnull
        else:
            sys.stdout = devnull


def warn_of_name(option: str, path, note: str | None) -> None:
    """One `warning:` line on stderr where the name given to `option` misleads (`note`:
    pathinfo.suffix_note); the file is written all the same, as asked."""
    if note:
        from ..compute.pathinfo import printable_path
        say(f"warning: {option} {printable_path(path)}: {note}", err=True)


def option_changes(args) -> dict:
    """The recipe fields given on the command line (the options named as Recipe fields)."""
    from ..compute.recipe import FIELDS
    return {f: getattr(args, f) for f in FIELDS if getattr(args, f, None) is not None}


def written(key: str, value=None, keys=frozenset()) -> str:
    """A setting as the user wrote it, for the message that names it: where `keys` holds it, a
    key of a --compare run's text (`hidden=256,128`, `arch=...`; a recipe there is a bare word),
    else the command's option (`--hidden 256,128`; `--arch` alone, its text being long). A
    message that said `--hidden` about a run's hidden= would send the user to the wrong place."""
    if key not in keys:
        return f"--{key}" if value is None or key == "arch" else f"--{key} {value}"
    return str(value) if key == "recipe" else f"{key}={'' if value is None else value}"


def run_network_args(args, spec) -> argparse.Namespace:
    """`args` (the command's options) with the network of a --compare run's text (`spec`, a
    comparison.RunSpec: arch= or hidden=, or the recipe it names) in place, for
    architecture_for; the window's Runs panel reads its runs the same way."""
    own = dict(vars(args))
    if spec.named is not None:
        own.update(recipe=spec.named)
    if spec.arch is not None:
        own.update(arch=spec.arch, hidden=None, dropout=None)
    elif spec.hidden is not None:
        own.update(arch=None, hidden=list(spec.hidden))
    return argparse.Namespace(**own)


def architecture_for(args, ds, keys=frozenset()):
    """--arch, else the MLP of --hidden / --dropout, else the recipe's own network (the CNN of
    --recipe cnn), else the 128-unit MLP, for the dataset's images and classes (errors name
    the layer that does not fit, and the setting as `written`: `keys` are those a --compare
    run's text gave)."""
    from ..compute.arch import Architecture, ArchError, parse
    from ..compute.recipe import RECIPE_ARCH
    h, w = ds.image_shape
    text, recipe = args.arch, getattr(args, "recipe", None)
    from_recipe = text is None and args.hidden is None and args.dropout is None and recipe in RECIPE_ARCH
    if from_recipe:
        text = RECIPE_ARCH[recipe]
    try:
        if text is not None:
            arch = parse(text, (h, w))
        else:
            arch = Architecture.mlp([h * w, *(args.hidden or [128]), ds.num_classes], args.dropout or 0.0, (h, w))
        if arch.classes != ds.num_classes:
            last = len(arch.layers) - 1
            raise ArchError(f"layer {last} {arch.layers[last]} gives {arch.classes} class scores, the dataset has "
                            f"{ds.num_classes} classes")
    except ArchError as e:
        if from_recipe:     # the user gave no --arch to fix: say whose network it is and what to give instead
            from ..compute.comparison import NETWORK_KEYS
            instead = NETWORK_KEYS if "recipe" in keys else ()
            raise UserError(f"{written('recipe', recipe, keys)}: its network does not fit these {w} x {h} images in "
                            f"{ds.num_classes} classes ({e}); give {written('arch', None, instead)} or "
                            f"{written('hidden', None, instead)} for a network that fits them") from None
        raise UserError(f"{written('arch', args.arch, keys)}: {e}") from None
    return arch


def blown_up_note(loss: float, classes: int, lr: float, lr_name: str = "--lr") -> str | None:
    """A warning for a run that ends with its loss above the GPU's divergence bound (EXPLODE_FACTOR x
    ln C, shaders/step_metrics.wgsl) without having been flagged: too short a run for the guard
    (fewer than 4 steps above it) still trained on nonsense. None for an ordinary loss."""
    import math
    from ..compute.shaders import wgsl_constant
    bound = wgsl_constant("step_metrics.wgsl", "EXPLODE_FACTOR") * math.log(max(classes, 2))
    if not loss > bound:
        return None
    chance = math.log(max(classes, 2))
    return (f"the training loss ended at {loss:.4g}, above {bound:.2f} ({bound / chance:g} x the {chance:.2f} of a "
            f"guess of every class alike): the run learned nothing useful; try a smaller learning rate "
            f"({lr_name}{' ' if lr_name.startswith('--') else '='}{lr / 10:g})")


def network_text(arch) -> str:
    """The network for a log line: an MLP by its widths, with the dropout they would hide
    ('784-64-32-10, dropout 0.2'); any other network by its layers (they name their Dropout)."""
    from ..compute.arch import Dropout
    drops = [layer.p for layer in arch.layers if isinstance(layer, Dropout)]
    if drops and arch.short != arch.text:       # widths: a dropout after every hidden layer, one rate
        return f"{arch.short}, dropout {drops[0]:g}"
    return arch.short


def load_data(path: Path | None, need_train: bool = True):
    """--data (else the bundled MNIST); without `need_train` a test set alone will do (eval)."""
    from ..compute.idx import bundled_mnist_dir, load_dataset
    return load_dataset(path if path is not None else bundled_mnist_dir(), need_train=need_train)


class StopRequest:
    """Ctrl-C, SIGTERM (`timeout`, `docker stop`) and SIGHUP (a closed terminal) while training.

    The handler only notes the signal; the loop stops between chunks, so what is saved is
    the weights of exactly the steps counted (an exception raised by the signal between
    encoding a chunk and submitting it would leave the step counter ahead of the weights).
    A second signal stops at once. A signal ignored when the program started stays ignored
    (`nohup mnist-viz train &` must outlive its terminal)."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> "StopRequest":
        import signal
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                self._old[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        import signal
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _note(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


def check_network(args, arch, ds, limits, keys=frozenset()) -> None:
    """The network's parameters fit the device (compute/budget.py); the error names the setting
    that gave it and the fix as the user wrote them (`written`)."""
    from ..compute.budget import BudgetError, check_model, mlp_hidden_fit
    if args.arch is not None or not arch.is_mlp:
        option, fix = written("arch", args.arch, keys), f"use a narrower {written('arch', None, keys)}"
    else:
        hidden = args.hidden or [128]
        option = written("hidden", ",".join(map(str, hidden)), keys)
        fix = (f"use {written('hidden', mlp_hidden_fit(ds.input_size, ds.num_classes, limits), keys)} or less"
               if len(hidden) == 1 else f"use smaller {written('hidden', None, keys)} sizes")
    try:
        check_model(arch, limits, fix)
    except BudgetError as e:
        raise UserError(f"{option}: {e}") from None


def check_training(args, ds, recipe, keys=frozenset()):
    """Everything about a training run that can be wrong, before any GPU object exists:
    the architecture against the data, the step counter, and every size against the
    device's limits (compute/budget.py). Returns the architecture. `keys`: the network
    settings a --compare run's text gave (named so in the errors)."""
    from ..compute.budget import Limits, check_data, check_rows
    arch = architecture_for(args, ds, keys)
    n_train = min(args.limit or len(ds.train_images), len(ds.train_images))
    n_test = min(args.test_limit or len(ds.test_images), len(ds.test_images))
    try:
        recipe.steps(n_train)
    except ValueError as e:
        raise UserError(str(e)) from None
    limits = Limits.current()
    check_data(n_train, n_test, ds.image_shape, limits)
    check_network(args, arch, ds, limits, keys)
    check_rows(arch, recipe.batch_size, limits)
    return arch
