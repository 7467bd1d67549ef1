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

Per row, every tensor lives in `scratch` ([B, size] regions); only a conv's input and weights
are copied to workgroup memory, where its inner loops read them. Storage writes of one op are
made visible to the next by storageBarrier().

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
    def g_plane(self) -> int:
        return (self.oh + 2 * self.gpad) * (self.ow + 2 * self.gpad)


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


def shared_floats(ops: list[FrontOp], wg: int) -> tuple[int, int]:
    """(input floats, parameter floats) of the workgroup staging: the largest conv input and the
    largest conv weight + bias; plus `wg` floats of the gradient slice fold."""
    convs = [op for op in ops if op.kind == "conv"]
    return max(op.n_in_padded for op in convs), max(op.n_params for op in convs)


def _decode(op: FrontOp, i: str, c: str, y: str, x: str, out: bool) -> str:
    """WGSL lets (c, y, x) of flat index i of the op's output (out) or input."""
    h, w = (op.oh, op.ow) if out else (op.h, op.w)
    return (f"let {c} = {i} / {h * w}u; let {y} = ({i} % {h * w}u) / {w}u; let {x} = {i} % {w}u;")


def _argmax(op: FrontOp, oy: str, ox: str, c: str) -> str:
    """WGSL computing `at`, the input offset (within the row) of window (c, oy, ox)'s maximum: the
    first in row-major order, a NaN winning, as the trace's max-pool (shaders/maxpool.wgsl)."""
    return f"""
            let corner = ({c} * {op.h}u + {oy} * {op.s}u) * {op.w}u + {ox} * {op.s}u;
            var best = scratch[{op.x}u + r0 * {op.n_in}u + corner];
            var at = corner;
            for (var ky = 0u; ky < {op.k}u; ky++) {{
                for (var kx = 0u; kx < {op.k}u; kx++) {{
                    let a = corner + ky * {op.w}u + kx;
                    let v = scratch[{op.x}u + r0 * {op.n_in}u + a];
                    if (v > best || (is_nan(v) && !is_nan(best))) {{ best = v; at = a; }}
                }}
            }}"""


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


def _stage(op: FrontOp, what: str) -> str:
    """Copy the conv's input row ("x") and / or parameters ("w") to workgroup memory."""
    out = ""
    if "w" in what:
        out += f"""
    for (var j = t; j < {op.n_w}u; j += WG) {{ fw[j] = params[{op.wo}u + j]; }}
    for (var j = t; j < {op.cout}u; j += WG) {{ fw[{op.n_w}u + j] = params[{op.bo}u + j]; }}"""
    if "x" in what:
        out += f"""
    for (var j = t; j < {op.n_in_padded}u; j += WG) {{     // zero-padded by {op.p}, odd strides
        let ci = j / {op.plane_stride}u;
        let iy = i32((j % {op.plane_stride}u) / {op.row_stride}u) - {op.p};
        let ix = i32((j % {op.plane_stride}u) % {op.row_stride}u) - {op.p};
        let inside = iy >= 0 && iy < {op.h} && ix >= 0 && ix < {op.w};
        let at = (ci * {op.h}u + u32(clamp(iy, 0, {op.h - 1}))) * {op.w}u + u32(clamp(ix, 0, {op.w - 1}));
        fin[j] = select(0.0, scratch[{op.x}u + r0 * {op.n_in}u + at], inside);
    }}"""
    return out + "\n    workgroupBarrier();"


def _tap(op: FrontOp, oy: str, ox: str) -> str:
    """WGSL for the input value under kernel tap (ky, kx) of output (oy, ox), from the zero-padded `fin`."""
    return (f"let v = fin[ci * {op.plane_stride}u + ({oy} * {op.s}u + ky) * {op.row_stride}u + {ox} * {op.s}u + kx];")


def _g_at(op: FrontOp, c: str, oy: str, ox: str) -> str:
    """Index in `fg` of the staged output gradient (c counted from the staged piece's first channel)."""
    b = op.gpad
    return f"({c} * {op.oh + 2 * b}u + {oy}{f' + {b}u' if b else ''}) * {op.ow + 2 * b}u + {ox}{f' + {b}u' if b else ''}"


