"""The compiled two-dispatch step equals the autograd trace, step by step, for every layer type,
optimizer, schedule, dropout, batch tail and rows-per-workgroup choice (compute/step_compiler.py).

The trace is the reference (and is itself checked against numpy in test_training.py); a compiled
step that diverges from it in any parameter or in the loss history fails here."""
import numpy as np
import pytest

from mnist_viz.compute.arch import parse
from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.nn import Sequential
from mnist_viz.compute.recipe import Recipe
from mnist_viz.compute.run import Run
from mnist_viz.compute.conv_front import plan_front
from mnist_viz.compute.step_compiler import CompiledStep, head_start, supported


@pytest.fixture(scope="module")
def data(mnist):
    return GpuDataset(mnist, limit=230)        # batch 50: 4 full steps and a tail of 30 every epoch


def train(data, arch, recipe, engine, rows=None, head_only=False, spread=None, slices=None, wg=None, merged=None,
          parts=None):
    model = Sequential(parse(arch), seed=3)
    run = Run(model, data, recipe, engine=engine)
    if any(v is not None for v in (rows, spread, slices, wg, merged, parts)):
        run.program = CompiledStep(model, data, run.metrics, run.optimizer, recipe, rows=rows, spread=spread,
                                   slices=slices, wg=wg, merged=merged, parts=parts).program
    if head_only:              # the dense head compiled, the layers before it traced
        run.program = run._trace_step(head=head_start(model))
    run.run_steps(run.total_steps)
    return model.state_dict(), run.metrics.read_history(0, run.total_steps), run


def assert_same(data, arch, recipe, rows=None, dispatches=2, **choices):
    g, gh, gr = train(data, arch, recipe, "graph")
    c, ch, cr = train(data, arch, recipe, "compiled", rows, **choices)
    assert (gr.engine, cr.engine, len(cr.program)) == ("graph", "compiled", dispatches)
    assert cr.read_flags() == 0
    for k in g:
        np.testing.assert_allclose(c[k], g[k], rtol=1e-3, atol=3e-5, err_msg=k)
    np.testing.assert_allclose(ch, gh, rtol=1e-4, atol=1e-5)


MLP = "Linear(784,32),ReLU(),Linear(32,10)"


@pytest.mark.parametrize("recipe", [
    Recipe(epochs=2, batch_size=50, lr=0.1, momentum=0.0, nesterov=False, shift=0, schedule="constant"),
    Recipe(epochs=2, batch_size=50, lr=0.1, min_lr=0.01, schedule="cosine", shift=2, seed=5),
    Recipe(epochs=2, batch_size=50, optimizer="adam", lr=0.01, schedule="exponential", gamma=0.7, shift=1),
    Recipe(epochs=2, batch_size=50, lr=0.05, momentum=0.9, nesterov=False, weight_decay=1e-3, schedule="step",
           gamma=0.5),
], ids=["sgd", "nesterov-cosine-shift", "adam-exponential", "momentum-wd-step"])
def test_optimizers_and_schedules(data, recipe):
    """Guards the optimizer rule, schedule, augmentation draw and tail batch in the generated code."""
    assert_same(data, MLP, recipe)


@pytest.mark.parametrize("arch", [
    "Linear(784,64),ReLU(),Linear(64,20),ReLU(),Linear(20,10)",              # deeper
    "Linear(784,48),ReLU(),Linear(48,132),ReLU(),Linear(132,10)",            # input gradient split 8 ways, 4 loads
    "Linear(784,30),ReLU(),Dropout(0.3),Linear(30,7),ReLU(),Linear(7,10)",  # dropout, widths not x4
    "Flatten(),Linear(784,16),ReLU(),Linear(16,10)",                         # PyTorch's leading Flatten
    "Linear(784,10)",                                                        # no hidden layer
    "Linear(784,24),Linear(24,10)",                                          # no activation between
])
def test_layer_shapes_and_dropout(data, arch):
    """Guards the layer plan: indices, offsets, scalar paths for widths not a multiple of 4, the
    dropout mask (the trace's hash) and its backward, activations left out, and the input
    gradient split over invocations (5 and 33 vec4s a row: shares of unequal length, and the
    4-load loop's tail)."""
    assert_same(data, arch, Recipe(epochs=1, batch_size=50, lr=0.1, shift=1))


