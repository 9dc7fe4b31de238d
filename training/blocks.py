"""Brevitas building blocks, one per IR layer kind, and the model builder.

Every block maps one-to-one onto an IR layer (same kind names as
``flipflow.ir``), and is built so the exported integer network is bit-exact:

* binary weights and activations have a constant scale of 1, so a binary
  conv's float output is the exact integer 2P - K;
* the input is pixel / 256 and fixed-point weights have power-of-two scales,
  so the first and last layers' float sums are exact scaled integers;
* binary layers pad with -1 (``F.pad(value=-1)``); max-pool pads with -inf,
  which on +-1 data is the same as -1;
* the last layer has no bias and the network sums (not averages) its score
  map, so the logits are weight_scale x integer scores;
* sparse binary layers (SBNN) have 0/1 weights with N:M structure and scale 1
  (``NMBinaryWeight``), so their float output is the exact integer
  2 popcount(x AND b) - ones; centred ones use b - N/M (M a power of two), so it
  is an exact dyadic number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import (
    Int8WeightPerTensorFixedPoint,
    SignedBinaryActPerTensorConst,
    SignedBinaryWeightPerTensorConst,
)
from torch import nn

from flipflow import ir, kinds
from flipflow.errors import FlipflowError

PIXEL_SCALE = 1.0 / 256.0  # model input = pixel * PIXEL_SCALE, exact in float32


class ArchError(FlipflowError, ValueError):
    """An architecture (or its widths) that cannot be built."""


@dataclass
class LayerSpec:
    """One layer of an architecture; ``kind`` is an IR layer kind."""

    kind: str
    out_ch: int = 0  # output channels / features (0 for pooling and global_sum)
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    planes: tuple[int, ...] = ()  # bit-plane input kinds: the kept pixel bits, most significant first
    nm: tuple[int, int] | None = None  # sparse kinds: N ones per block of M weights
    centred: bool = False  # sparse kinds: weights b - N/M (ir.Layer.centred)


@dataclass
class Arch:
    """A whole architecture: input (H, W, C), classes and the layer list."""

    name: str
    input_shape: tuple[int, int, int]
    classes: list[str]
    layers: list[LayerSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Arch":
        return Arch(d["name"], tuple(d["input_shape"]), list(d["classes"]),
                    [LayerSpec(**{**l, "planes": tuple(l.get("planes", ())), "nm": tuple(l["nm"]) if l.get("nm") else None})
                     for l in d["layers"]])


def arch_layers(arch: Arch) -> list[ir.Layer]:
    """The architecture's layers with their shapes (weights absent), by the kinds' own shape arithmetic."""
    shape: ir.Shape = tuple(arch.input_shape)
    layers = []
    for s in arch.layers:
        layer = ir.Layer(s.kind, s.kind, shape, (0, 0, s.out_ch or shape[2]), s.kernel, s.stride, s.pad,
                         planes=tuple(s.planes), nm=s.nm, centred=s.centred)
        layer.out_shape = ir.expected_out_shape(layer)
        layers.append(layer)
        shape = layer.out_shape
    return layers


class UnitBinaryWeight(SignedBinaryWeightPerTensorConst):
    """+-1 weights (Brevitas' default constant scale is 0.1)."""

    scaling_const = 1.0


def binary_act() -> QuantIdentity:
    """sign(x) with sign(0) = +1, scale 1."""
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=False)


class ThresholdBlock(nn.Module):
    """Linear op -> BatchNorm -> sign: the float form of an integer threshold layer."""

    kind = ""
    minus_one_pad = 0

    def __init__(self, op: nn.Module, bn: nn.Module):
        super().__init__()
        self.op, self.bn, self.act = op, bn, binary_act()

    def pre_bn(self, x: torch.Tensor) -> torch.Tensor:
        if self.minus_one_pad:
            x = F.pad(x, (self.minus_one_pad,) * 4, value=-1.0)
        if isinstance(self.op, QuantLinear):
            x = x.flatten(1)
        return self.op(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pre_bn(x)))


class _Conv:
    """Blocks built from a convolution layer's geometry."""

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.pad)


class _Dense:
    """Blocks built from a dense layer's geometry (the flattened input)."""

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls(layer.fan_in, layer.out_ch)


class InputConv(_Conv, ThresholdBlock):
    kind = "input_conv"

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int):
        op = QuantConv2d(in_ch, out_ch, kernel, stride, padding=pad, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)
        super().__init__(op, nn.BatchNorm2d(out_ch))


def bit_plane_input(x: torch.Tensor, planes: tuple[int, ...]) -> torch.Tensor:
    """The model input (pixel / 256, NCHW) -> +-1 bit planes, N x (C x P) x H x W, channel
    c's plane planes[j] at c x P + j (the order of kinds.bit_planes)."""
    pixels = torch.round(x / PIXEL_SCALE).to(torch.int64)
    bits = torch.stack([(pixels >> b) & 1 for b in planes], dim=2)  # N, C, P, H, W
    return (2 * bits - 1).flatten(1, 2).to(x.dtype)


