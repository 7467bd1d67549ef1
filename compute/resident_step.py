"""The resident step: an MLP's training steps, many in one dispatch, every SM busy at batch 32.

The compiled step (step_compiler.py) runs a step as two dispatches, pass 1 one workgroup
per batch row: at batch 32 it uses 32 of the H100's 132 SMs, each streaming every weight
from L2, and the CPU encodes every step (8-19 us of wgpu-native a step, as much as the GPU
spends). Here G workgroups, all resident at once, split every layer by output units and
run the whole batch; dependent phases meet at a barrier across the grid
(shaders/resident_step.wgsl says how, and what it costs: benchmarks/grid_barrier.py), and
one dispatch runs a whole chunk of steps, so the CPU encodes one copy and one dispatch
per chunk.

Where the workgroups cannot be known to be resident together (a CPU adapter: lavapipe
runs workgroups on a few threads), the same generated phases run as one dispatch each
(`persistent=False`); the tests check both against the autograd trace.

Covers Linear / ReLU MLPs with at least one hidden layer (no dropout); the compiled step
serves the rest.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np

from .arch import Dropout
from .budget import Limits, buffer_bytes
from .device import get_device
from .program import Dispatch
from .shaders import load_wgsl
from .step_compiler import StepDoesNotFit, plan_layers, step_resources, supported

WG = 256                  # invocations a workgroup
GROUPS = 128              # workgroups on a GPU: one per SM of an H100 (132), all resident
LAUNCH_BYTES = 4096        # the chunk's words: steps, arrivals, stalled, then 16 release flags 128 bytes apart
MAX_CHUNK = 4096          # most steps one dispatch runs (a longer chunk is split)
SPIN_LIMIT = 1 << 22      # polls before a barrier gives up (a GPU that cannot hold G workgroups at once)
STAGE_MAX = 8192          # floats of the workgroup's staging array
ABLATIONS = ("f0.images", "f0.columns", "f0.sums", "top.stage", "top.logits", "top.softmax", "top.metrics",
             "top.dz", "u.h0", "u.last", "u.apply", "sync")
COPIES = 16               # copies of what every workgroup reads (8 readers an address at 128 workgroups)


def resident_supported(model) -> bool:
    """Linear / ReLU MLPs with a hidden layer and no dropout."""
    return (supported(model) and not any(isinstance(l, Dropout) for l in model.layers)
            and len(plan_layers(model, 0)) >= 2)


class ResidentProgram:
    """Encodes n steps (Program's interface): the launch words cleared and the chunk's step
    count copied in, then the persistent dispatch, or (phase mode) the phases' dispatches.
    `dispatches` are one step's."""

    def __init__(self, step: "ResidentStep"):
        self.step = step
        self.label = "resident_step"

    @property
    def dispatches(self) -> list:
        return self.step.chunk_dispatches(1)

    def __len__(self) -> int:
        return len(self.dispatches)

    def encode(self, encoder, repeat: int = 1, timestamps=None) -> None:
        s = self.step
        while repeat > 0:
            n = min(repeat, MAX_CHUNK)
            encoder.clear_buffer(s.launch)                  # the barrier's counter and release flags
            encoder.copy_buffer_to_buffer(s.table, 16 * n, s.launch, 0, 16)
            cpass = encoder.begin_compute_pass(timestamp_writes=timestamps) if timestamps else encoder.begin_compute_pass()
            pipe = None
            for d in s.chunk_dispatches(n):
                if d.pipeline is not pipe:
                    cpass.set_pipeline(d.pipeline)
                    pipe = d.pipeline
                    cpass.set_bind_group(0, d.bind_group)
                cpass.dispatch_workgroups(*d.workgroups)
            cpass.end()
            repeat -= n
            timestamps = None


class ResidentStep:
    def __init__(self, model, data, metrics, optimizer, recipe, groups: int | None = None,
                 persistent: bool | None = None, copies: int | None = None, wg: int | None = None,
                 ablate: frozenset = frozenset()):
        if not resident_supported(model):
            raise ValueError("the resident step covers Linear / ReLU MLPs with a hidden layer and no dropout")
        dev = get_device()
        self.persistent = (not dev.is_cpu) if persistent is None else persistent
        self.wg = wg or WG
        # Profiling only (benchmarks/resident_profile.py --ablate): parts of the phases left out,
        # the step then wrong but its time without them measured. ABLATIONS names them.
        unknown = set(ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablation {sorted(unknown)} ({', '.join(ABLATIONS)})")
        self.ablate = frozenset(ablate)
        self.groups = groups or (GROUPS if not dev.is_cpu else 3)
        self.batch = b = recipe.batch_size
        self.layers = plan_layers(model, recipe.seed)
        arena = model.arena
        for L in self.layers:
            L.w, L.b = arena.offsets[f"{L.index}.weight"], arena.offsets[f"{L.index}.bias"]
        self.hidden, self.top = self.layers[:-1], self.layers[-1]
        self.classes = self.top.n_out
        self.pixels = data.input_size
        # exchange, one parity block: each hidden layer's activations and output gradient, dlogits
        # (COPIES copies of each: a value every workgroup reads is read from one of several copies,
        # atomic loads of one address by many SMs queue: benchmarks/grid_barrier.py --copies), then
        # the last layer's weights and bias, copied out by their owners for every workgroup to read
        self.copies = copies or (COPIES if not dev.is_cpu else 2)
        off = 0
        self.a_off, self.dz_off = [], []
        for L in self.hidden:
            self.a_off.append(off)
            off += self.copies * b * L.n_out
            self.dz_off.append(off)
            off += self.copies * b * L.n_out
        self.dl_off = off
        self.half = off + self.copies * b * self.classes
        self.wt_size = (self.top.n_in + 1) * self.classes
        exchange_floats = 2 * self.half + self.copies * self.wt_size
        # workgroup memory: red4 (WG vec4s), dl (B * C), image rows (IMG_ROW words and 4 words of
        # row facts each: the whole batch when it fits, kept from the forward to the update), and
        # the staging array (weight columns, input rows; every phase's smallest share must fit)
        self.img_row = (self.pixels + 6) // 4          # a row starts anywhere in its first word
        C = self.classes
        limit = dev.limits.get("max-compute-workgroup-storage-size", 16384)
        free = (limit - 16 * self.wg - 4 * b * C - 64) // 4
        H = self.hidden
        need = max([self._group(H[0].n_out) * H[0].n_in, self.top.n_in * (C + 1) + C, 4 * b, b * C + b]
                   + [self._group(L.n_out) * L.n_in + L.n_in + 4 * b for L in H[1:]]
                   + [self._group(L.n_out) * N.n_out + N.n_out for L, N in zip(H, H[1:])])
        per_row = self.img_row + 4
        if b <= self.wg and b * per_row <= free - need:
            self.img_rows = b
        else:
            self.img_rows = max(1, min(b, self.wg, (free - need) // (2 * per_row)))
        self.stage = min(STAGE_MAX, free - self.img_rows * per_row)
        if self.stage < need:
            raise StepDoesNotFit(f"the resident step needs {4 * (need + per_row) + 16 * self.wg + 4 * b * C:,} bytes of "
                                 f"workgroup memory, above this GPU's {limit:,}")
        limits = Limits.current()
        if buffer_bytes(4 * exchange_floats) > limits.binding:
            raise StepDoesNotFit("the resident step's exchange buffer is above the binding limit")
        self.exchange = dev.buffer(4 * exchange_floats, "resident.exchange")
        self.launch = dev.buffer(LAUNCH_BYTES, "resident.launch")   # steps, arrivals, stalled; flags
        table = np.zeros((MAX_CHUNK + 1, 4), np.uint32)
        table[:, 0] = np.arange(MAX_CHUNK + 1)
        self.table = dev.upload(table, "resident.steps")
        split = data.train
        self.source = load_wgsl("resident_step.wgsl") + "\n" + self.generate(split, recipe)
        digest = hashlib.sha1(self.source.encode()).hexdigest()[:16]
        key = f"resident_step[{model.arch.text}|b{b}|g{self.groups}|n{split.n}|{digest}]"

        def pipe(entry):
            return dev.pipeline(key, entry, source=self.source)

        first = pipe("steps" if self.persistent else "phase_first")
        group = dev.bind_group(first, step_resources(optimizer, metrics, arena, data)
                               + [self.exchange, metrics.history, arena.buffer, self.launch])
        g = (self.groups, 1, 1)
        if self.persistent:
            self._persistent = Dispatch(first, group, g, "resident:steps")
        else:
            phases = [f"phase_f{h}" for h in range(1, len(self.hidden))] + ["phase_top"] + \
                     [f"phase_b{h}" for h in range(len(self.hidden) - 2, -1, -1)]
            self._first = Dispatch(first, group, g, "resident:first")
            self._uf0 = Dispatch(pipe("phase_uf0"), group, g, "resident:uf0")
            self._rest = [Dispatch(pipe(p), group, g, f"resident:{p}") for p in phases]
            self._last = Dispatch(pipe("phase_u"), group, g, "resident:u")
        self.program = ResidentProgram(self)

    def chunk_dispatches(self, n: int) -> list:
        if self.persistent:
            return [self._persistent]
        return [self._first, *self._rest] + [self._uf0, *self._rest] * (n - 1) + [self._last]

    # -- the generated WGSL ----------------------------------------------------------------------------
    def generate(self, split, recipe) -> str:
        b, G = self.batch, self.groups
        self.words = recipe.shift == 0 and self.pixels % 4 == 0      # whole words of 4 pixels, none shifted
        consts = "\n".join([
            f"const B: u32 = {b}u;", f"const N: u32 = {split.n}u;", f"const SPE: u32 = {math.ceil(split.n / b)}u;",
            f"const G: u32 = {G}u;", f"const WG: u32 = {self.wg}u;", f"const PIXELS: u32 = {self.pixels}u;",
            f"const IMAGE_W: u32 = {split.width}u;", f"const SHIFT: u32 = {recipe.shift}u;",
            f"const SEED: u32 = {recipe.seed}u;", f"const CLASSES: u32 = {self.classes}u;",
            f"const XHALF: u32 = {self.half}u;", f"const SPIN_LIMIT: u32 = {SPIN_LIMIT}u;",
            f"const COPIES: u32 = {self.copies}u;", f"const WT: u32 = {2 * self.half}u;        // the last layer's copies",
            f"const WT_SIZE: u32 = {self.wt_size}u;",
            f"const IMG_ROW: u32 = {self.img_row}u;       // words a staged image row",
            "var<workgroup> red4: array<vec4<f32>, WG>;",
            f"var<workgroup> dl: array<f32, {b * self.classes}>;      // the batch's logits, then dlogits",
            f"var<workgroup> stage: array<f32, {self.stage}>;",
            f"var<workgroup> img: array<u32, {self.img_rows * self.img_row}>;   // {self.img_rows} image rows",
            f"var<workgroup> row_word: array<u32, {self.img_rows}>;",
            f"var<workgroup> row_off: array<u32, {self.img_rows}>;",
            f"var<workgroup> row_shift: array<vec2<i32>, {self.img_rows}>;",
            "var<workgroup> sh_step: u32;",
            "var<workgroup> sh_metrics: vec2<f32>;   // the step's mean loss and accuracy (workgroup METRICS)",
            f"const METRICS: u32 = {G - 1}u;         // the workgroup that records the metrics",
            "var<workgroup> sh_n: u32;",
        ])
        parts = [consts]
        for h in range(len(self.hidden)):
            parts.append(self._forward(h))
        parts.append(self._top())
        for h in range(len(self.hidden) - 2, -1, -1):
            parts.append(self._backward(h))
        for h in range(len(self.hidden)):
            parts.append(self._update_hidden(h))
        parts.append(self._update_last())
        parts.append(self._entry_points())
        return "\n".join(parts)

    def _own(self, n: int) -> int:
        """Units of an n-wide layer a workgroup owns (w, w + G, ...), at most."""
        return math.ceil(n / self.groups)

    def _group(self, n: int) -> int:
        """Own units a pass of a phase handles together (the lanes of its vec4 sums)."""
        return min(4, self._own(n))

    def _rows(self, k: int, rb: int | None = None) -> tuple[int, int, int]:
        """(rows a block, slices a row, terms a slice) for sums of k terms over the batch rows."""
        rb = rb or min(self.batch, self.wg)
        s = max(1, min(self.wg // rb, k))
        return rb, s, math.ceil(k / s)

    def _fit(self, row: int, reserved: int) -> int:
        """Rows of `row` floats the staging array holds after `reserved` floats (at most WG)."""
        return max(1, min(self.batch, self.wg, (self.stage - reserved) // row))

    def _pending(self, phase: str) -> list[str]:
        """The updates a phase applies (each the first phase after every read of the old weights)."""
        nh = len(self.hidden)
        if phase == "u":
            out = ["update_h0(w, t, step, keep)", "update_h1(w, t, step)" if nh >= 2 else "update_last(w, t, step)"]
            return [p for p in out if not (("u.h0" in self.ablate and p.startswith("update_h0"))
                                           or ("u.last" in self.ablate and p.startswith("update_last")))]
        x = int(phase[1:])             # phase b{x}
        return ["update_last(w, t, step)"] if x == nh - 2 else [f"update_h{x + 2}(w, t, step)"]

    @staticmethod
    def _head() -> str:
        return """    let base = (step % SPE) * B;
    let nvalid = min(B, N - base);
    let par = (step & 1u) * XHALF;
    let cp = w % COPIES;                 // the copy this workgroup reads"""

    def _fold4(self, s: int) -> str:
        """WGSL declaring z, the sum of a row's s slices (red4[t .. t + s), t its first slice),
        after _tree(s)."""
        if s > 4 and s & (s - 1) == 0:
            return "let z = red4[t];"
        return f"var z = red4[t]; for (var i = 1u; i < {s}u; i++) {{ z += red4[t + i]; }}"

    @staticmethod
    def _tree(s: int) -> str:
        """Halves a row's s slices in log2(s) barriers, where s is a power of 2 above 4."""
        if not (s > 4 and s & (s - 1) == 0):
            return ""
        return f"""
            for (var m = {s // 2}u; m > 0u; m >>= 1u) {{
                if (sl < m) {{ red4[t] += red4[t + m]; }}
                workgroupBarrier();
            }}"""

    @staticmethod
    def _lanes(g: int, at) -> str:
        """vec4 of the g own units' values (the other lanes 0) given WGSL for lane q."""
        return "vec4<f32>(" + ", ".join(at(q) if q < g else "0.0" for q in range(4)) + ")"

    @staticmethod
    def _write_units(n: int, value: str) -> str:
        """WGSL running `value` for each own unit u of this pass (lanes q: u = u0 + q G < n)."""
        return f"""for (var q = 0u; q < 4u; q++) {{
                    let u = u0 + q * G;
                    if (u < {n}u) {{ {value} }}
                }}"""

    def _block_sums(self, rb: int, s: int, valid: str, inner: str, n: int, write: str) -> str:
        """One block of rows b0 .. b0 + rb: invocation t sums slice t % s of row t / s (`inner`
        adds to the vec4 `acc`, one lane an own unit) where `valid`, the slices are folded, and
        `write` (WGSL of z[q], u, b) runs for each own unit of each row."""
        return f"""            let bl = t / {s}u;
            let sl = t % {s}u;
            let b = b0 + bl;
            var acc = vec4<f32>(0.0);
            if (t < {rb * s}u && {valid}) {{{inner}
            }}
            red4[t] = acc;
            workgroupBarrier();{self._tree(s)}
            if (t < {rb * s}u && sl == 0u && b < B) {{
                {self._fold4(s)}
                {self._write_units(n, write)}
            }}"""

    def _forward(self, h: int) -> str:
        L = self.hidden[h]
        n, k = L.n_out, L.n_in
        g = self._group(n)
        w4 = self._lanes(g, lambda q: f"stage[{q * k}u + k]")
        act = "max(v, 0.0)" if L.relu else "v"
        if h == 0:
            rb = min(self.img_rows, self.batch)
            whole = rb >= self.batch
            if self.words:
                kw = k // 4
                _, s, ks = self._rows(kw, rb)
                terms = "\n".join(f"""                        {{ let k = 4u * kw + {r}u;
                          acc += f32((word >> {8 * r}u) & 0xffu) * (1.0 / 255.0) * {w4}; }}""" for r in range(4))
                inner = f"""
                    for (var kw = sl * {ks}u; kw < min(sl * {ks}u + {ks}u, {kw}u); kw++) {{
                        let word = img[bl * IMG_ROW + kw];
{terms}
                    }}"""
            else:
                _, s, ks = self._rows(k, rb)
                inner = f"""
                    for (var k = sl * {ks}u; k < min(sl * {ks}u + {ks}u, {k}u); k++) {{
                        acc += staged_pixel(bl, k) * {w4};
                    }}"""
            rows = f"min({rb}u, B - b0)"
            stage_once = "\n    stage_images(base, nvalid, 0u, B, step, t);" if whole else ""
            stage_block = "" if whole else f"\n            stage_images(base, nvalid, b0, {rows}, step, t);"
            if "f0.images" in self.ablate:
                stage_once = stage_block = ""
            if "f0.sums" in self.ablate:
                inner = ""
            valid = "b < nvalid"
            src = "the staged images"
        else:
            rb = self._fit(k, g * k)
            _, s, ks = self._rows(k, rb)
            xs = g * k
            inner = f"""
                    for (var k = sl * {ks}u; k < min(sl * {ks}u + {ks}u, {k}u); k++) {{
                        acc += stage[{xs}u + bl * {k}u + k] * {w4};
                    }}"""
            stage_once = ""
            stage_block = f"""
            workgroupBarrier();
            stage_exchange(par + {self.a_off[h - 1]}u + cp * {self.batch * k}u + b0 * {k}u, {xs}u, min({rb}u, B - b0) * {k}u, t);
            workgroupBarrier();"""
            valid = "b < B"
            src = f"layer {self.hidden[h - 1].index}'s staged output rows"
        return f"""
// layer {L.index} forward ({k} -> {n}) from {src}: this workgroup's units ({g} at a time), every
// row; {s} slices of the sum a row, folded in workgroup memory
fn forward_h{h}(w: u32, t: u32, step: u32) {{
{self._head()}{stage_once}
    for (var j0 = 0u; j0 < {self._own(n)}u; j0 += {g}u) {{
        let u0 = w + G * j0;
        workgroupBarrier();
        {"" if h == 0 and "f0.columns" in self.ablate else f"stage_columns({L.w}u, {k}u, {n}u, u0, {g}u, t);"}
        workgroupBarrier();
        for (var b0 = 0u; b0 < B; b0 += {rb}u) {{{stage_block}
{self._block_sums(rb, s, valid, inner, n, f"let v = z[q] + params[{L.b}u + u]; xput_copies(par + {self.a_off[h]}u + b * {n}u + u, {self.batch * n}u, {act});")}
            workgroupBarrier();
        }}
    }}
}}"""

    def _top(self) -> str:
        T, C = self.top, self.classes
        k = T.n_in
        h = len(self.hidden) - 1
        prev = self.hidden[-1]
        wsz = k * C
        rbt = self._fit(k, wsz + C)
        grad = "select(0.0, d, a > 0.0)" if prev.relu else "d"
        k4 = k // 4 * 4
        tail = f"\n                for (var kk = {k4}u; kk < {k}u; kk++) {{ z += stage[a0 + kk] * stage[kk * {C}u + j]; }}" if k4 < k else ""
        return f"""
// the last layer ({k} -> {C}) for every row in every workgroup, softmax / cross-entropy,
// dlogits = (p - onehot(y)) / n; then the top hidden layer's output gradient, own units
fn top(w: u32, t: u32, step: u32) {{
{self._head()}
    workgroupBarrier();
    {"" if "top.stage" in self.ablate else "stage_exchange(WT + cp * WT_SIZE, 0u, WT_SIZE, t);"}
    for (var b0 = 0u; b0 < B; b0 += {rbt}u) {{
        workgroupBarrier();
        {"" if "top.stage" in self.ablate else f"stage_exchange(par + {self.a_off[h]}u + cp * {self.batch * k}u + b0 * {k}u, {wsz + C}u, min({rbt}u, B - b0) * {k}u, t);"}
        workgroupBarrier();
        for (var i = t; i < {"0u" if "top.logits" in self.ablate else f"min({rbt}u, B - b0) * {C}u"}; i += WG) {{
            let bl = i / {C}u;
            let j = i % {C}u;
            let a0 = {wsz + C}u + bl * {k}u;
            var z4 = vec4<f32>(0.0);
            for (var kk = 0u; kk < {k4}u; kk += 4u) {{
                z4 += vec4<f32>(stage[a0 + kk], stage[a0 + kk + 1u], stage[a0 + kk + 2u], stage[a0 + kk + 3u]) *
                      vec4<f32>(stage[kk * {C}u + j], stage[(kk + 1u) * {C}u + j], stage[(kk + 2u) * {C}u + j],
                                stage[(kk + 3u) * {C}u + j]);
            }}
            var z = stage[{wsz}u + j] + (z4.x + z4.y) + (z4.z + z4.w);{tail}
            dl[(b0 + bl) * {C}u + j] = z;
        }}
    }}
    workgroupBarrier();
    var ls = vec2<f32>(0.0);
    for (var b = t; b < {"0u" if "top.softmax" in self.ablate else "B"}; b += WG) {{
        let z0 = b * {C}u;
        if (b < nvalid) {{
            let s = perm[base + b];
            let y = byte_of(labels[s >> 2u], s);
            var m = dl[z0];
            var best = 0u;
            for (var c = 1u; c < {C}u; c++) {{ if (dl[z0 + c] > m) {{ m = dl[z0 + c]; best = c; }} }}
            var sum = 0.0;
            for (var c = 0u; c < {C}u; c++) {{ sum += exp(dl[z0 + c] - m); }}
            let loss = log(sum) + m - dl[z0 + y];
            if (w == METRICS && !is_finite(loss)) {{ atomicOr(&state.flags, FLAG_NONFINITE); }}
            ls += vec2<f32>(loss, select(0.0, 1.0, best == y));
            for (var c = 0u; c < {C}u; c++) {{
                dl[z0 + c] = (exp(dl[z0 + c] - m) / sum - select(0.0, 1.0, c == y)) / f32(nvalid);
            }}
        }} else {{
            for (var c = 0u; c < {C}u; c++) {{ dl[z0 + c] = 0.0; }}
        }}
    }}
    red4[t] = vec4<f32>(ls, 0.0, 0.0);
    workgroupBarrier();
    for (var s = {"0u" if "top.metrics" in self.ablate else "WG / 2u"}; s > 0u; s >>= 1u) {{
        if (t < s) {{ red4[t] += red4[t + s]; }}
        workgroupBarrier();
    }}
    // the step's mean loss and accuracy, recorded by workgroup METRICS while it waits at the
    // next barrier (record_metrics): its chain of atomics then delays no one
    if (w == METRICS && t == 0u) {{ sh_metrics = red4[0].xy / f32(nvalid); }}
    if (w < COPIES) {{       // every workgroup has dlogits: the first COPIES publish a copy each
        for (var i = t; i < {self.batch * C}u; i += WG) {{ xput(par + {self.dl_off}u + w * {self.batch * C}u + i, dl[i]); }}
    }}
    for (var j = 0u; j < {0 if "top.dz" in self.ablate else self._own(k)}u; j++) {{
        let u = w + G * j;
        if (u < {k}u) {{
            for (var b = t; b < B; b += WG) {{
                var d = 0.0;
                for (var c = 0u; c < {C}u; c++) {{ d += dl[b * {C}u + c] * stage[u * {C}u + c]; }}
                let a = xget(par + {self.a_off[h]}u + b * {k}u + u);
                xput_copies(par + {self.dz_off[h]}u + b * {k}u + u, {self.batch * k}u, {grad});
            }}
        }}
    }}
    workgroupBarrier();
}}"""

    def _backward(self, h: int) -> str:
        """Output gradient of hidden layer h, own units u: dz[b, u] = relu'(a) sum_j dz'[b, j] W'[u, j]."""
        L, nxt = self.hidden[h], self.hidden[h + 1]
        n, n1 = L.n_out, nxt.n_out
        g = self._group(n)
        rb = self._fit(n1, g * n1)
        _, s, ks = self._rows(n1, rb)
        xs = g * n1
        grad = "select(0.0, z[q], a > 0.0)" if L.relu else "z[q]"
        pending = "".join(f"\n    {p};" for p in self._pending(f"b{h}"))
        rows_w = "".join(f"""
        stage_shared_params({nxt.w}u + min(u0 + {q}u * G, {n - 1}u) * {n1}u, {q * n1}u, {n1}u, t);""" for q in range(g))
        w4 = self._lanes(g, lambda q: f"stage[{q * n1}u + j]")
        inner = f"""
                for (var j = sl * {ks}u; j < min(sl * {ks}u + {ks}u, {n1}u); j++) {{
                    acc += stage[{xs}u + bl * {n1}u + j] * {w4};
                }}"""
        return f"""
// layer {L.index}'s output gradient from layer {nxt.index}'s (staged rows), own units; first the
// pending updates
fn backward_h{h}(w: u32, t: u32, step: u32) {{
{self._head()}{pending}
    for (var j0 = 0u; j0 < {self._own(n)}u; j0 += {g}u) {{
        let u0 = w + G * j0;
        workgroupBarrier();{rows_w}
        for (var b0 = 0u; b0 < B; b0 += {rb}u) {{
            workgroupBarrier();
            stage_exchange(par + {self.dz_off[h + 1]}u + cp * {self.batch * n1}u + b0 * {n1}u, {xs}u, min({rb}u, B - b0) * {n1}u, t);
            workgroupBarrier();
{self._block_sums(rb, s, "b < B", inner, n, f"let a = xget(par + {self.a_off[h]}u + b * {n}u + u); xput_copies(par + {self.dz_off[h]}u + b * {n}u + u, {self.batch * n}u, {grad});")}
        }}
    }}
    workgroupBarrier();
}}"""

    def _update_hidden(self, h: int) -> str:
        """Own columns u of hidden layer h: dW[k, u] = sum_b x[b, k] dz[b, u], db[u] = sum_b dz[b, u]."""
        L = self.hidden[h]
        n, k = L.n_out, L.n_in
        g = self._group(n)
        bsz = 4 * self.batch
        d4 = "vec4<f32>(stage[b * 4u], stage[b * 4u + 1u], stage[b * 4u + 2u], stage[b * 4u + 3u])"
        apply = lambda kk, acc: f"""for (var q = 0u; q < {g}u; q++) {{
                    let u = u0 + q * G;
                    if (u < {n}u) {{ apply_update({L.w}u + ({kk}) * {n}u + u, {acc}[q], step, lr); }}
                }}"""
        if h == 0 and self.words:
            slots = math.ceil(k // 4 / self.wg)
            decl = " ".join(f"var g{i}_{r} = vec4<f32>(0.0);" for i in range(slots) for r in range(4))
            accum = "\n".join(f"""                if (t + {i * self.wg}u < {k // 4}u) {{
                    let word = img[bl * IMG_ROW + t + {i * self.wg}u];
""" + "\n".join(f"                    g{i}_{r} += f32((word >> {8 * r}u) & 0xffu) * (1.0 / 255.0) * d;" for r in range(4))
                + "\n                }" for i in range(slots))
            updates = "\n".join(f"""            if (t + {i * self.wg}u < {k // 4}u) {{
""" + "\n".join(f"""                {apply(f"4u * (t + {i * self.wg}u) + {r}u", f"g{i}_{r}")}""" for r in range(4)) + "\n            }"
                for i in range(slots))
        else:
            slots = math.ceil(k / self.wg)
            decl = " ".join(f"var g{i} = vec4<f32>(0.0);" for i in range(slots))
            if h == 0:
                x = lambda i: f"staged_pixel(bl, t + {i * self.wg}u)"
            else:
                x = lambda i: f"stage[{bsz}u + bl * {k}u + t + {i * self.wg}u]"
            accum = "\n".join(f"                if (t + {i * self.wg}u < {k}u) {{ g{i} += {x(i)} * d; }}" for i in range(slots))
            updates = "\n".join(f"""            if (t + {i * self.wg}u < {k}u) {{
                {apply(f"t + {i * self.wg}u", f"g{i}")}
            }}""" for i in range(slots))
        if h == 0:
            rb = min(self.img_rows, self.batch)
            restage = f"if (!(keep && {'true' if rb >= self.batch else 'false'})) {{ stage_images(base, nvalid, b0, min({rb}u, B - b0), step, t); }}"
            sig, what = "keep: bool", "the staged images (still there from this step's forward when `keep`)"
        else:
            rb = self._fit(k, bsz)
            restage = f"""workgroupBarrier();
            stage_exchange(par + {self.a_off[h - 1]}u + cp * {self.batch * k}u + b0 * {k}u, {bsz}u, min({rb}u, B - b0) * {k}u, t);
            workgroupBarrier();"""
            sig, what = "", f"layer {self.hidden[h - 1].index}'s staged output rows"
        return f"""
// layer {L.index}'s update, own columns, from {what}
fn update_h{h}(w: u32, t: u32, step: u32{', ' + sig if sig else ''}) {{
{self._head()}
    let lr = learning_rate(hyper, step);
    let frozen = atomicLoad(&state.flags) != 0u || hyper.frozen == 1u;
    for (var j0 = 0u; j0 < {self._own(n)}u; j0 += {g}u) {{
        let u0 = w + G * j0;
        workgroupBarrier();
        for (var i = t; i < B * 4u; i += WG) {{
            let b = i / 4u;
            let u = u0 + (i % 4u) * G;
            stage[i] = select(0.0, xget(par + {self.dz_off[h]}u + b * {n}u + min(u, {n - 1}u)), u < {n}u && i % 4u < {g}u && b < nvalid);
        }}
        workgroupBarrier();
        {decl}
        for (var b0 = 0u; b0 < nvalid; b0 += {rb}u) {{
            {restage}
            for (var bl = 0u; bl < min({rb}u, nvalid - b0); bl++) {{
                let b = b0 + bl;
                let d = {d4};
{accum}
            }}
            workgroupBarrier();
        }}
        if (!frozen{" && false" if "u.apply" in self.ablate else ""}) {{
{updates}
        }}
        if (t < {g}u && !frozen) {{
            let u = u0 + t * G;
            if (u < {n}u) {{
                var gb = 0.0;
                for (var b = 0u; b < nvalid; b++) {{ gb += stage[b * 4u + t]; }}
                apply_update({L.b}u + u, gb, step, lr);
            }}
        }}
    }}
    workgroupBarrier();
}}"""

    def _update_last(self) -> str:
        """Own rows u of the last layer (u: an own unit of the top hidden layer), and (workgroup 0) its bias."""
        T, C, b = self.top, self.classes, self.batch
        k = T.n_in
        h = len(self.hidden) - 1
        return f"""
// the last layer's update: own rows, the bias in workgroup 0
fn update_last(w: u32, t: u32, step: u32) {{
{self._head()}
    let lr = learning_rate(hyper, step);
    let frozen = atomicLoad(&state.flags) != 0u || hyper.frozen == 1u;
    workgroupBarrier();
    stage_exchange(par + {self.dl_off}u + cp * {b * C}u, 0u, {b * C}u, t);
    for (var j = 0u; j < {self._own(k)}u; j++) {{
        let u = w + G * j;
        for (var i = t; i < B; i += WG) {{ stage[{b * C}u + i] = xget(par + {self.a_off[h]}u + i * {k}u + min(u, {k - 1}u)); }}
        workgroupBarrier();
        if (u < {k}u && !frozen) {{
            for (var c = t; c < {C}u; c += WG) {{
                var g = 0.0;
                for (var r = 0u; r < nvalid; r++) {{ g += stage[{b * C}u + r] * stage[r * {C}u + c]; }}
                apply_update({T.w}u + u * {C}u + c, g, step, lr);
            }}
        }}
        workgroupBarrier();
    }}
    if (w == 0u && !frozen) {{
        for (var c = t; c < {C}u; c += WG) {{
            var g = 0.0;
            for (var r = 0u; r < nvalid; r++) {{ g += stage[r * {C}u + c]; }}
            apply_update({T.b}u + c, g, step, lr);
        }}
    }}
    publish_top(w, t);
}}

// this workgroup's rows of the last layer (and workgroup 0: its bias) into every copy the
// other workgroups read in `top`
fn publish_top(w: u32, t: u32) {{
    storageBarrier();
    for (var j = 0u; j < {self._own(k)}u; j++) {{
        let u = w + G * j;
        if (u < {k}u) {{
            for (var i = t; i < COPIES * {C}u; i += WG) {{
                let c = i % {C}u;
                xput(WT + (i / {C}u) * WT_SIZE + u * {C}u + c, params[{T.w}u + u * {C}u + c]);
            }}
        }}
    }}
    if (w == 0u) {{
        for (var i = t; i < COPIES * {C}u; i += WG) {{
            xput(WT + (i / {C}u) * WT_SIZE + {k * C}u + i % {C}u, params[{T.b}u + i % {C}u]);
        }}
    }}
    workgroupBarrier();
}}"""

    def _entry_points(self) -> str:
        nh = len(self.hidden)
        u = "".join(f"\n    {p};" for p in self._pending("u"))
        seq = [f"forward_h{h}" for h in range(nh)] + ["top"] + [f"backward_h{h}" for h in range(nh - 2, -1, -1)]
        def sync(p):
            return "" if "sync" in self.ablate else f"\n        grid_sync(w, t, k, {'true' if p == 'top' else 'false'}); k += 1u;"
        body = "\n".join(f"        {p}(w, t, step);{sync(p)}" for p in seq)
        single = "\n".join(f"""
@compute @workgroup_size(WG)
fn phase_{p.replace('forward_h', 'f').replace('backward_h', 'b')}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {{
    let w = wid.x;
    if (t == 0u) {{ sh_step = atomicLoad(&state.step_snap); }}
    let step = workgroupUniformLoad(&sh_step);
    {p}(w, t, step);{self._advance() if p == seq[-1] else ""}{self._record() if p == "top" else ""}
}}""" for p in seq[1:])
        return f"""
// what the first phase of a step does after the previous step's pending updates
fn pending_u(w: u32, t: u32, step: u32, keep: bool) {{{u}
    storageBarrier();
}}

// A chunk of launch[0] steps in one dispatch (launch[1], the barrier's counter, starts at 0).
@compute @workgroup_size(WG)
fn steps(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {{
    let w = wid.x;
    if (t == 0u) {{ sh_n = atomicLoad(&launch[0]); sh_step = atomicLoad(&state.step); }}
    let n = workgroupUniformLoad(&sh_n);
    let start = workgroupUniformLoad(&sh_step);
    var k = 0u;
    publish_top(w, t);
    for (var i = 0u; i < n; i++) {{
        let step = start + i;
        if (i > 0u) {{ pending_u(w, t, step - 1u, true); }}
{body}
    }}
    if (n > 0u) {{
        pending_u(w, t, start + n - 1u, true);
        if (w == 0u && t == 0u) {{
            atomicStore(&state.step_snap, start + n - 1u);
            atomicStore(&state.step, start + n);
            if (atomicLoad(&launch[2]) != 0u) {{ atomicOr(&state.flags, FLAG_STALLED); }}
        }}
    }}
}}

// Phase mode: the same phases a dispatch each.
@compute @workgroup_size(WG)
fn phase_first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {{
    let w = wid.x;
    if (t == 0u) {{ sh_step = atomicLoad(&state.step); }}
    let step = workgroupUniformLoad(&sh_step);
    if (w == 0u && t == 0u) {{ atomicStore(&state.step_snap, step); }}
    publish_top(w, t);
    forward_h0(w, t, step);{self._advance() if seq[-1] == "forward_h0" else ""}
}}

@compute @workgroup_size(WG)
fn phase_uf0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {{
    let w = wid.x;
    if (t == 0u) {{ sh_step = atomicLoad(&state.step); }}
    let step = workgroupUniformLoad(&sh_step);
    if (w == 0u && t == 0u) {{ atomicStore(&state.step_snap, step); }}
    pending_u(w, t, step - 1u, false);
    forward_h0(w, t, step);
}}

@compute @workgroup_size(WG)
fn phase_u(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {{
    let w = wid.x;
    if (t == 0u) {{ sh_step = atomicLoad(&state.step); }}
    let step = workgroupUniformLoad(&sh_step);
    pending_u(w, t, step - 1u, false);
}}
{single}
"""

    @staticmethod
    def _record() -> str:
        return """
    if (w == METRICS && t == 0u) { record_metrics(); }"""

    @staticmethod
    def _advance() -> str:
        return """
    if (w == 0u && t == 0u) { atomicStore(&state.step, step + 1u); }"""
