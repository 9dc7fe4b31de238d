"""Architectures, as lists of IR layer kinds (training.blocks.LayerSpec).

Every architecture maps onto the hardware: fixed-point first and last
layers, binary layers in between, every pool on binary data a max-pool (OR).
"""

from __future__ import annotations

from typing import Callable

from flipflow.training.blocks import Arch, LayerSpec as L

NIN_WIDTHS = (192, 160, 96, 192, 192, 192, 192, 192)


def nin(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = NIN_WIDTHS) -> Arch:
    """The 9-layer binary NIN of XNOR-Net-PyTorch (shared/REFERENCE.md section 2)."""
    w = widths
    return Arch("nin", tuple(input_shape), list(classes), [
        L("input_conv", w[0], 5, 1, 2),
        L("binary_conv", w[1], 1),
        L("binary_conv", w[2], 1),
        L("maxpool", 0, 3, 2, 1),
        L("binary_conv", w[3], 5, 1, 2),
        L("binary_conv", w[4], 1),
        L("binary_conv", w[5], 1),
        L("maxpool", 0, 3, 2, 1),
        L("binary_conv", w[6], 3, 1, 1),
        L("binary_conv", w[7], 1),
        L("output_conv", len(classes), 1),
        L("global_sum"),
    ])


ARCHS: dict[str, Callable[..., Arch]] = {"nin": nin}


def build_arch(name: str, input_shape: tuple[int, int, int], classes: list[str], **kw) -> Arch:
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[name](input_shape, classes, **kw)
