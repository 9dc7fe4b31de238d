"""Margin regulariser for early exit (O3BNN-R): push pre-activations away from
the BatchNorm-folded thresholds, so an early-deciding popcount
(generator/earlyexit.py) can decide a neuron after fewer folds.

A threshold block outputs +1 iff BN(z) >= 0 for its pre-BN value z. With the
running statistics that export folds (eval-mode BN), that is
``mirror * (z - tau) >= 0`` with ``tau = mean - beta * sqrt(var + eps) / gamma``
and ``mirror`` the sign of gamma (export inverts the rows of channels with
gamma < 0, training/export.py). The distance |z - tau| is the same on either
side of the mirror, so the loss needs only ``tau``; tests/test_margin.py checks
that ``tau`` lands on the integer thresholds export folds.

The distance is taken as a share of the accumulator's range, so one margin fits
every layer: a binary layer's z = 2P - K spans 2K, so the share is |P - T| / K
in popcount terms; the pixel layer's z spans 255/256 x sum |w| per row (its
terms w x pixel / 256 lie between min(0, w) and max(0, w) x 255/256).
Loss per layer: mean over its pre-activations of relu(1 - share / margin), 1 on
the threshold, 0 beyond the margin; the regulariser is the mean over layers.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from flipflow import kinds
from flipflow.training.blocks import BNN, PIXEL_SCALE, ThresholdBlock


def thresholds(block: ThresholdBlock) -> torch.Tensor:
    """Per channel: the pre-BN value ``tau`` where eval-mode BN crosses 0 (+-inf
    where gamma = 0: such a channel is constant and has no threshold)."""
    bn = block.bn
    gamma = bn.weight
    safe = torch.where(gamma == 0, torch.ones_like(gamma), gamma)
    tau = bn.running_mean - bn.bias * torch.sqrt(bn.running_var + bn.eps) / safe
    return torch.where(gamma == 0, torch.full_like(tau, float("inf")), tau)


def value_range(block: ThresholdBlock) -> torch.Tensor:
    """Per channel: the width of the pre-BN value's range (2K for a binary layer)."""
    w = block.op.quant_weight().value.detach().flatten(1)
    if kinds.get(block.kind).binary_weights:
        return torch.full((len(w),), 2.0 * w.shape[1])
    return 255 * PIXEL_SCALE * w.abs().sum(1)


def distance_share(block: ThresholdBlock, z: torch.Tensor) -> torch.Tensor:
    """|z - tau| as a share of the range, per element of z (N, C, ...)."""
    shape = (1, -1) + (1,) * (z.dim() - 2)
    return (z - thresholds(block).view(shape)).abs() / value_range(block).to(z.device).view(shape)


def hinge(share: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of relu(1 - share / margin): 1 on the threshold, 0 from the margin on."""
    return torch.relu(1 - share / margin).mean()


class MarginLoss:
    """Keeps the pre-BN value of the chosen blocks from the last training forward
    pass (a forward pre-hook on their BatchNorm); calling it gives the regulariser."""

    def __init__(self, model: BNN, margin: float, first_layer: bool):
        self.margin = margin
        self.blocks = [b for b in model.blocks if isinstance(b, ThresholdBlock)
                       and (first_layer or kinds.get(b.kind).binary_weights)]
        self.pre: dict[int, torch.Tensor] = {}
        self.handles = [b.bn.register_forward_pre_hook(self._keep(i)) for i, b in enumerate(self.blocks)]

    def _keep(self, i: int):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if module.training and torch.is_grad_enabled():  # evaluation passes are not regularised
                self.pre[i] = args[0]
        return hook

    def __call__(self) -> torch.Tensor:
        losses = [hinge(distance_share(b, self.pre.pop(i)), self.margin) for i, b in enumerate(self.blocks)]
        return torch.stack(losses).mean()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.pre.clear()


@contextmanager
def attached(model: BNN, margin: float, first_layer: bool) -> Iterator[MarginLoss]:
    """A MarginLoss on ``model`` for the duration of the block (hooks removed after)."""
    loss = MarginLoss(model, margin, first_layer)
    try:
        yield loss
    finally:
        loss.remove()