def forward(ops: list[FrontOp]) -> str:
    out = [gather(ops)]
    for op in ops:
        if op.kind == "conv":
            act = "\n        z = max(z, 0.0);" if op.relu else ""
            out.append(f"""
    // -- layer {op.index}: Conv2d({op.cin},{op.cout},{op.k},stride={op.s},padding={op.p}){' + ReLU' if op.relu else ''}, forward{_stage(op, "wx")}
    for (var o = t; o < {op.n_out}u; o += WG) {{
        {_decode(op, "o", "co", "oy", "ox", out=True)}
        var z = fw[{op.n_w}u + co];
        for (var ci = 0u; ci < {op.cin}u; ci++) {{
            for (var ky = 0u; ky < {op.k}u; ky++) {{
                for (var kx = 0u; kx < {op.k}u; kx++) {{
                {_tap(op, "oy", "ox")}
                z = fma(fw[((co * {op.cin}u + ci) * {op.k}u + ky) * {op.k}u + kx], v, z);
                }}
            }}
        }}{act}
        scratch[{op.y}u + r0 * {op.n_out}u + o] = z;
    }}{SYNC}
""")
        else:
            act = "\n        best = max(best, 0.0);" if op.relu else ""
            out.append(f"""
    // -- layer {op.index}: MaxPool2d({op.k}, stride={op.s}){' + ReLU' if op.relu else ''}, forward
    for (var o = t; o < {op.n_out}u; o += WG) {{
        {_decode(op, "o", "c", "oy", "ox", out=True)}{_argmax(op, "oy", "ox", "c")}{act}
        scratch[{op.y}u + r0 * {op.n_out}u + o] = best;
    }}{SYNC}
""")
    return "".join(out)


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
        chunk = min(op.cout, fg // op.g_plane)
        out.append(_stage(op, "x"))
        for c0 in range(0, op.cout, chunk):
            out.append(_stage_grad(op, c0, min(chunk, op.cout - c0)))
            out.append(_param_grads(op, wg, c0, min(chunk, op.cout - c0)))
        if op.gx is not None:
            out.append(_input_grad(op, staged=chunk >= op.cout))
    return "".join(out)


def _stage_grad(op: FrontOp, c0: int, cn: int) -> str:
    mask = f"\n        if (!(scratch[{op.y}u + o] > 0.0)) {{ g = 0.0; }}" if op.relu else ""
    b = op.gpad
    if b:      # zero border of b: read the plane's inside, zeros around it
        gh, gw = op.oh + 2 * b, op.ow + 2 * b
        body = f"""
        let c = j / {gh * gw}u;
        let y = i32((j / {gw}u) % {gh}u) - {b};
        let x = i32(j % {gw}u) - {b};
        let inside = y >= 0 && y < {op.oh} && x >= 0 && x < {op.ow};
        let o = r0 * {op.n_out}u + ({c0}u + c) * {op.oh * op.ow}u + u32(clamp(y, 0, {op.oh - 1})) * {op.ow}u + u32(clamp(x, 0, {op.ow - 1}));
        var g = select(0.0, scratch[{op.gy}u + o], inside);{mask}"""
    else:
        body = f"""
        let o = r0 * {op.n_out}u + {c0 * op.oh * op.ow}u + j;
        var g = scratch[{op.gy}u + o];{mask}"""
    return f"""
    // -- layer {op.index}: the output gradient of channels {c0}..{c0 + cn - 1}{' through the ReLU' if op.relu else ''}, staged
    for (var j = t; j < {cn * op.g_plane}u; j += WG) {{{body}
        fg[j] = g;
    }}
    workgroupBarrier();"""


def _pool_backward(op: FrontOp) -> str:
    mask = f"\n        if (!(scratch[{op.y}u + o] > 0.0)) {{ g = 0.0; }}" if op.relu else ""
    if op.s == op.k and op.h % op.k == 0 and op.w % op.k == 0:
        # Windows tile the input exactly: each window writes its k x k inputs (the arg-max gets
        # the gradient, the others 0), so every input element is written once.
        return f"""
    // -- layer {op.index}: MaxPool2d backward: each window routes its gradient to its arg-max, zeros elsewhere
    for (var w = t; w < {op.n_out}u; w += WG) {{
        {_decode(op, "w", "c", "oy", "ox", out=True)}{_argmax(op, "oy", "ox", "c")}
        let o = r0 * {op.n_out}u + w;
        var g = scratch[{op.gy}u + o];{mask}
        for (var ky = 0u; ky < {op.k}u; ky++) {{
            for (var kx = 0u; kx < {op.k}u; kx++) {{
                let a = corner + ky * {op.w}u + kx;
                scratch[{op.gx}u + r0 * {op.n_in}u + a] = select(0.0, g, a == at);
            }}
        }}
    }}{SYNC}
"""
    return f"""
    // -- layer {op.index}: MaxPool2d backward: each input element gathers the gradients of the windows that chose it
    for (var i = t; i < {op.n_in}u; i += WG) {{
        {_decode(op, "i", "c", "iy", "ix", out=False)}
        // windows reaching row iy: oy = ceil((iy + 1 - K) / s) .. floor(iy / s)
        let oy_lo = select(0u, (iy + 1u - {op.k}u + {op.s - 1}u) / {op.s}u, iy + 1u > {op.k}u);
        let ox_lo = select(0u, (ix + 1u - {op.k}u + {op.s - 1}u) / {op.s}u, ix + 1u > {op.k}u);
        let oy_hi = min(iy / {op.s}u + 1u, {op.oh}u);
        let ox_hi = min(ix / {op.s}u + 1u, {op.ow}u);
        var acc = 0.0;
        for (var oy = oy_lo; oy < oy_hi; oy++) {{
            for (var ox = ox_lo; ox < ox_hi; ox++) {{{_argmax(op, "oy", "ox", "c")}
                let o = r0 * {op.n_out}u + (c * {op.oh}u + oy) * {op.ow}u + ox;
                var g = scratch[{op.gy}u + o];{mask.replace(chr(10) + "        ", chr(10) + "                ")}
                if (at == i) {{ acc += g; }}
            }}
        }}
        scratch[{op.gx}u + r0 * {op.n_in}u + i] = acc;
    }}{SYNC}
"""


def _input_grad(op: FrontOp, staged: bool) -> str:
    """dx[ci, iy, ix] = sum over (co, ky, kx) of W[co, ci, ky, kx] dy[co, oy, ox] where oy s = iy + p - ky
    (and likewise for x). dy is read from `fg` when it is staged whole, else from scratch through
    the ReLU mask (a slower path for outputs larger than the staging)."""
    if staged and op.gpad == op.k - 1 - op.p and op.s == 1 and op.gx is not None and op.p <= op.k - 1:
        # stride 1 with the gradient staged in its zero border: every tap reads fg, no tests
        return f"""
    // -- layer {op.index}: Conv2d input gradient (stride 1): dx[ci, iy, ix] = sum over (co, ky, kx) of
    //    W[co, ci, ky, kx] dy[co, iy + p - ky, ix + p - kx], dy read from its zero-bordered staging{_stage(op, "w")}
    for (var i = t; i < {op.n_in}u; i += WG) {{
        {_decode(op, "i", "ci", "iy", "ix", out=False)}
        var acc = 0.0;
        for (var co = 0u; co < {op.cout}u; co++) {{
            for (var ky = 0u; ky < {op.k}u; ky++) {{
                for (var kx = 0u; kx < {op.k}u; kx++) {{
                    let d = fg[{_g_at(op, "co", f"iy + {op.k - 1}u - ky - {op.gpad}u", f"ix + {op.k - 1}u - kx - {op.gpad}u")}];
                    acc = fma(fw[((co * {op.cin}u + ci) * {op.k}u + ky) * {op.k}u + kx], d, acc);
                }}
            }}
        }}
        scratch[{op.gx}u + r0 * {op.n_in}u + i] = acc;
    }}{SYNC}
"""
    if staged:
        dy = f"fg[{_g_at(op, 'co', 'u32(clamp(oy, 0, ' + str(op.oh - 1) + '))', 'u32(clamp(ox, 0, ' + str(op.ow - 1) + '))')}]"
    else:
        dy = f"scratch[{op.gy}u + r0 * {op.n_out}u + at]"
        if op.relu:
            dy = f"select(0.0, {dy}, scratch[{op.y}u + r0 * {op.n_out}u + at] > 0.0)"
    return f"""
    // -- layer {op.index}: Conv2d input gradient{_stage(op, "w")}
    for (var i = t; i < {op.n_in}u; i += WG) {{
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
                    acc = fma(fw[((co * {op.cin}u + ci) * {op.k}u + ky) * {op.k}u + kx], d, acc);
                }}
            }}
        }}
        scratch[{op.gx}u + r0 * {op.n_in}u + i] = acc;
    }}{SYNC}
"""


def _param_grads(op: FrontOp, wg: int, c0: int, cn: int) -> str:
    """This row's share of the weight and bias gradients of channels c0..c0+cn-1 (their output
    gradient staged in `fg`), into the conv's dw rows (pass 2 sums them over the batch):
    dW[co, ci, ky, kx] = sum over outputs of dy[co, oy, ox] x[ci, oy s + ky - p, ox s + kx - p],
    db[co] = sum of dy[co, ...]. With fewer parameters than invocations, several invocations
    split one parameter's outputs and fold in workgroup memory."""
    kk = op.k * op.k
    nw = cn * op.cin * kk
    n = nw + cn
    sl = max(1, min(wg // n, op.ow))     # slices split each output row's columns

    def dest(pi: str) -> str:      # the dw row element of local parameter pi
        return (f"select({op.n_w + c0}u + {pi} - {nw}u, {c0 * op.cin * kk}u + {pi}, {pi} < {nw}u)")
    store = f"fred[u] = acc;" if sl > 1 else f"scratch[{op.dw}u + r0 * {op.n_params}u + {dest('pi')}] = acc;"
    fold = "" if sl == 1 else f"""
    workgroupBarrier();
    for (var j = t; j < {n}u; j += WG) {{
        var acc = 0.0;
        for (var q = 0u; q < {sl}u; q++) {{ acc += fred[q * {n}u + j]; }}
        scratch[{op.dw}u + r0 * {op.n_params}u + {dest('j')}] = acc;
    }}"""
    return f"""
    // -- layer {op.index}: this row's share of channels {c0}..{c0 + cn - 1}'s weight and bias gradients ({sl} invocation(s) a parameter)
    for (var u = t; u < {n * sl}u; u += WG) {{
        let pi = u % {n}u;
        let sl = u / {n}u;
        var acc = 0.0;
        if (pi < {nw}u) {{
            let col = pi / {op.cin * kk}u;          // the channel, counted from {c0}
            let ci = (pi / {kk}u) % {op.cin}u;
            let ky = (pi / {op.k}u) % {op.k}u;
            let kx = pi % {op.k}u;
            for (var oy = 0u; oy < {op.oh}u; oy++) {{
                for (var ox = sl; ox < {op.ow}u; ox += {sl}u) {{
                    {_tap(op, "oy", "ox")}
                    acc = fma(fg[{_g_at(op, "col", "oy", "ox")}], v, acc);
                }}
            }}
        }} else {{
            let col = pi - {nw}u;
            for (var oy = 0u; oy < {op.oh}u; oy++) {{
                for (var ox = sl; ox < {op.ow}u; ox += {sl}u) {{ acc += fg[{_g_at(op, "col", "oy", "ox")}]; }}
            }}
        }}
        {store}
    }}{fold}
    workgroupBarrier();
"""


def declarations(ops: list[FrontOp], wg: int, fg: int) -> str:
    n_in, n_p = shared_floats(ops, wg)
    return f"""
var<workgroup> fin: array<f32, {n_in}>;    // conv front: a conv's input row, staged
var<workgroup> fw: array<f32, {n_p}>;      // and its weights then biases
var<workgroup> fg: array<f32, {fg}>;       // and its output gradient (some channels at a time)
var<workgroup> fred: array<f32, {wg}>;     // a parameter gradient's slices, folded
fn is_nan(v: f32) -> bool {{ return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }}
"""


def shared_bytes(ops: list[FrontOp], wg: int, fg: int) -> int:
    n_in, n_p = shared_floats(ops, wg)
    return 4 * (n_in + n_p + fg + wg)


def gradient_staging(ops: list[FrontOp], wg: int, budget: int) -> int:
    """Floats of `fg`, the staged output gradient: every conv's whole output if `budget` bytes of
    workgroup memory allow, else what is left (at least one channel plane of each conv)."""
    need = max(op.cout * op.g_plane for op in ops if op.kind == "conv")
    plane = max(op.g_plane for op in ops if op.kind == "conv")
    n_in, n_p = shared_floats(ops, wg)
    room = budget // 4 - n_in - n_p - wg
    return max(plane, min(need, room))


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
