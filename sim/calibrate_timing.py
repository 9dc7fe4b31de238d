"""Calibrate generator/timing_model.py against yosys sta of the library modules.

    python -m flipflow.sim.calibrate_timing [--jobs N]

Synthesizes flipflow_mvu alone (``synth_xilinx -family xc7 -abc9``, random
weight and threshold memories) at configurations spanning the folding search's
range: every datapath, PE 2 .. 64, SIMD 8 .. 256, shallow and deep weight
memories, narrow and wide accumulators; and the other library modules at
typical and wide parameters; and every unit of tfc in its generated design
(trained weights). Times each with ``sta`` exactly as sim/timing.py
does (cell delays plus its routing allowance per net hop) and writes
generator/timing_calibration.json: the measurements, and per datapath the
fitted coefficients of the model (least squares, then raised by the largest
shortfall so that the model is conservative on every measured point).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from flipflow import atomic
from flipflow.generator import pack, rtl, timing_model
from flipflow.sim.resources import SynthesisError, yosys_binary
from flipflow.sim.timing import ROUTING_NS_PER_HOP, _paths

# (datapath, out_ch, fan_in, PE, SIMD, weight placement): NF x SF from 1 to hundreds, PE up to 64,
# SIMD up to 256, weights in LUTs and in block RAM. Deep 1..2-bit-wide weight memories are left
# out: yosys 0.23's abc9 aborts on their block RAMs.
MVU_CONFIGS = [
    ("binary", 64, 576, 4, 8), ("binary", 64, 576, 16, 32), ("binary", 64, 576, 64, 64), ("binary", 16, 256, 16, 256),
    ("binary", 10, 9, 10, 9), ("pixels", 64, 27, 16, 27), ("pixels", 64, 27, 4, 9),
    ("scores", 10, 64, 2, 8), ("scores", 10, 576, 10, 64), ("binary", 64, 64, 1, 6), ("binary", 64, 256, 2, 4),
    ("binary", 64, 576, 16, 32, "block"), ("binary", 128, 1152, 2, 576, "block"), ("pixels", 64, 27, 4, 9, "block"),
    ("scores", 10, 576, 10, 64, "block"), ("scores", 10, 155, 1, 6, "block"),
]
# and every unit of tfc at this folding, in its design: trained weights give ROM logic that random
# ones do not (the same flipflow_mvu parameters measured 4.8 ns with random and 6.3 ns with tfc's weights)
TFC_FOLDING = [(4, 16), (1, 6), (1, 6), (1, 1)]
# other modules at wide typical parameters (their paths do not depend on the folding)
OTHER_CONFIGS = [
    ("flipflow_swu", dict(H=32, W=32, EW=64, K=3, S=1, PAD=1)), ("flipflow_maxpool", dict(CH=256, K=3)),
    ("flipflow_global_sum", dict(CH=10, IN_BITS=16, PIXELS=64)), ("flipflow_gather", dict(CH=3)),
    ("flipflow_result", dict(CH=10, IN_BITS=32)),
]
CALIBRATION = Path(__file__).resolve().parents[1] / "generator" / timing_model.CALIBRATION_FILE


def mvu_parameters(datapath: str, out_ch: int, fan_in: int, pe: int, simd: int,
                   weight_ram: str = "distributed") -> dict[str, int | str]:
    """flipflow_mvu's parameters for a layer of this shape, one input beat per window."""
    wb = {"binary": 1, "pixels": 8, "scores": 2}[datapath]
    w_lo, w_hi = (0, 1) if datapath == "binary" else (-(1 << (wb - 1)), (1 << (wb - 1)) - 1)
    x_hi = 255 if datapath == "pixels" else 1  # the worst weights: every term at its extreme
    kind_datapath = {v: k for k, v in rtl.RTL_DATAPATHS.items()}[datapath]
    aw = pack.accumulator_width(kind_datapath, min(w_lo * x_hi, -w_hi) * fan_in if datapath != "binary" else 0,
                                max(w_hi * x_hi, -w_lo) * fan_in, wb)
    lane = 8 if datapath == "pixels" else 1
    return dict(DATAPATH=datapath, OUT_CH=out_ch, FAN_IN=fan_in, PE=pe, SIMD=simd, WB=wb, AW=aw, POSITIONS=1,
                EW=fan_in * lane, WEIGHT_RAM=weight_ram)


