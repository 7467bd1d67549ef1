"""JAX references for the training benchmarks, written the way a strong JAX user would:
the data and the epoch's permutation live on the GPU, and a whole epoch is one jitted
`lax.fori_loop` (gather, forward, loss, backward, SGD update, cosine learning rate),
so nothing crosses to the CPU inside an epoch. Same networks, init (He uniform, zero
biases), recipe and batch semantics as ours (the last partial batch is dropped, as in
the PyTorch CUDA-graph reference; ours keeps it, which only costs us).

Networks are given as our architecture strings (Linear / ReLU / Conv2d / MaxPool2d /
Flatten); convolutions use `lax.conv_general_dilated` (NCHW, OIHW) and max pooling
`lax.reduce_window`.
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np


def _jax():
    import jax  # only the benchmark needs it
    import jax.numpy as jnp
    return jax, jnp


def init_params(arch, seed: int = 0):
    """He-uniform weights, zero biases, for the layers with parameters (numpy, host)."""
    rng = np.random.default_rng(seed)
    params = []
    for layer in arch.layers:
        name = type(layer).__name__
        if name == "Linear":
            bound = math.sqrt(6.0 / layer.in_features)
            params.append((rng.uniform(-bound, bound, (layer.in_features, layer.out_features)).astype(np.float32),
                           np.zeros(layer.out_features, np.float32)))
        elif name == "Conv2d":
            k = layer.kernel_size
            fan_in = layer.in_channels * k * k
            bound = math.sqrt(6.0 / fan_in)
            params.append((rng.uniform(-bound, bound, (layer.out_channels, layer.in_channels, k, k)).astype(np.float32),
                           np.zeros(layer.out_channels, np.float32)))
    return params


def forward(params, arch, x):
    """x: [B, H*W] f32 -> logits [B, classes]."""
    jax, jnp = _jax()
    lax = jax.lax
    b = x.shape[0]
    h = x if type(arch.layers[0]).__name__ == "Linear" else x.reshape((b, *arch.input_shape))
    k = 0
    for layer in arch.layers:
        name = type(layer).__name__
        if name == "Linear":
            w, bias = params[k]
            k += 1
            h = h.reshape((b, -1)) @ w + bias
        elif name == "Conv2d":
            w, bias = params[k]
            k += 1
            p = layer.padding
            h = lax.conv_general_dilated(h, w, (layer.stride, layer.stride), ((p, p), (p, p)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW")) + bias[None, :, None, None]
        elif name == "ReLU":
            h = jax.nn.relu(h)
        elif name == "MaxPool2d":
            s = layer.step
            h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, layer.kernel_size, layer.kernel_size),
                                  (1, 1, s, s), "VALID")
        elif name == "Flatten":
            h = h.reshape((b, -1))
    return h


class JaxTrainer:
    """`precision`: None, JAX's default (on an H100 its f32 matmuls and convolutions run on the
    tensor cores in TensorFloat-32: 10-bit mantissas), or a `jax.default_matmul_precision` level
    such as "float32" (true f32 products, the arithmetic our shaders do)."""

    def __init__(self, ds, arch, batch: int, epochs: int, lr=0.05, min_lr=0.001, seed: int = 0,
                 precision: str | None = None):
        jax, jnp = _jax()
        self.jax, self.jnp, self.arch, self.batch = jax, jnp, arch, batch
        self.precision = precision
        n = len(ds.train_images)
        self.n, self.spe = n, n // batch
        self.total = self.spe * epochs
        self.x = jnp.asarray(ds.train_images.reshape(n, -1))              # u8 on the device
        self.y = jnp.asarray(ds.train_labels.astype(np.int32))
        self.xt = jnp.asarray(ds.test_images.reshape(len(ds.test_images), -1))
        self.yt = jnp.asarray(ds.test_labels.astype(np.int32))
        self.params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in init_params(arch, seed)]
        self.key = jax.random.PRNGKey(seed)
        self.step = jnp.asarray(0, jnp.int32)
        total, spe = self.total, self.spe

        def loss_fn(params, xb, yb):
            logits = forward(params, arch, xb)
            logp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

        grad = jax.grad(loss_fn)

        def epoch(params, perm, step):
            def body(i, carry):
                params, step = carry
                idx = jax.lax.dynamic_slice(perm, (i * batch,), (batch,))
                xb = self.x[idx].astype(jnp.float32) / 255.0
                g = grad(params, xb, self.y[idx])
                t = jnp.minimum(step, total).astype(jnp.float32)
                rate = min_lr + (lr - min_lr) * 0.5 * (1.0 + jnp.cos(jnp.pi * t / total))
                params = jax.tree_util.tree_map(lambda p, d: p - rate * d, params, g)
                return params, step + 1
            return jax.lax.fori_loop(0, spe, body, (params, step))

        self._epoch = jax.jit(epoch)
        self._predict = jax.jit(lambda params, x: jnp.argmax(forward(params, arch, x.astype(jnp.float32) / 255.0), 1))

    def _precision(self):
        """The precision context the jitted functions are traced (and cached) under."""
        p = self.precision
        return self.jax.default_matmul_precision(p) if p else contextlib.nullcontext()

    def run_epoch(self):
        self.key, sub = self.jax.random.split(self.key)
        perm = self.jax.random.permutation(sub, self.n)
        with self._precision():
            self.params, self.step = self._epoch(self.params, perm, self.step)

    def sync(self):
        self.jax.block_until_ready(self.params)

    def test_accuracy(self) -> float:
        with self._precision():
            pred = self._predict(self.params, self.xt)
        return float(self.jnp.mean(pred == self.yt))


def time_epochs(trainer, epochs: int, warmup: int = 1) -> list[float]:
    """Seconds per epoch after `warmup` epochs (the first compiles the epoch function)."""
    times = []
    for e in range(warmup + epochs):
        trainer.sync()
        t = time.perf_counter()
        trainer.run_epoch()
        trainer.sync()
        if e >= warmup:
            times.append(time.perf_counter() - t)
    return times


def matmul_error(precision: str | None, n: int = 512, seed: int = 0) -> float:
    """Largest relative error of one jitted [n, n] x [n, n] f32 product at `precision` against
    float64 on the host: ~1e-6 for true f32 products, ~1e-3 for TensorFloat-32."""
    jax, jnp = _jax()
    rng = np.random.default_rng(seed)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    ctx = jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()
    with ctx:
        got = np.asarray(jax.jit(lambda x, y: x @ y)(jnp.asarray(a), jnp.asarray(b)))
    want = a.astype(np.float64) @ b.astype(np.float64)
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
