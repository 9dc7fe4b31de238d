"""Resource model of the hardware units, and the cost of a layer or network.

A layer is the chain of units its kind lists (kinds.py: input stream, sliding
window, matrix-vector unit, pool, sum), each with its cycles per frame from the
one cycle model there. This module adds each unit role's resources
(``UNIT_COST``); the matrix-vector unit's datapath (``DATAPATHS``: XNOR-popcount,
sparse (M:1 mux, AND-popcount), 8-bit pixel, score) is the part that differs between kinds. A layer's cycles
are the slowest of its units.

Every unit's resources are a sum of named *terms*, each the structure of one
part of the Verilog module (hls_templates/rtl/) counted in LUTs and FFs: an
adder tree's inputs, a memory's bits, a register's width. The calibration
(``sim/calibrate_cost.py``) fits one LUT and one FF multiplier per term to yosys
``synth_xilinx -family xc7`` counts of generated designs (the matrix-vector
unit's terms per datapath and input: ``mvu.<datapath>[_dense].<part>``), and
stores them with their residuals in ``cost_calibration.json`` next to this file
(docs/DESIGN.md, "Resource model and memory placement").

Memories are placed by decision, not by inference: the generator states each
memory's style in the RTL (``rom_style``/``ram_style`` attributes, as FINN's
ram_style does) and this model counts the same placement. A weight memory
follows its layer's ``LayerConfig.ram_style`` ("auto": ``LUTROM_MAX_DEPTH``);
thresholds always sit in LUTs (at most out_ch words); line buffers go to
BRAM only when deeper than ``LUTROM_MAX_DEPTH``. BRAM36 counts follow the
RAMB36/RAMB18 aspect ratios as Vivado counts them (a RAMB18 is 0.5); DSP48s
are one per two PE rows per SIMD lane of the pixel layer. Neither is fitted:
both are structural, and the calibration residuals show they match.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from flipflow import atomic, kinds
from flipflow.generator import pack
from flipflow.generator.folding import LayerConfig
from flipflow.ir import Layer, Network
from flipflow.kinds import pow2, unsigned_bits

CALIBRATION_FILE = Path(__file__).with_name("cost_calibration.json")
PIXEL_BITS = kinds.PIXEL_BITS
LUTROM_MAX_DEPTH = 64  # one LUT6 holds 64 words of one bit; deeper LUT memories need 2+ LUTs a bit


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


Terms = dict[str, Cost]  # term name ("<role>.<part>") -> its structural count


@dataclass
class Coefficients:
    """Per-term LUT and FF multipliers fitted to yosys (1.0 = the structural count)."""

    lut: dict[str, float] = field(default_factory=dict)
    ff: dict[str, float] = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)  # provenance and residuals of the fit

    @staticmethod
    def load(path: Path = CALIBRATION_FILE) -> "Coefficients":
        if not path.is_file():
            return Coefficients()
        return Coefficients(**json.loads(path.read_text()))

    def save(self, path: Path = CALIBRATION_FILE) -> None:
        atomic.write_json(path, asdict(self), indent=1)

    def fingerprint(self) -> tuple:
        """The multipliers as a hashable value (results computed with them may be reused)."""
        return tuple(sorted(self.lut.items())), tuple(sorted(self.ff.items()))

    def apply(self, terms: Terms) -> Cost:
        """The calibrated resources of a unit's terms (no cycles)."""
        lut = sum(t.lut * _multiplier(self.lut, name) for name, t in terms.items())
        ff = sum(t.ff * _multiplier(self.ff, name) for name, t in terms.items())
        return Cost(0, lut, ff, sum(t.bram36 for t in terms.values()), sum(t.dsp for t in terms.values()))


# A datapath the calibration set has not seen yet takes, for each part it shares with another
# datapath's RTL (fold register, memories, tree, accumulators, control), that datapath's fitted
# multiplier; its own parts (the sparse M:1 mux) count at 1.0, the structural count.
# (kinds.MatrixKind.uncalibrated_like; the term prefixes of mvu_unit, conv and dense variants)
UNCALIBRATED_LIKE = {f"mvu.{k.datapath}{dense}.": f"mvu.{k.uncalibrated_like}{dense}."
                     for k in kinds.KINDS.values() if getattr(k, "uncalibrated_like", None) for dense in ("", "_dense")}


