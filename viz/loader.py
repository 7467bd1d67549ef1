"""Loading the dataset for the window: at once for --data (a bad directory is an error at
start), on a thread for the bundled MNIST (the window opens at once; its shape is
known before it has loaded, as the copy is checksum-verified)."""
from __future__ import annotations

import threading
from dataclasses import replace

from .files import MNIST_SHAPE


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
            self.dataset = load_dataset(data_dir)

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
            self.dataset = load_dataset(self.data_dir or bundled_mnist_dir())
        except Exception as e:  # noqa: BLE001 - shown in the UI
            self.error = str(e).splitlines()[0] if str(e) else type(e).__name__

    def wait(self, timeout: float = 60.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def gpu_dataset(self):
        """The dataset on the GPU (call from the frame thread once `dataset` is set)."""
        from ..compute.data import GpuDataset
        ds = self.dataset
        if self.test_limit:
            ds = replace(ds, test_images=ds.test_images[: self.test_limit],
                         test_labels=ds.test_labels[: self.test_limit])
        return GpuDataset(ds, self.limit)
