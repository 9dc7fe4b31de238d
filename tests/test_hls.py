"""HLS generator: rendered C++ compiled with g++ (C simulation) equals the golden model,
layer by layer on random shapes and foldings, and end to end on real test images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from flipflow import cli, ir
from flipflow.generator import hls
from flipflow.host import stream
from flipflow.generator.folding import FoldingError, LayerConfig
from flipflow.ir import Network
from flipflow import golden
from flipflow.generator.folding import default as default_folding
import rtl_nets
from rtl_nets import knife_edge_input_case, networks, random_layer


def _csim_matches_golden(net: Network, folding, images: np.ndarray, project: Path, fast: bool = True) -> hls.CsimResult:
    p = hls.render(net, folding, project)
    exe = hls.compile_csim(project, fast_popcount=fast)
    expected = stream.pack_output(golden.scores(net, images))
    result = hls.run_csim(exe, p, images, expected, dump=True)
    reference = golden.run_layers(net, images)
    for l in net.layers:
        np.testing.assert_array_equal(result.layers[l.name], reference[l.name], err_msg=f"layer {l.name} ({l.kind})")
    np.testing.assert_array_equal(result.words, expected)
    return result


# No shrinking: every example costs a g++ build (~30 s); a failure prints its network and folding.
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=networks())
def test_random_layers_bit_exact_per_layer(case, tmp_path_factory):
    """One g++ build per random network; every layer's output stream is compared.

    Built without FLIPFLOW_FAST_CSIM, i.e. with the synthesizable popcount loop;
    the other tests cover the fast C-simulation popcount.
    """
    net, folding = case
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, *net.input_shape), dtype=np.uint8)
    _csim_matches_golden(net, folding, images, tmp_path_factory.mktemp("random_net"), fast=False)


def test_valid_convs_line_buffer_ring_bit_exact(tmp_path):
    """Unpadded 3x3 windows keep 6 line-buffer rows (a ring, not a power of two) in the
    HLS sliding_window as in the RTL: frames back to back stay bit-exact."""
    net, folding, images = rtl_nets.valid_convs_case(images=5)
    _csim_matches_golden(net, folding, images, tmp_path)


@pytest.mark.parametrize("pe", [4, 7])
def test_input_layer_packed_products_exact(pe, tmp_path):
    """Two PE rows share a DSP48 in the input layer: extreme weights (-128, 127)
    and pixels (0, 255), accumulators exactly on their thresholds, odd and even PE."""
    net, folding, images = knife_edge_input_case(pe)
    _csim_matches_golden(net, folding, images, tmp_path)


@pytest.mark.parametrize("thresholds", ["median", "spread"])
def test_early_exit_bit_exact_per_layer(thresholds, tmp_path):
    """EARLY_EXIT in the HLS matrix-vector unit: neuron folds that end once decided
    (thresholds at the median: late decisions; spread over 0 .. K + 1: early ones) leave
    every layer's output equal to the golden model's, pad lanes and pad rows included."""
    from rtl_nets import build

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (8, 3, 3, 1), dtype=np.uint8)
    net = build("ee", images, [{"kind": "input_conv", "out": 11}, {"kind": "binary_conv", "out": 7},
                               {"kind": "binary_dense", "out": 9}, {"kind": "output_dense"}], 3, 3)
    if thresholds == "spread":
        for l in net.layers[1:3]:
            l.thresholds = rng.integers(0, l.fan_in + 2, l.out_ch)
    folding = {"input_conv0": LayerConfig(1, 1), "binary_conv1": LayerConfig(3, 2, early_exit=True),
               "binary_dense2": LayerConfig(2, 5, early_exit=True), "output_dense3": LayerConfig(1, 3)}
    _csim_matches_golden(net, folding, images, tmp_path)


@pytest.mark.parametrize("fast, centred", [(True, False), (False, False), (True, True)])
def test_sparse_layers_bit_exact_per_layer(fast, centred, tmp_path):
    """SparseDot (CentredSparseDot when ``centred``): a 2:8 conv behind a window (63-element
    windows: a partial last block) and a 1:4 dense layer behind the width converter, PE and
    SIMD not dividing the rows and slots; with the fast and the synthesizable popcount."""
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (6, 6, 6, 1), dtype=np.uint8)
    net = rtl_nets.build("sparse", images, [{"kind": "input_conv", "out": 7, "k": 3, "p": 1},
                                            {"kind": "sparse_conv", "out": 9, "k": 3, "p": 1, "nm": (2, 8), "centred": centred},
                                            {"kind": "maxpool", "k": 2, "s": 2},
                                            {"kind": "sparse_dense", "out": 11, "nm": (1, 4), "centred": centred},
                                            {"kind": "output_dense"}], 10, 4)
    assert all(l.centred == centred for l in net.layers if l.nm)
    folding = {"input_conv0": LayerConfig(7, 9), "sparse_conv1": LayerConfig(4, 6), "sparse_dense3": LayerConfig(3, 5),
               "output_dense4": LayerConfig(2, 11)}
    _csim_matches_golden(net, folding, images, tmp_path, fast=fast)


# -- a small real model ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_net(digits) -> Network:
    from flipflow.training import export, synthetic
    from flipflow.training.blocks import Arch, LayerSpec as L

    arch = Arch("small_digits", digits.input_shape, digits.classes, [
        L("input_conv", 13, 3, 1, 1), L("binary_conv", 11, 3, 1, 1), L("maxpool", 0, 3, 2, 1),
        L("binary_conv", 17, 1), L("binary_dense", 23), L("output_dense", 10)])
    model = synthetic.calibrated_model(arch, digits.train.images[:256], seed=1)
    return export.export(model, "small_digits", "digits")


# PE/SIMD per weighted layer, and the cycles per frame each unit needs at II = 1, by hand:
# ceil(out_ch / PE) * ceil(K / SIMD) * output pixels; the max-pool reads its 8x8 input once.
SMALL_FOLDING = {"00_input_conv": (13, 3), "01_binary_conv": (11, 39), "03_binary_conv": (17, 11),
                 "04_binary_dense": (1, 272), "05_output_dense": (10, 23)}
SMALL_CYCLES = [1 * 3 * 64, 1 * 3 * 64, 64, 1 * 1 * 16, 23 * 1 * 1, 1 * 1 * 1]


def test_small_model_cli_report_and_bit_exact(small_net, digits, tmp_path, capsys, monkeypatch):
    ir_path = small_net.save(tmp_path / "small.ir.npz")
    out = tmp_path / "build"
    (tmp_path / "folding.json").write_text(json.dumps({k: {"pe": p, "simd": s} for k, (p, s) in SMALL_FOLDING.items()}))
    # a vitis_hls on PATH must not start unless asked for (--vitis)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "vitis_hls").write_text(f"#!/bin/sh\ntouch {tmp_path / 'vitis_ran'}\n")
    (tmp_path / "bin" / "vitis_hls").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert cli.main(["hls", str(ir_path), "--out", str(out), "--images", "120", "--folding", str(tmp_path / "folding.json")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"] == {**report["csim"], "images": 120, "mismatches": 0}
    assert report["vitis_hls"] == "not run" and not (tmp_path / "vitis_ran").exists()
    assert report["accuracy"] == pytest.approx(golden.accuracy(small_net, digits.test.images, digits.test.labels))
    assert report["accuracy_images"] == len(digits.test)
    assert report["binary_ops"] == small_net.binary_ops
    assert [r["name"] for r in report["layers"]] == [l.name for l in small_net.layers]
    assert [r["cycles"] for r in report["layers"]] == SMALL_CYCLES
    assert report["cycles_per_frame_estimate"] == 192
    assert report["cycles_per_frame_hls_model"] == 192  # generator/hls_model.py, tests/test_hls_model.py
    assert report["fps_at_100mhz_estimate"] == pytest.approx(520_833.3, abs=0.1)
    from flipflow.generator import cost, devices

    modelled = cost.network_cost(small_net, {k: LayerConfig(p, s) for k, (p, s) in SMALL_FOLDING.items()}).total \
        + cost.result_unit(small_net)
    assert report["resources"] == pytest.approx(modelled.resources())
    budget = devices.budget()
    assert report["budget"]["limits"] == budget.limits() and report["budget"]["shell"]["name"] == "pynq-dma"
    assert report["fits"] is True
    assert report["utilisation_after_shell"] == pytest.approx(
        max((modelled.resources()[k] + s) / t for k, s, t in [("LUT", budget.shell.lut, 53_200), ("FF", budget.shell.ff, 106_400),
                                                               ("BRAM36", budget.shell.bram36, 140), ("DSP", 0, 220)]))
    assert ir.load(out / "model.ir.npz").name == "small_digits"
    assert (out / "folding.json").is_file()
    from flipflow.host import metadata

    meta = metadata.load_metadata(out / "accelerator.json")  # what the host driver reads
    assert meta.model_hash == metadata.model_hash(small_net) and meta.cycles_per_frame == report["cycles_per_frame_estimate"]
    project = out / "hls"
    top = (project / "flipflow_top.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in top and "s_axilite port=return" in top and "axis port=out_stream" in top
    # streams sized to the exact channels, weights named after the IR layers
    assert "hls::stream<ap_uint<13>> l_00_input_conv_out" in top
    assert "hls::stream<ap_uint<17>> l_03_binary_conv_out" in top
    # FIFO depths from the pipeline: one row of 8 windows; one vector of SF = 3 words
    assert "hls::stream<Window<9, ap_uint<13>>> windows" in top
    assert "#pragma HLS STREAM variable=windows depth=8" in top and "#pragma HLS STREAM variable=simd_words depth=3" in top
    assert "images *" not in top  # processes take plain variables
    assert (project / "weights" / "l_01_binary_conv.h").is_file()
    for script in ("build_hls.tcl", "build_bitstream.tcl"):
        text = (project / script).read_text()
        assert "xc7z020clg400-1" in text
    assert "add --vitis" in capsys.readouterr().out


@pytest.mark.slow
def test_nin_pruned_bit_exact_on_100_fashion_images(tmp_path):
    """The zoo's pruned NIN: a missing or corrupt zoo file fails this test."""
    net = ir.load_model("nin_pruned")
    ir_path = net.save(tmp_path / "nin_pruned.ir.npz")
    data = hls.build(ir_path, tmp_path / "build", csim_images=100)
    assert data["csim"]["images"] == 100 and data["csim"]["mismatches"] == 0
    assert [r["out_ch"] for r in data["layers"]] == [l.out_ch for l in net.layers]


