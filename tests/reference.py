"""Float64 numpy references for whole training steps: written from the textbook
definitions (backprop through Linear / ReLU / softmax cross-entropy, SGD with
momentum and Nesterov, Adam with bias correction counted from the optimizer's first
step, cosine annealing), never from our shaders, so a bug shared by the fused step
and the autograd trace still shows."""
from __future__ import annotations

import math

import numpy as np


def layer_names(sd: dict) -> list[int]:
    """Indices of the Linear layers of an nn.Sequential state dict, in order."""
    return sorted(int(k.split(".")[0]) for k in sd if k.endswith(".weight"))


def forward(sd: dict, x: np.ndarray, masks: list | None = None, p: float = 0.0):
    """Logits and the per-layer inputs of an MLP (ReLU between layers; inverted dropout
    with keep-masks `masks` after each hidden ReLU). Weights in PyTorch layout [out, in]."""
    acts, h = [], x.astype(np.float64)
    idx = layer_names(sd)
    for n, i in enumerate(idx):
        acts.append(h)
        z = h @ sd[f"{i}.weight"].astype(np.float64).T + sd[f"{i}.bias"].astype(np.float64)
        if n < len(idx) - 1:
            z = np.maximum(z, 0)
            if masks is not None:
                z = z * masks[n] / (1 - p)
        h = z
    return h, acts


def gradients(sd: dict, x: np.ndarray, y: np.ndarray, masks: list | None = None, p: float = 0.0):
    """(mean cross-entropy loss, batch accuracy, gradients by name) of one batch."""
    logits, acts = forward(sd, x, masks, p)
    n = len(y)
    e = np.exp(logits - logits.max(1, keepdims=True))
    prob = e / e.sum(1, keepdims=True)
    loss = -np.log(prob[np.arange(n), y]).mean()
    acc = (logits.argmax(1) == y).mean()
    g = prob.copy()
    g[np.arange(n), y] -= 1
    g /= n
    grads = {}
    idx = layer_names(sd)
    for k in range(len(idx) - 1, -1, -1):
        i = idx[k]
        grads[f"{i}.weight"] = g.T @ acts[k]
        grads[f"{i}.bias"] = g.sum(0)
        if k:
            g = g @ sd[f"{i}.weight"].astype(np.float64)
            if masks is not None:
                g = g * masks[k - 1] / (1 - p)
            g = g * (acts[k] > 0)      # acts[k] is the ReLU output feeding layer k
    return loss, acc, grads


def cosine_lr(lr: float, min_lr: float, step: int, total: int) -> float:
    """Cosine annealing (as torch's CosineAnnealingLR), flat at min_lr after `total` steps."""
    t = min(step, total) / max(total, 1)
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


class Optimizer:
    """SGD (momentum, Nesterov, L2 weight decay) or Adam over a dict of float64 arrays."""

    def __init__(self, recipe):
        self.r = recipe
        self.m: dict = {}
        self.v: dict = {}
        self.t = 0                 # steps this optimizer has taken (Adam's bias correction)

    def step(self, params: dict, grads: dict, lr: float) -> dict:
        r = self.r
        self.t += 1
        out = {}
        for k, p in params.items():
            g = grads[k] + r.weight_decay * p
            if r.optimizer == "adam":
                m = self.m[k] = r.beta1 * self.m.get(k, 0) + (1 - r.beta1) * g
                v = self.v[k] = r.beta2 * self.v.get(k, 0) + (1 - r.beta2) * g * g
                out[k] = p - lr * (m / (1 - r.beta1 ** self.t)) / (np.sqrt(v / (1 - r.beta2 ** self.t)) + r.eps)
            elif r.momentum:
                m = self.m[k] = r.momentum * self.m.get(k, 0) + g
                out[k] = p - lr * (g + r.momentum * m if r.nesterov else m)
            else:
                out[k] = p - lr * g
        return out


def batch(images: np.ndarray, labels: np.ndarray, perm: np.ndarray, step_in_epoch: int, size: int):
    """Step `step_in_epoch`'s rows (the last batch may be short), as (x in [0, 1], y)."""
    rows = perm[step_in_epoch * size: (step_in_epoch + 1) * size]
    return images[rows].reshape(len(rows), -1) / 255.0, labels[rows].astype(int)
