"""Views of evaluation results and the dataset (eval_views.wgsl): the confusion
matrix, the gallery of misclassified test digits, and the dataset browser.

They are redrawn only when their inputs change (a new evaluation, another page,
another selection), so they cost nothing in frames where nothing happened.
"""
from __future__ import annotations

from ..compute.device import get_device
from ..compute.tensor import Tensor
from ..compute.training import WRONG_CAP

from .gpu import NONE, Params, ViewTexture, grid_2d, make_dispatch
from .inference import Forward

TILE_COLS, TILE_ROWS = 16, 4
PAGE = TILE_COLS * TILE_ROWS
LABEL_H, GAP = 9, 2


class TileGrid:
    """Geometry of a page of digit tiles (shared by the gallery and the dataset browser)."""

    def __init__(self, iw: int, ih: int, cols: int = TILE_COLS, rows: int = TILE_ROWS):
        self.iw, self.ih, self.cols, self.rows = iw, ih, cols, rows
        self.pw, self.ph = iw + GAP, ih + LABEL_H + GAP
        self.size = (GAP + cols * self.pw, GAP + rows * self.ph)

    def tile_at(self, u: float, v: float) -> int | None:
        x, y = u * self.size[0] - GAP, v * self.size[1] - GAP
        if x < 0 or y < 0:
            return None
        cx, cy = int(x // self.pw), int(y // self.ph)
        if cx < self.cols and cy < self.rows:
            return cy * self.cols + cx
        return None


class ConfusionView:
    CELL_W, CELL_H, MARGIN = 32, 18, 16

    def __init__(self, history):
        c = history.num_classes
        self.history = history
        self.texture = ViewTexture(self.MARGIN + c * self.CELL_W + 1, self.MARGIN + c * self.CELL_H + 1,
                                   "confusion", nearest=True)
        prm = get_device().uniform("<4I", c, self.CELL_W, self.CELL_H, self.MARGIN)
        self.dispatch = make_dispatch("eval_views.wgsl", "confusion", [prm, history.counters, self.texture.view],
                                      grid_2d(*self.texture.size))
        self._seen = None

    def dispatches(self) -> list:
        if self._seen == self.history.revision:
            return []
        self._seen = self.history.revision
        return [self.dispatch]


class MistakesView:
    """Misclassified test digits of the last evaluation, labelled true -> predicted.

    The predictions are recomputed on the GPU (a traced batch-64 forward pass over
    the page's digits) when a new evaluation lands or the page changes."""

    def __init__(self, history, data, model):
        test = data.test
        self.history = history
        self.grid = TileGrid(test.width, test.height)
        self.page = 0
        self.x = Tensor((PAGE, test.input_size), label="mistakes.x")
        self.forward = Forward(model, self.x, label="mistakes.forward")
        self.gather_params = Params("<4I", PAGE, 0, test.input_size, WRONG_CAP, label="mistakes.gather")
        self._gather = make_dispatch("eval_views.wgsl", "gallery_gather",
                                     [self.gather_params.buffer, test.images, history.wrong, history.counters,
                                      self.x], (-(-PAGE * test.input_size // 256),))
        self.tile_params = Params("<12I", *self._tile_values(), label="mistakes.tiles")
        self.texture = ViewTexture(*self.grid.size, "mistakes", nearest=True)
        self._tiles = make_dispatch("eval_views.wgsl", "tiles",
                                    [self.tile_params.buffer, test.images, test.labels, history.wrong,
                                     history.counters, self.forward.logits, self.texture.view],
                                    grid_2d(*self.grid.size))
        self._seen = None
        self.test = test

    def _tile_values(self):
        g = self.grid
        return (1, self.page * PAGE, WRONG_CAP, g.cols, g.rows, g.iw, g.ih, LABEL_H, GAP,
                self.history.num_classes, NONE, 0)

    @property
    def pages(self) -> int:
        return WRONG_CAP // PAGE

    def dispatches(self) -> list:
        key = (self.history.revision, self.page)
        if key == self._seen:
            return []
        self._seen = key
        self.gather_params.set(PAGE, self.page * PAGE, self.test.input_size, WRONG_CAP)
        self.tile_params.set(*self._tile_values())
        return [self._gather, *self.forward.dispatches(), self._tiles]


class DatasetView:
    """A page of training or test images with their labels; a picked one is outlined."""

    def __init__(self, data):
        self.data = data
        tr = data.train
        self.grid = TileGrid(tr.width, tr.height)
        self.split = "test"
        self.page = 0
        self.selected: int | None = None
        self.texture = ViewTexture(*self.grid.size, "dataset", nearest=True)
        self.params = Params("<12I", *self._values(), label="dataset.tiles")
        dev = get_device()
        self._d = {}
        for name in ("train", "test"):
            split = getattr(data, name)
            self._d[name] = make_dispatch("eval_views.wgsl", "tiles",
                                          [self.params.buffer, split.images, split.labels, dev.dummy_ro,
                                           dev.dummy_ro, dev.dummy_ro, self.texture.view], grid_2d(*self.grid.size))
        self._seen = None

    @property
    def n(self) -> int:
        return getattr(self.data, self.split).n

    @property
    def pages(self) -> int:
        return max(1, -(-self.n // PAGE))

    def _values(self):
        g = self.grid
        sel = NONE if self.selected is None else self.selected
        return (0, self.page * PAGE, self.n, g.cols, g.rows, g.iw, g.ih, LABEL_H, GAP,
                self.data.num_classes, sel, 0)

    def sample_at(self, tile: int | None) -> int | None:
        if tile is None:
            return None
        i = self.page * PAGE + tile
        return i if i < self.n else None

    def dispatches(self) -> list:
        self.page = max(0, min(self.page, self.pages - 1))
        values = self._values()
        key = (self.split, values)
        if key == self._seen:
            return []
        self._seen = key
        self.params.set(*values)
        return [self._d[self.split]]
