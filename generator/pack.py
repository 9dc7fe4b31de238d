"""Weight and threshold layout of a folded matrix-vector unit (MVU).

This module is a contract shared by the HLS and the RTL backends: both read
their weight memories and threshold tables from here, so both pad the same way.

Folding (docs/DESIGN.md, FINN's MVU): a layer with ``rows`` output channels
and fan-in ``cols`` = K runs on PE rows x SIMD lanes. Its weight matrix
W[rows, cols] (row o = output channel o, column i = element i of the window
vector flattened (ky, kx, c) with c fastest, or the flat (h, w, c) input of a
dense layer) is split into

    NF = ceil(rows / PE) neuron folds    and    SF = ceil(cols / SIMD) synapse folds.

The unit loops ``for nf in range(NF): for sf in range(SF)`` (one step per
cycle); at step (nf, sf) PE p handles output row ``nf * PE + p`` and lane s
input element ``sf * SIMD + s``. Tile ``t = nf * SF + sf`` is the weight memory
address; ``tiles[t, p, s] = W[nf * PE + p, sf * SIMD + s]``.

Padding when PE or SIMD do not divide the widths (provably result-neutral):

* Input columns beyond K: the input vector is padded with 0 in every layer
  (bit 0 for binary inputs, pixel 0 for the 8-bit input layer).
* Binary weights (1 bit, XNOR-popcount layers) are padded with bit 1: a lane
  with weight 1 and input 0 never matches, so it adds 0 to P = popcount(XNOR)
  and the thresholds stay exactly the IR's. Note the accumulator counts
  *matches* over all lanes; computing K - popcount(XOR) would count the pad
  lanes as mismatches, so backends must count matches.
* Fixed-point weights (input and output layers) are padded with 0: the
  product is 0 whatever the input element.
* Rows beyond ``rows`` (when PE does not divide it): weights are padded like
  columns (all bits 1 / all 0) and thresholds are 0; the unit computes them
  and drops them, they never reach the output.

Word packing (LSB-first, docs/DESIGN.md): a PE x SIMD weight word holds lane s of
PE p at element position ``p * SIMD + s``, each element ``elem_bits`` wide
(1 for binary, weight_bits two's complement for fixed point), so PE 0 sits in
the least significant bits. ``simd_words`` gives the per-PE view (FINN's
``weights[PE][TILES]`` of SIMD-element words) that both backends use for
memories that are partitioned by PE.

Thresholds are an int64 table [NF, PE] (``thresholds[nf, p]`` for row
nf * PE + p); ``emulate`` is the numpy model of the whole folded unit on
these arrays and is proved equal to golden.py by tests/test_pack.py.

Sparse binary layers (N:M 0/1 weights, kinds._SparseDatapath; docs/DESIGN.md,
"Sparse binary layers") store indices instead of the mask. A row of K weights
is B = ceil(K / M) blocks of M in window order; it becomes ``slots`` = N x B
indices (``sparse_indices``), IB = ceil(log2 M) bits each: the position of a
kept weight within its block, blocks in order, ascending within a block. A
block with fewer than N ones (only a last partial block) fills its spare slots
with its first padding position (>= its length), whose input is bit 0. The
unit folds the slots like the columns of a dense matrix (Geometry.cols =
slots; SIMD a multiple of N, so fold sf covers SIMD / N whole blocks: input
elements [sf x SIMD / N x M, (sf + 1) x SIMD / N x M), padded with 0 past K),
and lane s reads element (s // N) x M + index of that range through an M:1
mux; the lane's term is that bit AND its kept weight (always 1), and the PE
row's popcount adds them. Slots beyond N x B lie in blocks past K, so they
read a 0 at index 0; pad rows hold index 0 and threshold 0 (and are dropped).
``tiles``, ``words`` and ``simd_words`` give these indices in the same word
layout (lane s of PE p at element p x SIMD + s, PE 0 in the LSBs); the
output bit is (acc >= T) XOR invert, ``inverts`` [NF, PE] beside
``thresholds``; ``emulate_sparse`` steps through the unit as hardware does. A
centred layer (``Layer.centred``) adds per fold M x the row's popcount, and at
a row's first fold - N x S, the window's ones, which every row shares: its
input pixels carry their ones counts (``with_counts``, flipflow_count's
stream), and S is the sum of the window's counts; its accumulators and
thresholds are two's complement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flipflow import kinds
from flipflow.generator.folding import FoldingError, LayerConfig
from flipflow.ir import Layer, remembered
from flipflow.kinds import signed_bits, unsigned_bits  # noqa: F401  (the widths both backends size words with)

BINARY_WEIGHT_PAD = 1  # never matches the 0 that pads the input
FIXED_WEIGHT_PAD = 0  # product 0
INPUT_PAD = 0


@dataclass(frozen=True)
class Geometry:
    """Shape of one folded MVU. ``tiles`` = NF * SF weight words per PE."""

    rows: int  # output channels (exact, from the IR)
    cols: int  # fan-in K (exact), or the kept-weight slots per row of a sparse kind
    pe: int
    simd: int

    @property
    def nf(self) -> int:
        return math.ceil(self.rows / self.pe)

    @property
    def sf(self) -> int:
        return math.ceil(self.cols / self.simd)

    @property
    def rows_padded(self) -> int:
        return self.nf * self.pe

    @property
    def cols_padded(self) -> int:
        return self.sf * self.simd

    @property
    def tiles(self) -> int:
        return self.nf * self.sf


def geometry(layer: Layer, folding: LayerConfig) -> Geometry:
    """The folded shape of an MVU layer; rejects foldings it cannot implement."""
    if not isinstance(kinds.of(layer), kinds.MatrixKind):
        raise FoldingError(f"layer {layer.name}: {layer.kind} has no matrix-vector unit to fold")
    if not 1 <= folding.pe <= layer.out_ch:
        raise FoldingError(f"layer {layer.name}: PE={folding.pe} must be in [1, out_ch={layer.out_ch}]")
    kind = kinds.matrix(layer)
    error = simd_error(layer, folding.simd)
    if error:
        raise FoldingError(f"layer {layer.name}: {error}")
    return Geometry(layer.out_ch, kind.synapse_slots(layer), folding.pe, folding.simd)


def simd_error(layer: Layer, simd: int) -> str | None:
    """Why ``simd`` is not a legal SIMD for the layer's matrix-vector unit, or None: a
    multiple of the kind's step (N for a sparse kind: whole blocks per fold) up to its slots."""
    kind = kinds.matrix(layer)
    step, slots = kind.simd_step(layer), kind.synapse_slots(layer)
    if not kind.sparse:
        return None if 1 <= simd <= slots else f"SIMD={simd} must be in [1, K={slots}]"
    if simd % step or not step <= simd <= slots:
        return (f"SIMD={simd} must be a multiple of N={step} in [{step}, {slots}] "
                f"(the {slots} kept-weight slots of its {layer.nm[0]}:{layer.nm[1]} rows)")
    return None


