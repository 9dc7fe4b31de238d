"""Weight-flipping frequency (Li & Ren, ISQED 2020; docs/DESIGN.md, "Sources").

A FlipTracker keeps, for every layer whose output channels can be pruned
(the kind registry's ``prunable``: the input layer, 8-bit or bit-plane, and
every binary layer), the sign each weight had at the last sample
and how many times that sign changed since tracking started. The sign is the
one the forward pass uses: sign(w) with sign(0) = +1.
Sampling costs one comparison per weight, so sampling after every optimizer
step stays far below 5% of a step (measured by ``overhead_s``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from flipflow import kinds
from flipflow.training.blocks import BNN


def tracked_layers(model: BNN) -> dict[int, torch.nn.Module]:
    """{block index: block} for the layers whose output channels can be pruned."""
    return {i: b for i, b in enumerate(model.blocks) if kinds.get(b.kind).prunable}


def _signs(block: torch.nn.Module) -> torch.Tensor:
    return block.op.weight.detach() >= 0


class FlipTracker:
    """Per-weight sign-flip counts of every tracked layer."""

    def __init__(self, model: BNN):
        self.model = model
        self.layers = tracked_layers(model)
        self.prev: dict[int, torch.Tensor] = {}
        self.counts: dict[int, torch.Tensor] = {}
        self.samples = 0
        self.overhead_s = 0.0
        self.active = False

    def start(self) -> None:
        """Begin a pruning interval: zero the counts, remember the current signs."""
        self.prev = {i: _signs(b).clone() for i, b in self.layers.items()}
        self.counts = {i: torch.zeros(b.op.weight.shape, dtype=torch.int32, device=b.op.weight.device) for i, b in self.layers.items()}
        self.samples = 0
        self.active = True

    @torch.no_grad()
    def sample(self) -> None:
        """Compare the signs with the last sample and count the changes."""
        if not self.active:
            return
        t0 = time.perf_counter()
        for i, b in self.layers.items():
            now = _signs(b)
            self.counts[i] += now != self.prev[i]
            self.prev[i].copy_(now)
        self.samples += 1
        self.overhead_s += time.perf_counter() - t0

    def numpy_counts(self) -> dict[int, np.ndarray]:
        return {i: c.cpu().numpy() for i, c in self.counts.items()}

    def state_dict(self) -> dict:
        return {
            "active": self.active,
            "samples": self.samples,
            "overhead_s": self.overhead_s,
            "prev": {i: t.cpu() for i, t in self.prev.items()},
            # int16 keeps checkpoints small; more than 32767 flips says nothing more
            "counts": {i: t.clamp(max=32767).to(torch.int16).cpu() for i, t in self.counts.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        dev = {i: b.op.weight.device for i, b in self.layers.items()}
        self.active, self.samples, self.overhead_s = state["active"], state["samples"], state["overhead_s"]
        self.prev = {int(i): t.to(dev[int(i)]) for i, t in state["prev"].items()}
        self.counts = {int(i): t.to(device=dev[int(i)], dtype=torch.int32) for i, t in state["counts"].items()}


def insensitive_portion(counts: dict[int, np.ndarray], tau: int = 0) -> dict[int, float]:
    """p_l: the share of layer l's weights that flipped more than ``tau`` times."""
    return {i: float((c > tau).mean()) for i, c in counts.items()}


def channel_flip_scores(counts: np.ndarray) -> np.ndarray:
    """Mean flip count of each output channel (row) of a layer's weights."""
    return counts.reshape(len(counts), -1).astype(np.float64).mean(1)


def histograms(counts: dict[int, np.ndarray]) -> dict[int, list[int]]:
    """Per layer: how many weights flipped 0, 1, 2, ... times."""
    return {i: np.bincount(c.ravel()).tolist() for i, c in counts.items()}