def test_loss_one_row_an_invocation(data, monkeypatch):
    """The loss phase by rows (taken where R x C > 256: many classes) and the switches the
    benchmarks compare against (the label, staged weights and biases loaded where first used)."""
    import mnist_viz.compute.step_compiler as sc
    for name in ("PARALLEL_LOSS", "LABEL_EARLY", "STAGE_EARLY"):
        monkeypatch.setattr(sc, name, 0)
    assert_same(data, "Linear(784,30),ReLU(),Dropout(0.3),Linear(30,7),ReLU(),Linear(7,10)",
                Recipe(epochs=1, batch_size=50, lr=0.1, shift=1), rows=3)


@pytest.mark.parametrize("rows", [2, 3, 4])
def test_rows_per_workgroup(data, rows):
    """R rows share a workgroup at large batches (R=2, 4 on GPUs); guards the unrolled row registers and a
    last workgroup with fewer rows (50 = 12 x 4 + 2), and the split input gradient's partial sums per row."""
    assert_same(data, "Linear(784,64),ReLU(),Dropout(0.2),Linear(64,36),ReLU(),Linear(36,10)",
                Recipe(epochs=1, batch_size=50, lr=0.1, shift=1), rows=rows)


def test_what_the_compiler_covers():
    """A whole MLP compiles; a convolutional network compiles its dense head, from the first
    Linear after the last Flatten, when everything from there is Linear / ReLU / Dropout; and its
    front too when that is Conv2d / MaxPool2d each with an optional ReLU."""
    assert not supported(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Linear(2704,10)")))
    assert [(op.kind, op.index, op.relu) for op in plan_front(Sequential(parse(
        "Conv2d(1,4,3),ReLU(),MaxPool2d(2),Conv2d(4,4,3),Flatten(),Linear(484,10)")))] == \
        [("conv", 0, True), ("pool", 2, False), ("conv", 3, False)]
    assert plan_front(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Dropout(0.5),Linear(2704,10)"))) is None
    assert plan_front(Sequential(parse("Conv2d(1,4,3),ReLU(),ReLU(),Flatten(),Linear(2704,10)"))) is None
    assert plan_front(Sequential(parse("Linear(784,10)"))) is None
    assert supported(Sequential(parse("Linear(784,10)")))
    assert head_start(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Linear(2704,10)"))) == 3
    assert head_start(Sequential(parse("Conv2d(1,4,3),MaxPool2d(2),Flatten(),Linear(676,16),ReLU(),Dropout(0.2),"
                                       "Linear(16,10)"))) == 3
    assert head_start(Sequential(parse("Linear(784,10)"))) is None           # an MLP: the whole step
    assert head_start(Sequential(parse("Flatten(),Linear(784,10)"))) is None
    # A Dropout right after the Flatten is traced, the head starts after it (it used to fall back to the trace).
    assert head_start(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Dropout(0.5),Linear(2704,10)"))) == 4


CNN = "Conv2d(1,4,5,padding=2),ReLU(),MaxPool2d(2),Conv2d(4,6,3),ReLU(),MaxPool2d(2),Flatten(),Linear(216,12),ReLU(),Linear(12,10)"


def assert_head_same(data, arch, recipe, head_only=False, dispatches=None, spread=None):
    g, gh, gr = train(data, arch, recipe, "graph")
    c, ch, cr = train(data, arch, recipe, "compiled", head_only=head_only, spread=spread)
    assert (gr.engine, cr.engine) == ("graph", "compiled")
    assert len(cr.program) < len(gr.program) - 4, (len(cr.program), len(gr.program))
    if dispatches:
        assert len(cr.program) == dispatches
    labels = [d.label for d in cr.program.dispatches]
    assert labels.count("compiled:forward_backward") == labels.count("compiled:update") == 1
    for k in g:
        np.testing.assert_allclose(c[k], g[k], rtol=1e-3, atol=3e-5, err_msg=k)
    np.testing.assert_allclose(ch, gh, rtol=1e-4, atol=1e-5)


CNN_CASES = [      # (id, arch, recipe): compiled whole, and as a traced front with a compiled head
    ("cnn-sgd-cosine-shift", CNN,
     Recipe(epochs=2, batch_size=50, lr=0.05, momentum=0.9, shift=1, schedule="cosine", min_lr=0.01)),
    ("cnn-dropout-adam", CNN.replace("ReLU(),Linear(12,10)", "ReLU(),Dropout(0.3),Linear(12,10)"),
     Recipe(epochs=2, batch_size=50, optimizer="adam", lr=0.003, weight_decay=1e-3, seed=4)),
    ("stride2-no-relu-batch64", "Conv2d(1,3,3,stride=2),ReLU(),Flatten(),Linear(507,8),Linear(8,10)",
     Recipe(epochs=2, batch_size=64, lr=0.1, momentum=0.0, nesterov=False, shift=0, schedule="constant")),
]


def cases(extra):
    rows = CNN_CASES + extra
    return pytest.mark.parametrize("arch,recipe", [(a, r) for _, a, r in rows], ids=[i for i, _, _ in rows])


@cases([("cnn-dropout-after-flatten",
         "Conv2d(1,3,3,stride=2),ReLU(),Flatten(),Dropout(0.25),Linear(507,8),ReLU(),Linear(8,10)",
         Recipe(epochs=1, batch_size=50, lr=0.05, shift=1, seed=6))])
def test_compiled_head_of_a_convolutional_network(data, arch, recipe):
    """A CNN's compiled head (its Linear layers in two dispatches, taking the traced layers'
    features and handing back their gradient) trains exactly as the whole trace does: every
    parameter, conv ones included, and the loss history, over two epochs with a tail batch.
    Guards the feature read, the feature gradient, the gradients handed to the trace's
    optimizer, the step counter (advanced once) and the head's dropout draw. (The first three
    networks compile whole by default: the head alone is what a front too large for the
    workgroup memory gets.)"""
    assert_head_same(data, arch, recipe, head_only=True)


WHOLE_CASES = [       # more CNNs compiled whole (with CNN_CASES), and spread in test_spread_backward
    ("k7-overlapping-pool-relu-k1-batch7",
     "Conv2d(1,2,7,padding=3),MaxPool2d(3,stride=2),ReLU(),Conv2d(2,3,1),Flatten(),Linear(507,10)",
     Recipe(epochs=1, batch_size=7, lr=0.05, shift=2, seed=2)),
    ("pool-first-stride2-pad-pool-stride1",
     "MaxPool2d(2),Conv2d(1,4,3,stride=2,padding=1),MaxPool2d(2,stride=1),Flatten(),Linear(144,10)",
     Recipe(epochs=1, batch_size=50, lr=0.1, shift=1)),
    ("stride3-pad2-k2-no-relu-between-batch33",
     "Conv2d(1,2,3,stride=3,padding=2),Conv2d(2,3,2,stride=2,padding=1),ReLU(),Flatten(),Linear(108,10)",
     Recipe(epochs=1, batch_size=33, lr=0.1, shift=1, seed=8)),
    ("5-channels-pool3-in-registers-relu-after-pool",
     "Conv2d(1,5,4,padding=1),MaxPool2d(3),ReLU(),Flatten(),Linear(405,10)",
     Recipe(epochs=1, batch_size=50, lr=0.05, shift=1, seed=9)),
    ("400-weight-gradient-pairs-no-fold",
     "Conv2d(1,4,3,stride=2,padding=1),ReLU(),MaxPool2d(2),Conv2d(4,16,5,padding=2),ReLU(),Flatten(),Linear(784,10)",
     Recipe(epochs=1, batch_size=20, lr=0.05, shift=1)),
]


@cases(WHOLE_CASES)
def test_whole_convolutional_network_in_two_dispatches(data, arch, recipe):
    """The conv front compiled into the step's two dispatches (compute/conv_front.py) trains
    exactly as the autograd trace: every parameter and the loss history. Guards the in-pass
    gather, each conv's forward taps (stride, padding, kernel 1 / 2 / 7), a pool done in the
    conv's registers (2 x 2, and 3 x 3 over 5 channels: a partial group of 4), the max-pool arg-max
    and its gradient routing (ties, overlapping windows, a pool first, a ReLU after a pool),
    the ReLU masks, each conv's input gradient (strides that skip taps), the per-row weight and
    bias shares summed in pass 2 (more (tap, channel group) pairs than the fold holds: 4 x 4 x 25
    = 400, each summed whole by one invocation), and the batch tails (7, 33, 50 of 230)."""
    assert_head_same(data, arch, recipe, dispatches=2, spread=1)


SPREAD_PARTS = {"k7-overlapping-pool-relu-k1-batch7": 2, "pool-first-stride2-pad-pool-stride1": 4,
                "stride3-pad2-k2-no-relu-between-batch33": 4, "400-weight-gradient-pairs-no-fold": 3}


@pytest.mark.parametrize("arch,recipe,parts", [
    (CNN, Recipe(epochs=1, batch_size=50, lr=0.05, momentum=0.9, shift=1, seed=5), 3),
    *[(a, r, SPREAD_PARTS[i]) for i, a, r in WHOLE_CASES if i in SPREAD_PARTS],
    ("Conv2d(1,4,3,padding=1),ReLU(),MaxPool2d(2),ReLU(),Conv2d(4,6,3,stride=2),ReLU(),Flatten(),Linear(216,10)",
     Recipe(epochs=1, batch_size=9, lr=0.05, shift=1, seed=3), 2),
], ids=["cnn-3-parts", *[f"{i}-{SPREAD_PARTS[i]}-parts" for i, _, _ in WHOLE_CASES if i in SPREAD_PARTS],
        "stride2-input-grad-through-pool-relu-2-parts"])
def test_spread_backward(data, arch, recipe, parts):
    """The conv front's backward spread over (row, part) workgroups, one dispatch per conv (what
    small batches get on a GPU) trains exactly as the trace. Guards each part's share of the
    weight-gradient pairs (odd part counts leave a short last share; 400 pairs need no fold),
    of the input gradient (blocked and per-element), the bias done by the last part alone, the
    gradient routed back through a max-pool: scattered by whoever writes it where the windows
    tile (pass 1 for the last pool, the next conv's input gradient for one between convs, a ReLU
    after the pool), gathered while staged where they overlap; and the ReLU masks."""
    convs = arch.count("Conv2d")
    assert_head_same(data, arch, recipe, dispatches=2 + convs, spread=parts)


@pytest.mark.parametrize("batch", [64, 100, 130, 200, 256])
def test_large_batches_split_the_weight_gradient_rows(data, batch):
    """At 64+ rows the large weight gradient is summed by 2-8 invocations per weight and folded in
    workgroup memory; guards the slice stride, the fold and a tail shorter than one slice round.
    Batches 100 and 200 (3 and 6 slices before they were made a power of 2) had the fold's
    halving strides miss slices: the first layer trained on a wrong gradient."""
    assert_same(data, MLP, Recipe(epochs=2, batch_size=batch, lr=0.1, momentum=0.9, shift=1))


@pytest.mark.parametrize("batch,slices", [(50, 2), (50, 8), (64, 4)])
def test_pass2_row_slices(data, batch, slices):
    """The GPU picks pass 2's row slices by the network's size (a small network at batch 32 takes
    2; step_compiler.row_slices), the CPU by the batch alone: every count the GPU may pick, on
    vec4 columns with slices of unequal length (50 rows over 8) and on 4 x 4 tiles (batch 64)."""
    assert_same(data, MLP, Recipe(epochs=1, batch_size=batch, lr=0.1, shift=1), slices=slices)
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        train(data, MLP, Recipe(epochs=1, batch_size=batch), "compiled", slices=3)


@pytest.mark.parametrize("batch,merged", [(50, True), (64, True), (50, False)])
def test_gpu_workgroups_and_one_pipeline(data, batch, merged):
    """The GPU's 512 invocations a workgroup (the CPU runs 256), with both passes in one pipeline (the
    entry point branching on the grid's shape: the visualizer's small networks) and pass 2 then at 512
    too, and in two. Guards pass 2's reductions at 512 (vec4 columns at batch 50, 4 x 4 tiles over 2
    slices at 64) and both layouts."""
    arch = "Linear(784,64),ReLU(),Dropout(0.2),Linear(64,36),ReLU(),Linear(36,10)"
    assert_same(data, arch, Recipe(epochs=1, batch_size=batch, lr=0.1, shift=1), wg=512, merged=merged,
                slices=2 if batch == 64 else None)


def test_visualizer_run_merges_small_networks(data):
    """Run(encode_light=True) (the visualizer's, whose frame loop is CPU-bound) gets both passes in one
    pipeline for a small network and two for one whose pass 2 would lose more than the encoding saves."""
    recipe = Recipe(epochs=1, batch_size=50)
    small = Run(Sequential(parse(MLP), seed=3), data, recipe, encode_light=True).program.dispatches
    large = Run(Sequential(parse("Linear(784,400),ReLU(),Linear(400,10)"), seed=3), data, recipe,
                encode_light=True).program.dispatches
    plain = Run(Sequential(parse(MLP), seed=3), data, recipe).program.dispatches
    assert small[0].pipeline is small[1].pipeline
    assert large[0].pipeline is not large[1].pipeline and plain[0].pipeline is not plain[1].pipeline
    # the window's other runs side by side are encoded by the same frame loop
    from mnist_viz.compute.comparison import Comparison
    other = Comparison(data, encode_light=True).add(Sequential(parse(MLP), seed=4), recipe).run.program.dispatches
    assert other[0].pipeline is other[1].pipeline


@pytest.mark.parametrize("staging", [1031, 2055])
def test_conv_front_gradient_staged_in_pieces(data, staging):
    """A conv output larger than the workgroup memory left for it: its gradient is staged 4 or 8
    channels at a time for the weight gradients (1031 floats: four 16 x 16 planes of the second
    conv, with its zero border, and the strips' overrun; 2055: eight, so its 12 channels leave a
    piece of 4, while the first conv's 8 fit whole), and the second conv's input gradient reads
    it from scratch. Guards the channel offsets of each piece and the unstaged input-gradient path."""
    arch = ("Conv2d(1,8,3,stride=2,padding=1),ReLU(),Conv2d(8,12,3,padding=1),ReLU(),MaxPool2d(2),Flatten(),"
            "Linear(588,10)")
    recipe = Recipe(epochs=1, batch_size=50, lr=0.05, shift=1)
    g, gh, _ = train(data, arch, recipe, "graph")
    model = Sequential(parse(arch), seed=3)
    run = Run(model, data, recipe, engine="compiled")
    step = CompiledStep(model, data, run.metrics, run.optimizer, recipe, grad_staging=staging, spread=1)
    assert step.fg == staging and len(step.program) == 2
    run.program = step.program
    run.run_steps(run.total_steps)
    c = model.state_dict()
    for k in g:
        np.testing.assert_allclose(c[k], g[k], rtol=1e-3, atol=3e-5, err_msg=k)
    np.testing.assert_allclose(run.metrics.read_history(0, run.total_steps), gh, rtol=1e-4, atol=1e-5)


# Large enough for every layer but the last to be shared out over a row's parts
# (step_compiler.PART_SPLIT_MIN), each of them split both ways: three forward syncs, one backward.
PARTS_MLP = "Linear(784,128),ReLU(),Linear(128,512),ReLU(),Dropout(0.2),Linear(512,128),ReLU(),Linear(128,10)"


@pytest.mark.parametrize("parts,batch,rows,recipe", [
    (2, 50, None, Recipe(epochs=2, batch_size=50, lr=0.1, min_lr=0.01, schedule="cosine", shift=2, seed=5)),
    (4, 37, 2, Recipe(epochs=1, batch_size=37, lr=0.05, momentum=0.9, weight_decay=1e-3, shift=1)),
    (8, 64, None, Recipe(epochs=1, batch_size=64, lr=0.05, momentum=0.9, schedule="step", gamma=0.5)),
], ids=["2-parts-sgd-cosine", "4-parts-2-rows-nesterov-wd-tail", "8-parts-momentum-step"])
def test_row_parts(data, device, parts, batch, rows, recipe):
    """Each batch row's pass 1 shared over 2-8 workgroups (each a share of every large layer's outputs
    and input gradient, the small last layer done by all alike), meeting at row syncs: equal to the
    trace. On a GPU the syncs are barriers inside one dispatch; on a CPU adapter (lavapipe runs a
    dispatch's workgroups one after another) each is a dispatch boundary, the row's state read
    back from scratch: both run the same generated phases."""
    syncs = 4
    assert_same(data, PARTS_MLP, recipe, rows=rows, parts=parts, dispatches=2 + syncs if device.is_cpu else 2)


def test_row_parts_choice_and_fallback(data, device):
    """What the parts apply to, and a row sync that gave up (FLAG_STALLED, as a GPU that cannot
    hold a row's parts at once raises it): the run goes back to its snapshot, on with one part."""
    from mnist_viz.compute.structs import FLAG_STALLED
    recipe = Recipe(epochs=2, batch_size=50, lr=0.1, shift=0)
    small = Run(Sequential(parse(MLP), seed=3), data, recipe)
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        CompiledStep(small.model, data, small.metrics, small.optimizer, recipe, parts=3)
    # a network with no layer large enough to share out runs one part a row whatever is asked
    assert CompiledStep(small.model, data, small.metrics, small.optimizer, recipe, parts=4).P == 1
    run = Run(Sequential(parse(PARTS_MLP), seed=3), data, recipe, engine="compiled")
    run.parts = 4
    run.program = run._build_step()
    assert len(run.program) == (6 if device.is_cpu else 2)
    run.run_steps(run.steps_per_epoch + 2)
    run.metrics.write_state(flags=FLAG_STALLED)
    assert not run.diverged(run.read_flags())
    assert run.parts == 1 and len(run.program) == 2
    state = run.metrics.read_state()
    assert (state["flags"], state["step"]) == (0, run.steps_per_epoch)
    run.run_steps(run.total_steps)
    assert run.finished and run.read_flags() == 0


@pytest.mark.parametrize("tile,batch,wg", [(4, 64, None), (8, 130, None), (16, 130, None), (8, 100, 512),
                                           (16, 64, 512)])
def test_pass2_staged_gemm(data, monkeypatch, tile, batch, wg):
    """Pass 2's weight gradients from batch 64 on: a blocked GEMM whose rows go through workgroup
    memory a chunk at a time (step_compiler._gemm_weight). Odd blocks: 784 inputs are 196 vec4s
    (24.5 blocks of 8), 36 outputs 9 vec4s (a block of 8 and one of 1), 200 outputs 50; a batch
    tail shorter than a chunk (230 images: 38 rows at 64, 100 at 130); 1 to 16 row slices a
    workgroup (tiles of 16, 8, 4 at 256 and 512 invocations) folded; Adam's moments per weight."""
    from mnist_viz.compute import step_compiler
    monkeypatch.setattr(step_compiler, "GEMM_TILE", tile)
    arch = "Linear(784,36),ReLU(),Linear(36,200),ReLU(),Linear(200,10)"
    recipe = Recipe(epochs=1, batch_size=batch, optimizer="adam", lr=0.01, shift=1)
    model = Sequential(parse(arch), seed=3)
    run = Run(model, data, recipe)
    step = CompiledStep(model, data, run.metrics, run.optimizer, recipe, wg=wg)
    assert step._staged_gemm and "gx[" in step.source
    assert_same(data, arch, recipe, wg=wg)
