"""Shared steps of the RTL tests: lint, and cocotb runs of a generated top or
of one library module with its Verilog parameters."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from flipflow.generator import rtl
from flipflow.host import stream
from flipflow import golden
from flipflow.sim.rtl import PCH_FIX, first_layer_mismatch, verilator_bin, verilator_env

COCOTB_DIR = Path(__file__).with_name("cocotb")


def _check(cmd: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def lint_sources(files: list[Path], top: str, parameters: dict[str, int | str] | None = None) -> None:
    """Lint-clean under verilator --lint-only -Wall and accepted by Icarus."""
    params = (parameters or {}).items()
    _check([verilator_bin(), "--lint-only", "-Wall", "--top-module", top,
            *[f"-G{k}={rtl.verilog_value(v)}" for k, v in params], *map(str, files)], env=verilator_env())
    _check(["iverilog", "-g2012", "-o", os.devnull, "-s", top,
            *[f"-P{top}.{k}={rtl.verilog_value(v)}" for k, v in params], *map(str, files)])


def lint(rtl_dir: Path) -> None:
    """The generated top with its library modules."""
    lint_sources([rtl_dir / f for f in rtl.load_design(rtl_dir).files], rtl.TOP_NAME)


def cocotb_run(sources: list[Path], top: str, test_module: str, tmp: Path, simulator: str, monkeypatch,
               parameters: dict[str, int | str] | None = None, extra_env: dict[str, str] | None = None,
               plusargs: list[str] | None = None, test_dir: Path | None = None) -> tuple[int, int]:
    """Build and run a cocotb test module from tests/cocotb; returns (tests, failures).
    ``parameters`` become Verilog parameters of ``top``."""
    if simulator == "verilator":
        monkeypatch.setenv("PATH", str(Path(verilator_bin()).parent) + os.pathsep + os.environ["PATH"])
        monkeypatch.setenv("MAKEFLAGS", PCH_FIX[1])
    monkeypatch.syspath_prepend(str(COCOTB_DIR))  # the runner passes sys.path on as PYTHONPATH
    params = {k: rtl.verilog_value(v) for k, v in (parameters or {}).items()}
    runner = get_runner(simulator)
    runner.build(sources=sources, hdl_toplevel=top, build_dir=tmp / "sim_build", parameters=params,
                 build_args=["-Wno-fatal"] if simulator == "verilator" else [], timescale=("1ns", "1ps"), always=True)
    results = runner.test(test_module=test_module, hdl_toplevel=top, test_dir=test_dir or tmp,
                          build_dir=tmp / "sim_build", plusargs=plusargs or [], results_xml=str(tmp / "results.xml"),
                          extra_env=extra_env or {})
    return get_results(Path(results))


def run_cocotb(net, folding, images, tmp: Path, simulator: str, idle: float, stall: float, monkeypatch) -> None:
    """Generate, simulate with cocotb, and on failure name the first mismatching layer."""
    rtl_dir = tmp / "rtl"
    design = rtl.generate(net, folding, rtl_dir)
    lint(rtl_dir)
    case = tmp / "case.npz"
    np.savez(case, images=images, expected=stream.pack_output(golden.scores(net, images)))
    tests, fails = cocotb_run(
        [rtl_dir / f for f in design.files], rtl.TOP_NAME, "test_flipflow_top", tmp, simulator, monkeypatch,
        plusargs=["+flipflow_trace"], test_dir=rtl_dir,
        extra_env={"FLIPFLOW_CASE": str(case), "FLIPFLOW_IDLE": str(idle), "FLIPFLOW_STALL": str(stall),
                   "FLIPFLOW_SEED": "7", "FLIPFLOW_OUT": str(tmp / "got.npy")},
    )
    if tests != 1 or fails:
        where = first_layer_mismatch(net, design, images[:1], rtl_dir)
        pytest.fail(f"cocotb on {simulator}: {fails} of {tests} tests failed; {where or 'all layer traces of image 0 match'}")
