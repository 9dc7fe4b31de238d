"""Property test: the RTL library accepts every window geometry the IR accepts
(flipflow.ir validate: 0 <= pad < kernel, kernel <= the padded input): maps
smaller than the kernel, 1x1 maps, non-square maps, odd strides and paddings,
stride above or below the kernel. Every drawn design lints clean (Verilator
-Wall, Icarus); a few are simulated bit-exact against the golden model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import rtl_nets
from flipflow.generator import rtl
from rtl_helpers import lint, run_cocotb

MAX_MAP = 6  # small maps keep a drawn design's simulation to seconds


@st.composite
def window(draw, h: int, w: int) -> dict:
    """kernel, stride, pad legal on an h x w map: pad < kernel <= the padded map."""
    k = draw(st.integers(1, 4))
    p = draw(st.integers(max(0, -(-(k - min(h, w)) // 2)), k - 1))
    return {"k": k, "s": draw(st.integers(1, 3)), "p": p}


@st.composite
def cases(draw) -> tuple[tuple[int, int, int], list[dict], int]:
    """(image shape, layer specs, seed): an input conv, then a binary conv, max-pool
    or output conv, each with a drawn window, then a classifier."""
    shape = (draw(st.integers(1, MAX_MAP)), draw(st.integers(1, MAX_MAP)), draw(st.integers(1, 2)))
    first = {"kind": "input_conv", "out": draw(st.integers(1, 5)), **draw(window(*shape[:2]))}
    ho = (shape[0] + 2 * first["p"] - first["k"]) // first["s"] + 1
    wo = (shape[1] + 2 * first["p"] - first["k"]) // first["s"] + 1
    kind = draw(st.sampled_from(["binary_conv", "maxpool", "output_conv"]))
    second = {"kind": kind, "out": draw(st.integers(1, 5)), **draw(window(ho, wo))}
    last = {"kind": "global_sum" if kind == "output_conv" else "output_dense"}
    return shape, [first, second, last], draw(st.integers(0, 2**16))


def build(case: tuple[tuple[int, int, int], list[dict], int]):
    shape, specs, seed = case
    images = np.random.default_rng(seed).integers(0, 256, (3, *shape)).astype(np.uint8)
    net = rtl_nets.build("geometry", images, specs, 4, seed)
    return net, rtl_nets.random_folding(net, seed), images


# the zoo nin at the 8x8 digits shape: a 3x3 kernel with pad 1 over a 2x2 and a 1x1 map
NIN_TAIL = ((2, 2, 1), [{"kind": "input_conv", "out": 3, "k": 3, "s": 2, "p": 1},
                        {"kind": "binary_conv", "out": 4, "k": 3, "s": 1, "p": 1}, {"kind": "output_dense"}], 0)


@settings(max_examples=50, deadline=None)
@example(case=NIN_TAIL)
@given(case=cases())
def test_geometries_lint_clean(case):
    net, folding, _ = build(case)
    with tempfile.TemporaryDirectory() as tmp:
        rtl.generate(net, folding, tmp)
        lint(Path(tmp))


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(case=NIN_TAIL)
@given(case=cases())
def test_geometries_bit_exact(tmp_path, monkeypatch, case):
    net, folding, images = build(case)
    run_cocotb(net, folding, images, Path(tempfile.mkdtemp(dir=tmp_path)), "icarus", 0.3, 0.3, monkeypatch)
