"""One cycle model: the cycles/frame that `flipflow hls` reports (report.json,
accelerator.json) equal the RTL simulation of the same design, at the
folding `flipflow hls` uses by default."""

from __future__ import annotations

import pytest

import rtl_nets
from flipflow import ir, kinds
from flipflow.generator import folding as fold
from flipflow.sim.rtl import RtlSimulator


def _simulated_cycles(net: ir.Network, images, tmp_path, folding: fold.Folding | None = None) -> float:
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
