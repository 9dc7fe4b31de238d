"""Timing estimate of the generated RTL: each unit's longest path, from yosys ``sta``.

yosys maps the design with ``synth_xilinx -family xc7 -abc9`` (hierarchy kept,
one module per unit instance), then times each unit's netlist with the Artix-7
-1 cell delays of its own ``cells_sim.v`` ``specify`` blocks (derived from
Project X-Ray's timing data). That is the logic delay only: no routing, setup
or clock skew. flipflow adds a routing allowance of ``ROUTING_NS_PER_HOP`` per
net on the path (7-series routes typically cost 0.4-0.6 ns a hop) and
compares the sum with the clock period. Paths that cross from one unit into
the next (a valid/ready handshake) start at the unit's input ports here, so
the figure is per unit, not a sign-off.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from flipflow.generator import devices, rtl
from flipflow.sim.resources import SynthesisError, elaborate, yosys_binary

ROUTING_NS_PER_HOP = 0.5
NOTE = (f"logic delay from yosys sta (xc7 -1 cell delays) plus {ROUTING_NS_PER_HOP} ns routing per net hop; "
        "no setup or skew; per unit, paths between units start at the unit's ports")

_ARRIVAL = re.compile(r"Latest arrival time in '(?P<module>[^']+)' is (?P<ps>\d+):")
_CELL = re.compile(r"^\s+\d+\s+\S+\s+\((?P<type>\w+)\.(?P<pins>[^)]*)\)")
_CLOCK_CELLS = {"IBUF", "BUFG", "BUFGCTRL"}
_LAUNCH = re.compile(r"(C|CLK)->")  # a register's or a DSP48's clock-to-out arc starts the path


@dataclass
class UnitTiming:
    unit: str
    layer: str
    logic_ns: float  # arrival time of the latest endpoint, clock-to-Q included
    hops: int  # nets on that path
    routing_ns: float
    path_ns: float
    meets: bool  # path_ns fits the clock period


def _paths(log: str) -> dict[str, tuple[int, int]]:
    """{module: (latest arrival ps, nets on its path)} from yosys `sta` output."""
    found: dict[str, tuple[int, int]] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = _ARRIVAL.search(line)
        if not m:
            continue
        cells = 0
        for follow in lines[i + 1:]:
            c = _CELL.match(follow)
            if c is None:
                if follow.strip().startswith("Arrival histogram") or _ARRIVAL.search(follow):
                    break
                continue
            if c["type"] not in _CLOCK_CELLS and not _LAUNCH.match(c["pins"]):
                cells += 1  # every cell on the path, the endpoint register included, is entered by one net
        found[m["module"].lstrip("\\")] = (int(m["ps"]), cells)
    return found


def analyse(rtl_dir: str | Path, clock_mhz: float | None = None, timeout: float = 3600) -> dict:
    """Per unit of the design in ``rtl_dir``: logic delay, routing allowance, path and whether it
    meets the clock; plus the slowest unit. Raises SynthesisError when yosys fails."""
    yosys = yosys_binary()
    rtl_dir = Path(rtl_dir)
    design = rtl.load_design(rtl_dir)
    period = 1000.0 / (clock_mhz or devices.get().mhz)
    modules = {f"{rtl.TOP_NAME}.{u.instance}": u for u in design.units}
    with tempfile.TemporaryDirectory() as tmp:
        netlist = Path(tmp) / "netlist.v"
        synth = "\n".join([
            *elaborate(design),
            f"synth_xilinx -family xc7 -abc9 -top {rtl.TOP_NAME}",
            f"write_verilog -noattr {netlist}",
        ])
        per_unit = [line for name in modules for line in ("design -load netlist", f"hierarchy -top \\{name}", "sta")]
        sta = "\n".join(["read_verilog -lib -specify +/xilinx/cells_sim.v +/xilinx/cells_xtra.v",
                         f"read_verilog {netlist}", "design -save netlist", *per_unit])
        try:
            for script in (synth, sta):
                result = subprocess.run([yosys, "-p", script], cwd=rtl_dir, capture_output=True, text=True, timeout=timeout)
                if result.returncode != 0:
                    raise SynthesisError(f"yosys timing run failed in {rtl_dir}: {(result.stdout + result.stderr)[-2000:]}")
        except subprocess.TimeoutExpired as e:
            raise SynthesisError(f"yosys did not finish within {timeout:.0f} s in {rtl_dir}", fix="use --yosys-timeout") from e
        paths = _paths(result.stdout)
    units = []
    for name, unit in modules.items():
        if name not in paths:
            raise SynthesisError(f"yosys sta gave no path for {name} in {rtl_dir}")
        ps, hops = paths[name]
        routing = ROUTING_NS_PER_HOP * hops
        total = ps / 1000 + routing
        units.append(UnitTiming(unit.name, unit.layer, ps / 1000, hops, routing, total, total <= period))
    slowest = max(units, key=lambda t: t.path_ns)
    return {"note": NOTE, "clock_ns": period, "critical_path_ns": slowest.path_ns, "slowest_unit": slowest.unit,
            "meets_clock": all(t.meets for t in units), "units": [asdict(t) for t in units]}
