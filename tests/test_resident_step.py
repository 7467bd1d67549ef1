"""The resident step (many steps of an MLP in one dispatch, compute/resident_step.py) equals the
autograd trace step by step: every optimizer and schedule, the augmentation draw, the epoch's
short tail batch, depths 1-3 hidden layers, widths not a multiple of 4 or of the workgroup count,
in both modes: phase mode (a dispatch per phase, G workgroups) and the persistent kernel (one
dispatch a chunk, its phases meeting at barriers across the grid; on lavapipe one workgroup,
whose workgroups cannot be known to run at once; on a GPU the default 128)."""
import numpy as np
import pytest

from mnist_viz.compute.arch import parse
from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.device import get_device
from mnist_viz.compute.nn import Sequential
from mnist_viz.compute.recipe import Recipe
from mnist_viz.compute.resident_step import ResidentProgram, ResidentStep, resident_supported
from mnist_viz.compute.run import Run
from mnist_viz.compute.structs import FLAG_STALLED


@pytest.fixture(scope="module")
def data(mnist):
    return GpuDataset(mnist, limit=230)        # batch 50: 4 full steps and a tail of 30 every epoch


def train(data, arch, recipe, resident=False, **kw):
    model = Sequential(parse(arch), seed=3)
    run = Run(model, data, recipe, engine="graph")
    if resident:
        run.program = ResidentStep(model, data, run.metrics, run.optimizer, recipe, **kw).program
    run.run_steps(run.total_steps)
    return model.state_dict(), run.metrics.read_history(0, run.total_steps), run


_REFERENCE = {}


def reference(data, arch, recipe):
    """The trace's weights and history, trained once per (network, recipe) for both modes."""
    key = (arch, recipe)
    if key not in _REFERENCE:
        _REFERENCE[key] = train(data, arch, recipe)[:2]
    return _REFERENCE[key]


def assert_same(data, arch, recipe, **kw):
    g, gh = reference(data, arch, recipe)
    c, ch, run = train(data, arch, recipe, resident=True, **kw)
    for k in g:
        np.testing.assert_allclose(c[k], g[k], rtol=1e-3, atol=3e-5, err_msg=k)
    np.testing.assert_allclose(ch, gh, rtol=1e-4, atol=1e-5)
    state = run.metrics.read_state()
    assert (state["step"], state["run_step"], state["flags"]) == (run.total_steps, run.total_steps, 0)


MLP = "Linear(784,32),ReLU(),Linear(32,10)"
PHASES = dict(persistent=False, groups=3)
PERSISTENT = dict(persistent=True, groups=1 if get_device().is_cpu else 128)


SGD_COSINE = Recipe(epochs=2, batch_size=50, lr=0.1, min_lr=0.01, schedule="cosine", shift=2, seed=5)
ADAM = Recipe(epochs=2, batch_size=50, optimizer="adam", lr=0.01, schedule="exponential", gamma=0.7, shift=1)
NESTEROV = Recipe(epochs=2, batch_size=50, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, schedule="step",
                  gamma=0.5)


@pytest.mark.parametrize("recipe,mode", [
    (SGD_COSINE, PHASES), (ADAM, PHASES), (ADAM, PERSISTENT), (NESTEROV, PHASES),
], ids=["sgd-cosine-shift-phases", "adam-exponential-phases", "adam-exponential-persistent",
        "nesterov-wd-step-phases"])
def test_optimizers_and_schedules(data, recipe, mode):
    """The optimizer rule, the schedule read per step inside one dispatch, the shifted pixels and
    the tail batch (30 of 50 rows) in the generated phases."""
    assert_same(data, MLP, recipe, **mode)


