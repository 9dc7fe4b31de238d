"""Unit tests of the Verilog library (hls_templates/rtl/flipflow_*.v), one per
module: the pytest parameters are the module's Verilog parameters, the cocotb
testbench (tests/cocotb/test_flipflow_<module>.py) streams random frames back
to back with random idle input cycles and output backpressure and compares
every beat with a Python model of the module; each parameter set is also
lint-clean under verilator -Wall and Icarus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rtl_nets
from flipflow import kinds
from flipflow.generator import rtl
from flipflow.generator.folding import LayerConfig
from rtl_helpers import cocotb_run, lint_sources


def run_module(module: str, parameters: dict[str, int | str], tmp: Path, monkeypatch, simulator: str = "icarus",
               **case) -> None:
    """Lint ``module`` with ``parameters`` and run its cocotb test; ``case`` adds test
    settings (model extras) to the defaults: 3 frames, 30% idle and stall."""
    sources = [rtl.TEMPLATES / f"{module}.v"]
    lint_sources(sources, module, parameters)
    settings = {"seed": 1, "idle": 0.3, "stall": 0.3, "frames": 3, **case}
    tests, fails = cocotb_run(sources, module, f"test_{module}", tmp, simulator, monkeypatch, parameters=parameters,
                              extra_env={"FLIPFLOW_PARAMS": json.dumps(parameters), "FLIPFLOW_CASE": json.dumps(settings)})
    assert tests >= 1 and not fails, f"{module} {parameters}: {fails} of {tests} cocotb tests failed"


# H, W, EW, K, S, PAD, bits per channel: maps smaller than the kernel, 1x1, non-square, S > K, 8-bit pixels,
# line buffers of rows not a power of two (kinds.window_rows: 6 for a valid 3x3, 5 for a 2x2/2 over 9 rows)
SWU = [(4, 4, 3, 3, 1, 1, 1), (2, 5, 8, 3, 2, 1, 8), (1, 1, 2, 1, 1, 0, 1), (5, 3, 2, 2, 3, 0, 1), (3, 6, 1, 4, 1, 3, 1),
       (1, 4, 1, 3, 1, 2, 1), (6, 5, 2, 3, 1, 0, 1), (9, 3, 1, 2, 2, 0, 1)]


@pytest.mark.parametrize("h, w, ew, k, s, pad, lane_bits", SWU)
def test_swu(h, w, ew, k, s, pad, lane_bits, tmp_path, monkeypatch):
    run_module("flipflow_swu", dict(H=h, W=w, EW=ew, K=k, S=s, PAD=pad), tmp_path, monkeypatch, lane_bits=lane_bits)


@pytest.mark.slow
def test_swu_verilator(tmp_path, monkeypatch):
    run_module("flipflow_swu", dict(H=5, W=4, EW=2, K=3, S=2, PAD=1), tmp_path, monkeypatch, "verilator", lane_bits=1)


# datapath, the network around the layer under test, its index, (PE, SIMD): PE and SIMD that do not
# divide the layer, one and several input beats per window, odd and even PE for the DSP-packed pixels,
# one and many folds per window (output queue of one slot and of several)
MVU = [
    ("binary", (2, 2, 1), [{"kind": "input_conv", "out": 5}, {"kind": "binary_dense", "out": 7}, {"kind": "output_dense"}], 1, (3, 4)),
    ("binary", (1, 1, 3), [{"kind": "input_dense", "out": 9}, {"kind": "binary_dense", "out": 4}, {"kind": "output_dense"}], 1, (4, 9)),
    ("pixels", (2, 3, 2), [{"kind": "input_dense", "out": 7}, {"kind": "output_dense"}], 0, (3, 5)),
    ("pixels", (1, 1, 5), [{"kind": "input_dense", "out": 4}, {"kind": "output_dense"}], 0, (4, 2)),
    ("scores", (1, 1, 2), [{"kind": "input_dense", "out": 9}, {"kind": "output_dense"}], 1, (3, 2)),
    ("scores", (2, 2, 1), [{"kind": "input_conv", "out": 3}, {"kind": "output_dense"}], 1, (1, 12)),
    # one fold per window: the deepest output queue (flipflow_mvu's DEPTH = ACC + 2)
    ("pixels", (1, 1, 3), [{"kind": "input_dense", "out": 4}, {"kind": "output_dense"}], 0, (4, 3)),
]


def mvu_case(shape, specs, index, pe_simd, tmp: Path, seed: int, early_exit: bool = False,
             thresholds: str = "median") -> tuple[rtl.Unit, dict]:
    """The matrix-vector unit of layer ``index`` in a generated random network, and
    the test settings that name its IR layer. ``thresholds``: "median" (rtl_nets:
    balanced bits, rows decide late), "spread" (uniform over 0 .. K + 1: many rows
    decide early, some late) or "extreme" (0 or K + 1: every row decides at fold 0)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (8, *shape)).astype(np.uint8)
    net = rtl_nets.build("mvu", images, specs, 3, seed)
    layer = net.layers[index]
    if thresholds == "spread":
        layer.thresholds = rng.integers(0, layer.fan_in + 2, layer.out_ch)
    elif thresholds == "extreme":
        layer.thresholds = rng.integers(0, 2, layer.out_ch) * (layer.fan_in + 1)
    folding = {l.name: LayerConfig(*pe_simd, early_exit=early_exit) if l is layer else LayerConfig(1, 1)
               for l in net.layers if l.has_weights}
    design = rtl.generate(net, folding, tmp / "rtl")
    net.save(tmp / "net.ir.npz")
    unit = next(u for u in design.units if u.layer == layer.name and u.module == "flipflow_mvu")
    return unit, {"ir": str(tmp / "net.ir.npz"), "layer": layer.name, "lane_bits": kinds.of(layer).lane_bits}


