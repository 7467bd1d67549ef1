"""Gather, optimizer, schedule and evaluation kernels against numpy."""
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.nn import ParamArena
from mnist_viz.compute.optim import Optimizer
from mnist_viz.compute.recipe import Recipe
from mnist_viz.compute.structs import FLAG_EXPLODED, FLAG_NONFINITE, STATE
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
    s = Tensor((STATE.size // 4,), dtype="u32")
    s.write(np.frombuffer(STATE.pack(step=step, run_step=step), np.uint32))
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


def test_shift_augmentation_moves_most_rows_by_offsets_that_vary():
    """Guards against augmentation silently off (shifted_source returning the pixel unchanged),
    which the check above accepts as a (0, 0) shift, and against offsets that do not vary
    by row or by step. 64 noise images (every pixel lit, so each offset is recognisable),
    shift 1: each row is exactly one translate of its image; few rows keep (0, 0) (1 in 9
    expected); most of the 9 offsets occur; a row's offset changes between two steps."""
    rng = np.random.default_rng(5)
    ds = SimpleNamespace(train_images=rng.integers(1, 256, (64, 8, 9), dtype=np.uint8),
                         train_labels=np.zeros(64, np.uint8), test_images=np.ones((2, 8, 9), np.uint8),
                         test_labels=np.zeros(2, np.uint8), num_classes=2)
    data = GpuDataset(ds)                         # the identity order: row r is image r
    x, y = Tensor((64, 72)), Tensor((64,), dtype="u32")
    offsets = {}
    for step in (0, 1):
        data.gather(data.train, x, y, state_at(step), shift=1, seed=9)
        xs = x.to_numpy().reshape(64, 8, 9)
        for r in range(64):
            src = ds.train_images[r] / 255.0
            found = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                     if np.allclose(xs[r], _translate(src, dy, dx), atol=1e-6)]
            assert len(found) == 1, (step, r, found)
            offsets[step, r] = found[0]
    assert sum(o == (0, 0) for o in offsets.values()) <= 0.25 * len(offsets)
    assert len(set(offsets.values())) >= 7
    assert sum(offsets[0, r] != offsets[1, r] for r in range(64)) >= 40


def _translate(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape
    for yy in range(h):
        for xx in range(w):
            sy, sx = yy - dy, xx - dx
            if 0 <= sy < h and 0 <= sx < w:
                out[yy, xx] = img[sy, sx]
    return out


def _optimizer(recipe, p0, g, total_steps=1, period=1):
    arena = ParamArena([("w", (p0.size,))])
    arena.write("w", p0)
    state = state_at(0)
    opt = Optimizer(arena, state)
    opt.configure(recipe, total_steps, period)
    arena.params["w"].grad.write(g)
    return arena, opt, state


def plain(**kw) -> Recipe:
    """A recipe with every extra off unless asked for (the default recipe has momentum)."""
    return Recipe(**{"momentum": 0.0, "nesterov": False, "shift": 0, "schedule": "constant", **kw})


@pytest.mark.parametrize("recipe", [
    plain(optimizer="sgd", lr=0.1),
    plain(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.01),
    plain(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True),
    plain(optimizer="adam", lr=0.01, weight_decay=0.001),
], ids=["sgd", "momentum-wd", "nesterov", "adam"])
def test_optimizer_matches_numpy(recipe, rng, device):
    p = rng.standard_normal(37).astype(np.float32)
    g = rng.standard_normal(37).astype(np.float32)
    arena, opt, state = _optimizer(recipe, p, g)
    p64, m, v = p.astype(np.float64), np.zeros(37), np.zeros(37)
    r = recipe
    for t in range(3):
        opt.record_step()
        device.stream.flush()
        gg = g + r.weight_decay * p64
        if r.optimizer == "adam":
            m = r.beta1 * m + (1 - r.beta1) * gg
            v = r.beta2 * v + (1 - r.beta2) * gg * gg
            p64 = p64 - r.lr * (m / (1 - r.beta1 ** (t + 1))) / (np.sqrt(v / (1 - r.beta2 ** (t + 1))) + r.eps)
        else:
            m = r.momentum * m + gg if r.momentum else gg
            p64 = p64 - r.lr * ((gg + r.momentum * m) if r.nesterov else m)
    np.testing.assert_allclose(arena.params["w"].to_numpy(), p64, rtol=1e-4, atol=1e-5)
    st = STATE.unpack(state.to_numpy().tobytes())
    assert (st["step"], st["run_step"]) == (3, 3)  # both counters advanced on the GPU


# Learning rates at steps 0..7, computed by hand (not by any code of ours):
#   cosine 0.5 -> 0.01 over 6 steps: 0.01 + 0.245 (1 + cos(pi t / 6)), flat after step 6
#   step: 0.5 x 0.5 ** floor(t / 2);   exponential: 0.5 x 0.5 ** (t / 2)
SCHEDULE_CASES = [
    (plain(lr=0.5, schedule="cosine", min_lr=0.01), 6, 1,
     [0.5, 0.46717622, 0.3775, 0.255, 0.1325, 0.04282378, 0.01, 0.01]),
    (plain(lr=0.5, schedule="step", gamma=0.5), 8, 2, [0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625]),
    (plain(lr=0.5, schedule="exponential", gamma=0.5), 8, 2,
     [0.5, 0.35355339, 0.25, 0.17677670, 0.125, 0.08838835, 0.0625, 0.04419417]),
    (plain(lr=0.5, schedule="constant"), 8, 1, [0.5] * 8),
]


@pytest.mark.parametrize("recipe,total,period,expected", SCHEDULE_CASES,
                         ids=["cosine", "step", "exponential", "constant"])
def test_schedule_on_gpu_matches_hand_computed_rates(recipe, total, period, expected, device):
    """SGD with gradient 1 moves the parameter by exactly lr(step) each step. Guards against a
    wrong schedule formula (the expected rates are constants, not a mirror of the shader)."""
    arena, opt, state = _optimizer(recipe, np.zeros(1, np.float32), np.ones(1, np.float32), total, period)
    prev = 0.0
    for step, lr in enumerate(expected):
        opt.record_step()
        device.stream.flush()
        now = float(arena.params["w"].to_numpy()[0])
        assert prev - now == pytest.approx(lr, rel=1e-4), step
        prev = now


def test_cosine_schedule_matches_pytorch(device, torch):
    """The same cosine annealing as torch.optim.lr_scheduler.CosineAnnealingLR (an independent reference)."""
    w = torch.nn.Parameter(torch.zeros(1))
    sgd = torch.optim.SGD([w], lr=0.3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=10, eta_min=0.02)
    expected = []
    for _ in range(12):
        expected.append(sgd.param_groups[0]["lr"])
        sgd.step()
        sched.step()
    arena, opt, state = _optimizer(plain(lr=0.3, schedule="cosine", min_lr=0.02), np.zeros(1, np.float32),
                                   np.ones(1, np.float32), 10, 1)
    prev = 0.0
    for step, lr in enumerate(expected[:11]):
        opt.record_step()
        device.stream.flush()
        now = float(arena.params["w"].to_numpy()[0])
        assert prev - now == pytest.approx(lr, rel=1e-4), step
        prev = now


def test_frozen_and_flag_stop_updates(device):
    arena, opt, state = _optimizer(plain(lr=1.0), np.zeros(4, np.float32), np.ones(4, np.float32))
    opt.configure(plain(lr=1.0), 1, 1, frozen=True)
    opt.record_step()
    device.stream.flush()
    assert np.all(arena.params["w"].to_numpy() == 0)
    opt.configure(plain(lr=1.0), 1, 1)
    for flag in (FLAG_NONFINITE, FLAG_EXPLODED):
        device.queue.write_buffer(state.buffer, STATE.offset("flags"), struct.pack("<I", flag))
        opt.record_step()
        device.stream.flush()
        assert np.all(arena.params["w"].to_numpy() == 0), flag


def test_nonfinite_update_raises_flag(device):
    arena, opt, state = _optimizer(plain(lr=1e6), np.full(3, 3e38, np.float32), np.full(3, -1e38, np.float32))
    opt.record_step()
    device.stream.flush()
    assert STATE.unpack(state.to_numpy().tobytes())["flags"] & FLAG_NONFINITE
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
