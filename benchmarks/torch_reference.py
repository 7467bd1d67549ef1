"""PyTorch references for the training benchmark: the same MLP, recipe and data
(resident on the device as u8), eager and with the whole step as a CUDA graph.

The CUDA-graph step takes nothing from the CPU per step: the batch indices and
the learning rate are looked up inside the graph from a GPU step counter, the
same trick our engine uses, so the comparison is step program vs step program.
"""
from __future__ import annotations

import math
import time

import numpy as np


def _torch():
    import torch  # only the benchmark needs it
    return torch


def torch_model(arch):
    """torch.nn.Sequential of one of our architectures (compute/arch.py)."""
    torch = _torch()
    nn = torch.nn
    out = []
    for layer in arch.layers:
        name = type(layer).__name__
        if name == "Linear":
            out.append(nn.Linear(layer.in_features, layer.out_features))
        elif name == "Conv2d":
            out.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding))
        elif name == "MaxPool2d":
            out.append(nn.MaxPool2d(layer.kernel_size, layer.step))
        elif name == "ReLU":
            out.append(nn.ReLU())
        elif name == "Flatten":
            out.append(nn.Flatten())
        elif name == "Dropout":
            out.append(nn.Dropout(layer.p))
    return nn.Sequential(*out)


def cosine_lr(step, total, base=0.05, floor=0.001):
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


class TorchMLP:
    def __init__(self, ds, device: str, batch: int, epochs: int, seed: int = 0, hidden: int = 128, arch=None):
        torch = _torch()
        self.torch, self.device, self.batch, self.epochs = torch, device, batch, epochs
        torch.manual_seed(seed)
        self.gen = np.random.default_rng(seed)
        self.x = torch.tensor(ds.train_images.reshape(len(ds.train_images), -1), device=device)  # u8
        self.y = torch.tensor(ds.train_labels.astype(np.int64), device=device)
        self.xt = torch.tensor(ds.test_images.reshape(len(ds.test_images), -1), device=device)
        self.yt = torch.tensor(ds.test_labels.astype(np.int64), device=device)
        d = self.x.shape[1]
        if arch is None:
            self.model = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
        else:
            self.model = torch_model(arch)
        self.model = self.model.to(device)
        self.spatial = arch is not None and not type(arch.layers[0]).__name__ == "Linear"
        self.image_shape = tuple(arch.input_shape) if arch is not None else None
        for m in self.model:
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                torch.nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                torch.nn.init.zeros_(m.bias)
        self.n = self.x.shape[0]
        self.spe = math.ceil(self.n / batch)
        self.total = self.spe * epochs
        self.step = 0

    def inputs(self, idx):
        x = self.x[idx].float().div_(255)
        return x.view(len(idx) if not hasattr(idx, "shape") else idx.shape[0], *self.image_shape) if self.spatial else x

    def sync(self):
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    # -- eager ---------------------------------------------------------------------------------
    def eager_epoch(self):
        torch = self.torch
        F = torch.nn.functional
        perm = torch.tensor(self.gen.permutation(self.n), device=self.device)
        params = list(self.model.parameters())
        for s in range(self.spe):
            idx = perm[s * self.batch:(s + 1) * self.batch]
            loss = F.cross_entropy(self.model(self.inputs(idx)), self.y[idx])
            for p in params:
                p.grad = None
            loss.backward()
            lr = cosine_lr(self.step, self.total)
            with torch.no_grad():
                for p in params:
                    p.add_(p.grad, alpha=-lr)
            self.step += 1

    # -- CUDA graph ------------------------------------------------------------------------------
    def build_graph(self):
        """Capture one whole step (gather, forward, loss, backward, SGD update, step += 1)."""
        torch = self.torch
        F = torch.nn.functional
        b = self.batch
        self.gspe = self.n // b  # fixed shapes: the tail batch is dropped in this variant
        self.batches = torch.zeros((self.gspe, b), dtype=torch.int64, device=self.device)
        lrs = [cosine_lr(s, self.gspe * self.epochs) for s in range(self.gspe * self.epochs + 1)]
        self.lr_table = torch.tensor(lrs, device=self.device)
        self.gstep = torch.zeros(1, dtype=torch.int64, device=self.device)
        params = list(self.model.parameters())

        def step():
            row = torch.remainder(self.gstep, self.gspe)
            idx = self.batches.index_select(0, row).view(-1)
            loss = F.cross_entropy(self.model(self.inputs(idx)), self.y[idx])
            loss.backward()
            lr = self.lr_table.index_select(0, self.gstep)
            with torch.no_grad():
                for p in params:
                    p.sub_(p.grad * lr)
                self.gstep.add_(1)

        self.new_graph_epoch()
        snapshot = [p.detach().clone() for p in params]
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                for p in params:
                    p.grad = None
                step()
        torch.cuda.current_stream().wait_stream(s)
        for p in params:
            p.grad = None
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            step()
        with torch.no_grad():  # undo the warm-up steps
            for p, q in zip(params, snapshot):
                p.copy_(q)
        self.gstep.zero_()

    def new_graph_epoch(self):
        perm = self.gen.permutation(self.n)[: self.gspe * self.batch].reshape(self.gspe, self.batch)
        self.batches.copy_(self.torch.tensor(perm, device=self.device))

    def graph_epoch(self):
        self.new_graph_epoch()
        for _ in range(self.gspe):
            self.graph.replay()

    # -- evaluation ------------------------------------------------------------------------------
    def test_accuracy(self) -> float:
        torch = self.torch
        with torch.no_grad():
            xt = self.xt.float().div(255)
            if self.spatial:
                xt = xt.view(xt.shape[0], *self.image_shape)
            pred = self.model(xt).argmax(1)
            return float((pred == self.yt).float().mean())


def time_epochs(run_epoch, sync, epochs: int) -> list[float]:
    times = []
    for _ in range(epochs):
        sync()
        t = time.perf_counter()
        run_epoch()
        sync()
        times.append(time.perf_counter() - t)
    return times