def _memory(path: Path, width: int, depth: int, rng: random.Random) -> str:
    digits = max(1, -(-width // 4))
    path.write_text("".join(f"{rng.getrandbits(width):0{digits}x}\n" for _ in range(depth)))
    return str(path)


def measure(module: str, parameters: dict[str, int | str], timeout: float = 3600) -> dict:
    """yosys sta of one library module: its longest path with sim/timing.py's routing allowance.
    A flipflow_mvu without WEIGHT_FILE gets random weight and threshold memories."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        params = dict(parameters)
        if module == "flipflow_mvu" and "WEIGHT_FILE" not in params:  # random memories unless given
            rng = random.Random(0)
            nf = -(-params["OUT_CH"] // params["PE"])
            sf = -(-params["FAN_IN"] // params["SIMD"])
            params["WEIGHT_FILE"] = _memory(tmp_path / "w.mem", params["PE"] * params["SIMD"] * params["WB"], nf * sf, rng)
            params["THRESH_FILE"] = "" if params["DATAPATH"] == "scores" else _memory(tmp_path / "t.mem", params["PE"] * params["AW"], nf, rng)
        chparam = " ".join(f"-set {k} {rtl.verilog_value(v)}" for k, v in params.items())
        netlist = tmp_path / "netlist.v"
        scripts = [
            f"read_verilog -defer -sv {rtl.TEMPLATES / (module + '.v')}; chparam {chparam} {module}; "
            f"synth_xilinx -family xc7 -abc9 -top {module}; rename -top unit; write_verilog -noattr {netlist}",
            f"read_verilog -lib -specify +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; read_verilog {netlist}; "
            "hierarchy -top unit; sta",
        ]
        for script in scripts:
            result = subprocess.run([yosys_binary(), "-p", script], cwd=tmp, capture_output=True, text=True, timeout=timeout)
            if result.returncode != 0:
                raise SynthesisError(f"yosys failed on {module} {parameters}: {(result.stdout + result.stderr)[-2000:]}")
        ps, hops = _paths(result.stdout)["unit"]
    return {"module": module, "parameters": parameters, "logic_ns": ps / 1000, "hops": hops,
            "path_ns": ps / 1000 + ROUTING_NS_PER_HOP * hops}


def design_measurements(timeout: float = 3600) -> list[dict]:
    """sim/timing.py's per-unit paths of tfc at TFC_FOLDING, as calibration points."""
    from flipflow import ir
    from flipflow.generator.folding import LayerConfig
    from flipflow.sim import timing

    net = ir.load_model("tfc")
    layers = [l for l in net.layers if l.has_weights]
    with tempfile.TemporaryDirectory() as tmp:
        design = rtl.generate(net, {l.name: LayerConfig(*f) for l, f in zip(layers, TFC_FOLDING)}, tmp)
        report = timing.analyse(tmp, timeout=timeout)
    units = {u.name: u for u in design.units}
    return [{"module": units[t["unit"]].module, "design": "tfc",
             "parameters": {k: v for k, v in units[t["unit"]].parameters.items() if not k.endswith("_FILE")},
             "logic_ns": t["logic_ns"], "hops": t["hops"], "path_ns": t["path_ns"]} for t in report["units"]]


def _key(module: str, parameters: dict) -> str:
    """A point's identity (points stored before WEIGHT_RAM was a parameter had LUT weights)."""
    defaults = {"WEIGHT_RAM": "distributed"} if module == "flipflow_mvu" else {}
    return json.dumps([module, {**defaults, **parameters}], sort_keys=True)


def fit(measurements: list[dict]) -> dict:
    """Coefficients of timing_model.features per datapath: one least-squares fit over every
    flipflow_mvu point with a constant per datapath and shared slopes (clipped at 0: no
    feature shortens a path), then each constant raised by its datapath's largest
    shortfall, so no measured point lies above the model. Per other module: its largest path."""
    datapaths = list(rtl.RTL_DATAPATHS.values())
    rows = [m for m in measurements if m["module"] == "flipflow_mvu"]
    feats = np.array([timing_model.features(**timing_model.mvu_shape(m["parameters"])) for m in rows], dtype=float)
    which = np.array([[m["parameters"]["DATAPATH"] == d for d in datapaths] for m in rows], dtype=float)
    x = np.hstack([which, feats[:, 1:]])  # a constant per datapath, then the shared slopes
    y = np.array([m["path_ns"] for m in rows])
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    slopes = np.round(np.maximum(w[len(datapaths):], 0.0), 4)
    coefficients: dict[str, dict] = {}
    for i, datapath in enumerate(datapaths):
        mine = which[:, i] == 1
        shortfall = y[mine] - feats[mine, 1:] @ slopes
        weights = [math.ceil(float(np.max(shortfall)) * 1e4) / 1e4] + [float(v) for v in slopes]
        over = feats[mine] @ np.array(weights) - y[mine]
        coefficients[datapath] = {"weights": weights, "max_over_ns": round(float(np.max(over)), 3), "points": int(mine.sum())}
    others: dict[str, float] = {}
    for m in measurements:
        if m["module"] != "flipflow_mvu":
            others[m["module"]] = max(others.get(m["module"], 0.0), math.ceil(m["path_ns"] * 1e3) / 1e3)
    return {"mvu": coefficients, "modules": others}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1, help="yosys runs at once")
    ap.add_argument("--refit", action="store_true", help="refit the measurements already in the file")
    ap.add_argument("--datapaths", help="re-measure only these flipflow_mvu datapaths (comma-separated) and the tfc "
                                        "design, keeping the file's other measurements (after an RTL change to them)")
    args = ap.parse_args(argv)
    if args.refit:
        measurements = json.loads(CALIBRATION.read_text())["measurements"]
    else:
        work = [("flipflow_mvu", mvu_parameters(*c)) for c in MVU_CONFIGS] + OTHER_CONFIGS
        kept = []
        if args.datapaths:  # keep the stored points of the other datapaths; measure what is new
            redo = set(args.datapaths.split(","))
            kept = [m for m in json.loads(CALIBRATION.read_text())["measurements"]
                    if "design" not in m and m["parameters"].get("DATAPATH") not in redo]
            have = {_key(m["module"], m["parameters"]) for m in kept}
            work = [w for w in work if _key(*w) not in have]
        with ThreadPoolExecutor(args.jobs) as pool:
            measurements = []
            for m in pool.map(lambda w: measure(*w), work):
                measurements.append(m)
                print(f"{m['module']} {m['parameters']}: {m['path_ns']:.2f} ns", file=sys.stderr, flush=True)
        measurements += kept + design_measurements()
    atomic.write_json(CALIBRATION, {
        "command": "python -m flipflow.sim.calibrate_timing",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "routing_ns_per_hop": ROUTING_NS_PER_HOP,
        "features": list(timing_model.FEATURES),
        **fit(measurements),
        "measurements": measurements,
    }, indent=1)
    print(f"wrote {CALIBRATION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
