"""The dataflow model of the generated HLS top (generator/hls_model.py): hand-counted
loop trip counts on a small net, and the model within 2% of kinds.frame_cycles (the
RTL backend's cycles, equal to its simulation: tests/test_cycles.py) for the zoo."""

from __future__ import annotations

import numpy as np
import pytest

from flipflow import ir, kinds
from flipflow.generator import devices
from flipflow.generator import folding as fold
from flipflow.generator import hls_model
from flipflow.generator.folding import LayerConfig
from flipflow.ir import Network
import rtl_nets
from rtl_nets import random_layer


def _small() -> tuple[Network, dict[str, LayerConfig]]:
    rng = np.random.default_rng(0)
    l0 = random_layer(rng, "conv", "input_conv", (6, 6, 2), 5, 3, 1, 1)
    l1 = random_layer(rng, "pool", "maxpool", l0.out_shape, 0, 2, 2, 0)
    l2 = random_layer(rng, "fc", "binary_dense", l1.out_shape, 7)
    l3 = random_layer(rng, "out", "output_dense", l2.out_shape, 3)
    net = Network("small", (6, 6, 2), ["a", "b", "c"], "random", [l0, l1, l2, l3])
    return net, {"conv": LayerConfig(2, 6), "fc": LayerConfig(7, 6), "out": LayerConfig(3, 7)}


def test_small_net_trip_counts_by_hand():
    net, folding = _small()
    procs = [(p.layer, p.kernel, p.cycles) for p in hls_model.processes(net, folding)]
    assert procs == [
        ("", "read_pixels", 6 * 6 * 2),  # one byte beat per iteration
        ("conv", "sliding_window", 6 * 8),  # max(6 * 6 pixels, 6 rows x (6 - 1) * 1 + 3 columns)
        ("conv", "window_to_simd", 36 * 3),  # SF = ceil(3 * 3 * 2 / 6) words per window
        ("conv", "matrix_vector_unit", 36 * 3 * 3),  # NF = ceil(5 / 2) x SF = 3 per window
        ("pool", "sliding_window", 36),  # max(6 * 6, 3 x (3 - 1) * 2 + 2)
        ("pool", "window_or", 9),
        # 9 pixels of 5 bits into SF = ceil(45 / 6) = 8 words: 9 reads have written 7 words,
        # the last 3 bits take one more iteration
        ("fc", "vector_to_simd", 10),
        ("fc", "matrix_vector_unit", 1 * 8),
        ("out", "vector_to_simd", 1),
        ("out", "matrix_vector_unit", 1),
        ("", "write_scores", 3 + 1),
    ]
    assert hls_model.frame_cycles(net, folding) == 324 == kinds.frame_cycles(net, folding)


def test_sparse_trip_counts_by_hand():
    """A sparse unit's width converter writes fold words of SIMD / N blocks of M elements,
    SF = ceil(slots / SIMD) per vector, and the unit steps NF x SF."""
    images = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 2), dtype=np.uint8)
    net = rtl_nets.build("sparse", images, [{"kind": "input_conv", "out": 5, "k": 3, "p": 1},
                                            {"kind": "maxpool", "k": 2, "s": 2},
                                            {"kind": "sparse_dense", "out": 7, "nm": (1, 4)}, {"kind": "output_dense"}], 3, 0)
    folding = {"input_conv0": LayerConfig(5, 18), "sparse_dense2": LayerConfig(3, 3), "output_dense3": LayerConfig(3, 7)}
    procs = {(p.layer, p.kernel): p.cycles for p in hls_model.processes(net, folding)}
    # K = 3 x 3 x 5 = 45: 12 blocks of 4 (the last partial), 12 slots, SF = 4 words of 3 blocks (12 elements);
    # 9 reads of 5 elements have written floor(40 / 12) + 1 = 4 words
    assert procs["sparse_dense2", "vector_to_simd"] == 9
    assert procs["sparse_dense2", "matrix_vector_unit"] == 3 * 4 == kinds.layer_cycles(net, folding)["sparse_dense2"]


@pytest.mark.parametrize("model, target_fps", [(m, t) for m in ("tfc", "nin", "nin_pruned") for t in (None, 1000.0)]
                         + [("nin_planes4", None)])
def test_zoo_hls_model_within_2_percent_of_rtl_cycles(model, target_fps):
    """At the default folding (what `flipflow fold` writes by default) and at the cheapest
    folding reaching a slow target rate (`flipflow fold --target-fps 1000`)."""
    net = ir.load_model(model)
    folding = fold.optimize(net, devices.budget().as_device(), target_fps=target_fps).folding
    rtl = kinds.frame_cycles(net, folding)
    assert hls_model.frame_cycles(net, folding) == pytest.approx(rtl, rel=0.02)
