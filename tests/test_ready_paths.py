"""No combinational path across unit boundaries (docs/DESIGN.md, "Timing").

Every library module's in_ready (and out_valid) is a function of its own
registers: its input cone, traced back through logic with yosys (``proc;
flatten; opt_clean``, stopping at flip-flops), holds none of out_ready,
in_valid or in_data. Then a valid/ready chain of units can never form one long
combinational ready path, whatever the network. Checked per module at small
and wide parameters (PE = SIMD = 1, PE 64 x SIMD 64, every MVU datapath and
queue depth), on generated tops unit by unit, and on a module that has such a
path, to show the check finds one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import rtl_nets
from flipflow.generator import rtl
from flipflow.generator.folding import LayerConfig
from flipflow.sim.resources import yosys_binary

_FLOPS = ":".join(f"-${t}" for t in ("dff", "adff", "aldff", "dffsr", "dlatch"))  # where a cone stops
STARTS = ("in_ready", "out_valid")
FORBIDDEN = ("out_ready", "in_valid", "in_data")  # ports neither may follow combinationally


def combinational_inputs(files: list[Path], top: str, probes: dict[str, list[str]], tmp: Path,
                         parameters: dict[str, int | str] | None = None) -> dict[str, list[str]]:
    """For each probe {start wire: [wires]}: the wires of the list that lie in the input cone
    of ``start`` in ``top`` (flattened), the cone stopping at flip-flops."""
    script = ["read_verilog -defer -sv " + " ".join(map(str, files))]
    if parameters:
        script.append("chparam " + " ".join(f"-set {k} {rtl.verilog_value(v)}" for k, v in parameters.items()) + f" {top}")
    script += [f"hierarchy -top {top}", "proc", "flatten", "opt_clean"]
    for i, start in enumerate(probes):
        script += [f"select -set cone{i} w:{start} %ci*:{_FLOPS}",
                   f"tee -q -o {tmp}/cone{i}.txt select -list @cone{i}"]
    result = subprocess.run([yosys_binary(), "-q", "-p", "; ".join(script)], cwd=tmp, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = {}
    for i, (start, wires) in enumerate(probes.items()):
        cone = {line.strip().split("/", 1)[-1] for line in (tmp / f"cone{i}.txt").read_text().splitlines()}
        found[start] = [w for w in wires if w in cone]
    return found


def _module_probes() -> dict[str, list[str]]:
    return {start: list(FORBIDDEN) for start in STARTS}


def _memory_files(tmp: Path) -> dict[str, str]:
    """Placeholder $readmemh files: the structure does not depend on the weights."""
    for name in ("w.mem", "t.mem"):
        (tmp / name).write_text("0\n")
    return dict(WEIGHT_FILE=str(tmp / "w.mem"), THRESH_FILE=str(tmp / "t.mem"))


def _mvu(datapath: str, out_ch: int, fan_in: int, pe: int, simd: int, wb: int, aw: int, positions: int) -> dict:
    lane = 8 if datapath == "pixels" else 1
    return dict(DATAPATH=datapath, OUT_CH=out_ch, FAN_IN=fan_in, PE=pe, SIMD=simd, WB=wb, AW=aw,
                POSITIONS=positions, EW=fan_in * lane // positions)


MODULES = [
    ("flipflow_gather", dict(CH=1)),
    ("flipflow_gather", dict(CH=3)),
    ("flipflow_swu", dict(H=4, W=4, EW=3, K=3, S=1, PAD=1)),
    ("flipflow_swu", dict(H=32, W=32, EW=64, K=3, S=2, PAD=1)),
    ("flipflow_count", dict(CH=8)),  # one adder level: in_ready from out_valid and the slot count
    ("flipflow_count", dict(CH=300)),  # three levels: and the pixels in flight
    ("flipflow_maxpool", dict(CH=1, K=2)),
    ("flipflow_maxpool", dict(CH=64, K=3)),
    ("flipflow_global_sum", dict(CH=10, IN_BITS=8, PIXELS=1)),
    ("flipflow_global_sum", dict(CH=10, IN_BITS=16, PIXELS=64)),
    ("flipflow_result", dict(CH=1, IN_BITS=4)),
    ("flipflow_result", dict(CH=10, IN_BITS=32)),
    # PE = SIMD = 1 (one-slot queue), one fold per window (the deepest queue), wide, several beats
    ("flipflow_mvu", _mvu("binary", 4, 9, 1, 1, 1, 5, 1)),
    ("flipflow_mvu", _mvu("binary", 4, 9, 4, 9, 1, 5, 1)),
    ("flipflow_mvu", _mvu("binary", 64, 576, 64, 64, 1, 10, 1)),
    ("flipflow_mvu", _mvu("pixels", 16, 27, 16, 27, 8, 24, 9)),
    ("flipflow_mvu", _mvu("scores", 10, 256, 2, 32, 1, 10, 4)),
    # early exit: the abort reaches the issue stage, the take and so in_ready (from registers)
    ("flipflow_mvu", {**_mvu("binary", 4, 9, 1, 1, 1, 5, 1), "EARLY_EXIT": 1}),
    ("flipflow_mvu", {**_mvu("binary", 64, 576, 8, 32, 1, 10, 1), "EARLY_EXIT": 1}),
    # N:M sparse: one fold per window (2:4, 8 slots), and wide over several beats (2:8, 144 slots)
    ("flipflow_mvu", {**_mvu("sparse", 4, 16, 4, 8, 2, 5, 1), "SPARSE_N": 2, "SPARSE_M": 4}),
    ("flipflow_mvu", {**_mvu("sparse", 64, 576, 8, 32, 3, 8, 4), "SPARSE_N": 2, "SPARSE_M": 8}),
]


@pytest.mark.parametrize("module, parameters", MODULES, ids=lambda x: x if isinstance(x, str) else "-".join(map(str, x.values())))
def test_module_ready_and_valid_depend_on_registers_only(module, parameters, tmp_path):
    if module == "flipflow_mvu":
        parameters = {**parameters, **_memory_files(tmp_path)}
    found = combinational_inputs([rtl.TEMPLATES / f"{module}.v"], module, _module_probes(), tmp_path, parameters)
    assert found == {start: [] for start in STARTS}, f"{module} {parameters}: combinational paths {found}"


def test_the_check_finds_a_combinational_ready_path(tmp_path):
    source = tmp_path / "pass_through.v"
    source.write_text("module pass_through(input wire ap_clk, input wire in_valid, output wire in_ready,\n"
                      "  output reg out_valid, input wire out_ready);\n"
                      "  assign in_ready = !out_valid || out_ready;\n"
                      "  always @(posedge ap_clk) if (in_ready) out_valid <= in_valid;\n"
                      "endmodule\n")
    found = combinational_inputs([source], "pass_through", {"in_ready": ["out_ready", "in_valid"]}, tmp_path)
    assert found == {"in_ready": ["out_ready"]}


# a conv net (gather, window, pixel / binary / score MVUs, pool, sum, result) at PE = SIMD = 1 and
# wide, and a dense chain (MVU after MVU: where a ready path through the units would grow longest)
CONV = [{"kind": "input_conv", "out": 7, "k": 3, "p": 1}, {"kind": "binary_conv", "out": 8, "k": 3, "p": 1},
        {"kind": "maxpool", "k": 2, "s": 2}, {"kind": "output_conv"}, {"kind": "global_sum"}]
TOPS = {
    "conv-narrow": ((6, 6, 2), CONV, [(1, 1), (1, 1), (1, 1)]),
    "conv-wide": ((6, 6, 2), CONV, [(7, 18), (8, 63), (10, 8)]),
    "dense": ((4, 4, 1), [{"kind": "input_dense", "out": 16}, {"kind": "binary_dense", "out": 16},
                          {"kind": "binary_dense", "out": 16}, {"kind": "output_dense"}], [(4, 4), (16, 16), (2, 8), (10, 16)]),
}


@pytest.mark.parametrize("name", TOPS)
def test_generated_top_has_no_ready_path_through_a_unit(name, tmp_path):
    shape, specs, fold = TOPS[name]
    images = np.random.default_rng(0).integers(0, 256, (8, *shape)).astype(np.uint8)
    net = rtl_nets.build(name, images, specs, 10, 0)
    layers = [l for l in net.layers if l.has_weights]
    design = rtl.generate(net, {l.name: LayerConfig(*fold[i]) for i, l in enumerate(layers)}, tmp_path / "rtl")
    # flattened, the wires between units keep the instances' port names; a unit's in_ready
    # is the same net as its source's out_ready
    ready = {u.name: f"{u.instance}.out_ready" for u in design.units}
    outs = [*ready.values(), "out_stream_TREADY"]
    probes = {"in_stream_TREADY": outs,
              **{f"{u.instance}.in_ready": [w for w in outs if w != ready.get(u.src)] for u in design.units}}
    files = [tmp_path / "rtl" / f for f in design.files]
    found = combinational_inputs(files, rtl.TOP_NAME, probes, tmp_path)
    assert found == {start: [] for start in probes}, f"combinational ready paths through units: {found}"
