"""What a QONNX tensor is to flipflow's hardware while the importer walks the graph
(docs/DESIGN.md, "Importing QONNX"): a function of the pixel, a binary activation, or
the accumulator of a matrix layer whose kind is still open; and the refusal error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import onnx

from flipflow import ir
from flipflow.errors import FlipflowError
from flipflow.interop import qonnx_graph as qg

if TYPE_CHECKING:
    from flipflow.interop.qonnx_import import Graph


class ImportRefused(FlipflowError, ValueError):
    """A graph construct flipflow's hardware cannot implement; nothing is written."""


def refuse(node: onnx.NodeProto, why: str, fix: str = "") -> NoReturn:
    raise ImportRefused(f"node {node.name or node.output[0]} ({node.op_type}): {why}", fix)


# -- what a tensor is to the hardware ---------------------------------------------------

@dataclass
class Layout:
    """Each element's (batch dropped) position in the (H, W, C) flattening of ``shape``,
    the map it came from; Reshape / Flatten / Transpose move the index with the data."""

    index: np.ndarray
    shape: ir.Shape

    @staticmethod
    def nchw(shape: ir.Shape) -> "Layout":
        h, w, c = shape
        return Layout(np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1), tuple(shape))

    def is_nchw(self) -> bool:
        return np.array_equal(self.index, Layout.nchw(self.shape).index)

    def channel(self) -> np.ndarray:
        return self.index % self.shape[2]


@dataclass
class Pixels:
    values: np.ndarray  # float32 (256, *tensor shape): the tensor when every pixel is p
    layout: Layout

    def channel_table(self, node: onnx.NodeProto, values: np.ndarray | None = None) -> np.ndarray:
        """(C, 256): the value of channel c for pixel p; refused where it varies within a channel."""
        values = self.values if values is None else values
        ch = self.layout.channel()
        table = np.zeros((self.layout.shape[2], qg.PIXEL_LEVELS), values.dtype)
        for c in range(self.layout.shape[2]):
            cols = values[:, ch == c]
            if not np.all(cols == cols[:, :1]):
                refuse(node, "the input's preprocessing differs between pixels of one channel; "
                             "flipflow maps every pixel of a channel alike")
            table[c] = cols[:, 0]
        return table


@dataclass
class Bits:
    lo: float  # the value of bit 0
    hi: float  # the value of bit 1
    layout: Layout
    pad: int = 0  # a pending Pad with the value of bit 0, taken by the next conv or max-pool


@dataclass
class Acc:
    """acc -> real value alpha * acc + beta (per output channel) at the matrix node's output.
    ``acc`` is sum(w * (2b - 1)) for a binary input, sum(w * code) for pixel codes."""

    node: onnx.NodeProto
    layer: ir.Layer  # geometry and weights in IR order; kind still open
    ints: np.ndarray  # integer weights (out, ...) in IR order
    binary_in: bool
    alpha: np.ndarray
    beta: np.ndarray
    fan_in: int
    spatial: bool
    chain: list[onnx.NodeProto] = field(default_factory=list)
    positions: int = 1  # map positions summed by a ReduceSum
    ndim: int = 4

    def evaluate(self, g: "Graph", acc: np.ndarray) -> np.ndarray:
        """Graph values after the chain for accumulators acc (m, out) (float32, executor's arithmetic)."""
        x = (self.alpha * acc + self.beta * self.positions).astype(np.float32)
        x = x.reshape(x.shape + (1,) * (self.ndim - 2))
        for node in self.chain:
            x = g.run_on(node, x, self)
        return x.reshape(len(acc), -1)


State = Pixels | Bits | Acc
