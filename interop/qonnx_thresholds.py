"""Closing what the importer found into IR layers (docs/DESIGN.md, "Importing QONNX"):
thresholds by bisection over integer accumulators on the graph's own nodes, the 1x1
input layer of a thresholded input, and the score layer with its per-tensor affine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import onnx

from flipflow import ir
from flipflow.interop import qonnx_graph as qg
from flipflow.interop.qonnx_states import Acc, Bits, Layout, Pixels, refuse

if TYPE_CHECKING:
    from flipflow.interop.qonnx_import import Graph

BIG = np.float32(3e38)  # stands for -inf / +inf when asking an activation for its two levels


def levels(g: Graph, node: onnx.NodeProto) -> int:
    """Output levels of an activation node by its parameters."""
    if node.op_type == "Quant":
        bits = g.const(node.input[3])
        if bits is None:
            refuse(node, "its bit width is computed, not constant")
        return 2 ** int(np.asarray(bits).reshape(-1)[0])
    if node.op_type == "MultiThreshold":
        return int(g.consts[node.input[1]].shape[-1]) + 1
    return 2


def bits(levels: int) -> int:
    return max(1, int(np.ceil(np.log2(levels))))


def _two_levels(g: Graph, node: onnx.NodeProto, shape: tuple[int, ...], run: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    """The activation's outputs at -inf and +inf: bit 0 and bit 1, one pair for every channel."""
    ext = np.broadcast_to(np.array([-BIG, BIG], np.float32).reshape((2,) + (1,) * len(shape)), (2,) + shape).copy()
    out = run(ext).reshape(2, -1)
    if not np.all(out == out[:, :1]):
        refuse(node, "per-channel float scales on a binary activation: its two values differ between channels; "
                     "the hardware's binary values are one pair for the whole tensor", fix="use a per-tensor scale")
    lo, hi = float(out[0, 0]), float(out[1, 0])
    if lo == hi:
        refuse(node, f"outputs the constant {lo:g}")
    return lo, hi


def threshold_pixels(g: Graph, node: onnx.NodeProto, s: Pixels) -> Bits:
    """A binary activation on the input itself: a 1x1 input_conv with one +-1 weight per
    channel thresholds every pixel (docs/DESIGN.md: the 1-bit thresholded input)."""
    lo, hi = _two_levels(g, node, s.values.shape[1:], lambda x: g.run_on(node, x))
    out = g.run_on(node, s.values)
    _check_two(node, out, lo, hi)
    fires = s.channel_table(node, (out == hi).astype(np.int8))  # (C, 256)
    c = fires.shape[0]
    sign = np.ones(c, np.int64)
    t = np.zeros(c, np.int64)
    p = np.arange(qg.PIXEL_LEVELS)
    for ch in range(c):
        f = fires[ch]
        if np.all(np.diff(f) >= 0):  # fires from the first pixel with a 1 on (256: never)
            t[ch] = int(p[f == 1].min()) if f.any() else qg.PIXEL_LEVELS
        elif np.all(np.diff(f) <= 0):  # fires up to the last pixel with a 1: -pixel >= -last
            sign[ch], t[ch] = -1, -int(p[f == 1].max())
        else:
            refuse(node, f"is no threshold of the pixel in channel {ch} (it fires on and off as the pixel grows)")
    h, w, _ = g.input_shape
    layer = ir.Layer(node.name, "input_conv", g.input_shape, (h, w, c), weight_bits=2,
                     weights=(np.eye(c, dtype=np.int64) * sign[:, None]).reshape(c, 1, 1, c).astype(np.int8), thresholds=t)
    g.layers.append(layer)
    return Bits(lo, hi, s.layout)


def _check_two(node: onnx.NodeProto, out: np.ndarray, lo: float, hi: float) -> None:
    bad = out[(out != lo) & (out != hi)]
    if bad.size:
        refuse(node, f"outputs {float(bad.reshape(-1)[0]):g} besides its two values {lo:g} and {hi:g} "
                     "(e.g. Sign(0) = 0: ternary); flipflow's activations are binary",
               fix="use BipolarQuant (sign(0) = +1) or a BatchNormalization that keeps the threshold off the integers")


