"""The step compiler: a network and a batch size in, a training step of a few dispatches out.

The autograd trace runs a step as one dispatch per op and per gradient (20-30 for
a deep MLP), and on a GPU each dependent dispatch costs microseconds to launch
and drain. Here the whole step is two dispatches (shaders/compiled_step.wgsl says
what each does), generated for the network's exact shapes (and, for a CNN at small
batches, its backward spread over (row, part) workgroups, one dispatch per conv,
between the passes: compute/conv_front.py):

  pass 1, one workgroup per R batch rows: every layer's forward and backward pass in
          workgroup memory. R > 1 at large batches, so each weight vector loaded from
          memory serves R rows (a weight matrix is read B / R times a step, not B).
  pass 2, one invocation per 4 weights of a large layer (or 16 invocations per small
          parameter): the gradient summed over the rows, then the optimizer rule.

The generated WGSL is straight-line code with the sizes as constants and the R rows
unrolled into separate registers (a private array of accumulators would live in
memory, not registers, on NVIDIA). It covers Linear / ReLU / Dropout networks
(any depth), and convolutional networks whose layers before one Flatten are Conv2d /
MaxPool2d / ReLU (compute/conv_front.py runs those inside pass 1); a CNN whose front does
not fit compiles its dense head only (HeadIO). Tests check it equals the trace step by
step (tests/test_step_compiler.py).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

from . import conv_front
from .arch import Dropout, Flatten, Linear, ReLU
from .budget import Limits, buffer_bytes, largest, mib
from .device import get_device
from .program import Dispatch, Program
from .shaders import load_wgsl

PART_MAX = 1024           # vec4s of forward partial sums in workgroup memory (16 KB)
STAGE_MAX = 2048          # floats of a small weight matrix staged in workgroup memory
BIG_BLOCK = 4096           # a weight matrix with at least this many entries (and in % 4 == 0) gets pass-2 vec4 tiles
GRAD_LOADS = 4              # most weight loads in flight per invocation of a dense layer's input gradient
FRONT_MARGIN = 2048         # bytes of workgroup memory the conv front's staging leaves for the dense layers' K-slices
TILED_FROM = 64            # batch from which pass 2 sums such a weight's gradient in 4 x 4 register tiles
UNIFORM_STATE = 1          # 1: one invocation a workgroup reads the step counter and flags (atomics of one address
                           # by every invocation of every SM queue at the L2); 0: every invocation does
LATE_STATE = 1             # pass 2's blocks read the step counter after their sums (0: first; H100, benchmarks/NOTES.md)
STAGE_EARLY = 1            # pass 1 loads its staged weights and its folds' biases before the step counter (0: after)
PARALLEL_LOSS = 1          # pass 1's loss phase: an invocation per (row, class) where R x C <= 256 (0: one a row)
LABEL_EARLY = 1            # pass 1 loads each row's label with its sample index, not in the loss (0: there)
UPDATE_PRELOAD = 1         # pass 2 loads the weights it updates before summing their gradients (0: after)
GEMM_TILE = 8              # pass 2's staged GEMM: a workgroup's block of dW is GEMM_TILE x GEMM_TILE vec4 tiles (0: unstaged tiles)
LIGHT_MAX_WEIGHTS = 262144  # largest network (weights) an encode_light step merges its passes for
PASS2_INVOCATIONS = 131072  # invocations pass 2 aims for over its large weights (H100: see row_slices)
PART_SPLIT_MIN = 65536      # weights from which a layer's work is shared out over a row's parts (smaller: every part does it all)
PARTS_MIN_WEIGHTS = 196608  # weights in such layers from which a network's rows get parts at all (H100, see choose_parts)
SYNC_WORDS = 32             # words between two row-sync counters (one 128-byte line each)
SYNC_MARK = "\n//@row_sync\n"  # where pass 1's generated body has a row sync (a barrier, or a new dispatch)
STATE_MARK = "        //@state\n"   # where a pass-2 block reads the step counter and the update's guard
SPIN_LIMIT = 1 << 22        # polls before a row sync gives up (a GPU that cannot hold a row's parts at once)


@dataclass
class Layer:
    """One Linear with what follows it: offsets in the arena, in the workgroup row, in scratch."""
    index: int             # position in the Sequential (its tensors are '<index>.weight')
    n_in: int
    n_out: int
    relu: bool
    dropout: float         # 0: none
    dropout_seed: int      # the trace's seed for this Dropout layer (run seed + its index)
    w: int = 0             # arena offsets (floats)
    b: int = 0
    act_in: int = 0        # workgroup-row offsets of the input and of the output
    act_out: int = 0
    sx: int = 0            # scratch offsets: the layer's input [B, n_in] (for its weight gradient)
    sdz: int = 0           # and its output gradient [B, n_out]


def step_resources(optimizer, metrics, arena, data) -> list:
    """Bindings 0-7 of every compiled step (shaders/training_step.wgsl declares them)."""
    split = data.train
    return [optimizer.hyper, metrics.state, arena.buffer, optimizer.m1, optimizer.m2, split.images, split.labels,
            data.perm]


def _layers(model, start: int = 0) -> list:
    """The layers the step runs, from `start`: a leading Flatten() of flat images is nothing to do."""
    layers = list(model.layers)[start:]
    return layers[1:] if start == 0 and layers and isinstance(layers[0], Flatten) else layers


def head_start(model) -> int | None:
    """Where a convolutional network's dense head begins: the index of the first Linear after
    the last Flatten, when everything from there is what the compiled step covers (the layers
    before it then run as the autograd trace, the head as the compiled step). None otherwise.
    A Dropout right after the Flatten stays in the trace: pass 1 has no input dropout."""
    layers = list(model.layers)
    flat = max((i for i, l in enumerate(layers) if isinstance(l, Flatten)), default=None)
    if flat is None:
        return None
    start = flat + 1
    while start < len(layers) and isinstance(layers[start], Dropout):
        start += 1
    if start == 1 or start >= len(layers):     # a leading Flatten of an MLP: the whole step compiles
        return None
    return start if _tail_supported(layers[start:]) else None


def supported(model) -> bool:
    """Linear layers, each followed by optional ReLU and Dropout, ending in a Linear."""
    return _tail_supported(_layers(model))


def unsupported_reason(model) -> str:
    """Why neither the whole network nor its dense head compiles: the first layer that breaks the
    pattern (Linear, optional ReLU, optional Dropout, ..., ending in a Linear), in words a user
    can act on."""
    layers = list(model.layers)
    flat = max((i for i, l in enumerate(layers) if isinstance(l, Flatten)), default=None)
    i = 0 if flat is None else flat + 1
    while flat not in (None, 0) and i < len(layers) and isinstance(layers[i], Dropout):
        i += 1
    if i >= len(layers):
        return "nothing but Dropout() follows its last Flatten()"
    while i < len(layers):
        if not isinstance(layers[i], Linear):
            return f"layer {i} {layers[i]} stands where a Linear must"
        i += 1
        for kind in (ReLU, Dropout):
            if i < len(layers) and isinstance(layers[i], kind):
                i += 1
    return f"it ends in {layers[-1]} (layer {len(layers) - 1}), not in the Linear whose outputs are the logits"


def _tail_supported(layers: list) -> bool:
    if not layers or not isinstance(layers[-1], Linear):
        return False
    i = 0
    while i < len(layers):
        if not isinstance(layers[i], Linear):
            return False
        i += 1
        if i < len(layers) and isinstance(layers[i], ReLU):
            i += 1
        if i < len(layers) and isinstance(layers[i], Dropout):
            i += 1
    return True


def plan_layers(model, seed: int, start: int = 0) -> list[Layer]:
    """The Linear layers from `start` (0: the whole network) with their activations, numbered as
    PyTorch numbers them (a leading Flatten counts)."""
    shift = start or (1 if isinstance(model.layers[0], Flatten) else 0)
    out, layers, i = [], _layers(model, start), 0
    while i < len(layers):
        lin = layers[i]
        relu = i + 1 < len(layers) and isinstance(layers[i + 1], ReLU)
        j = i + 1 + relu
        drop = layers[j] if j < len(layers) and isinstance(layers[j], Dropout) else None
        out.append(Layer(i + shift, lin.in_features, lin.out_features, relu, drop.p if drop else 0.0,
                         seed + j + shift if drop else 0))
        i = j + (1 if drop else 0)
    return out


def _align4(n: int) -> int:
    return -(-n // 4) * 4


def scratch_layout(layers: list[Layer], b: int, assign: bool = True) -> int:
    """Floats of the step's scratch for batch b: each layer's input rows [b, n_in] and output-gradient
    rows [b, n_out], then (loss, correct) per row; `assign` records each layer's offsets."""
    s = 0
    for L in layers:
        if assign:
            L.sx = s
        s += _align4(b * L.n_in)
        if assign:
            L.sdz = s
        s += _align4(b * L.n_out)
    return s + 2 * b


class StepDoesNotFit(ValueError):
    """The compiled step's scratch or workgroup memory is above this GPU's limits (the message
    says which); `auto` then runs the autograd trace, whose buffers are one layer each."""


@dataclass
class HeadIO:
    """A compiled head's connection to the traced layers before it: it reads their output
    `features` [B, F] (the Flatten's) and writes its gradient `feature_grad` [B, F]; its
    parameter gradients go to the arena's gradient buffer, for the trace's optimizer."""
    start: int             # index of the head's first Linear
    features: object       # Tensor [B, F]
    feature_grad: object   # Tensor [B, F]