class BitplaneConv(ThresholdBlock):
    """CBNN's first layer: a binary convolution over the kept bit planes of the pixels,
    padded with -1 (the planes of pixel 0)."""

    kind = "bitplane_conv"

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int, planes: tuple[int, ...]):
        op = QuantConv2d(in_ch * len(planes), out_ch, kernel, stride, padding=0, bias=False, weight_quant=UnitBinaryWeight)
        super().__init__(op, nn.BatchNorm2d(out_ch))
        self.minus_one_pad = pad
        self.planes = tuple(planes)

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.pad, layer.planes)

    def pre_bn(self, x: torch.Tensor) -> torch.Tensor:
        return super().pre_bn(bit_plane_input(x, self.planes))


class InputDense(_Dense, ThresholdBlock):
    kind = "input_dense"

    def __init__(self, in_features: int, out_features: int):
        op = QuantLinear(in_features, out_features, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)
        super().__init__(op, nn.BatchNorm1d(out_features))


class BinaryConv(_Conv, ThresholdBlock):
    kind = "binary_conv"

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int):
        op = QuantConv2d(in_ch, out_ch, kernel, stride, padding=0, bias=False, weight_quant=UnitBinaryWeight)
        super().__init__(op, nn.BatchNorm2d(out_ch))
        self.minus_one_pad = pad


class BinaryDense(_Dense, ThresholdBlock):
    kind = "binary_dense"

    def __init__(self, in_features: int, out_features: int):
        op = QuantLinear(in_features, out_features, bias=False, weight_quant=UnitBinaryWeight)
        super().__init__(op, nn.BatchNorm1d(out_features))


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantised weights; backward: the gradient passes to the latent weights as
    is (the training loop clamps them to [-1, 1], as for +-1 weights)."""

    @staticmethod
    def forward(ctx, latent: torch.Tensor, quantised: torch.Tensor) -> torch.Tensor:
        return quantised

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class NMBinaryWeight(nn.Module):
    """N:M 0/1 weight quantiser (SBNN with the structure sparse hardware needs): per output
    row and block of M consecutive weights in the IR's window order ((ky, kx, c) with c
    fastest; a dense layer's (h, w, c)), the N largest latent weights are 1, the rest 0; a
    tie goes to the lower position (a stable sort). A last partial block keeps min(N, its
    length). The scale is 1: BatchNorm absorbs any per-layer scale, and 1 keeps the float
    sums exact integers."""

    def __init__(self, n: int, m: int, channels: int, positions: int):
        super().__init__()
        self.n, self.m = n, m
        # torch's columns are (c, position), the IR's (position, c): column of IR element j
        self.register_buffer("order", torch.arange(channels * positions).reshape(channels, positions).t().reshape(-1),
                             persistent=False)

    @torch.no_grad()
    def mask(self, latent: torch.Tensor) -> torch.Tensor:
        """The 0/1 weights (latent's shape and layout)."""
        rows = latent.reshape(len(latent), -1)[:, self.order]
        k = rows.shape[1]
        blocks = F.pad(rows, (0, -k % self.m), value=-math.inf).reshape(len(rows), -1, self.m)
        kept = torch.sort(blocks, dim=-1, descending=True, stable=True).indices[..., : self.n]
        ir_mask = torch.zeros_like(blocks).scatter_(-1, kept, 1.0).reshape(len(rows), -1)[:, :k]
        out = torch.empty_like(ir_mask)
        out[:, self.order] = ir_mask
        return out.reshape(latent.shape)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(latent, self.mask(latent))


class SparseBlock(ThresholdBlock):
    """Sparse binary layer (SBNN): +-1 inputs, N:M 0/1 weights, BatchNorm, sign. A 0/1 row
    cannot be inverted to mirror a negative BatchNorm scale, so export inverts such a
    channel's output bit instead (IR ``invert``). A centred layer computes with b - N/M
    (``offset``; kinds._SparseDatapath)."""

    def __init__(self, op: nn.Module, bn: nn.Module, nm: tuple[int, int], channels: int, positions: int,
                 centred: bool):
        super().__init__(op, bn)
        self.quant = NMBinaryWeight(*nm, channels, positions)
        self.offset = nm[0] / nm[1] if centred else 0.0  # subtracted from every 0/1 weight

    def weight_mask(self) -> torch.Tensor:
        return self.quant.mask(self.op.weight.detach())

    def weight(self) -> torch.Tensor:
        """The weights the layer computes with: the N:M mask (straight-through), less the offset."""
        return self.quant(self.op.weight) - self.offset  # exact: N/M is dyadic, and 0 for {0, 1}

    @property
    def centred(self) -> bool:
        return self.offset != 0.0


class SparseConv(SparseBlock):
    kind = "sparse_conv"

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int, nm: tuple[int, int],
                 centred: bool = False):
        super().__init__(nn.Conv2d(in_ch, out_ch, kernel, stride, padding=0, bias=False), nn.BatchNorm2d(out_ch), nm,
                         in_ch, kernel * kernel, centred)
        self.minus_one_pad = pad

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls(layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.pad, layer.nm, layer.centred)

    def pre_bn(self, x: torch.Tensor) -> torch.Tensor:
        if self.minus_one_pad:  # the padding is -1 inputs, which a centred layer's -N/M weights see
            x = F.pad(x, (self.minus_one_pad,) * 4, value=-1.0)
        return F.conv2d(x, self.weight(), stride=self.op.stride)


