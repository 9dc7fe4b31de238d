"""Export a trained Brevitas BNN (training.blocks) to the flipflow IR.

BatchNorm + sign folds into one integer threshold per channel. Rather than
trusting a float formula, the threshold is found by binary search over the
integer accumulator range, evaluating the model's own BatchNorm and sign
modules in eval mode: ties and float rounding resolve exactly as Brevitas
resolves them. BatchNorm is monotone in its input, increasing when
gamma >= 0; channels with gamma < 0 are mirrored (binary weight row
inverted, fixed-point row negated), so the hardware always tests acc >= T.
A sparse binary layer's 0/1 rows cannot be inverted: its threshold is on
P = popcount(x AND b), whose float value is 2P - (ones of the row), and a
channel with gamma < 0 inverts its output bit instead (IR ``invert``). A
centred sparse layer's threshold is on acc = M P - N S (S the popcount of the
window), whose float value is (2 acc + N K - M ones) / M, exact: M is a power
of two (kinds._SparseDatapath).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from flipflow import ir, kinds
from flipflow.errors import FlipflowError
from flipflow.training.blocks import (
    BNN,
    PIXEL_SCALE,
    BinaryConv,
    BitplaneConv,
    BinaryDense,
    GlobalSum,
    InputConv,
    InputDense,
    MaxPool,
    OutputConv,
    OutputDense,
    ThresholdBlock,
    SparseBlock,
)


class ExportError(FlipflowError, ValueError):
    """The model cannot be expressed in the IR; the message names the layer."""


def _fixed_point_weights(op: torch.nn.Module, where: str) -> tuple[np.ndarray, float, int]:
    qw = op.quant_weight()
    scale = float(qw.scale.detach().flatten()[0])
    if qw.scale.numel() != 1:
        raise ExportError(f"{where}: per-channel weight scales are not supported; use a per-tensor quantizer")
    if scale <= 0 or 2.0 ** np.round(np.log2(scale)) != scale:
        raise ExportError(f"{where}: weight scale {scale} is not a power of two; use a FixedPoint weight quantizer")
    ints = torch.round(qw.value.detach() / scale).to(torch.int64).numpy()
    bits = int(qw.bit_width)
    if ints.min() < -(2 ** (bits - 1)) + 1 or ints.max() > 2 ** (bits - 1) - 1:
        raise ExportError(f"{where}: weights outside the narrow {bits}-bit range (needed to negate rows)")
    return ints, scale, bits


def _binary_weights(op: torch.nn.Module, where: str) -> np.ndarray:
    value = op.quant_weight().value.detach()
    if not torch.all(value.abs() == 1):
        raise ExportError(f"{where}: binary weights must be +-1 with scale 1 (SignedBinaryWeightPerTensorConst)")
    return (value > 0).to(torch.uint8).numpy()


def _to_hwc_rows(w: np.ndarray, in_shape: ir.Shape, dense: bool) -> np.ndarray:
    """[out, in, ky, kx] -> [out, ky, kx, in]; dense [out, C*H*W] -> [out, H*W*C]."""
    if dense:
        h, wd, c = in_shape
        return w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    return w.transpose(0, 2, 3, 1)


@torch.no_grad()
def fold_thresholds(
    block: ThresholdBlock, lo: np.ndarray, hi: np.ndarray, pre_bn_value: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: the mirror sign m (+1, or -1 where gamma < 0) and the
    threshold T, the smallest integer accumulator a in [lo, hi] of the
    mirrored row whose float pre-BN value ``pre_bn_value(a, m)`` the block's
    BN + sign map to +1 (hi + 1 if none)."""
    gamma = block.bn.weight.detach()
    mirror = np.where(gamma.numpy() < 0, -1, 1).astype(np.int64)
    spatial = isinstance(block.bn, torch.nn.BatchNorm2d)

    def fires(a: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(pre_bn_value(a, mirror).astype(np.float32))[None]
        if spatial:
            x = x[:, :, None, None]
        return (block.act(block.bn(x)).flatten() > 0).numpy()

    lo, hi = lo.astype(np.int64).copy(), hi.astype(np.int64) + 1
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        f = fires(np.minimum(mid, hi - 1))
        active = lo < hi
        hi = np.where(active & f, mid, hi)
        lo = np.where(active & ~f, mid + 1, lo)
    return mirror, lo


def export(model: BNN, name: str, dataset: str, provenance: dict | None = None, metrics: dict | None = None) -> ir.Network:
    """Fold a trained BNN (in eval mode) into an IR network."""
    model.eval()
    arch = model.arch
    shape: ir.Shape = tuple(arch.input_shape)
    layers: list[ir.Layer] = []
    for i, (spec, block) in enumerate(zip(arch.layers, model.blocks)):
        lname = f"{i:02d}_{spec.kind}"
        where = f"layer {i} ({spec.kind})"
        layer = ir.Layer(lname, spec.kind, shape, shape, kernel=spec.kernel, stride=spec.stride, pad=spec.pad,
                         planes=tuple(spec.planes))
        dense = not kinds.get(spec.kind).spatial
        if dense:
            layer.kernel, layer.stride, layer.pad = 1, 1, 0
        if isinstance(block, (InputConv, InputDense)):
            w, scale, bits = _fixed_point_weights(block.op, where)
            w = _to_hwc_rows(w, shape, dense)
            amax = 255 * np.abs(w).reshape(len(w), -1).sum(1)
            mirror, t = fold_thresholds(block, -amax, amax, lambda a, m: m * a * (scale * PIXEL_SCALE))
            layer.weights = (w * mirror.reshape(-1, *[1] * (w.ndim - 1))).astype(np.int8)
            layer.thresholds, layer.weight_bits, layer.weight_scale = t, bits, scale
        elif isinstance(block, (BinaryConv, BinaryDense, BitplaneConv)):
            w = _to_hwc_rows(_binary_weights(block.op, where), shape, dense)
            k = int(np.prod(w.shape[1:]))
            zeros = np.zeros(len(w), np.int64)
            # Brevitas sees 2P - K; a mirrored row counts P' = K - P matches, so 2P - K = m(2P' - K)
            mirror, t = fold_thresholds(block, zeros, zeros + k, lambda p, m: m * (2 * p - k))
            flip = (mirror < 0).reshape(-1, *[1] * (w.ndim - 1))
            layer.weights = np.where(flip, 1 - w, w).astype(np.uint8)
            layer.thresholds = t
        elif isinstance(block, SparseBlock):
            w = _to_hwc_rows(block.weight_mask().numpy().astype(np.uint8), shape, dense)
            layer.weights, layer.nm, layer.centred = w, tuple(spec.nm), block.centred
            ones = w.reshape(len(w), -1).sum(1).astype(np.int64)
            if block.centred:
                lo, hi = kinds.matrix(layer).accumulator_range(layer)
                n, m = spec.nm
                k = int(np.prod(w.shape[1:]))
                # Brevitas sees sum((b - N/M) x) = (2 acc + N K - M ones) / M. A mirrored channel (gamma < 0)
                # is searched on acc' = -acc: it fires when acc' >= T', i.e. when not acc >= 1 - T'
                bound = np.full(len(w), max(-lo, hi), np.int64)
                mirror, t = fold_thresholds(block, -bound, bound, lambda a, s: (2 * s * a + n * k - m * ones) / m)
                layer.thresholds = np.clip(np.where(mirror < 0, 1 - t, t), lo, hi + 1)
            else:
                # Brevitas sees the sum of the inputs where b = 1: 2P - ones, P = popcount(x AND b). A mirrored
                # channel (gamma < 0) is searched on P' = ones - P, 2P - ones = -(2P' - ones): it fires when
                # P' >= T', i.e. when not P >= ones + 1 - T'
                mirror, t = fold_thresholds(block, np.zeros_like(ones), ones, lambda p, m: m * (2 * p - ones))
                layer.thresholds = np.where(mirror < 0, ones + 1 - t, t)
            layer.invert = (mirror < 0).astype(np.uint8)
        elif isinstance(block, (OutputConv, OutputDense)):
            w, scale, bits = _fixed_point_weights(block.op, where)
            layer.weights = _to_hwc_rows(w, shape, dense).astype(np.int8)
            layer.weight_bits, layer.weight_scale = bits, scale
        elif isinstance(block, MaxPool):
            if block.ceil_mode or block.dilation not in (1, (1, 1)):
                raise ExportError(f"{where}: only floor-mode, undilated max-pool is supported")
        elif not isinstance(block, GlobalSum):
            raise ExportError(f"{where}: {type(block).__name__} has no IR equivalent")
        layer.out_shape = (0, 0, spec.out_ch if layer.has_weights else shape[2])
        layer.out_shape = ir.expected_out_shape(layer)
        layers.append(layer)
        shape = layer.out_shape
    net = ir.Network(name, tuple(arch.input_shape), list(arch.classes), dataset, layers, provenance or {}, metrics or {})
    net.provenance.setdefault("arch", arch.to_dict())
    net.validate()
    return net
