"""generator/pack.py: the folded MVU on packed, padded arrays equals the golden model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipflow import kinds
from flipflow.generator import pack
from flipflow.generator.folding import FoldingError, LayerConfig
from flipflow.ir import Layer
from flipflow import golden
from rtl_nets import nm_mask, random_layer


def layer_inputs(rng: np.random.Generator, layer: Layer, n: int) -> np.ndarray:
    h, w, c = layer.in_shape
    if layer.kind in kinds.names("input"):
        return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    return rng.integers(0, 2, (n, h, w, c), dtype=np.uint8)


def window_vectors(layer: Layer, x: np.ndarray) -> np.ndarray:
    return kinds.matrix(layer).patches(layer, x).reshape(-1, layer.fan_in)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from([n for n, k in kinds.KINDS.items() if k.has_weights]),
    h=st.integers(1, 6),
    c_in=st.integers(1, 13),
    c_out=st.integers(1, 11),
    k=st.sampled_from([1, 2, 3]),
    s=st.integers(1, 2),
    pe=st.integers(1, 11),
    simd=st.integers(1, 40),
    seed=st.integers(0, 2**31),
)
def test_folded_mvu_equals_golden(kind, h, c_in, c_out, k, s, pe, simd, seed):
    rng = np.random.default_rng(seed)
    k = min(k, h)
    p = int(rng.integers(0, k))
    layer = random_layer(rng, f"{kind}_t", kind, (h, h, c_in), c_out, k, s, p, wide_thresholds=True)
    kind = kinds.matrix(layer)
    step = kind.simd_step(layer)  # a sparse kind's SIMD: whole blocks (a multiple of N)
    folding = LayerConfig(min(pe, c_out), step * max(1, min(simd, kind.synapse_slots(layer)) // step))
    x = layer_inputs(rng, layer, 3)
    expected = golden.run_layer(layer, x).reshape(-1, c_out)
    got = pack.emulate(layer, folding, window_vectors(layer, x))
    np.testing.assert_array_equal(got, expected)


def test_layout_is_lsb_first_pe0_low():
    # 3 rows x 5 cols, PE=2, SIMD=2: NF=2, SF=3, a padded row and a padded column
    w = np.array([[1, 0, 0, 1, 1], [0, 1, 1, 0, 0], [1, 1, 0, 0, 1]], np.uint8)
    layer = Layer("fc", "binary_dense", (1, 1, 5), (1, 1, 3), weights=w, thresholds=np.array([1, 2, 3], np.int64))
    f = LayerConfig(pe=2, simd=2)
    g = pack.geometry(layer, f)
    assert (g.nf, g.sf, g.tiles, g.rows_padded, g.cols_padded) == (2, 3, 6, 4, 6)
    t = pack.tiles(layer, f)
    assert t[0].tolist() == [[1, 0], [0, 1]]  # tile (nf 0, sf 0): rows 0, 1, cols 0, 1
    assert t[2].tolist() == [[1, 1], [0, 1]]  # sf 2: col 4 then the pad column (weight 1)
    assert t[3].tolist() == [[1, 1], [1, 1]]  # nf 1: row 2, then the pad row (all 1)
    # word of tile 0: PE0 lanes (1, 0) in bits 0-1, PE1 lanes (0, 1) in bits 2-3
    assert pack.words(layer, f)[0] == 0b1001
    assert pack.simd_words(layer, f)[1][0] == 0b10
    assert pack.thresholds(layer, f).tolist() == [[1, 2], [3, 0]]


def test_fixed_point_words_are_twos_complement():
    w = np.array([[-1, 2], [3, -4]], np.int8)
    layer = Layer("in", "input_dense", (1, 1, 2), (1, 1, 2), weight_bits=4, weights=w,
                  thresholds=np.array([0, 0], np.int64))
    assert pack.words(layer, LayerConfig(2, 2)) == [0xF | 0x2 << 4 | 0x3 << 8 | 0xC << 12]


def test_thresholds_clamped_without_changing_outputs():
    rng = np.random.default_rng(1)
    layer = random_layer(rng, "input_conv_t", "input_conv", (4, 4, 1), 6, 3, 1, 1, wide_thresholds=True)
    layer.thresholds = np.array([-10**9, 10**9, 0, 5, -5, 10**6], np.int64)
    lo, hi = pack.accumulator_range(layer)
    t = pack.thresholds(layer, LayerConfig(3, 4))
    assert t.min() >= lo and t.max() <= hi + 1
    x = layer_inputs(rng, layer, 4)
    np.testing.assert_array_equal(pack.emulate(layer, LayerConfig(3, 4), window_vectors(layer, x)),
                                  golden.run_layer(layer, x).reshape(-1, 6))


@pytest.mark.parametrize("pe,simd", [(0, 1), (7, 1), (1, 0), (1, 10)])
def test_invalid_folding_names_the_layer(pe, simd):
    rng = np.random.default_rng(0)
    layer = random_layer(rng, "binary_dense_t", "binary_dense", (1, 1, 9), 6, wide_thresholds=True)
    with pytest.raises(FoldingError, match="binary_dense_t"):
        pack.geometry(layer, LayerConfig(pe, simd))


def test_bit_widths():
    assert pack.signed_bits(-128, 127) == 8 and pack.signed_bits(-129, 0) == 9 and pack.signed_bits(0, 128) == 9
    assert pack.unsigned_bits(0) == 1 and pack.unsigned_bits(255) == 8 and pack.unsigned_bits(256) == 9


# -- sparse binary layers: N:M indices instead of the mask ---------------------------

def sparse_layer(rng: np.random.Generator, out: int, k: int, n: int, m: int) -> Layer:
    layer = Layer("sp", "sparse_dense", (1, 1, k), (1, 1, out), nm=(n, m), weights=nm_mask(rng, out, k, n, m))
    layer.thresholds = rng.integers(0, kinds.nm_kept(k, n, m) + 2, out).astype(np.int64)
    layer.invert = rng.integers(0, 2, out, dtype=np.uint8)
    return layer


@settings(max_examples=80, deadline=None)
@given(out=st.integers(1, 9), k=st.integers(1, 150), log_m=st.integers(1, 6), n_share=st.floats(0, 1),
       pe=st.integers(1, 9), blocks=st.integers(1, 12), centred=st.booleans(), seed=st.integers(0, 2**31))
def test_sparse_unit_on_indices_equals_golden(out, k, log_m, n_share, pe, blocks, centred, seed):
    """Partial last blocks (K not a multiple of M, fewer ones there), every M to 64, SIMD of
    whole blocks with pad slots, pad rows, {0, 1} and centred (M P - N S, signed):
    mux -> AND -> popcount per fold equals golden."""
    rng = np.random.default_rng(seed)
    m = 1 << log_m
    n = 1 + int(n_share * (m - 1))
    layer = sparse_layer(rng, out, k, n, m)
    layer.centred = centred
    kind = kinds.matrix(layer)
    if centred:
        lo, hi = kind.accumulator_range(layer)
        layer.thresholds = rng.integers(lo, hi + 2, out).astype(np.int64)
    slots = kind.synapse_slots(layer)
    folding = LayerConfig(min(pe, out), n * min(blocks, slots // n))
    x = rng.integers(0, 2, (5, k), dtype=np.uint8)
    expected = golden.run_layer(layer, x.reshape(5, 1, 1, k)).reshape(5, out)
    np.testing.assert_array_equal(pack.emulate(layer, folding, x), expected)
    acc = kind.accumulate(layer, x)  # the accumulators, against a threshold per value
    for t in range(int(acc.min()) - 1, int(acc.max()) + 2):
        layer.thresholds = np.full(out, t, np.int64)
        np.testing.assert_array_equal(pack.emulate(layer, folding, x), (acc >= t) ^ layer.invert)


def test_sparse_layout():
    # K = 10, 2:4: blocks [0..3], [4..7], [8, 9 | pad 10, 11]; slots = 2 x 3 = 6; IB = 2 bits
    w = np.array([[0, 1, 1, 0, 1, 0, 0, 1, 0, 1],
                  [1, 1, 0, 0, 0, 0, 1, 1, 0, 0]], np.uint8)
    layer = Layer("sp", "sparse_dense", (1, 1, 10), (1, 1, 2), nm=(2, 4), weights=w, thresholds=np.array([1, 2], np.int64))
    assert pack.sparse_indices(layer).tolist() == [[1, 2, 0, 3, 1, 2], [0, 1, 2, 3, 2, 2]]  # spare slots: pad position 2
    f = LayerConfig(pe=1, simd=4)  # SF = ceil(6 / 4) = 2, the second fold half pad slots (block 3: all padding)
    g = pack.geometry(layer, f)
    assert (g.cols, g.nf, g.sf, g.tiles) == (6, 2, 2, 4) and pack.elem_bits(layer) == 2
    assert pack.tiles(layer, f)[:, 0].tolist() == [[1, 2, 0, 3], [1, 2, 0, 0], [0, 1, 2, 3], [2, 2, 0, 0]]
    assert pack.words(layer, f)[0] == 1 | 2 << 2 | 0 << 4 | 3 << 6  # lane 0 in the LSBs
    two = LayerConfig(pe=2, simd=2)  # PE 1's lanes above PE 0's
    assert pack.words(layer, two)[0] == 1 | 2 << 2 | 0 << 4 | 1 << 6
    x = np.array([[0, 1, 0, 0, 1, 0, 0, 0, 0, 1]], np.uint8)  # row 0 keeps 1, 2, 4, 7, 9: P = 3; row 1: P = 1
    np.testing.assert_array_equal(pack.emulate(layer, f, x), [[1, 0]])
    layer.invert = np.array([0, 1], np.uint8)  # row 1 fires when P < 2
    assert pack.inverts(layer, f).tolist() == [[0], [1]] and pack.inverts(layer, two).tolist() == [[0, 1]]
    np.testing.assert_array_equal(pack.emulate(layer, f, x), [[1, 1]])
    assert kinds.of(layer).units(layer, f)[0].cycles == 2 * 2  # NF x SF, not NF x ceil(K / SIMD)


@pytest.mark.parametrize("simd", [1, 3, 8])
def test_sparse_simd_must_be_whole_blocks(simd):
    layer = sparse_layer(np.random.default_rng(0), 3, 10, 2, 4)
    with pytest.raises(FoldingError, match=r"sp: SIMD=\d+ must be a multiple of N=2 in \[2, 6\]"):
        pack.geometry(layer, LayerConfig(1, simd))
