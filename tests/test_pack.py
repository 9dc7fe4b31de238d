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
from rtl_nets import random_layer


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
    folding = LayerConfig(min(pe, c_out), min(simd, layer.fan_in))
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
