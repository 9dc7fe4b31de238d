"""sim/timing.py on small designs that hold every library module and datapath at
sizes the folding search may choose: every unit's path (yosys sta logic delay plus
the routing allowance) fits the 10 ns clock. And the sta log parser on a captured log."""

from __future__ import annotations

import numpy as np
import pytest

import rtl_nets
from flipflow.generator import rtl
from flipflow.generator.folding import LayerConfig
from flipflow.sim import timing

# Captured from yosys 0.23 `sta` (shortened histograms): the path is listed from its
# endpoint back to the clock; the launching cell (clock-to-out arc) enters on no net.
STA_LOG = """\
5. Executing STA pass (static timing analysis).
Latest arrival time in 'flipflow_top.u_input_conv0_gather' is 775:
     775 _26_ (FDRE.D)
           \\_03_
     775 _35_ (LUT5.I1->O)
           \\out_valid
     303 _25_ (FDRE.C->Q)
       0   \\ap_clk (<primary input>)

Arrival histogram:
 legend: * represents 1 endpoint(s)
         + represents [1,1) endpoint(s)
(   780,    741] |*
(   741,    702] |

9. Executing STA pass (static timing analysis).
Latest arrival time in 'flipflow_top.u_input_conv0_mvu' is 5354:
    5354 _2489_ (DSP48E1.PCIN)
           \\_0548_
    4329 _2488_ (DSP48E1.PCIN->PCOUT)
           \\_0652_ [0]
    3074 _2486_ (DSP48E1.PCIN->PCOUT)
           \\_0651_ [0]
    1819 _2487_ (DSP48E1.CLK->PCOUT)
       0   \\ap_clk (<primary input>)

Arrival histogram:
 legend: * represents 2 endpoint(s)
"""


def test_parser_reads_captured_sta_log():
    assert timing._paths(STA_LOG) == {"flipflow_top.u_input_conv0_gather": (775, 2), "flipflow_top.u_input_conv0_mvu": (5354, 3)}


def _design(tmp, name, shape, specs, fold, classes=10):
    images = np.random.default_rng(0).integers(0, 256, (8, *shape)).astype(np.uint8)
    net = rtl_nets.build(name, images, specs, classes, 0)
    layers = [l for l in net.layers if l.has_weights]
    rtl.generate(net, {l.name: LayerConfig(*fold[i]) for i, l in enumerate(layers)}, tmp / name)
    return tmp / name


DESIGNS = {
    # gather, window, pixel conv (DSP pairs and an odd row), binary conv, centred sparse conv (count unit),
    # pool, score conv, sum, 10-class result
    "conv": ((6, 6, 2), [{"kind": "input_conv", "out": 7, "k": 3, "p": 1}, {"kind": "binary_conv", "out": 8},
                         {"kind": "sparse_conv", "out": 9, "k": 3, "p": 1, "nm": (2, 8), "centred": True},
                         {"kind": "maxpool", "k": 2, "s": 2}, {"kind": "output_conv"}, {"kind": "global_sum"}],
             [(3, 9), (4, 7), (3, 6), (2, 4)]),
    # a wide popcount: SIMD 256 in one synapse fold; pixel dense at SIMD 16
    "wide": ((4, 4, 1), [{"kind": "input_dense", "out": 256}, {"kind": "binary_dense", "out": 4}, {"kind": "output_dense"}],
             [(2, 16), (2, 256), (2, 4)]),
}


def test_designs_cover_every_module_and_datapath(tmp_path):
    units = [u for name, d in DESIGNS.items() for u in rtl.load_design(_design(tmp_path, name, *d)).units]
    assert {u.module for u in units} == {p.stem for p in rtl.TEMPLATES.glob("flipflow_*.v")}
    assert {u.parameters["DATAPATH"] for u in units if u.module == "flipflow_mvu"} == {"binary", "pixels", "scores", "sparse"}
    assert max(u.parameters["SIMD"] for u in units if u.module == "flipflow_mvu") >= 256


@pytest.mark.slow
@pytest.mark.parametrize("name", DESIGNS)
def test_every_unit_meets_the_clock(name, tmp_path):
    shape, specs, fold = DESIGNS[name]
    report = timing.analyse(_design(tmp_path, name, shape, specs, fold))
    assert len(report["units"]) == len(rtl.load_design(tmp_path / name).units)
    late = [(u["unit"], round(u["path_ns"], 2)) for u in report["units"] if not u["meets"]]
    assert not late and report["meets_clock"], f"over {report['clock_ns']} ns: {late}"