def is_binary(layer: Layer) -> bool:
    """True when weights are single bits combined by XNOR (binary_conv/dense)."""
    return kinds.matrix(layer).datapath == "xnor"


def elem_bits(layer: Layer) -> int:
    """Bits per weight element in a packed word."""
    return kinds.matrix(layer).weight_bits(layer)


def weight_pad(layer: Layer) -> int:
    return BINARY_WEIGHT_PAD if is_binary(layer) else FIXED_WEIGHT_PAD


def padded_matrix(layer: Layer, g: Geometry) -> np.ndarray:
    """W padded to [rows_padded, cols_padded] (int64) with the layer's pad value."""
    w = np.full((g.rows_padded, g.cols_padded), weight_pad(layer), np.int64)
    w[: g.rows, : g.cols] = layer.weights.reshape(g.rows, g.cols)
    return w


def sparse_indices(layer: Layer) -> np.ndarray:
    """[out_ch, slots] int64: each kept weight's index within its block of M, N slots per
    block in block order, ascending within a block; a block's spare slots (fewer than N
    ones: only a last partial block) point at its first padding position."""
    n, m = layer.nm
    k = layer.fan_in
    blocks = kinds.nm_blocks(layer.weights.reshape(layer.out_ch, -1), m)  # [O, B, M]
    spare = np.zeros(blocks.shape[1], np.int64)  # full blocks have N ones (ir.validate): never used
    spare[-1] = k % m  # a partial last block's first padding position
    key = np.where(blocks == 1, np.arange(m), m)  # kept positions first, m sorts behind them
    first = np.sort(key, axis=-1)[..., :n]
    return np.where(first == m, spare[None, :, None], first).reshape(layer.out_ch, -1)


