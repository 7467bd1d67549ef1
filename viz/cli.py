"""Command line: `mnist-viz` (the visualizer), `mnist-viz train`, `mnist-viz eval`.

Every user error (bad arguments, bad data or checkpoint files, no GPU adapter)
ends as one line `error: ...` and exit code 2; a diverged training run exits 3.
"""
from __future__ import annotations

import argparse
import collections
import os
import struct
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_GPU_LOST = 4


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's two-line usage dump -> one line
        raise UserError(message)


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {v}")
    return v


def _float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s!r}")
    return v


def _hidden(s: str) -> list[int]:
    try:
        sizes = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 128 or 256,128, got {s!r}") from None
    if not sizes or any(n < 1 or n > 65535 for n in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be between 1 and 65535, got {s!r}")
    return sizes


def build_parser() -> tuple[_Parser, _Parser, _Parser]:
    from ..compute.optim import OPTIMIZERS, SCHEDULES
    from ..compute.recipes import RECIPES

    d, o = RECIPES["default"], RECIPES["original"]
    recipe = lambda field: f"(default {getattr(d, field)}; original recipe {getattr(o, field)})"
    train = _Parser(prog="mnist-viz train", description="Train the MLP headless on the GPU. Options left out "
                    "come from --recipe: 'default' (98.6%) or 'original' (the browser project's, 97.5%).")
    train.add_argument("--recipe", choices=sorted(RECIPES), default="default",
                       help="starting point for every option below (default: %(default)s)")
    train.add_argument("--epochs", type=_positive_int, help=recipe("epochs"))
    train.add_argument("--batch-size", type=_positive_int, help=recipe("batch_size"))
    train.add_argument("--lr", type=_float, help="base learning rate " + recipe("lr"))
    train.add_argument("--min-lr", type=_float, help="final learning rate of the cosine schedule " + recipe("min_lr"))
    train.add_argument("--schedule", choices=SCHEDULES, help=recipe("schedule"))
    train.add_argument("--gamma", type=_float, default=0.5, help="decay per period for step/exponential")
    train.add_argument("--step-epochs", type=_float, default=1.0, help="decay period in epochs for step/exponential")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help=recipe("optimizer"))
    train.add_argument("--momentum", type=_float, help=recipe("momentum"))
    train.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=None, help=recipe("nesterov"))
    train.add_argument("--weight-decay", type=_float, help="L2 penalty added to the gradient " + recipe("weight_decay"))
    train.add_argument("--hidden", type=_hidden, default=[128], help="hidden sizes, e.g. 128 or 256,128")
    train.add_argument("--dropout", type=_float, help="dropout after each hidden ReLU " + recipe("dropout"))
    train.add_argument("--shift", type=int, help="random-shift augmentation in pixels, 0 = off " + recipe("shift"))
    train.add_argument("--init", choices=["he_uniform", "he_normal"], help=recipe("init"))
    train.add_argument("--engine", choices=["auto", "fused", "graph"], default="auto",
                       help="fused: two dispatches a step (one hidden layer); graph: traced autograd")
    train.add_argument("--data", type=Path, help="directory of IDX files (default: bundled MNIST)")
    train.add_argument("--limit", type=_positive_int, help="train on the first N images")
    train.add_argument("--seed", type=int, default=0, help="initial weights, shuffling, augmentation (default 0)")
    train.add_argument("--save", type=Path, help="write the trained model here (safetensors)")
    train.add_argument("--no-eval", action="store_true", help="evaluate only after the last epoch")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = _Parser(prog="mnist-viz eval", description="Evaluate a checkpoint on the test set.")
    ev.add_argument("--checkpoint", type=Path, help="a safetensors model (default: the shipped pretrained one)")
    ev.add_argument("--data", type=Path, help="directory of IDX files (default: bundled MNIST)")

    view = _Parser(prog="mnist-viz", description="Realtime MNIST training visualizer: paint a digit, watch "
                   "the network train on the GPU.",
                   epilog="Headless: 'mnist-viz train --help' and 'mnist-viz eval --help'.")
    view.add_argument("--checkpoint", type=Path, help="model to open (default: the pretrained one)")
    view.add_argument("--data", type=Path, help="directory of IDX files, any image size and classes "
                      "(default: bundled MNIST)")
    view.add_argument("--limit", type=_positive_int, help="train on the first N images")
    view.add_argument("--offscreen", action="store_true", help="render without a window")
    view.add_argument("--frames", type=_positive_int, default=1, help="offscreen: frames to render")
    view.add_argument("--screenshot", type=Path, help="offscreen: save the last frame as PNG")
    view.add_argument("--size", default="1600x1000", help="window size WxH")
    view.add_argument("--train", action="store_true", help="start training at once")
    view.add_argument("--paint-demo", action="store_true", help="paint a built-in digit stroke")
    view.add_argument("--no-autosave", action="store_true", help="do not save the model when the window closes")
    return train, ev, view


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    try:
        train, ev, view = build_parser()
        if argv[:1] == ["train"]:
            return train_command(train.parse_args(argv[1:]))
        if argv[:1] == ["eval"]:
            return eval_command(ev.parse_args(argv[1:]))
        return view_command(view.parse_args(argv))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - user-facing boundary
        lost = _device_lost(e)
        if lost:
            print(f"error: {lost}", file=sys.stderr)
            return EXIT_GPU_LOST
        msg = _user_message(e)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_USAGE


