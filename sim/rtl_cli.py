"""`flipflow sim`: generate the RTL of a model, simulate it with Verilator on real
test images, compare bit for bit with the golden model, measure cycles against
the analytical model and estimate resources with yosys; writes sim_report.json."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from flipflow import atomic, ir
from flipflow.generator import devices

CLOCK_MHZ = devices.get().mhz


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="RTL simulation (Verilator) against the golden model: mismatches, cycles, resources")
    p.add_argument("model", help="zoo name (e.g. nin_pruned) or IR file")
    p.add_argument("--images", type=int, default=100, help="first N test images (default: 100)")
    p.add_argument("--out", type=Path, default=None, help="build folder (default: build/<model>); report: <out>/sim_report.json")
    p.add_argument("--folding", type=Path, default=None, help="folding JSON (generator.folding.save); default: "
                   "<out>/folding.json if the HLS step wrote one, else a simple default")
    p.add_argument("--no-resources", action="store_true", help="skip the yosys resource estimate")
    p.add_argument("--no-timing", action="store_true", help="skip the per-unit timing estimate (yosys sta, minutes)")
    p.add_argument("--yosys-timeout", type=float, default=3600, help="seconds for yosys synth_xilinx (default 3600)")
    p.add_argument("--early-exit", action="store_true",
                   help="turn early exit on in every XNOR layer of the folding and simulate it side by side with the same "
                        "folding without: skipped_fraction, mean and worst cycles per frame, the cycle model's prediction")
    p.set_defaults(func=_sim)


def _pct(measured: float, model: float) -> float | None:
    return None if not model or math.isnan(measured) else round(100.0 * (measured - model) / model, 2)


def _without_early_exit(net, folding, out: Path, images) -> dict:
    """The same folding without early exit, simulated on the same images (the side-by-side
    half of `flipflow sim --early-exit`)."""
    from flipflow.sim.rtl import RtlSimulator

    sim = RtlSimulator(net, folding, build_dir=out / "rtl_sim", quiet=False)
    print(f"flipflow sim: simulating {len(images)} images of {net.name} without early exit", file=sys.stderr)
    run = sim.run(images)
    frames = run.frame_cycles
    return {"mismatches": sim.compare(images, run).mismatches, "cycles_per_frame": run.cycles_per_frame,
            "mean_frame_cycles": round(float(frames.mean()), 2), "worst_frame_cycles": int(frames.max()),
            "fps_at_100mhz": round(CLOCK_MHZ * 1e6 / run.cycles_per_frame, 1)}


def _early_exit_fields(net, sim, run, images, without: dict | None) -> dict:
    """sim_report.json's early-exit fields: skipped_fraction (fold slots of the early-exit
    units skipped), mean and worst cycles per frame (measured) beside the cycle model's
    (generator/earlyexit.py on the same images) and, side by side, the run without."""
    from flipflow.generator import earlyexit
    from flipflow.generator.folding import LayerConfig
    from flipflow.sim.rtl import skipped_fraction

    frames = run.frame_cycles
    fields = {"early_exit": without is not None, "mean_frame_cycles": round(float(frames.mean()), 2),
              "worst_frame_cycles": int(frames.max()) if frames.size else None}
    if without is None:
        return fields
    folding = {k: LayerConfig(**v) for k, v in sim.design.folding.items()}
    model = earlyexit.analyse(net, folding, images).hardware()
    fields.update(
        skipped_fraction=round(skipped_fraction(sim.design, run, len(images)), 5),
        without_early_exit=without,
        speedup=round(without["cycles_per_frame"] / run.cycles_per_frame, 4),
        early_exit_model={**model, "note": "per_image: each frame at its slowest layer (no FIFO averaging); fifo_bound: "
                                          "the slowest layer's mean (FIFOs deep enough to average the layers)"},
    )
    return fields


def _sim(args: argparse.Namespace) -> int:
    from flipflow.generator import folding as folding_mod
    from flipflow.sim import resources, timing
    from flipflow.sim.rtl import RtlSimulator
    from flipflow.training import datasets

    path = ir.resolve(args.model)
    net = ir.load(path)
    out = args.out or Path("build") / Path(args.model).name.removesuffix(".ir.npz").removesuffix(".npz")
    folding_path = args.folding or (out / "folding.json" if (out / "folding.json").is_file() else None)
    folding = folding_mod.load(folding_path) if folding_path else None
    test = datasets.load(net.dataset).test.head(args.images)
    atomic.make_dir(out)
    without = None
    if args.early_exit:
        base = folding or folding_mod.default(net)
        without = _without_early_exit(net, {k: replace(f, early_exit=False) for k, f in base.items()}, out, test.images)
        folding = folding_mod.with_early_exit(net, base)

    t0 = time.perf_counter()
    sim = RtlSimulator(net, folding, build_dir=out / ("rtl_sim_early_exit" if args.early_exit else "rtl_sim"), quiet=False)
    build_s = time.perf_counter() - t0
    print(f"flipflow sim: simulating {len(test)} images of {net.name}", file=sys.stderr)
    t0 = time.perf_counter()
    run = sim.run(test.images)
    sim_s = time.perf_counter() - t0
    comparison = sim.compare(test.images, run)
    model = sim.model_cycles()
    cpf = run.cycles_per_frame
    report = {
        "model": net.name,
        "ir": str(path),
        "simulator": "verilator (compiled harness, full-rate streams)",
        "images": len(test),
        "mismatches": comparison.mismatches,
        "first_mismatch": str(comparison.layer_mismatch) if comparison.layer_mismatch else None,
        "cycles_per_frame": None if math.isnan(cpf) else cpf,
        "latency_cycles": run.latency_cycles,
        "fps_at_100mhz": None if math.isnan(cpf) else round(CLOCK_MHZ * 1e6 / cpf, 1),
        "model_cycles": {
            **model,
            "cycles_per_frame_error_pct": _pct(cpf, model["cycles_per_frame"]),
            "latency_error_pct": _pct(run.latency_cycles, model["latency_cycles"]),
            "note": "cycles_per_frame: the slowest unit of the one cycle model (kinds.py: input stream, window, matrix-vector, pool, sum, result units)",
        },
        "folding": sim.design.folding,
        "units": [{"name": u.name, "layer": u.layer, "cycles": u.cycles} for u in sim.design.units],
        "times_s": {"build": round(build_s, 1), "simulate": round(sim_s, 2),
                    "simulated_images_per_s": round(len(test) / sim_s, 1)},
        "rtl_dir": str(sim.rtl_dir),
    }
    report.update(_early_exit_fields(net, sim, run, test.images, without))
    if not args.no_resources:
        print("flipflow sim: yosys synth_xilinx resource estimate", file=sys.stderr)
        t0 = time.perf_counter()
        try:
            est = resources.synthesize(sim.rtl_dir, timeout=args.yosys_timeout)
            report["resources"] = est["total"]
            report["resources_note"] = est["note"]
            report["resources_per_layer"] = est["layers"]
            report["resources_per_unit"] = est["units"]  # what sim/calibrate_cost.py fits to
        except resources.SynthesisError as e:
            report["resources"] = None
            report["resources_note"] = str(e)
            print(f"flipflow sim: {e}", file=sys.stderr)
        report["times_s"]["yosys"] = round(time.perf_counter() - t0, 1)
    if not args.no_timing:
        print("flipflow sim: per-unit timing estimate (yosys synth_xilinx -abc9 + sta)", file=sys.stderr)
        t0 = time.perf_counter()
        try:
            report["timing"] = timing.analyse(sim.rtl_dir, CLOCK_MHZ, timeout=args.yosys_timeout)
            slow = [t["unit"] for t in report["timing"]["units"] if not t["meets"]]
            if slow:
                print(f"flipflow sim: estimated paths over {report['timing']['clock_ns']:g} ns in {', '.join(slow)} "
                      f"(critical {report['timing']['critical_path_ns']:.1f} ns in {report['timing']['slowest_unit']})",
                      file=sys.stderr)
        except resources.SynthesisError as e:
            report["timing"] = None
            print(f"flipflow sim: {e}", file=sys.stderr)
        report["times_s"]["timing"] = round(time.perf_counter() - t0, 1)
    atomic.write_json(out / "sim_report.json", report)
    summary = {k: report[k] for k in ("model", "images", "mismatches", "cycles_per_frame", "latency_cycles", "fps_at_100mhz")}
    if without is not None:
        summary.update({k: report[k] for k in ("early_exit", "skipped_fraction", "worst_frame_cycles", "without_early_exit",
                                                "early_exit_model")})
    critical = report.get("timing") and report["timing"]["critical_path_ns"]
    print(json.dumps({**summary, "resources": report.get("resources"), "critical_path_ns": critical}, indent=2))
    if without is not None and without["mismatches"]:
        print(f"flipflow sim: {without['mismatches']} of {len(test)} images differ without early exit", file=sys.stderr)
        return 1
    if comparison.mismatches:
        print(f"flipflow sim: {comparison.mismatches} of {len(test)} images differ from the golden model; "
              f"{comparison.layer_mismatch}", file=sys.stderr)
        return 1
    return 0
