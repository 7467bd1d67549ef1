"""Frame pacing: how many training steps fit in a frame without losing the frame rate.

The GPU's time per frame is measured without reading anything back: after each
submit a queue fence (`on_submitted_work_done`) is taken, and before encoding a
new frame the loop waits until at most `depth` frames are still in flight.
In steady state the CPU time of a frame plus that wait is the GPU's time per
frame, so the step budget is scaled by (budget / measured) each frame, damped.
"""
from __future__ import annotations

import collections
import gc
import math
import threading
import time

from ..compute.device import get_device

# Speed settings: (steps per frame, label). Negative n: one step every |n| frames;
# 0: as many as the frame budget allows (adaptive).
SPEEDS = [
    (-60, "1 step / 60 frames"),
    (-15, "1 step / 15 frames"),
    (-4, "1 step / 4 frames"),
    (1, "1 step / frame"),
    (4, "4 steps / frame"),
    (16, "16 steps / frame"),
    (64, "64 steps / frame"),
    (256, "256 steps / frame"),
    (0, "max (frame budget)"),
]
MAX_INDEX = len(SPEEDS) - 1

# The frame budget: the work (CPU and GPU) a frame may take at "max" speed.
WINDOW_FPS = 60            # the window's frame rate (vsync, and rendercanvas's cap: launch.open_window)
WORK_SHARE = 0.90          # of a capped frame's period the work may fill, leaving the rest as margin (swept: NOTES.md)
UNCAPPED_BUDGET_S = 1 / 90  # frames not capped (offscreen): ~100 fps, each as long as its work
CPU_BUDGET_S = 1 / 12      # a CPU adapter (lavapipe): 5-10 fps stays usable


def frame_budget(is_cpu: bool, fps_cap: float | None) -> float:
    """Seconds of work a frame may take. A window runs at WINDOW_FPS whatever its work, so a
    budget shorter than its period leaves the GPU idle for the rest of each frame: the 1/90 s
    budget (right for uncapped frames) kept the GPU busy 11.1 ms of every 16.7, two thirds of
    what training could have had (benchmarks/logs/viz_bench_window_pace_h100.md)."""
    if is_cpu:
        return CPU_BUDGET_S
    return WORK_SHARE / fps_cap if fps_cap else UNCAPPED_BUDGET_S