def tiles(layer: Layer, folding: LayerConfig) -> np.ndarray:
    """Weight tiles [TILES, PE, SIMD] (int64 element values; bits or signed ints, or a sparse
    kind's indices)."""
    g = geometry(layer, folding)
    if kinds.matrix(layer).sparse:
        w = np.zeros((g.rows_padded, g.cols_padded), np.int64)  # pad rows and slots: index 0
        w[: g.rows, : g.cols] = sparse_indices(layer)
    else:
        w = padded_matrix(layer, g)
    w = w.reshape(g.nf, g.pe, g.sf, g.simd)
    return w.transpose(0, 2, 1, 3).reshape(g.tiles, g.pe, g.simd)


def _pack(elements: np.ndarray, bits: int) -> int:
    """Element 0 in the least significant bits; negative values in two's complement."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(elements.tolist()):
        word |= (int(v) & mask) << (i * bits)
    return word


def words(layer: Layer, folding: LayerConfig) -> list[int]:
    """One PE*SIMD*elem_bits-wide word per tile; PE 0 lane 0 in the LSBs."""
    t = tiles(layer, folding)
    bits = elem_bits(layer)
    return [_pack(tile.reshape(-1), bits) for tile in t]


def simd_words(layer: Layer, folding: LayerConfig) -> list[list[int]]:
    """Per-PE memories: ``[p][t]`` is the SIMD*elem_bits-wide word of PE p, tile t."""
    t = tiles(layer, folding)
    bits = elem_bits(layer)
    return [[_pack(t[i, p], bits) for i in range(t.shape[0])] for p in range(t.shape[1])]


def accumulator_range(layer: Layer) -> tuple[int, int]:
    """Inclusive [min, max] of any real (unpadded) row's accumulator."""
    return kinds.matrix(layer).accumulator_range(layer)


def accumulator_bits(layer: Layer) -> int:
    """AW, the bits of the matrix-vector unit's accumulators and of each threshold in a
    threshold word (PE x AW bits): every accumulator value and the threshold one above
    the top; an 8-bit pixel layer also holds one (WB + 9)-bit product with its sign."""
    kind = kinds.matrix(layer)
    return remembered(layer, "accumulator_bits",
                      lambda: accumulator_width(kind.datapath, *accumulator_range(layer), kind.weight_bits(layer)))


def accumulator_width(datapath: str, lo: int, hi: int, wb: int) -> int:
    """AW for accumulators in [lo, hi] of a kinds datapath ("xnor", "sparse", "pixel",
    "score") with WB-bit weights."""
    if datapath in kinds.POPCOUNT_DATAPATHS and lo >= 0:
        return max(2, kinds.unsigned_bits(hi + 1))
    if datapath in kinds.POPCOUNT_DATAPATHS:  # a centred sparse layer: M P - N S, two's complement
        return kinds.signed_bits(lo, hi + 1)
    if datapath == "pixel":
        return max(wb + 10, kinds.signed_bits(lo, hi + 1))
    return max(wb + 1, kinds.signed_bits(lo, hi))


def thresholds(layer: Layer, folding: LayerConfig) -> np.ndarray:
    """Thresholds [NF, PE] (int64); pad rows get 0.

    Clamped to [acc_min, acc_max + 1], which changes no output bit (a threshold
    below every reachable accumulator always fires, one above never does) and
    bounds the threshold's bit width by the accumulator's.
    """
    g = geometry(layer, folding)
    if not layer.is_thresholded:
        raise FoldingError(f"layer {layer.name}: {layer.kind} has no thresholds")
    lo, hi = accumulator_range(layer)
    t = np.zeros(g.rows_padded, np.int64)
    t[: g.rows] = np.clip(layer.thresholds, lo, hi + 1)
    return t.reshape(g.nf, g.pe)


def inverts(layer: Layer, folding: LayerConfig) -> np.ndarray:
    """A sparse kind's output inversions [NF, PE] (0/1 int64, beside ``thresholds``): bit =
    (acc >= T) XOR invert; pad rows and a layer without ``invert`` get 0."""
    g = geometry(layer, folding)
    inv = np.zeros(g.rows_padded, np.int64)
    if layer.invert is not None:
        inv[: g.rows] = layer.invert
    return inv.reshape(g.nf, g.pe)


def pad_vectors(vectors: np.ndarray, g: Geometry) -> np.ndarray:
    """Input vectors [N, cols] -> [N, SF, SIMD] padded with INPUT_PAD."""
    n = vectors.shape[0]
    x = np.full((n, g.cols_padded), INPUT_PAD, np.int64)
    x[:, : g.cols] = vectors
    return x.reshape(n, g.sf, g.simd)


