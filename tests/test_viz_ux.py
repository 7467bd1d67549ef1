"""The visualizer as a first-time user meets it: class names, an empty canvas, a loaded
sample or mistake, the running test estimate, truthful status text, loading, and a
layout with nothing clipped at three window sizes (offscreen, on whatever adapter wgpu finds).
"""
import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mnist_viz.compute.device import get_device
from mnist_viz.compute.evaluation import Evaluation
from mnist_viz.compute.metrics import RunMetrics
from mnist_viz.compute.nn import Sequential
from mnist_viz.compute.evaluation import piece_rows
from mnist_viz.viz.session import EVAL_PIECE_SHARE
from conftest import act, speed_index
from test_viz_app import make_app, settings, write_band_dataset  # noqa: F401 - the fixture

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                                   reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def frames(app, n=1):
    for _ in range(n):
        app.draw_offscreen()


def read_values(app):
    """Frames until a readout packed after the queued actions has arrived, of the canvas shown
    now (the test reads every frame; the app 4 times a second): the frame that runs the
    actions packs, the next picks the read up."""
    app.readout.interval = 0.0
    for i in range(8):
        app.draw_offscreen()
        app.fence.drain()
        if i >= 2 and app.readout.canvas_current and app.readout.values:
            break
    return app.readout.values


def probs_of(app):
    c = app.metrics.num_classes
    return np.frombuffer(get_device().read(app.forward.probs.buffer), np.float32)[:c]


# -- class names -----------------------------------------------------------------------------------

def test_class_names_come_from_classes_txt_else_numbers(tmp_path, capsys):
    """Guards against names from the wrong source or misaligned with the classes: a classes.txt
    names them in order (a short one numbers the rest, with a warning); without it they are the
    numbers, and only 28 x 28 digits count as MNIST-like (the canvas normaliser's switch)."""
    from mnist_viz.viz.classes import class_info
    write_band_dataset(tmp_path / "bands")
    info = class_info(tmp_path / "bands", 3, (9, 12))
    assert info.names == ("0", "1", "2") and info.numbered and not info.mnist_like and not info.is_mnist
    (tmp_path / "bands" / "classes.txt").write_text("top band\nmiddle band\nbottom band\n\n")
    info = class_info(tmp_path / "bands", 3, (9, 12))
    assert info.names == ("top band", "middle band", "bottom band") and info.source == "classes.txt"
    assert not info.mnist_like and info.name(1) == "middle band" and info.name(None) == "?"
    (tmp_path / "bands" / "classes.txt").write_text("top band\n")
    assert class_info(tmp_path / "bands", 3, (9, 12)).names == ("top band", "1", "2")
    assert "1 name for 3 classes" in capsys.readouterr().err
    (tmp_path / "bands" / "classes.txt").write_text("chat noir é\n狗\nbottom\n", encoding="utf-8")
    assert class_info(tmp_path / "bands", 3, (9, 12)).names == ("chat noir é", "狗", "bottom")
    err = capsys.readouterr().err
    assert "characters outside ASCII ('chat noir é' and 1 more) are drawn as '?'" in err, err
    mnist = class_info(None, 10, (28, 28))
    assert mnist.mnist_like and mnist.is_mnist and mnist.names[7] == "7"


def test_mnist_in_another_directory_is_recognised_by_its_test_labels(tmp_path):
    """A copy of MNIST under --data is still MNIST (the pretrained model and the normaliser
    apply); recognised by the MD5 of the test labels, not by the directory's name."""
    from mnist_viz.compute.idx import bundled_mnist_dir
    from mnist_viz.viz.classes import class_info
    shutil.copytree(bundled_mnist_dir(), tmp_path / "digits")
    info = class_info(tmp_path / "digits", 10, (28, 28))
    assert info.is_mnist and info.mnist_like


@needs_fashion
def test_fashion_mnist_is_recognised_by_the_md5_of_its_test_labels(tmp_path):
    """Debian re-gzips the files (the .gz MD5 differs from the published one): the decompressed
    content's MD5 still identifies them, wherever they are copied."""
    from mnist_viz.viz.classes import FASHION_MNIST, class_info
    shutil.copytree(FASHION_DIR, tmp_path / "clothes")
    info = class_info(tmp_path / "clothes", 10, (28, 28))
    assert info.names == FASHION_MNIST and info.dataset == "Fashion-MNIST" and not info.mnist_like


