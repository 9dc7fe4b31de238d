"""Architectures, as lists of IR layer kinds (training.blocks.LayerSpec).

Every architecture maps onto the hardware: fixed-point first and last
layers, binary layers in between, every pool on binary data a max-pool (OR).
Each builder takes any input (H, W, C) and class list, plus ``widths``: the
output channels of every prunable layer in order (everything but the last),
so a pruned network is the same builder with narrower widths.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
import torch

from flipflow import ir, kinds
from flipflow.training.blocks import BNN, Arch, ArchError, LayerSpec as L, arch_layers, images_to_input

NIN_WIDTHS = (192, 160, 96, 192, 192, 192, 192, 192)
CNV_WIDTHS = (64, 64, 128, 128, 256, 256, 512, 512)
LFC_WIDTHS = (1024, 1024, 1024)
SFC_WIDTHS = (256, 256, 256)
TFC_WIDTHS = (64, 64, 64)
ALEXNET_WIDTHS = (96, 256, 384, 384, 256, 1024, 1024)


def _check_widths(name: str, widths: tuple[int, ...], n: int) -> tuple[int, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != n or min(widths) < 1:
        raise ArchError(f"{name}: needs {n} positive widths, got {widths}", fix="give --widths with one positive width per prunable layer")
    return widths


def nin(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = NIN_WIDTHS) -> Arch:
    """The 9-layer binary NIN of XNOR-Net-PyTorch (docs/DESIGN.md, "Sources")."""
    w = _check_widths("nin", widths, 8)
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


def _cnv_fits_unpadded(h: int) -> bool:
    """FINN's CNV uses valid 3x3 convolutions: 32x32 ends at 1x1."""
    for _ in range(2):
        h = (h - 4) // 2
    return h - 4 >= 1


def cnv(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = CNV_WIDTHS,
        pad: int | None = None) -> Arch:
    """FINN / BNN-PYNQ CNV-W1A1: 6 conv 3x3 (64-64-128-128-256-256), two 2x2
    max-pools, FC 512-512-classes. Valid padding as in FINN (32x32 -> 1x1);
    inputs too small for that (e.g. 28x28) get pad 1 unless ``pad`` says."""
    w = _check_widths("cnv", widths, 8)
    if pad is None:
        pad = 0 if _cnv_fits_unpadded(min(input_shape[:2])) else 1
    return Arch("cnv", tuple(input_shape), list(classes), [
        L("input_conv", w[0], 3, 1, pad),
        L("binary_conv", w[1], 3, 1, pad),
        L("maxpool", 0, 2, 2, 0),
        L("binary_conv", w[2], 3, 1, pad),
        L("binary_conv", w[3], 3, 1, pad),
        L("maxpool", 0, 2, 2, 0),
        L("binary_conv", w[4], 3, 1, pad),
        L("binary_conv", w[5], 3, 1, pad),
        L("binary_dense", w[6]),
        L("binary_dense", w[7]),
        L("output_dense", len(classes)),
    ])


def _mlp(name: str, input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...]) -> Arch:
    """FINN's fully connected topologies: three hidden layers."""
    w = _check_widths(name, widths, 3)
    return Arch(name, tuple(input_shape), list(classes), [
        L("input_dense", w[0]),
        L("binary_dense", w[1]),
        L("binary_dense", w[2]),
        L("output_dense", len(classes)),
    ])


def lfc(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = LFC_WIDTHS) -> Arch:
    """FINN LFC: 3 x 1024 hidden units."""
    return _mlp("lfc", input_shape, classes, widths)


def sfc(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = SFC_WIDTHS) -> Arch:
    """FINN SFC: 3 x 256 hidden units."""
    return _mlp("sfc", input_shape, classes, widths)


def tfc(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = TFC_WIDTHS) -> Arch:
    """FINN TFC: 3 x 64 hidden units."""
    return _mlp("tfc", input_shape, classes, widths)


def alexnet(input_shape: tuple[int, int, int], classes: list[str], widths: tuple[int, ...] = ALEXNET_WIDTHS) -> Arch:
    """CIFAR-style binary AlexNet: conv 5x5 96, conv 5x5 256, conv 3x3
    384-384-256 with three 3/2 max-pools, FC 1024-1024-classes."""
    w = _check_widths("alexnet", widths, 7)
    return Arch("alexnet", tuple(input_shape), list(classes), [
        L("input_conv", w[0], 5, 1, 2),
        L("maxpool", 0, 3, 2, 1),
        L("binary_conv", w[1], 5, 1, 2),
        L("maxpool", 0, 3, 2, 1),
        L("binary_conv", w[2], 3, 1, 1),
        L("binary_conv", w[3], 3, 1, 1),
        L("binary_conv", w[4], 3, 1, 1),
        L("maxpool", 0, 3, 2, 1),
        L("binary_dense", w[5]),
        L("binary_dense", w[6]),
        L("output_dense", len(classes)),
    ])


