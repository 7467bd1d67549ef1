"""The convolutional front of a compiled step: every Conv2d, ReLU and MaxPool2d before the
Flatten, run per batch row inside the compiled step's pass 1.

The autograd trace runs a small CNN as some twenty dispatches a step (gather, each conv and pool
forward and backward, weight-gradient reductions, the optimizer), and at batch 32 to 64 each
costs a few microseconds of launch and drain whatever its size. Here the whole network is the
compiled step's two dispatches: pass 1's workgroup for one row gathers its image, runs the front
forward (each conv's input and weights staged in workgroup memory), hands the features to the
dense layers, and after their backward runs the front backward: pool gradients through the
recomputed arg-max, ReLU masks, each conv's input gradient and this row's share of each conv's
weight and bias gradient. Pass 2 sums those shares over the rows and applies the optimizer rule,
as it does for the dense layers.

Per row, every tensor lives in `scratch` ([B, size] regions); a conv's input (zero-padded, odd
strides: no bounds tests, no bank conflicts), weights (as vec4s of 4 channels) and output
gradient are staged in workgroup memory, where its inner loops read them. The loops are
register blocked: an invocation computes 4 channels x 4 outputs (forward, input gradient) or
one tap of 4 channels (weight gradient) in vec4 registers, and a max-pool whose windows tile
the conv's output is pooled in the conv's registers. Storage writes of one phase are made
visible to the next by storageBarrier(). Pass 1's time is one sample's on one multiprocessor:
flat up to as many rows as the GPU has multiprocessors (benchmarks/NOTES.md has the versions).
On a GPU at small batches the backward leaves pass 1 and is spread over (row, part)
workgroups, one dispatch per conv (the section "the spread backward" below).

Covered: Conv2d (any kernel, stride, padding), MaxPool2d (any kernel and stride), each
optionally followed by a ReLU, then one Flatten and a dense head that starts right after it.
Anything else, or a front whose staging does not fit the workgroup memory, runs the dense head
compiled and the rest traced (compute/run.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from .arch import Conv2d, Flatten, Linear, MaxPool2d, ReLU


@dataclass
class FrontOp:
    """One Conv2d or MaxPool2d (with the ReLU right after it, if any) and its scratch regions."""
    index: int                 # position in the Sequential (a conv's tensors are '<index>.weight')
    kind: str                  # "conv" or "pool"
    cin: int
    h: int
    w: int
    cout: int
    oh: int
    ow: int
    k: int
    s: int
    p: int
    relu: bool
    wo: int = 0                # arena offsets of a conv's weight and bias
    bo: int = 0
    x: int = 0                 # scratch offsets: its input rows, output rows, output-gradient rows,
    y: int = 0
    gy: int = 0
    gx: int | None = None      # input-gradient rows (None: nothing before it has parameters)
    dw: int = 0                # and (a conv) this row's weight and bias gradient

    @property
    def n_in(self) -> int:
        return self.cin * self.h * self.w

    @property
    def n_out(self) -> int:
        return self.cout * self.oh * self.ow

    @property
    def n_w(self) -> int:
        return self.cout * self.cin * self.k * self.k if self.kind == "conv" else 0

    @property
    def n_params(self) -> int:
        return self.n_w + self.cout if self.kind == "conv" else 0

    # Staging in workgroup memory is zero-padded, so the inner loops index it with no bounds checks.
    @property
    def hp(self) -> int:
        return self.h + 2 * self.p

    @property
    def wp(self) -> int:
        return self.w + 2 * self.p

    # Row and plane strides of the staging, odd: the weight-gradient loops read one address per
    # (ci, ky, kx) across a warp, and even strides (16, 32, 16 x 16) put those on a few banks.
    @property
    def row_stride(self) -> int:
        return self.wp | 1

    @property
    def plane_stride(self) -> int:
        return (self.hp * self.row_stride) | 1

    @property
    def n_in_padded(self) -> int:
        return self.cin * self.plane_stride

    @property
    def gpad(self) -> int:
        """Border of the staged output gradient: k - 1 - p at stride 1 when an input gradient is
        wanted (its taps then read the border's zeros instead of testing bounds), else 0."""
        if self.gx is not None and self.s == 1 and self.p <= self.k - 1:
            return self.k - 1 - self.p
        return 0

    @property
    def g_row(self) -> int:
        return self.ow + 2 * self.gpad

    @property
    def g_plane(self) -> int:
        """Plane stride of the staged gradient, odd: the weight-gradient loop's warps read 4
        channels' planes at once, and an even stride puts them on one bank."""
        return ((self.oh + 2 * self.gpad) * self.g_row) | 1

    @property
    def groups_out(self) -> int:
        """Output channels in groups of 4 (one vec4 of weights per tap)."""
        return -(-self.cout // 4)

    @property
    def groups_in(self) -> int:
        return -(-self.cin // 4)

    @property
    def tiles(self) -> bool:
        """A max-pool whose windows tile its input: its backward can scatter, each input written once."""
        return self.kind == "pool" and self.s == self.k and self.h % self.k == 0 and self.w % self.k == 0

    @property
    def blocked_input_grad(self) -> bool:
        """The input gradient as a stride-1 transposed convolution over the zero-bordered staging."""
        return self.gx is not None and self.s == 1 and self.p <= self.k - 1

    @property
    def w4(self) -> int:
        """vec4s of the staged weights: [ci][ky][kx][output group] for the forward and weight
        gradient, [co][ky][kx][input group] for the input gradient."""
        return max(self.cin * self.k * self.k * self.groups_out, self.cout * self.k * self.k * self.groups_in)

    @property
    def tail(self) -> int:
        """Floats read past a staged row's end by the last 4-wide strip (results discarded)."""
        return 4 * self.s + self.k


def plan_front(model) -> list[FrontOp] | None:
    """The ops before the Flatten, or None when the front is not one this compiles: anything but
    Conv2d / MaxPool2d each with an optional ReLU after it, or a head that does not begin with a
    Linear right after the only Flatten."""
    layers, arch = list(model.layers), model.arch
    flats = [i for i, l in enumerate(layers) if isinstance(l, Flatten)]
    if len(flats) != 1 or flats[0] == 0 or not isinstance(layers[flats[0] + 1], Linear):
        return None
    ops, i, shape = [], 0, tuple(arch.input_shape)
    while i < flats[0]:
        layer = layers[i]
        relu = i + 1 < flats[0] and isinstance(layers[i + 1], ReLU)
        out = arch.shapes[i]
        if isinstance(layer, Conv2d):
            ops.append(FrontOp(i, "conv", *shape, *out, layer.kernel_size, layer.stride, layer.padding, relu))
        elif isinstance(layer, MaxPool2d):
            ops.append(FrontOp(i, "pool", *shape, *out, layer.kernel_size, layer.step, 0, relu))
        else:
            return None
        shape = arch.shapes[i + relu]
        i += 1 + relu
    conv_seen = False
    for op in ops:
        op.gx = 0 if conv_seen else None
        conv_seen = conv_seen or op.kind == "conv"
    return ops if conv_seen else None


def assign_scratch(ops: list[FrontOp], b: int, base: int) -> int:
    """Each op's [b, size] regions from float offset `base` (vec4-aligned); returns the end."""
    def take(n):
        nonlocal base
        at = base
        base += -(-b * n // 4) * 4
        return at
    x = take(ops[0].n_in)              # the rows' images
    gx = None
    for op in ops:
        op.x = x
        op.y = take(op.n_out)
        op.gy = take(op.n_out)
        op.gx = gx if op.gx is not None else None
        if op.kind == "conv":
            op.dw = take(op.n_params)
        x, gx = op.y, op.gy
    return base


def shared_floats(ops: list[FrontOp]) -> tuple[int, int]:
    """(input floats, weight vec4s) of the workgroup staging: the largest zero-padded conv input
    (with the strips' overrun) and the largest conv's weights in vec4 groups."""
    convs = [op for op in ops if op.kind == "conv"]
    return max(op.n_in_padded + op.tail for op in convs), max(op.w4 for op in convs)


def bias_floats(ops: list[FrontOp]) -> int:
    return max(4 * op.groups_out for op in ops if op.kind == "conv")


def _decode(op: FrontOp, i: str, c: str, y: str, x: str, out: bool) -> str:
    """WGSL lets (c, y, x) of flat index i of the op's output (out) or input."""
    h, w = (op.oh, op.ow) if out else (op.h, op.w)
    return (f"let {c} = {i} / {h * w}u; let {y} = ({i} % {h * w}u) / {w}u; let {x} = {i} % {w}u;")


def _argmax(op: FrontOp, oy: str, ox: str, c: str, src: str | None = None) -> str:
    """WGSL computing `at`, the input offset (within the row) of window (c, oy, ox)'s maximum: the
    first in row-major order, a NaN winning, as the trace's max-pool (shaders/maxpool.wgsl). The
    input is read from scratch, or from workgroup array `src` holding the row."""
    read = (lambda a: f"{src}[{a}]") if src else (lambda a: f"scratch[{op.x}u + r0 * {op.n_in}u + {a}]")
    return f"""
            let corner = ({c} * {op.h}u + {oy} * {op.s}u) * {op.w}u + {ox} * {op.s}u;
            var best = {read("corner")};
            var at = corner;
            for (var ky = 0u; ky < {op.k}u; ky++) {{
                for (var kx = 0u; kx < {op.k}u; kx++) {{
                    let a = corner + ky * {op.w}u + kx;
                    let v = {read("a")};
                    if (v > best || (is_nan(v) && !is_nan(best))) {{ best = v; at = a; }}
                }}
            }}"""


FOLD = 256        # vec4s of workgroup memory for folding a weight gradient's slices


def _chunk(op: FrontOp, fg: int) -> int:
    """Output channels whose gradient is staged at once: all, or a multiple of 4 that fits."""
    n = (fg - op.tail) // op.g_plane
    return op.cout if n >= op.cout else max(4, n // 4 * 4)


SYNC = """
    storageBarrier();
    workgroupBarrier();"""


def gather(ops: list[FrontOp]) -> str:
    op = ops[0]
    return f"""
    // -- the row's image, through the permutation and shift, into scratch (the conv front's input)
    for (var k = t; k < {op.n_in}u; k += WG) {{
        var v = 0.0;
        if (sample_of[0] != 0xffffffffu) {{ v = image_pixel(sample_of[0], k, step, r0); }}
        scratch[{op.x}u + r0 * {op.n_in}u + k] = v;
    }}{SYNC}
"""


def _stage_weights(op: FrontOp, grouped: str, other: str) -> str:
    """fw4[((other * k + ky) * k + kx) * groups + g] = W[.., .., ky, kx] for the 4 channels 4g..4g+3
    of the `grouped` side ("co": the forward's layout, "ci": the input gradient's), zeros past
    the last channel."""
    kk = op.k * op.k
    n = {"co": op.cout, "ci": op.cin}
    g = -(-n[grouped] // 4)
    return f"""
    for (var j = t; j < {n[other] * kk * g}u; j += WG) {{
        let g = j % {g}u;
        let {other} = j / {g * kk}u;
        let tap = (j / {g}u) % {kk}u;
        var w = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {{
            let {grouped} = 4u * g + c;
            if ({grouped} < {n[grouped]}u) {{ w[c] = params[{op.wo}u + (co * {op.cin}u + ci) * {kk}u + tap]; }}
        }}
        fw4[j] = w;
    }}"""


def _stage(op: FrontOp, what: str) -> str:
    """Copy to workgroup memory the conv's input row, zero-padded ("x"), its weights as vec4s of 4
    output channels [ci][ky][kx][group] with its biases ("w"), or as vec4s of 4 input channels
    [co][ky][kx][group] ("t", for the input gradient); channels past the last are zeros."""
    out = ""
    if "w" in what:
        out += _stage_weights(op, grouped="co", other="ci") + f"""
    for (var j = t; j < {4 * op.groups_out}u; j += WG) {{ fb[j] = select(0.0, params[{op.bo}u + min(j, {op.cout - 1}u)], j < {op.cout}u); }}"""
    if "t" in what:
        out += _stage_weights(op, grouped="ci", other="co")
    if "x" in what:
        out += f"""
    for (var j = t; j < {op.n_in_padded + op.tail}u; j += WG) {{     // zero-padded by {op.p}, odd strides
        let ci = j / {op.plane_stride}u;
        let iy = i32((j % {op.plane_stride}u) / {op.row_stride}u) - {op.p};
        let ix = i32((j % {op.plane_stride}u) % {op.row_stride}u) - {op.p};
        let inside = ci < {op.cin}u && iy >= 0 && iy < {op.h} && ix >= 0 && ix < {op.w};
        let at = (min(ci, {op.cin - 1}u) * {op.h}u + u32(clamp(iy, 0, {op.h - 1}))) * {op.w}u + u32(clamp(ix, 0, {op.w - 1}));
        fin[j] = select(0.0, scratch[{op.x}u + r0 * {op.n_in}u + at], inside);
    }}"""
    return out + "\n    workgroupBarrier();"


def forward(ops: list[FrontOp], fg: int, features: str) -> str:
    """The front's forward for row r0. A conv whose output fits `fg` (free until the backward)
    also leaves it there for a pool right after it, which then reads workgroup memory; the last
    op also writes each feature k through `features` (WGSL with `k` and `v`: the dense layers'
    input row)."""
    out = [gather(ops)]
    fused = set()
    for n, op in enumerate(ops):
        if n in fused:
            continue
        if op.kind == "conv" and n + 1 < len(ops) and _fusable(op, ops[n + 1]):
            out.append(_conv_pool_forward(op, ops[n + 1], features if n + 2 == len(ops) else None))
            fused.add(n + 1)
            continue
        keep = n + 1 < len(ops) and ops[n + 1].kind == "pool" and op.n_out <= fg
        last = n + 1 == len(ops)
        feed = f"\n        {{ let k = o; let v = best; {features} }}" if last else ""
        if op.kind == "conv":
            out.append(_conv_forward(op, keep))
            if last:       # a conv right before the Flatten: its outputs are the features
                out.append(f"""
    for (var k = t; k < {op.n_out}u; k += WG) {{ let v = scratch[{op.y}u + r0 * {op.n_out}u + k]; {features} }}
    workgroupBarrier();
""")
        else:
            src = "fg" if n and ops[n - 1].kind == "conv" and ops[n - 1].n_out <= fg else None
            act = "\n        best = max(best, 0.0);" if op.relu else ""
            out.append(f"""
    // -- layer {op.index}: MaxPool2d({op.k}, stride={op.s}){' + ReLU' if op.relu else ''}, forward{' (input in workgroup memory)' if src else ''}
    for (var o = t; o < {op.n_out}u; o += WG) {{
        {_decode(op, "o", "c", "oy", "ox", out=True)}{_argmax(op, "oy", "ox", "c", src)}{act}
        scratch[{op.y}u + r0 * {op.n_out}u + o] = best;{feed}
    }}{SYNC}
""")
    return "".join(out)


def _fusable(conv: FrontOp, pool: FrontOp) -> bool:
    """A max-pool right after a conv whose k x k windows tile the conv's output (k = stride <= 3):
    each invocation computes one window's conv outputs and pools them in registers."""
    return pool.kind == "pool" and pool.s == pool.k <= 3 and conv.oh % pool.k == 0 and conv.ow % pool.k == 0


def _conv_pool_forward(op: FrontOp, pool: FrontOp, feed: str | None) -> str:
    """A conv and the max-pool after it in one phase: an invocation computes 4 output channels at
    the k x k positions of one pool window (vec4 registers), stores them (the backward reads
    them), then pools them: the first maximum in row-major order, a NaN winning, as the trace's
    max-pool. As many invocations as the unfused conv's, and the pool reads no memory."""
    k, g = pool.k, op.groups_out
    span = (k - 1) * op.s + op.k
    acc = [[f"a{r}_{c}" for c in range(k)] for r in range(k)]
    body = []
    for r in range(k):
        body.append(f"                let row{r} = ci * {op.plane_stride}u + ((oy0 + {r}u) * {op.s}u + ky) * {op.row_stride}u + ox0 * {op.s}u;")
        body += [f"                let x{r}_{i} = fin[row{r} + {i}u];" for i in range(span)]
    for kx in range(op.k):
        body.append(f"                {{ let w = fw4[((ci * {op.k}u + ky) * {op.k}u + {kx}u) * {g}u + g];")
        body += [f"                  {acc[r][c]} = fma(vec4<f32>(x{r}_{c * op.s + kx}), w, {acc[r][c]});"
                 for r in range(k) for c in range(k)]
        body.append("                }")
    decl = "\n".join(f"        var {a} = bias;" for row in acc for a in row)
    act = "\n".join(f"        {a} = max({a}, vec4<f32>(0.0));" for row in acc for a in row) if op.relu else ""
    cells = [(r, c) for r in range(k) for c in range(k)]
    steps = "\n".join(f"""        {{ let v = {acc[r][c]};
          best = select(best, v, (v > best) | (is_nan4(v) & !is_nan4(best))); }}""" for r, c in cells[1:])
    stores = "\n".join(f"""                scratch[{op.y}u + r0 * {op.n_out}u + ((co * {op.oh}u + oy0 + {r}u) * {op.ow}u + ox0 + {c}u)] = {acc[r][c]}[j];"""
                         for r, c in cells)
    fe = f"\n                {{ let k = o; let v = best[j]; {feed} }}" if feed else ""
    prelu = "\n        best = max(best, vec4<f32>(0.0));" if pool.relu else ""
    return f"""
    // -- layer {op.index}: Conv2d({op.cin},{op.cout},{op.k},stride={op.s},padding={op.p}){' + ReLU' if op.relu else ''} + layer {pool.index}:
    //    MaxPool2d({k}){' + ReLU' if pool.relu else ''}, forward: invocation (group g of 4 channels, pool window (py, px)){_stage(op, "wx")}
    for (var u = t; u < {g * pool.oh * pool.ow}u; u += WG) {{
        let g = u % {g}u;
        let px = (u / {g}u) % {pool.ow}u;
        let py = u / {g * pool.ow}u;
        let oy0 = py * {k}u;
        let ox0 = px * {k}u;
        let bias = vec4<f32>(fb[4u * g], fb[4u * g + 1u], fb[4u * g + 2u], fb[4u * g + 3u]);
{decl}
        for (var ci = 0u; ci < {op.cin}u; ci++) {{
            for (var ky = 0u; ky < {op.k}u; ky++) {{
{chr(10).join(body)}
            }}
        }}
{act}
        var best = {acc[0][0]};
{steps}{prelu}
        for (var j = 0u; j < 4u; j++) {{
            let co = 4u * g + j;
            if (co < {op.cout}u) {{
{stores}
                let o = (co * {pool.oh}u + py) * {pool.ow}u + px;
                scratch[{pool.y}u + r0 * {pool.n_out}u + o] = best[j];{fe}
            }}
        }}
    }}{SYNC}
"""


def _conv_forward(op: FrontOp, keep: bool = False) -> str:
    """Each invocation: 4 output channels x 4 neighbouring outputs of one row, in four vec4
    registers. Per (ci, ky) it loads the input row segment the strip covers (3 s + k values) and
    one vec4 of weights per kx, then does 4 k vec4 FMAs: a load per 4 to 8 multiply-adds instead
    of two per one."""
    g, strips = op.groups_out, -(-op.ow // 4)
    span = 3 * op.s + op.k
    loads = "\n".join(f"                let x{i} = fin[row + {i}u];" for i in range(span))
    fmas = "\n".join(
        f"                {{ let w = fw4[((ci * {op.k}u + ky) * {op.k}u + {kx}u) * {g}u + g];\n" +
        "\n".join(f"                  a{j} = fma(vec4<f32>(x{j * op.s + kx}), w, a{j});" for j in range(4)) + " }"
        for kx in range(op.k))
    act = "\n".join(f"        a{j} = max(a{j}, vec4<f32>(0.0));" for j in range(4)) if op.relu else ""
    stores = "\n".join(f"""        if (ox0 + {j}u < {op.ow}u) {{
            for (var c = 0u; c < 4u; c++) {{
                if (4u * g + c < {op.cout}u) {{
                    let o = ((4u * g + c) * {op.oh}u + oy) * {op.ow}u + ox0 + {j}u;
                    scratch[{op.y}u + r0 * {op.n_out}u + o] = a{j}[c];{" fg[o] = a" + str(j) + "[c];" if keep else ""}
                }}
            }}
        }}""" for j in range(4))
    return f"""
    // -- layer {op.index}: Conv2d({op.cin},{op.cout},{op.k},stride={op.s},padding={op.p}){' + ReLU' if op.relu else ''}, forward:
    //    invocation (group g of 4 channels, strip of 4 outputs of row oy){_stage(op, "wx")}
    for (var u = t; u < {g * op.oh * strips}u; u += WG) {{
        let g = u % {g}u;
        let strip = (u / {g}u) % {strips}u;
        let oy = u / {g * strips}u;
        let ox0 = strip * 4u;
        let bias = vec4<f32>(fb[4u * g], fb[4u * g + 1u], fb[4u * g + 2u], fb[4u * g + 3u]);
        var a0 = bias;
        var a1 = bias;
        var a2 = bias;
        var a3 = bias;
        for (var ci = 0u; ci < {op.cin}u; ci++) {{
            for (var ky = 0u; ky < {op.k}u; ky++) {{
                let row = ci * {op.plane_stride}u + (oy * {op.s}u + ky) * {op.row_stride}u + ox0 * {op.s}u;
{loads}
{fmas}
            }}
        }}
{act}
{stores}
    }}{SYNC}
"""


def backward(ops: list[FrontOp], wg: int, fg: int) -> str:
    """From the features' gradient (the last op's gy) back through every op: pool routing, then
    for each conv its output gradient (ReLU-masked) staged in workgroup memory `fg` (`fg` floats,
    a few channels at a time when it is larger), this row's share of its weight and bias
    gradients and, where something before it has parameters, its input gradient."""
    out = []
    for op in reversed(ops):
        if op.kind == "pool":
            if op.gx is not None:
                out.append(_pool_backward(op))
            continue
        chunk = _chunk(op, fg)
        out.append(_stage(op, "x"))
        for c0 in range(0, op.cout, chunk):
            out.append(_stage_grad(op, c0, min(chunk, op.cout - c0)))
            out.append(_param_grads(op, wg, c0, min(chunk, op.cout - c0)))
        if op.gx is not None:
            out.append(_input_grad(op, staged=chunk >= op.cout))
    return "".join(out)


def _gather_windows(pool: FrontOp, c: str, y: str, x: str) -> str:
    """WGSL declaring `g`: the gradient of max-pool input (c, y, x) (variables), the sum of the
    gradients of the windows whose arg-max it is, each zero past the pool's ReLU."""
    mask = f"\n                if (!(scratch[{pool.y}u + o] > 0.0)) {{ gw = 0.0; }}" if pool.relu else ""
    return f"""// windows reaching row {y}: oy = ceil(({y} + 1 - K) / s) .. floor({y} / s)
        let oy_lo = select(0u, ({y} + 1u - {pool.k}u + {pool.s - 1}u) / {pool.s}u, {y} + 1u > {pool.k}u);
        let ox_lo = select(0u, ({x} + 1u - {pool.k}u + {pool.s - 1}u) / {pool.s}u, {x} + 1u > {pool.k}u);
        let oy_hi = min({y} / {pool.s}u + 1u, {pool.oh}u);
        let ox_hi = min({x} / {pool.s}u + 1u, {pool.ow}u);
        let self_at = ({c} * {pool.h}u + {y}) * {pool.w}u + {x};
        var g = 0.0;
        for (var oy = oy_lo; oy < oy_hi; oy++) {{
            for (var ox = ox_lo; ox < ox_hi; ox++) {{{_argmax(pool, "oy", "ox", c).replace(chr(10), chr(10) + "        ")}
                let o = r0 * {pool.n_out}u + ({c} * {pool.oh}u + oy) * {pool.ow}u + ox;
                var gw = scratch[{pool.gy}u + o];{mask}
                if (at == self_at) {{ g += gw; }}
            }}
        }}"""


def _scatter_window(pool: FrontOp, c: str, oy: str, ox: str, g: str) -> str:
    """WGSL routing gradient `g` of max-pool window (c, oy, ox) (variables) back to its input rows:
    g (zero past the pool's ReLU) to the arg-max, zeros to the rest of the window. For windows
    that tile the input, so each input is written once."""
    mask = (f" if (!(scratch[{pool.y}u + r0 * {pool.n_out}u + ({c} * {pool.oh}u + {oy}) * {pool.ow}u + {ox}] > 0.0))"
            " { gw = 0.0; }") if pool.relu else ""
    return f"""{{{_argmax(pool, oy, ox, c)}
            var gw = {g};{mask}
            for (var ky = 0u; ky < {pool.k}u; ky++) {{
                for (var kx = 0u; kx < {pool.k}u; kx++) {{
                    let a = corner + ky * {pool.w}u + kx;
                    scratch[{pool.gx}u + r0 * {pool.n_in}u + a] = select(0.0, gw, a == at);
                }}
            }}
        }}"""


def _stage_grad(op: FrontOp, c0: int, cn: int, dst: str = "fg", through: FrontOp | None = None) -> str:
    """Stage in `dst` (zero border, odd plane stride) the output gradient of channels
    c0..c0+cn-1, through the conv's ReLU; with `through` (the max-pool after the conv, in the
    spread backward), gathered back from that pool's gradient."""
    b = op.gpad
    at = f"r0 * {op.n_out}u + (({c0}u + c) * {op.oh}u + yy) * {op.ow}u + xx"
    grad = _gather_windows(through, f"({c0}u + c)", "yy", "xx") if through else f"var g = scratch[{op.gy}u + {at}];"
    mask = f"\n        if (!(scratch[{op.y}u + {at}] > 0.0)) {{ g = 0.0; }}" if op.relu else ""
    what = f"{'its whole' if cn == op.cout else f'the channels {c0}..{c0 + cn - 1} of its'} output gradient"
    return f"""
    // -- layer {op.index}: {what}{f', gathered back through layer {through.index} (max-pool)' if through else ''}{' and the ReLU' if op.relu else ''}, staged
    //    (zero border of {b}, odd plane stride)
    for (var j = t; j < {cn * op.g_plane}u; j += WG) {{
        let c = j / {op.g_plane}u;
        let y = i32((j % {op.g_plane}u) / {op.g_row}u) - {b};
        let x = i32((j % {op.g_plane}u) % {op.g_row}u) - {b};
        let inside = y >= 0 && y < {op.oh} && x >= 0 && x < {op.ow};
        let yy = u32(clamp(y, 0, {op.oh - 1}));
        let xx = u32(clamp(x, 0, {op.ow - 1}));
        {grad}{mask}
        {dst}[j] = select(0.0, g, inside);
    }}
    workgroupBarrier();"""


def _pool_backward(op: FrontOp) -> str:
    if op.tiles:
        return f"""
    // -- layer {op.index}: MaxPool2d backward: each window routes its gradient to its arg-max, zeros elsewhere
    for (var w = t; w < {op.n_out}u; w += WG) {{
        {_decode(op, "w", "c", "oy", "ox", out=True)}
        {_scatter_window(op, "c", "oy", "ox", f"scratch[{op.gy}u + r0 * {op.n_out}u + w]")}
    }}{SYNC}
"""
    return f"""
    // -- layer {op.index}: MaxPool2d backward: each input element gathers the gradients of the windows that chose it
    for (var i = t; i < {op.n_in}u; i += WG) {{
        {_decode(op, "i", "c", "iy", "ix", out=False)}
        {_gather_windows(op, "c", "iy", "ix")}
        scratch[{op.gx}u + r0 * {op.n_in}u + i] = g;
    }}{SYNC}
"""


def _store_dx(op: FrontOp, route: FrontOp | None, c: str, y: str, x: str, v: str) -> str:
    """WGSL storing v, conv `op`'s input gradient at (c, y, x): to its gx rows, or, `route` being
    the max-pool before it (windows tiling its input), routed on through it (_scatter_window)."""
    if route is None:
        return f"scratch[{op.gx}u + r0 * {op.n_in}u + ({c} * {op.h}u + {y}) * {op.w}u + {x}] = {v};"
    return f"{{ let cr = {c}; let yr = {y}; let xr = {x}; {_scatter_window(route, 'cr', 'yr', 'xr', v)} }}"


def _input_grad(op: FrontOp, staged: bool, parts: int = 1, src: str = "fg", route: FrontOp | None = None) -> str:
    """dx[ci, iy, ix] = sum over (co, ky, kx) of W[co, ci, ky, kx] dy[co, oy, ox] where oy s = iy + p - ky
    (and likewise for x). At stride 1 with dy staged whole in its zero border, a transposed
    convolution blocked like the forward (4 input channels x 4 neighbouring outputs an
    invocation); otherwise one invocation per input element reading dy from scratch (the spread
    backward: from its staging). With `parts` > 1 this workgroup does part `grp` of the invocations;
    with `route`, each value goes on through the max-pool before the conv (_store_dx)."""
    def share(n: int) -> tuple[str, str]:
        """(first, end) of this workgroup's invocations of n, less the invocation index t."""
        if parts == 1:
            return "0u", f"{n}u"
        per = -(-n // parts)
        return f"grp * {per}u", f"min({n}u, grp * {per}u + {per}u)"
    if staged and op.blocked_input_grad:
        g, strips, k = op.groups_in, -(-op.w // 4), op.k
        span = 3 + k
        loads = "\n".join(f"                let d{i} = {src}[row + {i}u];" for i in range(span))
        fmas = "\n".join(
            f"                {{ let w = fw4[((co * {k}u + ky) * {k}u + {kx}u) * {g}u + g];\n" +
            "\n".join(f"                  a{j} = fma(vec4<f32>(d{j + k - 1 - kx}), w, a{j});" for j in range(4)) + " }"
            for kx in range(k))
        stores = "\n".join(f"""        if (ix0 + {j}u < {op.w}u) {{
            for (var c = 0u; c < 4u; c++) {{
                if (4u * g + c < {op.cin}u) {{ {_store_dx(op, None, "(4u * g + c)", "iy", f"(ix0 + {j}u)", f"a{j}[c]")} }}
            }}
        }}""" for j in range(4))
        first, end = share(g * op.h * strips)
        # Routing on through a max-pool is a phase of its own: an invocation's 16 values one
        # after the other would chain 16 arg-max searches of global loads.
        routed = "" if route is None else f"""
    // -- layer {route.index}: MaxPool2d backward of those values: each window routes its gradient to its arg-max,
    //    zeros elsewhere; invocation (input-gradient invocation, channel c, output j)
    for (var e = t; e < ({end} - {first}) * 16u; e += WG) {{
        let u = {first} + e / 16u;
        let g = u % {g}u;
        let ix = ((u / {g}u) % {strips}u) * 4u + e % 4u;
        let iy = u / {g * strips}u;
        let ci = 4u * g + (e / 4u) % 4u;
        if (ci < {op.cin}u && ix < {op.w}u) {{
            let v = scratch[{op.gx}u + r0 * {op.n_in}u + (ci * {op.h}u + iy) * {op.w}u + ix];
            {_store_dx(op, route, "ci", "iy", "ix", "v")}
        }}
    }}{SYNC}
"""
        return f"""
    // -- layer {op.index}: Conv2d input gradient (stride 1): dx[ci, iy, ix] = sum over (co, ky, kx) of
    //    W[co, ci, ky, kx] dy[co, iy + p - ky, ix + p - kx], dy read from its zero-bordered staging;
    //    invocation (group g of 4 input channels, strip of 4 inputs of row iy){_stage(op, "t")}
    for (var u = {first} + t; u < {end}; u += WG) {{
        let g = u % {g}u;
        let strip = (u / {g}u) % {strips}u;
        let iy = u / {g * strips}u;
        let ix0 = strip * 4u;
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var a2 = vec4<f32>(0.0);
        var a3 = vec4<f32>(0.0);
        for (var co = 0u; co < {op.cout}u; co++) {{
            for (var ky = 0u; ky < {k}u; ky++) {{
                let row = co * {op.g_plane}u + (iy + {k - 1}u - ky) * {op.g_row}u + ix0;
{loads}
{fmas}
            }}
        }}
{stores}
    }}{SYNC}{routed}"""
    if parts > 1:       # the spread backward: dy staged whole, ReLU-masked
        dy = f"{src}[co * {op.g_plane}u + (u32(clamp(oy, 0, {op.oh - 1})) + {op.gpad}u) * {op.g_row}u + u32(clamp(ox, 0, {op.ow - 1})) + {op.gpad}u]"
    else:
        dy = f"scratch[{op.gy}u + r0 * {op.n_out}u + at]"
        if op.relu:
            dy = f"select(0.0, {dy}, scratch[{op.y}u + r0 * {op.n_out}u + at] > 0.0)"
    first, end = share(op.n_in)
    return f"""
    // -- layer {op.index}: Conv2d input gradient, one invocation per input element
    for (var i = {first} + t; i < {end}; i += WG) {{
        {_decode(op, "i", "ci", "iy", "ix", out=False)}
        var acc = 0.0;
        for (var co = 0u; co < {op.cout}u; co++) {{
            for (var ky = 0u; ky < {op.k}u; ky++) {{
                let ty = i32(iy) + {op.p} - i32(ky);
                let oy = ty / {op.s};
                let yok = ty >= 0 && ty % {op.s} == 0 && oy < {op.oh};
                for (var kx = 0u; kx < {op.k}u; kx++) {{
                    let tx = i32(ix) + {op.p} - i32(kx);
                    let ox = tx / {op.s};
                    let ok = yok && tx >= 0 && tx % {op.s} == 0 && ox < {op.ow};
                    let at = (co * {op.oh}u + u32(clamp(oy, 0, {op.oh - 1}))) * {op.ow}u + u32(clamp(ox, 0, {op.ow - 1}));
                    let d = select(0.0, {dy}, ok);
                    acc = fma(params[{op.wo}u + ((co * {op.cin}u + ci) * {op.k}u + ky) * {op.k}u + kx], d, acc);
                }}
            }}
        }}
        {_store_dx(op, route, "ci", "iy", "ix", "acc")}
    }}{SYNC}
"""


def _param_grads(op: FrontOp, wg: int, c0: int, cn: int, parts: int = 1, src: str = "fg") -> str:
    """This row's share of the weight and bias gradients of channels c0..c0+cn-1 (their output
    gradient staged in `src`), into the conv's dw rows (pass 2 sums them over the batch):
    dW[co, ci, ky, kx] = sum over outputs of dy[co, oy, ox] x[ci, oy s + ky - p, ox s + kx - p].
    An invocation sums one (tap (ci, ky, kx), group of 4 channels) pair as a vec4 over every
    output of its slice of rows; slices fold in workgroup memory (with more than FOLD / 2 pairs,
    one slice: each invocation stores its pair's sum). db[co] = sum of dy[co, ...] likewise.
    With `parts` > 1 (the spread backward) this workgroup, part `grp` of its row, does its share
    of the pairs and the last part the bias."""
    kk, b = op.k * op.k, op.gpad
    g = -(-cn // 4)
    groups = g * op.cin * kk
    per = -(-groups // parts)           # pairs of this workgroup
    sl = max(1, min(FOLD // per, wg // per, op.oh))
    first = f"grp * {per}u + " if parts > 1 else ""
    guard = f"gi < {groups}u" if per * parts != groups else "true"

    def gz(c: str) -> str:
        return f"{src}[min({c}, {cn - 1}u) * {op.g_plane}u + (oy + {b}u) * {op.g_row}u + ox + {b}u]"
    pair = f"""
        let gi = {first}l;
        let cg = 4u * (gi % {g}u);
        let tap = gi / {g}u;
        let ci = tap / {kk}u;
        let ky = (tap / {op.k}u) % {op.k}u;
        let kx = tap % {op.k}u;"""
    sums = f"""
        var acc = vec4<f32>(0.0);
        if ({guard}) {{
            for (var oy = sl; oy < {op.oh}u; oy += {sl}u) {{
                let xrow = ci * {op.plane_stride}u + (oy * {op.s}u + ky) * {op.row_stride}u + kx;
                for (var ox = 0u; ox < {op.ow}u; ox++) {{
                    let v = fin[xrow + ox * {op.s}u];
                    let d = vec4<f32>({gz("cg")}, {gz("cg + 1u")}, {gz("cg + 2u")}, {gz("cg + 3u")});
                    acc = fma(d, vec4<f32>(v), acc);
                }}
            }}
        }}"""

    def store(v: str) -> str:
        return f"""
        if ({guard}) {{
            for (var c = 0u; c < 4u; c++) {{
                let co = 4u * (gi % {g}u) + c;
                if (co < {cn}u) {{ scratch[{op.dw}u + r0 * {op.n_params}u + ({c0}u + co) * {op.cin * kk}u + tap] = {v}[c]; }}
            }}
        }}"""
    head = f"""
    // -- layer {op.index}: this row's share of channels {c0}..{c0 + cn - 1}'s weight gradient: invocation ((tap, group
    //    of 4 channels) pair{f', slice of {sl} of the output rows' if sl > 1 else ''}"""
    if sl == 1:
        out = [head + f"""
    for (var l = t; l < {per}u; l += WG) {{
        let sl = 0u;{pair}{sums}{store("acc")}
    }}
    workgroupBarrier();"""]
    else:
        out = [head + f"""
    for (var u = t; u < {per * sl}u; u += WG) {{
        let l = u % {per}u;
        let sl = u / {per}u;{pair}{sums}
        fred[u] = acc;
    }}
    workgroupBarrier();
    for (var l = t; l < {per}u; l += WG) {{{pair}
        var v = fred[l];
        for (var q = 1u; q < {sl}u; q++) {{ v += fred[q * {per}u + l]; }}{store("v")}
    }}
    workgroupBarrier();"""]
    mine = f"select(0u, {cn}u, grp == {parts - 1}u)" if parts > 1 else f"{cn}u"
    if cn > FOLD:       # a channel an invocation, no fold
        out.append(f"""
    // and its bias gradient: invocation (channel)
    for (var c = t; c < {mine}; c += WG) {{
        var acc = 0.0;
        for (var oy = 0u; oy < {op.oh}u; oy++) {{
            for (var ox = 0u; ox < {op.ow}u; ox++) {{ acc += {gz("c")}; }}
        }}
        scratch[{op.dw}u + r0 * {op.n_params}u + {op.n_w + c0}u + c] = acc;
    }}
    workgroupBarrier();
""")
        return "".join(out)
    bs = max(1, min(FOLD // cn, wg // cn, op.oh))
    nb = f"select(0u, {cn * bs}u, grp == {parts - 1}u)" if parts > 1 else f"{cn * bs}u"
    out.append(f"""
    // and its bias gradient: invocation (channel, slice of {bs} of the output rows)
    for (var u = t; u < {nb}; u += WG) {{
        let c = u % {cn}u;
        let sl = u / {cn}u;
        var acc = 0.0;
        for (var oy = sl; oy < {op.oh}u; oy += {bs}u) {{
            for (var ox = 0u; ox < {op.ow}u; ox++) {{ acc += {gz("c")}; }}
        }}
        fred[u] = vec4<f32>(acc);
    }}
    workgroupBarrier();
    for (var c = t; c < {mine}; c += WG) {{
        var v = fred[c].x;
        for (var q = 1u; q < {bs}u; q++) {{ v += fred[q * {cn}u + c].x; }}
        scratch[{op.dw}u + r0 * {op.n_params}u + {op.n_w + c0}u + c] = v;
    }}
    workgroupBarrier();
""")
    return "".join(out)


# -- the spread backward ------------------------------------------------------------------------------
# At small batches pass 1 runs one workgroup per row, so at batch 32 a GPU of 132 multiprocessors
# leaves 100 idle while each row's backward runs. Spread, the front's backward leaves pass 1 and
# runs as one dispatch per conv (last to first) over (row, part) workgroups: each stages the conv's
# whole output gradient (through the ReLU masks; a max-pool after it whose windows tile was routed
# once by whoever wrote its gradient, an overlapping one is gathered here), then does its part of
# the weight-gradient pairs and of the input gradient. Nothing is a partial sum: every share it
# writes is final, so pass 2 is unchanged.

def spreadable(ops: list[FrontOp]) -> bool:
    """Whether the backward can spread: every max-pool it runs back through comes right after a
    conv (the pool's routing is then part of that conv's gradient staging)."""
    return all(op.kind == "conv" or op.gx is None or (n and ops[n - 1].kind == "conv")
               for n, op in enumerate(ops))


def spread_staging(ops: list[FrontOp]) -> int:
    """Floats of `fgs`: the largest conv output gradient, staged whole with its border."""
    return max(op.cout * op.g_plane + op.tail for op in ops if op.kind == "conv")


def spread_bytes(ops: list[FrontOp]) -> int:
    """Workgroup memory of a spread backward dispatch."""
    n_in, n4 = shared_floats(ops)
    return 4 * (n_in + 4 * n4 + spread_staging(ops) + 4 * FOLD)


def spread_pass1_tail(ops: list[FrontOp]) -> str:
    """What pass 1 still does of a spread backward: a last max-pool whose windows tile routes the
    features' gradient to its arg-maxes (one scatter per row, not one gather per part)."""
    last = ops[-1]
    return SYNC + _pool_backward(last) if last.kind == "pool" and last.gx is not None and last.tiles else ""


def spread_backward(ops: list[FrontOp], wg: int, parts: int) -> list[tuple[int, str]]:
    """(layer index, WGSL entry point `front_backward_<index>`) per conv, last first: the
    dispatches of a spread backward, each over (row, part) workgroups."""
    out = []
    for n in range(len(ops) - 1, -1, -1):
        op = ops[n]
        if op.kind != "conv":
            continue
        after = ops[n + 1] if n + 1 < len(ops) and ops[n + 1].kind == "pool" else None
        gather_through = after if after and not after.tiles else None     # a tiling one has scattered already
        body = _stage(op, "x") + _stage_grad(op, 0, op.cout, "fgs", gather_through) + \
            _param_grads(op, wg, 0, op.cout, parts, "fgs")
        if op.gx is not None:
            before = ops[n - 1]
            route = before if before.kind == "pool" and before.gx is not None and before.tiles else None
            body += _input_grad(op, staged=True, parts=parts, src="fgs", route=route)
        out.append((op.index, f"""
@compute @workgroup_size({wg})
fn front_backward_{op.index}(@builtin(workgroup_id) wgid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {{
    let t = lid.x;
    let r0 = wgid.x;       // the batch row
    let grp = wgid.y;      // which of its {parts} parts
{body}
}}
"""))
    return out


def declarations(ops: list[FrontOp], wg: int, fg: int, spread: bool = False) -> str:
    n_in, n4 = shared_floats(ops)
    fgs = f"var<workgroup> fgs: array<f32, {spread_staging(ops)}>;   // spread backward: a conv's whole output gradient\n" if spread else ""
    return fgs + f"""
var<workgroup> fin: array<f32, {n_in}>;    // conv front: a conv's input row, staged (zero-padded)
var<workgroup> fw4: array<vec4<f32>, {n4}>;   // its weights, 4 channels a vec4
var<workgroup> fb: array<f32, {bias_floats(ops)}>;   // its biases
var<workgroup> fg: array<f32, {fg}>;       // its output gradient (some channels at a time)
var<workgroup> fred: array<vec4<f32>, {FOLD}>;   // a parameter gradient's slices, folded
fn is_nan(v: f32) -> bool {{ return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }}
fn is_nan4(v: vec4<f32>) -> vec4<bool> {{ return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u); }}
"""


def shared_bytes(ops: list[FrontOp], wg: int, fg: int) -> int:
    n_in, n4 = shared_floats(ops)
    return 4 * (n_in + 4 * n4 + bias_floats(ops) + fg + 4 * FOLD)


def gradient_staging(ops: list[FrontOp], wg: int, budget: int) -> int:
    """Floats of `fg`, the staged output gradient: every conv's whole output if `budget` bytes of
    workgroup memory allow, else what is left (at least one channel plane of each conv)."""
    need = max(op.cout * op.g_plane + op.tail for op in ops if op.kind == "conv")
    least = max(min(4, op.cout) * op.g_plane + op.tail for op in ops if op.kind == "conv")
    n_in, n4 = shared_floats(ops)
    room = budget // 4 - n_in - 4 * n4 - bias_floats(ops) - 4 * FOLD
    return max(least, min(need, room))


def param_blocks(ops: list[FrontOp]):
    """(name, parameters, WGSL term of row b and parameter p, arena destination of p) per conv
    weight and bias, for pass 2's sums over the rows."""
    out = []
    for op in ops:
        if op.kind != "conv":
            continue
        n = op.n_params
        out.append((f"{op.index}.weight", op.n_w, f"scratch[{op.dw}u + b * {n}u + p]", f"{op.wo}u + p"))
        out.append((f"{op.index}.bias", op.cout, f"scratch[{op.dw}u + b * {n}u + {op.n_w}u + p]", f"{op.bo}u + p"))
    return out
