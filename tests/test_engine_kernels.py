"""Gather, optimizer, schedule and evaluation kernels against numpy."""
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.nn import ParamArena
from mnist_viz.compute.optim import OptimConfig, Optimizer
from mnist_viz.compute.tensor import Tensor


def fake_dataset(n=23, h=5, w=7, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(
        train_images=rng.integers(0, 256, (n, h, w), dtype=np.uint8),
        train_labels=rng.integers(0, classes, n).astype(np.uint8),
        test_images=rng.integers(0, 256, (11, h, w), dtype=np.uint8),
        test_labels=rng.integers(0, classes, 11).astype(np.uint8),
        num_classes=classes)


def state_at(step):
    s = Tensor((16,), dtype="u32")
    s.write(np.array([step] + [0] * 15, np.uint32))
    return s


@pytest.mark.parametrize("batch,step", [(4, 0), (4, 5), (23, 0), (1, 22), (10, 2)])
def test_gather_through_permutation_with_tail(batch, step):
    ds = fake_dataset()
    data = GpuDataset(ds)
    data.shuffle(np.random.default_rng(3))
    perm = np.random.default_rng(3).permutation(23)
    x, y = Tensor((batch, 35)), Tensor((batch,), dtype="u32")
    data.gather(data.train, x, y, state_at(step))
    spe = -(-23 // batch)
    pos = (step % spe) * batch + np.arange(batch)
    xs, ys = x.to_numpy(), y.to_numpy()
    for r, p in enumerate(pos):
        if p < 23:
            np.testing.assert_allclose(xs[r], ds.train_images[perm[p]].reshape(-1) / 255.0, rtol=1e-6)
            assert ys[r] == ds.train_labels[perm[p]]
        else:  # tail rows are empty and marked invalid
            assert np.all(xs[r] == 0) and ys[r] == 0xFFFFFFFF


def test_gather_eval_mode_and_shift():
    ds = fake_dataset()
    data = GpuDataset(ds)
    x, y = Tensor((8, 35)), Tensor((8,), dtype="u32")
    data.gather(data.test, x, y, state_at(0), base=5, eval_mode=True)
    np.testing.assert_allclose(x.to_numpy()[:6], ds.test_images[5:11].reshape(6, -1) / 255.0, rtol=1e-6)
    assert list(y.to_numpy()[6:]) == [0xFFFFFFFF] * 2
    # shift: every row is a translate of its source image by at most 2 px
    data.gather(data.train, x, y, state_at(0), shift=2, seed=9)
    xs = x.to_numpy().reshape(8, 5, 7)
    for r in range(8):
        src = ds.train_images[r] / 255.0
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.allclose(xs[r], _translate(src, dy, dx), atol=1e-6)]
        assert matches, f"row {r} is not a shifted copy"


def _translate(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape
    for yy in range(h):
        for xx in range(w):
            sy, sx = yy - dy, xx - dx
            if 0 <= sy < h and 0 <= sx < w:
                out[yy, xx] = img[sy, sx]
    return out


def _optimizer(cfg, p0, g):
    arena = ParamArena([("w", (p0.size,))])
    arena.write("w", p0)
    state = state_at(0)
    opt = Optimizer(arena, cfg, state)
    arena.params["w"].grad.write(g)
    return arena, opt, state


@pytest.mark.parametrize("cfg", [
    OptimConfig(optimizer="sgd", lr=0.1, schedule="constant"),
    OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9, schedule="constant", weight_decay=0.01),
    OptimConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, schedule="constant"),
    OptimConfig(optimizer="adam", lr=0.01, schedule="constant", weight_decay=0.001),
])
def test_optimizer_matches_numpy(cfg, rng, device):
    p = rng.standard_normal(37).astype(np.float32)
    g = rng.standard_normal(37).astype(np.float32)
    arena, opt, state = _optimizer(cfg, p, g)
    p64, m, v = p.astype(np.float64), np.zeros(37), np.zeros(37)
    for t in range(3):
        enc = device.device.create_command_encoder()
        opt.record_step()
        device.stream.flush()
        gg = g + cfg.weight_decay * p64
        if cfg.optimizer == "adam":
            m = cfg.beta1 * m + (1 - cfg.beta1) * gg
            v = cfg.beta2 * v + (1 - cfg.beta2) * gg * gg
            p64 = p64 - cfg.lr * (m / (1 - cfg.beta1 ** (t + 1))) / (np.sqrt(v / (1 - cfg.beta2 ** (t + 1))) + cfg.eps)
        else:
            m = cfg.momentum * m + gg if cfg.momentum else gg
            p64 = p64 - cfg.lr * ((gg + cfg.momentum * m) if cfg.nesterov else m)
        del enc
    np.testing.assert_allclose(arena.params["w"].to_numpy(), p64, rtol=1e-4, atol=1e-5)
    assert state.to_numpy()[0] == 3  # the step counter advanced on the GPU


@pytest.mark.parametrize("cfg", [
    OptimConfig(lr=0.5, schedule="cosine", min_lr=0.01, total_steps=6),
    OptimConfig(lr=0.5, schedule="step", gamma=0.5, period=2),
    OptimConfig(lr=0.5, schedule="exponential", gamma=0.5, period=2),
    OptimConfig(lr=0.5, schedule="constant", warmup=3),
])
def test_schedule_on_gpu_matches_cpu_mirror(cfg, device):
    """SGD with gradient 1 moves the parameter by exactly lr(step) each step."""
    arena, opt, state = _optimizer(cfg, np.zeros(1, np.float32), np.ones(1, np.float32))
    prev = 0.0
    for step in range(8):
        opt.record_step()
        device.stream.flush()
        now = float(arena.params["w"].to_numpy()[0])
        assert prev - now == pytest.approx(cfg.lr_at(step), rel=1e-4), step
        prev = now


def test_frozen_and_flag_stop_updates(device):
    arena, opt, state = _optimizer(OptimConfig(lr=1.0, schedule="constant"), np.zeros(4, np.float32),
                                   np.ones(4, np.float32))
    opt.update(frozen=True)
    opt.record_step()
    device.stream.flush()
    assert np.all(arena.params["w"].to_numpy() == 0)
    opt.update(frozen=False)
    device.queue.write_buffer(state.buffer, 12, struct.pack("<I", 1))
    opt.record_step()
    device.stream.flush()
    assert np.all(arena.params["w"].to_numpy() == 0)


def test_nonfinite_update_raises_flag(device):
    arena, opt, state = _optimizer(OptimConfig(lr=1e38, schedule="constant"), np.full(3, 3e38, np.float32),
                                   np.full(3, -1e38, np.float32))
    opt.record_step()
    device.stream.flush()
    assert state.to_numpy()[3] & 1
    assert np.all(np.isfinite(arena.params["w"].to_numpy()))


def test_read_async_arrives_without_blocking(device):
    import time
    buf = device.upload(np.arange(16, dtype=np.uint32))
    before = device.readback.snapshot()
    pending = device.read_async(buf, 8, 16, "probe")
    t = time.time()
    while not pending.ready():
        assert time.time() - t < 10, "a 16-byte read never arrived"
        time.sleep(0.001)
    assert np.frombuffer(pending.result(), np.uint32).tolist() == [2, 3, 4, 5]
    total, count, largest = device.readback.snapshot()
    assert (total - before[0], count - before[1]) == (16, 1)
