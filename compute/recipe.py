"""The one type for a training recipe, and the built-in recipes as instances of it.

Every default a user can meet lives here once: the CLI's option defaults and help,
the visualizer's panel, the benchmarks and the checkpoint metadata all read a
`Recipe`. "original" is the browser project's recipe, kept to reproduce its 97.5%;
"default" is ours (README, 'Accuracy', says why each choice is there).
"""
from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, fields, replace

SCHEDULES = ("constant", "step", "exponential", "cosine")
OPTIMIZERS = ("sgd", "adam")
# The learning rate an optimizer starts from when it is chosen without one (Recipe.with_optimizer):
# Adam's usual 1e-3; any other, the default recipe's
OPTIMIZER_LR = {"adam": 1e-3}
INITS = ("he_uniform", "he_normal")

F32_MAX = 3.4028234663852886e38
F32_TINY = 1.1754943508222875e-38     # smallest normal float32: a learning rate below it is zero on the GPU
MAX_BATCH = 65535                     # one workgroup row per sample in a dispatch dimension
MAX_SHIFT = 8
MAX_STEPS = 2**32 - 1                 # the GPU step counter is a u32
MAX_SEED = 2**32 - 1                  # seeds are hashed as u32 on the GPU


def f32_changes_it(value, held) -> bool:
    """Whether float32 turns `value` into something else in kind: 0, infinity, or a whole number
    (0.99999999999 -> 1.0); not mere rounding (1e20 -> 1.0000000200408773e+20), which the message
    would only clutter."""
    if not isinstance(value, float) or held != held or held == value:
        return False
    return held == 0.0 or math.isinf(held) or (float(held).is_integer() and not value.is_integer())


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of a run. The field defaults are the default recipe."""

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1               # base learning rate
    min_lr: float = 0.0           # final learning rate of the cosine schedule
    schedule: str = "cosine"
    gamma: float = 0.5            # decay per period (step / exponential schedules)
    step_epochs: float = 1.0      # the decay period, in epochs
    momentum: float = 0.9         # SGD momentum, 0 = plain SGD
    nesterov: bool = True
    beta1: float = 0.9            # Adam
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0     # L2 penalty added to the gradient
    shift: int = 1                # random-shift augmentation, pixels (0 = off)
    init: str = "he_uniform"
    seed: int = 0                 # initial weights, shuffling, augmentation, dropout masks

    # -- checks ---------------------------------------------------------------------------------------
    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong and the valid range) for every bad value; empty when usable."""
        out = []
        f = {k: as_f32(getattr(self, k)) for k in F32_FIELDS}   # what the GPU will hold

        def need(ok: bool, field: str, text: str) -> None:
            if not ok:
                value = getattr(self, field)
                held = f.get(field, value)
                note = f" (a float32 holds it as {held!r})" if f32_changes_it(value, held) else ""
                out.append((field, f"{text}, got {value!r}{note}"))

        need(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "must be a whole number >= 1")
        need(isinstance(self.batch_size, int) and 1 <= self.batch_size <= MAX_BATCH, "batch_size",
             f"must be in 1..{MAX_BATCH}")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}")
        need(self.init in INITS, "init", f"must be one of {', '.join(INITS)}")
        need(F32_TINY <= f["lr"] <= 1e6, "lr",
             f"must be a positive number a float32 can hold (between {F32_TINY:.1e} and 1e6)")
        need(0 <= f["min_lr"] <= 1e6, "min_lr", "must be between 0 and 1e6")
        need(self.schedule != "cosine" or not f["min_lr"] > f["lr"], "min_lr",
             f"must be at most the learning rate ({self.lr:g}): the cosine anneals down to it")
        need(0 < f["gamma"] <= 1, "gamma", "must be in (0, 1] (the factor per decay period)")
        need(_finite(self.step_epochs) and 0 < self.step_epochs <= 1e6, "step_epochs", "must be a positive number of epochs, at most 1e6")
        need(0 <= f["momentum"] < 1, "momentum", "must be in [0, 1)")
        need(0 <= f["beta1"] < 1, "beta1", "must be in [0, 1)")
        need(0 <= f["beta2"] < 1, "beta2", "must be in [0, 1)")
        need(F32_TINY <= f["eps"] <= 1, "eps", "must be in [1e-38, 1]")
        need(0 <= f["weight_decay"] <= 1, "weight_decay", "must be in [0, 1]")
        need(isinstance(self.shift, int) and 0 <= self.shift <= MAX_SHIFT, "shift", f"must be in 0..{MAX_SHIFT} pixels")
        need(isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED, "seed", f"must be in 0..{MAX_SEED}")
        return out

    def with_optimizer(self, name: str, lr: float | None = None) -> "Recipe":
        """This recipe with optimizer `name`; given no `lr`, a change of optimizer brings that
        optimizer's usual rate (OPTIMIZER_LR): SGD's 0.1 would make Adam jump about."""
        if lr is None:
            lr = self.lr if name == self.optimizer else OPTIMIZER_LR.get(name, Recipe.lr)
        # the cosine floor keeps its share of the rate (the original recipe's 0.05 -> 0.001 becomes
        # Adam's 0.001 -> 2e-05): kept as it was, it would equal Adam's rate, a flat schedule
        floor = self.min_lr * lr / self.lr if self.lr > 0 else 0.0
        return self.with_changes(optimizer=name, lr=lr, min_lr=min(floor, lr))

    def idle(self, given) -> list[tuple[str, str]]:
        """(field, why) for each of the `given` fields this recipe never reads: SGD's momentum under
        Adam, Adam's betas under SGD, a schedule's parameters under another schedule: a setting a
        user typed and would otherwise think applied."""
        why = {
            "momentum": self.optimizer != "sgd" and "momentum is SGD's",
            "nesterov": (self.optimizer != "sgd" and "Nesterov momentum is SGD's")
            or (self.nesterov and self.momentum == 0 and "Nesterov needs momentum above 0"),
            "beta1": self.optimizer != "adam" and "the betas and eps are Adam's",
            "beta2": self.optimizer != "adam" and "the betas and eps are Adam's",
            "eps": self.optimizer != "adam" and "the betas and eps are Adam's",
            "min_lr": self.schedule != "cosine" and "min-lr is the cosine schedule's floor",
            "gamma": self.schedule not in ("step", "exponential") and "gamma is the step and exponential schedules' factor",
            "step_epochs": self.schedule not in ("step", "exponential") and "step-epochs is the step and exponential "
                                                                           "schedules' period",
        }
        return [(f, why[f]) for f in given if why.get(f)]

    def validate(self) -> "Recipe":
        bad = self.problems()
        if bad:
            field, text = bad[0]
            raise ValueError(f"{field.replace('_', '-')} {text}")
        return self

    def steps(self, train_samples: int) -> tuple[int, int]:
        """(steps per epoch, total steps) on a training set of this size; the total must fit the GPU's u32 counter."""
        per_epoch = math.ceil(train_samples / self.batch_size)
        total = per_epoch * self.epochs
        if total > MAX_STEPS:
            raise ValueError(f"--epochs {self.epochs}: {per_epoch:,} step{'s' * (per_epoch != 1)} per epoch make "
                             f"{total:,} steps, more than "
                             f"the GPU's step counter holds ({MAX_STEPS:,}); use --epochs {MAX_STEPS // per_epoch} "
                             f"or less, or a larger --batch-size")
        return per_epoch, total

    # -- text and metadata ---------------------------------------------------------------------------
    def describe(self) -> str:
        """One line for logs: 'sgd momentum 0.9 nesterov, lr 0.1 cosine to 0, batch 64, 20 epochs, shift +-1px'."""
        opt = self.optimizer
        if self.optimizer == "sgd" and self.momentum:
            opt += f" momentum {self.momentum:g}" + (" nesterov" if self.nesterov else "")
        sched = {"cosine": f"cosine to {self.min_lr:g}", "constant": "constant",
                 "step": f"x{self.gamma:g} every {self.step_epochs:g} epochs",
                 "exponential": f"x{self.gamma:g} per {self.step_epochs:g} epochs (exponential)"}[self.schedule]
        text = f"{opt}, lr {self.lr:g} {sched}, batch {self.batch_size}, {self.epochs} epoch{'s' * (self.epochs != 1)}"
        if self.weight_decay:
            text += f", weight decay {self.weight_decay:g}"
        if self.shift:
            text += f", shift +-{self.shift}px"
        return text

    def to_metadata(self) -> dict[str, str]:
        return {f"recipe.{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "Recipe | None":
        """The recipe a checkpoint records (to_metadata's fields over the named recipe of
        'recipe', the rest the defaults), or None where it records none (a PyTorch file).
        A recorded value that is not one raises ValueError naming its key."""
        named = RECIPES.get(meta.get("recipe", ""))
        given = {k: meta[f"recipe.{k}"] for k in FIELDS if f"recipe.{k}" in meta}
        if named is None and not given:
            return None
        changes = {}
        for name, text in given.items():
            parse, wanted = _FROM_TEXT[_FIELD_TYPES[name]]
            try:
                changes[name] = parse(text)
            except ValueError:
                raise ValueError(f"recipe.{name}: expected {wanted}, got {text!r}") from None
        recipe = (named or cls()).with_changes(**changes)
        bad = recipe.problems()
        if bad:
            field, text = bad[0]
            raise ValueError(f"recipe.{field} {text}")
        return recipe

    def with_changes(self, **changes) -> "Recipe":
        return replace(self, **changes)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


F32_FIELDS = ("lr", "min_lr", "gamma", "momentum", "beta1", "beta2", "eps", "weight_decay")


def as_f32(x) -> float:
    """x as the GPU's float32 will hold it (0.99999999999 is 1.0, 1e-50 is 0.0); NaN when it cannot."""
    if not _finite(x) or abs(x) > F32_MAX:
        return math.nan
    return struct.unpack("<f", struct.pack("<f", x))[0]


FIELDS = tuple(f.name for f in fields(Recipe))
_FIELD_TYPES = {f.name: f.type for f in fields(Recipe)}      # 'int', 'float', 'str', 'bool'


def _bool(text: str) -> bool:
    if text not in ("True", "False"):        # str(bool): what to_metadata writes
        raise ValueError(text)
    return text == "True"


_FROM_TEXT = {"int": (int, "a whole number"), "float": (float, "a number"), "str": (str, "text"),
              "bool": (_bool, "True or False")}

# The shipped convolutional network (assets/mnist-cnn.safetensors): two 3x3 conv blocks of 32 and 64
# channels, each closed by a max pool, then a 256-unit dense layer with dropout.
CNN_ARCH = ("Conv2d(1,32,3,padding=1),ReLU(),Conv2d(32,32,3,padding=1),ReLU(),MaxPool2d(2),"
            "Conv2d(32,64,3,padding=1),ReLU(),Conv2d(64,64,3,padding=1),ReLU(),MaxPool2d(2),Flatten(),"
            "Linear(3136,256),ReLU(),Dropout(0.3),Linear(256,10)")

RECIPES = {
    # Measured on the H100 (benchmarks/recipe_sweep.py, 3 seeds): 98.58 / 98.80 / 98.68 %.
    "default": Recipe(),
    # The browser project's recipe: plain SGD, lr 0.05 cosine to 0.001, batch 32, 15 epochs: 97.5%.
    "original": Recipe(epochs=15, batch_size=32, lr=0.05, min_lr=0.001, momentum=0.0, nesterov=False, shift=0),
    # For CNN_ARCH: SGD + Nesterov, ±2 px shifts (a CNN can use more augmentation than the MLP).
    "cnn": Recipe(epochs=15, batch_size=64, lr=0.05, min_lr=0.0, momentum=0.9, nesterov=True, shift=2),
}

# The network a recipe was tuned for, where it is not the MLP of --hidden: `train --recipe cnn`
# trains CNN_ARCH unless --arch / --hidden say otherwise.
RECIPE_ARCH = {"cnn": CNN_ARCH}
