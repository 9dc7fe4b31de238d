"""Untrained but realistic models for tests and benchmarks: random weights,
BatchNorm statistics calibrated on real images, random BN affine parameters
(some negative scales), so thresholds land inside the accumulator range and
activations are not constant."""

from __future__ import annotations

import numpy as np
import torch

from flipflow.training.blocks import BNN, Arch, images_to_input


@torch.no_grad()
def calibrated_model(arch: Arch, images: np.ndarray, seed: int = 0, negative_scale_share: float = 0.3) -> BNN:
    """A BNN of ``arch`` whose BN layers saw ``images`` (N, H, W, C uint8)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BNN(arch)
    bns = [b.bn for b in model.blocks if hasattr(b, "bn")]
    for bn in bns:
        bn.momentum = None  # cumulative average over the calibration pass
    model.train()
    model(images_to_input(images))
    for bn in bns:
        scale = torch.rand(bn.num_features, generator=gen) + 0.5
        flip = torch.rand(bn.num_features, generator=gen) < negative_scale_share
        bn.weight.copy_(torch.where(flip, -scale, scale))
        bn.bias.copy_((torch.rand(bn.num_features, generator=gen) - 0.5) * 0.6)
    model.eval()
    return model
