"""Loading the dataset for the window: at once for --data (a bad directory is an error at
start), on a thread for the bundled MNIST (the window opens at once; its shape is
known before it has loaded, as the copy is checksum-verified).

It also says whether the window can hold a dataset and a model on this GPU (the
device's limits, compute/budget.py) before anything of theirs is created: the data
and the engine's buffers as for `mnist-viz train`, plus what only the window has (a
page of images for the mistakes gallery, gallery textures of the images' size).
"""
from __future__ import annotations

import threading

from .files import MNIST_SHAPE


def check_window_data(dataset, limit: int | None, test_limit: int | None, limits=None) -> None:
    """The splits fit the GPU's bindings and a gallery page of the images fits a texture
    (BudgetError naming the option or the reason otherwise)."""
    from ..compute.budget import BudgetError, Limits, check_data
    from .dataviews import TileGrid
    limits = limits or Limits.current()
    n = min(limit or len(dataset.train_images), len(dataset.train_images))
    m = min(test_limit or len(dataset.test_images), len(dataset.test_images))
    check_data(n, m, dataset.image_shape, limits)
    h, w = dataset.image_shape
    grid = TileGrid(w, h, names=("M" * 32,), arrow=True)     # the widest tiles: long class names
    gw, gh = grid.size
    if max(gw, gh) > limits.texture:
        raise BudgetError(f"{w} x {h} images: the window's gallery pages of {grid.cols} x {grid.rows} images need a "
                          f"{gw} x {gh} texture, above this GPU's {limits.texture}-pixel texture limit; train and "
                          f"evaluate them with `mnist-viz train` and `mnist-viz eval`")


def check_window_model(arch, batch_size: int, limits=None) -> None:
    """The model's parameters, a training step at `batch_size` and the mistakes gallery's
    page of images fit the GPU's bindings (BudgetError otherwise)."""
    from ..compute.budget import Limits, check_model, check_rows, rows_fit
    from .dataviews import TileGrid
    limits = limits or Limits.current()
    h, w = arch.input_shape[-2:]
    page = TileGrid(w, h).page          # unnamed tiles are the narrowest: the largest page
    check_model(arch, limits)
    most = rows_fit(arch, limits)
    check_rows(arch, page, limits, option=None, who=f"the window's gallery of mistakes, {page} images at a time,",
               fix=f"train and evaluate them headless (mnist-viz train --batch-size {max(most, 1)})")
    check_rows(arch, batch_size, limits, option="batch size", who="a training step")


class DatasetLoader:
    def __init__(self, data_dir=None, background: bool = True, limit: int | None = None,
                 test_limit: int | None = None):
        self.data_dir = data_dir
        self.background = background
        self.limit, self.test_limit = limit, test_limit
        self.dataset = None         # the host-side arrays (compute.idx.Dataset)
        self.error: str | None = None
        self._thread = None
        if data_dir is not None:
            from ..compute.idx import load_dataset
            dataset = load_dataset(data_dir)
            check_window_data(dataset, limit, test_limit)
            self.dataset = dataset

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, classes) of the data the model must fit."""
        if self.dataset is not None:
            return (*self.dataset.image_shape, self.dataset.num_classes)
        return MNIST_SHAPE

    @property
    def classes(self):
        """The classes' names (viz/classes.py), known as soon as the shape is."""
        from .classes import class_info
        h, w, c = self.shape
        return class_info(self.data_dir, c, (h, w))

    def start(self) -> None:
        if self.dataset is not None:
            return
        if self.background:
            self._thread = threading.Thread(target=self._load, name="mnist-viz-load", daemon=True)
            self._thread.start()
        else:
            self._load()

    def _load(self) -> None:
        try:
            from ..compute.idx import bundled_mnist_dir, load_dataset
            dataset = load_dataset(self.data_dir or bundled_mnist_dir())
            check_window_data(dataset, self.limit, self.test_limit)
            self.dataset = dataset
        except Exception as e:  # noqa: BLE001 - shown in the UI
            self.error = str(e).splitlines()[0] if str(e) else type(e).__name__

    def wait(self, timeout: float = 60.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def gpu_dataset(self):
        """The dataset on the GPU (call from the frame thread once `dataset` is set)."""
        from ..compute.data import GpuDataset
        return GpuDataset(self.dataset, self.limit, self.test_limit)