def _multiplier(fitted: dict[str, float], name: str) -> float:
    if name in fitted:
        return fitted[name]
    for prefix, like in UNCALIBRATED_LIKE.items():
        if name.startswith(prefix):
            return fitted.get(like + name[len(prefix):], 1.0)
    return 1.0


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


class Memory(NamedTuple):
    """A memory of the generated RTL and where it is placed ("distributed" or "block")."""

    width: int
    depth: int
    style: str


def weight_memory(layer: Layer, f: LayerConfig) -> Memory:
    """flipflow_mvu's weight ROM: NF * SF words of PE x SIMD x WB bits, placed as
    ``f.ram_style`` says; "auto" puts it in BRAM when deeper than LUTROM_MAX_DEPTH."""
    g = pack.geometry(layer, f)
    width, depth = g.pe * g.simd * kinds.matrix(layer).weight_bits(layer), g.nf * g.sf
    style = f.ram_style
    if style == "auto":
        style = "block" if depth > LUTROM_MAX_DEPTH else "distributed"
    return Memory(width, depth, style)


def threshold_memory(layer: Layer, f: LayerConfig) -> Memory:
    """Thresholds: NF words of PE x AW bits (a sparse kind's also its invert bit), always in
    LUTs (at most out_ch words)."""
    g = pack.geometry(layer, f)
    return Memory(g.pe * (pack.accumulator_bits(layer) + kinds.matrix(layer).sparse), g.nf, "distributed")


def line_buffer_bank(layer: Layer) -> Memory:
    """One row bank of flipflow_swu: pow2(W) pixels; BRAM only beyond LUTROM_MAX_DEPTH."""
    depth = pow2(layer.in_shape[1])
    return Memory(kinds.of(layer).pixel_bits(layer), depth, "block" if depth > LUTROM_MAX_DEPTH else "distributed")


def rom_luts_per_bit(depth: int) -> float:
    """LUTs per bit of a read-only LUT memory (yosys xc7: a LUT6 per 64 words, F7/F8
    muxes free up to 256 words, a LUT level per 4 x 256 beyond); 1- and 2-word ROMs are
    wiring or one LUT input of the logic they feed."""
    if depth <= 2:
        return 0.0
    if depth <= 8:
        return (depth - 2) / 8
    return math.ceil(depth / 64) + max(0, math.ceil(depth / 256) - 1)


def ram_luts_per_bit(depth: int) -> float:
    """LUTs per bit of a one-write one-read LUT RAM: RAM32M holds 6 bits x 32 words
    in 4 LUTs, RAM64M 3 bits x 64; deeper RAMs are several plus a read mux."""
    if depth <= 32:
        return 4 / 6
    return 4 / 3 * math.ceil(depth / 64) + max(0, math.ceil(depth / 256) - 1)


def memory_terms(name: str, m: Memory, rom: bool) -> Terms:
    """A memory with a registered read: in BRAM (the register is the BRAM's own) or in
    LUTs plus the read register."""
    if m.width <= 0 or m.depth <= 0:
        return {}
    if m.style == "block":
        return {name + "_bram": Cost(bram36=bram36_blocks(m.width, m.depth))}
    per_bit = rom_luts_per_bit(m.depth) if rom else ram_luts_per_bit(m.depth)
    return {name: Cost(lut=m.width * per_bit, ff=m.width)}


# -- one resource model per unit role (kinds.UNIT_ROLES) -----------------------------

def _control(role: str, *counts: int) -> Terms:
    """Handshake and the counters up to ``counts``: a constant per unit plus a LUT and an
    FF per counter bit."""
    bits = sum(unsigned_bits(max(n - 1, 1)) for n in counts)
    return {f"{role}.control": Cost(lut=1.0, ff=1.0), f"{role}.counters": Cost(lut=bits, ff=bits)}


def stream_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None) -> Terms:
    """flipflow_gather: C 8-bit channel beats shifted into a pixel register, then copied out."""
    ch = layer.in_ch
    if ch == 1:
        return {}
    return {"stream.pixel": Cost(ff=2 * PIXEL_BITS * ch), **_control("stream", ch)}


COUNT_GROUP = 16  # bits (values) one adder node of flipflow_count sums
# LUTs per input bit of its adder nodes: a 16-input popcount node maps to 6:3 compressors and a
# short carry adder, about 1.5 LUT an input (yosys, flipflow_count at CH = 16 .. 256, within 10%:
# tests/test_cost_model.py synthesizes one)
COUNT_NODE_LUTS = 1.5


