"""Frame pacing (viz/pacing.py): how many training steps a frame takes at each speed, the
adaptive budget that keeps the frame time near its target, and the queue fences that
measure the GPU without reading anything back."""
import numpy as np
import pytest

from mnist_viz.viz.pacing import SPEEDS, WINDOW_FPS, FrameFence, StepPacer, frame_budget, steps_for_frame

WINDOW_BUDGET = frame_budget(False, WINDOW_FPS)     # a window's frame budget on a GPU (WORK_SHARE of its period)


def speed(n):
    return [v for v, _ in SPEEDS].index(n)


def test_fixed_speeds_give_their_steps_per_frame():
    """Guards against the slow speeds stepping every frame (or never) and the fixed ones
    ignoring their count: over 120 frames, 1 step / 60 frames is 2 steps, 1 / 4 is 30,
    16 a frame is 1920, and 'max' takes the pacer's budget."""
    pacer = StepPacer(0.01)
    pacer.steps = 37.6
    total = lambda n: sum(steps_for_frame(speed(n), f, pacer) for f in range(120))
    assert (total(-60), total(-15), total(-4), total(1), total(16)) == (2, 8, 30, 120, 1920)
    assert steps_for_frame(speed(0), 5, pacer) in (37, 38)
    assert sum(steps_for_frame(speed(0), f, pacer) for f in range(100)) == 3760     # 37.6 a frame on average


def frame_cost(steps: int) -> float:
    """A frame that costs 4 ms plus 0.25 ms a step (a stand-in for the GPU, not for the pacer)."""
    return 0.004 + 0.00025 * steps


def test_adaptive_budget_settles_where_the_frame_meets_its_time():
    """Guards against a pacer that never slows down (the frame rate collapses) or never speeds
    up: from 1 step and from 4000 steps a frame it settles, within 60 frames, where a frame
    costs its 1/30 s budget (about 117 steps here), and stays there."""
    for start in (1.0, 4000.0):
        pacer = StepPacer(1 / 30)
        pacer.steps = start
        costs = []
        for _ in range(120):
            n = pacer.budget()
            costs.append(frame_cost(n))
            pacer.update(costs[-1], n, adaptive=True)
        settled = np.array(costs[60:])
        assert np.all(np.abs(settled - 1 / 30) < 0.25 / 30), (start, settled.min(), settled.max())


def test_budget_holds_through_epoch_ends_and_late_gpu_times():
    """Guards against the window training at half speed with its GPU idle a third of each frame
    (H100: 784-128-10 at batch 64 kept 53% of headless): a frame's GPU time arrives two frames
    late, and every third frame ends an epoch (cut short, plus a 4 ms evaluation). The pacer must
    charge each time to its own frame and learn nothing from the irregular ones: the regular
    frames settle within 10% of the budget's steps and never run past the budget by more than 5%."""
    budget, fixed, per_step = 0.0142, 0.0005, 20e-6
    pacer = StepPacer(budget)
    in_flight, regular_steps, regular_gpu = [], [], []
    for frame in range(150):
        n = pacer.budget()
        epoch_end = frame % 3 == 2
        done = int(n * 0.4) if epoch_end else n
        gpu = fixed + per_step * done + (0.004 if epoch_end else 0.0)
        in_flight.append((gpu, done, not epoch_end))
        if len(in_flight) > 2:                       # the fence of two frames ago retires
            g, d, regular = in_flight.pop(0)
            if regular:
                pacer.gpu_frame(g, d)
        pacer.update(0.001 + 5e-6 * done, done, adaptive=True, regular=not epoch_end)
        if frame >= 90 and not epoch_end:
            regular_steps.append(done)
            regular_gpu.append(gpu)
    best = (budget - fixed) / per_step
    assert min(regular_steps) >= 0.9 * best, (min(regular_steps), best)
    assert max(regular_gpu) <= 1.05 * budget