# -- rejected before rendering -------------------------------------------------------


def _tiny(rng) -> Network:
    l0 = random_layer(rng, "conv0", "input_conv", (5, 5, 1), 7, 3, 1, 1)
    l1 = random_layer(rng, "fc1", "binary_dense", l0.out_shape, 9)
    l2 = random_layer(rng, "out", "output_dense", l1.out_shape, 3)
    return Network("tiny", (5, 5, 1), ["a", "b", "c"], "random", [l0, l1, l2])


@pytest.mark.parametrize("fold,match", [
    ({"fc1": LayerConfig(10, 1)}, r"layer fc1: PE=10"),
    ({"fc1": LayerConfig(1, 200)}, r"layer fc1: SIMD=200"),
    ({"nope": LayerConfig(1, 1)}, r"nope"),
])
def test_invalid_folding_rejected_naming_the_layer(fold, match, tmp_path):
    net = _tiny(np.random.default_rng(0))
    folding = {**default_folding(net), **fold}
    with pytest.raises(FoldingError, match=match):
        hls.render(net, folding, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_missing_layer_folding_rejected(tmp_path):
    net = _tiny(np.random.default_rng(0))
    folding = default_folding(net)
    del folding["out"]
    with pytest.raises(FoldingError, match="layer out: no folding"):
        hls.plan(net, folding)


def test_unsupported_layer_placement_rejected(tmp_path):
    rng = np.random.default_rng(0)
    l0 = random_layer(rng, "conv0", "input_conv", (4, 4, 1), 5, 3, 1, 1)
    l1 = random_layer(rng, "gsum", "global_sum", l0.out_shape, 5)
    l2 = random_layer(rng, "out", "output_dense", l1.out_shape, 3)
    net = Network("odd", (4, 4, 1), ["a", "b", "c"], "random", [l0, l1, l2])
    net.validate()  # the IR allows it; the templates do not
    with pytest.raises(hls.HLSError, match="layer gsum: global_sum"):
        hls.render(net, default_folding(net), tmp_path / "p")


def test_too_wide_word_rejected():
    rng = np.random.default_rng(0)
    l0 = random_layer(rng, "wide_in", "input_dense", (1, 1, 600), 4)
    l1 = random_layer(rng, "out", "output_dense", l0.out_shape, 2)
    net = Network("wide", (1, 1, 600), ["a", "b"], "random", [l0, l1])
    with pytest.raises(hls.HLSError, match="layer wide_in: .*4800 bits"):
        hls.plan(net, default_folding(net))


def test_cli_unknown_model_is_a_clean_error(capsys, tmp_path):
    assert cli.main(["hls", "no_such_model", "--out", str(tmp_path / "build")]) == 2
    assert not (tmp_path / "build").exists()  # nothing is written for a bad model
    assert "no_such_model" in capsys.readouterr().err


def test_cli_bad_folding_file(tmp_path, capsys):
    net = _tiny(np.random.default_rng(0))
    path = net.save(tmp_path / "tiny.ir.npz")
    folding = {name: {"pe": f.pe, "simd": f.simd} for name, f in default_folding(net).items()}
    (tmp_path / "f.json").write_text(json.dumps({**folding, "fc1": {"pe": 99, "simd": 1}}))
    assert cli.main(["hls", str(path), "--out", str(tmp_path / "o"), "--folding", str(tmp_path / "f.json")]) == 2
    assert "layer fc1: PE=99" in capsys.readouterr().err


@pytest.mark.parametrize("shape, k, p, seed", [((6, 6, 1), 3, 1, 0), ((5, 5, 3), 2, 0, 1), ((4, 4, 2), 1, 0, 2)])
def test_bit_plane_input_bit_exact_per_layer(shape, k, p, seed, tmp_path):
    """keep_planes turns pixels into their kept bits (random planes, grey and colour,
    with and without a window unit); every layer equals the golden model."""
    rng = np.random.default_rng(seed)
    l0 = random_layer(rng, "planes", "bitplane_conv", shape, 5, k, 1, p)
    l1 = random_layer(rng, "conv", "binary_conv", l0.out_shape, 4, 3, 1, 1)
    l2 = random_layer(rng, "out", "output_dense", l1.out_shape, 3)
    net = Network("planes", shape, ["a", "b", "c"], "random", [l0, l1, l2])
    net.validate()
    folding = {"planes": LayerConfig(2, 5), "conv": LayerConfig(3, 7), "out": LayerConfig(3, 4)}
    images = rng.integers(0, 256, (5, *shape), dtype=np.uint8)
    _csim_matches_golden(net, folding, images, tmp_path)
    assert "keep_planes<planes_planes_config>" in (tmp_path / "flipflow_top.cpp").read_text()


def test_pixel_codes_table_in_read_pixels(tmp_path):
    """An input layer's pixel_codes table (an imported input quantiser) is applied by
    read_pixels before the gather and the padding: bit-exact per layer."""
    net, folding, images = rtl_nets.pixel_codes_case(5)
    _csim_matches_golden(net, folding, images, tmp_path)