def tree_depth(values: int, group: int) -> int:
    """Levels of an adder tree whose nodes sum ``group`` values: ceil(log_group(values)), at least one."""
    levels, n = 1, math.ceil(values / group)
    while n > 1:
        levels, n = levels + 1, math.ceil(n / group)
    return levels


def count_levels(channels: int) -> int:
    """flipflow_count's LEVELS: ceil(log_16(channels)) adder levels, at least one."""
    return tree_depth(channels, COUNT_GROUP)


def count_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None) -> Terms:
    """flipflow_count: a C-bit popcount tree (LEVELS levels of 16-input nodes at
    COUNT_NODE_LUTS an input, all but the last registered with a copy of the pixel), then
    an output queue of out_data and LEVELS slots of C + CW bits (a slot-select mux per bit),
    and its fill and in-flight counters. Structural counts (no calibration design has the
    unit yet; the multipliers are 1.0)."""
    c, cw = kind.window_channels(layer), kind.count_bits(layer)
    levels = count_levels(c)
    nodes = _adder_levels(c, COUNT_GROUP, levels, _count_width(c, COUNT_GROUP, cw))
    tree = _adder_cost(c, 1, nodes)
    tree_ff = sum(n * bits for n, bits in nodes[:-1]) + (levels - 1) * c  # the last level is not registered
    out = c + cw
    return {"count.tree": Cost(lut=COUNT_NODE_LUTS * tree.lut, ff=tree_ff),
            "count.queue": Cost(lut=out * math.ceil((levels + 1) / 4), ff=(levels + 1) * out),
            **_control("count", levels + 1, levels + 1)}


def window_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None) -> Terms:
    """flipflow_swu: kinds.window_rows row banks; each cycle every bank reads one pixel, a
    ROWS:1 mux per window row picks its bank (and forces padding), and the column
    shifts into the k x k window register, which is the output beat."""
    k = layer.kernel
    bank = line_buffer_bank(layer)
    rows = kinds.window_rows(layer)
    terms = {name: Cost(lut=t.lut * rows, ff=t.ff * rows, bram36=t.bram36 * rows)
             for name, t in memory_terms("window.bank", bank, rom=False).items()}
    terms["window.column"] = Cost(lut=k * bank.width * math.ceil((rows + 1) / 4))  # bank mux + padding, LUT6 = 4:1
    terms["window.register"] = Cost(ff=k * k * bank.width)
    ho, wo, _ = layer.out_shape
    return terms | _control("window", bank.depth, ho, wo, kinds.window_columns(layer))


def input_multipliers(f: LayerConfig) -> int:
    """DSP48 multipliers of the input layer: two PE rows share one per SIMD lane
    (the pixel times both rows' weights packed into the 25-bit port)."""
    return math.ceil(f.pe / 2) * f.simd


# register stages before the tree (its PRE): the DSP48's A/B and M registers, the +w/-w terms,
# the sparse lanes' selected input bits (after their M:1 muxes)
TERM_STAGES = {"xnor": 0, "sparse": 1, "pixel": 2, "score": 1}


def mvu_pipeline_stages(datapath: str, simd: int) -> int:
    """Register stages flipflow_mvu puts between its weight read and its accumulator
    (PRE + TREE there): the term stages (``TERM_STAGES``), then ceil(log_TG(SIMD))
    adder-tree stages, at least one."""
    return tree_depth(simd, kinds.MVU_TREE_GROUP[datapath]) + TERM_STAGES[datapath]


def mvu_output_depth(datapath: str, simd: int, nf: int, sf: int, early_exit: bool = False) -> int:
    """Slots of flipflow_mvu's output queue, also its credits (its DEPTH): a credit is held
    for the 2 + mvu_pipeline_stages cycles from a window's last fold to its beat leaving,
    and a window's last fold comes every NF x SF cycles. With early exit (SF > 1) it is
    taken at the last group's first fold, so held up to SF + ACC + 1 cycles, and a window
    takes at least NF x min(SF, ACC + 2) (docs/DESIGN.md, "Early exit: hardware")."""
    acc = 1 + mvu_pipeline_stages(datapath, simd)
    if early_exit and sf > 1:
        return (sf + acc) // (nf * min(sf, acc + 2)) + 1
    return (acc + 1) // (nf * sf) + 1