def simulate_extras(per_step, fixed, extra, every, frames=2000):
    """A pacer driven for `frames` frames of a GPU costing `fixed` + `per_step` a step + `extra[kind]`
    per extra of each kind (one every `every[kind]` steps), its times retiring two frames late;
    returns it and the (GPU seconds, carried extras) of the last two thirds of the frames."""
    pacer = StepPacer(WINDOW_BUDGET)
    steps, in_flight, late = 0, [], []
    for frame in range(frames):
        def extras_in(k):
            return {kind: (steps + k) // e - steps // e for kind, e in every.items()}
        n = pacer.fit_extras(pacer.budget(frame), extras_in)
        carried = extras_in(n)
        steps += n
        gpu = fixed + per_step * n + sum(extra[k] * c for k, c in carried.items())
        in_flight.append((gpu, n, carried))
        if len(in_flight) > 2:
            g, d, had = in_flight.pop(0)
            pacer.gpu_frame(g, d, True, had)
        pacer.update(0.002 + 1e-6 * n, n, adaptive=True)
        if frame >= frames // 3:
            late.append((gpu, any(carried.values())))
    return pacer, late


def test_extras_are_charged_to_the_frames_that_carry_them():
    """Guards against the CNN's window dropping below 60 fps (H100: 57.8): the frames that also
    take a running estimate (6 ms of GPU every 250 steps) or a histogram column (1 ms every 100)
    ran a full budget of steps on top of it. The pacer learns each rare extra's cost from the
    frames that carry it alone (their GPU time, two frames late, less their steps') and runs that
    many fewer steps in a frame that will carry it: after a warm-up no frame runs past the window's
    period (the budget is WORK_SHARE of it: the margin takes the spread's extra step), and the
    frames still fill 95% of the budget on average (a frame may stop short of an extra, which
    the next one then makes room for)."""
    budget = WINDOW_BUDGET
    pacer, late = simulate_extras(0.0023, 0.0025, {"estimate": 0.006, "column": 0.001},
                                  {"estimate": 250, "column": 100})
    assert max(g for g, _ in late) <= 1 / WINDOW_FPS, max(late)
    assert np.mean([g for g, _ in late]) >= 0.95 * budget       # the GPU's share of the frames is kept
    # learned from frames with fewer steps than usual, the extra also takes on part of the frame's
    # fixed cost (2.5 ms here, which the cost of a step carries in its share): over, never under
    assert 0.006 * 0.95 <= pacer.extra_cost["estimate"] <= 0.006 + 0.0025, pacer.extra_cost


def test_extras_in_every_frame_stay_in_the_cost_of_a_step():
    """Guards against the MLPs' windows falling to 14% / 36% of headless (H100): at 500 steps a
    frame a histogram column (every 100 steps) is in every frame, so charging it to its frames
    left none to learn a step's cost from, and the step count froze where it was when the columns
    began. An extra in most frames is part of a step's cost: from 1 step a frame the pacer
    reaches frames that fill 90% of the budget."""
    budget = WINDOW_BUDGET
    pacer, late = simulate_extras(20e-6, 0.0005, {"estimate": 0.0001, "column": 0.0003, "snapshot": 0.0002},
                                  {"estimate": 250, "column": 100, "snapshot": 500}, frames=600)
    assert np.mean([g for g, _ in late]) >= 0.9 * budget, (np.mean([g for g, _ in late]), pacer.steps)
    assert max(g for g, _ in late) <= 1 / WINDOW_FPS


def test_evaluation_pieces_take_the_rest_of_a_frame():
    """Guards against an evaluation that stalls (no piece in a frame without steps), that
    overruns the frame it shares with steps, or that goes on one piece a frame when many fit:
    one piece while its cost is unknown; then as many as the budget left by the frame's steps
    holds (none when the steps filled it), at least one in a frame of its own."""
    pacer = StepPacer(0.0142)
    assert pacer.extras_that_fit("evaluation", 0, 20) == 1
    assert pacer.extras_that_fit("evaluation", 5, 20) == 1
    pacer.gpu_cost = 0.002
    pacer.gpu_frame(0.0032, 0, False, {"evaluation": 1})     # a frame of one piece alone: 3.2 ms
    assert pacer.extra_cost["evaluation"] == pytest.approx(0.0032)
    assert pacer.extras_that_fit("evaluation", 0, 20) == 4
    assert pacer.extras_that_fit("evaluation", 0, 3) == 3
    assert pacer.extras_that_fit("evaluation", 3, 20) == 2     # 14.2 - 6 ms left
    assert pacer.extras_that_fit("evaluation", 7, 20) == 0
    pacer.extra_cost["evaluation"] = 0.05                     # a piece larger than the whole frame
    assert pacer.extras_that_fit("evaluation", 0, 20) == 1
    pacer.gpu_frame(0.02, 4, True, {"evaluation": 1, "estimate": 1})    # two kinds: teaches nothing
    assert pacer.extra_cost == {"evaluation": 0.05}


def test_fixed_speed_leaves_the_budget_alone_and_bounds_hold():
    """Guards against the budget drifting while a fixed speed is chosen, and against it leaving
    [1, max_steps] however slow or fast the frames are."""
    pacer = StepPacer(1 / 30, max_steps=500)
    pacer.steps = 20.0
    for _ in range(50):
        pacer.update(1.0, 16, adaptive=False)
    assert pacer.steps == 20.0
    for _ in range(100):
        pacer.update(10.0, pacer.budget(), adaptive=True)
    assert pacer.budget() == 1
    for _ in range(200):
        pacer.update(1e-6, pacer.budget(), adaptive=True)
    assert pacer.budget() == 500


def test_frame_fence_bounds_frames_in_flight_and_reads_nothing_back(device, wgpu_reads, monkeypatch):
    """Guards against the fence letting frames pile up on the GPU (the window then lags behind
    the mouse), measuring nothing, or costing a readback: after each wait at most depth - 1
    frames are in flight, the GPU time of a frame of real work is measured, and no byte
    comes back. Nor does it wake wgpu-py's poll thread (a token): that thread's blocking polls
    held up every frame's submission (H100: 9.7 ms against 2.7)."""
    tokens = []
    poller = device.device._poller
    monkeypatch.setattr(poller, "get_token", lambda: tokens.append(1) or type(poller).get_token(poller))
    fence = FrameFence(depth=2)
    src = device.buffer(8 << 20, "pacing.src")
    dst = device.buffer(8 << 20, "pacing.dst")
    for _ in range(6):
        fence.wait()
        assert len(fence._inflight) < 2
        enc = device.device.create_command_encoder()
        for _ in range(8):
            enc.copy_buffer_to_buffer(src, 0, dst, 0, 8 << 20)
        device.submit(enc)
        fence.submitted()
    fence.drain()
    assert not fence._inflight and fence.gpu_s > 0
    assert wgpu_reads.reads == [] and tokens == []


def test_frame_budget_fills_the_window_period():
    """A window is held to WINDOW_FPS whatever its work, so a GPU's frame budget is most of that
    period (the uncapped frames' 1/90 s left a third of every 60 fps frame idle); uncapped frames
    keep 1/90 s (~100 fps); a CPU adapter 1/12 s."""
    from mnist_viz.viz.pacing import (CPU_BUDGET_S, UNCAPPED_BUDGET_S, WINDOW_FPS, WORK_SHARE, frame_budget)
    assert frame_budget(False, WINDOW_FPS) == pytest.approx(WORK_SHARE / WINDOW_FPS)
    assert UNCAPPED_BUDGET_S < frame_budget(False, WINDOW_FPS) < 1 / WINDOW_FPS
    assert frame_budget(False, None) == UNCAPPED_BUDGET_S
    assert frame_budget(True, WINDOW_FPS) == frame_budget(True, None) == CPU_BUDGET_S


def test_settled_garbage_in_cycles_is_freed_at_the_next_settle():
    """Guards against settle_garbage's freeze leaking what the app drops later: an object in a
    reference cycle, frozen while alive, is freed by the next settle once nothing else refers to
    it (a replaced model's views hold GPU buffers)."""
    import gc
    import weakref
    from mnist_viz.viz.pacing import settle_garbage

    class Node:
        pass
    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    settle_garbage()
    assert gc.get_freeze_count() > 0
    del a, b
    gc.collect()
    assert alive() is not None          # frozen: the collector leaves it
    settle_garbage()
    assert alive() is None


def test_a_stalled_frame_does_not_cut_the_next_frames_steps():
    """Guards against one slow frame (the CPU stalled 30 ms, as the H100 host's did in some
    epoch-end frames) costing the frames after it a third of their steps: with a stall every
    tenth frame the others still run 90% of the steps of a pacer that sees no stalls. And
    against the opposite, a pacer that takes a real rise for a stall: when every step costs 8x
    from one frame on (a batch 8 times larger), at most 4 frames run past twice the budget (the
    second slow frame in a row counts in full; clamping every one took 10)."""
    def run(stall_every, frames=200, cost=20e-6, change_at=None):
        pacer, steps, times = StepPacer(0.0142), [], []
        for f in range(frames):
            c = cost * (8 if change_at is not None and f >= change_at else 1)
            n = pacer.budget(f)
            cpu = 0.001 + c * n + (0.03 if stall_every and f % stall_every == 5 else 0.0)
            pacer.update(cpu, n, adaptive=True)
            steps.append(n)
            times.append(cpu)
        return steps, times
    calm, _ = run(0)
    stalled, _ = run(10)
    plain = [n for f, n in enumerate(stalled[100:], 100) if f % 10 != 5]
    assert np.mean(plain) >= 0.9 * np.mean(calm[100:]), (np.mean(plain), np.mean(calm[100:]))
    _, times = run(0, change_at=100)
    assert sum(t > 2 * 0.0142 for t in times[100:]) <= 4, [round(t * 1000, 1) for t in times[99:112]]