@pytest.mark.parametrize("seed, datapath, shape, specs, index, pe_simd", [(i, *c) for i, c in enumerate(MVU)])
def test_mvu(seed, datapath, shape, specs, index, pe_simd, tmp_path, monkeypatch):
    unit, case = mvu_case(shape, specs, index, pe_simd, tmp_path, seed)
    assert unit.parameters["DATAPATH"] == datapath
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, **case)


# early exit (binary only): SF from 6 to 20 with and without pad lanes, PE rows that do not
# divide the layer (pad rows), 1x1 conv and dense (the testbench streams pixels, not windows),
# one and many groups per window
MVU_EARLY_EXIT = [
    ((2, 2, 1), [{"kind": "input_conv", "out": 5}, {"kind": "binary_dense", "out": 7}, {"kind": "output_dense"}], 1, (3, 2)),
    ((1, 1, 3), [{"kind": "input_dense", "out": 9}, {"kind": "binary_dense", "out": 4}, {"kind": "output_dense"}], 1, (4, 1)),
    ((3, 3, 1), [{"kind": "input_conv", "out": 11}, {"kind": "binary_conv", "out": 5}, {"kind": "output_dense"}], 1, (2, 2)),
    ((1, 1, 3), [{"kind": "input_dense", "out": 40}, {"kind": "binary_dense", "out": 6}, {"kind": "output_dense"}], 1, (6, 13)),
]


@pytest.mark.parametrize("thresholds", ["median", "spread"])
@pytest.mark.parametrize("seed, shape, specs, index, pe_simd", [(i, *c) for i, c in enumerate(MVU_EARLY_EXIT)])
def test_mvu_early_exit(seed, shape, specs, index, pe_simd, thresholds, tmp_path, monkeypatch):
    """Early exit is bit-exact under idle and backpressure, whatever the rows decide."""
    unit, case = mvu_case(shape, specs, index, pe_simd, tmp_path, seed, early_exit=True, thresholds=thresholds)
    assert unit.parameters["EARLY_EXIT"] == 1
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, **case)


