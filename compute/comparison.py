"""Runs side by side: two to four training runs on the one GPU, sharing the dataset.

ConvNetJS races trainers on MNIST; TensorBoard overlays runs. Here each run has its
own architecture and its own `Recipe` (optimizer, learning rate, batch size, seed),
its own weights, optimizer state and metrics; all of them read the same image and
label buffers (uploaded once). Each run keeps its own epoch permutation
(`GpuDataset.with_own_order`): a shared one would be rewritten by the other runs'
shuffles before the steps that read it ran.

A run in a comparison does exactly what it does alone: the comparison only encodes
each run's steps one after the other into the same command encoder (and a run
never crosses its own epoch end within one encoder, `Run.advance`). The command line
(`mnist-viz train --compare`) and the window's Runs panel both drive a Comparison.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .data import GpuDataset
from .recipe import Recipe
from .run import Run

MAX_RUNS = 4


@dataclass(eq=False)
class Entry:
    """One run of the comparison and how it is driven (not part of the run itself)."""
    name: str
    run: Run
    paused: bool = False
    pending: int = 0                      # single steps asked for while paused
    evaluating: list = field(default_factory=list)   # evaluation pieces still to encode
    slot: int = 0                         # a number the front end keeps with the run (the window: its colour)

    @property
    def model(self):
        return self.run.model

    @property
    def metrics(self):
        return self.run.metrics

    @property
    def status(self) -> str:
        if self.evaluating:
            return "evaluating"
        if self.run.finished:
            return "finished"
        return "paused" if self.paused else "running"


class Comparison:
    """The runs of one comparison, all over `data` (a GpuDataset: uploaded once)."""

    def __init__(self, data: GpuDataset, max_runs: int = MAX_RUNS, encode_light: bool = False,
                 eval_macs: int | None = None):
        self.data = data
        self.max_runs = max_runs
        self.encode_light = encode_light      # Run(encode_light=..., eval_macs=...) for every run (the visualizer's)
        self.eval_macs = eval_macs
        self.entries: list[Entry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    # -- which runs -----------------------------------------------------------------------------------
    def add(self, model, recipe: Recipe, name: str = "", engine: str = "auto") -> Entry:
        """A new run of `model` (weights as they are) trained with `recipe` on the shared data."""
        if len(self.entries) >= self.max_runs:
            raise ValueError(f"at most {self.max_runs} runs side by side; remove one first")
        run = Run(model, self.data.with_own_order(), recipe, engine=engine, encode_light=self.encode_light,
                  eval_macs=self.eval_macs)
        entry = Entry(name or f"run {len(self.entries) + 1}", run)
        self.entries.append(entry)
        return entry

    def remove(self, entry: Entry) -> None:
        """Drop a run; its buffers go with it. The others are not touched."""
        self.entries.remove(entry)

    # -- driving one --------------------------------------------------------------------------------
    def pause(self, entry: Entry) -> None:
        entry.paused = True

    def resume(self, entry: Entry) -> None:
        entry.paused = False

    def step(self, entry: Entry) -> None:
        """One step of this run in the next `advance`, then it stays paused."""
        entry.paused = True
        entry.pending += 1

    def evaluate(self, entry: Entry) -> None:
        """Queue a test-set evaluation of this run (encoded by the next advances), in pieces of at
        most `eval_macs` multiply-adds (a front end that learned a smaller size sets it)."""
        if not entry.evaluating:
            run = entry.run
            entry.evaluating = (self.eval_macs and run.fit_evaluation(self.eval_macs)) or run.evaluation_pieces()

    # -- driving all --------------------------------------------------------------------------------
    def advance(self, encoder, steps: int, evaluate_epochs: bool = False, pieces: int | None = None) -> dict:
        """Encode each run's share of this encoder's work: `steps` steps for every running
        run (each stops at its own epoch end), one step for a paused run that was asked to
        step, or (instead of training) `pieces` pieces of an evaluation in progress (None:
        all of them). With `evaluate_epochs`, a run that completes an epoch queues its
        evaluation. Returns {entry: steps encoded}."""
        done = {}
        for e in self.entries:
            if e.evaluating:
                take = len(e.evaluating) if pieces is None else pieces
                for _ in range(min(take, len(e.evaluating))):
                    e.evaluating.pop(0).encode(encoder)
                done[e] = 0
                continue
            n = steps if not e.paused else min(1, e.pending)
            if e.paused and n:
                e.pending -= 1
            done[e] = e.run.advance(encoder, n) if n > 0 else 0
            if evaluate_epochs and done[e] and e.run.step % e.run.steps_per_epoch == 0:
                self.evaluate(e)
        return done


# -- one run as text: the syntax of `mnist-viz train --compare` and of the Runs panel -----------------
# A run is written as words separated by spaces: at most one recipe name (RECIPES) or optimizer
# name (a shorthand for optimizer=NAME), then key=value overrides, e.g. "adam lr=0.001 batch=64".
_KINDS = {"epochs": int, "batch_size": int, "optimizer": str, "lr": float, "min_lr": float, "schedule": str,
          "gamma": float, "step_epochs": float, "momentum": float, "nesterov": "bool", "beta1": float,
          "beta2": float, "eps": float, "weight_decay": float, "shift": int, "init": str, "seed": int}
ALIASES = {"batch": "batch_size"}
NETWORK_KEYS = ("arch", "hidden")       # arch=Conv2d(1,8,5),ReLU(),... (no spaces); hidden=128 or 256,128
SPEC_KEYS = ("arch", "hidden", "optimizer", "lr", "batch", *(k for k in _KINDS if k not in ("optimizer", "lr", "batch_size")))


class SpecError(ValueError):
    """A run's text that cannot be read; the message names the key (or word) and the fix."""


