"""Command line: `mnist-viz` (the visualizer), `mnist-viz train`, `mnist-viz eval`.

Every user error (bad arguments, bad data or checkpoint files, no GPU adapter)
ends as one line `error: ...` and exit code 2; a diverged training run exits 3.
"""
from __future__ import annotations

import argparse
import collections
import difflib
import itertools
import os
import re
import struct
import sys
import time
from pathlib import Path

from .errors import UserError
from .headless import (EXIT_DIVERGED, EXIT_GPU_LOST, EXIT_USAGE, StopRequest, blown_up_note, check_training,
                       load_data, network_text, option_changes, say, warn_of_name)


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)       # for error(): the words around a bad one
        return super().parse_known_args(args, namespace)

    def error(self, message):  # argparse's two-line usage dump -> one line
        raise UserError(self._dash_value(message) or message + self._close_option(message))

    def _dash_value(self, message: str) -> str | None:
        """For `--size -1600x1000`: argparse reads a value that starts with '-' (and is not a
        number) as an option and says only 'expected one argument'; name the value."""
        m = re.fullmatch(r"argument (\S+?)(?:/\S+)?: expected one argument", message)
        argv = getattr(self, "_argv", [])
        if not m:
            return None
        for k, word in enumerate(argv[:-1]):
            if word in m.group(1).split("/") and argv[k + 1].startswith("-"):
                return (f"argument {word}: {argv[k + 1]!r} is not a value for it (a value that starts with '-' reads as "
                        f"an option); give {word} a value")
        return None

    def _close_option(self, message: str) -> str:
        """`; did you mean '--train'?` for a mistyped option (`--trian`) among unrecognized
        arguments, as a mistyped command gets; "" when none is close."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        if "--" in message.split(":", 1)[1].split():
            return "; a lone '--' ends the options, so what follows it is not read as one: leave the '--' out"
        for word in message.split(":", 1)[1].split():
            if word.startswith("--"):
                close, _ = _closest(word.split("=")[0][2:], [o[2:] for o in self._option_string_actions if o[:2] == "--"])
                if close:
                    return f"; did you mean '--{close}'?"
        return ""


def _closest(word: str, names: list[str]) -> tuple[str | None, float]:
    """(the name most like `word`, how alike: difflib's ratio), None below its usual 0.6."""
    best = max(names, key=lambda n: difflib.SequenceMatcher(None, word, n).ratio(), default=None)
    ratio = difflib.SequenceMatcher(None, word, best).ratio() if best else 0.0
    return (best, ratio) if ratio >= 0.6 else (None, ratio)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


MAX_FRAMES = 1_000_000      # offscreen frames: hours even at 60 fps


def _at_most(upper: int):
    """A whole number in 1..upper (argparse type)."""
    def parse(s: str) -> int:
        v = _positive_int(s)
        if v > upper:
            raise argparse.ArgumentTypeError(f"expected a number in 1..{upper:,}, got {v:,}")
        return v
    return parse


def _path(s: str) -> Path:
    """A file or directory path; an empty one is refused (Path('') is '.', the current directory)."""
    if not s.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or directory name")
    return Path(s)


def _float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
    return v


def _hidden(s: str) -> list[int]:
    parts = s.split(",")
    try:
        sizes = [int(x) for x in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128 or 256,128, got {s!r}") from None
    if not sizes or any(n < 1 or n > 65535 for n in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be between 1 and 65535, got {s!r}")
    return sizes


def _whole(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None


ARCH_HELP = ("the network as PyTorch writes it, the nn.Sequential layers separated by commas, e.g. "
             "'Conv2d(1,8,5,padding=2),ReLU(),MaxPool2d(2),Flatten(),Linear(1568,10)' "
             "(Linear, Conv2d, MaxPool2d, Flatten, ReLU, Dropout), an MLP's widths (784-256-128-10) or 'cnn' "
             "(the shipped CNN); default: the MLP of --hidden")


# Recipe fields the train command exposes, with their help (the defaults come from the recipes).
TRAIN_OPTIONS = {
    "epochs": (_positive_int, "epochs over the training set"),
    "batch_size": (_positive_int, "images per step"),
    "lr": (_float, "base learning rate; --optimizer adam without it: Adam's usual 0.001"),
    "min_lr": (_float, "final learning rate of the cosine schedule, at most --lr"),
    "gamma": (_float, "decay factor per period (step, exponential)"),
    "step_epochs": (_float, "decay period in epochs (step, exponential)"),
    "momentum": (_float, "SGD momentum (0 = plain SGD)"),
    "weight_decay": (_float, "L2 penalty added to the gradient"),
    "shift": (_whole, "random-shift augmentation in pixels, 0 = off"),
    "seed": (_whole, "initial weights, shuffling, augmentation"),
}


def build_parser() -> tuple[_Parser, _Parser, _Parser]:
    from ..compute.recipe import INITS, OPTIMIZERS, RECIPE_ARCH, RECIPES, SCHEDULES

    def defaults(field: str) -> str:
        """Every named recipe's value, as --recipe would set it: '(default 20; original recipe 15; cnn recipe 15)'."""
        return "(" + "; ".join(f"{name if name == 'default' else name + ' recipe'} {getattr(recipe, field)}"
                               for name, recipe in RECIPES.items()) + ")"
    train = _Parser(prog="mnist-viz train", description="Train a network headless on the GPU. Options left out "
                    "come from --recipe: 'default' (784-128-10, 98.6%), 'original' (the browser project's, 97.5%) or "
                    "'cnn' (the shipped CNN's architecture and recipe, 99.55%).")
    train.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                       help="starting point for every option below (default: %(default)s)")
    for field, (kind, text) in TRAIN_OPTIONS.items():
        train.add_argument("--" + field.replace("_", "-"), type=kind, help=f"{text} {defaults(field)}")
    train.add_argument("--schedule", choices=SCHEDULES, help=defaults("schedule"))
    train.add_argument("--optimizer", choices=OPTIMIZERS, help=defaults("optimizer"))
    train.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help=defaults("nesterov"))
    train.add_argument("--init", choices=INITS, help=defaults("init"))
    own = "".join(f"; the {name} recipe: --arch {name}" for name in RECIPE_ARCH)     # its network, not an MLP
    train.add_argument("--arch", help=ARCH_HELP + own)
    train.add_argument("--hidden", type=_hidden, help="MLP shorthand: hidden sizes, e.g. 128 or 256,128 (default 128)")
    train.add_argument("--dropout", type=_float, help="MLP shorthand: dropout after each hidden ReLU, in [0, 1) (default 0)")
    train.add_argument("--engine", choices=["auto", "compiled", "graph"], default="auto",
                       help="compiled: the step compiled to two dispatches (Linear/ReLU/Dropout networks; "
                            "for a CNN its dense head, the conv layers traced); graph: the traced autograd "
                            "step (any network); auto: compiled where it applies")
    train.add_argument("--data", type=_path, help="directory of IDX files (default: bundled MNIST)")
    train.add_argument("--limit", type=_positive_int, help="train on the first N images")
    train.add_argument("--test-limit", type=_positive_int, help="evaluate on the first N test images")
    train.add_argument("--save", type=_path, help="write the trained model here (safetensors); an existing file is "
                       "refused before training unless it is a checkpoint and --overwrite is given")
    train.add_argument("--overwrite", action="store_true", help="let --save replace an existing checkpoint (never "
                       "another kind of file; an interrupted or diverged run saves beside it instead)")
    train.add_argument("--no-eval", action="store_true", help="evaluate only after the last epoch")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--compare", nargs="+", action="extend", metavar="RUN",
                       help="train 2 to 4 runs side by side on one upload of the data and print a table; each RUN "
                            "is one quoted argument: a recipe or optimizer name and/or key=value overrides of the "
                            "options above, e.g. 'sgd lr=0.05' 'adam lr=0.001 batch=64' 'cnn arch=...' (keys: arch, "
                            "hidden, optimizer, lr, batch, seed, epochs, momentum, schedule, min_lr, weight_decay, "
                            "shift, nesterov, init, gamma, step_epochs, and Adam's beta1, beta2, eps); --compare "
                            "given twice adds its runs to the first's")

    ev = _Parser(prog="mnist-viz eval", description="Evaluate a checkpoint on the test set.")
    ev.add_argument("--checkpoint", type=_path, help="a safetensors model, or mlp / cnn: the shipped ones (default: "
                    "the shipped model of --arch, else the MLP)")
    ev.add_argument("--data", type=_path, help="directory of IDX files (default: bundled MNIST)")
    ev.add_argument("--arch", help="the architecture, for a file that records none (one written by PyTorch)")
    ev.add_argument("--test-limit", type=_positive_int, help="evaluate on the first N test images")

    view = _Parser(prog="mnist-viz", description="Realtime MNIST training visualizer: paint a digit, watch "
                   "the network train on the GPU.",
                   epilog="Headless: 'mnist-viz train --help' and 'mnist-viz eval --help'.")
    view.add_argument("--checkpoint", type=_path, help="model to open, or mlp / cnn: the shipped ones (default: the "
                      "pretrained MLP)")
    view.add_argument("--data", type=_path, help="directory of IDX files, any image size and classes "
                      "(default: bundled MNIST)")
    view.add_argument("--arch", help="start with a fresh network of this architecture (or read --checkpoint as it): "
                      "layers as PyTorch writes them, an MLP's widths (784-256-128-10) or 'cnn'")
    view.add_argument("--limit", type=_positive_int, help="train on the first N images")
    view.add_argument("--test-limit", type=_positive_int, help="evaluate on the first N test images")
    view.add_argument("--offscreen", action="store_true", help="render without a window")
    view.add_argument("--frames", type=_at_most(MAX_FRAMES), help="offscreen: frames to render (default 1)")
    view.add_argument("--screenshot", type=_path, help="offscreen: save the last frame as PNG")
    view.add_argument("--size", default="1600x1000", help="window size WxH")
    view.add_argument("--train", action="store_true", help="start training at once")
    view.add_argument("--paint-demo", action="store_true", help="paint a built-in digit stroke")
    view.add_argument("--no-autosave", action="store_true", help="do not save the model when the window closes "
                      "(autosaves go to $XDG_CACHE_HOME/mnist-viz/autosaves, by default ~/.cache/...; File > Reopen "
                      "last autosave opens the newest)")
    view.add_argument("--version", action="version", version=f"mnist-viz {version()}")
    return train, ev, view


def version() -> str:
    """The installed package's version; from a checkout that was never installed (no metadata),
    pyproject.toml's."""
    from importlib import metadata
    try:
        return metadata.version("mnist-viz")
    except metadata.PackageNotFoundError:
        pass
    try:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    except OSError:
        return "unknown"
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return m.group(1) if m else "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    try:
        train, ev, view = build_parser()
        commands = {"train": (train, train_command), "eval": (ev, eval_command)}
        if argv[:1] and argv[0] in commands:
            parser, command = commands[argv[0]]
            return command(parser.parse_args(argv[1:]))
        return view_command(_view_args(view, argv, list(commands)))
    except KeyboardInterrupt:
        say("\ninterrupted", err=True)
        return 130
    except Exception as e:  # noqa: BLE001 - user-facing boundary
        lost = _device_lost(e)
        if lost:
            say(f"error: {lost}", err=True)
            return EXIT_GPU_LOST
        msg = _user_message(e) or _gpu_limit_message(e)
        if msg is None:
            raise
        say(f"error: {msg}", err=True)
        return EXIT_USAGE


def _view_args(view: _Parser, argv: list[str], commands: list[str]) -> argparse.Namespace:
    """The window's options. The window takes no bare words, so one in first place is a mistyped
    command, and so is the first one among the rest that is close to a command's name
    (`mnist-viz --offscreen trian`); an option's value (`--data train`) is neither."""
    if argv[:1] and not argv[0].startswith("-"):
        raise UserError(_unknown_command(argv[0], commands))
    args, extra = view.parse_known_args(argv)
    words = [w for w in extra if not w.startswith("-")]
    if words and difflib.get_close_matches(words[0], commands, n=1):
        raise UserError(_unknown_command(words[0], commands))
    options = [o[2:] for o in view._option_string_actions if o[:2] == "--"]
    for word in (w for w in extra if w.startswith("--")):   # `mnist-viz --evla`: a command, dashed
        command, alike = _closest(word[2:], commands)
        if command and alike > _closest(word[2:], options)[1]:
            raise UserError(f"unrecognized arguments: {' '.join(extra)}; did you mean the command {command!r} "
                            f"(mnist-viz {command} [options])?")
    if extra:
        view.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _unknown_command(word: str, commands: list[str]) -> str:
    if word in commands:
        return f"{word!r} is a command: put it first (mnist-viz {word} [options])"
    close = difflib.get_close_matches(word, commands, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown command {word!r}{hint} (commands: {', '.join(commands)})"


def shown(path) -> str:
    """A path as text that can always be printed (non-UTF-8 names included)."""
    from ..compute.pathinfo import printable_path
    return printable_path(path)


def _device_lost(e: Exception) -> str | None:
    from ..compute.device import DeviceLostError
    if isinstance(e, DeviceLostError):
        return str(e)
    if "device is lost" in str(e).lower() or "device was lost" in str(e).lower():
        return "the GPU device was lost; restart the program"
    return None


def _gpu_limit_message(e: Exception) -> str | None:
    """Out of GPU (or host) memory, or a device limit the budget (compute/budget.py) did not
    foresee: one line with the driver's reason, not a traceback."""
    import wgpu
    reason = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, MemoryError):   # wgpu's GPUOutOfMemoryError is one
        where = "the GPU" if isinstance(e, wgpu.GPUError) else "this computer"
        return (f"{where} ran out of memory ({reason[-200:]}); use a smaller --batch-size, a narrower network or "
                f"fewer images (--limit, --test-limit)")
    if isinstance(e, wgpu.GPUValidationError) and "limit" in reason.lower():
        return f"a GPU limit was exceeded ({reason[-200:]}); use a smaller --batch-size, a narrower network or smaller images"
    return None


def _user_message(e: Exception) -> str | None:
    from ..compute.atomic import WriteError
    from ..compute.checkpoint import CheckpointError
    from ..compute.device import NoAdapterError
    from ..compute.idx import DataError
    from ..compute.pathinfo import printable_path
    if isinstance(e, (UserError, DataError, CheckpointError, NoAdapterError, ValueError, WriteError)):
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, OSError):
        name = printable_path(e.filename) if e.filename is not None else ""
        return f"{name}: {e.strerror or e}".lstrip(": ")
    return None


