"""The golden model's primitives follow docs/DESIGN.md's bit conventions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flipflow import ir
from flipflow import golden


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.integers(1, 9), st.integers(1, 200), st.integers(0, 2**31))
def test_xnor_popcount_matches_packed_words(m, o, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (m, k), dtype=np.uint8)
    w = rng.integers(0, 2, (o, k), dtype=np.uint8)
    direct = (x[:, None, :] == w[None, :, :]).sum(-1)
    assert np.array_equal(golden.xnor_popcount(x, w), direct)
    assert np.array_equal(golden.xnor_popcount_packed(x, w), direct)


def test_pack_bits_is_lsb_first():
    bits = np.zeros((1, 70), np.uint8)
    bits[0, [0, 3, 64, 69]] = 1
    words = golden.pack_bits(bits)
    assert words.shape == (1, 2)
    assert words[0, 0] == 0b1001 and words[0, 1] == 0b100001


def test_windows_order_is_ky_kx_channel():
    x = np.arange(3 * 3 * 2).reshape(1, 3, 3, 2)
    win = golden.windows(x, 2, 1, 0, 0)
    assert win.shape == (1, 2, 2, 8)
    assert list(win[0, 0, 0]) == [x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1],
                                  x[0, 1, 0, 0], x[0, 1, 0, 1], x[0, 1, 1, 0], x[0, 1, 1, 1]]


def _layer(kind, in_shape, out_shape, **kw) -> ir.Layer:
    return ir.Layer("l", kind, in_shape, out_shape, **kw)


def test_maxpool_is_or_with_minus_one_padding():
    x = np.zeros((1, 3, 3, 1), np.uint8)
    x[0, 0, 0, 0] = 1
    out = golden.run_layer(_layer("maxpool", (3, 3, 1), (2, 2, 1), kernel=3, stride=2, pad=1), x)
    assert out[0, :, :, 0].tolist() == [[1, 0], [0, 0]]  # padding (bit 0) never sets a bit


def test_binary_conv_pads_with_minus_one():
    # 1x1 input, 3x3 kernel, pad 1: eight padded positions are -1 (bit 0).
    layer = _layer("binary_conv", (1, 1, 1), (1, 1, 1), kernel=3, pad=1)
    layer.weights = np.zeros((1, 3, 3, 1), np.uint8)  # all -1: padding positions match (XNOR = 1)
    layer.thresholds = np.array([9], np.int64)
    assert golden.run_layer(layer, np.zeros((1, 1, 1, 1), np.uint8))[0, 0, 0, 0] == 1
    assert golden.run_layer(layer, np.ones((1, 1, 1, 1), np.uint8))[0, 0, 0, 0] == 0  # 8 matches < 9


def test_output_layer_scores_are_bipolar_sums():
    layer = _layer("output_dense", (1, 1, 3), (1, 1, 2), weight_bits=8, weight_scale=0.5)
    layer.weights = np.array([[3, -2, 5], [-1, -1, -1]], np.int8)
    x = np.array([1, 0, 1], np.uint8).reshape(1, 1, 1, 3)  # +1, -1, +1
    assert golden.run_layer(layer, x).reshape(-1).tolist() == [3 + 2 + 5, -1 + 1 - 1]


def test_predict_lowest_index_wins_ties():
    """A one-pixel net whose class scores tie: bit = pixel >= 128, score_o = w_o * (+-1)."""
    inp = _layer("input_dense", (1, 1, 1), (1, 1, 1), weight_bits=8, weight_scale=1.0,
                 weights=np.array([[1]], np.int8), thresholds=np.array([128], np.int64))
    out = ir.Layer("o", "output_dense", (1, 1, 1), (1, 1, 4), weight_bits=8, weight_scale=1.0,
                   weights=np.array([[-2], [5], [-2], [5]], np.int8))
    inp.name = "i"
    net = ir.Network("ties", (1, 1, 1), ["a", "b", "c", "d"], "digits", [inp, out])
    images = np.array([200, 10], np.uint8).reshape(2, 1, 1, 1)
    assert golden.scores(net, images).tolist() == [[-2, 5, -2, 5], [2, -5, 2, -5]]
    assert golden.predict(net, images).tolist() == [1, 0]


def test_wrong_image_shape_or_dtype_is_named(tmp_path):
    from flipflow.training.blocks import Arch, LayerSpec
    from flipflow.training.export import export
    from flipflow.training.synthetic import calibrated_model

    arch = Arch("tiny", (8, 8, 1), [str(i) for i in range(10)], [LayerSpec("input_dense", 5), LayerSpec("output_dense", 10)])
    net = export(calibrated_model(arch, np.random.default_rng(0).integers(0, 255, (16, 8, 8, 1), dtype=np.uint8)), "tiny", "digits")
    with pytest.raises(golden.ImageShapeError, match=r"\(N, 8, 8, 1\)"):
        golden.scores(net, np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(golden.ImageShapeError, match="uint8"):
        golden.scores(net, np.zeros((2, 8, 8, 1), np.float32))
    assert golden.scores(net, np.zeros((8, 8), np.uint8)).shape == (1, 10)  # one grey image is accepted


def test_pixel_codes_map_pixels_before_the_input_layer():
    """An input layer with pixel_codes computes on codes[pixel]; padding stays value 0."""
    from rtl_nets import pixel_codes_case

    net, _, images = pixel_codes_case(3)
    codes = net.layers[0].pixel_codes
    plain = ir.Network(net.name, net.input_shape, net.classes, net.dataset, [copy.copy(l) for l in net.layers])
    plain.layers[0].pixel_codes = None
    np.testing.assert_array_equal(golden.scores(net, images), golden.scores(plain, codes[images]))
    assert not np.array_equal(golden.scores(net, images), golden.scores(plain, images))