class CompiledStep:
    """The generated shader and its dispatches for one (network, batch, recipe, dataset).

    With `head`, only the dense head of a convolutional network is compiled: pass 1 starts
    from the traced layers' features and ends by writing their gradient, pass 2 writes the
    head's parameter gradients (and the step's metrics) and leaves the update and the step
    counter to the trace's optimizer, which updates every parameter at once."""

    def __init__(self, model, data, metrics, optimizer, recipe, wg: int | None = None, rows: int | None = None,
                 head: HeadIO | None = None, grad_staging: int | None = None, spread: int | None = None,
                 slices: int | None = None, merged: bool | None = None, encode_light: bool = False,
                 parts: int | None = None):
        dev = get_device()
        self.front = None          # a convolutional network's ops before the Flatten (compute/conv_front.py)
        if head is None and not supported(model):
            self.front = conv_front.plan_front(model)
            if self.front is None:
                raise ValueError("the compiled step covers Linear / ReLU / Dropout networks, and Conv2d / "
                                 "MaxPool2d / ReLU before one Flatten")
        if head is not None and head_start(model) != head.start:
            raise ValueError("the compiled head starts at the first Linear after the last Flatten")
        self.head = head
        if slices is not None and (slices < 1 or slices > 8 or slices & (slices - 1)):
            raise ValueError("pass 2's row slices are 1, 2, 4 or 8")
        self.forced_slices = slices        # pass 2's row slices (None: row_slices chooses)
        self.wg = wg or (256 if dev.is_cpu else 512)
        # `merged`: both passes one pipeline, one entry point (`step`) that branches on the grid's
        # shape, so a step encodes without two pipeline switches (H100 host: 9.4 -> 2.7-5.3 us of CPU
        # a step) but runs pass 2 slower (784-128-10 batch 32: 5.7 -> 8.9 us). `encode_light` (the
        # visualizer's frame loop, bound by the CPU) takes it for MLPs whose pass 2 is small enough:
        # benchmarks/NOTES.md, "Both passes one pipeline", has the measurements.
        light = encode_light and not self.front and model.arena.size <= LIGHT_MAX_WEIGHTS    # measured on MLPs
        self.merged = light if merged is None else merged
        self._uw = self.wg if self.merged else 256       # pass 2's workgroup size
        b = recipe.batch_size
        self.batch = b
        self.pixels = data.input_size
        start = head.start if head else (head_start(model) if self.front else 0)
        self.layers = plan_layers(model, recipe.seed, start)
        arena = model.arena
        for L in self.layers:
            L.w, L.b = arena.offsets[f"{L.index}.weight"], arena.offsets[f"{L.index}.bias"]
        for op in self.front or []:
            if op.kind == "conv":
                op.wo, op.bo = arena.offsets[f"{op.index}.weight"], arena.offsets[f"{op.index}.bias"]
        # Workgroup row layout: the input image, then every layer's output (the last one: logits,
        # then their gradient in place).
        off = _align4(self.layers[0].n_in)
        self.layers[0].act_in = 0
        for k, L in enumerate(self.layers):
            if k:
                L.act_in = self.layers[k - 1].act_out
            L.act_out = off
            off += _align4(L.n_out)
        self.row = off
        self.fg = 0
        self.P = self.choose_parts(dev, b, parts)
        # On a CPU adapter a dispatch's workgroups do not all run at once (lavapipe's do not even
        # spin: a row_sync there returns early), so each row sync is a dispatch boundary instead
        self.phases = self.P > 1 and dev.is_cpu
        self.spread = self.choose_spread(dev, b, spread)
        if self.spread > 1:   # the backward runs in its own dispatches: pass 1 stages no gradient
            self.fg = 4
        elif self.front:      # what the workgroup memory leaves for the conv front's staged gradient
            dense = self._dense_bytes(1) + 16 * self._part_size(1, slices=1) + FRONT_MARGIN
            self.fg = grad_staging or conv_front.gradient_staging(self.front, self.wg, self.shared_limit - dense)
        # Scratch: each layer's input rows [B, n_in] and output-gradient rows [B, n_out], then (loss, correct).
        s = self._scratch_floats(b)
        self.rows_off = scratch_layout(self.layers, b, False) - 2 * b
        # Checked before anything is created: too large a step is left to the autograd trace.
        limits = Limits.current()
        if buffer_bytes(s * 4) > limits.binding:
            most = largest(lambda k: k == 0 or buffer_bytes(self._scratch_floats(k, False) * 4) <= limits.binding, b)
            raise StepDoesNotFit(f"the compiled step's scratch for batch {b} ({mib(s * 4, limits.binding)}) is above "
                                 f"{limits.text}; use --batch-size {max(most, 1)} or less, or --engine graph")
        self.r = rows or self.choose_rows(dev, b)
        # (layer index, WGSL entry point) of each spread conv backward, generated once
        self.spread_entries = conv_front.spread_backward(self.front, self.wg, self.spread) if self.spread > 1 else []
        if self.shared_bytes(self.r) > self.shared_limit:
            raise StepDoesNotFit(f"{self.r} rows per workgroup need {self.shared_bytes(self.r):,} bytes of workgroup "
                                 f"memory, above this GPU's {self.shared_limit:,}; use --engine graph")
        self.scratch = dev.buffer(s * 4, "compiled.scratch")
        self.classes = self.layers[-1].n_out
        split = data.train
        self.source = load_wgsl("compiled_step.wgsl") + "\n" + self.generate(split, recipe)
        mode = f"|head{head.start}" if head else (f"|front{self.spread}" if self.front else "")
        digest = hashlib.sha1(self.source.encode()).hexdigest()[:16]       # a pipeline per distinct shader
        key = f"compiled_step[{model.arch.text}|b{b}|r{self.r}|wg{self.wg}|n{split.n}|s{recipe.shift},{recipe.seed}{mode}|{digest}]"
        first = "forward_backward_0" if self.phases else "forward_backward"
        p1 = dev.pipeline(key, "step" if self.merged else first, source=self.source)
        p2 = p1 if self.merged else dev.pipeline(key, "update", source=self.source)
        resources = step_resources(optimizer, metrics, arena, data) + [self.scratch, metrics.history, arena.buffer,
                                                                       self.scratch]
        if head:
            resources += [head.features, head.feature_grad, arena.grad_buffer]
        if self.P > 1 and not self.phases:
            self.row_syncs = dev.buffer(max(self.sync_count, 1) * SYNC_WORDS * 4, "compiled.row_syncs")
            resources += [self.row_syncs, self.scratch]
        group = dev.bind_group(p1, resources)
        g1 = math.ceil(b / self.r) * self.P
        g2 = self.update_groups
        spread = [Dispatch(dev.pipeline(key, f"front_backward_{i}", source=self.source), group, (b, self.spread, 1),
                           f"compiled:front_backward_{i}") for i, _ in self.spread_entries]
        pass1 = [Dispatch(p1, group, (1, g1, 1) if self.merged else (g1, 1, 1), "compiled:forward_backward")]
        if self.phases:
            pass1 += [Dispatch(dev.pipeline(key, f"forward_backward_{k + 1}", source=self.source), group, (g1, 1, 1),
                               f"compiled:forward_backward_{k + 1}") for k in range(len(self.syncs))]
        self.program = Program([
            *pass1, *spread,
            Dispatch(p2, group, (min(g2, 65535), math.ceil(g2 / 65535), 1), "compiled:update"),
        ], label="compiled_step")

    def _scratch_floats(self, b: int, assign: bool = True) -> int:
        """Floats of scratch for batch b: the dense layers' rows, then the conv front's."""
        s = scratch_layout(self.layers, b, assign)
        if self.front:
            ops = self.front if assign else [replace(op) for op in self.front]
            s = conv_front.assign_scratch(ops, b, s)
        return s

    # -- choices --------------------------------------------------------------------------------------
    def choose_rows(self, dev, b: int) -> int:
        """Rows per workgroup: 1 while the batch alone fills the GPU, 2 above batch 64 (weights
        re-read from L2 per row is what bounds pass 1 there; 4 rows lost to 2 at batch 256 on
        every MLP of the H100 sweep, `benchmarks/step_bench.py --tune`), within the workgroup memory."""
        want = 1 if dev.is_cpu or b <= 64 or self.front else 2     # the conv front runs one row a workgroup
        while want > 1 and self.shared_bytes(want) > self.shared_limit:
            want //= 2
        return want

    def choose_spread(self, dev, b: int, want: int | None) -> int:
        """Parts each row's conv backward is spread over (1: it stays in pass 1), where the front
        allows it (conv_front.py says how): 4 up to batch 32, 2 above (the H100 sweep of
        `benchmarks/step_bench.py --nets cnn --spread-sweep 1,2,4`: 4 best at 32, 2 at 64 to 256,
        both ahead of 1 everywhere); 1 on a CPU, where more workgroups only add dispatches."""
        if not self.front:
            return 1
        fits = conv_front.spreadable(self.front) and conv_front.spread_bytes(self.front) <= self.shared_limit
        if want is not None:
            if want > 1 and not fits:
                raise StepDoesNotFit("this conv front's backward cannot be spread on this GPU")
            return want
        if dev.is_cpu or not fits:
            return 1
        return 4 if b <= 32 else 2

    def choose_parts(self, dev, b: int, want: int | None) -> int:
        """Workgroups each batch row's pass 1 is shared out over (1: one does it all). At small
        batches pass 1 runs on B of the GPU's SMs, each streaming the whole network from L2 twice
        (the deep MLP at batch 32: 4.5 MB a row, ~38 us, the per-SM L2 bandwidth); with P parts each
        reads 1/P of every large layer (PART_SPLIT_MIN) and the parts of a row meet at a barrier of
        their own (row_sync) where one needs the others' outputs. Not with a conv front or a head
        (their rows are one workgroup's), nor merged passes (one grid shape per pass), nor on a CPU
        adapter by default (workgroups there do not all run at once; tests force it)."""
        if want is not None:
            if want < 1 or want > 8 or want & (want - 1):
                raise ValueError("a row's parts are 1, 2, 4 or 8")
            if want > 1 and (self.front or self.head or self.merged):
                raise ValueError("a row's parts are for MLPs with two passes")
            return want if self._shared_weights(want) else 1
        if dev.is_cpu or self.front or self.head or self.merged or self._shared_weights(2) < PARTS_MIN_WEIGHTS:
            return 1
        rows = 1 if b <= 64 else 2
        blocks = -(-b // rows)
        want = 1
        while want < 8 and blocks * want * 2 <= 128:
            want *= 2
        return self.choose_parts(dev, b, want) if want > 1 else 1

    def _shared_weights(self, parts: int) -> int:
        """Weights in the layers `parts` parts a row would share out."""
        return sum(L.n_in * L.n_out for L in self.layers if self._fsplit(L, parts) or self._bsplit(L, parts))

    def _fsplit(self, L: Layer, parts: int | None = None) -> bool:
        """Whether each of a row's parts (self.P, or `parts`) computes only its share of L's outputs
        (vec4 groups); the last layer (its loss needs every logit) is computed whole by every part."""
        p = parts or self.P
        return (p > 1 and L is not self.layers[-1] and L.n_out % 4 == 0 and L.w % 4 == 0
                and (L.n_out // 4) % p == 0 and L.n_in * L.n_out >= PART_SPLIT_MIN)

    def _bsplit(self, L: Layer, parts: int | None = None) -> bool:
        """Whether each part computes only its share of L's input gradient (input units)."""
        p = parts or self.P
        return p > 1 and L is not self.layers[0] and L.n_in % p == 0 and L.n_in * L.n_out >= PART_SPLIT_MIN

    def _out_part(self, L: Layer) -> int:
        return L.n_out // self.P if self._fsplit(L) else L.n_out

    def _in_part(self, L: Layer) -> int:
        return L.n_in // self.P if self._bsplit(L) else L.n_in

    @property
    def syncs(self) -> list[tuple[str, Layer]]:
        """The row syncs of pass 1, in order: ('fwd', L) after a split forward whose outputs the
        next layer reads; ('bwd', L) after a split input gradient a lower layer's backward reads."""
        out = [("fwd", L) for L in self.layers[:-1] if self._fsplit(L)]
        return out + [("bwd", L) for L in reversed(self.layers[2:]) if self._bsplit(L)]

    @property
    def shared_limit(self) -> int:
        return get_device().limits.get("max-compute-workgroup-storage-size", 16384)

    def _slices(self, L: Layer, r: int) -> int:
        """K-slices of a vec4 layer's forward: enough to occupy the workgroup, few enough that the
        partial sums fit the workgroup memory left over."""
        g = self._out_part(L) // 4
        return max(1, min(self.wg // g, self._part_budget(r) // max(g * r, 1)))

    def _part_budget(self, r: int) -> int:
        """vec4s of workgroup memory left for partial sums once the rows and staged weights are in."""
        return max(0, min(PART_MAX, (self.shared_limit - self._dense_bytes(r) - self._front_bytes) // 16))

    def _part_size(self, r: int, slices: int | None = None) -> int:
        """vec4s of partial sums the widest layer's split needs (with `slices`: at that many K-slices)."""
        need = 0
        for L in self.layers:
            if L.n_out % 4 == 0:
                need = max(need, (slices or self._slices(L, r)) * (self._out_part(L) // 4) * r)
            else:
                need = max(need, -(-L.n_out * self._scalar_parts(L) * r // 4))
        for L in self.layers[1:]:
            need = max(need, -(-self._in_part(L) * self._grad_split(L, r) * r // 4))
        if self.head or self.front:     # the features' gradient, when split (else stored directly)
            L0 = self.layers[0]
            split = self._grad_split(L0, r)
            if split > 1:
                need = max(need, -(-L0.n_in * split * r // 4))
        return need

    def _grad_split(self, L: Layer, r: int) -> int:
        """Invocations sharing one input unit's sum in a dense layer's input gradient (a power of
        2, at most 8): consecutive invocations read consecutive vec4s of its weight row, so a
        warp's loads are whole cache lines, not 32 rows' scattered vec4s that L1 cannot keep;
        their partial sums fold in `part`, as far as the workgroup memory allows."""
        if not (L.n_out % 4 == 0 and L.w % 4 == 0):
            return 1
        split = min(8, 1 << ((L.n_out // 4).bit_length() - 1))
        while split > 1 and -(-self._in_part(L) * split * r // 4) > self._part_budget(r):
            split //= 2
        return split

    def _staged(self) -> list[Layer]:
        """Small weight matrices read with scalar loads (an output width not a multiple of 4, e.g.
        the 10 classes) are copied to workgroup memory once per workgroup: their loops then wait
        on workgroup memory, not on L2 latency."""
        return [L for L in self.layers if not (L.n_out % 4 == 0 and L.w % 4 == 0) and L.n_in * L.n_out <= STAGE_MAX]

    def _dense_bytes(self, r: int) -> int:
        """Workgroup memory of pass 1's dense layers but for their partial sums: R rows, staged
        weights, the reduction array and the rows' samples and labels."""
        red4 = (16 + (16 if self._staged_gemm else 0)) * self._uw if self.merged else 0   # pass 2's, in the same entry point
        return 4 * (r * self.row + sum(L.n_in * L.n_out for L in self._staged())) + 8 * max(256, self._uw) + 8 * r + red4

    def shared_bytes(self, r: int) -> int:
        return self._dense_bytes(r) + 16 * self._part_size(r) + self._front_bytes

    @property
    def _front_bytes(self) -> int:
        return conv_front.shared_bytes(self.front, self.wg, self.fg) if self.front else 0

    def _scalar_parts(self, L: Layer) -> int:
        return max(1, min(16, self.wg // max(L.n_out, 1)))

    # -- pass 1 ---------------------------------------------------------------------------------------
    def generate(self, split, recipe) -> str:
        r, wg = self.r, self.wg
        L0 = self.layers[0]
        consts = [
            f"const B: u32 = {self.batch}u;", f"const N: u32 = {split.n}u;", f"const R: u32 = {r}u;",
            f"const WG: u32 = {wg}u;", f"const ROW: u32 = {self.row}u;", f"const PIXELS: u32 = {self.pixels}u;",
            f"const IMAGE_W: u32 = {split.width}u;", f"const SHIFT: u32 = {recipe.shift}u;",
            f"const SEED: u32 = {recipe.seed}u;", f"const CLASSES: u32 = {self.classes}u;",
            f"const ROWS_OFF: u32 = {self.rows_off}u;", f"const P: u32 = {self.P}u;",
            f"var<workgroup> act: array<f32, {max(r * self.row, 4)}>;",
            f"var<workgroup> part: array<vec4<f32>, {max(self._part_size(r), 1)}>;",
            "var<workgroup> sample_of: array<u32, R>;     // the dataset index of each row (0xffffffff: past the end)",
            "var<workgroup> label_of: array<u32, R>;      // its label (the loss by class)",
            "var<workgroup> wg_step: u32;                 // the step counter and the update's guard, read once a workgroup",
            "var<workgroup> wg_frozen: u32;",
            f"var<workgroup> red: array<vec2<f32>, {max(256, self._uw)}>;",
            f"var<workgroup> red4: array<vec4<f32>, {self._uw}>;   // pass 2: the row slices' partial weight gradients",
        ] + ([f"var<workgroup> gx: array<vec4<f32>, {self._uw}>;   // pass 2's GEMM: a chunk of layer inputs x "
              "(and in red4, of their output gradients dz)"] if self._staged_gemm else []) + [f"var<workgroup> wst{L.index}: array<f32, {L.n_in * L.n_out}>;   // layer {L.index}'s weights, staged"
             for L in self._staged()]
        if self.P > 1 and not self.phases:
            consts.append(self._row_sync_declarations())
        if self.front:
            consts.append(conv_front.declarations(self.front, wg, self.fg, spread=self.spread > 1))
        if self.head:
            consts += [
                "@group(0) @binding(12) var<storage, read> features: array<f32>;         // the traced layers' output [B, F]",
                "@group(0) @binding(13) var<storage, read_write> feature_grad: array<f32>;  // its gradient [B, F]",
                "@group(0) @binding(14) var<storage, read_write> grads: array<f32>;      // the arena's gradients",
            ]
        body = [self._load_rows()]
        for k, L in enumerate(self.layers):
            body.append(self._forward(L, last=k == len(self.layers) - 1))
        body.append(self._loss())
        for k in range(len(self.layers) - 1, 0, -1):
            body.append(self._backward(self.layers[k], self.layers[k - 1]))
        if self.head or self.front:
            body.append(self._feature_grad(self.layers[0]))
        if self.front and self.spread == 1:
            body.append(conv_front.SYNC + conv_front.backward(self.front, wg, self.fg))
        elif self.front:
            body.append(conv_front.spread_pass1_tail(self.front))
        preamble = f"""
    let t = lid.x;
    let rb = wgid.x / P;     // the row block
    let pp = wgid.x % P;     // and this workgroup's part of it
    let r0 = rb * R;{self._early_loads()}
{self._state_loads("step")}
    let spe = (N + B - 1u) / B;
    let base = (step % spe) * B;
    let nvalid = f32(min(B, N - base));     // real rows in this batch (the tail batch is short)"""
        snap = """
    if (wgid.x == 0u && t == 0u) { atomicStore(&state.step_snap, step); }"""
        segments = "".join(body).split(SYNC_MARK)
        if not self.phases:
            pass1 = f"""
{self._pass_head("forward_backward", wg, wgid="workgroup_id", lid="local_invocation_id")}{preamble}{snap}
{"".join(self._row_sync(k) + seg if k >= 0 else seg for k, seg in enumerate(segments, -1))}}}
"""
        else:       # a dispatch per segment: what the row syncs exchanged comes back from scratch
            pass1 = "".join(f"""
@compute @workgroup_size({wg})
fn forward_backward_{k + 1}(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{{preamble}
{"" if k >= 0 else snap}{self._stage_and_samples() + self._reload_all(k) if k >= 0 else ""}{seg}}}
""" for k, seg in enumerate(segments, -1))
        spread = "".join(entry for _, entry in self.spread_entries)
        merged = f"""
// Both passes in one pipeline: pass 1 is dispatched as (1, its workgroups, 1), pass 2 as (x, y, 1)
// with x >= 2 (it has at least a weight, a bias and the metrics)
@compute @workgroup_size({wg})
fn step(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {{
    if (nwg.x == 1u) {{ forward_backward(vec3<u32>(wgid.y, 0u, 0u), lid); }} else {{ update(wgid, lid, nwg); }}
}}
""" if self.merged else ""
        return "\n".join(consts) + "\n" + pass1 + spread + self._update() + merged

    def _row_sync_declarations(self) -> str:
        return f"""
const SYNCS: u32 = {len(self.syncs)}u;
const SPIN_LIMIT: u32 = {SPIN_LIMIT}u;
@group(0) @binding(12) var<storage, read_write> row_syncs: array<atomic<u32>>;   // arrivals per (row block, sync), {SYNC_WORDS} words apart
@group(0) @binding(13) var<storage, read_write> scratch_shared: array<atomic<u32>>;  // scratch again: what other parts wrote

// The P workgroups of row block rb meet (sync k of the step): each one's stores to scratch are
// made visible (storageBarrier is device-scoped), its arrival counted; then it waits for all P.
// The counters go back to 0 in pass 2. A GPU that cannot hold a row's parts at once would wait
// forever: the wait gives up after SPIN_LIMIT polls and flags the step stalled (the run then
// goes back to its snapshot and on with one part a row).
fn row_sync(rb: u32, k: u32, t: u32) {{
    storageBarrier();
    if (t == 0u) {{
        let c = (rb * SYNCS + k) * {SYNC_WORDS}u;
        atomicAdd(&row_syncs[c], 1u);
        var spins = 0u;
        loop {{
            if (atomicLoad(&row_syncs[c]) >= P) {{ break; }}
            spins += 1u;
            if (spins > SPIN_LIMIT) {{ atomicOr(&state.flags, FLAG_STALLED); break; }}
        }}
    }}
    storageBarrier();
}}
"""

    def _pass_head(self, name: str, wg: int, **builtins: str) -> str:
        """The first line of a pass: its own entry point, or (merged) a function the entry point
        `step` calls with the same arguments."""
        if self.merged:
            return f"fn {name}({', '.join(f'{a}: vec3<u32>' for a in builtins)}) {{"
        args = ", ".join(f"@builtin({b}) {a}: vec3<u32>" for a, b in builtins.items())
        return f"@compute @workgroup_size({wg})\nfn {name}({args}) {{"

    def _load_rows(self) -> str:
        L0 = self.layers[0]
        front = ""
        if self.front:       # the front's last op writes the dense layers' input row itself
            front = conv_front.forward(self.front, self.fg, f"act[k] = v; scratch[{L0.sx}u + r0 * {L0.n_in}u + k] = v;")
        what = ("the traced layers' features" if self.head
                else "the rows' images, gathered through the permutation and shifted")
        load = "" if self.front else f"""
    // -- {what}: into act and scratch
    for (var i = t; i < R * {L0.n_in}u; i += WG) {{
        let rr = i / {L0.n_in}u;
        let k = i % {L0.n_in}u;
        let s = sample_of[rr];
        var v = 0.0;
        if (s != 0xffffffffu) {{ v = {self._input("s", "k", "r0 + rr")}; }}
        act[rr * ROW + k] = v;
        if (r0 + rr < B{self._only_part0()}) {{ scratch[{L0.sx}u + (r0 + rr) * {L0.n_in}u + k] = v; }}
    }}
    workgroupBarrier();"""
        return f"""{self._stage_and_samples()}{front}{load}
"""

    def _guarded(self, n: int, k: int, stmt: str) -> str:
        """`stmt` for invocation t's k-th element of n (strided by the workgroup), under a test
        unless every invocation has one."""
        return stmt if (k + 1) * self.wg <= n else f"if (t + {k * self.wg}u < {n}u) {{ {stmt} }}"

    def _early_bias(self, L: Layer) -> bool:
        """Whether L's forward fold starts from a bias loaded at pass 1's start: when its fold is one
        output an invocation (R x outputs within the workgroup)."""
        return bool(STAGE_EARLY) and self.r * self._out_part(L) <= self.wg

    def _early_loads(self) -> str:
        """Loads issued first thing in pass 1, before the step counter's round trip, for values first
        used much later: the staged weights (stored to workgroup memory once the samples are known)
        and each forward fold's bias. Each had been a round trip on the critical path (a staging
        loop waiting on every load; the bias read when the fold starts)."""
        if not STAGE_EARLY:
            return ""
        out = []
        for L in self._staged():
            n = L.n_in * L.n_out
            for k in range(-(-n // self.wg)):
                out.append(f"var ws{L.index}_{k} = 0.0; " +
                           self._guarded(n, k, f"ws{L.index}_{k} = params[{L.w}u + t + {k * self.wg}u];"))
        for L in self.layers:
            if self._early_bias(L):
                nl = self._out_part(L)
                first = f"pp * {nl}u + " if self._fsplit(L) else ""
                out.append(f"var bias{L.index} = 0.0; if (t < R * {nl}u) {{ bias{L.index} = params[{L.b}u + {first}t % {nl}u]; }}")
        return "".join("\n    " + line for line in out)

    def _stage_and_samples(self) -> str:
        """Pass 1's start: the small weights staged, each row's dataset sample looked up."""
        if STAGE_EARLY:     # loaded by _early_loads
            stage = "".join(f"""
    {self._guarded(L.n_in * L.n_out, k, f"wst{L.index}[t + {k * self.wg}u] = ws{L.index}_{k};")}"""
                            for L in self._staged() for k in range(-(-L.n_in * L.n_out // self.wg)))
        else:
            stage = "".join(f"""
    for (var i = t; i < {L.n_in * L.n_out}u; i += WG) {{ wst{L.index}[i] = params[{L.w}u + i]; }}"""
                            for L in self._staged())
        # The label's load is issued here and first used by the loss: its round trip overlaps the
        # gather and the forward instead of standing between the logits and the loss.
        label = "\n        if (s != 0xffffffffu) { label_word = labels[s >> 2u]; }" if LABEL_EARLY else ""
        return f"""{stage}
    var label_word = 0u;     // invocation t < R: the word holding row t's label (read by the loss)
    if (t < R) {{
        let pos = base + r0 + t;
        let s = select(0xffffffffu, perm[pos], r0 + t < B && pos < N);
        sample_of[t] = s;{label}
    }}
    workgroupBarrier();"""

    def _forward(self, L: Layer, last: bool) -> str:
        r = self.r
        accs = range(r)
        mine = self._only_part0(self._fsplit(L))
        if L.n_out % 4 == 0 and L.w % 4 == 0:
            g = L.n_out // 4
            gl = self._out_part(L) // 4             # this part's vec4 groups (all of them unless split)
            first = f"pp * {gl}u + " if self._fsplit(L) else ""
            s = self._slices(L, r)
            decl = " ".join(f"var a{q} = vec4<f32>(0.0);" for q in accs)
            # Four independent weight loads in flight per iteration: the loop is bound by memory
            # latency, not arithmetic, at the batch sizes this step serves.
            un = 8 if L.n_in // s >= 32 else 4     # loads in flight: more for long K-slices
            loads = "\n".join(f"            let w{u} = params4[{L.w // 4}u + (k + {u}u) * {g}u + g];" for u in range(un))
            fma4 = "\n".join(f"            a{q} = fma(vec4<f32>(act[{q * self.row + L.act_in}u + k + {u}u]), w{u}, a{q});"
                              for u in range(un) for q in accs)
            fma1 = "\n".join(f"            a{q} = fma(vec4<f32>(act[{q * self.row + L.act_in}u + k]), w, a{q});" for q in accs)
            store = "\n".join(f"        part[(s * {gl}u + gq) * R + {q}u] = a{q};" for q in accs)
            whose = f" (this part's {gl * 4} of them)" if first else ""
            split = f"""
    // -- layer {L.index}: Linear({L.n_in},{L.n_out}), forward: invocation (s, g) sums K-slice s of outputs 4g..4g+3{whose}
    for (var u = t; u < {gl * s}u; u += WG) {{
        let gq = u % {gl}u;
        let g = {first}gq;
        let s = u / {gl}u;
        let k1 = (s + 1u) * {L.n_in}u / {s}u;
        {decl}
        var k = s * {L.n_in}u / {s}u;
        for (; k + {un}u <= k1; k += {un}u) {{
{loads}
{fma4}
        }}
        for (; k < k1; k++) {{
            let w = params4[{L.w // 4}u + k * {g}u + g];
{fma1}
        }}
{store}
    }}
    workgroupBarrier();"""
            nl = gl * 4
            fold = f"""
    for (var i = t; i < R * {nl}u; i += WG) {{
        let rr = i / {nl}u;
        let jl = i % {nl}u;
        let j = {f"pp * {nl}u + " if first else ""}jl;
        var z = {f"bias{L.index}" if self._early_bias(L) else f"params[{L.b}u + j]"};
        for (var s = 0u; s < {s}u; s++) {{ z += part[(s * {gl}u + jl / 4u) * R + rr][jl % 4u]; }}"""
        else:
            p = self._scalar_parts(L)
            decl = " ".join(f"var a{q} = 0.0;" for q in accs)
            fma = "\n".join(f"            a{q} = fma(act[{q * self.row + L.act_in}u + k], w, a{q});" for q in accs)
            store = "\n".join(f"        let e{q} = (u * R + {q}u); part[e{q} / 4u][e{q} % 4u] = a{q};" for q in accs)
            split = f"""
    // -- layer {L.index}: Linear({L.n_in},{L.n_out}), forward: {p} partial sums per output (u = output * {p} + q)
    for (var u = t; u < {L.n_out * p}u; u += WG) {{
        let c = u / {p}u;
        let q = u % {p}u;
        {decl}
        for (var k = q; k < {L.n_in}u; k += {p}u) {{
            let w = {self._weight(L, "k", "c")};
{fma}
        }}
{store}
    }}
    workgroupBarrier();"""
            fold = f"""
    for (var i = t; i < R * {L.n_out}u; i += WG) {{
        let rr = i / {L.n_out}u;
        let j = i % {L.n_out}u;
        var z = {f"bias{L.index}" if self._early_bias(L) else f"params[{L.b}u + j]"};
        for (var q = 0u; q < {p}u; q++) {{ let e = (j * {p}u + q) * R + rr; z += part[e / 4u][e % 4u]; }}"""
        act = "z"
        if L.relu:
            act = "max(z, 0.0)"
        keep = ""
        if L.dropout:
            keep = (f"\n        if (!keep({L.dropout_seed}u, step, r0 + rr, {L.n_out}u, j, {L.dropout:.9g})) {{ v = 0.0; }}"
                    f" else {{ v = v * {1.0 / (1.0 - L.dropout):.9g}; }}")
        store_next = "" if last else (
            f"\n        if (r0 + rr < B{mine}) {{ scratch[{self._next(L).sx}u + (r0 + rr) * {L.n_out}u + j] = v; }}")
        return f"""{split}{fold}
        var v = {act};{keep}
        act[rr * ROW + {L.act_out}u + j] = v;{store_next}
    }}
    workgroupBarrier();
{self._sync("fwd", L)}"""

    def _only_part0(self, split: bool = False) -> str:
        """The condition (appended to a row test) under which an invocation stores a result every
        part of a row computes alike: part 0's only."""
        return " && pp == 0u" if self.P > 1 and not split else ""

    def _sync(self, kind: str, L: Layer) -> str:
        """Where a row's parts meet after a split phase: each part has stored its share to scratch;
        after the row's barrier every part reads the whole vector back into `act`, with atomic
        loads (a plain load may hit a line this SM's L1 holds from before: they are not coherent
        inside a dispatch, benchmarks/logs/grid_barrier_*)."""
        return SYNC_MARK if (kind, L) in self.syncs else ""

    def _sync_source(self, k: int) -> tuple[int, int, int, str]:
        """(width, scratch offset, act offset, what) of the vector row sync k exchanges."""
        kind, L = self.syncs[k]
        if kind == "fwd":
            return L.n_out, self._next(L).sx, L.act_out, f"layer {L.index}'s outputs"
        prev = self.layers[self.layers.index(L) - 1]
        return prev.n_out, prev.sdz, prev.act_out, f"layer {prev.index}'s output gradient"

    def _row_sync(self, k: int) -> str:
        n, src, dst, what = self._sync_source(k)
        return f"""
    // -- the row's {self.P} parts meet (sync {k}): {what}, every part's share, back from scratch
    row_sync(rb, {k}u, t);{self._reload(n, src, dst, atomic=True)}"""

    def _reload(self, n: int, src: int, dst: int, atomic: bool) -> str:
        """Every row's n words at scratch `src` (rows n apart) back into act at `dst`."""
        load = f"bitcast<f32>(atomicLoad(&scratch_shared[{src}u + (r0 + rr) * {n}u + j]))" if atomic else \
            f"scratch[{src}u + (r0 + rr) * {n}u + j]"
        return f"""
    for (var i = t; i < R * {n}u; i += WG) {{
        let rr = i / {n}u;
        let j = i % {n}u;
        var v = 0.0;
        if (r0 + rr < B) {{ v = {load}; }}
        act[rr * ROW + {dst}u + j] = v;
    }}
    workgroupBarrier();
"""

    def _reload_all(self, k: int) -> str:
        """Phase mode, the start of the segment after row sync k: the workgroup memory of the last
        segment is gone, so every layer's forward outputs come back from scratch (the backward's
        masks read them), then the vector the sync exchanged (a gradient: over its activations)."""
        out = [f"\n    // -- after row sync {k}: the row's state back from scratch"]
        out += [self._reload(L.n_out, self._next(L).sx, L.act_out, atomic=False) for L in self.layers[:-1]]
        if self.syncs[k][0] == "bwd":
            n, src, dst, _ = self._sync_source(k)
            out.append(self._reload(n, src, dst, atomic=False))
        return "".join(out)

    def _input(self, s: str, k: str, row: str) -> str:
        """Element k of batch row `row` (dataset sample `s`): the image pixel, or the traced
        layers' feature when this is a compiled head."""
        if self.head:
            return f"features[({row}) * {self.layers[0].n_in}u + {k}]"
        return f"image_pixel({s}, {k}, step, {row})"

    def _weight(self, L: Layer, k: str, c: str) -> str:
        """W[k, c] of a scalar-path layer: from workgroup memory if staged."""
        if L in self._staged():
            return f"wst{L.index}[{k} * {L.n_out}u + {c}]"
        return f"params[{L.w}u + {k} * {L.n_out}u + {c}]"

    def _next(self, L: Layer) -> Layer:
        return self.layers[self.layers.index(L) + 1]

    def _loss(self) -> str:
        last = self.layers[-1]
        c = last.n_out
        if PARALLEL_LOSS and self.r * c <= 256:
            return self._loss_by_class()
        return f"""
    // -- softmax, cross-entropy and dz = (p - onehot(y)) / n per row, by one invocation each (C is small)
    if (t < R) {{
        let rr = t;
        let s = sample_of[rr];
        let z0 = rr * ROW + {last.act_out}u;
        var loss = 0.0;
        var correct = 0.0;
        if (s == 0xffffffffu) {{
            for (var c = 0u; c < {c}u; c++) {{ act[z0 + c] = 0.0; }}
        }} else {{
            let y = byte_of({"label_word" if LABEL_EARLY else "labels[s >> 2u]"}, s);
            var m = act[z0];
            var best = 0u;
            for (var c = 1u; c < {c}u; c++) {{ if (act[z0 + c] > m) {{ m = act[z0 + c]; best = c; }} }}
            var sum = 0.0;
            for (var c = 0u; c < {c}u; c++) {{ sum += exp(act[z0 + c] - m); }}
            loss = log(sum) + m - act[z0 + y];
            correct = select(0.0, 1.0, best == y);
            if (!is_finite(loss)) {{ atomicOr(&state.flags, FLAG_NONFINITE); }}
            for (var c = 0u; c < {c}u; c++) {{
                act[z0 + c] = (exp(act[z0 + c] - m) / sum - select(0.0, 1.0, c == y)) / nvalid;
            }}
        }}
        if (r0 + rr < B{self._only_part0()}) {{
            scratch[ROWS_OFF + (r0 + rr) * 2u] = loss;
            scratch[ROWS_OFF + (r0 + rr) * 2u + 1u] = correct;
            for (var c = 0u; c < {c}u; c++) {{ scratch[{last.sdz}u + (r0 + rr) * {c}u + c] = act[z0 + c]; }}
        }}
    }}
    workgroupBarrier();
"""

    def _loss_by_class(self) -> str:
        """The loss phase with an invocation per (row, class): each finds its row's max and sum of
        exponentials itself (C loads and exps from workgroup memory, the same order as one
        invocation a row) and writes its class's dz; the row's first class records the loss. One
        invocation a row did the three passes over the classes one after another (2.2 us of the
        H100's pass 1, benchmarks/NOTES.md). dz goes through `red` (pass 2's, free here): the
        logits are read until every invocation of the row is done."""
        last = self.layers[-1]
        c = last.n_out
        y = "byte_of(label_word, sample_of[t])" if LABEL_EARLY else "byte_of(labels[sample_of[t] >> 2u], sample_of[t])"
        return f"""
    // -- softmax, cross-entropy and dz = (p - onehot(y)) / n: invocation (row, class), each over its row's logits
    if (t < R && sample_of[t] != 0xffffffffu) {{ label_of[t] = {y}; }}
    workgroupBarrier();
    for (var i = t; i < R * {c}u; i += WG) {{
        let rr = i / {c}u;
        let c = i % {c}u;
        let z0 = rr * ROW + {last.act_out}u;
        var g = 0.0;
        var loss = 0.0;
        var correct = 0.0;
        if (sample_of[rr] != 0xffffffffu) {{
            let y = label_of[rr];
            var m = act[z0];
            var best = 0u;
            for (var k = 1u; k < {c}u; k++) {{ let v = act[z0 + k]; if (v > m) {{ m = v; best = k; }} }}
            var sum = 0.0;
            for (var k = 0u; k < {c}u; k++) {{ sum += exp(act[z0 + k] - m); }}
            g = (exp(act[z0 + c] - m) / sum - select(0.0, 1.0, c == y)) / nvalid;
            loss = log(sum) + m - act[z0 + y];
            correct = select(0.0, 1.0, best == y);
        }}
        red[i].x = g;
        if (c == 0u) {{
            if (!is_finite(loss)) {{ atomicOr(&state.flags, FLAG_NONFINITE); }}
            if (r0 + rr < B{self._only_part0()}) {{
                scratch[ROWS_OFF + (r0 + rr) * 2u] = loss;
                scratch[ROWS_OFF + (r0 + rr) * 2u + 1u] = correct;
            }}
        }}
    }}
    workgroupBarrier();
    for (var i = t; i < R * {c}u; i += WG) {{
        let rr = i / {c}u;
        let c = i % {c}u;
        act[rr * ROW + {last.act_out}u + c] = red[i].x;
        if (r0 + rr < B{self._only_part0()}) {{ scratch[{last.sdz}u + (r0 + rr) * {c}u + c] = red[i].x; }}
    }}
    workgroupBarrier();
"""

    def _backward(self, L: Layer, prev: Layer) -> str:
        """dz of `prev` = (dz of L) W_L^T, through prev's dropout and ReLU. W_L is stored
        [n_in, n_out], so row k (one input unit) is contiguous: invocation k reads it once
        for all R rows."""
        partial, fold = self._split_input_grad(L)
        mask = "select(0.0, d, a > 0.0)" if prev.relu else "d"
        if prev.dropout:
            mask = f"select(0.0, {mask} * {1.0 / (1.0 - prev.dropout):.9g}, keep({prev.dropout_seed}u, step, r0 + rr, {prev.n_out}u, k, {prev.dropout:.9g}))"
        nl = self._in_part(L)
        first = f"pp * {nl}u + " if self._bsplit(L) else ""
        whose = f" (this part's {nl} of them)" if first else ""
        return f"""
    // -- layer {L.index}: gradient of its input = dz W^T, then through layer {prev.index}'s activation{whose}{partial}
    for (var i = t; i < R * {nl}u; i += WG) {{
        let rr = i / {nl}u;
        let kl = i % {nl}u;
        let k = {first}kl;{fold}
        let a = act[rr * ROW + {prev.act_out}u + k];
        let g = {mask};
        act[rr * ROW + {prev.act_out}u + k] = g;
        if (r0 + rr < B{self._only_part0(bool(first))}) {{ scratch[{prev.sdz}u + (r0 + rr) * {prev.n_out}u + k] = g; }}
    }}
    workgroupBarrier();
{self._sync("bwd", L)}"""

    def _split_input_grad(self, L: Layer) -> tuple[str, str]:
        """(phase, fold) of dz W^T for layer L's input units: the phase sums each unit's share
        into `part` (split over _grad_split invocations, or one), the fold is WGSL declaring `d`,
        the sum for row rr and unit k, inside a loop over (rr, k)."""
        split = self._grad_split(L, self.r)
        r = self.r
        nl = self._in_part(L)
        first = f"pp * {nl}u + " if self._bsplit(L) else ""
        if split == 1:
            decl, loop = self._input_grad_rows(L)
            part_store = "\n".join(f"        part[(kl * R + {q}u) / 4u][(kl * R + {q}u) % 4u] = d{q};" for q in range(r))
            return f"""
    for (var kl = t; kl < {nl}u; kl += WG) {{
        let k = {first}kl;
        {decl}
{loop}
{part_store}
    }}
    workgroupBarrier();""", """
        let d = part[(kl * R + rr) / 4u][(kl * R + rr) % 4u];"""
        g = L.n_out // 4
        un = max(1, min(4, g // split))        # loads in flight, `split` vec4s apart

        def dz4(q, c):
            base = f"{q * self.row + L.act_out}u + 4u * ({c})"
            return f"vec4<f32>(act[{base}], act[{base} + 1u], act[{base} + 2u], act[{base} + 3u])"
        loads = "\n".join(f"            let w{v} = params4[{L.w // 4}u + k * {g}u + c + {v * split}u];" for v in range(un))
        dots = "\n".join(f"            d{q} += dot(w{v}, {dz4(q, f'c + {v * split}u')});" for v in range(un) for q in range(r))
        decl = " ".join(f"var d{q} = 0.0;" for q in range(r))
        phase = f"""
    for (var u = t; u < {nl * split}u; u += WG) {{   // invocation (input unit k, every {split}th vec4 of its row from s)
        let k = {first}u / {split}u;
        let s = u % {split}u;
        {decl}
        var c = s;
        for (; c + {(un - 1) * split}u < {g}u; c += {un * split}u) {{
{loads}
{dots}
        }}
        for (; c < {g}u; c += {split}u) {{
            let w = params4[{L.w // 4}u + k * {g}u + c];
""" + "\n".join(f"            d{q} += dot(w, {dz4(q, 'c')});" for q in range(r)) + """
        }
""" + "\n".join(f"        part[(u * R + {q}u) / 4u][(u * R + {q}u) % 4u] = d{q};" for q in range(r)) + """
    }
    workgroupBarrier();"""
        fold = f"""
        var d = 0.0;
        for (var s = 0u; s < {split}u; s++) {{ let e = (kl * {split}u + s) * R + rr; d += part[e / 4u][e % 4u]; }}"""
        return phase, fold

    def _feature_grad(self, L: Layer) -> str:
        """The dense layers' last act when layers come before them: the gradient of the features,
        dz W^T of the first dense layer, straight to `feature_grad` (a compiled head: the trace's
        backward starts from it) or to the conv front's last gradient rows."""
        dest = "feature_grad[" if self.head else f"scratch[{self.front[-1].gy}u + "
        if self._grad_split(L, self.r) > 1:      # split over invocations, folded in part
            phase, fold = self._split_input_grad(L)
            return f"""
    // -- layer {L.index}: gradient of the features = dz W^T, for the layers before the dense ones{phase}
    for (var i = t; i < R * {L.n_in}u; i += WG) {{
        let rr = i / {L.n_in}u;
        let k = i % {L.n_in}u;
        let kl = k;{fold}
        if (r0 + rr < B) {{ {dest}(r0 + rr) * {L.n_in}u + k] = d; }}
    }}
"""
        decl, loop = self._input_grad_rows(L)
        store = "\n".join(f"        if (r0 + {q}u < B) {{ {dest}(r0 + {q}u) * {L.n_in}u + k] = d{q}; }}"
                           for q in range(self.r))
        return f"""
    // -- layer {L.index}: gradient of the features = dz W^T, for the layers before the dense ones
    for (var k = t; k < {L.n_in}u; k += WG) {{
        {decl}
{loop}
{store}
    }}
"""

    def _input_grad_rows(self, L: Layer) -> tuple[str, str]:
        """(declarations, loop) that sum d{q} = (dz of row q) . W_L[k, :] for input unit k, every row."""
        r = self.r
        accs = range(r)
        decl = " ".join(f"var d{q} = 0.0;" for q in accs)
        if L.n_out % 4 == 0 and L.w % 4 == 0:
            g = L.n_out // 4

            def dz4(q, c):
                base = f"{q * self.row + L.act_out}u + 4u * ({c})"
                return f"vec4<f32>(act[{base}], act[{base} + 1u], act[{base} + 2u], act[{base} + 3u])"
            un = min(GRAD_LOADS, 1 << (g.bit_length() - 1))     # weight loads in flight (a power of 2, <= g)
            loop = f"""        var c = 0u;
        for (; c + {un}u <= {g}u; c += {un}u) {{   // {un} independent weight loads in flight
""" + "\n".join(f"            let w{u} = params4[{L.w // 4}u + k * {g}u + c + {u}u];" for u in range(un)) + "\n" + \
                "\n".join(f"            d{q} += dot(w{u}, {dz4(q, f'c + {u}u')});" for u in range(un) for q in accs) + f"""
        }}
        for (; c < {g}u; c++) {{
            let w = params4[{L.w // 4}u + k * {g}u + c];
""" + "\n".join(f"            d{q} += dot(w, {dz4(q, 'c')});" for q in accs) + "\n        }"
        else:
            loop = f"""        for (var c = 0u; c < {L.n_out}u; c++) {{
            let w = {self._weight(L, "k", "c")};
""" + "\n".join(f"            d{q} = fma(act[{q * self.row + L.act_out}u + c], w, d{q});" for q in accs) + "\n        }"
        return decl, loop

    # -- pass 2 ---------------------------------------------------------------------------------------
    def _blocks(self) -> list[tuple[str, int, str]]:
        """(name, workgroups, WGSL body) per parameter block of pass 2, then the metrics."""
        out = []
        for L in self.layers:
            n = L.n_in * L.n_out
            if self._tiled(L) and self._staged_gemm:
                t = GEMM_TILE
                out.append((f"{L.index}.weight", -(-L.n_in // (4 * t)) * -(-L.n_out // (4 * t)), self._gemm_weight(L)))
            elif self._tiled(L):
                per_group = self._uw // self.row_slices
                out.append((f"{L.index}.weight", math.ceil(n // 16 / per_group), self._tiled_weight(L)))
            elif self._sliced(L):
                per_group = self._uw // self.row_slices
                out.append((f"{L.index}.weight", math.ceil(n // 4 / per_group), self._big_weight(L)))
            else:
                out.append((f"{L.index}.weight", math.ceil(n / 16), self._small(L, bias=False)))
            out.append((f"{L.index}.bias", math.ceil(L.n_out / 16), self._small(L, bias=True)))
        for name, n, term, dest in conv_front.param_blocks(self.front or []):
            out.append((name, math.ceil(n / 16), self._sum_rows(n, term, dest, f"{name}: this step's rows' shares, summed")))
        out.append(("metrics", 1, self._metrics()))
        return out

    @property
    def update_groups(self) -> int:
        return sum(n for _, n, _ in self._blocks())

    @property
    def row_slices(self) -> int:
        """Invocations that split the batch rows of one large-layer gradient: each sum is a chain of
        dependent loads, so the rows are cut into parallel pieces until pass 2 has about
        PASS2_INVOCATIONS invocations (the power of 2 nearest, 1 to 8, at most the batch). The
        H100's pass 2 with 1, 2, 4 and 8 slices, every MLP of the benchmark at batch 32-256
        (benchmarks/logs/pass2_slices_h100.log): a small network wants more slices than the
        batch alone suggests (784-128-10 at batch 32: 4.9 us with 2, 6.0 with 1), a large one
        fewer (784-512-256-128-10 at 128: 17.4 us with 4, 19.8 with 8). A power of 2: the fold
        (_row_sum) halves its stride down to (pass 2's workgroup) / slices. On a CPU adapter, 1
        per 32 rows."""
        cap = min(8, self.batch)
        if self.forced_slices:
            n = self.forced_slices
        elif get_device().is_cpu:
            n = max(1, min(cap, self.batch // 32))
        else:
            base = sum(L.n_in * L.n_out // (16 if self._tiled(L) else 4) for L in self.layers if self._sliced(L))
            n = min(cap, max(1, 2 ** round(math.log2(PASS2_INVOCATIONS / base)))) if base else 1
        return 1 << (n.bit_length() - 1)

    def _sliced(self, L: Layer) -> bool:
        """A weight whose pass-2 gradient sum is split over row slices (tiled, or in vec4 columns)."""
        return self._tiled(L) or (L.n_in % 4 == 0 and L.n_in * L.n_out >= BIG_BLOCK and L.sx % 4 == 0)

    def _tiled(self, L: Layer) -> bool:
        """A large weight whose both sides are multiples of 4 (and vec4-aligned in scratch) gets
        4 x 4 register tiles in pass 2 from batch TILED_FROM on. H100 (step_bench): at batch 256
        the 784-512-256-128-10 update fell from 53 to 31 us; at batch 32 the tiles were slower
        (784-128-10: 7.4 -> 10.0 us), a quarter of the invocations each waiting on the same
        chain of row loads."""
        return (self.batch >= TILED_FROM and L.n_in % 4 == 0 and L.n_out % 4 == 0
                and L.n_in * L.n_out >= BIG_BLOCK and L.sx % 4 == 0 and L.sdz % 4 == 0)

    def _row_sum(self, var: str) -> str:
        """Pass 2: the vec4 `var` summed over the row slices in workgroup memory, back into `var`
        of slice 0's invocations (nothing to do with one slice)."""
        sl = self.row_slices
        if sl == 1:
            return ""
        per = self._uw // sl
        return f"""
        red4[t] = {var};
        workgroupBarrier();
        for (var s = {self._uw // 2}u; s >= {per}u; s >>= 1u) {{
            if (t < s) {{ red4[t] += red4[t + s]; }}
            workgroupBarrier();
        }}
        {var} = red4[t];
        workgroupBarrier();"""

    def _tiled_weight(self, L: Layer) -> str:
        """dW as a GEMM X^T dZ in 4 x 4 register tiles: per row, one vec4 of x and one of dz feed
        16 FMAs (the vec4-column form below loads two words per 4 FMAs, so at large batches it
        re-reads scratch from L2 four times as often)."""
        q, g = L.n_in // 4, L.n_out // 4
        sl = self.row_slices
        per = self._uw // sl
        folds = "".join(self._row_sum(f"a{c}") for c in range(4))
        updates = self._tile_updates(L)
        def fma(u: int) -> str:
            return "\n".join(f"                a{c} = fma(x{u}, vec4<f32>(z{u}[{c}]), a{c});" for c in range(4))
        loads = "\n".join(f"""                let x{u} = scratch4[{L.sx // 4}u + (b + {u * sl}u) * {q}u + kq];
                let z{u} = scratch4[{L.sdz // 4}u + (b + {u * sl}u) * {g}u + jq];""" for u in range(2))
        return f"""
        // dW[4kq..4kq+3, 4jq..4jq+3] = sum over rows of x[row, 4kq..]^T dz[row, 4jq..]: one 4 x 4 tile per
        // {sl} invocations, each summing every {sl}th row (two rows' loads in flight), then folded
        let i = local * {per}u + t % {per}u;
        let slice = t / {per}u;
        let jq = i % {g}u;
        let kq = min(i / {g}u, {q - 1}u);
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        let p = {L.w}u + 4u * kq * {L.n_out}u + 4u * jq;{self._tile_olds(L, f"slice == 0u && i < {q * g}u")}
        if (i < {q * g}u) {{
            var b = slice;
            for (; b + {sl}u < B; b += {2 * sl}u) {{
{loads}
{fma(0)}
{fma(1)}
            }}
            for (; b < B; b += {sl}u) {{
                let x0 = scratch4[{L.sx // 4}u + b * {q}u + kq];
                let z0 = scratch4[{L.sdz // 4}u + b * {g}u + jq];
{fma(0)}
            }}
        }}
{folds}
{STATE_MARK}        if (slice == 0u && i < {q * g}u && !frozen) {{
{updates}
        }}"""

    @property
    def _staged_gemm(self) -> bool:
        """Whether pass 2's tiled weights use the staged GEMM (_gemm_weight): a workgroup of at
        least GEMM_TILE^2 invocations, and some layer tiled."""
        t = GEMM_TILE
        return bool(t) and self._uw % (t * t) == 0 and self._uw >= t * t and any(self._tiled(L) for L in self.layers)

    def _gemm_weight(self, L: Layer) -> str:
        """dW = X^T dZ as a blocked GEMM: each workgroup owns a block of T x T vec4 tiles (4T inputs x
        4T outputs), and its invocations are S = WG / T^2 row slices of T^2 4 x 4 register tiles. The
        rows go through workgroup memory in chunks of WG / T (x in gx, dz in red4, free until the
        fold): every invocation loads one vec4 of x and one of dz a chunk (the next chunk's loads in flight while this one is summed), then sums its
        T rows of the chunk from workgroup memory, 16 FMAs per two loads. The unstaged tiles
        (_tiled_weight) read both vec4s from L2 per row and FMA."""
        t, uw = GEMM_TILE, self._uw
        S, C = uw // (t * t), uw // t
        q, g = L.n_in // 4, L.n_out // 4
        nbj = -(-g // t)
        sx, sz = L.sx // 4, L.sdz // 4
        rows = "\n".join(f"""            {{
                let x = gx[{r * S}u * {t}u + cx];
                let z = red4[{r * S}u * {t}u + cz];
{chr(10).join(f"                a{c} = fma(x, vec4<f32>(z[{c}]), a{c});" for c in range(4))}
            }}""" for r in range(C // S))
        folds = "\n".join(f"""        red4[t] = a{c};
        workgroupBarrier();
        if (slice == 0u) {{ for (var s = 1u; s < {S}u; s++) {{ a{c} += red4[s * {t * t}u + t]; }} }}
        workgroupBarrier();""" for c in range(4)) if S > 1 else ""
        updates = self._tile_updates(L)
        return f"""
        // dW[4kq..4kq+3, 4jq..4jq+3] = sum over rows of x[row, 4kq..]^T dz[row, 4jq..]: this workgroup's
        // block of {t} x {t} such tiles, {S} row slices of it, rows staged {C} at a time
        let kb = local / {nbj}u;
        let jb = local % {nbj}u;
        let slice = t / {t * t}u;
        let cx = (t % {t * t}u) / {t}u + slice * {t}u;     // this invocation's tile: x vec4 (row r: gx[r * T + ..])
        let cz = t % {t}u + slice * {t}u;
        let kq = kb * {t}u + (t % {t * t}u) / {t}u;
        let jq = jb * {t}u + t % {t}u;
        // what this invocation stages: row t / T of a chunk, x vec4 (and dz vec4) t % T of the block
        let lrow = t / {t}u;
        let lkq = kb * {t}u + t % {t}u;
        let ljq = jb * {t}u + t % {t}u;
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        var nx = vec4<f32>(0.0);
        var nz = vec4<f32>(0.0);
        let p = {L.w}u + 4u * kq * {L.n_out}u + 4u * jq;{self._tile_olds(L, f"slice == 0u && kq < {q}u && jq < {g}u")}
        if (lrow < B && lkq < {q}u) {{ nx = scratch4[{sx}u + lrow * {q}u + lkq]; }}
        if (lrow < B && ljq < {g}u) {{ nz = scratch4[{sz}u + lrow * {g}u + ljq]; }}
        for (var c0 = 0u; c0 < B; c0 += {C}u) {{
            gx[t] = nx;
            red4[t] = nz;
            workgroupBarrier();
            let row = c0 + {C}u + lrow;     // the next chunk's loads, in flight while this one is summed
            nx = vec4<f32>(0.0);
            nz = vec4<f32>(0.0);
            if (row < B && lkq < {q}u) {{ nx = scratch4[{sx}u + row * {q}u + lkq]; }}
            if (row < B && ljq < {g}u) {{ nz = scratch4[{sz}u + row * {g}u + ljq]; }}
{rows}
            workgroupBarrier();
        }}
{folds}
{STATE_MARK}        if (slice == 0u && kq < {q}u && jq < {g}u && !frozen) {{
{updates}
        }}"""

    def _tile_updates(self, L: Layer) -> str:
        """WGSL: the optimizer rule on a 4 x 4 tile's 16 weights from p (a{c}[kk]: row kk, column c)."""
        return "\n".join(f"            {self._apply(f'p + {kk * L.n_out + c}u', f'a{c}[{kk}]', 4 * kk + c)}"
                          for c in range(4) for kk in range(4))

    def _tile_olds(self, L: Layer, cond: str) -> str:
        """WGSL: the 4 x 4 tile's old weights from p (o{4 kk + c}: row kk, column c)."""
        return self._olds([f"p + {kk * L.n_out + c}u" for kk in range(4) for c in range(4)], cond)

    def _big_weight(self, L: Layer) -> str:
        q = L.n_in // 4
        sl = self.row_slices
        per = self._uw // sl
        fold = self._row_sum("acc")
        return f"""
        // dW[4kq..4kq+3, j] = sum over rows of x[row, 4kq..] * dz[row, j]: 4 weights per {sl} invocations,
        // each summing every {sl}th row, then folded in workgroup memory
        let i = local * {per}u + t % {per}u;
        let slice = t / {per}u;
        let j = i % {L.n_out}u;
        let kq = min(i / {L.n_out}u, {q - 1}u);
        let p = {L.w}u + 4u * kq * {L.n_out}u + j;{self._olds(["p"] + [f"p + {c * L.n_out}u" for c in (1, 2, 3)], f"slice == 0u && i < {q * L.n_out}u")}
        var acc = vec4<f32>(0.0);
        if (i < {q * L.n_out}u) {{
            var b = slice;
            for (; b + {3 * sl}u < B; b += {4 * sl}u) {{
                let g0 = scratch[{L.sdz}u + b * {L.n_out}u + j];
                let g1 = scratch[{L.sdz}u + (b + {sl}u) * {L.n_out}u + j];
                let g2 = scratch[{L.sdz}u + (b + {2 * sl}u) * {L.n_out}u + j];
                let g3 = scratch[{L.sdz}u + (b + {3 * sl}u) * {L.n_out}u + j];
                acc = fma(scratch4[{L.sx // 4}u + b * {q}u + kq], vec4<f32>(g0), acc);
                acc = fma(scratch4[{L.sx // 4}u + (b + {sl}u) * {q}u + kq], vec4<f32>(g1), acc);
                acc = fma(scratch4[{L.sx // 4}u + (b + {2 * sl}u) * {q}u + kq], vec4<f32>(g2), acc);
                acc = fma(scratch4[{L.sx // 4}u + (b + {3 * sl}u) * {q}u + kq], vec4<f32>(g3), acc);
            }}
            for (; b < B; b += {sl}u) {{
                acc = fma(scratch4[{L.sx // 4}u + b * {q}u + kq], vec4<f32>(scratch[{L.sdz}u + b * {L.n_out}u + j]), acc);
            }}
        }}{fold}
{STATE_MARK}        if (slice == 0u && i < {q * L.n_out}u && !frozen) {{
            {self._apply("p", "acc.x", 0)}
            {self._apply(f"p + {L.n_out}u", "acc.y", 1)}
            {self._apply(f"p + {2 * L.n_out}u", "acc.z", 2)}
            {self._apply(f"p + {3 * L.n_out}u", "acc.w", 3)}
        }}"""

    def _small(self, L: Layer, bias: bool) -> str:
        n = L.n_out if bias else L.n_in * L.n_out
        if bias:
            term = f"scratch[{L.sdz}u + b * {L.n_out}u + p]"
            dest = f"{L.b}u + p"
            what = "db[j] = sum of dz[row, j]"
        else:
            term = (f"scratch[{L.sx}u + b * {L.n_in}u + p / {L.n_out}u] * "
                    f"scratch[{L.sdz}u + b * {L.n_out}u + p % {L.n_out}u]")
            dest = f"{L.w}u + p"
            what = "dW[k, j] = sum of x[row, k] * dz[row, j]"
        return self._sum_rows(n, term, dest, what)

    def _sum_rows(self, n: int, term: str, dest: str, what: str) -> str:
        """Pass 2 for n parameters whose gradient is a sum over the rows b of `term` (WGSL of b and
        the parameter p), applied to arena element `dest`."""
        return f"""
        // {what}: 16 parameters a workgroup, {self._uw // 16} invocations splitting the rows of each
        let p = local * 16u + t % 16u;
        let slice = t / 16u;{self._olds([dest], f"slice == 0u && p < {n}u")}
        var acc = 0.0;
        if (p < {n}u) {{
            for (var b = slice; b < B; b += {self._uw // 16}u) {{ acc += {term}; }}
        }}
        red[t] = vec2<f32>(acc, 0.0);
        workgroupBarrier();
        for (var s = {self._uw // 2}u; s >= 16u; s >>= 1u) {{
            if (t < s) {{ red[t] += red[t + s]; }}
            workgroupBarrier();
        }}
{STATE_MARK}        if (slice == 0u && p < {n}u && !frozen) {{ {self._apply(dest, "red[t].x", 0)} }}"""

    def _metrics(self) -> str:
        # A compiled head leaves the counters to the trace's `advance`, the step's last dispatch.
        advance = "" if self.head else """            atomicStore(&state.step, step + 1u);
            atomicAdd(&state.run_step, 1u);"""
        return f"""
        // the step's mean loss and accuracy into the history ring, then the counters advance
        var acc = vec2<f32>(0.0);
        for (var b = t; b < B; b += {self._uw}u) {{ acc += vec2<f32>(scratch[ROWS_OFF + b * 2u], scratch[ROWS_OFF + b * 2u + 1u]); }}
        red[t] = acc;
        workgroupBarrier();
        for (var s = {self._uw // 2}u; s > 0u; s >>= 1u) {{
            if (t < s) {{ red[t] += red[t + s]; }}
            workgroupBarrier();
        }}
{STATE_MARK}{self._reset_syncs()}
        if (t == 0u) {{
            let spe = (N + B - 1u) / B;
            let n = f32(min(B, N - (step % spe) * B));
            record_step(red[0].x / n, red[0].y / n, CLASSES);
{advance}
        }}"""

    def _reset_syncs(self) -> str:
        if self.P == 1 or self.phases:
            return ""
        return f"""        for (var i = t; i < {self.sync_count}u; i += {self._uw}u) {{ atomicStore(&row_syncs[i * {SYNC_WORDS}u], 0u); }}"""

    @property
    def sync_count(self) -> int:
        return math.ceil(self.batch / self.r) * len(self.syncs)

    @property
    def _rule(self) -> str:
        """What pass 2 does with a summed gradient: the optimizer rule, or (a compiled head) store
        it for the trace's optimizer."""
        return "put_gradient" if self.head else "apply_update"

    @property
    def _preloads_old(self) -> bool:
        """Whether pass 2 loads the weights it updates before summing their gradients (UPDATE_PRELOAD;
        not for a compiled head, which only stores gradients): the rule's read of the old weight is
        then no longer a memory round trip after the sum."""
        return bool(UPDATE_PRELOAD) and not self.head

    def _olds(self, addrs: list[str], cond: str) -> str:
        """WGSL: o0, o1, ... = the arena's values at `addrs`, loaded where `cond` holds (0 elsewhere)."""
        if not self._preloads_old:
            return ""
        decl = " ".join(f"var o{i} = 0.0;" for i in range(len(addrs)))
        loads = " ".join(f"o{i} = params[{a}];" for i, a in enumerate(addrs))
        return f"""
        {decl}     // the old weights, loaded while the rows are summed
        if ({cond}) {{ {loads} }}"""

    def _apply(self, dest: str, grad: str, old: int) -> str:
        """WGSL: the rule for arena element `dest` with gradient `grad` (its old value in o{old})."""
        if self._preloads_old:
            return f"apply_update_from({dest}, o{old}, {grad}, step, lr);"
        return f"{self._rule}({dest}, {grad}, step, lr);"

    def _state_loads(self, counter: str, frozen: str | None = None) -> str:
        """WGSL: `step` (state.<counter>) and, with `frozen`, the update's guard, read by one invocation
        and handed to the workgroup (UNIFORM_STATE) or read by every invocation."""
        if not UNIFORM_STATE:
            return f"    let step = atomicLoad(&state.{counter});" + (f"\n    let frozen = {frozen};" if frozen else "")
        out = f"""    if (t == 0u) {{ wg_step = atomicLoad(&state.{counter});{" wg_frozen = u32(" + frozen + ");" if frozen else ""} }}
    let step = workgroupUniformLoad(&wg_step);"""
        return out + ("\n    let frozen = workgroupUniformLoad(&wg_frozen) != 0u;" if frozen else "")

    def _update(self) -> str:
        # A compiled head stores gradients whatever the flags: the trace's optimizer checks them.
        frozen = "false" if self.head else "atomicLoad(&state.flags) != 0u || hyper.frozen == 1u"
        # Each block reads the step counter and the guard where it first needs them (STATE_MARK: after
        # its sums), so that round trip overlaps the sums' loads instead of preceding them.
        state = "\n".join("    " + ln for ln in self._state_loads("step_snap", frozen).split("\n")) + \
            "\n        let lr = learning_rate(hyper, step);"
        branches, start = [], 0
        for name, groups, body in self._blocks():
            if STATE_MARK in body and LATE_STATE:
                body = body.replace(STATE_MARK, state + "\n", 1)
            else:
                body = "\n" + state + body.replace(STATE_MARK, "")
            branches.append(f"""    if (wg >= {start}u && wg < {start + groups}u) {{   // {name}
        let local = wg - {start}u;{body}
        return;
    }}""")
            start += groups
        put = "" if not self.head else """
fn put_gradient(p: u32, g: f32, step: u32, lr: f32) { grads[p] = g; }
"""
        return put + f"""
{self._pass_head("update", 256, wg3="workgroup_id", lid3="local_invocation_id", nwg="num_workgroups")}
    let wg = wg3.x + wg3.y * nwg.x;
    let t = lid3.x;
{chr(10).join(branches)}
}}
"""