# -- train ---------------------------------------------------------------------------------------------
def recipe_from_args(args):
    """The named recipe with the options given on the command line; checked before the GPU starts."""
    from ..compute.recipe import RECIPES, as_f32, f32_changes_it
    changes = option_changes(args)
    recipe = RECIPES[args.recipe]
    if "optimizer" in changes:      # --optimizer adam without --lr: Adam's usual rate, not SGD's
        recipe = recipe.with_optimizer(changes.pop("optimizer"), changes.pop("lr", None))
    recipe = recipe.with_changes(**changes)
    bad = recipe.problems()
    if bad:
        field, text = bad[0]
        raise UserError(f"--{field.replace('_', '-')} {text}")
    if args.dropout is not None and not 0.0 <= as_f32(args.dropout) < 1.0:
        held = as_f32(args.dropout)
        note = f" (a float32 holds it as {held!r})" if f32_changes_it(args.dropout, held) else ""
        raise UserError(f"--dropout must be in [0, 1), got {args.dropout}{note}")
    if args.arch is not None and (args.hidden is not None or args.dropout is not None):
        raise UserError("--arch gives the whole network: leave out --hidden and --dropout (or put a Dropout(p) "
                        "layer in the architecture)")
    return recipe


def note_idle_settings(args, recipe) -> None:
    """One note for each option given that the run never reads (after every check has passed:
    an error stays the one line a bad command prints)."""
    for field, why in recipe.idle(option_changes(args)):
        say(f"note: --{field.replace('_', '-')} changes nothing in this run: {why} (the run: {recipe.optimizer}, "
            f"{recipe.schedule} schedule)", err=True)


