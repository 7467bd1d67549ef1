"""Shared fixtures. Tests run on whatever adapter wgpu finds (lavapipe on CI)."""
import dataclasses
import functools
import importlib
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "checkout"))  # mnist_viz = this checkout
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

OFFSCREEN_FRAME = "offscreen-frame"   # the label of rendercanvas's download of an offscreen frame


@pytest.fixture(scope="session")
def mnist():
    from mnist_viz.compute.idx import bundled_mnist_dir, load_dataset
    return load_dataset(bundled_mnist_dir())


@pytest.fixture(scope="session")
def device():
    from mnist_viz.compute.device import get_device
    return get_device()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def make_app(tmp_path):
    """A factory of offscreen visualizer Apps, closed (GPU work drained) when the test ends.

    make_app(size=, pixel_ratio=, **config): `config` is AppConfig's fields. The dataset loads
    before it returns (no background thread to race), autosaves go under tmp_path unless told
    otherwise (never the user's folder), and each app gets its own copy of `watch` (the speed
    slider changes it), so a test file can fix its defaults once with functools.partial.
    """
    apps = []

    def make(size=(640, 400), pixel_ratio=1.0, **config):
        from rendercanvas.offscreen import RenderCanvas
        from mnist_viz.viz.app import App, AppConfig
        config.setdefault("autosave_dir", tmp_path / "autosaves")
        if config.get("watch") is not None:
            config["watch"] = dataclasses.replace(config["watch"])
        app = App(RenderCanvas(size=size, pixel_ratio=pixel_ratio), AppConfig(background_load=False, **config))
        assert app.wait_for_data()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.fence.drain()
        app.rc.close()


def act(app, name, *args):
    """What a panel or a key does: emit the action named (it runs in the next frame)."""
    from mnist_viz.viz.actions import Action
    app.actions.emit(Action[name.upper()], *args)


def speed_index(steps_per_frame: int) -> int:
    """WatchSettings.speed for a pace of `steps_per_frame` (an index into pacing.SPEEDS)."""
    from mnist_viz.viz.pacing import SPEEDS
    return [v for v, _ in SPEEDS].index(steps_per_frame)


def import_for_interop(name: str):
    """A module the PyTorch interop tests need. Missing, the tests skip on a developer's
    machine; where CI is set they fail instead, so they cannot vanish from CI unnoticed
    (scripts/setup.sh test installs the CPU PyTorch)."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {name} cannot be imported ({e}); the PyTorch interop tests must run on CI: "
                        f"run scripts/setup.sh test (it installs the CPU PyTorch)", pytrace=False)
        pytest.skip(f"{name} is not installed (scripts/setup.sh test installs it)")


@pytest.fixture(scope="session")
def torch():
    return import_for_interop("torch")


@pytest.fixture(scope="session")
def safetensors_torch(torch):
    return import_for_interop("safetensors.torch")


class WgpuReads:
    """Every GPU -> CPU transfer, counted where wgpu does it, not where our code says it does.

    The device's ReadbackMeter sees only reads that go through `Device.read` / `read_async` / `read_in`;
    a raw `queue.read_buffer` anywhere (or a wrapper that forgets to record) slips past it.
    This meter wraps wgpu's own entry points (`GPUQueue.read_buffer`, `GPUQueue.read_texture`,
    `GPUBuffer.map_async` / `map_sync` in read mode), counting only the outermost call (a
    `read_buffer` maps a staging buffer inside: one read, not two). A read made while
    rendercanvas downloads an offscreen frame (`App.draw_offscreen`, the screenshot path)
    is labelled OFFSCREEN_FRAME, so a test can allow exactly that and nothing else.
    """

    OFFSCREEN_FRAME = OFFSCREEN_FRAME

    def __init__(self):
        self.reads: list[tuple[str, int]] = []      # (label, bytes), in order
        self._local = threading.local()

    # -- what was read --------------------------------------------------------------------
    def excluding(self, label: str) -> list[tuple[str, int]]:
        return [r for r in self.reads if r[0] != label]

    def only(self, label: str) -> list[tuple[str, int]]:
        return [r for r in self.reads if r[0] == label]

    @property
    def count(self) -> int:
        return len(self.reads)

    @property
    def total_bytes(self) -> int:
        return sum(n for _, n in self.reads)

    def reset(self) -> None:
        self.reads.clear()

    # -- how it counts --------------------------------------------------------------------
    @contextmanager
    def labelled(self, label: str):
        """Reads inside get `label` (whatever buffer or texture they read)."""
        old = getattr(self._local, "label", None)
        self._local.label = label
        try:
            yield
        finally:
            self._local.label = old

    def counted(self, original, describe):
        """`original` wrapped: its outermost call records describe(...) = (bytes, label) or None."""
        meter = self

        @functools.wraps(original)
        def wrapper(obj, *args, **kwargs):
            depth = getattr(meter._local, "depth", 0)
            if depth == 0:
                what = describe(obj, *args, **kwargs)
                if what is not None:
                    nbytes, label = what
                    meter.reads.append((getattr(meter._local, "label", None) or label or "?", int(nbytes)))
            meter._local.depth = depth + 1
            try:
                return original(obj, *args, **kwargs)
            finally:
                meter._local.depth = depth
        return wrapper


def _read_buffer_size(queue, buffer, buffer_offset=0, size=None):
    return (size or buffer.size - buffer_offset), buffer.label


def _read_texture_size(queue, source, data_layout, size):
    size = tuple(size.values()) if isinstance(size, dict) else tuple(size) + (1,) * (3 - len(tuple(size)))
    return data_layout["bytes_per_row"] * size[1] * size[2], source["texture"].label


def _map_size(buffer, mode, offset=0, size=None):
    import wgpu
    reading = "READ" in mode if isinstance(mode, str) else bool(int(mode) & wgpu.MapMode.READ)
    if not reading:
        return None  # a write mapping sends data to the GPU
    return (size if size is not None else buffer.size - offset), buffer.label


@pytest.fixture
def wgpu_reads(device, monkeypatch):
    """A WgpuReads meter installed on wgpu's classes for the duration of the test."""
    from rendercanvas.contexts.wgpucontext import ImageDownloader
    meter = WgpuReads()
    queue_cls, buffer_cls = type(device.queue), type(device.dummy_ro)
    for cls, name, describe in ((queue_cls, "read_buffer", _read_buffer_size),
                                (queue_cls, "read_texture", _read_texture_size),
                                (buffer_cls, "map_async", _map_size),
                                (buffer_cls, "map_sync", _map_size)):
        monkeypatch.setattr(cls, name, meter.counted(getattr(cls, name), describe))
    for name in ("do_sync_download", "initiate_download"):
        original = getattr(ImageDownloader, name)

        def frame_download(self, *args, _original=original, **kwargs):
            with meter.labelled(OFFSCREEN_FRAME):
                return _original(self, *args, **kwargs)
        monkeypatch.setattr(ImageDownloader, name, frame_download)
    return meter
