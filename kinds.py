"""Layer kinds: the one place that says what each kind of IR layer is.

One class per kind (``KINDS``; ``of(layer)`` finds a layer's), as FINN keeps
one class per hardware op. A kind holds

* its IR facts: which fields it uses, its weight array shape and element
  type, its output shape (``out_shape``), its fan-in;
* its semantics (``execute``): the golden model of the kind, integer and bit
  arithmetic on channel-last (N, H, W, C) arrays;
* its hardware: the chain of units it becomes (``units``: input stream,
  sliding window, matrix-vector unit, pool, sum) with each unit's cycles per
  frame, the one cycle model every report uses; and, for matrix-vector
  kinds, the datapath the emitters instantiate (``datapath``) and its
  accumulator range.

Resources are a model of the units (generator/cost.py); the HLS and RTL
emitters instantiate the units this module lists. How to add a kind or a
per-layer option: docs/DESIGN.md, "Adding a layer kind".

Bit conventions (docs/DESIGN.md): a binary value is one bit, 1 = +1, 0 = -1;
windows flatten (ky, kx, c) with c fastest; binary layers pad with -1 (bit 0),
the input layer pads with pixel 0; max-pool on bits is OR.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if TYPE_CHECKING:
    from flipflow.ir import Layer, Network

PIXEL_BITS = 8  # the input stream carries one 8-bit channel value per beat


class Folded(Protocol):
    """What the cycle model reads of a per-layer config (generator.folding.LayerConfig)."""

    pe: int
    simd: int


# -- arithmetic building blocks of the semantics ----------------------------------

def windows(x: np.ndarray, k: int, stride: int, pad: int, pad_value: int) -> np.ndarray:
    """Sliding windows of an (N, H, W, C) tensor -> (N, Ho, Wo, k*k*C).

    A window is flattened (ky, kx, c) with c fastest: the order in which the
    hardware line buffer emits it and the order of the weight rows.
    """
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # N,Ho,Wo,C,ky,kx
    n, ho, wo, c = v.shape[:4]
    return v.transpose(0, 1, 2, 4, 5, 3).reshape(n, ho, wo, k * k * c)


def xnor_popcount(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """P[m, o] = popcount(XNOR(x[m], w[o])) for {0,1} matrices x (M, K), w (O, K).

    Counted through the identity popcount(XNOR) = K - |x| - |w| + 2 x.w on
    bit vectors, whose x.w is an exact integer matrix product (float32 BLAS is
    exact for sums below 2**24), so it runs at matmul speed.
    ``sim.golden.xnor_popcount_packed`` computes the same on packed words, as hardware does.
    """
    k = x_bits.shape[-1]
    if k >= 2**24:
        raise ValueError(f"fan-in {k} too large for exact float32 accumulation")
    xf = x_bits.astype(np.float32)
    wf = w_bits.astype(np.float32)
    dot = (xf @ wf.T).astype(np.int64)
    return k - xf.sum(-1, dtype=np.int64)[:, None] - wf.sum(-1, dtype=np.int64)[None, :] + 2 * dot


def and_popcount(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """P[m, o] = popcount(x[m] AND w[o]) for {0,1} matrices x (M, K), w (O, K): the bit
    dot product x.w, exact in float32 BLAS for sums below 2**24 (as ``xnor_popcount``)."""
    if x_bits.shape[-1] >= 2**24:
        raise ValueError(f"fan-in {x_bits.shape[-1]} too large for exact float32 accumulation")
    return (x_bits.astype(np.float32) @ w_bits.astype(np.float32).T).astype(np.int64)


def conv_out(size: int, k: int, s: int, p: int) -> int:
    """Output rows (or columns) of a k x k window with stride s over size + 2p."""
    return (size + 2 * p - k) // s + 1


def unsigned_bits(hi: int) -> int:
    """Smallest unsigned width holding [0, hi]."""
    return max(1, int(hi).bit_length())


def pow2(n: int) -> int:
    """The smallest power of two >= n (line-buffer banks and rows are powers of two)."""
    return 1 << max(0, (n - 1).bit_length())


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's complement width holding [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


# -- the unit chain: one cycle model for every unit of the pipeline ----------------

@dataclass(frozen=True)
class Unit:
    """One hardware unit of a layer's chain, with its cycles per frame at II = 1.

    ``role`` is one of UNIT_ROLES; generator/cost.py models each role's
    resources, generator/rtl.py and generator/hls.py instantiate it."""

    role: str
    cycles: int


UNIT_ROLES = ("stream", "count", "window", "mvu", "pool", "sum")
POPCOUNT_DATAPATHS = ("xnor", "sparse")  # matrix datapaths whose lanes add single bits: a popcount tree
# flipflow_mvu's DATAPATH parameter per matrix datapath, and its TG: the values one adder-tree
# node sums (the RTL's, which cost.py and timing_model.py model)
MVU_DATAPATH = {"xnor": "binary", "pixel": "pixels", "score": "scores", "sparse": "sparse"}
MVU_TREE_GROUP = {"xnor": 16, "sparse": 16, "pixel": 4, "score": 4}


def window_columns(layer: Layer) -> int:
    """Window columns a window unit reads per output row: (wo - 1) * stride + k."""
    return (layer.out_shape[1] - 1) * layer.stride + layer.kernel


def window_rows(layer: Layer) -> int:
    """Rows of a window unit's line buffer (one bank each, a ring: row r in bank r mod
    rows). Enough that the writer can fill the rows of the next output row while the
    reader is on this one (k + s, rounded up to a power of two as the buffer always
    was), and at a frame's end the rows of the next frame's first output row while
    the reader is on the last (valid padding holds k rows there and needs k more:
    2k), so a producer is never held back by rows the reader still needs while the
    reader's consumer keeps up. Fewer rows cost the pipeline a bubble at every frame
    boundary that no unit's cycles count (BNN-PYNQ's CNV, unpadded 3x3 convs: 13,709
    simulated cycles per frame against 12,800 with 4 rows). flipflow_swu.v computes
    the same ROWS."""
    h, k, s, p = layer.in_shape[0], layer.kernel, layer.stride, layer.pad
    last_low = max(0, (layer.out_shape[0] - 1) * s - p)  # top row of the last output row
    return max(pow2(k + s), h - last_low + min(k - p, h))


def window_cycles(layer: Layer) -> int:
    """A window unit writes one input pixel per cycle and reads one window column
    (k pixels, one per line-buffer bank) per cycle."""
    return max(layer.in_shape[0] * layer.in_shape[1], layer.out_shape[0] * window_columns(layer))


def stream_cycles(input_shape: tuple[int, int, int]) -> int:
    """The input AXI stream: one 8-bit channel value per beat."""
    return int(np.prod(input_shape))


def result_cycles(classes: int) -> int:
    """The result unit writes every score and then the class id, one word per cycle."""
    return classes + 1


# -- the kinds -----------------------------------------------------------------------

class LayerKind(ABC):
    """Base of every kind. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    role: ClassVar[str]  # "input" | "binary" | "output" | "reduce": where it may stand in a network
    spatial: ClassVar[bool] = True  # reads windows of an (H, W, C) map (else: the flattened input)
    has_weights: ClassVar[bool] = False
    thresholded: ClassVar[bool] = False  # output bit = acc >= T per channel
    binary_output: ClassVar[bool] = True  # its output elements are single bits
    binary_input: ClassVar[bool] = True  # its input elements are single bits (else 8-bit pixels or scores)
    prunable: ClassVar[bool] = False  # its output channels may be removed (training/prune.py)
    counts_binary_ops: ClassVar[bool] = False  # its MACs are XNOR-popcount terms
    binary_weights: ClassVar[bool] = False  # its weights are single bits (trained as +-1 latent weights)
    window_pad_value: ClassVar[int] = 0  # what pads its windows (bit 0 = -1, pixel 0)
    lane_bits: ClassVar[int] = 1  # bits per input element (a SIMD lane, a window pixel channel)
    bit_planes: ClassVar[bool] = False  # takes 8-bit pixels and reads only their kept bits (Layer.planes)
    sparse: ClassVar[bool] = False  # 0/1 weights with N:M structure (Layer.nm), popcount(x AND b)

    # -- IR ----------------------------------------------------------------
    def out_shape(self, layer: Layer) -> tuple[int, int, int]:
        h, w, _ = layer.in_shape
        k, s, p = layer.kernel, layer.stride, layer.pad
        return (conv_out(h, k, s, p), conv_out(w, k, s, p), self.out_channels(layer))

    def out_channels(self, layer: Layer) -> int:
        return layer.out_ch

    def fan_in(self, layer: Layer) -> int:
        """Terms per dot product (K): kernel window x input channels."""
        return layer.kernel * layer.kernel * self.window_channels(layer)

    def window_channels(self, layer: Layer) -> int:
        """Elements per pixel of what the window unit stores (lane_bits each)."""
        return layer.in_ch

    def count_bits(self, layer: Layer) -> int:
        """Bits of the ones count a count unit appends to each input pixel (0: no count unit)."""
        return 0

    def pixel_bits(self, layer: Layer) -> int:
        """Bits of one pixel as the window unit stores it and the matrix unit loads it: its
        elements, and above them the pixel's ones count where the kind has one."""
        return self.window_channels(layer) * self.lane_bits + self.count_bits(layer)

    def has_window(self, layer: Layer) -> bool:
        """A window unit sits in front of the layer where the window is more than the pixel itself."""
        return self.spatial and (layer.kernel, layer.stride, layer.pad) != (1, 1, 0)

    # -- semantics -----------------------------------------------------------
    @abstractmethod
    def execute(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        """The kind's golden semantics on a batch (N, H, W, C) -> (N, Ho, Wo, Co)."""

    # -- hardware ------------------------------------------------------------
    @abstractmethod
    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        """The layer's unit chain in stream order, each with its cycles per frame."""

    def cycles(self, layer: Layer, config: Folded | None) -> int:
        """Cycles per frame of the layer: its slowest unit."""
        return max(u.cycles for u in self.units(layer, config))


class MatrixKind(LayerKind):
    """A layer computed by a matrix-vector unit of PE rows x SIMD lanes (FINN's MVAU).

    ``datapath`` names the unit's arithmetic, which the emitters instantiate:
    ``pixel`` (8-bit pixel x w-bit weight, two products per DSP48),
    ``xnor`` (popcount of XNOR, binary weights), ``score`` (+-w selected by a bit),
    ``sparse`` (an M:1 input mux per lane, then popcount of AND, N:M 0/1 weights).
    """

    has_weights = True
    datapath: ClassVar[str]
    # the datapath whose fitted cost multipliers stand in for this one's parts until the cost
    # calibration has measured it (generator/cost.py); None: its own
    uncalibrated_like: ClassVar[str | None] = None
    weight_element_bits_fixed: ClassVar[int | None] = None  # 1 for binary weights; None: the IR's weight_bits

    def fan_in(self, layer: Layer) -> int:
        if not self.spatial:
            return int(np.prod(layer.in_shape))
        return super().fan_in(layer)

    def out_shape(self, layer: Layer) -> tuple[int, int, int]:
        if not self.spatial:
            return (1, 1, layer.out_ch)
        return super().out_shape(layer)

    def weight_shape(self, layer: Layer) -> tuple[int, ...]:
        """[out_ch, k, k, in_ch] for convolutions (window order), [out_ch, K] for dense layers."""
        if not self.spatial:
            return (layer.out_ch, self.fan_in(layer))
        return (layer.out_ch, layer.kernel, layer.kernel, self.window_channels(layer))

    def weight_bits(self, layer: Layer) -> int:
        """Bits per weight element in a packed word."""
        return self.weight_element_bits_fixed or layer.weight_bits

    def synapse_slots(self, layer: Layer) -> int:
        """Terms the unit steps through per row, SIMD at a time: the fan-in K (a sparse
        kind steps through its kept-weight slots only)."""
        return self.fan_in(layer)

    def simd_step(self, layer: Layer) -> int:
        """SIMD must be a multiple of this (a sparse lane group reads whole N:M blocks)."""
        return 1

    def fold_elements(self, layer: Layer, simd: int) -> int:
        """Input elements one synapse fold reads (the fold register's slice)."""
        return simd

    def synapse_folds(self, layer: Layer, simd: int) -> int:
        """SF = ceil(slots / SIMD)."""
        return math.ceil(self.synapse_slots(layer) / simd)

    def macs(self, layer: Layer) -> int:
        return layer.out_shape[0] * layer.out_shape[1] * layer.out_ch * self.fan_in(layer)

    def patches(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        """The unit's input vectors: (N, Ho, Wo, K) windows, or (N, 1, 1, K) for dense."""
        if not self.spatial:
            return x.reshape(x.shape[0], 1, 1, -1)
        return windows(x, layer.kernel, layer.stride, layer.pad, self.window_pad_value)

    @abstractmethod
    def accumulate(self, layer: Layer, vectors: np.ndarray) -> np.ndarray:
        """acc[m, o] of input vectors (M, K) against the weight rows (exact integers)."""

    @abstractmethod
    def lane_terms(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        """What one SIMD lane adds to its accumulator for weight elements w and input
        elements x (broadcast int64 arrays); padding lanes must add 0 (generator/pack.py)."""

    @abstractmethod
    def accumulator_range(self, layer: Layer) -> tuple[int, int]:
        """Inclusive [min, max] of any real (unpadded) row's accumulator."""

    def threshold_bounds(self, layer: Layer) -> tuple[int, int] | None:
        """Inclusive bounds the IR holds a thresholded layer's thresholds to (None: unbounded)."""
        return None

    def execute(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        patches = self.patches(layer, x)
        n, ho, wo, k = patches.shape
        acc = self.accumulate(layer, patches.reshape(-1, k))
        out = self.output_bits(layer, acc) if self.thresholded else acc
        return out.reshape(n, ho, wo, layer.out_ch)

    def output_bits(self, layer: Layer, acc: np.ndarray) -> np.ndarray:
        """A thresholded kind's output bits for accumulators (..., out_ch)."""
        return (acc >= layer.thresholds).astype(np.uint8)

    def beat_bits(self, layer: Layer) -> int:
        """Bits of one input beat of the matrix-vector unit: a conv's k x k window from its window
        unit (or the pixel itself), a dense layer's pixel (``pixel_bits`` each)."""
        return (layer.kernel**2 if self.spatial else 1) * self.pixel_bits(layer)

    def beats_per_vector(self, layer: Layer) -> int:
        """Input beats the matrix-vector unit loads per vector: one for a conv (the window
        unit delivers the whole window), every input pixel for a dense layer."""
        return 1 if self.spatial else layer.in_shape[0] * layer.in_shape[1]

    def mvu_cycles(self, layer: Layer, config: Folded) -> int:
        """NF x SF cycles per vector, but no fewer than the beats it loads: the load buffer
        and the fold register are a double buffer (invariant: tile = nf * SF + sf)."""
        nf = math.ceil(layer.out_ch / config.pe)
        sf = self.synapse_folds(layer, config.simd)
        return max(nf * sf, self.beats_per_vector(layer)) * layer.out_shape[0] * layer.out_shape[1]

    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        if config is None:
            raise ValueError(f"layer {layer.name}: a {self.name} layer needs a folding (PE, SIMD) for its cycles")
        chain = [Unit("window", window_cycles(layer))] if self.has_window(layer) else []
        return chain + [Unit("mvu", self.mvu_cycles(layer, config))]


def pixel_values(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The values an input layer's datapath sees for 8-bit pixels ``x``: its
    ``pixel_codes`` table looked up (applied by the input stream in hardware),
    or the pixels themselves."""
    return x if layer.pixel_codes is None else layer.pixel_codes[x]


class _PixelDatapath(MatrixKind):
    """First layer: 8-bit pixels x fixed-point weights, acc = sum(w * pixel), bit = acc >= T.
    ``pixel`` is the layer's pixel code where it has a table (pixel_values)."""

    role = "input"
    datapath = "pixel"
    lane_bits = PIXEL_BITS
    thresholded = True
    binary_input = False
    prunable = True

    def patches(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        return super().patches(layer, pixel_values(layer, x))  # padding is value 0, after the table

    def accumulate(self, layer: Layer, vectors: np.ndarray) -> np.ndarray:
        w = layer.weights.reshape(layer.out_ch, -1).astype(np.float64)
        return (vectors.astype(np.float64) @ w.T).astype(np.int64)  # exact: |acc| < 2**53

    def lane_terms(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return w * x

    def accumulator_range(self, layer: Layer) -> tuple[int, int]:
        w = layer.weights.reshape(layer.out_ch, -1).astype(np.int64)
        top = (1 << PIXEL_BITS) - 1
        return int(np.minimum(w, 0).sum(1).min() * top), int(np.maximum(w, 0).sum(1).max() * top)

    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        # The input stream feeds the first layer one channel value per cycle.
        return [Unit("stream", stream_cycles(layer.in_shape))] + super().units(layer, config)


class _XnorDatapath(MatrixKind):
    """Binary layer: P = popcount(XNOR(w, x)) with -1 (bit 0) padding, bit = P >= T."""

    role = "binary"
    datapath = "xnor"
    thresholded = True
    prunable = True
    counts_binary_ops = True
    binary_weights = True
    weight_element_bits_fixed = 1

    def accumulate(self, layer: Layer, vectors: np.ndarray) -> np.ndarray:
        return xnor_popcount(vectors, layer.weights.reshape(layer.out_ch, -1))

    def lane_terms(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (w == x).astype(np.int64)  # a match: XNOR of two bits

    def accumulator_range(self, layer: Layer) -> tuple[int, int]:
        return 0, self.fan_in(layer)

    def threshold_bounds(self, layer: Layer) -> tuple[int, int] | None:
        return 0, self.fan_in(layer) + 1


class _ScoreDatapath(MatrixKind):
    """Last layer: bits -> integer scores, sum(w * (2b - 1)) with -1 padding."""

    role = "output"
    datapath = "score"
    binary_output = False

    def accumulate(self, layer: Layer, vectors: np.ndarray) -> np.ndarray:
        w = layer.weights.reshape(layer.out_ch, -1).astype(np.float64)
        return ((2.0 * vectors - 1.0) @ w.T).astype(np.int64)

    def lane_terms(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return w * (2 * x - 1)

    def accumulator_range(self, layer: Layer) -> tuple[int, int]:
        w = np.abs(layer.weights.reshape(layer.out_ch, -1).astype(np.int64)).sum(1)
        return int(-w.max()), int(w.max())


def nm_kept(k: int, n: int, m: int) -> int:
    """Ones of an N:M row of k elements: N per full block, min(N, length) in a last partial one
    (what the training quantiser keeps; the IR allows fewer in the partial block)."""
    return n * (k // m) + min(n, k % m)


def nm_blocks(rows: np.ndarray, m: int) -> np.ndarray:
    """Rows (O, K) -> (O, ceil(K / M), M), zero-padded past K: the N:M blocks in window order."""
    o, k = rows.shape
    padded = np.zeros((o, -(-k // m) * m), rows.dtype)
    padded[:, :k] = rows
    return padded.reshape(o, -1, m)


class _SparseDatapath(MatrixKind):
    """Sparse binary layer (SBNN, docs/DESIGN.md "Sparse binary layers"): 0/1 weights b with
    N:M structure (``Layer.nm``), P = popcount(x AND b) in [0, ones of the row], bit =
    (acc >= T) XOR invert (``Layer.invert``, per channel), acc = P.
    A padding input (bit 0) adds 0. The unit stores per kept weight its index in its block of
    M and steps through N x ceil(K / M) slots per row, so its cycles scale with the ones.

    A ``centred`` layer's weights are b - N/M (the {alpha, beta} domain of "Sparsifying Binary
    Networks" with alpha = -N/M, beta = 1 - N/M: the mean weight of a full row is 0). With
    S = popcount of the whole window (padding bits 0), M times its +-1 sum is M(2P - ones) -
    N(2S - K) = 2(M P - N S) + N K - M ones, so acc = M P - N S decides alone (the rest is
    the row's constant, which the threshold absorbs): exact integers, no per-channel scale.
    In hardware a count unit appends each input pixel's ones count once, and the matrix
    unit sums a window's counts for S (docs/DESIGN.md "Sparse binary layers")."""

    role = "binary"
    datapath = "sparse"
    uncalibrated_like = "xnor"  # it shares the XNOR unit's fold register, memories and popcount tree
    thresholded = True
    prunable = True
    counts_binary_ops = True
    binary_weights = True
    sparse = True

    def weight_bits(self, layer: Layer) -> int:
        """A packed element is a kept weight's index within its block: ceil(log2 M) bits."""
        return max(1, (layer.nm[1] - 1).bit_length())

    def count_bits(self, layer: Layer) -> int:
        """A centred layer's pixels carry their ones count, 0 .. the pixel's channels."""
        return unsigned_bits(self.window_channels(layer)) if layer.centred else 0

    def counts_per_vector(self, layer: Layer) -> int:
        """Pixel counts the matrix unit sums for one window's S: k x k, or a dense layer's every pixel."""
        return layer.kernel**2 if self.spatial else self.beats_per_vector(layer)

    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        # a centred layer's count unit takes one pixel a cycle, ahead of the window unit
        count = [Unit("count", layer.in_shape[0] * layer.in_shape[1])] if layer.centred else []
        return count + super().units(layer, config)

    def synapse_slots(self, layer: Layer) -> int:
        n, m = layer.nm
        return n * math.ceil(self.fan_in(layer) / m)

    def simd_step(self, layer: Layer) -> int:
        return layer.nm[0]

    def fold_elements(self, layer: Layer, simd: int) -> int:
        n, m = layer.nm
        return simd // n * m

    def macs(self, layer: Layer) -> int:
        """Terms of the N:M structure's ones (N per block, min(N, length) in a partial one),
        the work the unit does: not K per row."""
        return layer.out_shape[0] * layer.out_shape[1] * layer.out_ch * nm_kept(self.fan_in(layer), *layer.nm)

    def accumulate(self, layer: Layer, vectors: np.ndarray) -> np.ndarray:
        p = and_popcount(vectors, layer.weights.reshape(layer.out_ch, -1))
        if not layer.centred:
            return p
        n, m = layer.nm
        return m * p - n * vectors.sum(1, dtype=np.int64)[:, None]

    def lane_terms(self, w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (w & x).astype(np.int64)  # a kept weight (1) passes its selected input bit

    def accumulator_range(self, layer: Layer) -> tuple[int, int]:
        ones = layer.weights.reshape(layer.out_ch, -1).sum(1, dtype=np.int64)
        if not layer.centred:
            return 0, int(ones.max(initial=0))
        # M P - N S with P <= ones and the K - ones others in S: lowest at P = 0, S = K - ones,
        # highest at P = S = ones
        n, m = layer.nm
        return int((-n * (self.fan_in(layer) - ones)).min(initial=0)), int(((m - n) * ones).max(initial=0))

    def threshold_bounds(self, layer: Layer) -> tuple[int, int] | None:
        k = self.fan_in(layer)
        if not layer.centred:
            return 0, k + 1
        n, m = layer.nm
        return -n * k, (m - n) * k + 1

    def output_bits(self, layer: Layer, acc: np.ndarray) -> np.ndarray:
        """(acc >= T) XOR invert: a channel of negative BatchNorm scale fires when P < T."""
        bits = super().output_bits(layer, acc)
        return bits if layer.invert is None else bits ^ layer.invert


class InputConv(_PixelDatapath):
    name = "input_conv"


def bit_planes(pixels: np.ndarray, planes: tuple[int, ...]) -> np.ndarray:
    """(N, H, W, C) uint8 pixels -> (N, H, W, C x P) bits, channel c's plane planes[j]
    at c x P + j: each pixel channel becomes P binary channels (CBNN)."""
    bits = [(pixels >> b) & 1 for b in planes]
    return np.stack(bits, axis=-1).reshape(*pixels.shape[:-1], -1).astype(np.uint8)


class BitplaneConv(_XnorDatapath):
    """First layer on the kept bit planes of the pixels (CBNN, docs/DESIGN.md, "Bit-plane
    input"): pixel bit b is a binary input (1 = +1, 0 = -1), so the layer is an XNOR-popcount
    convolution over C x P binary channels, padded with pixel 0 (every plane -1). The
    hardware gathers whole pixels, keeps the planes by wiring, and windows C x P bits."""

    name = "bitplane_conv"
    role = "input"
    binary_input = False
    bit_planes = True

    def window_channels(self, layer: Layer) -> int:
        return layer.in_ch * len(layer.planes)

    def patches(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        return windows(bit_planes(x, layer.planes), layer.kernel, layer.stride, layer.pad, self.window_pad_value)

    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        return [Unit("stream", stream_cycles(layer.in_shape))] + super().units(layer, config)


class InputDense(_PixelDatapath):
    name = "input_dense"
    spatial = False


class BinaryConv(_XnorDatapath):
    name = "binary_conv"


class BinaryDense(_XnorDatapath):
    name = "binary_dense"
    spatial = False


class SparseConv(_SparseDatapath):
    name = "sparse_conv"


class SparseDense(_SparseDatapath):
    name = "sparse_dense"
    spatial = False


class OutputConv(_ScoreDatapath):
    name = "output_conv"


class OutputDense(_ScoreDatapath):
    name = "output_dense"
    spatial = False


class MaxPool(LayerKind):
    """Max-pool on bits is OR over the window; padding is -1 (bit 0), neutral for max.
    Hardware: a window unit, then an OR of the window's pixels, one window per cycle."""

    name = "maxpool"
    role = "binary"

    def out_channels(self, layer: Layer) -> int:
        return layer.in_ch

    def has_window(self, layer: Layer) -> bool:
        return True

    def execute(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        k, s, p = layer.kernel, layer.stride, layer.pad
        if p:
            x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=0)
        v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
        return v.max(axis=(-1, -2))

    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        return [Unit("window", window_cycles(layer)), Unit("pool", layer.out_shape[0] * layer.out_shape[1])]


class GlobalSum(LayerKind):
    """Sums the class scores over the map (a NIN head): one pixel per cycle."""

    name = "global_sum"
    role = "reduce"
    spatial = False
    binary_input = False
    binary_output = False

    def out_shape(self, layer: Layer) -> tuple[int, int, int]:
        return (1, 1, layer.in_ch)

    def execute(self, layer: Layer, x: np.ndarray) -> np.ndarray:
        return x.astype(np.int64).sum(axis=(1, 2), keepdims=True)

    def units(self, layer: Layer, config: Folded | None) -> list[Unit]:
        return [Unit("sum", layer.in_shape[0] * layer.in_shape[1])]


KINDS: dict[str, LayerKind] = {k.name: k for k in (InputConv(), InputDense(), BitplaneConv(), BinaryConv(), BinaryDense(),
                                                      SparseConv(), SparseDense(), MaxPool(), OutputConv(), OutputDense(),
                                                      GlobalSum())}
ROLES = ("input", "binary", "output", "reduce")  # the order in which a network's layers may appear


def of(layer: Layer) -> LayerKind:
    """The kind object of a layer."""
    return get(layer.kind)


def layer_cycles(net: Network, folding: Mapping[str, Folded]) -> dict[str, int]:
    """Cycles per frame of every layer (its slowest unit), by layer name."""
    return {l.name: of(l).cycles(l, folding.get(l.name)) for l in net.layers}


def frame_cycles(net: Network, folding: Mapping[str, Folded]) -> int:
    """Cycles per frame of the whole pipeline: its slowest unit, the result unit included.
    Every report of flipflow (hls, fold, sim, bench, accelerator.json) states this figure."""
    return max([*layer_cycles(net, folding).values(), result_cycles(len(net.classes))])


def get(name: str) -> LayerKind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown layer kind {name!r}; supported: {', '.join(KINDS)}") from None


def matrix(layer: Layer) -> MatrixKind:
    """The matrix-vector kind of a layer that has weights."""
    kind = of(layer)
    if not isinstance(kind, MatrixKind):
        raise ValueError(f"layer {layer.name}: {layer.kind} has no matrix-vector unit")
    return kind


def sparse_of(name: str) -> str | None:
    """The sparse kind an XNOR binary kind becomes under N:M sparsity (same spatial form), or
    None for a kind that stays as it is (the input, output and reduce kinds, max-pool)."""
    kind = get(name)
    if kind.role != "binary" or getattr(kind, "datapath", None) != "xnor":
        return None
    return next(n for n, k in KINDS.items() if k.sparse and k.spatial == kind.spatial)


def names(role: str) -> tuple[str, ...]:
    """The kinds of one role, e.g. names("input") for the kinds a network may start with."""
    return tuple(name for name, k in KINDS.items() if k.role == role)
