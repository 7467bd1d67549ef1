"""Long-run hygiene of the engine: training, evaluating and saving in a loop create
no GPU objects and no memory after the first round."""
import gc

from mnist_viz.compute.data import GpuDataset
from mnist_viz.compute.diagnostics import live_objects, rss_bytes
from mnist_viz.compute.model_io import save_model
from mnist_viz.compute.nn import mlp
from mnist_viz.compute.recipe import Recipe
from mnist_viz.compute.run import Run


def test_train_eval_save_loop_is_flat(mnist, device, tmp_path):
    data = GpuDataset(mnist, limit=256)
    model = mlp([784, 32, 10], seed=0)
    tr = Run(model, data, Recipe(epochs=50, batch_size=64))

    def round_trip():
        tr.run_steps(tr.steps_per_epoch)
        tr.evaluate()
        save_model(tmp_path / "m.safetensors", model)

    for _ in range(2):  # warm-up: pipelines, staging buffers, caches
        round_trip()
    gc.collect()
    objects, rss = live_objects(), rss_bytes()
    for _ in range(10):
        round_trip()
    gc.collect()
    assert live_objects() == objects
    assert rss_bytes() - rss < 20 * 2**20
