"""Resource estimate of the generated RTL with yosys ``synth_xilinx -family xc7``.

yosys maps to 7-series primitives but is pessimistic next to Vivado (no
cross-boundary optimisation, simpler LUT packing), so the counts are for
*relative* comparisons (foldings, pruned vs unpruned models), not a
utilisation promise; every report says so. Counted as Vivado counts them:
LUT = logic LUTs + LUTs used as distributed RAM/shift registers, FF = all
flip-flops, BRAM36 = RAMB36 + RAMB18 / 2, DSP = DSP48E1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from flipflow.errors import FlipflowError
from flipflow.generator import rtl

NOTE = ("yosys synth_xilinx -family xc7 estimate, per unit and total; pessimistic next to Vivado: "
        "use for relative comparisons, not as a utilisation figure")

# LUTs per distributed-RAM / shift-register primitive
_LUTRAM = {"RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
           "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1}
_FF = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")


class SynthesisError(FlipflowError, RuntimeError):
    """yosys failed or is missing."""


def _count(cells: dict[str, int]) -> dict[str, float]:
    lut = sum(n for t, n in cells.items() if re.fullmatch(r"LUT[1-6]", t))
    lut += sum(_LUTRAM[t] * n for t, n in cells.items() if t in _LUTRAM)
    return {
        "LUT": float(lut),
        "FF": float(sum(cells.get(t, 0) for t in _FF)),
        "BRAM36": cells.get("RAMB36E1", 0) + 0.5 * cells.get("RAMB18E1", 0),
        "DSP": float(cells.get("DSP48E1", 0)),
    }


def yosys_binary() -> str:
    """The Debian yosys that `make setup` installs."""
    yosys = shutil.which("yosys")
    if yosys is None:
        raise SynthesisError("yosys not found", fix="run `make setup` (installs the Debian yosys package)")
    return yosys


def elaborate(design: rtl.RtlDesign) -> list[str]:
    """yosys commands that read a generated design, one module per unit instance.
    -defer: the library modules are elaborated only with the top's parameters;
    uniquify: one module per instance (flipflow_top.u_<unit>), so each unit can be counted or timed."""
    return ["read_verilog -defer -sv " + " ".join(design.files), f"hierarchy -top {rtl.TOP_NAME}", "uniquify"]


def synthesize_module(module: str, parameters: dict[str, int | str], timeout: float = 1800) -> dict[str, float]:
    """yosys counts of one library module alone at these Verilog parameters (memory files
    given by absolute path), counted as ``synthesize`` counts a unit."""
    with tempfile.TemporaryDirectory() as tmp:
        stat = Path(tmp) / "stat.json"
        chparam = " ".join(f"-set {k} {rtl.verilog_value(v)}" for k, v in parameters.items())
        script = "; ".join([f"read_verilog -defer -sv {rtl.TEMPLATES / (module + '.v')}", f"chparam {chparam} {module}",
                            f"synth_xilinx -family xc7 -top {module}", f"tee -q -o {stat} stat -json"])
        result = subprocess.run([yosys_binary(), "-q", "-p", script], cwd=tmp, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0 or not stat.is_file():
            raise SynthesisError(f"yosys failed on {module} {parameters}:\n{(result.stdout + result.stderr)[-3000:]}")
        return _count(json.loads(stat.read_text())["design"]["num_cells_by_type"])


def synthesize(rtl_dir: str | Path, timeout: float = 1800) -> dict:
    """Synthesize the design in ``rtl_dir`` (written by generator.rtl.generate).

    Returns {"note", "total": {LUT, FF, BRAM36, DSP}, "layers": {IR layer: {...}},
    "units": {module: {...}}}; layer figures add up the units of that layer."""
    yosys = yosys_binary()
    rtl_dir = Path(rtl_dir)
    design = rtl.load_design(rtl_dir)
    with tempfile.TemporaryDirectory() as tmp:
        stat = Path(tmp) / "stat.json"
        script = "\n".join([
            *elaborate(design),
            f"synth_xilinx -family xc7 -top {rtl.TOP_NAME}",
            f"tee -q -o {stat} stat -json",
        ])
        try:
            result = subprocess.run([yosys, "-q", "-p", script], cwd=rtl_dir, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise SynthesisError(f"yosys did not finish within {timeout:.0f} s in {rtl_dir} (use --yosys-timeout)") from e
        if result.returncode != 0 or not stat.is_file():
            raise SynthesisError(f"yosys failed in {rtl_dir}:\n{(result.stdout + result.stderr)[-3000:]}")
        data = json.loads(stat.read_text())
    modules = data.get("modules", {})

    def cells_of(unit: rtl.Unit) -> dict[str, int]:
        return modules.get(f"\\{rtl.TOP_NAME}.{unit.instance}", {}).get("num_cells_by_type", {})

    units = {u.name: _count(cells_of(u)) for u in design.units}
    layers: dict[str, dict[str, float]] = {}
    for u in design.units:
        key = u.layer or "stream_io"
        acc = layers.setdefault(key, {"LUT": 0.0, "FF": 0.0, "BRAM36": 0.0, "DSP": 0.0})
        for k, v in units[u.name].items():
            acc[k] += v
    total = _count(data.get("design", {}).get("num_cells_by_type", {}))
    return {"note": NOTE, "total": total, "layers": layers, "units": units}
