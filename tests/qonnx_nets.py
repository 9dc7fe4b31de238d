"""The tests' QONNX graphs, written node by node with onnx.helper as FINN and Brevitas
write them (BipolarQuant / Quant weights, BatchNormalization, binary activations,
Pad(-1), MaxPool, Flatten, Gemm, a per-tensor final affine):

- ``Graph``: a small builder, one method per construct;
- ``finn_nets``: a Hypothesis strategy for random FINN-style nets (odd widths, valid
  and same padding, stride 2, max-pools, 8-bit or 1-bit thresholded input).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

QONNX_DOMAIN = "qonnx.custom_op.general"
ACTIVATIONS = ("bipolar", "quant1", "sign", "multithreshold")


class Graph:
    """A chain of nodes from an (1, C, H, W) float input; each method appends one
    construct to the current tensor and returns self."""

    def __init__(self, c: int, h: int, w: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.cur, self.shape = "x", (c, h, w)
        self.bits = 0.0  # value of bit 0 of the current binary tensor (for same padding)
        self.weight_forms = ("bipolar", "quant1")  # how 1-bit weights are written, drawn per layer

    # -- plumbing ---------------------------------------------------------------
    def const(self, value) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32 if np.asarray(value).dtype.kind == "f" else np.int64), name))
        return name

    def op(self, op_type: str, *inputs: str, domain: str = "", **attrs) -> "Graph":
        out = f"t{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, [self.cur, *inputs], [out], name=f"{op_type}_{len(self.nodes)}",
                                           domain=domain, **attrs))
        self.cur = out
        return self

    def weights(self, shape: tuple[int, ...], bits: int = 1) -> str:
        """Weights through a BipolarQuant (1 bit, scale 1), a 1-bit signed Quant (FINN's other
        form of +-1, chosen at random) or a narrow signed Quant (2..8 bits, scale 2^-k)."""
        w = self.const(self.rng.uniform(-1, 1, shape).astype(np.float32))
        out = f"w{len(self.inits)}"
        if bits == 1 and self.rng.choice(self.weight_forms) == "quant1":
            self.nodes.append(helper.make_node("Quant", [w, self.const(np.float32(0.5)), self.const(np.float32(0)),
                                                         self.const(np.float32(1))], [out], domain=QONNX_DOMAIN,
                                               signed=1, narrow=1, rounding_mode="ROUND"))
        elif bits == 1:
            self.nodes.append(helper.make_node("BipolarQuant", [w, self.const(np.float32(1.0))], [out], domain=QONNX_DOMAIN))
        else:
            scale = self.const(np.float32(2.0 ** -(bits - 1)))
            self.nodes.append(helper.make_node("Quant", [w, scale, self.const(np.float32(0)), self.const(np.float32(bits))],
                                               [out], domain=QONNX_DOMAIN, signed=1, narrow=1, rounding_mode="ROUND"))
        return out

    # -- constructs -------------------------------------------------------------
    def quant_input(self) -> "Graph":
        """BNN-PYNQ's CNV input: 2x - 1, then an 8-bit signed Quant of scale 2^-7."""
        self.op("Mul", self.const(np.float32(2.0))).op("Sub", self.const(np.float32(1.0)))
        return self.quant(8, 2.0 ** -7, signed=1)

    def quant(self, bits: int, scale: float, signed: int = 1, narrow: int = 0) -> "Graph":
        return self.op("Quant", self.const(np.float32(scale)), self.const(np.float32(0)), self.const(np.float32(bits)),
                       domain=QONNX_DOMAIN, signed=signed, narrow=narrow, rounding_mode="ROUND")

    def bipolar(self, scale=1.0) -> "Graph":
        self.bits = -float(np.max(scale))
        return self.op("BipolarQuant", self.const(np.asarray(scale, np.float32)), domain=QONNX_DOMAIN)

    def conv(self, out: int, k: int, s: int = 1, p: int = 0, bits: int = 1) -> "Graph":
        c, h, w = self.shape
        self.op("Conv", self.weights((out, c, k, k), bits), kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
        self.shape = (out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        return self

    def pad(self, p: int, value: float | None = None) -> "Graph":
        c, h, w = self.shape
        value = self.bits if value is None else value
        self.op("Pad", self.const(np.array([0, 0, p, p, 0, 0, p, p], np.int64)), self.const(np.float32(value)), mode="constant")
        self.shape = (c, h + 2 * p, w + 2 * p)
        return self

    def bn(self, fan_in: int, unit: float = 1.0, ties: bool = True) -> "Graph":
        """Random BatchNormalization over an accumulator of ``fan_in`` terms of size ``unit``: mixed-sign
        gammas, means near the middle; with ``ties`` some channels have beta 0 and an integer
        mean on the accumulator's grid, so the activation sees exactly 0 (sign(0) = +1)."""
        c = self.shape[0]
        spread = np.sqrt(fan_in) * unit
        mean = self.rng.normal(0, spread, c).astype(np.float32)
        var = (self.rng.uniform(0.3, 2.0, c) * spread**2).astype(np.float32)
        gamma = self.rng.normal(0, 1, c).astype(np.float32)
        beta = self.rng.normal(0, 0.3, c).astype(np.float32)
        if ties:
            tie = self.rng.random(c) < 0.3
            mean[tie] = ((np.round(mean[tie] / unit / 2) * 2 + fan_in % 2) * unit).astype(np.float32)
            beta[tie] = 0
        self.op("BatchNormalization", self.const(gamma), self.const(beta), self.const(mean), self.const(var), epsilon=1e-4)
        return self

    def activate(self, kind: str, fan_in: int, unit: float = 1.0) -> "Graph":
        """The binary activation of an accumulator of ``fan_in`` terms of size ``unit``, in one
        of the forms Brevitas and FINN write: BN + BipolarQuant, BN + 1-bit Quant, BN + Sign
        (no ties: Sign(0) = 0 is refused), or FINN's streamlined MultiThreshold (one threshold
        per channel on the accumulator's grid, so ties occur; outputs +-1)."""
        if kind == "multithreshold":
            t = np.round(self.rng.normal(0, np.sqrt(fan_in), (self.shape[0], 1))) * unit
            self.bits = -1.0
            return self.op("MultiThreshold", self.const(t.astype(np.float32)), domain=QONNX_DOMAIN,
                           out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
        self.bn(fan_in, unit, ties=kind != "sign")
        if kind == "sign":
            self.bits = -1.0
            return self.op("Sign")
        if kind == "quant1":
            self.bits = -1.0
            return self.quant(1, 1.0, signed=1)
        return self.bipolar()

    def maxpool(self, k: int, s: int) -> "Graph":
        c, h, w = self.shape
        self.op("MaxPool", kernel_shape=[k, k], strides=[s, s])
        self.shape = (c, (h - k) // s + 1, (w - k) // s + 1)
        return self

    def flatten(self) -> "Graph":
        self.op("Flatten", axis=1)
        self.shape = (int(np.prod(self.shape)),)
        return self

    def gemm(self, out: int, bits: int = 1) -> "Graph":
        self.op("Gemm", self.weights((out, self.shape[0]), bits), transB=1)
        self.shape = (out,)
        return self

    def affine(self, scale: float, offset: float) -> "Graph":
        """A per-tensor final affine (BNN-PYNQ's TensorNorm in eval mode is one)."""
        return self.op("Mul", self.const(np.float32(scale))).op("Add", self.const(np.float32(offset)))

    def save(self, path: Path, in_shape: tuple[int, ...] | None = None) -> Path:
        c, h, w = in_shape or self._in_shape
        graph = helper.make_graph(self.nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                                  [helper.make_tensor_value_info(self.cur, TensorProto.FLOAT, [1, *self.shape])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
        onnx.save(model, str(path))
        return path

    def start(self) -> "Graph":
        self._in_shape = self.shape
        return self


def tiny(seed: int = 0) -> Graph:
    """8x8x1 input, 8-bit quantised -> conv 3x3 -> BN -> sign -> the point where a test adds its construct."""
    g = Graph(1, 8, 8, seed).start().quant_input().conv(5, 3)
    return g.bn(9, 2.0 ** -7 * 64).bipolar()


def head(g: Graph, classes: int = 3) -> Graph:
    return g.flatten().gemm(classes).affine(0.5, 0.25)


@st.composite
def finn_nets(draw) -> tuple[Graph, tuple[int, int, int]]:
    """A random FINN-style net: 8-bit (CNV-like) or 1-bit thresholded (FC-like) input,
    binary convs with odd widths, valid or same (Pad -1) padding, stride 1 or 2,
    max-pools, binary dense layers and a score layer with a per-tensor affine."""
    c = draw(st.sampled_from([1, 3]))
    h = draw(st.integers(6, 11))
    g = Graph(c, h, h, draw(st.integers(0, 2**31))).start()
    act = lambda: draw(st.sampled_from(ACTIVATIONS))  # noqa: E731
    if draw(st.booleans()):
        k = draw(st.sampled_from([1, 3]))
        g.quant_input().conv(draw(st.integers(1, 13)) | 1, k, draw(st.integers(1, 2)))
        g.bn(k * k * c, 2.0 ** -7 * 64).bipolar()
    else:  # BNN-PYNQ's FC input: 2x - 1, then sign
        g.op("Mul", g.const(np.float32(2.0))).op("Sub", g.const(np.float32(1.0))).bipolar()
    for _ in range(draw(st.integers(0, 3))):
        side = g.shape[1]
        choice = draw(st.sampled_from(["conv", "same", "pool"]))
        if choice == "pool" and side >= 2:
            g.maxpool(2, 2)
        elif choice == "same" and side >= 1:
            fan_in = 9 * g.shape[0]
            g.pad(1).conv(draw(st.integers(1, 11)) | 1, 3, draw(st.integers(1, 2))).activate(act(), fan_in)
        elif side >= 3:
            fan_in = 9 * g.shape[0]
            g.conv(draw(st.integers(1, 11)) | 1, 3, draw(st.integers(1, 2))).activate(act(), fan_in)
    if draw(st.booleans()):  # flatten channel-last (FINN's NHWC), not (C, H, W)
        g.op("Transpose", perm=[0, 2, 3, 1])
        g.shape = (g.shape[1], g.shape[2], g.shape[0])
    g.flatten()
    if draw(st.booleans()):
        fan_in = g.shape[0]
        g.gemm(draw(st.integers(1, 15)) | 1).activate(act(), fan_in)
    scale = draw(st.sampled_from([0.75, -1.5, 1.0]))
    g.gemm(10, draw(st.sampled_from([1, 4]))).affine(scale, 0.125)
    return g, (h, h, c)