@dataclass(frozen=True)
class RunSpec:
    text: str                         # as written (the run's name in tables and the legend)
    recipe: Recipe
    arch: str | None = None           # architecture text, when the run sets one
    hidden: tuple | None = None       # MLP hidden sizes, when the run sets them
    named: str | None = None          # the recipe it names, if any (its network: recipe.RECIPE_ARCH)

    @property
    def keys(self) -> frozenset:
        """The network settings this text gives (arch, hidden, the recipe it names): a message
        about them names them as written here, not as the command's options (viz/headless.written)."""
        given = (("arch", self.arch), ("hidden", self.hidden), ("recipe", self.named))
        return frozenset(key for key, value in given if value is not None)


def parse_run(text: str, base: Recipe, named: dict[str, Recipe]) -> RunSpec:
    """`text` over `base` (or over `named[word]` when it names a recipe). Raises SpecError."""
    from .recipe import OPTIMIZERS
    words = text.split()
    recipe, changes, net, name = base, {}, {}, None
    seen: dict[str, str] = {}           # setting -> the word that gave it: a second one is a mistake

    def once(setting: str, word: str) -> None:
        if setting in seen:
            raise SpecError(f"{seen[setting]!r} and {word!r} both set {setting}; give it once")
        seen[setting] = word

    for i, word in enumerate(words):
        if "=" not in word:
            if i == 0 and word in named:
                recipe, name = named[word], word
            elif word in OPTIMIZERS:
                once("optimizer", word)
                changes["optimizer"] = word
            elif word in named:             # a recipe, but not the first word: the run names two
                raise SpecError(f"{word!r} is a recipe too; a run starts from one recipe, named first"
                                + (f" ({name!r} here)" if name else "") + ", then its changes")
            else:
                raise SpecError(f"{word!r} is neither a recipe ({', '.join(named)}) nor an optimizer "
                                f"({', '.join(OPTIMIZERS)}); write key=value with a key of {', '.join(SPEC_KEYS)}")
            continue
        key, value = word.split("=", 1)
        field_ = ALIASES.get(key, key)
        once(field_, word)
        if key in NETWORK_KEYS:
            net[key] = value if key == "arch" else _sizes(value)
        elif field_ in _KINDS:
            changes[field_] = _value(key, value, _KINDS[field_])
        else:
            raise SpecError(f"unknown key {key!r} (keys: {', '.join(SPEC_KEYS)})")
    if len(net) == 2:
        raise SpecError("arch= gives the whole network: leave out hidden=")
    if "optimizer" in changes:      # "adam" alone: Adam at its usual rate, not SGD's
        recipe = recipe.with_optimizer(changes.pop("optimizer"), changes.pop("lr", None))
    recipe = recipe.with_changes(**changes)
    bad = recipe.problems()
    if bad:
        field_, problem = bad[0]
        key = {v: k for k, v in ALIASES.items()}.get(field_, field_)
        raise SpecError(f"{key} {problem}")
    return RunSpec(text.strip() or "default", recipe, net.get("arch"), net.get("hidden"), name)


def _value(key: str, text: str, kind):
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SpecError(f"{key}: expected true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        what = {int: "a whole number", float: "a number"}.get(kind, "a value")
        raise SpecError(f"{key}: expected {what}, got {text!r}") from None


def _sizes(text: str) -> tuple:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise SpecError(f"hidden: expected sizes like 128 or 256,128, got {text!r}") from None
    if any(n < 1 or n > 65535 for n in sizes):
        raise SpecError(f"hidden: sizes must be between 1 and 65535, got {text!r}")
    return sizes
