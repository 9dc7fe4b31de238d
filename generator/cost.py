"""Analytical performance and resource model, one function per layer kind.

Each function models the hardware unit the generator emits for that kind
(a FINN-style dataflow pipeline, shared/DESIGN.md):

* ``input_conv`` / ``binary_conv`` / ``output_conv``: a sliding-window unit
  (line buffer) feeding a matrix-vector unit of PE rows x SIMD lanes;
* ``*_dense``: the same matrix-vector unit without the window unit;
* ``maxpool``: a streaming OR over the window with a line buffer;
* ``global_sum``: one accumulator per channel.

Cycles (as the RTL backend, generator/rtl.py, runs them): the matrix-vector
unit needs max(ceil(out/PE) * ceil(K/SIMD), beats per window) cycles per
output pixel at II = 1, where a conv window is one beat (the window unit
delivers it whole) and a dense layer reads every input pixel
(``folding.layer_cycles`` is the first term); a window unit writes one input
pixel per cycle and reads one window column (k pixels) per cycle,
(wo - 1) * stride + k columns per output row; the input layer reads one 8-bit
channel value per cycle from the AXI stream; a max-pool ORs one window per
cycle; the global sum adds one pixel per cycle. A layer's cycles are the slowest of its units, and
the pipeline's cycles per frame the slowest layer.

Resources: memories are mapped as FINN maps them. Weights are one word of
PE x SIMD bits per (PE group, SIMD fold) tile, depth = tiles; thresholds one
word of PE x acc_bits per PE group; line buffers pow2(k + s) banks (one per
row) of pow2(W) whole pixels. A memory no deeper than ``Coefficients.lutram_max_depth`` goes to
LUTRAM (one LUT per bit per 64 words); deeper ones to BRAM36 blocks in the
best aspect ratio (32Kx1 ... 512x72, or half blocks), counted as Vivado
counts them (a RAMB18 is 0.5). Logic is linear in the datapath widths with
coefficients in ``Coefficients``. The input layer's 8-bit products take one
DSP48 per two PE rows per SIMD lane (``input_multipliers``); ``generator/calibrate_cost.py`` fits their
per-kind scale factors to yosys ``synth_xilinx -family xc7`` counts of the
RTL backend and stores them in ``cost_calibration.json`` next to this file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from flipflow import atomic
from flipflow.generator.folding import LayerFolding
from flipflow.ir import Layer, Network

CALIBRATION_FILE = Path(__file__).with_name("cost_calibration.json")
PIXEL_BITS = 8  # input stream: one 8-bit channel value per beat


@dataclass(frozen=True)
class Cost:
    """Cycles per frame of one unit and its resources."""

    cycles: int = 0
    lut: float = 0.0
    ff: float = 0.0
    bram36: float = 0.0
    dsp: float = 0.0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            max(self.cycles, other.cycles),
            self.lut + other.lut,
            self.ff + other.ff,
            self.bram36 + other.bram36,
            self.dsp + other.dsp,
        )

    def resources(self) -> dict[str, float]:
        return {"LUT": self.lut, "FF": self.ff, "BRAM36": self.bram36, "DSP": self.dsp}

    def scaled(self, lut: float, ff: float) -> "Cost":
        return Cost(self.cycles, self.lut * lut, self.ff * ff, self.bram36, self.dsp)


@dataclass
class Coefficients:
    """Per-unit logic costs. Structural defaults (a LUT6 per popcount input bit,
    one LUT + one FF per accumulator/comparator bit, ...), then per-kind scale
    factors fitted to yosys counts (``lut_scale`` / ``ff_scale``)."""

    lut_per_popcount_bit: float = 0.5  # per lane per accumulator bit (the RTL sums lanes with AW-bit adders)
    lut_per_acc_bit: float = 2.0  # accumulator adder + threshold comparator
    ff_per_acc_bit: float = 2.0  # accumulator + threshold/pipeline register
    lut_per_add_bit: float = 1.0  # fixed-point lanes: one adder bit per lane per accumulator bit
    lut_per_mul: float = 0.0  # per input-layer product (its DSP48 lands in dsp_per_mul)
    dsp_per_mul: float = 1.0  # DSP48s per input_multipliers() unit: one 25 x 18 multiply for two products
    lut_per_window_lane: float = 1.0  # per bit: 2:1 fold rotation mux, 4:1 bank-to-row mux with padding
    lut_per_pool_bit: float = 1.0  # per channel per LUT6 of the window OR tree
    lut_control: float = 40.0  # counters and handshake per unit
    ff_control: float = 40.0
    lutram_max_depth: int = 64
    bram_min_bits: int = 0  # smaller memories stay in LUTRAM whatever their depth (fitted to yosys)
    lut_scale: dict[str, float] = field(default_factory=dict)  # per kind, from calibration
    ff_scale: dict[str, float] = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)  # provenance and residuals of the fit

    @staticmethod
    def load(path: Path = CALIBRATION_FILE) -> "Coefficients":
        if not path.is_file():
            return Coefficients()
        return Coefficients(**json.loads(path.read_text()))

    def save(self, path: Path = CALIBRATION_FILE) -> None:
        atomic.write_json(path, asdict(self), indent=1)


# -- memories -----------------------------------------------------------------

# RAMB36E1 / RAMB18E1 aspect ratios (depth, width) with parity bits used.
_BRAM36_SHAPES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72))
_BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def bram36_blocks(width: int, depth: int) -> float:
    """BRAM36 tiles for a width x depth memory (0.5 per RAMB18 half)."""
    if width <= 0 or depth <= 0:
        return 0.0
    full = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in _BRAM36_SHAPES)
    halves = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in _BRAM18_SHAPES)
    return min(float(full), halves / 2)


def memory(width: int, depth: int, c: Coefficients) -> Cost:
    """A read-mostly memory (weights, thresholds, line buffer): LUTRAM when shallow or small, else BRAM."""
    if width <= 0 or depth <= 0:
        return Cost()
    if depth <= c.lutram_max_depth or width * depth < c.bram_min_bits:
        return Cost(lut=width * math.ceil(depth / 64))
    return Cost(bram36=bram36_blocks(width, depth), ff=width)  # output register


def _bits(n: int) -> int:
    """Bits of an unsigned counter/accumulator holding 0..n."""
    return max(1, math.ceil(math.log2(n + 1)))


def _control(depth: int, c: Coefficients) -> Cost:
    return Cost(lut=c.lut_control + 2 * _bits(depth), ff=c.ff_control + 2 * _bits(depth))


# -- shared units ---------------------------------------------------------------

def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def needs_window(layer: Layer) -> bool:
    """A window unit sits in front of every max-pool and every conv whose window
    is more than the pixel itself."""
    if layer.kind.endswith("_dense") or layer.kind == "global_sum":
        return False
    return layer.kind == "maxpool" or (layer.kernel, layer.stride, layer.pad) != (1, 1, 0)


def window_columns(layer: Layer) -> int:
    """Window columns a window unit reads per output row: (wo - 1) * stride + k."""
    return (layer.out_shape[1] - 1) * layer.stride + layer.kernel


def window_unit(layer: Layer, lane_bits: int, c: Coefficients) -> Cost:
    """Line buffer of pow2(k + s) row banks (power-of-two row length) of whole
    pixels; writes one input pixel per cycle, reads one window column (k pixels,
    one per bank) per cycle and shifts it into a k x k window register that is
    the output beat: one window per output pixel."""
    if not needs_window(layer):
        return Cost()
    h, w, ch = layer.in_shape
    ho = layer.out_shape[0]
    k, s = layer.kernel, layer.stride
    width = ch * lane_bits
    banks = _pow2(k + s)
    bank = memory(width, _pow2(w), c)
    lutram = bank.bram36 == 0  # a LUTRAM bank needs its own read register
    logic = Cost(
        lut=c.lut_per_window_lane * k * width * math.ceil(banks / 4),  # bank -> row mux (4:1 per LUT6) + padding
        ff=k * k * width + (banks * width if lutram else 0),  # window register (+ bank read registers)
    )
    banks_cost = Cost(lut=bank.lut * banks, ff=bank.ff * banks, bram36=bank.bram36 * banks)
    cycles = max(h * w, ho * window_columns(layer))
    return Cost(cycles=cycles) + banks_cost + logic + _control(banks * _pow2(w), c)


def gather_unit(layer: Layer, c: Coefficients) -> Cost:
    """Input layers read one 8-bit channel value per beat; C beats make a pixel."""
    h, w, ch = layer.in_shape
    if ch == 1:
        return Cost(cycles=h * w)
    return Cost(cycles=h * w * ch, lut=PIXEL_BITS * ch, ff=PIXEL_BITS * ch) + _control(ch, c)


def mvu_positions(layer: Layer) -> int:
    """Input beats per window: one for a conv (the window unit emits whole windows),
    every input pixel for a dense layer."""
    if layer.kind.endswith("_dense"):
        return layer.in_shape[0] * layer.in_shape[1]
    return 1


def mvu_cycles(layer: Layer, f: LayerFolding) -> int:
    """The matrix-vector unit takes NF x SF cycles per window, but no fewer than the
    beats it must load: the load buffer and the fold register are a double buffer
    (the next window loads while the current one computes, no handover cycle)."""
    nf = math.ceil(layer.out_ch / f.pe)
    sf = math.ceil(layer.fan_in / f.simd)
    return max(nf * sf, mvu_positions(layer)) * layer.out_shape[0] * layer.out_shape[1]


def _mvau(layer: Layer, f: LayerFolding, lane_bits: int, acc_bits: int, res_bits: int, datapath: Cost,
          c: Coefficients) -> Cost:
    """Matrix-vector unit: weight and threshold memories, window load buffer and
    rotating fold register, one pipeline stage, accumulators, result collection."""
    nf = math.ceil(layer.out_ch / f.pe)
    sf = math.ceil(layer.fan_in / f.simd)
    wb = layer.weight_bits
    thresholded = layer.is_thresholded
    weights = memory(f.pe * f.simd * wb, nf * sf, c)
    thresholds = memory(f.pe * acc_bits, nf, c) if thresholded else Cost()
    window_bits = layer.fan_in * lane_bits
    registers = (
        window_bits  # load buffer
        + sf * f.simd * lane_bits  # rotating fold register
        + f.simd * lane_bits + f.pe * f.simd * wb + (f.pe * acc_bits if thresholded else 0)  # stage-1 registers
        + f.pe * acc_bits  # accumulators
        + layer.out_ch * res_bits + (nf - 1) * f.pe * res_bits  # output + earlier folds' results
    )
    rotate = sf * f.simd * lane_bits if sf > 1 else 0  # 2:1 mux per bit of the fold register
    acc = Cost(lut=f.pe * c.lut_per_acc_bit * acc_bits + c.lut_per_window_lane * rotate, ff=registers)
    compute = Cost(cycles=mvu_cycles(layer, f))
    return compute + datapath + acc + weights + thresholds + _control(nf * sf, c)


# -- one function per layer kind -----------------------------------------------

def binary_dense(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    """XNOR + popcount of SIMD bits per PE, accumulate over folds, compare with T."""
    acc_bits = _bits(layer.fan_in + 1)
    datapath = Cost(lut=f.pe * f.simd * c.lut_per_popcount_bit * acc_bits)
    return _mvau(layer, f, 1, acc_bits, 1, datapath, c)


def binary_conv(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    return binary_dense(layer, f, c) + window_unit(layer, 1, c)


def input_multipliers(f: LayerFolding) -> int:
    """DSP48 multipliers of the input layer: two PE rows share one per SIMD lane
    (the pixel times both rows' weights packed into the 25-bit port)."""
    return math.ceil(f.pe / 2) * f.simd


def _input_mvau(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    """8-bit pixel x w-bit weight products (two per DSP48), summed per PE, compare with T."""
    macs = f.pe * f.simd
    acc_bits = max(layer.weight_bits + 10, PIXEL_BITS + layer.weight_bits + 1 + _bits(layer.fan_in))
    datapath = Cost(lut=macs * (c.lut_per_mul + c.lut_per_add_bit * acc_bits), dsp=input_multipliers(f) * c.dsp_per_mul)
    return _mvau(layer, f, PIXEL_BITS, acc_bits, 1, datapath, c) + gather_unit(layer, c)


def input_dense(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    return _input_mvau(layer, f, c)


def input_conv(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    return _input_mvau(layer, f, c) + window_unit(layer, PIXEL_BITS, c)


def output_dense(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    """Binary input selects +w or -w (w-bit): add/subtract per lane, integer scores out."""
    acc_bits = layer.weight_bits + 1 + _bits(layer.fan_in)
    datapath = Cost(lut=f.pe * f.simd * acc_bits * c.lut_per_add_bit)
    return _mvau(layer, f, 1, acc_bits, acc_bits, datapath, c)


def output_conv(layer: Layer, f: LayerFolding, c: Coefficients) -> Cost:
    return output_dense(layer, f, c) + window_unit(layer, 1, c)


def maxpool(layer: Layer, f: LayerFolding | None, c: Coefficients) -> Cost:
    """Window unit + OR of the k*k pixels of each window beat, one window per cycle."""
    ho, wo, ch = layer.out_shape
    taps = layer.kernel * layer.kernel
    or_tree = math.ceil((taps - 1) / 5) if taps > 1 else 0  # LUT6 levels of a taps-input OR, per channel
    pool = Cost(cycles=ho * wo, lut=c.lut_per_pool_bit * ch * or_tree, ff=ch)
    return window_unit(layer, 1, c) + pool + _control(1, c)


def global_sum(layer: Layer, f: LayerFolding | None, c: Coefficients) -> Cost:
    """One 32-bit score accumulator per class over the H x W map."""
    h, w, ch = layer.in_shape
    return Cost(cycles=h * w, lut=2 * 32 * ch, ff=3 * 32 * ch) + _control(h * w, c)


KIND_COST: dict[str, Callable[[Layer, LayerFolding | None, Coefficients], Cost]] = {
    "input_conv": input_conv,
    "input_dense": input_dense,
    "binary_conv": binary_conv,
    "binary_dense": binary_dense,
    "maxpool": maxpool,
    "output_conv": output_conv,
    "output_dense": output_dense,
    "global_sum": global_sum,
}


def layer_cost(layer: Layer, f: LayerFolding | None, c: Coefficients | None = None) -> Cost:
    """Cycles and resources of one layer at folding ``f`` (None for unfolded kinds)."""
    c = c or Coefficients.load()
    if layer.has_weights and f is None:
        raise ValueError(f"layer {layer.name}: a folding (PE, SIMD) is needed to cost a {layer.kind} layer")
    cost = KIND_COST[layer.kind](layer, f, c)
    return cost.scaled(c.lut_scale.get(layer.kind, 1.0), c.ff_scale.get(layer.kind, 1.0))


@dataclass
class NetworkCost:
    layers: dict[str, Cost]

    @property
    def total(self) -> Cost:
        out = Cost()
        for cost in self.layers.values():
            out = out + cost
        return out

    @property
    def cycles_per_frame(self) -> int:
        return max(c.cycles for c in self.layers.values())

    @property
    def bottleneck(self) -> str:
        return max(self.layers, key=lambda name: self.layers[name].cycles)

    def fps(self, mhz: float = 100.0) -> float:
        return mhz * 1e6 / self.cycles_per_frame


def network_cost(net: Network, folding: dict[str, LayerFolding], c: Coefficients | None = None) -> NetworkCost:
    c = c or Coefficients.load()
    return NetworkCost({l.name: layer_cost(l, folding.get(l.name), c) for l in net.layers})