def settle_garbage() -> None:
    """Collect the garbage, then freeze what is left (gc.freeze), so that the cyclic collector's
    full passes stop walking the app's long-lived objects: with ~70,000 of them a full pass took
    15 ms of the frame that triggered it (a dropped frame at 60 fps; viz_bench's "garbage
    collection" line counts them). Called once the app's objects are (re)built: the objects of a
    model being replaced are unfrozen first, so that its cycles (and their GPU buffers) are freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class FencePoller(threading.Thread):
    """Sees the frames' queue fences done: a non-blocking device poll every POLL_S while any is
    in flight, asleep otherwise (one per device, started on first use).

    wgpu-py's own poll thread, kept awake by a token, polls *blocking*, and a blocking poll holds
    up the main thread's queue submissions until the GPU has drained: with a token per frame in
    flight (every frame of the window) a frame's submission took 9.7 ms of CPU against 2.7 ms
    without (H100, 500 steps a frame: `python benchmarks/submit_cost.py`,
    benchmarks/logs/submit_cost_h100.log)."""

    POLL_S = 0.0005            # how late a fence may be seen done (the GPU time it adds)
    _by_device: dict = {}

    def __init__(self, device):
        super().__init__(daemon=True, name="fence-poller")
        self._device = device
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()

    @classmethod
    def of(cls, device) -> "FencePoller":
        poller = cls._by_device.get(id(device))
        if poller is None:
            poller = cls._by_device[id(device)] = cls(device)
            poller.start()
        return poller

    def added(self) -> None:
        with self._lock:
            self._pending += 1
        self._wake.set()

    def done(self) -> None:
        with self._lock:
            self._pending -= 1

    def run(self) -> None:
        while True:
            if self._pending > 0:
                try:
                    self._device._poll(False)
                except Exception:  # noqa: BLE001 - a lost device: the frame loop reports it, nothing to poll
                    return
                time.sleep(self.POLL_S)
                continue
            self._wake.wait()
            self._wake.clear()


class _WorkDone:
    """A queue fence: done when all work submitted before it has finished; records when.

    wgpu-py 0.32's `on_submitted_work_done_async` declares a callback type that
    wgpu-native rejects, so the callback is registered here through cffi with the
    native signature; the FencePoller's polls run it within POLL_S of the GPU getting
    there, so `done_at` is the GPU's completion time to half a millisecond. No buffer is
    mapped: a fence carries no data."""

    def __init__(self, dev):
        from wgpu.backends.wgpu_native._api import ffi, lib, libf
        self.submitted_at = time.perf_counter()
        self.done_at: float | None = None
        self._event = threading.Event()
        poller = FencePoller.of(dev.device)

        @ffi.callback("void(WGPUQueueWorkDoneStatus, WGPUStringView, void *, void *)")
        def callback(status, message, u1, u2):
            self.done_at = time.perf_counter()
            self._event.set()
            poller.done()

        self._callback = callback  # keep alive until called
        info = ffi.new("WGPUQueueWorkDoneCallbackInfo *")
        info.mode = lib.WGPUCallbackMode_AllowProcessEvents
        info.callback = callback
        poller.added()
        libf.wgpuQueueOnSubmittedWorkDone(dev.queue._internal, info[0])

    def wait(self, timeout: float = 10.0) -> None:
        self._event.wait(timeout)


class FrameFence:
    """Bounds the frames in flight (waits for frame N - depth before encoding frame N)
    and measures the GPU time of each frame from the fences' completion times."""

    def __init__(self, depth: int = 2):
        self.depth = depth
        self._inflight: collections.deque = collections.deque()
        self._native = True
        self._last_done = 0.0
        self.gpu_s = 0.0            # GPU time of the last completed frame
        self._retired: list = []    # (GPU seconds, tag) of frames retired since the last retired()

    def submitted(self, tag=None) -> None:
        """A frame was submitted; `tag` comes back with its GPU time from retired()."""
        if self._native:
            try:
                fence = _WorkDone(get_device())
                fence.tag = tag
                self._inflight.append(fence)
                return
            except Exception:  # pragma: no cover - another backend: fall back to a full sync
                self._native = False
        self._inflight.append(None)

    def wait(self) -> float:
        """Wait until fewer than `depth` frames are in flight; returns seconds waited."""
        t0 = time.perf_counter()
        while self._inflight and self._inflight[0] is not None and self._inflight[0].done_at is not None:
            self._retire(self._inflight.popleft())
        while len(self._inflight) >= self.depth:
            self._retire(self._inflight.popleft(), wait=True)
        return time.perf_counter() - t0

    def drain(self) -> None:
        while self._inflight:
            self._retire(self._inflight.popleft(), wait=True)

    def _retire(self, fence, wait: bool = False) -> None:
        if fence is None:
            t0 = time.perf_counter()
            get_device().sync()
            self.gpu_s = time.perf_counter() - t0
            return
        if wait:
            fence.wait()
        if fence.done_at is not None:
            # Busy from the later of its submission and the previous frame's completion.
            self.gpu_s = max(0.0, fence.done_at - max(fence.submitted_at, self._last_done))
            self._last_done = fence.done_at
            if fence.tag is not None:
                self._retired.append((self.gpu_s, fence.tag))

    def retired(self) -> list:
        """(GPU seconds, tag) of each tagged frame retired since the last call, oldest first."""
        out, self._retired = self._retired, []
        return out


