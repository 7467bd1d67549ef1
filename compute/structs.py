"""Every struct the engine's kernels read, declared once (see gpu_struct.py).

A shader says `//!struct Name` where the declaration goes; Python packs the same
struct by field name (`GATHER.pack(rows=..., ...)`, or `Device.uniform(GATHER, ...)`).
"""
from __future__ import annotations

from .gpu_struct import GpuStruct

FLAG_NONFINITE = 1      # State.flags: a loss or an update was NaN / infinite
FLAG_EXPLODED = 2       # State.flags: the loss stayed far above chance level (finite divergence)
FLAG_STALLED = 4        # State.flags: a grid or row barrier's workgroups were not all resident (those steps are void)
FLAGS_DIVERGED = FLAG_NONFINITE | FLAG_EXPLODED

# The training state: a few words every training kernel sees, updated on the GPU only.
STATE = GpuStruct("State", [
    ("step", "u32", "schedule step: picks the batch, the learning rate, the random draws"),
    ("step_snap", "u32", "compiled step: pass 1's copy of `step`, read by pass 2"),
    ("run_step", "u32", "steps taken in this run: the history slot (never rewinds)"),
    ("flags", "u32", "FLAG_* bits; any bit stops the updates until cleared"),
    ("evals", "u32", "evaluations recorded in this run"),
    ("loss_ema", "u32", "f32 bits: exponential mean of the batch loss"),
    ("over", "u32", "consecutive steps the mean loss stayed above the explosion bound"),
    ("classes", "u32", "C: the explosion bound is EXPLODE_FACTOR * ln(C)"),
], atomic=True)

# Optimizer hyper-parameters and schedule, rewritten only when a setting changes.
HYPER = GpuStruct("Hyper", [
    ("lr", "f32", "base learning rate"),
    ("min_lr", "f32", "floor of cosine annealing"),
    ("total_steps", "f32", "length of the cosine (all epochs)"),
    ("period", "f32", "steps per decay period (step / exponential)"),
    ("gamma", "f32", "decay factor per period"),
    ("momentum", "f32", "SGD momentum (0 = plain SGD)"),
    ("beta1", "f32", "Adam"),
    ("beta2", "f32", "Adam"),
    ("eps", "f32", "Adam"),
    ("weight_decay", "f32", "L2, added to the gradient"),
    ("schedule", "u32", "0 constant, 1 step, 2 exponential, 3 cosine"),
    ("optimizer", "u32", "0 SGD, 1 Adam"),
    ("nesterov", "u32", ""),
    ("step_offset", "u32", "subtracted from the step counter (a schedule restart)"),
    ("moment_step", "u32", "the step the moments were last zeroed at (Adam's bias correction counts from it)"),
    ("frozen", "u32", "1 = no parameter changes"),
])

OPTIM = GpuStruct("OptimDims", [("n", "u32", "parameters in the arena")])

GATHER = GpuStruct("Gather", [
    ("B", "u32", "batch rows"),
    ("D", "u32", "pixels per image (H * W)"),
    ("N", "u32", "samples in the dataset"),
    ("W", "u32", "image width (for the shift)"),
    ("base", "u32", "eval mode: first sample"),
    ("eval_mode", "u32", ""),
    ("shift", "u32", "max |offset| in pixels, 0 = no augmentation"),
    ("seed", "u32", ""),
])

MATMUL = GpuStruct("MatmulDims", [("M", "u32"), ("N", "u32"), ("K", "u32")])
REDUCE = GpuStruct("ReduceDims", [("M", "u32"), ("N", "u32")])
TRANSPOSE = GpuStruct("TransposeDims", [("M", "u32"), ("N", "u32")])
XENT = GpuStruct("XentDims", [("R", "u32", "rows"), ("C", "u32", "classes")])
ELEMENTWISE = GpuStruct("Elementwise", [
    ("n", "u32", "elements"),
    ("row", "u32", "row length (bias_add)"),
    ("a", "f32", "axpby: a * x + b * y; fill: the value"),
    ("b", "f32", ""),
])
DROPOUT = GpuStruct("Dropout", [("n", "u32"), ("seed", "u32"), ("p", "f32", "drop probability")])
EVAL = GpuStruct("EvalChunk", [("R", "u32", "rows in the chunk"), ("C", "u32", "classes"),
                               ("base", "u32", "index of the chunk's first sample")])

# Convolution geometry (shaders/conv2d.wgsl): one layer's shapes, read by the
# forward, input-gradient and weight-gradient kernels alike.
CONV2D = GpuStruct("Conv2dDims", [
    ("N", "u32", "batch"),
    ("C", "u32", "input channels"),
    ("H", "u32", "input height"),
    ("W", "u32", "input width"),
    ("O", "u32", "output channels"),
    ("OH", "u32", "output height"),
    ("OW", "u32", "output width"),
    ("KH", "u32", "kernel height"),
    ("KW", "u32", "kernel width"),
    ("stride", "u32", ""),
    ("pad", "u32", "zero padding on every side"),
    ("slice", "u32", "weight gradient: output positions per split slice (a multiple of the slab)"),
    ("splits", "u32", "weight gradient: number of slices"),
])

POOL2D = GpuStruct("Pool2dDims", [
    ("planes", "u32", "N * C"),
    ("H", "u32", ""),
    ("W", "u32", ""),
    ("OH", "u32", ""),
    ("OW", "u32", ""),
    ("K", "u32", "window edge"),
    ("stride", "u32", ""),
])