@pytest.mark.parametrize("thresholds", ["extreme", "spread"])
def test_mvu_early_exit_takes_the_modelled_cycles(thresholds, tmp_path, monkeypatch):
    """At full rate (no idle, no backpressure) the unit with early exit takes fewer cycles
    than without when rows decide early, and its fold slots (cycles it issues a fold or
    aborts a group) are exactly the cycle model's (generator/earlyexit.py: min(SF,
    folds + latency) per group), as they are without early exit (NF x SF per window)."""
    shape, specs, index, pe_simd = MVU_EARLY_EXIT[0]
    runs = {}
    for on in (False, True):
        tmp = tmp_path / str(on)
        unit, case = mvu_case(shape, specs, index, pe_simd, tmp, 5, early_exit=on, thresholds=thresholds)
        run_module("flipflow_mvu", unit.parameters, tmp, monkeypatch, **case, idle=0.0, stall=0.0, frames=4,
                   cycles_file=str(tmp / "cycles.json"))
        runs[on] = json.loads((tmp / "cycles.json").read_text())
    assert runs[True]["cycles"] < runs[False]["cycles"], runs
    assert all(r["slots"] == r["model_slots"] for r in runs.values()), runs


# N:M sparse layers (the test streams pixels: dense layers, or 1x1 convs whose pixel is the vector):
# shape, specs, index of the layer, (PE, SIMD). A partial last block (K = 9, 30, 100), N = 1 and
# N = M, M from 2 to 64, PE and SIMD that do and do not divide the rows and slots, one vector beat
# and many, one fold per window (the deepest output queue)
SPARSE_MVU = [
    ((3, 3, 1), [{"kind": "input_conv", "out": 9}, {"kind": "sparse_conv", "out": 5, "nm": (2, 4)}, {"kind": "output_dense"}], 1, (2, 4)),
    ((2, 5, 1), [{"kind": "input_conv", "out": 3}, {"kind": "sparse_dense", "out": 7, "nm": (1, 2)}, {"kind": "output_dense"}], 1, (3, 2)),
    ((1, 1, 4), [{"kind": "input_dense", "out": 64}, {"kind": "sparse_dense", "out": 4, "nm": (2, 8)}, {"kind": "output_dense"}], 1, (4, 6)),
    ((1, 1, 4), [{"kind": "input_dense", "out": 12}, {"kind": "sparse_dense", "out": 6, "nm": (4, 4)}, {"kind": "output_dense"}], 1, (6, 8)),
    ((3, 3, 1), [{"kind": "input_conv", "out": 3}, {"kind": "sparse_dense", "out": 1, "nm": (1, 2)}, {"kind": "output_dense"}], 1, (1, 1)),
    ((1, 1, 4), [{"kind": "input_dense", "out": 16}, {"kind": "sparse_dense", "out": 3, "nm": (2, 4)}, {"kind": "output_dense"}], 1, (3, 8)),
    ((2, 4, 1), [{"kind": "input_conv", "out": 5}, {"kind": "sparse_dense", "out": 9, "nm": (4, 16)}, {"kind": "output_dense"}], 1, (4, 8)),
    ((1, 1, 4), [{"kind": "input_dense", "out": 100}, {"kind": "sparse_dense", "out": 4, "nm": (8, 64)}, {"kind": "output_dense"}], 1, (3, 8)),
]


@pytest.mark.parametrize("seed, shape, specs, index, pe_simd", [(i, *c) for i, c in enumerate(SPARSE_MVU)])
def test_mvu_sparse(seed, shape, specs, index, pe_simd, tmp_path, monkeypatch):
    """The N:M sparse datapath (its memories from generator/pack.py) on random masks, idle
    input and backpressure."""
    unit, case = mvu_case(shape, specs, index, pe_simd, tmp_path, seed)
    assert unit.parameters["DATAPATH"] == "sparse" and unit.parameters["SPARSE_N"] == specs[index]["nm"][0]
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, frames=4, **case)


# centred (weights b - N/M: acc = M P - N S, signed; pixels with their ones counts): one count
# (1x1 conv, dense over one pixel), four and nine (dense over a 2x2 and a 3x3 map), the count sum's
# pipeline at one tree stage and at two (SIMD 24 > 16), M from 2 to 64 (a 64-bit group), N = 3
# (N x S by shifts and adds), NF and SF > 1, and one fold per window (the first fold waits for
# an output credit)
CENTRED_MVU = [SPARSE_MVU[i] for i in (0, 4, 7)] + [
    ((1, 1, 4), [{"kind": "input_dense", "out": 90}, {"kind": "sparse_dense", "out": 5, "nm": (2, 4)}, {"kind": "output_dense"}], 1, (2, 24)),
    ((3, 3, 1), [{"kind": "input_conv", "out": 6}, {"kind": "sparse_conv", "out": 2, "nm": (2, 4)}, {"kind": "output_dense"}], 1, (2, 4)),
    ((2, 2, 1), [{"kind": "input_conv", "out": 24}, {"kind": "sparse_dense", "out": 4, "nm": (3, 8)}, {"kind": "output_dense"}], 1, (2, 12)),
]


