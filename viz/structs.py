"""Every struct the visualizer's view kernels read, declared once (compute/gpu_struct.py).

A shader says `//!struct Name`; Python writes the same struct by field name through
`gpu.Params(STRUCT, field=value, ...)`. Importing viz.gpu registers these.
"""
from __future__ import annotations

from ..compute.gpu_struct import GpuStruct

NONE = 0xFFFFFFFF  # "no slot / no tile" in u32 fields

SEGMENT = GpuStruct("Segment", [
    ("ax", "f32", "start, canvas pixels (x right, y down)"), ("ay", "f32", ""),
    ("bx", "f32", "end"), ("by", "f32", ""),
    ("radius", "f32", "brush radius, canvas pixels"),
    ("ink", "f32", "1 = paint, 0 = erase"),
])
STROKES = GpuStruct("Strokes", [
    ("count", "u32", "segments this frame"),
    ("width", "u32", "canvas size"),
    ("height", "u32", ""),
], tail=("segs", "Segment"))
LOAD = GpuStruct("Load", [
    ("index", "u32", "sample index in the split (or entry of the list)"),
    ("iw", "u32", "image width, height"), ("ih", "u32", ""),
    ("n", "u32", "samples in the split (out of range -> blank)"),
    ("cw", "u32", "canvas width, height"), ("ch", "u32", ""),
    ("listed", "u32", "1: `index` is an entry of the misclassified list, 0: a sample of the split"),
])
NORMALIZE = GpuStruct("Normalize", [
    ("cw", "u32", "canvas width, height"), ("ch", "u32", ""),
    ("ow", "u32", "output width, height (28 x 28)"), ("oh", "u32", ""),
    ("mode", "u32", "1 = MNIST normalisation, 0 = plain downsample"),
    ("box_size", "f32", "the bounding box is fitted into box_size x box_size (20)"),
    ("thresh", "f32", "ink above this counts for the bounding box"),
])
REDUCE = GpuStruct("Reduce", [
    ("offset", "u32", "first element"), ("count", "u32", "elements"), ("slot", "u32", "where in `scales` to write"),
])
HEAT = GpuStruct("Heat", [
    ("offset", "u32", ""), ("tile_w", "u32", ""), ("tile_h", "u32", ""), ("tiles", "u32", ""), ("cols", "u32", ""),
    ("gap", "u32", ""), ("sx", "u32", ""), ("sy", "u32", ""), ("st", "u32", ""),
    ("cmap", "u32", "0 diverging, 1 sequential, 2 grey"),
    ("scale_slot", "u32", "NONE: scale 1"),
    ("gain", "f32", ""),
    ("mod_mode", "u32", ""), ("mod_offset", "u32", ""), ("mod_sx", "u32", ""), ("mod_sy", "u32", ""),
    ("mod_slot", "u32", ""),
    ("highlight", "u32", "tile to outline (NONE: none)"),
])
BARS = GpuStruct("Bars", [
    ("offset", "u32", ""), ("n", "u32", ""), ("mode", "u32", "0 probabilities, 1 logits"),
    ("scale_slot", "u32", ""), ("label_h", "u32", ""), ("font_scale", "u32", ""),
    ("gated", "u32", "1: no bars while gate[0] (the canvas's ink) is 0"),
    ("named", "u32", "1: labels are the class names (names buffer), 0: the indices"),
])
CANVAS_VIEW = GpuStruct("CanvasView", [
    ("cw", "u32", "canvas size (the texture has the same size)"), ("ch", "u32", ""),
    ("show_box", "u32", "draw the ink bounding box and the centre of mass"),
])
BADGE = GpuStruct("Badge", [
    ("n", "u32", "classes"), ("digit_scale", "u32", "font pixels of the big digit"),
    ("text_scale", "u32", "font pixels of the percentage"),
    ("named", "u32", "1: the class's name (names buffer) instead of its number"),
])
CONFUSION = GpuStruct("Confusion", [
    ("classes", "u32", ""), ("cell_w", "u32", ""), ("cell_h", "u32", ""),
    ("margin", "u32", "header row height (the predicted classes' names)"),
    ("margin_x", "u32", "header column width (the true classes' names)"),
])
GALLERY_GATHER = GpuStruct("GalleryGather", [
    ("batch", "u32", "rows of x"), ("first", "u32", "first entry of `wrong` on this page"),
    ("pixels", "u32", "D"), ("wrong_cap", "u32", "entries `wrong` can hold"),
])
TILES = GpuStruct("Tiles", [
    ("mode", "u32", "0 dataset page, 1 misclassified page"),
    ("first", "u32", "first sample (mode 0) or first entry of `wrong` (mode 1)"),
    ("n", "u32", "samples in the split (mode 0) / capacity of `wrong` (mode 1)"),
    ("cols", "u32", ""), ("rows", "u32", ""),
    ("iw", "u32", "image width, height"), ("ih", "u32", ""),
    ("label_h", "u32", "label strip under each tile"), ("gap", "u32", ""),
    ("classes", "u32", ""),
    ("selected", "u32", "sample index to outline (NONE: none)"),
    ("tile_w", "u32", "tile width (>= iw: room for the label; the image is centred)"),
    ("font_scale", "u32", "pixels per font pixel of the labels"),
    ("lines", "u32", "label lines: 1, or 2 (true over -> predicted, for long names)"),
])
PLOT = GpuStruct("Plot", [
    ("kind", "u32", "0 loss (log axis), 1 accuracy"),
    ("start", "u32", "first run step shown"), ("end", "u32", "one past the last"),
    ("cap", "u32", "history ring capacity (steps)"),
    ("nevals", "u32", "evaluations recorded"), ("eval_cap", "u32", "ring capacity (evaluations)"),
    ("lo", "f32", "y axis range"), ("hi", "f32", ""),
    ("smoothing", "u32", "the mean line averages at least this many steps"),
    ("grid_step", "f32", "accuracy axis: a grid line every grid_step (plots.grid_step)"),
    ("valid_end", "u32", "bin: one past the last step the ring holds for this run (<= end)"),
    ("col_offset", "u32", "bin: first column written (the run's block of `cols`)"),
    ("runs", "u32", "draw: other runs' curves in `extra` (0 .. 3)"),
    ("evals_base", "u32", "where in `extra` the other runs' test-accuracy points begin (EVAL_POINTS a run)"),
    ("eval_block", "u32", "bin: this run's block of test-accuracy points (NONE: the main run, none copied)"),
    ("colour0", "u32", "draw: pack4x8unorm colour of the main curve (0: the plot's own) and of the others"),
    ("colour1", "u32", ""), ("colour2", "u32", ""), ("colour3", "u32", ""),
])
STATS_FRAME = GpuStruct("StatsFrame", [
    ("steps", "u32", "run steps recorded in `hist`"), ("cap", "u32", "hist ring capacity"),
    ("nevals", "u32", "evaluations recorded in `evals`"), ("eval_cap", "u32", ""),
    ("classes", "u32", ""),
    ("w1_slot", "u32", "scales slots of the first two weight matrices"), ("w2_slot", "u32", ""),
])
# What stats.wgsl packs for the panels' text: the only data read back each frame (64 bytes).
READOUT = GpuStruct("Readout", [
    ("step", "u32", "schedule step counter"),
    ("flags", "u32", "divergence flags (compute/structs.py FLAG_*)"),
    ("loss_avg", "f32", "loss, mean of the last <= 100 steps"),
    ("acc_avg", "f32", "accuracy, same"),
    ("test_acc", "f32", "the last evaluation's accuracy"),
    ("correct", "u32", "the last evaluation's counts"), ("seen", "u32", ""),
    ("hover", "u32", "the embedding's point under the cursor + 1 (0: none); written by its pick pass"),
    ("pred", "u32", "predicted class of the canvas"),
    ("pred_prob", "f32", "its probability"),
    ("ink", "f32", "the canvas has ink (> 0)"),
    ("sample", "u32", "the sample feeding the network: index << 8 | label (NONE: the painted canvas)"),
    ("w_absmax", "u32", "pack2x16float(colour scales of the first two weight matrices)"),
    ("lr", "f32", "the learning rate at the current step (schedule.wgsl)"),
    ("at_step", "u32", "run steps these values reflect"),
    ("est_acc", "f32", "running test-accuracy estimate on a fixed subset (< 0: none yet)"),
])

