"""Views of evaluation results and the dataset (eval_views.wgsl): the confusion
matrix, the gallery of misclassified test digits, and the dataset browser.

They are redrawn only when their inputs change (a new evaluation, another page,
another selection), so they cost nothing in frames where nothing happened.
"""
from __future__ import annotations

from ..compute.device import get_device
from ..compute.tensor import Tensor
from ..compute.metrics import WRONG_CAP

from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import CONFUSION, GALLERY_GATHER, NONE, TILES
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

    def __init__(self, metrics):
        c = metrics.num_classes
        self.metrics = metrics
        self.texture = ViewTexture(self.MARGIN + c * self.CELL_W + 1, self.MARGIN + c * self.CELL_H + 1,
                                   "confusion", nearest=True)
        prm = get_device().uniform(CONFUSION, classes=c, cell_w=self.CELL_W, cell_h=self.CELL_H, margin=self.MARGIN)
        self.dispatch = make_dispatch("eval_views.wgsl", "confusion", [prm, metrics.counters, self.texture.view],
                                      grid_2d(*self.texture.size))
        self._seen = None

    def dispatches(self) -> list:
        if self._seen == self.metrics.revision:
            return []
        self._seen = self.metrics.revision
        return [self.dispatch]


class MistakesView:
    """Misclassified test digits of the last evaluation, labelled true -> predicted.

    The predictions are recomputed on the GPU (a traced batch-64 forward pass over
    the page's digits) when a new evaluation lands or the page changes."""

    def __init__(self, metrics, data, model):
        test = data.test
        self.metrics = metrics
        self.grid = TileGrid(test.width, test.height)
        self.x = Tensor((PAGE, test.input_size), label="mistakes.x")
        self.forward = Forward(model, self.x, label="mistakes.forward")
        self.gather_params = Params(GALLERY_GATHER, "mistakes.gather", batch=PAGE, pixels=test.input_size,
                                    wrong_cap=WRONG_CAP)
        self._gather = make_dispatch("eval_views.wgsl", "gallery_gather",
                                     [self.gather_params.buffer, test.images, metrics.wrong, metrics.counters,
                                      self.x], (-(-PAGE * test.input_size // 256),))
        self.page = 0
        self.tile_params = Params(TILES, "mistakes.tiles", **self._tile_values())
        self.texture = ViewTexture(*self.grid.size, "mistakes", nearest=True)
        self._tiles = make_dispatch("eval_views.wgsl", "tiles",
                                    [self.tile_params.buffer, test.images, test.labels, metrics.wrong,
                                     metrics.counters, self.forward.logits, self.texture.view],
                                    grid_2d(*self.grid.size))
        self._seen = None
        self.test = test

    def _tile_values(self):
        g = self.grid
        return dict(mode=1, first=self.page * PAGE, n=WRONG_CAP, cols=g.cols, rows=g.rows, iw=g.iw, ih=g.ih,
                    label_h=LABEL_H, gap=GAP, classes=self.metrics.num_classes, selected=NONE)

    @property
    def pages(self) -> int:
        return WRONG_CAP // PAGE

    def dispatches(self, page: int) -> list:
        key = (self.metrics.revision, page)
        if key == self._seen:
            return []
        self._seen = key
        self.page = page
        self.gather_params.update(first=self.page * PAGE)
        self.tile_params.set(**self._tile_values())
        return [self._gather, *self.forward.dispatches(), self._tiles]


class DatasetView:
    """A page of training or test images with their labels; a picked one is outlined.
    Which page of which split is the UI's state (UIState.dataset_*), passed in each frame."""

    def __init__(self, data):
        self.data = data
        tr = data.train
        self.grid = TileGrid(tr.width, tr.height)
        self.texture = ViewTexture(*self.grid.size, "dataset", nearest=True)
        self.params = Params(TILES, "dataset.tiles", **self._values("test", 0, None))
        dev = get_device()
        self._d = {}
        for name in ("train", "test"):
            split = getattr(data, name)
            self._d[name] = make_dispatch("eval_views.wgsl", "tiles",
                                          [self.params.buffer, split.images, split.labels, dev.dummy_ro,
                                           dev.dummy_ro, dev.dummy_ro, self.texture.view], grid_2d(*self.grid.size))
        self._seen = None

    def pages_of(self, split: str) -> int:
        return max(1, -(-getattr(self.data, split).n // PAGE))

    def _values(self, split: str, page: int, selected: int | None) -> dict:
        g = self.grid
        return dict(mode=0, first=page * PAGE, n=getattr(self.data, split).n, cols=g.cols, rows=g.rows, iw=g.iw,
                    ih=g.ih, label_h=LABEL_H, gap=GAP, classes=self.data.num_classes,
                    selected=NONE if selected is None else selected)

    def sample_at(self, split: str, page: int, tile: int | None) -> int | None:
        if tile is None:
            return None
        i = page * PAGE + tile
        return i if i < getattr(self.data, split).n else None

    def dispatches(self, split: str, page: int, selected: int | None) -> list:
        page = max(0, min(page, self.pages_of(split) - 1))
        values = self._values(split, page, selected)
        key = (split, tuple(values.items()))
        if key == self._seen:
            return []
        self._seen = key
        self.params.set(**values)
        return [self._d[split]]
