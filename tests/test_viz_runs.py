"""Runs side by side in the window: the overlaid curves (viz/plots.py), each run's class of
the painted digit in the one readout (viz/readout.py, shaders/run_stats.wgsl), and the
Runs panel's actions (add, pause, step, remove, show). Expected values come from numpy."""
import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from mnist_viz.compute.program import Program


def encode(dispatches):
    dev = get_device()
    enc = dev.device.create_command_encoder()
    Program(dispatches).encode(enc)
    dev.submit(enc)


def fill_history(metrics, acc: np.ndarray) -> None:
    """A run's ring with these batch accuracies (loss 1), as if it had taken len(acc) steps."""
    rows = np.stack([np.ones_like(acc), acc], 1).astype(np.float32)
    get_device().queue.write_buffer(metrics.history.buffer, 0, rows.tobytes())
    metrics.steps = len(acc)


def test_overlaid_plot_has_each_runs_colour_where_numpy_puts_its_curve():
    """Guards against the other runs' curves being binned from the wrong ring, over the wrong
    step range (a shorter run stretched over the plot's width), into the wrong block of
    columns, or drawn in another run's colour: at every column, the pixel on the row numpy
    computes for each run's value has that run's colour, so do its test-accuracy dots, and
    a run that stopped at half the steps has no colour past its last step."""
    from mnist_viz.compute.metrics import RunMetrics
    from mnist_viz.viz.plots import ACCURACY, RUN_COLOURS, CurvePlot
    w, h = 300, 120
    rng = np.random.default_rng(5)
    main, first, second = (RunMetrics(10) for _ in range(3))
    values = {main: rng.uniform(0.75, 0.95, w), first: rng.uniform(0.45, 0.6, w), second: rng.uniform(0.1, 0.25, w // 2)}
    for m, acc in values.items():
        fill_history(m, acc)
    tests = [(60, 0.70), (150, 0.68), (240, 0.71)]        # the first other run's evaluations (step, accuracy)
    raw = np.array([(s, np.float32(a).view(np.uint32)) for s, a in tests], np.uint32)
    get_device().queue.write_buffer(first.evals, 0, raw.tobytes())
    first.evaluations = len(tests)
    slots = {main: 2, first: 0, second: 3}
    plot = CurvePlot(ACCURACY, main, size=(w, h))
    plot.smooth = 1            # one step per column, the line through each step's value
    plot.bind_runs(main, [(first, slots[first]), (second, slots[second])], main_slot=slots[main])
    encode(plot.dispatches())
    tex = plot.texture.read()[..., :3].astype(int)

    def colour(m):
        return np.round(np.array(RUN_COLOURS[slots[m]]) * 255).astype(int)

    def row(v):              # plots.wgsl row_of on the accuracy axis [0, 1]
        return int(np.floor((1 - v) * (h - 1) + 0.5))

    for m, acc in values.items():
        want = colour(m)
        for x in range(1, len(acc)):
            got = tex[row(acc[x]), x]
            assert np.abs(got - want).max() <= 2, (slots[m], x, got, want)
    for step, a in tests:                                 # its test-accuracy dots, in its colour
        got = tex[row(a), step]
        assert np.abs(got - colour(first)).max() <= 2, (step, got)
    tail = tex[:, w // 2 + 2:]
    assert not (np.abs(tail - colour(second)).max(axis=-1) <= 2).any()      # the short run ends where it ended


@pytest.fixture
def app(tmp_path):
    from rendercanvas.offscreen import RenderCanvas
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.viz.app import App, AppConfig
    from mnist_viz.viz.pacing import SPEEDS
    from mnist_viz.viz.session import WatchSettings
    canvas = RenderCanvas(size=(1100, 700))       # the smallest window the layout is made for
    a = App(canvas, AppConfig(background_load=False, limit=256, test_limit=64, autosave=False, paint_demo=True,
                              arch="Linear(784,16),ReLU(),Linear(16,10)", recipe=Recipe(batch_size=16, epochs=2),
                              watch=WatchSettings(speed=[v for v, _ in SPEEDS].index(1))))
    assert a.wait_for_data()
    yield a
    a.fence.drain()
    a.rc.close()


def numpy_probs(model, x: np.ndarray) -> np.ndarray:
    """The MLP's softmax on one input, from its weights (PyTorch layout), in float64."""
    sd = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    layers = sorted({int(k.split(".")[0]) for k in sd})
    h = x.astype(np.float64)
    for k, i in enumerate(layers):
        h = h @ sd[f"{i}.weight"].T + sd[f"{i}.bias"]
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
    e = np.exp(h - h.max())
    return e / e.sum()


def frames(app, n):
    for _ in range(n):
        app.draw_offscreen()


def test_readout_gives_every_runs_class_of_the_canvas_in_one_read(app, wgpu_reads):
    """Guards against a run's row showing another run's class (a forward pass bound to the
    wrong model, a RunReadout at the wrong offset) and against extra reads: each run's
    class and probability equal numpy's forward pass of that run's weights on the canvas
    input, and all of them arrive in reads of at most READ_BYTES_MAX bytes, nothing else
    being read back."""
    import time
    from mnist_viz.viz.actions import Action
    from mnist_viz.viz.readout import READ_BYTES_MAX
    app.actions.emit(Action.ADD_RUN, "seed=5 hidden=24")
    app.actions.emit(Action.ADD_RUN, "adam seed=9 arch=Linear(784,10)")
    app.actions.emit(Action.ADD_RUN, "seed=11 hidden=8,8")
    frames(app, 3)
    others = app.session.others
    assert [e.slot for e in others] == [1, 2, 3] and app.session.message.startswith("added"), app.session.message
    app.actions.emit(Action.ADD_RUN, "seed=12")         # a fifth run: refused with a message
    frames(app, 1)
    assert len(app.session.others) == 3 and "at most" in app.session.message
    wgpu_reads.reset()
    t0 = time.perf_counter()
    app.readout.last_start = -1e9
    for _ in range(6):
        frames(app, 1)
        time.sleep(0.1)
    app.fence.drain()
    if app.readout.pending is None:      # the last frame picked its read up already: one more read
        app.readout.last_start = -1e9
        frames(app, 1)
    deadline = time.perf_counter() + 30
    while not app.readout.poll():
        assert time.perf_counter() < deadline, "no readout arrived in 30 s"
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    reads = wgpu_reads.excluding(wgpu_reads.OFFSCREEN_FRAME)
    assert reads and all(n == READ_BYTES_MAX for _, n in reads), reads
    assert len(reads) <= elapsed / 0.25 + 2
    from test_viz_ux import overflow
    app.ui.select_tabs |= {"Runs", "Curves"}
    frames(app, 2)
    for name, (dx, dy) in overflow(app).items():        # four runs' rows, buttons, mosaics and legend fit
        assert dx <= 1 and dy <= 1, (name, dx, dy)
    x = np.frombuffer(get_device().read(app.canvas.x.buffer), np.float32)[:784]
    assert x.max() > 0.5                                # the demo digit is on the canvas
    vals = app.readout.values
    p = numpy_probs(app.model, x)
    assert vals["pred"] == p.argmax() and abs(vals["pred_prob"] - p.max()) < 1e-4
    for e in others:
        r = vals["runs"][id(e.metrics)]
        p = numpy_probs(e.model, x)
        assert r["pred"] == p.argmax() and abs(r["pred_prob"] - p.max()) < 1e-4, (e.name, r, p)
        assert r["test_acc"] < 0                         # not evaluated yet


def test_runs_panel_actions_pause_step_remove_and_show(app):
    """Guards against the panel's actions reaching the wrong run, a paused run training,
    a removed run still drawn, and 'show' leaving the views on the old model: after
    'show', the main views, the curves and the Training panel follow the shown run while
    the former main run trains on beside it."""
    from mnist_viz.viz.actions import Action
    app.actions.emit(Action.ADD_RUN, "sgd lr=0.05 seed=3 hidden=8")
    app.actions.emit(Action.ADD_RUN, None)              # a copy of the current settings
    app.actions.emit(Action.TRAIN)
    frames(app, 3)
    a, b = app.session.others
    assert a.metrics.steps == b.metrics.steps > 0 and app.metrics.steps > 0
    app.actions.emit(Action.PAUSE_RUN, a.slot)
    frames(app, 2)
    held, going = a.metrics.steps, b.metrics.steps
    app.actions.emit(Action.STEP_RUN, a.slot)
    frames(app, 2)
    assert a.metrics.steps == held + 1 and a.paused and b.metrics.steps == going + 2
    app.actions.emit(Action.REMOVE_RUN, b.slot)
    frames(app, 1)
    assert app.session.others == [a] and len(app.other_views) == 1
    assert app.plots.loss.others == [(a.metrics, a.slot)]
    main_model, main_metrics = app.model, app.metrics
    app.actions.emit(Action.SHOW_RUN, a.slot)
    frames(app, 2)
    assert app.session.name == "sgd lr=0.05 seed=3 hidden=8" and app.model.arch.short == "784-8-10"
    assert app.metrics is app.session.run.metrics and app.plots.loss.metrics is app.metrics
    # the views draw the timeline's display copy of the shown run's weights
    assert app.timeline.live is app.model and app.model_views.model is app.timeline.display
    assert app.session.recipe.lr == 0.05
    former = app.session.others[0]
    assert former.model is main_model and former.metrics is main_metrics and not former.paused
    before = former.metrics.steps
    frames(app, 2)
    assert former.metrics.steps > before                  # the former main run trains on beside it


def test_a_run_the_panel_cannot_add_names_the_key_as_written(app):
    """Guards against the Runs panel's field (the --compare syntax) reporting a bad arch= or a
    too-wide hidden= with no name, or with train's --arch / --hidden, which the user did not
    type there: the message names the key as written, as `train --compare` does, and no run
    is added."""
    from mnist_viz.viz.actions import Action
    for text, head in (("arch=Linear(3,10)", "arch=Linear(3,10): layer 0 Linear(3,10): takes 3 inputs"),
                       ("arch=Linear(784,5)", "arch=Linear(784,5): layer 0 Linear(784,5) gives 5 class scores"),
                       ("seed=2 hidden=65535", "hidden=65535: the model 784-65535-10 has")):
        app.actions.emit(Action.ADD_RUN, text)
        frames(app, 1)
        message = app.session.message
        assert message.startswith(f"cannot add the run: {head}") and "--" not in message, message
        assert app.session.others == []
    assert "; use hidden=" in message


def test_batch_size_combo_lists_a_shown_runs_size_outside_the_presets():
    """Guards against the Training panel's batch size combo showing 64 (its fallback) while the
    main run trains at another size: a run added as 'batch=7' and then shown from the Runs
    tab keeps batch 7, and the combo's items hold 7, selected; a preset is selected as itself."""
    from mnist_viz.viz.panels.training import batch_choices
    from mnist_viz.viz.session import BATCH_SIZES
    sizes, i = batch_choices(7)
    assert sizes[i] == 7 and set(BATCH_SIZES) <= set(sizes) and sizes == sorted(sizes)
    sizes, i = batch_choices(64)
    assert sizes == list(BATCH_SIZES) and sizes[i] == 64


def test_another_runs_evaluation_takes_its_share_of_frames(app):
    """Guards against another run's evaluation landing in one frame whatever it costs (a CNN's
    10,000 test images were 120 ms of one frame on the H100, seconds on lavapipe): its pieces
    are the size the main run learned (a queued evaluation is re-cut), they take a run's share
    of the frame budget at the pacer's cost of a piece (counted in the frame's extras, which the
    pacer learns from), and the evaluation scores what one in a single piece does."""
    from mnist_viz.compute.evaluation import Evaluation
    from mnist_viz.compute.metrics import RunMetrics
    from mnist_viz.viz.actions import Action
    s = app.session
    app.actions.emit(Action.ADD_RUN, "sgd lr=0.05 seed=3 hidden=8")
    frames(app, 1)
    (other,) = s.others
    assert other.run.evaluation.chunk == 64                   # the whole test subset in one piece
    s.comparison.evaluate(other)
    s.eval_macs = 16 * other.run.model.arch.macs()          # as if the main run had learned pieces of 16 rows
    s.pacer.extra_cost["evaluation"] = s.pacer.budget_s / 2 / 2.5    # a run's half of the frame holds 2.5
    dev = get_device()
    for left in (2, 0):
        s.frame_extras = {}
        enc = dev.device.create_command_encoder()
        s._encode_others(enc)
        dev.submit(enc)
        assert other.run.evaluation.chunk == 16 and len(other.evaluating) == left, len(other.evaluating)
        assert s.frame_extras == {"evaluation": 2}
    got = other.metrics.read_evaluation()
    alone = RunMetrics(s.data.num_classes)
    enc = dev.device.create_command_encoder()
    Evaluation(other.model, s.data, alone).encode(enc)
    dev.submit(enc)
    want = alone.read_evaluation()
    assert got["correct"] == want["correct"] and got["accuracy"] == want["accuracy"], (got, want)