def emulate(layer: Layer, folding: LayerConfig, vectors: np.ndarray) -> np.ndarray:
    """Numpy model of the folded MVU on the packed arrays.

    ``vectors`` [N, K]: window vectors (bits, or pixels for the input layer).
    Returns [N, rows]: output bits for thresholded layers, integer scores for
    output layers. It steps through (nf, sf) exactly as the hardware does,
    vectorised over images and PEs, and drops the pad rows at the end.
    """
    if kinds.matrix(layer).sparse:
        return emulate_sparse(layer, folding, vectors)
    g = geometry(layer, folding)
    kind = kinds.matrix(layer)
    t = tiles(layer, folding).reshape(g.nf, g.sf, g.pe, g.simd)
    x = pad_vectors(np.asarray(vectors, np.int64), g)
    out = np.zeros((x.shape[0], g.nf, g.pe), np.int64)
    thr = thresholds(layer, folding) if layer.is_thresholded else None
    for nf in range(g.nf):
        acc = np.zeros((x.shape[0], g.pe), np.int64)
        for sf in range(g.sf):
            w = t[nf, sf][None]  # [1, PE, SIMD]
            xs = x[:, sf][:, None, :]  # [N, 1, SIMD]
            acc += kind.lane_terms(w, xs).sum(-1)
        out[:, nf] = (acc >= thr[nf][None]) if thr is not None else acc
    return out.reshape(x.shape[0], g.rows_padded)[:, : g.rows]


def pad_sparse_vectors(layer: Layer, vectors: np.ndarray, g: Geometry) -> np.ndarray:
    """Input vectors [N, K] -> [N, SF, SIMD / N x M]: fold sf's input elements, 0 past K."""
    per_fold = kinds.matrix(layer).fold_elements(layer, g.simd)
    x = np.full((vectors.shape[0], g.sf * per_fold), INPUT_PAD, np.int64)
    x[:, : vectors.shape[1]] = vectors
    return x.reshape(vectors.shape[0], g.sf, per_fold)


def with_counts(layer: Layer, pixels: np.ndarray) -> np.ndarray:
    """A centred sparse layer's input stream: pixels [..., C] of bits -> [..., C + CW] bits,
    each pixel's ones count in its CW = kinds count_bits top bits (LSB first), as
    flipflow_count appends it."""
    cw = kinds.of(layer).count_bits(layer)
    ones = pixels.sum(-1, dtype=np.int64)[..., None]
    return np.concatenate([pixels, (ones >> np.arange(cw)) & 1], axis=-1).astype(pixels.dtype)


def emulate_sparse(layer: Layer, folding: LayerConfig, vectors: np.ndarray) -> np.ndarray:
    """Numpy model of the sparse matrix-vector unit on its packed indices (``tiles``): per
    fold and lane the M:1 mux picks element (lane // N) x M + index of the fold's input,
    ANDs it with its kept weight, each PE row's popcount adds the lanes, and the row's bit
    is (acc >= T) XOR invert. A centred layer's fold adds M x that popcount, a row's first
    fold also - N x S, S the sum of the window's pixel counts (``with_counts``), which is its
    ones (padding counts 0): kinds' M P - N S.
    [N, K] window vectors -> [N, rows] output bits."""
    g = geometry(layer, folding)
    kind = kinds.matrix(layer)
    n, m = layer.nm
    t = tiles(layer, folding).reshape(g.nf, g.sf, g.pe, g.simd)
    x = pad_sparse_vectors(layer, np.asarray(vectors, np.int64), g)
    base = np.arange(g.simd) // n * m  # lane s's block within the fold
    thr, inv = thresholds(layer, folding), inverts(layer, folding)
    if layer.centred:  # S: the sum of the window's pixel counts, i.e. its ones
        window_ones = np.asarray(vectors, np.int64).sum(-1)[:, None]
    out = np.zeros((x.shape[0], g.nf, g.pe), np.int64)
    for nf in range(g.nf):
        acc = np.zeros((x.shape[0], g.pe), np.int64)
        for sf in range(g.sf):
            picked = x[:, sf][:, base[None, :] + t[nf, sf]]  # the muxes: [N, PE, SIMD]
            dot = kind.lane_terms(np.ones_like(picked), picked).sum(-1)
            acc += m * dot - n * window_ones * (sf == 0) if layer.centred else dot
        out[:, nf] = (acc >= thr[nf][None]) ^ inv[nf][None]
    return out.reshape(x.shape[0], g.rows_padded)[:, : g.rows]
