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
from mnist_viz.compute.step_compiler import CompiledStep, head_start, supported


@pytest.fixture(scope="module")
def data(mnist):
    return GpuDataset(mnist, limit=230)        # batch 50: 4 full steps and a tail of 30 every epoch


def train(data, arch, recipe, engine, rows=None):
    model = Sequential(parse(arch), seed=3)
    run = Run(model, data, recipe, engine=engine)
    if rows is not None:
        run.program = CompiledStep(model, data, run.metrics, run.optimizer, recipe, rows=rows).program
    run.run_steps(run.total_steps)
    return model.state_dict(), run.metrics.read_history(0, run.total_steps), run


def assert_same(data, arch, recipe, rows=None):
    g, gh, gr = train(data, arch, recipe, "graph")
    c, ch, cr = train(data, arch, recipe, "compiled", rows)
    assert (gr.engine, cr.engine, len(cr.program)) == ("graph", "compiled", 2)
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
    "Linear(784,30),ReLU(),Dropout(0.3),Linear(30,7),ReLU(),Linear(7,10)",  # dropout, widths not x4
    "Flatten(),Linear(784,16),ReLU(),Linear(16,10)",                         # PyTorch's leading Flatten
    "Linear(784,10)",                                                        # no hidden layer
    "Linear(784,24),Linear(24,10)",                                          # no activation between
])
def test_layer_shapes_and_dropout(data, arch):
    """Guards the layer plan: indices, offsets, scalar paths for widths not a multiple of 4, the
    dropout mask (the trace's hash) and its backward, activations left out."""
    assert_same(data, arch, Recipe(epochs=1, batch_size=50, lr=0.1, shift=1))


@pytest.mark.parametrize("rows", [2, 3, 4])
def test_rows_per_workgroup(data, rows):
    """R rows share a workgroup at large batches (R=2, 4 on GPUs); guards the unrolled row registers and a
    last workgroup with fewer rows (50 = 12 x 4 + 2)."""
    assert_same(data, "Linear(784,64),ReLU(),Dropout(0.2),Linear(64,10)",
                Recipe(epochs=1, batch_size=50, lr=0.1, shift=1), rows=rows)


def test_what_the_compiler_covers():
    """A whole MLP compiles; a convolutional network compiles its dense head, from the first
    Linear after the last Flatten, when everything from there is Linear / ReLU / Dropout."""
    assert not supported(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Linear(2704,10)")))
    assert supported(Sequential(parse("Linear(784,10)")))
    assert head_start(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Linear(2704,10)"))) == 3
    assert head_start(Sequential(parse("Conv2d(1,4,3),MaxPool2d(2),Flatten(),Linear(676,16),ReLU(),Dropout(0.2),"
                                       "Linear(16,10)"))) == 3
    assert head_start(Sequential(parse("Linear(784,10)"))) is None           # an MLP: the whole step
    assert head_start(Sequential(parse("Flatten(),Linear(784,10)"))) is None
    # A Dropout right after the Flatten is traced, the head starts after it (it used to fall back to the trace).
    assert head_start(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Dropout(0.5),Linear(2704,10)"))) == 4


CNN = "Conv2d(1,4,5,padding=2),ReLU(),MaxPool2d(2),Conv2d(4,6,3),ReLU(),MaxPool2d(2),Flatten(),Linear(216,12),ReLU(),Linear(12,10)"


def assert_head_same(data, arch, recipe):
    g, gh, gr = train(data, arch, recipe, "graph")
    c, ch, cr = train(data, arch, recipe, "compiled")
    assert (gr.engine, cr.engine) == ("graph", "compiled")
    assert len(cr.program) < len(gr.program) - 4, (len(cr.program), len(gr.program))
    labels = [d.label for d in cr.program.dispatches]
    assert labels.count("compiled:forward_backward") == labels.count("compiled:update") == 1
    for k in g:
        np.testing.assert_allclose(c[k], g[k], rtol=1e-3, atol=3e-5, err_msg=k)
    np.testing.assert_allclose(ch, gh, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch,recipe", [
    (CNN, Recipe(epochs=2, batch_size=50, lr=0.05, momentum=0.9, shift=1, schedule="cosine", min_lr=0.01)),
    (CNN.replace("ReLU(),Linear(12,10)", "ReLU(),Dropout(0.3),Linear(12,10)"),
     Recipe(epochs=2, batch_size=50, optimizer="adam", lr=0.003, weight_decay=1e-3, seed=4)),
    ("Conv2d(1,3,3,stride=2),ReLU(),Flatten(),Linear(507,8),Linear(8,10)",
     Recipe(epochs=2, batch_size=64, lr=0.1, momentum=0.0, nesterov=False, shift=0, schedule="constant")),
    ("Conv2d(1,3,3,stride=2),ReLU(),Flatten(),Dropout(0.25),Linear(507,8),ReLU(),Linear(8,10)",
     Recipe(epochs=1, batch_size=50, lr=0.05, shift=1, seed=6)),
], ids=["cnn-sgd-cosine-shift", "cnn-dropout-adam", "cnn-stride-no-relu-batch64", "cnn-dropout-after-flatten"])
def test_compiled_head_of_a_convolutional_network(data, arch, recipe):
    """A CNN's compiled head (its Linear layers in two dispatches, taking the traced layers'
    features and handing back their gradient) trains exactly as the whole trace does: every
    parameter, conv ones included, and the loss history, over two epochs with a tail batch.
    Guards the feature read, the feature gradient, the gradients handed to the trace's
    optimizer, the step counter (advanced once) and the head's dropout draw."""
    assert_head_same(data, arch, recipe)


@pytest.mark.parametrize("batch", [64, 130, 256])
def test_large_batches_split_the_weight_gradient_rows(data, batch):
    """At 64+ rows the large weight gradient is summed by 2-8 invocations per weight and folded in
    workgroup memory; guards the slice stride, the fold and a tail shorter than one slice round."""
    assert_same(data, MLP, Recipe(epochs=2, batch_size=batch, lr=0.1, momentum=0.9, shift=1))