def check_writable(path: Path, option: str = "--save", keeps=None, example: str = "model.safetensors") -> None:
    """Fail now with a clear line if the file could not be written later (a directory,
    an immutable file, a name too long, a directory we cannot write), or would replace a file
    that holds something and keeps(path) gives a reason to keep it."""
    from ..compute.atomic import WriteError, check_can_write
    from ..compute.pathinfo import has_content
    try:
        check_can_write(path, example)
    except WriteError as e:
        raise UserError(f"{option} {e}") from None
    if keeps is None or not has_content(path):
        return
    try:
        reason = keeps(path)
    except OSError as e:
        reason = f"the file exists and cannot be read ({e.strerror or e}) to tell what it is; choose another path"
    if reason:
        raise UserError(f"{option} {shown(path)}: {reason}")


def kept_from_save(path: Path, overwrite: bool) -> str | None:
    """Why --save must not replace the file there. Without --overwrite, any file (a second run into
    one path used to replace the first run's model without a word). With it, still anything but a
    safetensors checkpoint: `--save notes.txt` is far likelier a slip of the keyboard or of tab
    completion than a wish to turn notes into a model, and `rm` says that wish plainly."""
    from ..compute.checkpoint import is_safetensors_file
    if not is_safetensors_file(path):
        return ("the file exists and is not a safetensors checkpoint; choose another path (--overwrite replaces "
                "only a checkpoint)")
    if not overwrite:
        return "the file exists; choose another path, or add --overwrite to replace it"
    return None


