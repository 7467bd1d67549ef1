"""The training Run (compute/run.py) against independent references: epoch shuffling,
divergence restore to the snapshot's exact values, whole steps with momentum, Adam and
the cosine schedule on both engines, deeper and dropout networks, live recipe changes,
the history ring's wrap-around, dropout off at evaluation. Expected values come from
tests/reference.py (textbook float64 numpy), never from the shaders they check."""
import numpy as np
import pytest

import reference as ref
from mnist_viz.compute import ops
from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.device import get_device
from mnist_viz.compute.metrics import HISTORY_CAP
from mnist_viz.compute.nn import mlp
from mnist_viz.compute.recipe import Recipe
from mnist_viz.compute.run import Run
from mnist_viz.compute.structs import FLAG_EXPLODED
from mnist_viz.compute.tensor import Tensor


def plain(**kw) -> Recipe:
    """A recipe with every extra off unless asked for (the default recipe has momentum and shifts)."""
    return Recipe(**{"momentum": 0.0, "nesterov": False, "shift": 0, "schedule": "constant", **kw})


def read_perm(data) -> np.ndarray:
    return np.frombuffer(get_device().read(data.perm), np.uint32)[:data.train.n].copy()


def as64(sd: dict) -> dict:
    return {k: v.astype(np.float64) for k, v in sd.items()}


def assert_weights(got: dict, want: dict, msg="", rtol=1e-4, atol=2e-6):
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=f"{msg} {k}")


def test_every_epoch_has_its_own_permutation(mnist):
    """Guards against shuffling once instead of every epoch (Run.advance writing the `perm`
    buffer only at the first epoch): each epoch's order is a permutation of the whole
    training set, none is the identity, and no two epochs share one."""
    data = GpuDataset(mnist, limit=96)
    run = Run(mlp([784, 8, 10], seed=0), data, plain(epochs=3, batch_size=32))
    perms = []
    for _ in range(3):
        run.run_steps(1)                     # the epoch's first step writes its order
        perms.append(read_perm(data))
        run.run_steps(run.steps_per_epoch - 1)
    assert run.finished
    for p in perms:
        assert sorted(p.tolist()) == list(range(96))
        assert not np.array_equal(p, np.arange(96))
    assert not np.array_equal(perms[0], perms[1]) and not np.array_equal(perms[1], perms[2])
    assert not np.array_equal(perms[0], perms[2])


def test_orders_drawn_ahead_are_the_seeds_orders(mnist):
    """Guards against the order drawn ahead (Run.draw_order_ahead, while the GPU is busy) being
    other than the one the epoch would have drawn at its start: the same permutations in the same
    order as numpy's generator of the seed gives them, also after a reset and a seed change, and
    one is drawn ahead while a run goes on (so the next epoch's start does not wait for it)."""
    data = GpuDataset(mnist, limit=96)
    run = Run(mlp([784, 8, 10], seed=0), data, plain(epochs=6, batch_size=32, seed=5))

    def orders(n):
        got = []
        for _ in range(n):
            run.run_steps(1)
            got.append(read_perm(data))
            run.run_steps(run.steps_per_epoch - 1)
        return got

    def seeds_orders(seed, n):
        rng = np.random.default_rng(seed)
        return [rng.permutation(96).astype(np.uint32) for _ in range(n)]

    for got, want in zip(orders(2), seeds_orders(5, 2)):
        np.testing.assert_array_equal(got, want)
    assert run._order_ahead is not None                  # the third epoch's, drawn during the second
    run.restart(reinitialise=False)                      # a new run: the seed's orders from the first
    for got, want in zip(orders(2), seeds_orders(5, 2)):
        np.testing.assert_array_equal(got, want)
    run.restart(reinitialise=False)
    orders(1)
    assert run._order_ahead is not None
    run.set_recipe(run.recipe.with_changes(seed=9))     # a new seed mid-run: its orders, none of the old one's
    for got, want in zip(orders(2), seeds_orders(9, 2)):
        np.testing.assert_array_equal(got, want)


