"""`mnist-viz train --compare RUN RUN ...`: runs side by side, a line per run and epoch, a table.

Each RUN is one argument in the syntax of compute/comparison.py (`parse_run`): a recipe
or optimizer name and key=value overrides of the command's own options, e.g.
"adam lr=0.001 batch=64". The runs train on one upload of the data, their steps
interleaved in the same command encoders; a run's numbers are exactly what it gets
trained alone (tests/test_comparison.py). The table's seconds are the race's: the
wall-clock time from the start until that run's last epoch was done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .headless import (EXIT_DIVERGED, StopRequest, blown_up_note, check_training, load_data, network_text,
                       option_changes, run_network_args, say)
from .errors import UserError


@dataclass
class _Result:
    accuracy: float | None = None
    loss: float | None = None
    seconds: float | None = None
    diverged_epoch: int | None = None


def compare_command(args, base) -> int:
    from ..compute.comparison import MAX_RUNS, Comparison
    from ..compute.data import GpuDataset
    from ..compute.device import get_device
    from ..compute.nn import Sequential

    if not 2 <= len(args.compare) <= MAX_RUNS:
        raise UserError(f"--compare takes 2 to {MAX_RUNS} runs, got {len(args.compare)}")
    if args.save is not None:
        raise UserError("--save writes one model: leave it out with --compare (train the run you want alone to save it)")
    specs = _specs(args, base)
    ds = load_data(args.data)
    archs = []
    for i, (text, spec) in enumerate(zip(args.compare, specs), 1):
        try:
            archs.append(check_training(run_network_args(args, spec), ds, spec.recipe, spec.keys))  # before the GPU
        except (UserError, ValueError) as e:     # the architecture, the budget; the run's keys named as it wrote them
            raise UserError(f"--compare run {i} ({text!r}): {e}") from None
    for i, (text, spec) in enumerate(zip(args.compare, specs), 1):
        replaced = _replaced_options(args, spec)
        if replaced:
            say(f"note: --compare run {i} ({text!r}): its own network replaces {replaced} for this run", err=True)
    dev = get_device()
    data = GpuDataset(ds, args.limit, args.test_limit)
    comp = Comparison(data)
    for spec, arch in zip(specs, archs):
        comp.add(Sequential(arch, seed=spec.recipe.seed, init=spec.recipe.init), spec.recipe, spec.text, args.engine)
    say(f"device: {dev.name}")
    say(f"data: {data.train.n:,} train / {data.test.n:,} test images, {data.nbytes / 1e6:.1f} MB on the GPU (u8), "
        f"shared by {len(comp)} runs")
    for k, e in enumerate(comp, 1):
        say(f"run {k}: {e.name}: {network_text(e.model.arch)} ({e.model.num_parameters():,} parameters), "
            f"engine {e.run.engine}; {e.run.recipe.describe()}")
    with StopRequest() as stop:
        return _race(args, comp, stop)


def _specs(args, base) -> list:
    from ..compute.comparison import SpecError, parse_run
    from ..compute.recipe import RECIPES
    named = {name: r.with_changes(**option_changes(args)) for name, r in RECIPES.items()}
    specs = []
    for i, text in enumerate(args.compare, 1):
        try:
            specs.append(parse_run(text, base, named))
        except SpecError as e:
            raise UserError(f"--compare run {i} ({text!r}): {e}") from None
    return specs


def _replaced_options(args, spec) -> str:
    """The command's network options a run's own arch= or hidden= sets aside (headless.
    run_network_args: arch= replaces --arch, --hidden and --dropout; hidden= replaces --arch and
    --hidden, and keeps --dropout), as written; "" for none. Alone, such a mix is an error; in a
    comparison the run's text is what that run means, so it wins, and is said."""
    if spec.arch is None and spec.hidden is None:
        return ""
    given = [(f"--arch {args.arch}", args.arch), (f"--hidden {','.join(map(str, args.hidden or []))}", args.hidden)]
    if spec.arch is not None and args.dropout is not None:
        given.append((f"--dropout {args.dropout:g}", args.dropout))
    return " ".join(text for text, value in given if value is not None)


def _race(args, comp, stop: StopRequest) -> int:
    from ..compute.device import get_device
    from ..compute.run import submission_size
    dev = get_device()
    results = {e: _Result() for e in comp}
    number = {e: k for k, e in enumerate(comp, 1)}
    t0 = time.perf_counter()
    for epoch in range(max(e.run.recipe.epochs for e in comp)):
        live = [e for e in comp if not e.run.finished and results[e].diverged_epoch is None]
        first = {e: e.run.steps_taken for e in live}
        end = {e: first[e] + e.run.steps_per_epoch for e in live}
        queued = 0          # steps a run has submitted this epoch (the GPU drained at the last epoch's end)
        while True:
            # A run whose epoch is done waits (paused) for the others: each epoch ends with its line.
            for e in comp:
                e.paused = e not in live or e.run.steps_taken >= end[e]
            if all(e.paused for e in comp):
                break
            if stop.signum is not None:
                dev.sync()
                say("interrupted", err=True)
                return 128 + stop.signum
            enc = dev.device.create_command_encoder()
            chunk = submission_size(queued, 256)
            comp.advance(enc, chunk)
            dev.submit(enc)
            queued += chunk
            for e in comp:
                e.run.draw_order_when_queued(queued)     # while the GPU runs the queue
        for e in live:
            _end_of_epoch(args, e, number[e], epoch, first[e], results[e], t0)
    _table(comp, results)
    for k, e in enumerate(comp, 1):
        r = results[e]
        note = None if r.loss is None or r.diverged_epoch is not None else \
            blown_up_note(r.loss, e.run.data.num_classes, e.run.recipe.lr, "lr")
        if note:
            say(f"warning: run {k} ({e.name}): {note}", err=True)
    if any(r.diverged_epoch is not None for r in results.values()):
        return EXIT_DIVERGED
    return 0 if stop.signum is None else 128 + stop.signum


def _end_of_epoch(args, e, k: int, epoch: int, first: int, r: _Result, t0: float) -> None:
    run = e.run
    if run.diverged(run.read_flags()):
        run.restore_snapshot()
        r.diverged_epoch, r.seconds = epoch + 1, time.perf_counter() - t0
        say(f"error: run {k} ({e.name}) diverged in epoch {epoch + 1} (the loss became NaN, infinite or exploded) "
            f"and stopped; try a smaller learning rate (lr={run.recipe.lr / 10:g})", err=True)
        return
    r.loss, train_acc = run.train_means(first)      # over the epoch's images, not its steps
    epochs = run.recipe.epochs
    line = (f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}  run {k}  loss {r.loss:.4f}  "
            f"train acc {train_acc * 100:.2f}%")
    if not args.no_eval or run.finished:
        r.accuracy = run.evaluate()["accuracy"]
        line += f"  test acc {r.accuracy * 100:.2f}%"
    if run.finished:
        r.seconds = time.perf_counter() - t0
    say(line)


def _table(comp, results) -> None:
    """run | recipe | test acc | loss | seconds, one row per run in the order given."""
    width = max(len("recipe"), *(len(e.name) for e in comp))
    say(f"{'run':>3}  {'recipe':<{width}}  {'test acc':>8}  {'loss':>7}  {'seconds':>8}")
    for k, e in enumerate(comp, 1):
        r = results[e]
        acc = "diverged" if r.diverged_epoch is not None else f"{r.accuracy * 100:.2f}%"
        loss = "-" if r.loss is None else f"{r.loss:.4f}"
        say(f"{k:>3}  {e.name:<{width}}  {acc:>8}  {loss:>7}  {r.seconds:>8.2f}")
