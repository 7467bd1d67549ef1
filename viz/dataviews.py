"""Views of evaluation results and the dataset (eval_views.wgsl): the confusion
matrix, the gallery of misclassified test digits, and the dataset browser.

They are redrawn only when their inputs change (a new evaluation, another page,
another selection), so they cost nothing in frames where nothing happened.
"""
from __future__ import annotations

from ..compute.device import get_device
from ..compute.tensor import Tensor
from ..compute.metrics import WRONG_CAP

from . import glyphs
from .gpu import Params, ViewTexture, grid_2d, make_dispatch
from .structs import CONFUSION, GALLERY_GATHER, NONE, TILES
from .inference import Forward

TILE_ROWS = 4
PAGE_WIDTH = 480          # texture pixels a page of tiles is about as wide as (the panel's width)
GAP = 2
LABEL_SCALE = 2           # thumbnail labels: the 5x7 font at twice its size (readable when shown)


LABEL_MIN_CHARS = 6       # a label may widen its tile to this many characters, however small the image


class TileGrid:
    """Geometry of a page of digit tiles (shared by the gallery and the dataset browser):
    each tile is wide enough for its label at LABEL_SCALE (up to twice the image's width, or
    LABEL_MIN_CHARS characters for small images, beyond that names are cut), and as many columns
    as fit PAGE_WIDTH."""

    def __init__(self, iw: int, ih: int, names=(), arrow: bool = False, rows: int = TILE_ROWS):
        widest = max((glyphs.text_width(n) for n in names), default=0)
        most = max(2 * iw, (glyphs.text_width("x" * LABEL_MIN_CHARS) + 3) * LABEL_SCALE)   # 8 x 8 images: 'middle'
        one_line = (2 * widest + (glyphs.ADVANCE + 4) if arrow else widest) * LABEL_SCALE
        self.lines = 1 if one_line <= most else 2
        label_w = one_line if self.lines == 1 else (widest + glyphs.ADVANCE + 2) * LABEL_SCALE
        self.tile_w = max(iw, min(label_w + 3 * LABEL_SCALE, most))   # labels of neighbours apart
        self.label_h = self.lines * (glyphs.GLYPH_H * LABEL_SCALE + 2) + 2
        self.iw, self.ih, self.rows = iw, ih, rows
        self.pw, self.ph = self.tile_w + GAP, ih + self.label_h + GAP
        self.cols = max(4, PAGE_WIDTH // self.pw)
        self.size = (GAP + self.cols * self.pw, GAP + rows * self.ph)

    @property
    def page(self) -> int:
        return self.cols * self.rows

    def values(self) -> dict:
        """The geometry fields of the `Tiles` struct."""
        return dict(cols=self.cols, rows=self.rows, iw=self.iw, ih=self.ih, label_h=self.label_h, gap=GAP,
                    tile_w=self.tile_w, font_scale=LABEL_SCALE, lines=self.lines)

    def tile_at(self, u: float, v: float) -> int | None:
        x, y = u * self.size[0] - GAP, v * self.size[1] - GAP
        if x < 0 or y < 0:
            return None
        cx, cy = int(x // self.pw), int(y // self.ph)
        if cx < self.cols and cy < self.rows:
            return cy * self.cols + cx
        return None


class ConfusionView:
    """The confusion matrix with the class names on its axes (true: rows, at the left in
    full; predicted: columns, above, cut to the cell)."""
    CELL_W, CELL_H, MARGIN = 32, 18, 16

    def __init__(self, metrics, names, class_names=()):
        c = metrics.num_classes
        self.metrics = metrics
        self.margin_x = max(self.MARGIN, max((glyphs.text_width(n) for n in class_names), default=0) + 8)
        self.texture = ViewTexture(self.margin_x + c * self.CELL_W + 1, self.MARGIN + c * self.CELL_H + 1,
                                   "confusion", nearest=True)
        prm = get_device().uniform(CONFUSION, classes=c, cell_w=self.CELL_W, cell_h=self.CELL_H, margin=self.MARGIN,
                                   margin_x=self.margin_x)
        self.dispatch = make_dispatch("eval_views.wgsl", "confusion",
                                      [prm, metrics.counters, self.texture.view, names], grid_2d(*self.texture.size))
        self._seen = None

    def cell_at(self, u: float, v: float) -> tuple[int, int] | None:
        """(true, predicted) class of the cell under texture coordinates (u, v), or None."""
        x, y = u * self.texture.width - self.margin_x, v * self.texture.height - self.MARGIN
        c = self.metrics.num_classes
        if x < 0 or y < 0 or x >= c * self.CELL_W or y >= c * self.CELL_H:
            return None
        return int(y // self.CELL_H), int(x // self.CELL_W)

    def dispatches(self) -> list:
        if self._seen == self.metrics.revision:
            return []
        self._seen = self.metrics.revision
        return [self.dispatch]


class MistakesView:
    """Misclassified test digits of the last evaluation, labelled true -> predicted.

    The predictions are recomputed on the GPU (a traced batch-64 forward pass over
    the page's digits) when a new evaluation lands or the page changes."""

    def __init__(self, metrics, data, model, names, class_names=()):
        test = data.test
        self.metrics = metrics
        self.grid = TileGrid(test.width, test.height, class_names, arrow=True)
        page = self.grid.page
        self.x = Tensor((page, test.input_size), label="mistakes.x")
        self.forward = Forward(model, self.x, label="mistakes.forward")
        self.gather_params = Params(GALLERY_GATHER, "mistakes.gather", batch=page, pixels=test.input_size,
                                    wrong_cap=WRONG_CAP)
        self._gather = make_dispatch("eval_views.wgsl", "gallery_gather",
                                     [self.gather_params.buffer, test.images, metrics.wrong, metrics.counters,
                                      self.x], (-(-page * test.input_size // 256),))
        self.page = 0
        self.tile_params = Params(TILES, "mistakes.tiles", **self._tile_values())
        self.texture = ViewTexture(*self.grid.size, "mistakes", nearest=True)
        self._tiles = make_dispatch("eval_views.wgsl", "tiles",
                                    [self.tile_params.buffer, test.images, test.labels, metrics.wrong,
                                     metrics.counters, self.forward.logits, self.texture.view, names],
                                    grid_2d(*self.grid.size))
        self._seen = None
        self.test = test

    def _tile_values(self):
        return dict(mode=1, first=self.page * self.grid.page, n=WRONG_CAP, classes=self.metrics.num_classes,
                    selected=NONE, **self.grid.values())

    @property
    def pages(self) -> int:
        return -(-WRONG_CAP // self.grid.page)

    def dispatches(self, page: int) -> list:
        key = (self.metrics.revision, page)
        if key == self._seen:
            return []
        self._seen = key
        self.page = page
        self.gather_params.update(first=self.page * self.grid.page)
        self.tile_params.set(**self._tile_values())
        return [self._gather, *self.forward.dispatches(), self._tiles]


class DatasetView:
    """A page of training or test images with their labels; a picked one is outlined.
    Which page of which split is the UI's state (UIState.dataset_*), passed in each frame."""

    def __init__(self, data, names, class_names=()):
        self.data = data
        tr = data.train
        self.grid = TileGrid(tr.width, tr.height, class_names)
        self.texture = ViewTexture(*self.grid.size, "dataset", nearest=True)
        self.params = Params(TILES, "dataset.tiles", **self._values("test", 0, None))
        dev = get_device()
        self._d = {}
        for name in ("train", "test"):
            split = getattr(data, name)
            self._d[name] = make_dispatch("eval_views.wgsl", "tiles",
                                          [self.params.buffer, split.images, split.labels, dev.dummy_ro,
                                           dev.dummy_ro, dev.dummy_ro, self.texture.view, names],
                                          grid_2d(*self.grid.size))
        self._seen = None

    def pages_of(self, split: str) -> int:
        return max(1, -(-getattr(self.data, split).n // self.grid.page))

    def _values(self, split: str, page: int, selected: int | None) -> dict:
        return dict(mode=0, first=page * self.grid.page, n=getattr(self.data, split).n,
                    classes=self.data.num_classes, selected=NONE if selected is None else selected,
                    **self.grid.values())

    def sample_at(self, split: str, page: int, tile: int | None) -> int | None:
        if tile is None:
            return None
        i = page * self.grid.page + tile
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