def early_exit_terms(g: pack.Geometry, aw: int, stages: int) -> Cost:
    """flipflow_mvu's early-exit logic (EARLY_EXIT = 1), a structural count (LUT and FF at
    1.0: no calibration design has it yet): the unrotated window copy (a register and a
    restart input on the fold register's mux per bit); per PE row the P + rem < T check
    (an adder and a comparator of AW + 1 bits) and its share of the all-decided AND; the
    terms-left ROM and register; the group tag, its compare and the per-stage {tag, sf}
    pipeline; the next group's address (register and adder); skip and abort flags."""
    bufw = g.sf * g.simd
    tag = math.ceil(math.log2(stages + 4))  # GB = clog2(ACC + 3), ACC = 1 + stages
    sfb = unsigned_bits(g.sf - 1)
    addr = unsigned_bits(g.tiles - 1)
    lut = bufw + g.pe * (2 * (aw + 1) + 1) + (aw + 1) + tag + 2 * addr + 4
    ff = bufw + (aw + 1) + 2 * tag + (1 + stages) * (tag + sfb) + addr + 2
    return Cost(lut=lut, ff=ff)


def _adder_levels(values: int, group: int, stages: int, width: Callable[[int], int]) -> list[tuple[int, int]]:
    """(values, bits per value) of each registered level of an adder tree over ``values``
    inputs whose nodes sum ``group`` values, ``stages`` levels deep; ``width(l)``: level l's bits."""
    levels = []
    for level in range(1, stages + 1):
        values = math.ceil(values / group)
        levels.append((values, width(level)))
    return levels


def _count_width(bits: int, group: int, cap: int) -> Callable[[int], int]:
    """Level widths of a tree counting ``bits`` single bits: a level-l node counts up to
    min(bits, group^l) (yosys narrows it), at most ``cap`` bits."""
    return lambda level: min(cap, unsigned_bits(min(bits, group**level)))


def _adder_cost(inputs: int, in_bits: int, levels: list[tuple[int, int]], copies: int = 1) -> Cost:
    """A registered adder tree (``copies`` of it side by side): each node adds its inputs
    (a LUT per input bit of the node), each level is a register."""
    lut = ff = 0.0
    for n, bits in levels:
        lut += copies * inputs * in_bits
        ff += copies * n * bits
        inputs, in_bits = n, bits
    return Cost(lut=lut, ff=ff)


def _tree_levels(datapath: str, f: LayerConfig, aw: int) -> list[tuple[int, int]]:
    """(values per row, bits per value) of each registered adder-tree level of flipflow_mvu;
    a popcount datapath's levels count bits (``_count_width``), others carry AW."""
    group = kinds.MVU_TREE_GROUP[datapath]
    popcount = datapath in kinds.POPCOUNT_DATAPATHS
    width = _count_width(f.simd, group, aw) if popcount else (lambda level: aw)
    return _adder_levels(f.simd, group, mvu_pipeline_stages(datapath, f.simd) - TERM_STAGES[datapath], width)


def _tree(datapath: str, f: LayerConfig, aw: int) -> Cost:
    """The registered adder tree after the per-lane terms, one per PE row."""
    in_bits = 1 if datapath in kinds.POPCOUNT_DATAPATHS else aw
    return _adder_cost(f.simd, in_bits, _tree_levels(datapath, f, aw), f.pe)


def _xnor_datapath(layer: Layer, f: LayerConfig, aw: int) -> Terms:
    """XNOR of each weight and input bit, feeding the popcount tree (the XNOR folds into
    the tree's first LUTs)."""
    return {"mvu.tree": _tree("xnor", f, aw)}


def _pixel_datapath(layer: Layer, f: LayerConfig, aw: int) -> Terms:
    """8-bit pixel x WB-bit weight products, two PE rows per DSP48: the packed weight
    (an adder per pair and lane) and the pixel are registered at the DSP's A/B ports,
    the products at M; then the adder tree of AW-bit terms."""
    wb = layer.weight_bits
    pairs = input_multipliers(f)
    return {
        "mvu.pack": Cost(lut=pairs * (2 * wb + 9), dsp=pairs),
        "mvu.tree": _tree("pixel", f, aw),
    }


