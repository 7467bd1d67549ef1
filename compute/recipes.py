"""Named training recipes for the 784-128-10 MLP.

"original" is the browser project's recipe, kept to reproduce its 97.5%.
"default" is ours (see README, 'Recipes', for why each choice is there).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    min_lr: float
    schedule: str
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    dropout: float = 0.0
    shift: int = 0
    init: str = "he_uniform"


RECIPES = {
    "original": Recipe(epochs=15, batch_size=32, optimizer="sgd", lr=0.05, min_lr=0.001, schedule="cosine"),
    # Measured on the H100 (benchmarks/recipe_sweep.py, 3 seeds): 98.58 / 98.80 / 98.68 %.
    "default": Recipe(epochs=20, batch_size=64, optimizer="sgd", lr=0.1, min_lr=0.0, schedule="cosine",
                      momentum=0.9, nesterov=True, shift=1),
}