def _device_lost(e: Exception) -> str | None:
    from ..compute.device import DeviceLostError
    if isinstance(e, DeviceLostError):
        return str(e)
    if "device is lost" in str(e).lower() or "device was lost" in str(e).lower():
        return "the GPU device was lost; restart the program"
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
def train_config_from_args(args):
    from ..compute.optim import OptimConfig
    from ..compute.recipes import RECIPES
    from ..compute.training import TrainConfig

    r = RECIPES[args.recipe]
    pick = lambda v, d: d if v is None else v
    oc = OptimConfig(
        optimizer=pick(args.optimizer, r.optimizer), lr=pick(args.lr, r.lr), min_lr=pick(args.min_lr, r.min_lr),
        schedule=pick(args.schedule, r.schedule), momentum=pick(args.momentum, r.momentum),
        nesterov=pick(args.nesterov, r.nesterov), weight_decay=pick(args.weight_decay, r.weight_decay),
        gamma=args.gamma)
    cfg = TrainConfig(epochs=pick(args.epochs, r.epochs), batch_size=pick(args.batch_size, r.batch_size), optim=oc,
                      shift=pick(args.shift, r.shift), seed=args.seed, engine=args.engine,
                      step_epochs=args.step_epochs)
    cfg.validate()
    return cfg, pick(args.dropout, r.dropout), pick(args.init, r.init)


def load_data(path: Path | None):
    from ..compute.idx import bundled_mnist_dir, load_dataset
    return load_dataset(path if path is not None else bundled_mnist_dir())


def check_writable(path: Path) -> None:
    """Fail now with a clear line if the checkpoint could not be written later (a directory,
    an immutable file, a name too long, a directory we cannot write)."""
    from ..compute.atomic import WriteError, check_can_write
    try:
        check_can_write(path)
    except WriteError as e:
        raise UserError(f"--save {e}") from None


def train_command(args) -> int:
    from ..compute.data import GpuDataset
    from ..compute.device import get_device
    from ..compute.model_io import save_model
    from ..compute.nn import MLPSpec, Sequential
    from ..compute.pathinfo import printable_path
    from ..compute.training import Trainer

    cfg, dropout, init = train_config_from_args(args)
    if args.save is not None:
        check_writable(args.save)  # before training, not after an hour of it
    ds = load_data(args.data)
    dev = get_device()
    data = GpuDataset(ds, args.limit)
    model = Sequential(MLPSpec([data.input_size, *args.hidden, data.num_classes], dropout), seed=args.seed)
    model.init(init, args.seed)
    trainer = Trainer(model, data, cfg)
    oc = cfg.optim
    print(f"device: {dev.name}")
    print(f"model: {'-'.join(map(str, model.spec.sizes))} ({model.num_parameters():,} parameters), "
          f"engine: {trainer.engine} ({len(trainer.program)} dispatches/step)")
    print(f"recipe: {args.recipe}: {oc.optimizer}" + (f" momentum {oc.momentum}" if oc.momentum else "")
          + (" nesterov" if oc.nesterov else "") + f", lr {oc.lr} {oc.schedule}"
          + (f" to {oc.min_lr}" if oc.schedule == "cosine" else "") + f", batch {cfg.batch_size}, {cfg.epochs} epochs"
          + (f", shift +-{cfg.shift}px" if cfg.shift else "") + (f", dropout {dropout}" if dropout else ""))
    print(f"data: {data.train.n:,} train / {data.test.n:,} test images, {data.nbytes / 1e6:.1f} MB on the GPU (u8)")

    progress = Progress(enabled=not args.quiet and sys.stdout.isatty())
    try:
        return _train_epochs(args, cfg, dev, trainer, model, progress)
    except KeyboardInterrupt:
        progress.clear()
        if args.save:  # nothing the user trained is lost
            save_model(args.save, model, {"recipe": args.recipe, "interrupted_at_step": trainer.step})
            print(f"interrupted: saved the model so far to {printable_path(args.save)}", file=sys.stderr)
        raise