@pytest.mark.parametrize("arch,mode", [
    ("Linear(784,64),ReLU(),Linear(64,20),ReLU(),Linear(20,10)", PHASES),                   # two hidden layers
    ("Linear(784,48),ReLU(),Linear(48,13),ReLU(),Linear(13,7),ReLU(),Linear(7,10)", PHASES),  # three; widths below G
    ("Linear(784,48),ReLU(),Linear(48,13),ReLU(),Linear(13,7),ReLU(),Linear(7,10)", PERSISTENT),
    ("Linear(784,24),Linear(24,10)", PHASES),                                                # no activation
    ("Flatten(),Linear(784,9),ReLU(),Linear(9,10)", PHASES),                                 # leading Flatten
], ids=["2-hidden-phases", "3-hidden-phases", "3-hidden-persistent", "linear-phases", "flatten-phases"])
def test_depths_and_widths(data, arch, mode):
    """Where each update goes (the first phase after every read of the old weights) at depths 1-3,
    units owned unevenly (13 over 3 workgroups), and the layer plan's indices."""
    assert_same(data, arch, Recipe(epochs=1, batch_size=50, lr=0.1, shift=1), **mode)


def test_unshifted_images_read_as_words(data):
    """Without augmentation the first layer reads its staged images a word (4 pixels) at a time;
    with it, a pixel at a time through the row's drawn shift (the other tests). On a GPU the
    persistent kernel keeps the batch's images from the forward to the update."""
    assert_same(data, "Linear(784,40),ReLU(),Linear(40,13),ReLU(),Linear(13,10)",
                Recipe(epochs=2, batch_size=50, lr=0.1, shift=0), **(PHASES if get_device().is_cpu else PERSISTENT))


def test_batch_wider_than_a_workgroup(data):
    """Batch 300 (above the 230 samples: one short batch an epoch; rows in blocks of 256)."""
    assert_same(data, "Linear(784,20),ReLU(),Linear(20,10)", Recipe(epochs=2, batch_size=300, lr=0.1, shift=0),
                persistent=False, groups=2)


def test_what_it_covers_and_how_a_chunk_encodes(data):
    """MLPs with a hidden layer and no dropout; the Run takes it when asked (opt-in until it beats
    the two-pass step), and a chunk is one dispatch in the persistent mode."""
    assert resident_supported(Sequential(parse(MLP)))
    assert not resident_supported(Sequential(parse("Linear(784,10)")))
    assert not resident_supported(Sequential(parse("Linear(784,30),ReLU(),Dropout(0.3),Linear(30,10)")))
    assert not resident_supported(Sequential(parse("Conv2d(1,4,3),ReLU(),Flatten(),Linear(2704,10)")))
    recipe = Recipe(epochs=1, batch_size=50, lr=0.1)
    run = Run(Sequential(parse(MLP), seed=3), data, recipe, resident=True)
    assert isinstance(run.program, ResidentProgram)
    assert not isinstance(Run(Sequential(parse(MLP), seed=3), data, recipe, resident=False).program, ResidentProgram)
    assert not isinstance(Run(Sequential(parse(MLP), seed=3), data, recipe).program, ResidentProgram)
    step = ResidentStep(Sequential(parse(MLP), seed=3), data, run.metrics, run.optimizer, recipe, persistent=True,
                        groups=1)
    assert len(step.chunk_dispatches(700)) == 1
    phases = ResidentStep(Sequential(parse(MLP), seed=3), data, run.metrics, run.optimizer, recipe,
                          persistent=False, groups=3)
    # one hidden layer: f0, top a step, the last step's pending updates once
    assert [d.label for d in phases.chunk_dispatches(2)] == [
        "resident:first", "resident:phase_top", "resident:uf0", "resident:phase_top", "resident:u"]


def test_a_stalled_chunk_falls_back_to_the_two_pass_step(data):
    """A GPU that cannot hold every workgroup at once makes the barrier give up and raise
    FLAG_STALLED (as here, written as the kernel would): not a divergence; the run goes back to
    its epoch-start snapshot and finishes with the two-pass step."""
    recipe = Recipe(epochs=2, batch_size=50, lr=0.1, shift=0)
    run = Run(Sequential(parse(MLP), seed=3), data, recipe, resident=True)
    run.run_steps(run.steps_per_epoch + 2)
    assert isinstance(run.program, ResidentProgram) and run.snapshot_step == run.steps_per_epoch
    run.metrics.write_state(flags=FLAG_STALLED)
    assert not run.diverged(run.read_flags())
    assert not isinstance(run.program, ResidentProgram)
    state = run.metrics.read_state()
    assert (state["flags"], state["step"], run.step) == (0, run.steps_per_epoch, run.steps_per_epoch)
    run.run_steps(run.total_steps)
    assert run.finished and run.read_flags() == 0