def train_command(args) -> int:
    from ..compute.data import GpuDataset
    from ..compute.device import get_device
    from ..compute.nn import Sequential
    from ..compute.run import Run

    recipe = recipe_from_args(args)
    if args.overwrite and args.save is None:
        raise UserError("--overwrite only applies with --save; add --save PATH")
    if args.compare is not None:
        from .compare import compare_command
        return compare_command(args, recipe)
    if args.save is not None:   # before training, not after an hour of it
        check_writable(args.save, keeps=lambda path: kept_from_save(path, args.overwrite))
    ds = load_data(args.data)
    arch = check_training(args, ds, recipe)     # before the GPU holds anything
    if args.save is not None:   # after the checks (an error stays one line), before the hours of training
        from ..compute.checkpoint import misleading_name
        warn_of_name("--save", args.save, misleading_name(args.save))
    rows = min(args.limit or len(ds.train_images), len(ds.train_images))
    if recipe.batch_size > rows:    # legal (one short step an epoch), but rarely meant
        say(f"warning: --batch-size {recipe.batch_size} is above the {rows:,} training image{'s' * (rows != 1)}: "
            f"each epoch is one step of {rows:,}", err=True)
    dev = get_device()
    data = GpuDataset(ds, args.limit, args.test_limit)
    model = Sequential(arch, seed=recipe.seed, init=recipe.init)
    run = Run(model, data, recipe, engine=args.engine)
    say(f"device: {dev.name}")
    say(f"model: {network_text(model.arch)} ({model.num_parameters():,} parameters), "
        f"engine: {run.engine} ({len(run.program)} dispatches/step)")
    say(f"recipe: {args.recipe}: {recipe.describe()}")
    note_idle_settings(args, recipe)
    say(f"data: {data.train.n:,} train / {data.test.n:,} test images, {data.nbytes / 1e6:.1f} MB on the GPU (u8)")
    with StopRequest() as stop:
        return _train_epochs(args, run, stop)