def threshold_layer(g: Graph, node: onnx.NodeProto, s: Acc) -> Bits:
    """Close an Acc into a thresholded layer: bit = acc' >= T per channel, acc' the
    accumulator of the (possibly mirrored) weight row, T found by bisection over the
    integer accumulators on the graph's own nodes."""
    if s.binary_in and not np.all(np.abs(s.ints) == 1):
        refuse(s.node, f"binary layer with weights taking {np.unique(s.ints).size} integer values "
                       f"({', '.join(map(str, np.unique(s.ints)[:5]))}); binary layers need +-s weights",
               fix="use 1-bit weights (BipolarQuant) in every layer between the first and the last")
    out_ch = s.ints.shape[0]
    shape = (out_ch,) + (1,) * (s.ndim - 2)

    def act(x: np.ndarray) -> np.ndarray:
        return g.run_on(node, x.reshape((len(x),) + shape)).reshape(len(x), -1)

    lo_v, hi_v = _two_levels(g, node, shape, lambda x: g.run_on(node, x))
    k = s.fan_in
    if s.binary_in:  # search P in [0, K]; acc = 2P - K; mirrored P' = K - P
        lo, hi, centre = np.zeros(out_ch, np.int64), np.full(out_ch, k, np.int64), k
        to_acc = lambda p: 2 * p - k  # noqa: E731
    else:  # search acc of codes; mirrored acc' = -acc
        rows = s.ints.reshape(out_ch, -1)
        lo, hi, centre = np.minimum(rows, 0).sum(1) * 255, np.maximum(rows, 0).sum(1) * 255, 0
        to_acc = lambda a: a  # noqa: E731

    def fires(t: np.ndarray) -> np.ndarray:
        out = act(s.evaluate(g, to_acc(t)[None].astype(np.float64))[0][None])
        return out[0] == hi_v

    f_lo, f_hi = fires(lo), fires(hi)
    mirror = np.where(f_lo & ~f_hi, -1, 1)
    m_lo = np.where(mirror < 0, centre - hi, lo)  # the mirrored search range
    m_hi = np.where(mirror < 0, centre - lo, hi)
    unmirror = lambda t: np.where(mirror < 0, centre - t, t)  # noqa: E731
    a, b = m_lo.copy(), m_hi + 1
    while np.any(a < b):
        mid = (a + b) // 2
        f = fires(unmirror(np.minimum(mid, m_hi)))
        active = a < b
        b = np.where(active & f, mid, b)
        a = np.where(active & ~f, mid + 1, a)
    t = a
    edge = np.stack([unmirror(np.clip(t - 1, m_lo, m_hi)), unmirror(np.clip(t, m_lo, m_hi))])
    _check_two(node, act(np.concatenate([s.evaluate(g, to_acc(e)[None].astype(np.float64)) for e in edge])), lo_v, hi_v)
    layer = s.layer
    flip = (mirror < 0).reshape((-1,) + (1,) * (s.ints.ndim - 1))
    if s.binary_in:
        layer.kind = "binary_conv" if s.spatial else "binary_dense"
        layer.weights = np.where(flip, s.ints < 0, s.ints > 0).astype(np.uint8)
    else:
        layer.kind = "input_conv" if s.spatial else "input_dense"
        ints = np.where(flip, -s.ints, s.ints)
        layer.weights, layer.weight_bits = ints.astype(np.int8), _weight_bits(s.node, ints)
    layer.thresholds = t.astype(np.int64)
    layer.out_shape = ir.expected_out_shape(layer)
    _append(g, layer, s.node)
    return Bits(lo_v, hi_v, Layout.nchw(layer.out_shape) if s.spatial else Layout(np.arange(out_ch), (1, 1, out_ch)))


def _weight_bits(node: onnx.NodeProto, ints: np.ndarray) -> int:
    """Narrow signed width of integer weights (negating a row stays in range): 2..8 bits."""
    bits = max(2, int(np.abs(ints).max()).bit_length() + 1)
    if bits > 8:
        refuse(node, f"weights need {bits} bits; the fixed-point layers take at most 8")
    return bits


def _append(g: Graph, layer: ir.Layer, node: onnx.NodeProto) -> None:
    if not g.layers and layer.kind not in ir.INPUT_KINDS:
        refuse(node, "the first layer reads binary values, not the input pixels")
    if g.layers and layer.kind in ir.INPUT_KINDS:
        refuse(node, "a second layer reads the input pixels")
    g.layers.append(layer)


def output_layer(g: Graph, s: Acc) -> tuple[float, float]:
    """Close the last Acc into the score layer (+ global_sum); returns (scale, offset) with
    graph output = scale x integer score + offset, the same for every class."""
    rows = s.ints.reshape(s.ints.shape[0], -1)
    top = max(1, int(np.abs(rows).sum(1).max()))
    probe = np.array([[0.0], [float(top)]]) * np.ones((1, rows.shape[0]))
    y = s.evaluate(g, probe).astype(np.float64)
    alpha, beta = (y[1] - y[0]) / top, y[0]
    tol = 1e-5 * max(1.0, float(np.abs(y).max()))
    if np.ptp(alpha) * top > tol or np.ptp(beta) > tol:
        refuse(s.node, "the scores get a per-class scale or offset (per-channel weight scale, bias or affine); "
                       "integer scores keep the argmax only under one per-tensor affine",
               fix="use a per-tensor weight scale and a per-tensor final affine (BNN-PYNQ's TensorNorm is one)")
    scale, offset = float(alpha[0]), float(beta[0])
    if scale == 0:
        refuse(s.node, "the scores do not depend on the input (zero scale)")
    ints = -s.ints if scale < 0 else s.ints  # a negative per-tensor scale: negate the weights, argmax kept
    layer = s.layer
    layer.kind = "output_conv" if s.spatial else "output_dense"
    layer.weights, layer.weight_bits = ints.astype(np.int8), _weight_bits(s.node, ints)
    layer.out_shape = ir.expected_out_shape(layer)
    _append(g, layer, s.node)
    if s.positions > 1:
        g.layers.append(ir.Layer(layer.name + "_sum", "global_sum", layer.out_shape, (1, 1, layer.out_ch)))
    elif layer.out_shape[:2] != (1, 1):
        refuse(s.node, f"ends in a {layer.out_shape[0]}x{layer.out_shape[1]} score map; flipflow scores once per class",
               fix="sum the map (ReduceSum over H, W) or use a kernel covering the map")
    return abs(scale), offset