def _train_epochs(args, cfg, dev, trainer, model, progress) -> int:
    from ..compute.model_io import save_model
    from ..compute.pathinfo import printable_path
    from ..compute.training import FLAG_NONFINITE

    oc = cfg.optim
    acc = None
    for epoch in range(cfg.epochs):
        enc = dev.device.create_command_encoder()
        trainer.save_snapshot(enc)
        dev.submit(enc)
        start_step, t0 = trainer.step, time.perf_counter()
        end = start_step + trainer.steps_per_epoch
        # Two chunks in flight: the GPU runs one while Python encodes the next, and the
        # progress bar learns each chunk's last loss from an 8-byte non-blocking read.
        chunk, inflight, last_done = 16, collections.deque(), t0
        while trainer.step < end or inflight:
            if trainer.step < end and len(inflight) < 2:
                trainer.run_steps(min(chunk, end - trainer.step))
                inflight.append((trainer.step, trainer.read_step_async(trainer.step - 1)))
                continue
            step_done, pending = inflight.popleft()
            loss, acc = struct.unpack("<2f", pending.result())
            now = time.perf_counter()
            chunk = max(1, min(8192, int(chunk * min(4.0, 0.1 / max(now - last_done, 1e-4)))))
            last_done = now
            done = step_done - start_step
            progress.show(epoch, cfg.epochs, done / trainer.steps_per_epoch, loss, acc,
                          done * cfg.batch_size / (now - t0))
        elapsed = time.perf_counter() - t0
        if trainer.read_flags() & FLAG_NONFINITE:
            progress.clear()
            trainer.restore_snapshot()
            print(f"error: training diverged in epoch {epoch + 1} (the loss became NaN or infinite); "
                  f"the weights from the start of that epoch were restored. Try a smaller learning rate "
                  f"(--lr {oc.lr / 10:g}).", file=sys.stderr)
            if args.save:
                save_model(args.save, model, {"recipe": args.recipe, "diverged_epoch": epoch + 1})
                print(f"saved the restored model to {printable_path(args.save)}")
            return EXIT_DIVERGED
        hist = trainer.read_history(start_step, trainer.step)
        loss, train_acc = float(hist[:, 0].mean()), float(hist[:, 1].mean())
        line = (f"epoch {epoch + 1:>{len(str(cfg.epochs))}}/{cfg.epochs}  loss {loss:.4f}  train acc {train_acc * 100:.2f}%"
                f"  {elapsed:.3f} s  {trainer.steps_per_epoch * cfg.batch_size / elapsed:,.0f} samples/s")
        if not args.no_eval or epoch == cfg.epochs - 1:
            acc = trainer.evaluate()["accuracy"]
            line += f"  test acc {acc * 100:.2f}%"
        progress.clear()
        print(line, flush=True)
    if args.save:
        save_model(args.save, model, {"recipe": args.recipe, "test_accuracy": f"{acc:.4f}",
                                      "epochs": cfg.epochs, "batch_size": cfg.batch_size})
        print(f"saved {printable_path(args.save)}")
    print(f"test accuracy: {acc * 100:.2f}%")
    return 0


class Progress:
    """One-line progress bar redrawn in place."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def show(self, epoch, epochs, frac, loss, acc, rate):
        if not self.enabled:
            return
        bar = "#" * int(frac * 30)
        sys.stdout.write(f"\repoch {epoch + 1}/{epochs} [{bar:<30}] {frac * 100:5.1f}%  loss {loss:.4f}"
                         f"  acc {acc * 100:5.1f}%  {rate:,.0f} samples/s ")
        sys.stdout.flush()

    def clear(self):
        if self.enabled:
            sys.stdout.write("\r" + " " * 110 + "\r")


# -- eval ----------------------------------------------------------------------------------------------------
def eval_command(args) -> int:
    from ..compute.data import GpuDataset
    from ..compute.model_io import load_model
    from ..compute.pathinfo import printable_path
    from ..compute.training import Evaluator, Metrics

    from ..compute.model_io import default_model_path
    if args.checkpoint is None:
        args.checkpoint = default_model_path()
    model, _ = load_model(args.checkpoint)
    ds = load_data(args.data)
    data = GpuDataset(ds, limit=1)
    problem = model.spec.misfit(data.train.height, data.train.width, data.num_classes)
    if problem:
        raise UserError(f"{printable_path(args.checkpoint.name)}: {problem}")
    r = Evaluator(model, data, Metrics(data.num_classes)).run()
    print(f"checkpoint: {printable_path(args.checkpoint)} ({'-'.join(map(str, model.spec.sizes))})")
    print(f"test accuracy: {r['accuracy'] * 100:.2f}%")
    return 0


# -- visualizer -------------------------------------------------------------------------------------------------
def view_command(args) -> int:
    try:
        from .app import run_app
    except ImportError as e:  # the visualizer is optional until built
        raise UserError(f"the visualizer is not available: {e}") from None
    return run_app(args)
