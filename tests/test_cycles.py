"""One cycle model: the cycles/frame that `flipflow hls` reports (report.json,
accelerator.json) equal the RTL simulation of the same design, at the
folding `flipflow hls` uses by default."""

from __future__ import annotations

import pytest

import rtl_nets
from flipflow import ir, kinds
from flipflow.generator import folding as fold
from flipflow.generator.folding import Folding
from flipflow.sim.rtl import RtlSimulator


def _simulated_cycles(net: ir.Network, images, tmp_path, folding: Folding | None = None) -> float:
    sim = RtlSimulator(net, folding or fold.default(net), tmp_path / "rtl")
    run = sim.run(images[:4])
    assert sim.compare(images[:4], run).mismatches == 0
    return run.cycles_per_frame


def test_tfc_reports_its_input_stream_rate(fashion_test_images, tmp_path):
    net = ir.load_model("tfc")
    reported = kinds.frame_cycles(net, fold.default(net))
    assert reported == 28 * 28  # one byte per cycle: the input stream is the bottleneck
    assert _simulated_cycles(net, fashion_test_images, tmp_path) == reported


def test_small_conv_net_reports_simulated_cycles(digits, tmp_path):
    images = digits.test.images[:4]
    net = rtl_nets.build("conv", images, [dict(kind="input_conv", out=6, k=3, p=1), dict(kind="binary_conv", out=10, k=3, p=1),
                                          dict(kind="maxpool", k=2, s=2), dict(kind="output_conv", k=3),
                                          dict(kind="global_sum")], classes=10, seed=3)
    reported = kinds.frame_cycles(net, fold.default(net))
    assert _simulated_cycles(net, images, tmp_path) == reported


def test_valid_convs_report_simulated_cycles(tmp_path):
    """Unpadded 3x3 convs, as BNN-PYNQ's CNV has: at a frame's end the window unit of the
    second conv holds the last output row's 3 input rows and the next frame's first row
    needs 3 more. With K + S = 4 line-buffer rows the first conv could not write them
    ahead, so the second conv's matrix-vector unit (the bottleneck, 864 cycles) waited
    every frame for 2 rows to be computed (949 simulated; CNV: 13,709 against 12,800).
    Now 6 rows (kinds.window_rows)."""
    net, folding, images = rtl_nets.valid_convs_case()
    reported = kinds.frame_cycles(net, folding)
    assert reported == kinds.layer_cycles(net, folding)["binary_conv1"] == 864  # its producer takes 768
    assert _simulated_cycles(net, images, tmp_path, folding) == reported


@pytest.mark.parametrize("h, k, s, p, rows", [
    (8, 3, 1, 0, 6),    # valid 3x3: 3 rows at a frame's end + 3 of the next frame's first output row
    (8, 3, 1, 1, 4),    # same 3x3: 2 + 2 = K + S
    (28, 2, 2, 0, 4),   # 2x2/2 pool: 2 + 2
    (5, 3, 1, 0, 6),    # a map barely larger than the kernel
    (3, 3, 1, 0, 6),    # ... and as large: two whole frames
    (28, 5, 1, 2, 8),   # the zoo nin's first layer: pow2(K + S) as before (3 + 3 fit)
    (28, 3, 2, 1, 8),   # the zoo nin's pools
    (9, 2, 2, 0, 5),    # an odd map under a 2x2/2 pool: its unread last row takes a bank too (3 + 2)
    (1, 3, 1, 2, 4),    # a 1x1 map padded by 2: 1 + 1
])
def test_window_rows_cover_a_frame_boundary(h, k, s, p, rows):
    layer = ir.Layer("w", "maxpool", (h, h, 1), (1, 1, 1), kernel=k, stride=s, pad=p)
    layer.out_shape = ir.expected_out_shape(layer)
    assert kinds.window_rows(layer) == rows


def test_sparse_layer_cycles_scale_with_its_slots(digits, tmp_path):
    """A 2:8 sparse conv as the bottleneck runs NF x ceil(slots / SIMD) cycles per output
    pixel (slots = 2 x ceil(54 / 8) = 14 per row, not K = 54), as simulated."""
    images = digits.test.images[:4]
    net = rtl_nets.build("sparse", images, [dict(kind="input_conv", out=6, k=3, p=1),
                                            dict(kind="sparse_conv", out=10, k=3, p=1, nm=(2, 8)),
                                            dict(kind="maxpool", k=2, s=2), dict(kind="output_conv", k=3),
                                            dict(kind="global_sum")], classes=10, seed=3)
    sparse = net.layers[1]
    folding = {**fold.default(net), sparse.name: fold.LayerConfig(2, 2)}
    reported = kinds.frame_cycles(net, folding)
    assert reported == kinds.layer_cycles(net, folding)[sparse.name] == 5 * 7 * 8 * 8
    assert _simulated_cycles(net, images, tmp_path, folding) == reported


@pytest.mark.slow
def test_nin_pruned_reports_simulated_cycles(fashion_test_images, tmp_path):
    net = ir.load_model("nin_pruned")
    reported = kinds.frame_cycles(net, fold.default(net))
    assert _simulated_cycles(net, fashion_test_images, tmp_path) == reported