def _metadata(args, run, **extra) -> dict:
    meta = {"recipe": args.recipe, **run.recipe.to_metadata(), "steps": run.step}
    meta.update({k: str(v) for k, v in extra.items()})
    return meta


def _save_model(args, run, partial: str | None = None, **extra) -> str:
    """Save the run's model to --save; returns where, as text for the user. A finished run (partial
    None) replaces a file that holds something only with --overwrite (it was checked before
    training; this is for a file that appeared since); a partial one (partial 'interrupted',
    'diverged') never does, so Ctrl-C cannot trade a good model for half of one: it goes beside
    it, as <stem>.<partial><suffix> (then -2, -3, ...)."""
    from ..compute.atomic import name_max
    from ..compute.model_io import save_model
    from ..compute.pathinfo import has_content
    path = args.save
    if has_content(path) and (partial or not args.overwrite):
        tag, stem, suffix = partial or "new", args.save.stem, args.save.suffix
        most = name_max(args.save.resolve().parent)
        for n in itertools.count(1):
            end = f".{tag}{'' if n == 1 else f'-{n}'}{suffix}"
            # A name near the file system's limit gives up the end of its stem, not the save
            while stem and len(os.fsencode(stem + end)) > most:
                stem = stem[:-1]
            path = args.save.with_name(stem + end)
            if not os.path.lexists(path):
                break
    save_model(path, run.model, _metadata(args, run, **extra))
    return shown(path) if path == args.save else f"{shown(path)} ({shown(args.save)} was left as it was)"