def _centred(specs: list[dict], index: int) -> list[dict]:
    return [{**s, "centred": True} if i == index else s for i, s in enumerate(specs)]


@pytest.mark.parametrize("seed, shape, specs, index, pe_simd", [(i, *c) for i, c in enumerate(CENTRED_MVU)])
def test_mvu_centred_sparse(seed, shape, specs, index, pe_simd, tmp_path, monkeypatch):
    """The centred sparse datapath (CENTRED = 1) on random masks, idle input and backpressure."""
    unit, case = mvu_case(shape, _centred(specs, index), index, pe_simd, tmp_path, 40 + seed)
    assert unit.parameters["CENTRED"] == 1 and unit.parameters["DATAPATH"] == "sparse"
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, frames=4, **case)


def test_mvu_centred_sparse_verilator(tmp_path, monkeypatch):
    shape, specs, index, pe_simd = CENTRED_MVU[3]
    unit, case = mvu_case(shape, _centred(specs, index), index, pe_simd, tmp_path, 43)
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, "verilator", frames=4, **case)


@pytest.mark.slow
def test_mvu_sparse_verilator(tmp_path, monkeypatch):
    unit, case = mvu_case(*SPARSE_MVU[6], tmp_path, 6)
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, "verilator", frames=4, **case)


@pytest.mark.slow
def test_mvu_verilator(tmp_path, monkeypatch):
    unit, case = mvu_case(*MVU[2][1:], tmp_path, 2)
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, "verilator", **case)


# CH: one group (1, 16 bits), a short last group (17), two adder levels (151), three (300)
@pytest.mark.parametrize("ch", [1, 16, 17, 151, 300])
def test_count(ch, tmp_path, monkeypatch):
    run_module("flipflow_count", dict(CH=ch), tmp_path, monkeypatch, frames=2)


@pytest.mark.parametrize("ch", [16, 300])
def test_count_takes_a_pixel_a_cycle(ch, tmp_path, monkeypatch):
    """No idle input, a ready consumer: 8 frames of 12 pixels arrive within 96 + 30 cycles of
    reset (the testbench's run stops at max_cycles and watches 20 more); at half rate they would
    need 192."""
    run_module("flipflow_count", dict(CH=ch), tmp_path, monkeypatch, frames=8, idle=0.0, stall=0.0, max_cycles=106)


# CH, K, and the map the windows come from: H, W, stride, padding
@pytest.mark.parametrize("ch, k, h, w, s, pad", [(3, 2, 4, 4, 2, 0), (1, 3, 5, 4, 2, 1), (5, 1, 2, 3, 1, 0)])
def test_maxpool(ch, k, h, w, s, pad, tmp_path, monkeypatch):
    run_module("flipflow_maxpool", dict(CH=ch, K=k), tmp_path, monkeypatch, h=h, w=w, s=s, pad=pad)


@pytest.mark.parametrize("ch, in_bits, pixels", [(3, 5, 4), (2, 32, 1), (1, 9, 7)])
def test_global_sum(ch, in_bits, pixels, tmp_path, monkeypatch):
    run_module("flipflow_global_sum", dict(CH=ch, IN_BITS=in_bits, PIXELS=pixels), tmp_path, monkeypatch)


@pytest.mark.parametrize("ch", [1, 2, 3])
def test_gather(ch, tmp_path, monkeypatch):
    run_module("flipflow_gather", dict(CH=ch), tmp_path, monkeypatch)


@pytest.mark.parametrize("ch, in_bits", [(10, 32), (3, 6), (1, 4)])
def test_result(ch, in_bits, tmp_path, monkeypatch):
    run_module("flipflow_result", dict(CH=ch, IN_BITS=in_bits), tmp_path, monkeypatch)