def with_bit_planes(arch: Arch, planes: tuple[int, ...]) -> Arch:
    """The same architecture with its 8-bit first convolution replaced by a binary one over
    the kept bit planes of the pixels (CBNN; kinds.BitplaneConv), same geometry and width."""
    first = arch.layers[0]
    if first.kind != "input_conv":
        raise ArchError(f"{arch.name}: bit-plane input replaces a first input_conv, this one starts with {first.kind}",
                        fix="use a convolutional architecture (nin, cnv, alexnet)")
    if not planes or len(set(planes)) != len(planes) or not all(0 <= b < 8 for b in planes):
        raise ArchError(f"{arch.name}: planes must be distinct pixel bits 0..7, got {list(planes)}",
                        fix="give e.g. --planes 7,6,5,4")
    kept = tuple(sorted(planes, reverse=True))
    layers = [L("bitplane_conv", first.out_ch, first.kernel, first.stride, first.pad, kept), *arch.layers[1:]]
    return Arch(arch.name, arch.input_shape, arch.classes, layers)


NM = tuple[int, int]  # N ones per block of M weights


def with_sparsity(arch: Arch, nm: NM | Mapping[int, NM], centred: bool = False) -> Arch:
    """The same architecture with binary (XNOR) layers made sparse binary ones (SBNN,
    kinds._SparseDatapath), same geometry and widths. ``nm`` is one (N, M) for every binary
    layer, or a map from layer index (the number its IR name starts with) to (N, M) for some
    of them: the others stay dense. ``centred``: the sparse layers compute with b - N/M."""
    binary = [i for i, s in enumerate(arch.layers) if kinds.sparse_of(s.kind)]
    per_layer = dict(nm) if isinstance(nm, Mapping) else {i: tuple(nm) for i in binary}
    for i, (n, m) in sorted(per_layer.items()):
        if i not in binary:
            raise ArchError(f"{arch.name}: layer {i} is not a binary (XNOR) layer that can be made sparse",
                            fix=f"name one of layers {', '.join(f'{b:02d}' for b in binary)}")
        problem = ir.nm_problem(n, m)
        if problem:
            raise ArchError(f"{arch.name}: N:M sparsity {problem}", fix="give e.g. --nm 1:4,2:8")
    if not per_layer:
        raise ArchError(f"{arch.name}: no binary layer to make sparse", fix="give a model with binary_conv or binary_dense layers")
    layers = [dataclasses.replace(s, kind=kinds.sparse_of(s.kind), nm=per_layer[i], centred=centred) if i in per_layer else s
              for i, s in enumerate(arch.layers)]
    sparse = Arch(arch.name, arch.input_shape, arch.classes, layers)
    for i, layer in enumerate(arch_layers(sparse)):
        if kinds.of(layer).sparse and layer.fan_in < layer.nm[1]:
            raise ArchError(f"{arch.name} layer {i} ({layer.kind}): fan-in K={layer.fan_in} is smaller than the block "
                            f"M={layer.nm[1]}", fix=f"choose M <= {layer.fan_in} for it")
    return sparse


@torch.no_grad()
def sparsified(model: BNN, nm: NM | Mapping[int, NM], images: np.ndarray | None = None, centred: bool = False) -> BNN:
    """A trained binary model as an N:M sparse one (``with_sparsity(arch, nm)``) that keeps its latent
    weights, so fine-tuning starts from the dense net's magnitudes: each block keeps its N
    largest. Every other channel of a sparse layer is mirrored first (latent row, BatchNorm
    scale and running mean negated: the same dense function), so that it keeps its N most
    negative weights and, with its scale now of the other sign, falls as they rise: with
    0/1 weights and one sign of scale a layer would be a monotone function of its inputs
    (and it learns far worse: docs/DESIGN.md, "Sparse binary layers"). With ``images``
    (N, H, W, C uint8) every BatchNorm's statistics are re-estimated on them: the sparse
    sums have another mean and spread than the dense ones. ``centred``: see ``with_sparsity``."""
    sparse = BNN(with_sparsity(model.arch, nm, centred))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for i, spec in enumerate(sparse.arch.layers):
        if not kinds.get(spec.kind).sparse:
            continue
        sign = torch.ones(spec.out_ch)
        sign[1::2] = -1.0
        for name in ("op.weight", "bn.weight", "bn.running_mean"):
            key = f"blocks.{i}.{name}"
            state[key] = state[key] * sign.view(-1, *[1] * (state[key].dim() - 1))
    sparse.load_state_dict(state)
    if images is not None:
        bns = [b.bn for b in sparse.blocks if hasattr(b, "bn")]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the images
        sparse.train()
        sparse(images_to_input(images))
        for bn in bns:
            bn.momentum = 0.1  # torch's default, which training uses
    return sparse.eval()


ARCHS: dict[str, Callable[..., Arch]] = {"nin": nin, "cnv": cnv, "lfc": lfc, "sfc": sfc, "tfc": tfc, "alexnet": alexnet}


def build_arch(name: str, input_shape: tuple[int, int, int], classes: list[str], **kw) -> Arch:
    if name not in ARCHS:
        raise ArchError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[name](input_shape, classes, **kw)