def _untouched(path: Path) -> str:
    """What became of --save when nothing was saved there: an earlier file left alone, or none written."""
    from ..compute.pathinfo import has_content
    return f"{shown(path)} was left as it was" if has_content(path) else f"nothing was saved ({shown(path)} not written)"


def _interrupted(args, run, signum: int) -> int:
    """A signal while training: wait for the steps submitted, never save a diverged step, keep
    what was trained (a run that diverged in its first epoch learned nothing: --save is left
    as it was). Exit code 128 + the signal's number (130 for Ctrl-C)."""
    from ..compute.device import get_device
    get_device().sync()
    diverged = run.diverged(run.read_flags())
    if diverged:
        run.restore_snapshot()
    if not args.save:
        say("interrupted", err=True)
    elif run.step == 0:
        say(f"interrupted before anything was learned: {_untouched(args.save)}", err=True)
    elif diverged:
        where = _save_model(args, run, "interrupted", interrupted_at_step=run.step, diverged=True)
        say(f"interrupted after training diverged: saved the weights from the start of epoch {run.epoch + 1} "
            f"(step {run.step:,}) to {where}", err=True)
    else:
        where = _save_model(args, run, "interrupted", interrupted_at_step=run.step)
        say(f"interrupted: saved the model so far to {where}", err=True)
    return 128 + signum


