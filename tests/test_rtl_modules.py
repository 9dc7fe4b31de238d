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


# H, W, EW, K, S, PAD, bits per channel: maps smaller than the kernel, 1x1, non-square, S > K, 8-bit pixels
SWU = [(4, 4, 3, 3, 1, 1, 1), (2, 5, 8, 3, 2, 1, 8), (1, 1, 2, 1, 1, 0, 1), (5, 3, 2, 2, 3, 0, 1), (3, 6, 1, 4, 1, 3, 1),
       (1, 4, 1, 3, 1, 2, 1)]


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
    lane_bits = unit.parameters["EW"] // layer.in_shape[2]
    return unit, {"ir": str(tmp / "net.ir.npz"), "layer": layer.name, "lane_bits": lane_bits}


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


def nm_mask(rng: np.random.Generator, rows: int, cols: int, n: int, m: int) -> np.ndarray:
    """A random 0/1 [rows, cols] matrix with N:M structure: every full block of M columns
    has exactly N ones, a last partial block of r columns any number up to min(N, r)."""
    mask = np.zeros((rows, cols), np.uint8)
    for r in range(rows):
        for start in range(0, cols, m):
            width = min(m, cols - start)
            ones = n if width == m else int(rng.integers(0, min(n, width) + 1))
            mask[r, start + rng.choice(width, ones, replace=False)] = 1
    return mask


def sparse_weight_words(mask: np.ndarray, n: int, m: int, pe: int, simd: int) -> list[int]:
    """flipflow_mvu's "sparse" weight memory for an N:M mask (the layout of its header):
    word nf * SF + sf holds, lane j of PE p at bit (p * SIMD + j) * IB, the index in its
    block of slot sf * SIMD + j of row nf * PE + p. Slot s of a row is one of block s // N's
    ones in ascending order; a slot with no one (a partial block's spare, the blocks and
    rows that folding pads) points at M - 1: beyond FAN_IN, or a padding row's don't-care."""
    rows, cols = mask.shape
    blocks = -(-cols // m)
    sf, nf, ib = -(-n * blocks // simd), -(-rows // pe), (m - 1).bit_length()
    index = np.full((nf * pe, sf * simd), m - 1, np.int64)
    for r in range(rows):
        for b in range(blocks):
            ones = np.flatnonzero(mask[r, b * m:(b + 1) * m])
            index[r, b * n:b * n + ones.size] = ones
    tiles = index.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
    return [sum(int(v) << (i * ib) for i, v in enumerate(tile)) for tile in tiles]


# FAN_IN, OUT_CH, N, M, PE, SIMD, POSITIONS: a partial last block (with fewer than N ones), M not a
# power of two (indices >= M unused), N = M, N = 1, PE and SIMD that do and do not divide the rows
# and slots, one fold per window (the deepest output queue), a conv window (one beat) and a dense
# vector over many beats, M = 16
SPARSE_MVU = [
    (9, 5, 2, 4, 2, 4, 1),
    (30, 7, 1, 3, 3, 2, 10),
    (64, 4, 2, 8, 4, 6, 1),
    (50, 3, 3, 5, 2, 3, 5),
    (12, 6, 4, 4, 6, 8, 1),
    (27, 1, 1, 2, 1, 1, 9),
    (16, 3, 2, 4, 3, 8, 1),
    (40, 9, 4, 16, 4, 8, 4),
]


def sparse_mvu_case(fan_in, out_ch, n, m, pe, simd, positions, tmp: Path, seed: int) -> tuple[dict, dict]:
    """flipflow_mvu "sparse" parameters for a random N:M matrix, its memory files, and the
    test settings naming the matrix (tests/cocotb/test_flipflow_mvu.py, ``mask``)."""
    rng = np.random.default_rng(seed)
    mask = nm_mask(rng, out_ch, fan_in, n, m)
    nnz = mask.sum(1).astype(np.int64)
    thresholds = np.clip(nnz // 2 + rng.integers(-1, 2, out_ch), 0, nnz + 1)
    aw = max(2, int(nnz.max() + 1).bit_length())
    ib = (m - 1).bit_length()
    nf = -(-out_ch // pe)
    thr_words = [sum(int(t) << (p * aw) for p, t in enumerate(thresholds[f * pe:(f + 1) * pe])) for f in range(nf)]
    parameters = dict(
        DATAPATH="sparse", OUT_CH=out_ch, FAN_IN=fan_in, PE=pe, SIMD=simd, WB=ib, AW=aw, POSITIONS=positions,
        EW=fan_in // positions, SPARSE_N=n, SPARSE_M=m,
        WEIGHT_FILE=rtl._write_mem(tmp, "weights.mem", sparse_weight_words(mask, n, m, pe, simd), pe * simd * ib),
        THRESH_FILE=rtl._write_mem(tmp, "thresholds.mem", thr_words, pe * aw))
    np.savez(tmp / "mask.npz", mask=mask, thresholds=thresholds)
    return parameters, {"mask": str(tmp / "mask.npz")}


def test_sparse_weight_words_select_the_ones():
    """The reference layout above, emulated as the unit reads it (fold sf's slice of
    SIMD / N blocks, lane j's block j // N at its index), gives popcount(x AND mask)."""
    rng = np.random.default_rng(0)
    for fan_in, out_ch, n, m, pe, simd, _ in SPARSE_MVU:
        mask = nm_mask(rng, out_ch, fan_in, n, m)
        words = sparse_weight_words(mask, n, m, pe, simd)
        sf, ib, xw = -(-n * -(-fan_in // m) // simd), (m - 1).bit_length(), simd // n * m
        x = rng.integers(0, 2, (16, fan_in))
        padded = np.zeros((16, sf * xw + m), np.int64)
        padded[:, :fan_in] = x
        acc = np.zeros((16, len(words) // sf * pe), np.int64)
        for t, word in enumerate(words):
            nf, s = divmod(t, sf)
            for p in range(pe):
                for j in range(simd):
                    index = word >> ((p * simd + j) * ib) & ((1 << ib) - 1)
                    acc[:, nf * pe + p] += padded[:, s * xw + j // n * m + index] if index < m else 0
        assert np.array_equal(acc[:, :out_ch], x @ mask.T.astype(np.int64))


@pytest.mark.parametrize("seed, fan_in, out_ch, n, m, pe, simd, positions", [(i, *c) for i, c in enumerate(SPARSE_MVU)])
def test_mvu_sparse(seed, fan_in, out_ch, n, m, pe, simd, positions, tmp_path, monkeypatch):
    """The N:M sparse datapath on random masks, random idle input and backpressure."""
    parameters, case = sparse_mvu_case(fan_in, out_ch, n, m, pe, simd, positions, tmp_path, seed)
    run_module("flipflow_mvu", parameters, tmp_path, monkeypatch, frames=6, **case)


@pytest.mark.slow
def test_mvu_sparse_verilator(tmp_path, monkeypatch):
    parameters, case = sparse_mvu_case(*SPARSE_MVU[3], tmp_path, 3)
    run_module("flipflow_mvu", parameters, tmp_path, monkeypatch, "verilator", frames=6, **case)


@pytest.mark.slow
def test_mvu_verilator(tmp_path, monkeypatch):
    unit, case = mvu_case(*MVU[2][1:], tmp_path, 2)
    run_module("flipflow_mvu", unit.parameters, tmp_path, monkeypatch, "verilator", **case)


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