class StepPacer:
    """Steps per frame for the 'max' speed: the budget over the measured cost of a step.

    Each regular frame (it ran the steps asked of it, and no evaluation) gives a cost per step
    on the CPU (its encode, including its share of the frame's fixed work) and, when its fence
    retires, on the GPU; the budget buys budget / (the larger cost) steps. Costs are matched
    to their own frame: a frame's GPU time arrives a frame or two later, and an earlier
    controller that scaled the step count by (budget / the latest time) charged an epoch end's
    evaluation to the next, ordinary frame and halved its steps, then regrew them 1.25x a
    frame; with an epoch every 2-3 frames (784-128-10 at batch 64) the window ran at 53% of
    headless with its GPU busy 9 of every 16.7 ms (benchmarks/logs/viz_frame_phases_h100.log).
    Frames cut short (an epoch's end) teach the step's cost nothing and are skipped.

    Work that comes now and then on top of the steps (an evaluation piece, the running estimate,
    a timeline snapshot, a histogram column: "extras", by kind) is charged to the frames that
    carry it when it is rare (in fewer than RARE of the frames; evaluation pieces always): its
    cost is learned from the frames that carry that kind alone (what their GPU time leaves over
    their steps'), and a frame that will carry some runs that many fewer steps (`fit_extras`).
    Charged to the steps instead, they made those frames overrun: the CNN's epoch-end evaluation
    was 120 ms in one frame, its estimate 6 ms, and its window held 57.8 fps
    (benchmarks/logs/viz_bench_pacer_dither_h100.log). An extra in most frames (an MLP's
    histogram column every 100 steps at 500 steps a frame) stays in the cost of a step: no frame
    would be free of it to learn a step's own cost from (charging every extra did that, and the
    MLPs' windows fell to 14% / 36% of headless, logs/viz_bench_extras_v1_h100.log)."""

    SMOOTH = 0.3               # weight of a new frame's cost per step in the running cost
    OUTLIER = 1.5              # a frame's cost per step counts as at most this many times the running one
    GROW, SHRINK = 1.5, 0.5    # the most the step count changes in one frame
    RARE = 0.5                 # an extra in fewer than this share of frames (with steps) is charged to its own
    ALWAYS_CHARGED = ("evaluation",)   # its pieces are paced by their cost however often it comes

    def __init__(self, budget_s: float, max_steps: int = 4096):
        self.budget_s = budget_s
        self.max_steps = max_steps
        self.steps = 1.0
        self.cpu_cost = 0.0        # seconds a step, CPU side (0: not measured yet)
        self.gpu_cost = 0.0        # and GPU side
        self.work_s = 0.0          # smoothed frame work time (CPU, or GPU when larger): the panel shows it
        self.extra_cost: dict[str, float] = {}   # seconds of GPU work an extra of each kind adds to a frame
        self.share: dict[str, float] = {}        # the (smoothed) share of frames with steps carrying each kind
        self._struck: set = set()                # costs whose last frame was an outlier (_blend)
        self._rate_t0 = time.perf_counter()
        self._rate_steps = 0
        self.steps_per_s = 0.0

    def budget(self, frame: int | None = None) -> int:
        """Steps for a frame. With the frame's number, the fraction is spread over frames (5.6:
        5, 6, 6, 5, 6, ...): a CNN's 2.3 ms steps are a sixth of the budget each, and a whole
        step less every frame left a sixth of the GPU idle."""
        if frame is None:
            return max(1, int(self.steps))
        return max(1, int(self.steps * (frame + 1)) - int(self.steps * frame))

    def _blend(self, key: str, old: float, new: float) -> float:
        """The running cost `key` after a new frame's: one slow frame (a stall of the CPU, 30 ms in
        the H100 host's epoch-end frames) moves it by SMOOTH x OUTLIER at most, not to the stall's
        size, which had cut the next frames' steps by a third; a second one in a row counts in
        full (a larger batch or network costs more from now on: the steps must follow at once)."""
        if old == 0:
            return new
        if new > self.OUTLIER * old and key not in self._struck:
            self._struck.add(key)
            new = self.OUTLIER * old
        else:
            self._struck.discard(key)
        return (1 - self.SMOOTH) * old + self.SMOOTH * new

    def update(self, cpu_s: float, steps_done: int, adaptive: bool, regular: bool = True) -> None:
        """A frame was encoded: cpu_s of CPU time for steps_done steps."""
        self.work_s = self._blend("work", self.work_s, max(cpu_s, self.gpu_cost * steps_done))
        if regular and steps_done > 0:
            self.cpu_cost = self._blend("cpu", self.cpu_cost, cpu_s / steps_done)
        if adaptive and steps_done > 0:
            self._resize()
        self._rate_steps += steps_done
        now = time.perf_counter()
        if now - self._rate_t0 >= 0.5:
            self.steps_per_s = self._rate_steps / (now - self._rate_t0)
            self._rate_steps = 0
            self._rate_t0 = now

    def charged(self, extras: dict) -> dict:
        """The extras (kind -> count) charged to their frame: those that are rare, and evaluation pieces."""
        return {k: c for k, c in extras.items()
                if c > 0 and (k in self.ALWAYS_CHARGED or self.share.get(k, 0.0) < self.RARE)}

    def gpu_frame(self, gpu_s: float, steps_done: int, regular: bool = True, extras: dict | None = None) -> None:
        """A frame of steps_done steps (and `extras`: kind -> count) finished on the GPU in gpu_s.
        A regular frame without charged extras teaches the cost of a step; one with a single
        kind of them (cut short or not) teaches that kind's cost: what is left of gpu_s once its
        steps are paid for. Frames with several kinds teach nothing (their shares are unknown)."""
        extras = extras or {}
        if steps_done > 0:
            for k in set(self.share) | set(extras):
                self.share[k] = 0.9 * self.share.get(k, 0.0) + 0.1 * (extras.get(k, 0) > 0)
        if gpu_s <= 0:
            return
        kinds = list(self.charged(extras).items())
        if not kinds:
            if regular and steps_done > 0:
                self.gpu_cost = self._blend("gpu", self.gpu_cost, gpu_s / steps_done)
        elif len(kinds) == 1 and (self.gpu_cost > 0 or steps_done == 0):
            kind, count = kinds[0]
            left = max(0.0, gpu_s - steps_done * self.gpu_cost)
            self.extra_cost[kind] = self._blend(kind, self.extra_cost.get(kind, 0.0), left / count)

    def fit_extras(self, steps: int, extras_in, guesses: dict | None = None) -> int:
        """The most steps, up to the `steps` budgeted for a frame, that fit it together with the
        extras they bring (`extras_in(k)`: kind -> count for k steps; `guesses`: kind -> seconds
        for a kind whose cost is not known yet), at least 1. Fewer steps may leave an extra to the
        next frame, which then makes room for it."""
        cost = max(self.cpu_cost, self.gpu_cost)
        each = {**(guesses or {}), **{k: v for k, v in self.extra_cost.items() if v > 0}}
        if cost <= 0 or not each:
            return steps

        def need(k: int) -> int:     # k steps and their charged extras, in steps
            extra = sum(each.get(kind, 0.0) * c for kind, c in self.charged(extras_in(k)).items())
            return k + math.ceil(extra / cost)
        lo, hi = 1, steps            # need() never decreases with k: the largest k with need(k) <= steps
        if need(hi) <= steps:
            return hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if need(mid) <= steps else (lo, mid)
        return lo

    def extras_that_fit(self, kind: str, steps_done: int, most: int, guess_s: float = 0.0) -> int:
        """How many extras of `kind` (at most `most`) fit the rest of a frame that ran steps_done
        steps: none when its steps filled it, at least one when it ran none (the work must go on).
        While their cost is unknown, `guess_s` stands for it (none: one at a time)."""
        each = self.extra_cost.get(kind, 0.0) or guess_s
        least = 0 if steps_done else 1
        if each <= 0:
            return min(most, 1)
        left = self.budget_s - steps_done * max(self.cpu_cost, self.gpu_cost)
        return max(least, min(most, int(left / each)))

    def _resize(self) -> None:
        cost = max(self.cpu_cost, self.gpu_cost)
        if cost <= 0:
            return
        want = self.budget_s / cost
        self.steps = min(self.max_steps, max(1.0, min(self.steps * self.GROW + 1, max(self.steps * self.SHRINK, want))))


def steps_for_frame(speed_index: int, frame: int, pacer: StepPacer) -> int:
    n = SPEEDS[max(0, min(speed_index, MAX_INDEX))][0]
    if n == 0:
        return pacer.budget(frame)
    if n < 0:
        return 1 if frame % -n == 0 else 0
    return n