def test_glyph_bitmaps_are_what_the_shaders_draw():
    """The packed name words hold the rasterised pixels where the shaders look for them
    (font.wgsl name_word / name_bit): a wrong stride would draw another class's name."""
    from mnist_viz.viz import glyphs
    words = glyphs.pack_names(["7", "Sneaker"])
    for k, name in enumerate(["7", "Sneaker"]):
        bm = glyphs.rasterise(name)
        base = k * glyphs.SLOT_WORDS
        assert words[base] == bm.shape[1] == glyphs.text_width(name)
        for r in range(glyphs.GLYPH_H):
            for x in range(bm.shape[1]):
                bit = (int(words[base + 1 + r * glyphs.WORDS_PER_ROW + x // 32]) >> (x % 32)) & 1
                assert bit == bm[r, x], (name, r, x)
    t = glyphs.rasterise("T")                          # the 5x7 T: a bar of 3 over a stem of 5
    assert t[0].sum() == 3 and t[1:6, 2].all() and t.sum() == 8


# -- an empty canvas -----------------------------------------------------------------------------------

def accent_pixels(tex) -> int:
    from mnist_viz.viz import colormap
    accent = colormap.to_u8(np.array([0.36, 0.82, 0.52])).astype(int)
    return int((np.abs(tex[..., :3].astype(int) - accent).max(axis=2) <= 3).sum())


def bar_pixels(tex, label_h=22) -> int:
    """Coloured (bar) pixels above the label strip: not background, not a grey guide."""
    rgb = tex[:-label_h, :, :3].astype(int)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 40).sum())


def hint_pixels(app) -> int:
    """Text-grey pixels in the middle band of the canvas as shown in the frame (the hint)."""
    img = np.asarray(app.draw_offscreen())[..., :3].astype(int)
    x0, y0, x1, y1 = (int(round(v)) for v in app.ui.canvas_rect)
    w, h = x1 - x0, y1 - y0
    band = img[y0 + int(0.4 * h): y0 + int(0.6 * h), x0 + int(0.2 * w): x1 - int(0.2 * w)]
    return int((band.min(axis=2) > 90).sum())


def test_an_empty_canvas_shows_a_hint_and_no_prediction(make_app):
    """Guards against predicting from nothing (the pretrained model says '5' at ~70% for a
    blank input): no bars and no winner in the probabilities and logits, a blank badge and
    the hint, until there is ink; an erased canvas is empty again (the GPU's ink measure)."""
    from mnist_viz.viz.panels.canvas import canvas_blank
    app = make_app()
    frames(app, 2)
    mv = app.model_views
    assert canvas_blank(app.view_state())
    assert hint_pixels(app) > 30                                      # "draw a digit here"
    for bars in (mv.probs, mv.logits):
        tex = bars.texture.read()
        assert bar_pixels(tex) == 0 and accent_pixels(tex) == 0
    badge = mv.badge.texture.read()
    assert (badge == badge[0, 0]).all()                              # blank
    c = app.canvas
    c.stroke((0.1 * c.width, 0.1 * c.height), (0.3 * c.width, 0.2 * c.height), radius=5)   # away from the hint
    frames(app, 1)
    assert not canvas_blank(app.view_state()) and hint_pixels(app) == 0
    for bars in (mv.probs, mv.logits):
        tex = bars.texture.read()
        assert bar_pixels(tex) > 0 and accent_pixels(tex) > 0
    badge = mv.badge.texture.read()
    assert not (badge == badge[0, 0]).all()                          # a prediction
    c.stroke((0, 0), (c.width, c.height), erase=True, radius=200)   # erase everything
    assert c.blank is None                                          # the CPU cannot know: the GPU says
    read_values(app)
    assert app.readout.values["ink"] == 0 and canvas_blank(app.view_state()) and hint_pixels(app) > 30
    assert bar_pixels(mv.probs.texture.read()) == 0
    c.stroke((0.1 * c.width, 0.1 * c.height), (0.3 * c.width, 0.2 * c.height), radius=5)
    frames(app, 1)
    assert not canvas_blank(app.view_state())
    c.clear()                                                        # C, or the Clear button: empty again
    frames(app, 1)
    assert canvas_blank(app.view_state()) and hint_pixels(app) > 30, "a clear left the canvas 'painted'"


# -- a loaded sample or mistake ---------------------------------------------------------------------

def test_a_loaded_mistake_is_classified_as_in_the_gallery_and_shows_its_label(make_app):
    """Guards against the canvas re-normalising an upsampled copy ("5 -> 6" in the gallery read
    as a 5 at 49% on the canvas): the loaded mistake's prediction is the gallery's, its true
    label comes back through the 64-byte readout, and the panel says 'test #k: label L'."""
    from mnist_viz.viz.panels.canvas import sample_lines
    app = make_app(test_limit=1000, **settings(lr=0.5))
    act(app, "reinitialise")                  # a weak model: plenty of mistakes
    act(app, "step")
    frames(app, 3)
    act(app, "evaluate")
    frames(app, 12)
    assert not app.session.evaluating
    ev = app.metrics.read_evaluation()
    assert len(ev["wrong"]) > 3
    mk = app.mistakes
    frames(app, 1)
    logits = np.frombuffer(get_device().read(mk.forward.logits.buffer), np.float32)
    logits = logits[: mk.grid.page * 10].reshape(-1, 10)
    for k in (0, 3):
        act(app, "load_sample", "mistakes", k)
        values = read_values(app)
        index = int(ev["wrong"][k])
        truth = int(app.loader.dataset.test_labels[index])
        assert probs_of(app).argmax() == logits[k].argmax() != truth
        assert values["sample_index"] == index and values["sample_label"] == truth
        assert values["pred"] == logits[k].argmax()
        lines = [t for t, _ in sample_lines(app.view_state())]
        assert lines[0] == f"test #{index}: label {truth}", lines
        assert lines[1].startswith(f"predicted {logits[k].argmax()} ")


def test_a_loaded_dataset_sample_shows_split_index_and_label(make_app):
    from mnist_viz.viz.panels.canvas import sample_lines
    app = make_app()
    act(app, "load_sample", "train", 5)
    read_values(app)
    label = int(app.loader.dataset.train_labels[5])
    assert [t for t, _ in sample_lines(app.view_state())][0] == f"train #5: label {label}"
    assert app.readout.values["sample_index"] == 5 and app.readout.values["sample_label"] == label


# -- the running estimate ------------------------------------------------------------------------------

def test_running_estimate_appears_while_training_and_tracks_the_evaluation(make_app):
    """Guards against an estimate that never arrives, survives a restart, or measures something
    else: after ESTIMATE_EVERY steps it is a test accuracy near the full evaluation's."""
    from mnist_viz.viz.session import ESTIMATE_EVERY
    app = make_app(limit=4096, test_limit=2000, **settings(batch_size=16, speed=speed_index(64)))
    assert read_values(app)["est_acc"] < 0              # nothing estimated yet
    act(app, "train")
    for _ in range(200):
        frames(app)
        if app.metrics.steps >= ESTIMATE_EVERY:
            break
    act(app, "pause")
    act(app, "evaluate")
    frames(app, 2)
    for _ in range(60):                                  # a CPU adapter spreads the evaluation over frames
        if not app.session.evaluating:
            break
        frames(app)
    frames(app, 4)                                       # the readout brings the result
    v = read_values(app)
    assert app.metrics.steps >= ESTIMATE_EVERY
    assert 0.5 < v["est_acc"] <= 1.0 and abs(v["est_acc"] - v["test_acc"]) < 0.06, v
    act(app, "reinitialise")                             # a new run: no stale estimate
    assert read_values(app)["est_acc"] < 0


def test_the_estimate_scores_exactly_its_spread_subset(mnist):
    """The estimate's counters are the correct count over 8 blocks of 64 test images spread over
    the test set, as numpy computes them: guards against misplaced block offsets (rows of one
    block over another's) and against scoring into the evaluation's counters."""
    import dataclasses
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.model_io import default_model_path, load_model
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    small = dataclasses.replace(mnist, train_images=mnist.train_images[:256], train_labels=mnist.train_labels[:256],
                                test_images=mnist.test_images[:2000], test_labels=mnist.test_labels[:2000])
    model, _ = load_model(default_model_path())
    run_ = Run(model, GpuDataset(small), Recipe())
    dev = get_device()
    enc = dev.device.create_command_encoder()
    run_.encode_estimate(enc)
    dev.submit(enc)
    est = np.frombuffer(dev.read(run_.metrics.estimate), np.uint32)
    idx = np.concatenate([np.arange(k * 250, k * 250 + 64) for k in range(8)])
    sd = model.state_dict()
    x = small.test_images[idx].reshape(len(idx), -1).astype(np.float32) / 255
    pred = (np.maximum(x @ sd["0.weight"].T + sd["0.bias"], 0) @ sd["2.weight"].T + sd["2.bias"]).argmax(1)
    assert est[1] == 512 and abs(int(est[0]) - int((pred == small.test_labels[idx]).sum())) <= 1
    assert np.frombuffer(dev.read(run_.metrics.counters), np.uint32)[:3].tolist() == [0, 0, 0]


def test_the_estimate_costs_under_two_percent_of_the_training_between_estimates():
    """Multiply-adds of one estimate against ESTIMATE_EVERY steps of the default recipe
    (forward + backward ~ 3x the forward): guards against an estimate that slows training."""
    from mnist_viz.compute.evaluation import ESTIMATE_ROWS
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.viz.session import ESTIMATE_EVERY
    estimate = ESTIMATE_ROWS
    training = ESTIMATE_EVERY * Recipe().batch_size * 3
    assert estimate / training < 0.02


# -- truthful status; loading --------------------------------------------------------------------------

def texts(app) -> str:
    from mnist_viz.viz.panels.menu import status_line
    from mnist_viz.viz.panels.training import progress_lines
    v = app.view_state()
    rows = [t for _, t in progress_lines(v)]
    return " | ".join([status_line(v), *rows, app.session.message])


def evaluated(app, seconds=30.0) -> bool:
    """Frames until the app's metadata carries a test accuracy (the evaluation's pieces, then
    the readout that brings its result, 4 times a second: how many frames that takes depends on
    the machine's speed), or `seconds` pass."""
    import time
    deadline = time.perf_counter() + seconds
    while not app._metadata("t").get("test_accuracy"):
        if time.perf_counter() > deadline:
            return False
        frames(app, 1)
    return True


def test_after_load_or_reset_no_stale_run_text_and_saved_accuracy_is_of_the_saved_weights(make_app, tmp_path):
    """Guards against 'run: 381/18,760' or 'epoch 1/20 41%' after a load or a reset, and against
    a checkpoint recording the test accuracy of weights it does not hold."""
    app = make_app(**settings(batch_size=16, speed=speed_index(4)))
    assert evaluated(app)                                 # the loaded model, evaluated
    act(app, "train")
    frames(app, 3)
    assert "run: " in texts(app) and "epoch 1/" in texts(app)
    act(app, "pause")
    frames(app, 1)
    assert "test_accuracy" not in app._metadata("t")      # trained since the evaluation
    act(app, "evaluate")
    assert evaluated(app)
    path = tmp_path / "m.safetensors"
    app.ui.checkpoint_path = str(path)
    act(app, "save")
    act(app, "reinitialise")
    frames(app, 2)
    stale = re.compile(r"run: [\d,]+ /|epoch \d+/|step [\d,]+|training from")
    t = texts(app)
    assert not stale.search(t) and "re-initialised" in t, t
    assert "test_accuracy" not in app._metadata("t")
    act(app, "load")
    frames(app, 3)
    t = texts(app)
    assert "loaded" in app.ui.file_message and not stale.search(t) and "re-initialised" not in t, t


def test_the_status_bar_and_the_progress_bar_name_the_same_epoch_at_every_step(make_app):
    """Guards against two formulas for the epoch: at an epoch's last step the status bar said
    'epoch 2/3' while the progress bar said 'epoch 1/3 100%'. Stepped one step at a time over
    two epochs (boundaries included) of 4 steps each, both name the same epoch at every step."""
    app = make_app(limit=64, **settings(batch_size=16, epochs=3))
    app.session.watch.eval_each_epoch = False          # the progress row shows the epoch, not an evaluation
    frames(app, 2)
    run = app.session.run
    assert run.steps_per_epoch == 4
    for _ in range(2 * run.steps_per_epoch):
        act(app, "step")
        frames(app, 1)
        t = texts(app)
        status = re.search(r"^\S+\s+epoch (\d+)/3", t)
        bar = re.search(r"\| epoch (\d+)/3 +(\d+)%", t)
        assert status and bar, t
        assert status.group(1) == bar.group(1), (run.step, t)
        if run.step % run.steps_per_epoch == 0:      # a boundary: the epoch just done, full
            assert (int(bar.group(1)), bar.group(2)) == (run.step // run.steps_per_epoch, "100"), (run.step, t)
    assert run.step == 2 * run.steps_per_epoch


def test_a_test_accuracy_of_older_weights_says_which_step_it_scored(mnist):
    """Guards against the start's evaluation (of random or loaded weights) reading as the current
    network's test accuracy while training goes on ('step 150 ... test 8.46%' at 85% batch
    accuracy: a first user's trial): the panels mark it '@ step 0' once the weights moved on, and
    not once a newer evaluation scores the weights shown."""
    from mnist_viz.compute.data import GpuDataset
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.recipe import Recipe
    from mnist_viz.compute.run import Run
    from mnist_viz.viz.panels.widgets import evaluated_when
    run = Run(mlp([784, 8, 10], seed=0), GpuDataset(mnist, limit=64, test_limit=32), Recipe(batch_size=16))
    assert evaluated_when(run.metrics) == ""                 # none yet
    run.evaluate()
    assert evaluated_when(run.metrics) == ""                 # of the weights shown
    run.run_steps(3)
    assert evaluated_when(run.metrics) == " @ step 0"
    run.evaluate()
    assert evaluated_when(run.metrics) == ""


def loaded(app, action, *args):
    """Emit a load action and draw until it is done (a load shows "loading..." for a frame first)."""
    act(app, action, *args)
    frames(app, 1)
    while app.busy:
        frames(app, 1)


def test_a_loaded_checkpoint_brings_the_recipe_it_was_trained_with(make_app, tmp_path):
    """Guards against a load keeping the window's recipe instead of the one the model was
    trained with (the file's recipe.* fields), by either load path (another architecture:
    a new run; the same one: the weights into the model). A change made after the load
    stands; a file that records no recipe, or one this window cannot use, keeps the panel's
    settings (and says why for the latter)."""
    from mnist_viz.compute.model_io import save_model
    from mnist_viz.compute.nn import mlp
    from mnist_viz.compute.recipe import Recipe
    small = mlp([784, 32, 10], seed=3)
    trained = Recipe(epochs=3, batch_size=32, lr=0.02, shift=0, momentum=0.5, nesterov=False, seed=4)
    path, plain, bad = tmp_path / "small.safetensors", tmp_path / "plain.safetensors", tmp_path / "bad.safetensors"
    save_model(path, small, trained.to_metadata())
    save_model(plain, small)
    save_model(bad, small, {**trained.to_metadata(), "recipe.batch_size": "lots"})
    app = make_app(**settings(batch_size=16))
    frames(app, 1)
    app.ui.checkpoint_path = str(path)
    loaded(app, "load")                                    # another architecture
    assert app.model.arch.short == "784-32-10", app.ui.file_message
    assert app.session.recipe == trained and app.session.run.recipe == trained
    assert "recipe it was trained with" in app.session.message
    mine = trained.with_changes(lr=0.005, batch_size=64)
    act(app, "set_recipe", mine)
    frames(app, 2)
    assert app.session.recipe == mine and app.session.run.recipe == mine
    for other in (plain, bad):                             # the same architecture: nothing to take
        app.ui.checkpoint_path = str(other)
        loaded(app, "load")
        assert "loaded" in app.ui.file_message and app.session.recipe == mine, app.ui.file_message
    assert "recipe.batch_size: expected a whole number" in app.ui.file_message
    app.ui.checkpoint_path = str(path)
    loaded(app, "load")                                    # the same architecture, a recorded recipe
    assert app.session.recipe == trained and app.session.run.recipe == trained


@pytest.mark.slow
def test_choosing_the_shipped_cnn_trains_it_with_its_own_recipe(make_app):
    """Guards against the window keeping the recipe it had (the MLP's lr 0.1, +-1 px) when the
    shipped CNN is chosen in the Net tab: the Training panel and the run must then hold the
    recipe the CNN was trained with (RECIPES['cnn']), a change the user makes afterwards must
    stand, and choosing the shipped MLP again brings back its own (the default recipe).
    (Slow: lavapipe compiles and runs the CNN's kernels for half a minute.)"""
    from mnist_viz.compute.recipe import CNN_ARCH, RECIPES
    app = make_app(test_limit=32)
    frames(app, 1)
    assert app.session.recipe == RECIPES["default"]
    loaded(app, "load_shipped", "cnn")
    assert app.model.arch.text == CNN_ARCH, app.ui.network_message
    assert "recipe it was trained with" in app.session.message and "lr 0.05" in app.session.message
    assert app.session.recipe == RECIPES["cnn"] and app.session.run.recipe == RECIPES["cnn"], app.session.recipe
    mine = RECIPES["cnn"].with_changes(lr=0.01)
    act(app, "set_recipe", mine)
    frames(app, 2)
    assert app.session.recipe == mine and app.session.run.recipe == mine
    loaded(app, "load_shipped", "mlp")
    assert app.session.recipe == RECIPES["default"] and app.session.run.recipe == RECIPES["default"]


def test_a_loaded_checkpoint_is_continued_not_replaced(make_app, tmp_path):
    """Load the pretrained model, train a few steps, evaluate: the accuracy stays far above
    chance (training went on from the loaded weights, not from fresh ones)."""
    app = make_app(test_limit=500, **settings(batch_size=32, speed=speed_index(4)))
    act(app, "reinitialise")
    frames(app, 1)
    act(app, "load_pretrained")
    frames(app, 3)
    assert "loaded" in app.ui.file_message
    act(app, "train")
    frames(app, 5)
    act(app, "pause")
    assert app.metrics.steps >= 4
    act(app, "evaluate")
    frames(app, 6)
    acc = app.metrics.read_evaluation()["accuracy"]
    assert acc > 0.9, acc


def test_loading_keeps_the_layout_still_and_a_second_click_cannot_reach_the_path_field(make_app, tmp_path):
    """Click Load, and click again at the same spot while 'loading ...' shows: the buttons and
    the path field have not moved, the second click lands on a disabled button (no second
    load, no text field in focus), and the load then happens once."""
    from imgui_bundle import imgui
    app = make_app(size=(1100, 700))
    app.ui.select_tabs.add("Checkpoint")
    app.ui.checkpoint_path = str(tmp_path / "nope.safetensors")
    frames(app, 2)
    before = dict(app.ui.file_rects)
    x0, y0, x1, y1 = before["load"]
    x, y = (x0 + x1) / 2, (y0 + y1) / 2
    loads = []
    app.handlers[next(a for a in app.handlers if a.value == "load")] = lambda: loads.append(app.frames) or \
        app._later("loading nope.safetensors...", lambda: None)
    ev = dict(buttons=(1,), modifiers=(), ntouches=0, touches={})

    def click():
        app.rc.submit_event({"event_type": "pointer_move", "x": x, "y": y, "button": 0, **ev, "buttons": ()})
        app.draw_offscreen()
        app.rc.submit_event({"event_type": "pointer_down", "x": x, "y": y, "button": 1, **ev})
        app.draw_offscreen()
        app.rc.submit_event({"event_type": "pointer_up", "x": x, "y": y, "button": 1, **ev})

    click()
    app.draw_offscreen()                       # the action runs: busy from here
    assert len(loads) == 1 and app.busy
    app._busy_frame = app.frames + 100         # keep it loading while we click again
    click()
    app.draw_offscreen()
    imgui.set_current_context(app.gui._imgui_context)
    assert len(loads) == 1 and not imgui.get_io().want_text_input
    assert app.ui.file_rects == before
    from mnist_viz.viz.panels.training import progress_lines
    assert progress_lines(app.view_state())[0][1] == "loading nope.safetensors..."


# -- layout ------------------------------------------------------------------------------------------

KEY_PANELS = ("Training", "Canvas", "Prediction", "Layers", "Parameters", "Metrics", "Dataset")


def overflow(app) -> dict:
    """Per panel, how far its content reaches past its window's work area (pixels; 0 = none):
    imgui's record of the furthest item (cursor max, and the ideal size of cut text), or the
    panel's vertical scroll range (content that only fits by scrolling the panel: its work area
    moves with the scroll, so the cursor alone misses it; the panels have no horizontal scrollbar)."""
    from imgui_bundle import imgui
    imgui.set_current_context(app.gui._imgui_context)
    out = {}
    for name in KEY_PANELS:
        w = imgui.internal.find_window_by_name(name)
        if w is None or not w.active:
            continue
        work = w.work_rect
        reach_x = max(w.dc.cursor_max_pos.x, w.dc.ideal_max_pos.x)
        reach_y = max(w.dc.cursor_max_pos.y, w.dc.ideal_max_pos.y)
        out[name] = (max(0.0, reach_x - work.max.x), max(0.0, reach_y - work.max.y, w.scroll_max.y))
    return out


@pytest.mark.parametrize("size", [(1100, 700), (1600, 1000), (2560, 1440)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_nothing_is_clipped_in_the_key_panels(make_app, tmp_path, size):
    """Every tab of every key panel, with a painted digit and a loaded mistake: no widget
    reaches past its panel. Screenshots land in tmp_path for a look."""
    from mnist_viz.viz.launch import write_png
    app = make_app(size=size)
    c = app.canvas
    c.stroke((0.3 * c.width, 0.3 * c.height), (0.6 * c.width, 0.7 * c.height), radius=5)
    frames(app, 2)
    seen = {}
    for tabs in (("Settings", "Curves", "W1 receptive fields"), ("Checkpoint", "Confusion", "Weights & biases"),
                 ("Net", "Mistakes"), ("Runs", "Embedding"), ("Dataset",)):
        app.ui.select_tabs |= set(tabs)
        frames(app, 2)
        for name, (dx, dy) in overflow(app).items():
            assert dx <= 1 and dy <= 1, (size, tabs, name, dx, dy)
            seen[name] = True
    write_png(tmp_path / f"layout-{size[0]}x{size[1]}.png", app.draw_offscreen())
    assert {"Training", "Canvas", "Prediction", "Layers", "Parameters", "Metrics"} <= set(seen)
    assert ("Dataset" in seen) == (size[1] >= 900)       # a short window shows it as a Metrics tab
    x0, y0, x1, y1 = app.ui.canvas_rect
    assert x1 - x0 >= 0.14 * size[0] * (size[1] / size[0]) ** 0.5    # the canvas grows with the window


def test_ui_scale_scales_fonts_and_layout_together(make_app):
    from imgui_bundle import imgui
    app = make_app(size=(1600, 1000))
    frames(app, 1)
    imgui.set_current_context(app.gui._imgui_context)
    pad = imgui.get_style().frame_padding.x
    act(app, "ui_scale", 1.5)
    frames(app, 2)
    assert imgui.get_style().font_scale_main == 1.5 and imgui.get_style().frame_padding.x == pytest.approx(1.5 * pad)
    for name, (dx, dy) in overflow(app).items():
        assert dx <= 1, (name, dx)
    act(app, "ui_scale", 1.0)
    frames(app, 1)
    assert imgui.get_style().frame_padding.x == pytest.approx(pad)


def test_accuracy_axis_labels_are_evenly_spaced_on_grid_lines():
    """Guards against labels like 92.5% printed as '92%' (uneven) or off the drawn grid."""
    from mnist_viz.viz.panels.metrics import axis_ticks
    from mnist_viz.viz.plots import ACC_RANGES, grid_step
    for lo, hi in ACC_RANGES.values():
        for height in (40, 80, 160, 400):
            ticks = axis_ticks(1, lo, hi, height, 15)
            values = [v for v, _ in ticks]
            gaps = np.diff(values)
            assert len(ticks) >= 2 and np.allclose(gaps, gaps[0])
            assert gaps[0] / (hi - lo) * height >= 1.6 * 15 or len(ticks) == 2
            g = grid_step(lo, hi)
            assert all(abs(v / g - round(v / g)) < 1e-6 for v in values)
            assert all(label == f"{round(v * 100)}%" for v, label in ticks)
    loss = axis_ticks(0, 1e-3, 4.0, 60, 15)
    assert len(loss) >= 1 and all(b / a >= 10 for (a, _), (b, _) in zip(loss, loss[1:]))


# -- another dataset ----------------------------------------------------------------------------------

def test_named_classes_appear_in_the_views_and_the_normaliser_is_off(make_app, tmp_path):
    """A dataset with a classes.txt: the bar labels are the names' pixels (not the numbers), the
    canvas is not MNIST-normalised, the message does not claim the MNIST model."""
    from mnist_viz.viz import glyphs
    write_band_dataset(tmp_path / "bands")
    (tmp_path / "bands" / "classes.txt").write_text("top\nmid\nlow\n")
    app = make_app(data_dir=tmp_path / "bands", limit=None, test_limit=None)
    assert not app.canvas.normalise and "MNIST" not in app.ui.file_message.replace("MNIST digits", "")
    c = app.canvas
    c.stroke((0.3 * c.width, 0.3 * c.height), (0.6 * c.width, 0.7 * c.height), radius=5)
    frames(app, 2)
    tex = app.model_views.probs.texture.read()[..., :3].astype(int)
    strip = tex[-22:].max(axis=2) > 150                      # label pixels (text, or the winner's accent)
    band = tex.shape[1] / 3
    for k, name in enumerate(["top", "mid", "low"]):
        # Where views.wgsl bar_chart puts the name: centred in its band, 2 pixels a font pixel.
        b0, b1 = int(k * band), int((k + 1) * band)
        ox = b0 + 1 + (b1 - b0 - 2 - glyphs.text_width(name, 2)) // 2
        ink = glyphs.rasterise(name).any(axis=0)
        expected = {ox + 2 * x + d for x in np.nonzero(ink)[0] for d in (0, 1)}
        assert set(np.nonzero(strip[:, b0:b1].any(axis=0))[0] + b0) == expected, name


@needs_fashion
def test_fashion_mnist_gets_its_names_a_fresh_model_and_no_normaliser(make_app):
    app = make_app(data_dir=FASHION_DIR, limit=512, test_limit=256)
    assert app.classes.names[7] == "Sneaker" and not app.canvas.normalise
    assert app.ui.file_message.startswith("Fashion-MNIST: a fresh 784-128-10")
    assert "mnist-784-128-10" not in app.ui.file_message


def test_a_frames_steps_go_on_past_an_epochs_end(make_app):
    """Guards against a frame's steps stopping at an epoch's end (at batch 64 an epoch of MNIST is
    938 steps and a frame at full speed 400-600: a third of the frames ran short, and the window
    kept 53% of headless on the H100) and against the next epoch's order reaching the GPU before
    the last steps of the one before: 64 steps a frame over epochs of 16 run in one frame, and the
    weights equal those of a headless run of the same 64 steps. With an evaluation each epoch, a
    CPU adapter (which spreads it over frames) stops at the epoch's end instead."""
    from mnist_viz.compute.nn import Sequential
    from mnist_viz.compute.run import Run
    app = make_app(limit=256, **settings(batch_size=16, epochs=10, speed=speed_index(64)))
    app.session.watch.eval_each_epoch = False
    frames(app, 1)
    start = app.model.state_dict()
    act(app, "train")
    frames(app, 1)
    run = app.session.run
    assert run.steps_per_epoch == 16 and app.metrics.steps == 64 and app.session.frame_regular
    trained = app.model.state_dict()
    twin = Sequential(app.model.arch, seed=0)
    twin.load_state_dict(start)
    headless = Run(twin, app.session.data, app.session.recipe)
    headless.run_steps(64)
    for k, v in twin.state_dict().items():
        np.testing.assert_allclose(trained[k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    app.session.watch.eval_each_epoch = True
    frames(app, 1)
    if get_device().is_cpu:
        assert app.metrics.steps == 80 and app.session.evaluating


def test_an_epochs_evaluation_takes_the_frames_its_cost_allows(make_app):
    """Guards against the window stalling for a whole evaluation at an epoch's end (the shipped
    CNN's took 120 ms of one frame on the H100, and its window held 57.8 fps) and against cheap
    evaluations costing frames of training. The pacer's costs are fixed here (a step an eighth or
    a fortieth of the budget, an evaluation piece 0.4 of it or a tenth of a step) and the session
    must plan round them: a cheap evaluation runs inside the frame whose steps end the epoch,
    which goes on past it (40 steps over epochs of 16 reserve room for two evaluations: 39 steps
    and 8 pieces); a costly one stops the frame's steps short of the epoch's end, then takes as
    many pieces a frame as fit (2 of 4 after the frame's one step, 2 in the next), and training
    resumes after it; a piece that overran the whole frame has the rest of its evaluation re-cut at
    once into pieces of the rows the budget holds at that cost (not half: lavapipe kept the shipped
    CNN's 8.7 s pieces for the whole evaluation, and halving took many to fit a frame), which score
    as the whole test set in one piece does; the next evaluation's pieces are as large, and so are a
    new run's. Every evaluation is complete."""
    app = make_app(limit=256, test_limit=1536, **settings(batch_size=16, epochs=100, speed=speed_index(0)))
    session, pacer = app.session, app.session.pacer
    pacer.update = lambda *a, **k: None         # costs fixed by the test, not learned from lavapipe's frames
    pacer.gpu_frame = lambda *a, **k: None
    pacer.cpu_cost, budget = 0.0, pacer.budget_s
    frames(app, 1)
    act(app, "train")
    run = session.run
    assert run.steps_per_epoch == 16 and len(run.evaluation.pieces) == 1
    run.recut_evaluation(384)                    # 1536 test images in 4 pieces of 384
    assert len(run.evaluation.pieces) == 4
    evaluations = 0                              # the run starts over with the first frame: evaluations cleared

    def plan(steps, piece_share):
        pacer.steps, pacer.gpu_cost = float(steps), budget / steps
        pacer.extra_cost = {"evaluation": piece_share * budget}

    def frame():
        before = app.metrics.steps
        frames(app, 1)
        return app.metrics.steps - before, session.frame_extras.get("evaluation", 0)

    plan(40, 1 / 400)
    assert frame() == (39, 8) and app.metrics.evaluations == evaluations + 2
    frames(app, 1)
    assert app.metrics.steps == 78 and not session.evaluating and app.metrics.evaluations == evaluations + 4
    plan(8, 0.4)                                 # steps short of the end at 80, then 2 pieces a frame
    seen = [frame() for _ in range(6)]
    assert seen == [(1, 0), (1, 2), (0, 2), (8, 0), (7, 0), (1, 2)], seen
    assert app.metrics.evaluations == evaluations + 5
    plan(8, 1.5)                                 # a piece overran the frame, 2 of the 4 pieces left
    before = session.frame_extras                # the last frame's 2 pieces of 384, not measured yet
    seen = [frame() for _ in range(3)]
    rows = piece_rows(384 / 1.5 * EVAL_PIECE_SHARE)   # the rows the budget holds at that cost, 204, to a power of 2
    assert rows == 128                                 # (not a halving's 192)
    assert (run.evaluation.chunk, seen) == (rows, [(0, 2)] * 3), seen   # rows 768-1535 at once in 6 pieces of 128
    assert before["evaluation"] == pytest.approx(2 * 384 / rows)         # measured late: pieces of 128 it teaches
    assert app.metrics.evaluations == evaluations + 6
    in_one_go = RunMetrics(app.metrics.num_classes)
    enc = get_device().device.create_command_encoder()
    Evaluation(app.model, session.data, in_one_go).encode(enc)
    get_device().submit(enc)
    got, want = app.metrics.read_evaluation(), in_one_go.read_evaluation()
    assert (got["correct"], got["seen"]) == (want["correct"], want["seen"]) and want["seen"] == 1536
    np.testing.assert_array_equal(got["confusion"], want["confusion"])
    assert sorted(got["wrong"].tolist()) == sorted(want["wrong"].tolist())
    seen = [frame() for _ in range(3)]           # the next evaluation's pieces are of 128 too
    assert seen == [(8, 0), (7, 0), (1, 1)], seen
    assert app.metrics.evaluations == evaluations + 6
    assert len(run.evaluation.pieces) == 12 and run.evaluation.chunk == rows and session.evaluating
    while session.evaluating:
        frame()
    assert app.metrics.evaluations == evaluations + 7
    assert run.metrics.read_evaluation()["seen"] == 1536
    session.set_recipe(dataclasses.replace(session.recipe, batch_size=32))
    session.reset()                              # a rebuilt step program, new weights: the same pieces
    assert session.run is run and run.evaluation.chunk == rows
    pacer.extra_cost["evaluation"] = budget / 4
    session.set_model(Sequential(run.model.arch, seed=1))    # a new run: pieces as large, their cost learned anew
    assert session.run is not run and session.run.evaluation.chunk == rows and "evaluation" not in pacer.extra_cost
    session.evaluate_now()
    pacer.extra_cost["evaluation"] = 1.2 * budget          # over, but under EVAL_RECUT_OVER: noise, no re-cut
    session._recut_eval_pieces()
    assert session.run.evaluation.chunk == rows and pacer.extra_cost["evaluation"] == 1.2 * budget
    pacer.extra_cost["evaluation"] = 1.3 * budget
    session._recut_eval_pieces()
    assert session.run.evaluation.chunk == rows // 2 and "evaluation" not in pacer.extra_cost