class SparseDense(SparseBlock):
    kind = "sparse_dense"

    def __init__(self, in_shape: tuple[int, int, int], out_features: int, nm: tuple[int, int], centred: bool = False):
        h, w, c = in_shape
        super().__init__(nn.Linear(h * w * c, out_features, bias=False), nn.BatchNorm1d(out_features), nm, c, h * w,
                         centred)

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls(layer.in_shape, layer.out_ch, layer.nm, layer.centred)

    def pre_bn(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), self.weight())


class MaxPool(nn.MaxPool2d):
    kind = "maxpool"

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls(layer.kernel, layer.stride, layer.pad)


class OutputConv(_Conv, nn.Module):
    """Binary input -> fixed-point weights -> integer score map (x weight scale)."""

    kind = "output_conv"

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, pad: int):
        super().__init__()
        self.minus_one_pad = pad
        self.op = QuantConv2d(in_ch, out_ch, kernel, stride, padding=0, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.minus_one_pad:
            x = F.pad(x, (self.minus_one_pad,) * 4, value=-1.0)
        return self.op(x)


class OutputDense(_Dense, nn.Module):
    kind = "output_dense"

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.op = QuantLinear(in_features, out_features, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x.flatten(1))


class GlobalSum(nn.Module):
    """Sum (not average) over the spatial axes: keeps scores integer."""

    kind = "global_sum"

    @classmethod
    def for_layer(cls, layer: ir.Layer) -> nn.Module:
        return cls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


class BNN(nn.Module):
    """A binary network built from an Arch; ``blocks[i]`` is IR layer i."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.blocks = nn.ModuleList(build_blocks(arch))

    @classmethod
    def initialised(cls, arch: Arch, seed: int) -> "BNN":
        """Fresh weights drawn from ``seed`` (torch's global generator is seeded
        differently in every process, so an unseeded init is not reproducible)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)

    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, NCHW (dense outputs as N x C x 1 x 1)."""
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x if x.dim() == 4 else x[:, :, None, None])
        return outs

    def output_scale(self) -> float:
        """Logits = output_scale() x integer scores."""
        head = next(b for b in self.blocks if kinds.get(b.kind).role == "output")
        return float(head.op.quant_weight().scale.detach().flatten()[0])


def images_to_input(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 pixels -> the model's exact float input (pixel / 256), NCHW.

    Takes a torch tensor already NCHW, or a numpy array (N, H, W, C) as the
    datasets and the golden model hold images.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.array(images, copy=True)).permute(0, 3, 1, 2)
    return images.float() * PIXEL_SCALE


BLOCKS: dict[str, type[nn.Module]] = {
    cls.kind: cls for cls in (InputConv, InputDense, BitplaneConv, BinaryConv, BinaryDense, SparseConv, SparseDense, MaxPool,
                              OutputConv, OutputDense, GlobalSum)
}


def build_blocks(arch: Arch) -> list[nn.Module]:
    shape = tuple(arch.input_shape)
    blocks: list[nn.Module] = []
    spatial = True
    for i, s in enumerate(arch.layers):
        where = f"{arch.name} layer {i} ({s.kind})"
        if s.kind not in BLOCKS:
            raise ArchError(f"{where}: unknown layer kind {s.kind!r}; supported: {', '.join(BLOCKS)}")
        kind = kinds.get(s.kind)
        if kind.spatial and kind.has_weights and not spatial:
            raise ArchError(f"{where}: a convolution cannot follow a dense layer")
        layer = ir.Layer(s.kind, s.kind, shape, (0, 0, s.out_ch or shape[2]), s.kernel, s.stride, s.pad,
                         planes=tuple(s.planes), nm=s.nm, centred=s.centred)
        blocks.append(BLOCKS[s.kind].for_layer(layer))
        shape = ir.expected_out_shape(layer)
        spatial = spatial and (kind.spatial or not kind.has_weights)
        if min(shape[:2]) < 1:
            raise ArchError(f"{where}: output map is empty for input {arch.input_shape}")
    c = shape[2]
    if c != len(arch.classes):
        raise ArchError(f"{arch.name}: the last layer has {c} outputs but there are {len(arch.classes)} classes")
    return blocks
