"""Resource model of the hardware units, and the cost of a layer or network.

A layer is the chain of units its kind lists (kinds.py: input stream,
sliding window, matrix-vector unit, pool, sum), each with its cycles per
frame from the one cycle model there. This module adds each unit role's
resources (``UNIT_COST``); the matrix-vector unit's datapath (``DATAPATHS``:
XNOR-popcount, 8-bit pixel, score) is the part that differs between kinds.
A layer's cycles are the slowest of its units.

Resources: memories are mapped as FINN maps them. Weights are one word of
PE x SIMD bits per (PE group, SIMD fold) tile, depth = tiles; thresholds one
word of PE x acc_bits per PE group; line buffers pow2(k + s) banks (one per
row) of pow2(W) whole pixels. A memory no deeper than ``Coefficients.lutram_max_depth`` goes to
LUTRAM (one LUT per bit per 64 words); deeper ones to BRAM36 blocks in the
best aspect ratio (32Kx1 ... 512x72, or half blocks), counted as Vivado
counts them (a RAMB18 is 0.5). Logic is linear in the datapath widths with
coefficients in ``Coefficients``. The input layer's 8-bit products take one
DSP48 per two PE rows per SIMD lane (``input_multipliers``); ``sim/calibrate_cost.py`` fits their
per-kind scale factors to yosys ``synth_xilinx -family xc7`` counts of the
RTL backend and stores them in ``cost_calibration.json`` next to this file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from flipflow import atomic, kinds
from flipflow.generator.folding import LayerConfig
from flipflow.ir import Layer, Network
from flipflow.kinds import pow2, unsigned_bits

CALIBRATION_FILE = Path(__file__).with_name("cost_calibration.json")
PIXEL_BITS = kinds.PIXEL_BITS


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


def _control(depth: int, c: Coefficients) -> Cost:
    return Cost(lut=c.lut_control + 2 * unsigned_bits(depth), ff=c.ff_control + 2 * unsigned_bits(depth))


# -- one resource model per unit role (kinds.UNIT_ROLES) -----------------------------

def stream_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None, c: Coefficients) -> Cost:
    """The input stream into the first layer: one 8-bit channel value per beat; a
    gather register assembles C beats into a pixel when C > 1."""
    ch = layer.in_ch
    if ch == 1:
        return Cost()
    return Cost(lut=PIXEL_BITS * ch, ff=PIXEL_BITS * ch) + _control(ch, c)


def window_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None, c: Coefficients) -> Cost:
    """Line buffer of pow2(k + s) row banks (power-of-two row length) of whole
    pixels; writes one input pixel per cycle, reads one window column (k pixels,
    one per bank) per cycle and shifts it into a k x k window register that is
    the output beat: one window per output pixel."""
    w, ch = layer.in_shape[1], layer.in_ch
    k, s = layer.kernel, layer.stride
    width = ch * kind.lane_bits
    banks = pow2(k + s)
    bank = memory(width, pow2(w), c)
    lutram = bank.bram36 == 0  # a LUTRAM bank needs its own read register
    logic = Cost(
        lut=c.lut_per_window_lane * k * width * math.ceil(banks / 4),  # bank -> row mux (4:1 per LUT6) + padding
        ff=k * k * width + (banks * width if lutram else 0),  # window register (+ bank read registers)
    )
    banks_cost = Cost(lut=bank.lut * banks, ff=bank.ff * banks, bram36=bank.bram36 * banks)
    return banks_cost + logic + _control(banks * pow2(w), c)


def input_multipliers(f: LayerConfig) -> int:
    """DSP48 multipliers of the input layer: two PE rows share one per SIMD lane
    (the pixel times both rows' weights packed into the 25-bit port)."""
    return math.ceil(f.pe / 2) * f.simd


# values summed per adder-tree node of flipflow_mvu (its TG), per datapath
TREE_GROUP = {"xnor": 16, "pixel": 4, "score": 4}


def mvu_pipeline_stages(datapath: str, simd: int) -> int:
    """Register stages flipflow_mvu puts between its weight read and its accumulator
    (PRE + TREE there): the pixel products' DSP48 A/B and M registers, then
    ceil(log_TG(SIMD)) adder-tree stages, at least one."""
    group = TREE_GROUP[datapath]
    stages, n = 1, math.ceil(simd / group)
    while n > 1:
        stages, n = stages + 1, math.ceil(n / group)
    return stages + (2 if datapath == "pixel" else 0)


def mvu_output_depth(datapath: str, simd: int, folds: int) -> int:
    """Slots of flipflow_mvu's output queue, also its credits (its DEPTH): a credit is held
    for the 2 + mvu_pipeline_stages cycles from a window's last fold to its beat leaving,
    and a window's last fold comes every ``folds`` = NF x SF cycles."""
    return (2 + mvu_pipeline_stages(datapath, simd)) // folds + 1


def _pipeline_ffs(datapath: str, f: LayerConfig, acc_bits: int, nf: int) -> int:
    """Flip-flops of flipflow_mvu's adder-tree stages (a binary node of level k counts up
    to min(SIMD, TG^k); the others carry acc_bits) and of the fold's control travelling
    with them; the pixels' A/B/M registers sit inside the DSP48s."""
    group = TREE_GROUP[datapath]
    stages = mvu_pipeline_stages(datapath, f.simd)
    ffs, n = 0, f.simd
    for level in range(1, stages - (2 if datapath == "pixel" else 0) + 1):
        n = math.ceil(n / group)
        bits = min(acc_bits, unsigned_bits(min(f.simd, group**level))) if datapath == "xnor" else acc_bits
        ffs += f.pe * n * bits
    return ffs + stages * (unsigned_bits(nf - 1) + 4)


def _xnor_datapath(layer: Layer, f: LayerConfig, c: Coefficients) -> tuple[int, int, Cost]:
    """XNOR + popcount of SIMD bits per PE: (accumulator bits, result bits, datapath)."""
    acc_bits = unsigned_bits(layer.fan_in + 1)
    return acc_bits, 1, Cost(lut=f.pe * f.simd * c.lut_per_popcount_bit * acc_bits)


def _pixel_datapath(layer: Layer, f: LayerConfig, c: Coefficients) -> tuple[int, int, Cost]:
    """8-bit pixel x w-bit weight products (two per DSP48), summed per PE."""
    macs = f.pe * f.simd
    acc_bits = max(layer.weight_bits + 10, PIXEL_BITS + layer.weight_bits + 1 + unsigned_bits(layer.fan_in))
    datapath = Cost(lut=macs * (c.lut_per_mul + c.lut_per_add_bit * acc_bits), dsp=input_multipliers(f) * c.dsp_per_mul)
    return acc_bits, 1, datapath


def _score_datapath(layer: Layer, f: LayerConfig, c: Coefficients) -> tuple[int, int, Cost]:
    """Binary input selects +w or -w (w-bit): add/subtract per lane, integer scores out."""
    acc_bits = layer.weight_bits + 1 + unsigned_bits(layer.fan_in)
    return acc_bits, acc_bits, Cost(lut=f.pe * f.simd * acc_bits * c.lut_per_add_bit)


DATAPATHS: dict[str, Callable[[Layer, LayerConfig, Coefficients], tuple[int, int, Cost]]] = {
    "xnor": _xnor_datapath,
    "pixel": _pixel_datapath,
    "score": _score_datapath,
}


def mvu_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None, c: Coefficients) -> Cost:
    """Matrix-vector unit: weight and threshold memories, window load buffer and
    rotating fold register, the read stage, the adder-tree pipeline, accumulators, result collection."""
    assert isinstance(kind, kinds.MatrixKind) and f is not None
    acc_bits, res_bits, datapath = DATAPATHS[kind.datapath](layer, f, c)
    lane_bits = kind.lane_bits
    nf = math.ceil(layer.out_ch / f.pe)
    sf = math.ceil(layer.fan_in / f.simd)
    wb = layer.weight_bits
    thresholded = kind.thresholded
    weights = memory(f.pe * f.simd * wb, nf * sf, c)
    thresholds = memory(f.pe * acc_bits, nf, c) if thresholded else Cost()
    window_bits = layer.fan_in * lane_bits
    registers = (
        window_bits  # load buffer
        + sf * f.simd * lane_bits  # rotating fold register
        + f.simd * lane_bits + f.pe * f.simd * wb + (f.pe * acc_bits if thresholded else 0)  # stage-1 registers
        + f.pe * acc_bits  # accumulators
        + _pipeline_ffs(kind.datapath, f, acc_bits, nf)  # adder-tree stages
        + layer.out_ch * res_bits + (nf - 1) * f.pe * res_bits  # output + earlier folds' results
    )
    rotate = sf * f.simd * lane_bits if sf > 1 else 0  # 2:1 mux per bit of the fold register
    acc = Cost(lut=f.pe * c.lut_per_acc_bit * acc_bits + c.lut_per_window_lane * rotate, ff=registers)
    # output queue slots behind out_data: one shift-register LUT (SRLC32E) per output bit
    queue = Cost(lut=layer.out_ch * res_bits if mvu_output_depth(kind.datapath, f.simd, nf * sf) > 1 else 0)
    return datapath + acc + queue + weights + thresholds + _control(nf * sf, c)