# The live embedding (embedding.wgsl) and the saliency map (saliency.wgsl).
EMBED_CHUNK = GpuStruct("EmbedChunk", [
    ("n", "u32", "points kept (test samples)"), ("h", "u32", "features of the last hidden layer"),
    ("base", "u32", "first test sample of this chunk"), ("rows", "u32", "rows of the chunk"),
])
EMBED = GpuStruct("Embed", [
    ("n", "u32", "points"), ("h", "u32", "hidden features"),
    ("size", "u32", "scatter texture side, pixels"),
    ("t", "f32", "0..1: how far the points have moved from `start` to `target`"),
    ("classes", "u32", ""),
    ("cursor_x", "f32", "pick: the cursor, texture pixels"), ("cursor_y", "f32", ""),
    ("picking", "u32", "1: the cursor is over the scatter"),
    ("pick_radius", "f32", "pixels: nothing nearer -> no point"),
    ("marker", "u32", "1: draw the canvas's digit as a marker"),
    ("hover_word", "u32", "word of the Readout the pick is published to (index + 1, 0: none)"),
    ("dot", "u32", "dot radius, pixels"),
])
SALIENCY = GpuStruct("Saliency", [
    ("mode", "u32", "seed: 0 the class's logit, 1 its log-probability"),
    ("class_index", "u32", "the class (NONE: the predicted one)"),
    ("classes", "u32", ""),
    ("d", "u32", "input pixels"),
    ("iw", "u32", "input image width, height"), ("ih", "u32", ""),
    ("cw", "u32", "canvas width, height"), ("ch", "u32", ""),
    ("plain", "u32", "1: the input is the canvas downsampled (a loaded sample), 0: normalised (canvas.norm)"),
    ("centred", "u32", "1: MNIST normalisation (its centre of mass sits on pixel centre 14.5)"),
    ("step", "f32", "push: the largest pixel change of one ascent step"),
    ("gain", "f32", "overlay: |gradient| / max at which the colour is opaque"),
])
PROBE = GpuStruct("Probe", [
    ("offset", "u32", "element of the source buffer to print"),
    ("scale", "u32", "pixels per font pixel"),
])
HIST_BIN = GpuStruct("HistBin", [
    ("offset", "u32", "first element of the range"), ("count", "u32", "elements"),
    ("bins", "u32", "bins per column (<= 256, even)"), ("cols", "u32", "columns in the ring"),
    ("slot", "u32", "the range's max |x| in `scales` (ScaleBank)"),
])
HIST_DRAW = GpuStruct("HistDraw", [
    ("bins", "u32", "bins per column"), ("cols", "u32", "columns in the ring (= the texture's width)"),
])
# Runs side by side: each other run's numbers, 16 bytes after the Readout in the same read
# (viz/readout.py; shaders/run_stats.wgsl).
RUN_STATS_FRAME = GpuStruct("RunStatsFrame", [
    ("steps", "u32", "the run's steps recorded in `hist`"), ("cap", "u32", "hist ring capacity"),
    ("nevals", "u32", "evaluations recorded in `evals`"), ("eval_cap", "u32", ""),
    ("classes", "u32", ""),
    ("word", "u32", "where in the readout buffer (u32 words) this run's RunReadout goes"),
])
RUN_READOUT = GpuStruct("RunReadout", [
    ("pred", "u32", "the run's predicted class of the canvas"),
    ("pred_prob", "f32", "its probability"),
    ("loss_avg", "f32", "loss, mean of the run's last <= 100 steps"),
    ("test_acc", "f32", "the run's last evaluation (< 0: none yet)"),
])