def _train_epochs(args, run, stop: StopRequest) -> int:
    recipe = run.recipe
    acc = None
    for epoch in range(recipe.epochs):
        first, t0 = run.steps_taken, time.perf_counter()
        end = first + run.steps_per_epoch
        bar = _progress_bar(args, run, epoch)
        # Two chunks in flight: the GPU runs one while Python encodes the next, and the
        # progress bar learns each chunk's last loss from an 8-byte non-blocking read.
        chunk, inflight, last_done, seen = 16, collections.deque(), t0, first
        while run.steps_taken < end or inflight:
            if stop.signum is not None:
                if bar is not None:
                    bar.close()
                return _interrupted(args, run, stop.signum)
            if run.steps_taken < end and len(inflight) < 2:
                run.run_steps(min(chunk, end - run.steps_taken), queued=run.steps_taken - seen)
                inflight.append((run.steps_taken, run.metrics.read_step_async(run.steps_taken - 1)))
                continue
            done_at, pending = inflight.popleft()
            loss, batch_acc = struct.unpack("<2f", pending.result())
            seen = done_at
            now = time.perf_counter()
            chunk = max(1, min(8192, int(chunk * min(4.0, 0.1 / max(now - last_done, 1e-4)))))
            last_done = now
            if bar is not None:
                bar.set_postfix_str(f"loss {loss:.4f}  acc {batch_acc * 100:5.1f}%", refresh=False)
                bar.update(done_at - first - bar.n)
        elapsed = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        if stop.signum is not None:     # it came while the epoch's last chunk ran: it is still an interrupt
            return _interrupted(args, run, stop.signum)
        if run.diverged(run.read_flags()):
            return _diverged(args, run, epoch)
        loss, train_acc = run.train_means(first)     # over the epoch's images, not its steps
        width = len(str(recipe.epochs))
        # The epoch's images, not its batch rows: a last batch short of --batch-size is padded.
        line = (f"epoch {epoch + 1:>{width}}/{recipe.epochs}  loss {loss:.4f}  train acc {train_acc * 100:.2f}%"
                f"  {elapsed:.3f} s  {run.data.train.n / elapsed:,.0f} samples/s")
        if not args.no_eval or epoch == recipe.epochs - 1:
            acc = run.evaluate()["accuracy"]
            line += f"  test acc {acc * 100:.2f}%"
        say(line)
    blown_up = blown_up_note(loss, run.data.num_classes, recipe.lr)
    if blown_up:
        say(f"warning: {blown_up}", err=True)
    if args.save:
        say(f"saved {_save_model(args, run, test_accuracy=f'{acc:.4f}', test_images=str(run.data.test.n))}")
    say(f"test accuracy: {acc * 100:.2f}%")
    # A signal during the last evaluation or the save: the run was complete and is saved as such.
    return 0 if stop.signum is None else 128 + stop.signum


def _progress_bar(args, run, epoch: int):
    """tqdm's bar on a terminal (ETA, rate, its width); nothing when piped or --quiet."""
    if args.quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{run.recipe.epochs}", unit="step",
                dynamic_ncols=True, leave=False, file=sys.stderr)


def _diverged(args, run, epoch: int) -> int:
    """Restore the weights of the epoch start, say what to change; save only what was learned."""
    run.restore_snapshot()
    recipe = run.recipe
    say(f"error: training diverged in epoch {epoch + 1} (the loss became NaN, infinite or exploded); the "
        f"weights from the start of epoch {run.epoch + 1} were restored. Try a smaller learning rate "
        f"(--lr {recipe.lr / 10:g}).", err=True)
    if args.save:
        if run.step > 0:
            where = _save_model(args, run, "diverged", diverged_epoch=epoch + 1)
            say(f"saved the weights from the start of epoch {run.epoch + 1} to {where}")
        else:
            unstable = (f"the loss was already over the divergence bound in epoch 1{f'-{epoch}' if epoch > 1 else ''}, "
                        f"so no healthy weights were learned" if epoch > 0 else "nothing was learned before it diverged")
            say(f"{unstable}: {_untouched(args.save)}")
    return EXIT_DIVERGED


# -- eval ----------------------------------------------------------------------------------------------------
def check_evaluation(args, ds, arch) -> None:
    """The checkpoint's model and the test set fit the device's limits (before any GPU object)."""
    from ..compute.budget import BudgetError, Limits, check_data, check_model, check_one_image
    limits = Limits.current()
    try:
        check_model(arch, limits, fix="this GPU cannot hold it")
        check_one_image(arch, limits)
    except BudgetError as e:
        raise UserError(f"{shown(args.checkpoint.name)}: {e}") from None
    n_test = min(args.test_limit or len(ds.test_images), len(ds.test_images))
    check_data(1, n_test, ds.image_shape, limits)