def _score_datapath(layer: Layer, f: LayerConfig, aw: int) -> Terms:
    """Each binary input selects +w or -w (an AW-bit negate and mux per lane, registered),
    then the tree."""
    lanes = f.pe * f.simd * aw
    return {"mvu.lanes": Cost(lut=lanes, ff=lanes), "mvu.tree": _tree("score", f, aw)}


def mux_luts(m: int) -> int:
    """LUT6 of one M:1 one-bit mux: a LUT6 is a 4:1 mux (2 select + 4 data inputs), F7/F8
    join two and four of them for free, so ceil(M / 4) up to 16:1, plus a 4:1 LUT level over
    every four 16:1 groups beyond (32:1, 64:1)."""
    return math.ceil(m / 4) + (math.ceil(m / 64) if m > 16 else 0)


def _sparse_datapath(layer: Layer, f: LayerConfig, aw: int) -> Terms:
    """Per PE row and SIMD lane an M:1 mux selects the input bit its kept weight's index
    names (the mux output registered: TERM_STAGES), ANDed with the weight (a kept weight is
    1, so the AND folds into the tree's first LUTs) into the popcount tree of the XNOR
    datapath. Structural counts; no calibration design has this datapath yet, so the mux
    counts at 1.0 and every shared part takes the XNOR unit's multiplier (UNCALIBRATED_LIKE)."""
    lanes = f.pe * f.simd
    terms = {"mvu.mux": Cost(lut=lanes * mux_luts(layer.nm[1]), ff=lanes), "mvu.tree": _tree("sparse", f, aw)}
    if layer.centred:
        terms |= _window_count(layer, f, aw)
    return terms


def count_group(values: int, stages: int) -> int:
    """Values a node of flipflow_mvu's window count sums (its CG): the least g with g^stages >= values."""
    g = 2
    while g**stages < values:
        g += 1
    return g


def _window_count(layer: Layer, f: LayerConfig, aw: int) -> Terms:
    """A centred sparse unit (Layer.centred): the window's pixel counts (flipflow_count's,
    CW bits each), registered when the window is taken, summed in PRE + TREE + 1 registered
    stages of CG-input nodes (a LUT per input bit of a node, a register per level, as
    ``_tree``), times N in the last (shift-adds of AW bits), and per PE row the AW-bit
    (P << log2 M) - N S (the subtrahend muxed to the first fold) before its accumulator.
    Structural counts (LUT and FF at 1.0: no calibration design has them yet)."""
    kind = kinds.matrix(layer)
    counts, cw, k = kind.counts_per_vector(layer), kind.count_bits(layer), layer.fan_in
    stages = mvu_pipeline_stages("sparse", f.simd) + 1
    group = count_group(counts, stages)

    def node_bits(level: int) -> int:  # a level-l node sums up to group^l counts of k / counts ones each
        return unsigned_bits(min(k, k // counts * group**level))

    levels = _adder_levels(counts, group, stages, node_bits)
    tree = _adder_cost(counts, cw, levels)
    times_n = aw * (bin(layer.nm[0]).count("1") - 1)  # an adder per further one bit of N
    last_ff = aw - levels[-1][1]  # the last level registers N x S (AW bits), not S
    return {"mvu.window_count": Cost(lut=tree.lut + times_n, ff=tree.ff + last_ff + counts * cw),
            "mvu.centre": Cost(lut=2 * f.pe * aw)}


DATAPATHS: dict[str, Callable[[Layer, LayerConfig, int], Terms]] = {
    "xnor": _xnor_datapath,
    "sparse": _sparse_datapath,
    "pixel": _pixel_datapath,
    "score": _score_datapath,
}


def mvu_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None) -> Terms:
    """flipflow_mvu: load buffer and rotating fold register (a double buffer), weight and
    threshold memories, the datapath and its tree, accumulators and threshold compare,
    the earlier folds' results and the output register."""
    assert isinstance(kind, kinds.MatrixKind) and f is not None
    g = pack.geometry(layer, f)
    aw = pack.accumulator_bits(layer)
    res = 1 if kind.thresholded else aw
    xw = kind.fold_elements(layer, f.simd) * kind.lane_bits  # a sparse fold reads SIMD / N whole blocks
    positions = kind.beats_per_vector(layer)
    terms = DATAPATHS[kind.datapath](layer, f, aw)
    terms |= memory_terms("mvu.weights", weight_memory(layer, f), rom=True)
    if kind.thresholded:
        terms |= memory_terms("mvu.thresholds", threshold_memory(layer, f), rom=True)
    terms |= {
        "mvu.load": Cost(ff=positions * kind.beat_bits(layer)),  # load buffer (a shift register over the beats)
        "mvu.fold": Cost(lut=g.sf * xw if g.sf > 1 else 0, ff=g.sf * xw + xw),  # rotating register + slice register
        "mvu.accumulate": Cost(lut=g.pe * aw * (2 if kind.thresholded else 1), ff=g.pe * aw),  # add (+ compare)
        "mvu.results": Cost(ff=(g.nf - 1) * g.pe * res + layer.out_ch * res),  # earlier folds + out_data
        # slots behind out_data: a shift-register LUT (SRLC32E) and an out_data input mux per bit
        "mvu.queue": Cost(lut=2 * layer.out_ch * res if mvu_output_depth(kind.datapath, f.simd, g.nf, g.sf, f.early_exit) > 1 else 0),
        "mvu.pipeline": Cost(ff=mvu_pipeline_stages(kind.datapath, f.simd) * (unsigned_bits(g.nf - 1) + 4)),
    }
    terms |= _control("mvu", g.nf, g.sf, g.nf * g.sf, positions)
    if f.early_exit and g.sf > 1:
        terms["mvu.early_exit"] = early_exit_terms(g, aw, mvu_pipeline_stages(kind.datapath, f.simd))
    # the datapaths map differently (DSP48 registers, LUT adders), and a dense layer loads its vector
    # over many beats, so every term is fitted per datapath and input
    variant = kind.datapath if kind.spatial else f"{kind.datapath}_dense"
    return {name.replace("mvu.", f"mvu.{variant}.", 1): t for name, t in terms.items()}


def pool_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None) -> Terms:
    """flipflow_maxpool: OR of the k*k pixels of each window beat, one window per cycle."""
    taps = layer.kernel * layer.kernel
    return {"pool.or": Cost(lut=layer.out_ch * math.ceil((taps - 1) / 5) if taps > 1 else 0, ff=layer.out_ch),
            **_control("pool")}