def pool_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None, c: Coefficients) -> Cost:
    """OR of the k*k pixels of each window beat, one window per cycle."""
    taps = layer.kernel * layer.kernel
    or_tree = math.ceil((taps - 1) / 5) if taps > 1 else 0  # LUT6 levels of a taps-input OR, per channel
    return Cost(lut=c.lut_per_pool_bit * layer.out_ch * or_tree, ff=layer.out_ch) + _control(1, c)


def sum_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None, c: Coefficients) -> Cost:
    """One 32-bit score accumulator per class over the H x W map."""
    h, w, ch = layer.in_shape
    return Cost(lut=2 * 32 * ch, ff=3 * 32 * ch) + _control(h * w, c)


UNIT_COST: dict[str, Callable[[Layer, kinds.LayerKind, LayerConfig | None, Coefficients], Cost]] = {
    "stream": stream_unit,
    "window": window_unit,
    "mvu": mvu_unit,
    "pool": pool_unit,
    "sum": sum_unit,
}


def unscaled_cost(layer: Layer, f: LayerConfig | None, c: Coefficients) -> Cost:
    """The structural model of a layer's units (kinds.py lists them), before calibration."""
    kind = kinds.of(layer)
    total = Cost()
    for unit in kind.units(layer, f):
        total = total + UNIT_COST[unit.role](layer, kind, f, c) + Cost(cycles=unit.cycles)
    return total


def layer_cost(layer: Layer, f: LayerConfig | None, c: Coefficients | None = None) -> Cost:
    """Cycles and resources of one layer at folding ``f`` (None for unfolded kinds)."""
    c = c or Coefficients.load()
    if layer.has_weights and f is None:
        raise ValueError(f"layer {layer.name}: a folding (PE, SIMD) is needed to cost a {layer.kind} layer")
    return unscaled_cost(layer, f, c).scaled(c.lut_scale.get(layer.kind, 1.0), c.ff_scale.get(layer.kind, 1.0))


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


def network_cost(net: Network, folding: dict[str, LayerConfig], c: Coefficients | None = None) -> NetworkCost:
    c = c or Coefficients.load()
    return NetworkCost({l.name: layer_cost(l, folding.get(l.name), c) for l in net.layers})