def eval_command(args) -> int:
    from ..compute.checkpoint import CheckpointError
    from ..compute.data import GpuDataset
    from ..compute.model_io import data_it_fits
    from ..compute.device import get_device
    from ..compute.evaluation import Evaluation
    from ..compute.metrics import RunMetrics
    from ..compute.model_io import default_model_path, read_checkpoint
    from ..compute.nn import Sequential

    from .files import checkpoint_path, shipped_for
    if args.checkpoint is None:     # the shipped model of --arch (cnn), else the shipped MLP
        args.checkpoint = shipped_for(args.arch) or default_model_path()
    else:
        args.checkpoint = checkpoint_path(args.checkpoint)
    import dataclasses
    ds = load_data(args.data, need_train=False)
    test_only = len(ds.train_images) == 0
    if test_only:   # test files only: GpuDataset still wants a training row it will not use
        ds = dataclasses.replace(ds, train_images=ds.test_images[:1], train_labels=ds.test_labels[:1])
    try:
        tensors, meta, arch, note = read_checkpoint(args.checkpoint, args.arch, ds.image_shape)
    except CheckpointError as e:
        raise UserError(f"{e}" if args.arch is None else f"--arch: {e}") from None
    if test_only and arch.classes > ds.num_classes:     # a test set may lack the top classes: its labels are < them
        ds = dataclasses.replace(ds, num_classes=arch.classes)
    problem = arch.misfit(*ds.image_shape, ds.num_classes)
    if problem:
        raise UserError(f"{shown(args.checkpoint.name)}: {problem}; {data_it_fits(meta, arch)}")
    arch = arch.for_images(*ds.image_shape) if arch.is_mlp else arch
    check_evaluation(args, ds, arch)
    if note:
        say(f"warning: {shown(args.checkpoint.name)}: {note}", err=True)
    dev = get_device()
    model = Sequential(arch)
    model.load_state_dict(tensors)
    data = GpuDataset(ds, limit=1, test_limit=args.test_limit)
    metrics = RunMetrics(data.num_classes)
    enc = dev.device.create_command_encoder()
    Evaluation(model, data, metrics).encode(enc)
    dev.submit(enc)
    r = metrics.read_evaluation()
    say(f"checkpoint: {shown(args.checkpoint)} ({model.arch.short})")
    say(f"test accuracy: {r['accuracy'] * 100:.2f}%")
    return 0


# -- visualizer -------------------------------------------------------------------------------------------------
def view_command(args) -> int:
    from .launch import run_app
    if not args.offscreen:
        given = [name for name, value in (("--frames", args.frames), ("--screenshot", args.screenshot)) if value]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise UserError(f"{' and '.join(given)} only {verb} offscreen; add --offscreen (e.g. mnist-viz "
                            "--offscreen --frames 30 --screenshot out.png)")
    if args.screenshot is not None:     # before the GPU starts, not after the frames are rendered
        check_writable(args.screenshot, "--screenshot", kept_from_screenshot, example="screenshot.png")
    if args.checkpoint is not None:
        from .files import checkpoint_path
        args.checkpoint = checkpoint_path(args.checkpoint)
    from ..compute.arch import ArchError
    from ..compute.checkpoint import CheckpointError
    try:
        return run_app(args)
    except (ArchError, CheckpointError) as e:     # --arch read for the data (or the checkpoint): as train says it
        if args.arch is None:
            raise
        raise UserError(f"--arch: {e}") from None


def kept_from_screenshot(path: Path) -> str | None:
    """Why --screenshot must not replace the file there: anything but a PNG. Taking a screenshot
    again is normal; a mistyped name must not turn a checkpoint into an image."""
    from ..compute.pathinfo import is_png
    return None if is_png(path) else ("the file exists and is not a PNG image; choose another path (a screenshot "
                                      "replaces only an earlier PNG)")