def sum_unit(layer: Layer, kind: kinds.LayerKind, f: LayerConfig | None) -> Terms:
    """flipflow_global_sum: one 32-bit score accumulator per class over the H x W map."""
    h, w, ch = layer.in_shape
    return {"sum.accumulators": Cost(lut=32 * ch, ff=2 * 32 * ch), **_control("sum", h * w)}


UNIT_COST: dict[str, Callable[[Layer, kinds.LayerKind, LayerConfig | None], Terms]] = {
    "stream": stream_unit,
    "count": count_unit,
    "window": window_unit,
    "mvu": mvu_unit,
    "pool": pool_unit,
    "sum": sum_unit,
}


def unit_terms(layer: Layer, f: LayerConfig | None) -> dict[str, Terms]:
    """The structural terms of each unit of a layer (kinds.py lists its units), by role."""
    kind = kinds.of(layer)
    return {unit.role: UNIT_COST[unit.role](layer, kind, f) for unit in kind.units(layer, f)}


def result_unit(net: Network) -> Cost:
    """flipflow_result after the last layer: the n class scores held while they are written
    out (n x B flip-flops and their n:1 output mux), the B-bit out word, a counter. B is the
    score width: the 32-bit sums of a global_sum, else the output layer's accumulator.
    Fitted to yosys on the calibration designs (B = 11..32, n = 10): FF exact, LUT within
    2. Folding-independent, so it only narrows the budget the layers share."""
    last = net.layers[-1]
    bits = pack.accumulator_bits(last) if isinstance(kinds.of(last), kinds.MatrixKind) else 32
    n = len(net.classes)
    return Cost(lut=(n + 1.7) * bits + 6, ff=(n + 1) * bits + 9, cycles=kinds.result_cycles(n))


def layer_cost(layer: Layer, f: LayerConfig | None, c: Coefficients | None = None) -> Cost:
    """Cycles and resources of one layer at folding ``f`` (None for unfolded kinds)."""
    c = c or Coefficients.load()
    if layer.has_weights and f is None:
        raise ValueError(f"layer {layer.name}: a folding (PE, SIMD) is needed to cost a {layer.kind} layer")
    kind = kinds.of(layer)
    total = Cost()
    for unit in kind.units(layer, f):
        total = total + c.apply(UNIT_COST[unit.role](layer, kind, f)) + Cost(cycles=unit.cycles)
    return total


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
