"""The generated Vivado / Vitis HLS scripts run under tclsh against stand-ins that
accept only the documented commands, options and IP parameters
(tests/tcl/xilinx_stubs.tcl). Vivado and Vitis themselves are not available here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from flipflow import ir
from flipflow.generator import folding, hls, rtl

STUBS = Path(__file__).with_name("tcl") / "xilinx_stubs.tcl"


def tcl_check(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["tclsh", str(STUBS), str(script)], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    net = ir.load_model("tfc")
    out = tmp_path_factory.mktemp("hls")
    hls.render(net, folding.minimal(net), out)
    return out


@pytest.fixture(scope="module")
def rtl_design(tmp_path_factory) -> Path:
    net = ir.load_model("tfc")
    out = tmp_path_factory.mktemp("rtl")
    rtl.generate(net, folding.minimal(net), out)
    return out


@pytest.mark.parametrize("script", ["build_hls.tcl", "build_bitstream.tcl"])
def test_generated_scripts_use_documented_commands_only(project, script):
    result = tcl_check(project / script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("flipflow-tcl-check: ok")


def test_vivado_only_path_puts_the_simulated_verilog_into_the_block_design(rtl_design):
    result = tcl_check(rtl_design / "build_bitstream.tcl")
    assert result.returncode == 0, result.stderr
    script = (rtl_design / "build_bitstream.tcl").read_text()
    assert "create_bd_cell -type module -reference flipflow_top flipflow_top_0" in script
    # the memory paths of the copy Vivado reads point into the design folder, wherever it was moved
    rewritten = (rtl_design / "vivado_flipflow_top.v").read_text()
    mems = [line for line in rewritten.splitlines() if ".mem\"" in line]
    assert mems and all(f'"{rtl_design}/' in line for line in mems)
    meta = json.loads((rtl_design / "accelerator.json").read_text())
    assert meta["hardware"]["control"] == "ap_ctrl_none"


def test_csim_is_fast_and_synthesis_sees_the_plain_popcount(project):
    text = (project / "build_hls.tcl").read_text()
    assert "csim_design -O" in text
    assert '-csimflags "-DFLIPFLOW_FAST_CSIM"' in text and "-cflags $cflags -csimflags" in text


def test_s2mm_joins_the_interconnect_the_mm2s_automation_made(project):
    text = (project / "pynq_z2_shell.tcl").read_text()  # the block design shared by the HLS and RTL scripts
    assert "source $here/pynq_z2_shell.tcl" in (project / "build_bitstream.tcl").read_text()
    assert text.count("[get_bd_intf_pins ps7/S_AXI_HP0]\n") == 1  # HP0 is automated once
    assert "Master {/axi_dma/M_AXI_S2MM}" in text and "[get_bd_intf_pins axi_dma/M_AXI_S2MM]" in text


@pytest.mark.parametrize("line, complaint", [
    ("csynth_design -fast", "option -fast is not a documented option of csynth_design"),
    ("set_property -dict [list CONFIG.c_magic {1}] x", "CONFIG.c_magic is not a documented configuration"),
    ("launch_bitstream_now", "unknown command launch_bitstream_now"),
    ("open_project {unclosed", "missing close-brace"),
])
def test_the_check_fails_on_what_vivado_would_reject(tmp_path, line, complaint):
    script = tmp_path / "bad.tcl"
    script.write_text(line + "\n")
    result = tcl_check(script)
    assert result.returncode == 1 and complaint in result.stderr