def test_submissions_grow_with_the_queue_ahead_of_them(mnist, monkeypatch):
    """Guards run_steps' submission sizes (a submission that takes longer to encode than the GPU's
    queue takes to run leaves the GPU idle: doubling each one did, benchmarks/NOTES.md): the first
    holds FIRST_CHUNK steps, each later one at most RAMP x the steps queued ahead of it (with a
    caller's `queued` counted), and the next epoch's order is drawn only once the queue is long."""
    import mnist_viz.compute.run as run_module
    data = GpuDataset(mnist, limit=2048)
    run = Run(mlp([784, 4, 10], seed=0), data, plain(epochs=2, batch_size=1, seed=3))   # 2048 steps an epoch
    sizes, drawn_at = [], []
    real_submit, real_draw = run.submit_chunk, run.draw_order_ahead
    monkeypatch.setattr(run, "submit_chunk", lambda n: sizes.append(real_submit(n)) or sizes[-1])
    monkeypatch.setattr(run, "draw_order_ahead", lambda: drawn_at.append(sum(sizes)) or real_draw())
    assert run.run_steps(500, per_submit=32) == 500
    assert sizes[0] == run_module.FIRST_CHUNK and sum(sizes) == 500 and max(sizes) <= 32
    for k in range(1, len(sizes)):
        assert sizes[k] <= max(run_module.FIRST_CHUNK, run_module.RAMP * sum(sizes[:k])), sizes
    assert 32 in sizes, sizes                       # it does grow to per_submit
    assert drawn_at and min(drawn_at) >= run_module.DRAW_AFTER
    sizes.clear()
    run.run_steps(100, per_submit=256, queued=600)   # a queue the caller knows of
    assert sizes[0] == int(600 * run_module.RAMP), sizes


def test_restore_snapshot_puts_back_the_epoch_start_exactly(mnist, device):
    """Guards against a restore that does not copy the snapshot back (or copies the wrong
    way), keeps the optimizer's moments, or leaves the divergence flag up: after restoring,
    the weights are bit for bit those the epoch started from, the step is the epoch's
    first, the moments are zero, the flags clear, and the next step equals numpy's step
    from those weights with fresh momentum."""
    data = GpuDataset(mnist, limit=64)
    model = mlp([784, 16, 10], seed=1)
    recipe = plain(epochs=3, batch_size=16, lr=0.05, momentum=0.9)
    run = Run(model, data, recipe)
    spe = run.steps_per_epoch
    run.run_steps(spe)                                  # epoch 1
    at_start = model.state_dict()                       # what epoch 2 starts from
    run.run_steps(2)                                    # the snapshot is taken, the weights move on
    moved = model.state_dict()
    assert not np.array_equal(moved["0.weight"], at_start["0.weight"])
    run.metrics.write_state(flags=FLAG_EXPLODED, over=60)   # as the GPU's divergence guard would
    run.restore_snapshot()
    restored = model.state_dict()
    for k in at_start:
        np.testing.assert_array_equal(restored[k], at_start[k], err_msg=k)
    assert run.step == spe
    state = run.metrics.read_state()
    assert (state["step"], state["flags"], state["over"], state["loss_ema"]) == (spe, 0, 0, 0)
    assert not np.frombuffer(device.read(run.optimizer.m1), np.float32).any()
    # Training resumes from the restored weights with fresh moments (the flag no longer stops it).
    run.run_steps(1)
    x, y = ref.batch(mnist.train_images, mnist.train_labels, read_perm(data), 0, 16)
    _, _, grads = ref.gradients(as64(at_start), x, y)
    want = ref.Optimizer(recipe).step(as64(at_start), grads, recipe.lr)
    assert_weights(model.state_dict(), want, "after restore")


