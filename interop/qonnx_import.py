"""`flipflow import`: a QONNX graph (Brevitas' export_qonnx, FINN) -> the flipflow IR.

The cleaned graph is walked in order, each tensor carrying what the hardware
can make of it (docs/DESIGN.md, "Importing QONNX"):

* ``Pixels``: an elementwise function of the input pixel (the graph input is
  pixel x ``input_scale``, channel-first), kept as its value for each of the
  256 pixels; a multi-bit quantiser (Quant, MultiThreshold) stays in it;
* ``Bits``: a binary activation, one value for bit 0 and one for bit 1;
* ``Acc``: the integer accumulator of a Conv / Gemm / MatMul whose IR kind is
  still open, with the elementwise nodes (BatchNormalization, Mul, Add, ...)
  applied since. A binary activation closes it into a thresholded layer, the
  graph output into the score layer.

Thresholds are found by evaluating the graph's own nodes (qonnx_graph.run_node)
on integer accumulators, so ties resolve as qonnx's executor resolves them.
Anything the hardware cannot build is refused naming the node, its op type and why.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from flipflow import ir
from flipflow.interop import qonnx_graph as qg
from flipflow.interop import qonnx_thresholds as qt
from flipflow.interop.qonnx_states import Acc, Bits, ImportRefused, Layout, Pixels, State, refuse

__all__ = ["Graph", "ImportRefused", "import_model", "source_scores"]

BINARY_ACTS = ("BipolarQuant", "Quant", "MultiThreshold", "Sign")
ELEMENTWISE = ("Mul", "Add", "Sub", "Div")


# -- the walk --------------------------------------------------------------------------------

class Graph:
    """The cleaned graph being walked: constants, each tensor's state, the IR layers so far."""

    def __init__(self, model, input_scale: Fraction):
        self.model = model
        self.opset = qg.opset(model)
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.quant_scale: dict[str, np.ndarray] = {}  # constant Quant / BipolarQuant outputs: their scale
        self.states: dict[str, State] = {}
        self.layers: list[ir.Layer] = []
        self.score_affine: tuple[float, float] | None = None
        inp = model.graph.input[0]
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 4 or min(dims[1:]) < 1:
            raise ImportRefused(f"graph input {inp.name} has shape {dims}",
                                fix="flipflow imports image classifiers with an (N, C, H, W) input")
        self.input_shape: ir.Shape = (dims[2], dims[3], dims[1])
        pixels = qg.pixels_to_input(np.arange(qg.PIXEL_LEVELS), input_scale)
        values = np.broadcast_to(pixels.reshape(-1, 1, 1, 1), (qg.PIXEL_LEVELS, dims[1], dims[2], dims[3])).copy()
        self.states[inp.name] = Pixels(values, Layout.nchw(self.input_shape))

    # -- helpers ----------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def variable(self, node: onnx.NodeProto) -> tuple[str, State]:
        """The node's one computed input (the others are constants)."""
        computed = [n for n in node.input if n and n not in self.consts]
        if len(computed) != 1:
            what = "a residual connection" if node.op_type in ("Add", "Sub", "Concat", "Sum") else "a join of branches"
            refuse(node, f"combines {len(computed)} computed tensors ({what}); flipflow builds a chain of layers")
        return computed[0], self.states[computed[0]]

    def run_on(self, node: onnx.NodeProto, x: np.ndarray, acc: Acc | None = None) -> np.ndarray:
        """Run ``node`` with its computed input replaced by x; constants per channel for an Acc."""
        name = next(n for n in node.input if n and n not in self.consts)
        values = {name: x}
        for n in node.input:
            if n and n in self.consts:
                c = self.consts[n]
                values[n] = _per_channel(node, c, acc) if acc is not None and node.op_type in ELEMENTWISE else c
        return qg.run_node(node, values, self.opset)[0]

    def int_weights(self, node: onnx.NodeProto, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Weights as integers and the per-output-channel scale: w = scale x int."""
        w = self.consts[name].astype(np.float64)
        rows = w.reshape(w.shape[0], -1)
        if name in self.quant_scale:
            scale = np.broadcast_to(self.quant_scale[name].astype(np.float64), w.shape).reshape(w.shape[0], -1)[:, 0]
        else:
            nz = np.where(rows != 0, np.abs(rows), np.inf)
            scale = np.where(np.isfinite(nz.min(1)), nz.min(1), 1.0)
        ints = rows / scale[:, None]
        if np.any(scale <= 0) or not np.array_equal(ints, np.round(ints)):
            refuse(node, f"weights {name} are not integers times a positive scale per output channel",
                   fix="quantise the weights (BipolarQuant, or Quant with a per-tensor or per-channel scale)")
        return np.round(ints).astype(np.int64).reshape(w.shape), scale

    # -- the walk ----------------------------------------------------------------
    def walk(self) -> None:
        for node in self.model.graph.node:
            inputs = [n for n in node.input if n]
            if inputs and all(n in self.consts for n in inputs):
                outs = qg.run_node(node, {n: self.consts[n] for n in inputs}, self.opset)
                self.consts.update(zip(node.output, outs))
                if node.op_type in ("Quant", "BipolarQuant"):
                    self.quant_scale[node.output[0]] = self.consts[node.input[1]]
                continue
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                refuse(node, "no flipflow layer implements this op",
                       fix="flipflow imports binary Conv/Gemm/MatMul, BatchNormalization, Mul/Add/Sub/Div, binary "
                           "activations, MaxPool, Pad, ReduceSum, Reshape/Flatten/Transpose")
            self.states[node.output[0]] = handler(self, node)

    def finish(self) -> None:
        out = self.model.graph.output[0].name
        state = self.states.get(out)
        if not isinstance(state, Acc) or not state.binary_in:
            raise ImportRefused(f"graph output {out} is not the integer scores of a layer reading binary activations",
                                fix="end the network in a Conv/Gemm/MatMul on binary activations (optionally BN-free "
                                    "per-tensor scaling such as TensorNorm, and a ReduceSum)")
        self.score_affine = qt.output_layer(self, state)


# -- handlers: one per op type -----------------------------------------------------------------

def _pass(g: Graph, node: onnx.NodeProto) -> State:
    return g.variable(node)[1]


def _relayout(g: Graph, node: onnx.NodeProto) -> State:
    name, s = g.variable(node)
    if isinstance(s, Acc):
        if s.spatial and (s.layer.out_shape[0], s.layer.out_shape[1]) != (1, 1) and s.positions == 1:
            refuse(node, "reshapes integer scores of a map; sum the map first (ReduceSum)")
        s.ndim = len(g.model.get_tensor_shape(node.output[0]))
        return s
    idx = s.layout.index
    if node.op_type == "Flatten":
        if g.attr(node, "axis", 1) != 1:
            refuse(node, "flattens across the batch axis")
        new = idx.reshape(-1)
    elif node.op_type == "Transpose":
        perm = list(g.attr(node, "perm"))
        if perm[0] != 0:
            refuse(node, "moves the batch axis")
        new = idx.transpose([p - 1 for p in perm[1:]])
    else:
        new = idx.reshape(g.model.get_tensor_shape(node.output[0])[1:])
    layout = Layout(new, s.layout.shape)
    if isinstance(s, Pixels):
        return Pixels(_move(s.values, idx, new), layout)
    return Bits(s.lo, s.hi, layout, s.pad)


def _move(values: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Rearrange (256, *old shape) values to the new layout by their map index."""
    by_index = np.empty((values.shape[0], old.size), values.dtype)
    by_index[:, old.reshape(-1)] = values.reshape(values.shape[0], -1)
    return by_index[:, new.reshape(-1)].reshape((values.shape[0],) + new.shape)


def _elementwise(g: Graph, node: onnx.NodeProto) -> State:
    name, s = g.variable(node)
    if isinstance(s, Pixels):
        return Pixels(g.run_on(node, s.values), s.layout)
    if isinstance(s, Bits):
        levels = np.array([s.lo, s.hi], np.float32).reshape((2,) + (1,) * s.layout.index.ndim)
        out = g.run_on(node, np.broadcast_to(levels, (2,) + s.layout.index.shape).copy()).reshape(2, -1)
        if not np.all(out == out[:, :1]):
            refuse(node, "applies per-channel float scales to binary activations; the hardware's binary values "
                         "are one pair for the whole tensor", fix="use a per-tensor scale")
        return Bits(float(out[0, 0]), float(out[1, 0]), s.layout, s.pad)
    s.chain.append(node)
    return s


def _activation(g: Graph, node: onnx.NodeProto) -> State:
    name, s = g.variable(node)
    levels = qt.levels(g, node)
    if isinstance(s, Pixels):
        if levels > 2:  # a multi-bit input quantiser: stays an elementwise function of the pixel
            return Pixels(g.run_on(node, s.values), s.layout)
        return qt.threshold_pixels(g, node, s)
    if levels != 2:
        refuse(node, f"a {qt.bits(levels)}-bit activation ({levels} levels); flipflow's layers carry 1-bit activations",
               fix="use binary activations (BipolarQuant, 1-bit Quant, one-threshold MultiThreshold, Sign) between layers")
    if isinstance(s, Bits):
        out = g.run_on(node, np.array([s.lo, s.hi], np.float32).reshape((2,) + (1,) * s.layout.index.ndim))
        lo, hi = float(out.reshape(2, -1)[0, 0]), float(out.reshape(2, -1)[1, 0])
        if lo == hi:
            refuse(node, "maps both binary values to one")
        return Bits(lo, hi, s.layout, s.pad)
    return qt.threshold_layer(g, node, s)


def _matrix(g: Graph, node: onnx.NodeProto) -> State:
    x_name = node.input[0]
    if x_name in g.consts:
        refuse(node, "its data input is a constant")
    s = g.states[x_name]
    w_name = node.input[1]
    if w_name not in g.consts:
        refuse(node, "its weights are computed, not constant")
    if isinstance(s, Acc):
        refuse(node, f"reads the output of {s.node.name} ({s.node.op_type}) with no activation between",
               fix="put a binary activation between matrix layers")
    for n in node.input[2:]:
        if n and n not in g.consts:
            refuse(node, "its bias is computed, not constant")
    ints, scale = g.int_weights(node, w_name)
    bias = g.const(node.input[2]).astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
    if node.op_type == "Conv":
        layer, ints = _conv_geometry(g, node, s, ints)
    else:
        layer, ints, scale, bias = _dense_geometry(g, node, s, ints, scale, bias)
    out = ints.shape[0]
    bias = np.asarray(bias, np.float64).reshape(-1)
    bias = np.broadcast_to(bias, (out,)).copy() if bias.size in (1, out) else refuse(node, f"bias of shape {bias.shape}")
    rows = ints.reshape(out, -1)
    r = rows.sum(1).astype(np.float64)
    if isinstance(s, Bits):  # sum w x = s_w ((hi - lo) / 2 (sum w (2b - 1)) + (hi + lo) / 2 sum w)
        alpha = scale * (s.hi - s.lo) / 2
        beta = scale * (s.hi + s.lo) / 2 * r + bias
        binary_in = True
    else:
        codes, step, q_lo = _pixel_codes(node, s)
        if layer.pad and q_lo:
            refuse(node, f"pads the input with the value 0, which is not pixel code 0 (the quantised input starts at {q_lo}); "
                         "the input layer pads with code 0", fix="use valid padding in the first layer")
        layer.pixel_codes = codes
        alpha = scale * step
        beta = scale * step * q_lo * r + bias
        binary_in = False
    conv = node.op_type == "Conv"
    return Acc(node, layer, ints, binary_in, alpha, beta, rows.shape[1], conv, ndim=4 if conv else 2)


def _conv_geometry(g: Graph, node: onnx.NodeProto, s: State, ints: np.ndarray) -> tuple[ir.Layer, np.ndarray]:
    if not s.layout.is_nchw():
        refuse(node, "reads a tensor that is not in its map's (N, C, H, W) order")
    k = list(g.attr(node, "kernel_shape", ints.shape[2:]))
    strides = list(g.attr(node, "strides", [1, 1]))
    pads = list(g.attr(node, "pads", [0, 0, 0, 0]))
    if g.attr(node, "group", 1) != 1:
        refuse(node, "a grouped (depthwise) convolution; flipflow's convolutions are dense")
    if any(d != 1 for d in g.attr(node, "dilations", [1, 1])):
        refuse(node, "a dilated convolution")
    if g.attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        refuse(node, "auto_pad; give explicit pads", fix="re-export with explicit padding")
    if k[0] != k[1] or strides[0] != strides[1] or len(set(pads)) != 1:
        refuse(node, f"kernel {k}, strides {strides}, pads {pads}: flipflow's windows are square with one stride and one pad")
    pad = pads[0]
    if isinstance(s, Bits):
        if pad and s.lo != 0:
            refuse(node, f"pads binary activations with 0, which is neither of their values ({s.lo:g}, {s.hi:g}); "
                         "the hardware pads with bit 0", fix=f"pad with {s.lo:g} (a Pad node) instead of the Conv's pads")
        pad += s.pad
    h, w, c = s.layout.shape
    layer = ir.Layer(node.name, "binary_conv" if isinstance(s, Bits) else "input_conv", (h, w, c), (0, 0, ints.shape[0]),
                     kernel=int(k[0]), stride=int(strides[0]), pad=int(pad))
    if layer.pad >= layer.kernel and layer.kernel > 1 or (layer.kernel == 1 and layer.pad):
        refuse(node, f"pads {layer.pad} with kernel {layer.kernel}: flipflow pads less than the kernel")
    layer.out_shape = ir.expected_out_shape(layer)
    return layer, ints.transpose(0, 2, 3, 1)


def _dense_geometry(g: Graph, node: onnx.NodeProto, s: State, ints: np.ndarray, scale: np.ndarray, bias):
    if s.layout.index.ndim != 1:
        refuse(node, f"reads a tensor of shape {s.layout.index.shape}; flatten it first (Flatten / Reshape)")
    if node.op_type == "Gemm":
        if g.attr(node, "transA", 0):
            refuse(node, "transA: the data must be the first operand")
        if not g.attr(node, "transB", 0):
            ints, scale = _transposed_weights(g, node)
        scale = scale * g.attr(node, "alpha", 1.0)
        bias = bias * g.attr(node, "beta", 1.0) if not np.isscalar(bias) else bias
    else:
        ints, scale = _transposed_weights(g, node)
    order = s.layout.index.reshape(-1)
    ir_ints = np.empty_like(ints)
    ir_ints[:, order] = ints
    kind = "binary_dense" if isinstance(s, Bits) else "input_dense"
    layer = ir.Layer(node.name, kind, tuple(s.layout.shape), (1, 1, ints.shape[0]))
    return layer, ir_ints, scale, bias


def _transposed_weights(g: Graph, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray]:
    """MatMul / Gemm without transB hold weights (in, out): the scale is per column."""
    w = g.consts[node.input[1]]
    name = node.input[1] + ".T"
    g.consts[name] = np.ascontiguousarray(w.T)
    if node.input[1] in g.quant_scale:
        sc = g.quant_scale[node.input[1]]
        g.quant_scale[name] = np.ascontiguousarray(np.broadcast_to(sc, w.shape).T) if np.size(sc) > 1 else sc
    return g.int_weights(node, name)


def _pixel_codes(node: onnx.NodeProto, s: Pixels) -> tuple[np.ndarray | None, float, int]:
    """The one code table of the input layer: value = step x (code + q_lo), code in 0..255."""
    table = s.channel_table(node).astype(np.float64)
    if not np.all(table == table[:1]):
        refuse(node, "the input's preprocessing differs per channel; the input layer has one pixel table for every channel",
               fix="normalise every channel alike, or fold the per-channel scale into the first layer's weights")
    v = table[0]
    steps = np.diff(np.unique(v))
    step = float(steps.min()) if steps.size else 1.0
    q = v / step
    if not np.array_equal(q, np.round(q)):
        refuse(node, "reads the input unquantised, on no integer grid (e.g. pixel / 255): float sums are not exact",
               fix="quantise the input (an 8-bit Quant, as BNN-PYNQ's CNV does), or give the --input-scale that makes it pixel x 2^-k")
    q = np.round(q).astype(np.int64)
    q_lo = min(0, int(q.min()))
    codes = q - q_lo
    if codes.max() > 255:
        refuse(node, f"its input takes {codes.max() + 1} integer steps; the input stream carries 8 bits")
    return (None if np.array_equal(codes, np.arange(256)) else codes.astype(np.uint8)), step, q_lo


def _maxpool(g: Graph, node: onnx.NodeProto) -> State:
    name, s = g.variable(node)
    if isinstance(s, Acc):
        refuse(node, "max-pools before the activation; the hardware pools binary activations (OR)",
               fix="put MaxPool after the activation, as BNN-PYNQ's CNV does")
    if isinstance(s, Pixels):
        refuse(node, "max-pools the input pixels; the hardware pools binary activations only")
    k = list(g.attr(node, "kernel_shape"))
    strides = list(g.attr(node, "strides", k))
    pads = list(g.attr(node, "pads", [0, 0, 0, 0]))
    if g.attr(node, "ceil_mode", 0) or any(d != 1 for d in g.attr(node, "dilations", [1, 1])):
        refuse(node, "ceil_mode or dilation: flipflow's max-pool is floor-mode and undilated")
    if k[0] != k[1] or strides[0] != strides[1] or len(set(pads)) != 1:
        refuse(node, f"kernel {k}, strides {strides}, pads {pads}: flipflow's windows are square with one stride and one pad")
    if s.hi < s.lo:
        refuse(node, "max-pools binary values whose bit 1 is the smaller; max is then AND, the hardware pools with OR")
    if not s.layout.is_nchw():
        refuse(node, "reads a tensor that is not in its map's (N, C, H, W) order")
    layer = ir.Layer(node.name, "maxpool", s.layout.shape, (0, 0, s.layout.shape[2]), kernel=int(k[0]),
                     stride=int(strides[0]), pad=int(pads[0]) + s.pad)
    layer.out_shape = ir.expected_out_shape(layer)
    if layer.pad >= layer.kernel:
        refuse(node, f"pads {layer.pad} with kernel {layer.kernel}: flipflow pads less than the kernel")
    g.layers.append(layer)
    return Bits(s.lo, s.hi, Layout.nchw(layer.out_shape))


def _pad(g: Graph, node: onnx.NodeProto) -> State:
    name, s = g.variable(node)
    if not isinstance(s, Bits) or not s.layout.is_nchw():
        refuse(node, "pads something other than a binary map; flipflow pads binary maps (and the input layer's own Conv)")
    pads = g.const(node.input[1]) if len(node.input) > 1 else g.attr(node, "pads")
    value = g.const(node.input[2]) if len(node.input) > 2 and node.input[2] else np.float32(g.attr(node, "value", 0.0))
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if (g.attr(node, "mode", b"constant") not in (b"constant", "constant") or pads[0] or pads[1] or pads[4] or pads[5]
            or len({pads[2], pads[3], pads[6], pads[7]}) != 1):
        refuse(node, f"pads {pads}: flipflow pads the spatial axes alike with a constant")
    if float(np.asarray(value).reshape(-1)[0]) != s.lo:
        refuse(node, f"pads with {float(np.asarray(value).reshape(-1)[0]):g}, not with bit 0's value {s.lo:g}")
    return Bits(s.lo, s.hi, s.layout, s.pad + pads[2])


def _reduce_sum(g: Graph, node: onnx.NodeProto) -> State:
    name, s = g.variable(node)
    axes = g.const(node.input[1]) if len(node.input) > 1 and node.input[1] else g.attr(node, "axes")
    if not isinstance(s, Acc) or not s.spatial or s.chain or s.binary_in is False:
        refuse(node, "sums something other than a score map straight from its convolution (flipflow's global_sum)")
    if sorted(int(a) % 4 for a in np.asarray(axes).reshape(-1)) != [2, 3]:
        refuse(node, f"sums over axes {axes}; flipflow sums a score map over its spatial axes")
    s.positions = s.layer.out_shape[0] * s.layer.out_shape[1]
    s.ndim = len(g.model.get_tensor_shape(node.output[0]))
    return s


def _average(g: Graph, node: onnx.NodeProto) -> State:
    refuse(node, "an average pool; the hardware has no averaging unit (an average of bits is not a bit)",
           fix="use MaxPool on binary activations, or ReduceSum of the final score map")


HANDLERS: dict[str, Callable[[Graph, onnx.NodeProto], State]] = {
    "Identity": _pass, "Dropout": _pass,
    "Reshape": _relayout, "Flatten": _relayout, "Transpose": _relayout,
    **{op: _elementwise for op in ELEMENTWISE},
    "BatchNormalization": _elementwise,
    **{op: _activation for op in BINARY_ACTS},
    "Conv": _matrix, "Gemm": _matrix, "MatMul": _matrix,
    "MaxPool": _maxpool, "Pad": _pad, "ReduceSum": _reduce_sum,
    "AveragePool": _average, "GlobalAveragePool": _average, "ReduceMean": _average, "QuantAvgPool2d": _average,
}


def _per_channel(node: onnx.NodeProto, c: np.ndarray, s: Acc) -> np.ndarray:
    """An elementwise constant on an Acc as one value per output channel, shaped for
    (m, out[, 1, 1]) evaluation; refused where it varies over the map."""
    out_ch = s.ints.shape[0]
    full = (1, out_ch) + ((s.layer.out_shape[0], s.layer.out_shape[1]) if s.ndim == 4 and s.positions == 1 else (1, 1))[: s.ndim - 2]
    try:
        b = np.broadcast_to(c, full)
    except ValueError:
        refuse(node, f"its constant of shape {c.shape} does not broadcast per channel over {full}")
    first = b[(slice(None), slice(None)) + (slice(0, 1),) * (s.ndim - 2)]
    if not np.all(b == first):
        refuse(node, "applies a constant that varies over the map; thresholds are per channel")
    return np.ascontiguousarray(first).astype(c.dtype)


# -- entry point ------------------------------------------------------------------------------

def import_model(path: str | os.PathLike, dataset: str, classes: list[str], input_shape: ir.Shape | None,
                 input_scale: str | None = None, name: str | None = None) -> ir.Network:
    """Read a QONNX file into a validated IR network (nothing is written here). The input
    scale is ``input_scale``, else the one the graph states, else ToTensor's 1/255."""
    model = qg.load(path)
    scale = qg.parse_input_scale(input_scale or qg.stated_input_scale(model) or qg.TOTENSOR_SCALE)
    g = Graph(model, scale)
    if input_shape is not None and tuple(input_shape) != g.input_shape:
        raise ImportRefused(f"the graph takes {g.input_shape} (H, W, C) images but dataset {dataset} has {tuple(input_shape)}",
                            fix="pick the dataset the model was trained on")
    g.walk()
    g.finish()
    if g.layers[-1].out_ch != len(classes):
        raise ImportRefused(f"the graph scores {g.layers[-1].out_ch} classes but dataset {dataset} has {len(classes)}",
                            fix="pick the dataset the model was trained on")
    for i, layer in enumerate(g.layers):
        layer.name = f"{i:02d}_{layer.kind}"
    stem = os.path.basename(str(path)).rsplit(".", 1)[0]
    net = ir.Network(name or stem, g.input_shape, list(classes), dataset, g.layers,
                     provenance={"source": "qonnx", "onnx": os.path.basename(str(path)), "input_scale": str(scale),
                                 "score_scale": g.score_affine[0], "score_offset": g.score_affine[1]})
    try:
        net.validate()
    except ir.IRError as e:
        raise ImportRefused(f"the imported network is not valid IR: {e}") from e
    return net


def source_scores(net: ir.Network, outputs: np.ndarray) -> np.ndarray:
    """The executor's float outputs as integer scores in the IR's units: (y - offset) / scale."""
    p = net.provenance
    return (np.asarray(outputs, np.float64) - p["score_offset"]) / p["score_scale"]