@pytest.mark.parametrize("engine", ["compiled", "graph"])
@pytest.mark.parametrize("changes", [
    dict(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    dict(optimizer="adam", lr=0.01, weight_decay=1e-4),
], ids=["nesterov-wd", "adam"])
def test_whole_steps_with_optimizer_and_cosine_schedule_match_numpy(engine, changes, mnist):
    """Guards against a wrong optimizer rule, schedule or weight decay that both engines share
    (optim_rule.wgsl, schedule.wgsl: the fused-vs-trace comparison cannot see those): eight
    steps over two epochs with a cosine schedule, against numpy's textbook optimizer."""
    data = GpuDataset(mnist, limit=100)                  # batch 25: four steps an epoch
    model = mlp([784, 16, 10], seed=4)
    recipe = plain(epochs=2, batch_size=25, schedule="cosine", min_lr=changes["lr"] / 10, **changes)
    run = Run(model, data, recipe, engine=engine)
    assert run.engine == engine
    sd, opt, losses = as64(model.state_dict()), ref.Optimizer(recipe), []
    for step in range(run.total_steps):
        run.run_steps(1)
        e = step % run.steps_per_epoch
        if e == 0:
            perm = read_perm(data)
        x, y = ref.batch(mnist.train_images, mnist.train_labels, perm, e, 25)
        loss, _, grads = ref.gradients(sd, x, y)
        sd = opt.step(sd, grads, ref.cosine_lr(recipe.lr, recipe.min_lr, step, run.total_steps))
        losses.append(loss)
    assert_weights(model.state_dict(), sd, engine, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(run.metrics.read_history(0, run.total_steps)[:, 0], losses, rtol=1e-4)


@pytest.mark.parametrize("engine", ["compiled", "graph"])
def test_deeper_network_steps_match_numpy(engine, mnist):
    """Guards against backprop bugs that only a second hidden layer shows (the gradient
    passed down through a middle Linear-ReLU): three Nesterov steps of 784-20-12-10."""
    data = GpuDataset(mnist, limit=48)
    model = mlp([784, 20, 12, 10], seed=6)
    recipe = plain(epochs=1, batch_size=16, lr=0.1, momentum=0.9, nesterov=True)
    run = Run(model, data, recipe, engine=engine)
    assert run.engine == engine
    sd, opt = as64(model.state_dict()), ref.Optimizer(recipe)
    run.run_steps(1)
    perm = read_perm(data)
    for step in range(3):
        if step:
            run.run_steps(1)
        x, y = ref.batch(mnist.train_images, mnist.train_labels, perm, step, 16)
        _, _, grads = ref.gradients(sd, x, y)
        sd = opt.step(sd, grads, recipe.lr)
        assert_weights(model.state_dict(), sd, f"step {step}")


def test_dropout_network_gradients_match_numpy(rng):
    """Guards against wrong inverted-dropout scaling: forward and backward share one kernel,
    so a numerical gradient check agrees with any scaling. Here the loss and every
    parameter gradient of Linear-ReLU-Dropout-Linear-cross-entropy must equal numpy's
    with the GPU's keep-mask and the textbook 1 / (1 - p)."""
    p = 0.4
    x = rng.random((8, 12)).astype(np.float32)
    w1 = (rng.standard_normal((12, 16)) * 0.5).astype(np.float32)   # [in, out], as ops.linear takes it
    b1 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((16, 5)) * 0.5).astype(np.float32)
    b2 = (rng.standard_normal(5) * 0.1).astype(np.float32)
    y = rng.integers(0, 5, 8)
    state, history = Tensor((16,), dtype="u32"), Tensor((8,))
    state.write(np.array([3] + [0] * 15, np.uint32))    # step 3: the mask is drawn from it
    W1, B1, W2, B2 = (Tensor.from_numpy(a, requires_grad=True) for a in (w1, b1, w2, b2))
    h = ops.linear(Tensor.from_numpy(x), W1, B1, relu=True)
    dropped = ops.dropout(h, p, seed=11, state=state)
    loss = ops.cross_entropy(ops.linear(dropped, W2, B2), Tensor.from_numpy(y.astype(np.uint32)), state, history)
    loss.backward()
    keep = dropped.to_numpy() != 0                       # where h is 0 the mask does not matter
    assert 0.3 < keep[h.to_numpy() > 0].mean() < 0.9
    sd = {"0.weight": w1.T, "0.bias": b1, "3.weight": w2.T, "3.bias": b2}
    want_loss, _, grads = ref.gradients(sd, x, y, masks=[keep], p=p)
    assert loss.to_numpy()[0] == pytest.approx(want_loss, rel=1e-5)
    for name, t in (("0.weight", W1), ("0.bias", B1), ("3.weight", W2), ("3.bias", B2)):
        got = t.grad.to_numpy()
        np.testing.assert_allclose(got.T if name.endswith("weight") else got, grads[name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_dropout_is_off_at_evaluation(mnist):
    """Guards against dropout applied when evaluating: a 784-32-10 model with dropout 0.5
    scores the test set exactly as numpy's plain forward pass does."""
    data = GpuDataset(mnist, limit=64)
    model = mlp([784, 32, 10], 0.5, seed=2)
    run = Run(model, data, plain(epochs=1, batch_size=32))
    got = run.evaluate()
    logits, _ = ref.forward(model.state_dict(), mnist.test_images.reshape(10000, -1) / 255.0)
    assert abs(got["correct"] - int((logits.argmax(1) == mnist.test_labels).sum())) <= 2  # float ties at most


@pytest.mark.parametrize("engine", ["compiled", "graph"])
def test_live_change_from_adam_to_sgd_momentum_starts_fresh(engine, mnist):
    """Guards against Run.set_recipe keeping the old optimizer's moments (Adam's first moment
    becoming SGD's momentum buffer) or not applying a change at the next step: two Adam
    steps, then SGD with momentum 0.9 from a zero buffer, against numpy."""
    data = GpuDataset(mnist, limit=100)
    model = mlp([784, 12, 10], seed=3)
    first = plain(epochs=1, batch_size=20, optimizer="adam", lr=0.01)
    second = first.with_changes(optimizer="sgd", lr=0.05, momentum=0.9)
    run = Run(model, data, first, engine=engine)
    sd = as64(model.state_dict())
    run.run_steps(2)
    perm = read_perm(data)
    message = run.set_recipe(second)
    assert "fresh moments" in message
    run.run_steps(2)
    for step, opt in ((0, ref.Optimizer(first)), (2, ref.Optimizer(second))):
        for s in (step, step + 1):
            x, y = ref.batch(mnist.train_images, mnist.train_labels, perm, s, 20)
            sd = opt.step(sd, ref.gradients(sd, x, y)[2], opt.r.lr)
    assert_weights(model.state_dict(), sd, engine)


def test_live_change_from_sgd_to_adam_matches_a_fresh_adam(mnist):
    """A fresh Adam (as PyTorch's, and as reference.Optimizer) corrects its zero-started moments
    counting from its own first step. Guards against that bias correction being wrong."""
    data = GpuDataset(mnist, limit=100)
    model = mlp([784, 12, 10], seed=3)
    first = plain(epochs=1, batch_size=20, lr=0.05, momentum=0.9)
    second = first.with_changes(optimizer="adam", lr=0.01, momentum=0.0)
    run = Run(model, data, first)
    sd = as64(model.state_dict())
    run.run_steps(2)
    perm = read_perm(data)
    run.set_recipe(second)
    run.run_steps(2)
    for step, opt in ((0, ref.Optimizer(first)), (2, ref.Optimizer(second))):
        for s in (step, step + 1):
            x, y = ref.batch(mnist.train_images, mnist.train_labels, perm, s, 20)
            sd = opt.step(sd, ref.gradients(sd, x, y)[2], opt.r.lr)
    # Adam's first steps are about lr * sign(g): float32 rounding of near-zero gradients moves a few weights
    assert_weights(model.state_dict(), sd, atol=5e-5)


@pytest.mark.parametrize("engine", ["compiled", "graph"])
def test_history_ring_wraps_around_at_its_capacity(engine, mnist, device):
    """Guards against the history slot not wrapping at HISTORY_CAP (writing past the ring, or
    stuck in its last slot) and read_history mis-splitting a range across the wrap: six
    steps from run step HISTORY_CAP - 3 land in the ring's last three and first three slots
    and read back in order, each the loss and accuracy numpy computes for its batch."""
    data = GpuDataset(mnist, limit=60)
    model = mlp([784, 16, 10], seed=5)
    recipe = plain(epochs=1, batch_size=10, lr=0.1)
    run = Run(model, data, recipe, engine=engine)
    start = HISTORY_CAP - 3                        # as after 65,533 steps, without taking them
    run.metrics.write_state(run_step=start)
    run.metrics.steps = start
    sd = as64(model.state_dict())
    run.run_steps(6)
    perm, rows = read_perm(data), []
    for s in range(6):
        x, y = ref.batch(mnist.train_images, mnist.train_labels, perm, s, 10)
        loss, acc, grads = ref.gradients(sd, x, y)
        sd = {k: v - recipe.lr * grads[k] for k, v in sd.items()}
        rows.append((loss, acc))
    rows = np.array(rows)
    got = run.metrics.read_history(start, start + 6)
    np.testing.assert_allclose(got[:, 0], rows[:, 0], rtol=1e-4)
    np.testing.assert_array_equal(got[:, 1], rows[:, 1].astype(np.float32))
    ring = np.frombuffer(device.read(run.metrics.history.buffer), np.float32).reshape(HISTORY_CAP, 2)
    slots = [HISTORY_CAP - 3, HISTORY_CAP - 2, HISTORY_CAP - 1, 0, 1, 2]
    np.testing.assert_allclose(ring[slots, 0], rows[:, 0], rtol=1e-4)
    assert run.metrics.read_state()["run_step"] == start + 6


def assert_same_evaluation(got: dict, want: dict, msg="") -> None:
    assert (got["correct"], got["seen"], got["accuracy"]) == (want["correct"], want["seen"], want["accuracy"]), msg
    np.testing.assert_array_equal(got["confusion"], want["confusion"], err_msg=msg)
    assert sorted(got["wrong"].tolist()) == sorted(want["wrong"].tolist()), msg


def test_evaluation_in_window_sized_pieces_scores_like_one_chunk(mnist):
    """Guards against evaluation pieces that skip or repeat test images when they are sized for a
    frame (Run(eval_macs=...): the visualizer's, a large CNN's pieces of ~450 images) or re-cut
    (recut_evaluation, when a piece still overran a frame): 500 test images in pieces of 150
    (the last one short), then 75, then the smallest, score exactly as one chunk does:
    accuracy, confusion matrix and the misclassified indices (fewer than the 256 kept)."""
    data = GpuDataset(mnist, limit=2048, test_limit=500)
    model = mlp([784, 16, 10], seed=0)
    Run(model, data, plain(batch_size=32)).run_steps(64)
    whole = Run(model, data, plain()).evaluate()
    assert whole["seen"] == 500 and 0.5 < whole["accuracy"] < 1
    assert len(whole["wrong"]) == 500 - whole["correct"]
    run = Run(model, data, plain(), eval_macs=model.arch.macs() * 150)
    sizes = []
    for rows in (None, 75, 1):
        if rows is not None:
            run.recut_evaluation(rows)
        sizes.append((run.evaluation.chunk, len(run.evaluation_pieces())))
        assert_same_evaluation(run.evaluate(), whole, sizes[-1])
    assert sizes == [(150, 4), (75, 7), (16, 32)], sizes


def test_an_evaluation_recut_in_the_middle_scores_like_one_chunk(mnist):
    """Guards against an evaluation re-cut while under way (the visualizer's, when a piece overran
    its frame) that starts over, skips or repeats rows, zeroes the counts of the pieces already
    scored or records twice: 500 test images, two pieces of 150 in one submission, the rest from
    row 300 in pieces of 40 (the last one short) in another, score exactly as one chunk does, as one
    evaluation; the next evaluation is whole in pieces of 40."""
    data = GpuDataset(mnist, limit=2048, test_limit=500)
    model = mlp([784, 16, 10], seed=0)
    Run(model, data, plain(batch_size=32)).run_steps(64)
    whole = Run(model, data, plain()).evaluate()
    run, dev = Run(model, data, plain(), eval_macs=model.arch.macs() * 150), get_device()

    def submit(pieces):
        enc = dev.device.create_command_encoder()
        for piece in pieces:
            piece.encode(enc)
        dev.submit(enc)
    submit(run.evaluation_pieces()[:2])
    assert run.metrics.evaluations == 0
    rest = run.recut_evaluation(40, 300)
    assert [p.start for p in rest] == list(range(300, 500, 40))
    submit(rest)
    assert run.metrics.evaluations == 1
    assert (run.evaluation.chunk, len(run.evaluation_pieces())) == (40, 13)
    assert_same_evaluation(run.metrics.read_evaluation(), whole)
    assert run.metrics.read_state()["evals"] == 1
    assert run.metrics.read_evals(1)[0][1] == pytest.approx(whole["accuracy"], abs=1e-6)
    assert_same_evaluation(run.evaluate(), whole)
    assert run.metrics.evaluations == run.metrics.read_state()["evals"] == 2


def test_auto_on_a_cpu_adapter_takes_the_faster_engine(mnist):
    """Guards against `--engine auto` on lavapipe running a large step compiled (one core a row:
    the deep MLP at batch 64 took 244 ms a step against the trace's 88, a first user's trial):
    compiled for a small step, the trace from CPU_COMPILED_MAX weights x rows; on a GPU, compiled."""
    import mnist_viz.compute.run as run_module
    data = GpuDataset(mnist, limit=256)
    small = Run(mlp([784, 32, 10], seed=0), data, plain(batch_size=32))
    large = Run(mlp([784, 128, 10], seed=0), data, plain(batch_size=64))
    assert 784 * 32 * 32 < run_module.CPU_COMPILED_MAX < 784 * 128 * 64
    cpu = get_device().is_cpu
    assert (small.engine, large.engine) == ("compiled", "graph" if cpu else "compiled")
    assert Run(mlp([784, 128, 10], seed=0), data, plain(batch_size=64), engine="compiled").engine == "compiled"
