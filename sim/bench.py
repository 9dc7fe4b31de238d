"""The benchmark report: baseline vs pruned NIN side by side in one device
budget, and FINN's CNV-W1A1 topology at FINN's folding beside FINN's figure.

Rows (report.json ``rows[]``):

* ``nin`` and ``nin_pruned`` at the *same* folding (nin's best folding in the
  budget, PE/SIMD clamped to the pruned widths) and each at its *best*
  folding in the same budget (``folding.optimize``);
* ``cnv_w1a1`` at FINN's published folding;
* ``variants`` (role ``variant``): other models at their best folding in the same
  budget, e.g. the bit-plane-input nin_planes4 (CBNN);
* with ``early_exit``: ``nin_pruned`` at its best folding when the search may
  also choose early exit per XNOR layer (``folding.optimize(expected=...)``,
  docs/DESIGN.md "Early exit: hardware"), label ``best, early exit``.

Every row carries ``early_exit``: whether any layer of its folding has it.

Cycles per frame are predicted by ``generator.cost`` and measured in the RTL
simulation (``sim.rtl.RtlSimulator``, steady state over a few frames); a
simulation that cannot finish in its time limit is reported as such, never
estimated. Accuracy is the golden model's on the full test set. Resources
are the analytical model's (``generator.cost``; calibrated against yosys when
``cost_calibration.json`` exists).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flipflow import atomic, ir
from flipflow.errors import UsageError
from flipflow.generator import cost, devices
from flipflow.generator import folding as fold

FINN_CNV_FOLDING = [(16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8), (5, 1)]
FINN_CNV_CYCLES = 32_768  # FINN / BNN-PYNQ: slowest layer of CNV-W1A1 at this folding (docs/DESIGN.md, "Sources")
SYNTHETIC_PRUNE_SCALE = 0.75  # stand-in pruned widths when the zoo has no nin_pruned: -41% binary ops
SPEEDUP_BAR = 1.5
CNV_TOLERANCE = 0.02


@dataclass
class BenchModel:
    name: str
    net: ir.Network
    source: str  # where it came from, for the report
    role: str = "baseline"  # baseline | pruned | reference


# -- models -------------------------------------------------------------------------

def _calibration_images(shape: tuple[int, int, int], n: int = 64) -> np.ndarray:
    """Real Fashion-MNIST images fitted to ``shape`` (centred, channels replicated)."""
    from flipflow.training import datasets

    imgs = datasets.fashion_mnist().train.images[:n]  # (n, 28, 28, 1)
    h, w, c = shape
    out = np.zeros((n, h, w, c), np.uint8)
    hh, ww = min(h, 28), min(w, 28)
    y0, x0 = (h - hh) // 2, (w - ww) // 2
    out[:, y0 : y0 + hh, x0 : x0 + ww, :] = imgs[:, :hh, :ww, :1]
    return out


def synthetic(arch_name: str, name: str, input_shape: tuple[int, int, int], classes: list[str], dataset: str,
              seed: int = 0, **arch_kw) -> ir.Network:
    """An untrained, BN-calibrated network of a zoo architecture (training.synthetic)."""
    from flipflow.training import export, models
    from flipflow.training import synthetic as synth

    arch = models.build_arch(arch_name, input_shape, classes, **arch_kw)
    model = synth.calibrated_model(arch, _calibration_images(input_shape), seed=seed)
    return export.export(model, name, dataset, provenance={"synthetic": True, "arch": arch_name})


def load_models(names: tuple[str, str]) -> list[BenchModel]:
    """The baseline and pruned models from the zoo, or synthetic stand-ins (said so)."""
    from flipflow.training import datasets, models

    found = []
    for name in names:
        try:
            path = ir.resolve(name)
            net = ir.load(path)
            where = path.relative_to(ir.ZOO.parent) if path.is_relative_to(ir.ZOO.parent) else path
            found.append(BenchModel(net.name, net, f"{where}"))
        except ir.IRError:
            found.append(None)
    if all(found):
        return _roles(found)
    fm = datasets.fashion_mnist()
    out = []
    for name, have in zip(names, found):
        if have:
            out.append(have)
            continue
        pruned = "pruned" in name
        widths = tuple(max(1, round(w * SYNTHETIC_PRUNE_SCALE)) for w in models.NIN_WIDTHS) if pruned else models.NIN_WIDTHS
        net = synthetic("nin", name, fm.input_shape, fm.classes, "fashion_mnist", widths=widths)
        how = f"widths x{SYNTHETIC_PRUNE_SCALE} of nin's" if pruned else "nin widths"
        out.append(BenchModel(name, net, f"synthetic stand-in (zoo/{name} missing): untrained BN-calibrated NIN, {how}"))
    return _roles(out)


def _roles(pair: list[BenchModel]) -> list[BenchModel]:
    pair[0].role, pair[1].role = "baseline", "pruned"
    return pair


def cnv_model() -> BenchModel:
    net = synthetic("cnv", "cnv_w1a1", (32, 32, 3), [str(i) for i in range(10)], "cifar10")
    return BenchModel("cnv_w1a1", net, "FINN CNV-W1A1 topology, untrained BN-calibrated on Fashion-MNIST images "
                                       "padded to 32x32x3 (no CIFAR-10 here): cycles and resources only", "reference")


def finn_cnv_folding(net: ir.Network) -> fold.Folding:
    layers = [l for l in net.layers if l.has_weights]
    if len(layers) != len(FINN_CNV_FOLDING):
        raise UsageError(f"{net.name}: {len(layers)} weighted layers, FINN's CNV folding has {len(FINN_CNV_FOLDING)}")
    return {l.name: fold.LayerConfig(*pf) for l, pf in zip(layers, FINN_CNV_FOLDING)}


def same_folding(reference: fold.Folding, ref_net: ir.Network, net: ir.Network) -> fold.Folding:
    """Apply a folding layer by layer (same position) to a narrower net, clamped to its widths."""
    ref_layers = [l for l in ref_net.layers if l.has_weights]
    layers = [l for l in net.layers if l.has_weights]
    if [l.kind for l in ref_layers] != [l.kind for l in layers]:
        raise UsageError(f"{net.name} and {ref_net.name} do not have the same layer sequence", fix="compare a baseline with its own pruned net (--models BASELINE PRUNED)")
    return {
        l.name: fold.LayerConfig(min(reference[r.name].pe, l.out_ch), min(reference[r.name].simd, l.fan_in))
        for r, l in zip(ref_layers, layers)
    }


# -- measurements ------------------------------------------------------------------------

def _digest(net: ir.Network) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return hashlib.sha256(net.save(Path(tmp) / "m.ir.npz").read_bytes()).hexdigest()[:16]


def golden_accuracy(net: ir.Network, cache: Path, images: int | None = None) -> float | None:
    """Top-1 accuracy of the golden model on the (full) test set; cached by IR content."""
    if net.provenance.get("synthetic") or net.dataset not in ("fashion_mnist", "digits"):
        return None
    from flipflow import golden
    from flipflow.training import datasets

    key = f"{_digest(net)}:{images}"
    data = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in data:
        test = datasets.load(net.dataset).test.head(images)
        print(f"flipflow bench: golden accuracy of {net.name} on {len(test)} test images", file=sys.stderr)
        data[key] = golden.accuracy(net, test.images, test.labels)
        atomic.write_json(cache, data, indent=1)
    return data[key]


def simulate(net: ir.Network, folding: fold.Folding, build_dir: Path, frames: int, timeout: float,
             synthesize: bool = False) -> dict:
    """Steady-state cycles per frame from the RTL simulation and, with ``synthesize``, the
    yosys resources and timing of the same Verilog, in a child process that is killed (with
    its compiler) when it runs past ``timeout`` seconds."""
    build_dir = build_dir.resolve()  # the simulator runs tools from inside it
    build_dir.mkdir(parents=True, exist_ok=True)
    net.save(build_dir / "bench_model.ir.npz")
    fold.save(folding, build_dir / "bench_folding.json")
    result = build_dir / "bench_sim.json"
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "flipflow.sim.bench", "simulate", str(build_dir), str(frames), str(int(synthesize))]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"cycles_per_frame": None,
                "note": f"RTL simulation did not finish within {timeout:.0f} s (compile + {frames} frames{' + yosys' if synthesize else ''})"}
    if proc.returncode != 0 or not result.is_file():
        return {"cycles_per_frame": None, "note": f"RTL simulation failed: {err.strip()[-500:]}"}
    data = json.loads(result.read_text())
    data["seconds"] = round(time.perf_counter() - t0, 1)
    return data


def _simulate_child(build_dir: Path, frames: int, synthesize: bool) -> None:
    """Child side of ``simulate``: build, run ``frames`` test images, check against golden;
    then yosys resources and per-unit timing of the same Verilog when asked."""
    from flipflow.sim import resources, timing
    from flipflow.sim.rtl import RtlSimulator

    net = ir.load(build_dir / "bench_model.ir.npz")
    folding = fold.load(build_dir / "bench_folding.json")
    sim = RtlSimulator(net, folding, build_dir=build_dir)
    images = _calibration_images(net.input_shape, frames)
    run = sim.run(images)
    comparison = sim.compare(images, run)
    data = {
        "cycles_per_frame": run.cycles_per_frame,
        "latency_cycles": run.latency_cycles,
        "frames": frames,
        "mismatches": comparison.mismatches,
        "note": f"steady state over {frames} frames (mean result spacing, second half)",
    }
    if synthesize:
        print(f"flipflow bench: yosys resources and timing of {net.name}", file=sys.stderr)
        data["yosys"] = resources.synthesize(sim.rtl_dir)["total"]
        data["timing"] = timing.analyse(sim.rtl_dir)
    atomic.write_json(build_dir / "bench_sim.json", data)


# -- the report ---------------------------------------------------------------------------

def _row(model: BenchModel, label: str, plan: fold.Plan, budget: devices.Budget, accuracy: float | None,
         sim: dict) -> dict:
    totals = plan.totals
    simulated = sim.get("cycles_per_frame")
    layer = model.net.layer(plan.bottleneck)
    full = fold.LayerConfig(layer.out_ch, layer.fan_in) if layer.has_weights else None
    floor = cost.layer_cost(layer, full).cycles  # fully parallel: only the unit's own beat rate remains
    cycles = simulated if simulated else plan.cycles_per_frame
    limits = budget.limits()
    yosys, timing = sim.get("yosys"), sim.get("timing")
    return {
        "model": model.name,
        "role": model.role,
        "folding": label,
        "early_exit": any(c.early_exit for c in plan.folding.values()),
        "source": model.source,
        "accuracy": accuracy,
        "binary_ops": model.net.binary_ops,
        "cycles_per_frame_predicted": plan.cycles_per_frame,
        "cycles_per_frame_simulated": simulated,
        "simulation": sim,
        "fps_at_100mhz": 100e6 / cycles,
        "fps_source": "simulated" if simulated else "predicted",
        "bottleneck": plan.bottleneck,
        "bottleneck_limit": "unit floor (window/stream beats, not PE/SIMD)" if plan.cycles_per_frame <= floor else "folding",
        "LUT": round(totals["LUT"]),
        "FF": round(totals["FF"]),
        "BRAM36": totals["BRAM36"],
        "DSP": round(totals["DSP"]),
        "fits_budget": all(totals[k] <= limits[k] for k in fold.RESOURCE_KEYS),
        "lut_yosys": yosys["LUT"] if yosys else None,
        "ff_yosys": yosys["FF"] if yosys else None,
        # design LUT and FF from yosys, BRAM36 and DSP from the model (yosys infers fewer BRAMs than Vivado)
        "utilisation_after_shell": budget.utilisation({**totals, "LUT": yosys["LUT"], "FF": yosys["FF"]}) if yosys else None,
        "critical_path_ns": timing["critical_path_ns"] if timing else None,
        "slowest_unit": timing["slowest_unit"] if timing else None,
        "layers": plan.to_dict()["layers"],
    }


def run(out_dir: Path, models: tuple[str, str] = ("nin", "nin_pruned"), budget: devices.Budget | None = None,
        sim_frames: int = 4, sim_timeout: float = 900, with_cnv: bool = True, images: int | None = None,
        simulate_rtl: bool = True, synthesize: bool = True, early_exit: bool = False,
        variants: tuple[str, ...] = ()) -> dict:
    """Run the whole benchmark and write report.json, report.md and report.png into ``out_dir``.
    ``synthesize``: yosys resources and timing of every simulated design (minutes each);
    ``early_exit``: add the pruned model's best folding with early exit allowed;
    ``variants``: zoo names or IR files added at their best folding."""
    out_dir = atomic.make_dir(out_dir)
    budget = budget or devices.budget()
    dev = budget.as_device()
    coefficients = cost.Coefficients.load()
    base, pruned = load_models(models)
    plans: list[tuple[BenchModel, str, fold.Plan]] = []
    best_base = fold.optimize(base.net, dev, coefficients=coefficients)
    best_pruned = fold.optimize(pruned.net, dev, coefficients=coefficients)
    same = same_folding(best_base.folding, base.net, pruned.net)
    plans.append((base, "same", best_base))
    plans.append((pruned, "same", fold.make_plan(pruned.net, same, dev, coefficients, "nin's best folding")))
    plans.append((base, "best", best_base))
    plans.append((pruned, "best", best_pruned))
    if early_exit:
        from flipflow.generator import earlyexit
        from flipflow.training import datasets

        expected = earlyexit.ExpectedCycles(pruned.net, datasets.load(pruned.net.dataset).train.head(64).images)
        plans.append((pruned, "best, early exit", fold.optimize(pruned.net, dev, coefficients=coefficients, expected=expected)))
    for name in variants:
        model = BenchModel(ir.model_label(name), ir.load_model(name), str(ir.resolve(name)), "variant")
        plans.append((model, "best", fold.optimize(model.net, dev, coefficients=coefficients)))
    if with_cnv:
        cnv = cnv_model()
        plans.append((cnv, "finn", fold.make_plan(cnv.net, finn_cnv_folding(cnv.net), dev, coefficients, "FINN's folding")))
    rows, sims = [], {}
    for model, label, plan in plans:
        key = (model.name, tuple(sorted(plan.folding.items(), key=lambda kv: kv[0])))
        if key not in sims:
            if simulate_rtl and sim_frames > 0:
                print(f"flipflow bench: RTL simulation of {model.name} ({label} folding), {sim_frames} frames", file=sys.stderr)
                sims[key] = simulate(model.net, plan.folding, out_dir / "sim" / f"{model.name}_{label}", sim_frames, sim_timeout,
                                     synthesize)
            else:
                sims[key] = {"cycles_per_frame": None, "note": "simulation skipped (--no-sim)"}
        accuracy = golden_accuracy(model.net, out_dir / "accuracy_cache.json", images)
        rows.append(_row(model, label, plan, budget, accuracy, sims[key]))
    report = {
        "device": dev.to_dict(),
        "budget": budget.to_dict(),
        "cost_model": {"calibrated": bool(coefficients.calibration), "calibration": coefficients.calibration},
        "rows": rows,
        "summary": summarize(rows),
        "notes": [
            "Resources (LUT, FF, BRAM36, DSP) are the analytical model's (generator/cost.py).",
            "fps_at_100mhz uses simulated cycles where the simulation ran, else predicted cycles (fps_source).",
        ],
    }
    write_report(report, out_dir)
    return report


def _find(rows: list[dict], role: str, label: str) -> dict | None:
    return next((r for r in rows if r["role"] == role and r["folding"] == label), None)


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for label in ("same", "best"):
        b, p = _find(rows, "baseline", label), _find(rows, "pruned", label)
        if b and p:
            out[f"speedup_{label}_predicted"] = b["cycles_per_frame_predicted"] / p["cycles_per_frame_predicted"]
            if b["cycles_per_frame_simulated"] and p["cycles_per_frame_simulated"]:
                out[f"speedup_{label}_simulated"] = b["cycles_per_frame_simulated"] / p["cycles_per_frame_simulated"]
            out["binary_ops_reduction"] = 1 - p["binary_ops"] / b["binary_ops"]
    best_sim = out.get("speedup_best_simulated")
    out["bar_speedup_best"] = {"target": SPEEDUP_BAR, "value": best_sim, "met": bool(best_sim and best_sim >= SPEEDUP_BAR),
                               "basis": "simulated cycles, best folding of each in the same budget"}
    cnv = next((r for r in rows if r["role"] == "reference"), None)
    if cnv:
        sim = cnv["cycles_per_frame_simulated"]
        out["cnv_vs_finn"] = {
            "finn_cycles": FINN_CNV_CYCLES,
            "predicted": cnv["cycles_per_frame_predicted"],
            "predicted_error": cnv["cycles_per_frame_predicted"] / FINN_CNV_CYCLES - 1,
            "simulated": sim,
            "simulated_error": sim / FINN_CNV_CYCLES - 1 if sim else None,
            "met": bool(sim and abs(sim / FINN_CNV_CYCLES - 1) <= CNV_TOLERANCE),
            "tolerance": CNV_TOLERANCE,
        }
    return out



def _fmt(v, spec: str = ",.0f") -> str:
    if v is None:
        return "n/a"
    return format(v, spec)


def markdown(report: dict) -> str:
    dev = report["device"]
    lines = [
        "# flipflow benchmark",
        "",
        f"Device budget: {dev['name']} ({dev['part']}): {dev['lut']:,} LUT, {dev['ff']:,} FF, {dev['bram36']:g} BRAM36, "
        f"{dev['dsp']} DSP at {dev['mhz']:g} MHz ({report['budget']['ceiling']:.0%} of the device less the "
        f"{report['budget']['shell']['name']} shell and {report['budget']['model_reserve']['lut']:,.0f} LUT / "
        f"{report['budget']['model_reserve']['ff']:,.0f} FF for the cost model's error). Cost model calibrated against yosys: "
        f"{'yes' if report['cost_model']['calibrated'] else 'no (structural coefficients)'}. Utilisation after shell: the "
        "largest of (design + shell) / device over LUT, FF (both from yosys), BRAM36 and DSP (model). Critical path: "
        "the slowest unit's yosys logic delay plus 0.5 ns routing per net hop (sim/timing.py).",
        "",
        "| model | folding | accuracy | binary ops | cycles/frame predicted | cycles/frame simulated | frames/s @100 MHz | "
        "bottleneck | LUT model | LUT yosys | FF model | FF yosys | BRAM36 | DSP | utilisation after shell | critical path ns |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        acc = f"{100 * r['accuracy']:.2f}%" if r["accuracy"] is not None else "n/a"
        sim = _fmt(r["cycles_per_frame_simulated"]) if r["cycles_per_frame_simulated"] else f"n/a ({r['simulation'].get('note', '')})"
        lines.append(
            f"| {r['model']} | {r['folding']} | {acc} | {r['binary_ops']:,} | {r['cycles_per_frame_predicted']:,} | {sim} | "
            f"{r['fps_at_100mhz']:,.0f} ({r['fps_source']}) | {r['bottleneck']}{' (unit floor)' if r['bottleneck_limit'] != 'folding' else ''} "
            f"| {r['LUT']:,} | {_fmt(r['lut_yosys'])} | {r['FF']:,} | {_fmt(r['ff_yosys'])} | {r['BRAM36']:g} | {r['DSP']} "
            f"| {_fmt(r['utilisation_after_shell'], '.0%')} | {_fmt(r['critical_path_ns'], '.1f')} |"
        )
    s = report["summary"]
    lines += ["", "## Bars", ""]
    bar = s.get("bar_speedup_best", {})
    lines.append(f"- nin_pruned vs nin frames/s at each one's best folding in the same budget (simulated): "
                 f"{_fmt(bar.get('value'), '.2f')}x (bar {SPEEDUP_BAR}x: {'met' if bar.get('met') else 'NOT met'}); "
                 f"predicted {_fmt(s.get('speedup_best_predicted'), '.2f')}x; at the same folding predicted "
                 f"{_fmt(s.get('speedup_same_predicted'), '.2f')}x, simulated {_fmt(s.get('speedup_same_simulated'), '.2f')}x; "
                 f"binary ops -{100 * s.get('binary_ops_reduction', 0):.1f}%.")
    capped = [r for r in report["rows"] if r["role"] == "pruned" and r["folding"] == "best" and r["bottleneck_limit"] != "folding"]
    for r in capped:
        lines.append(f"- {r['model']} at its best folding is capped by {r['bottleneck']}'s {r['bottleneck_limit']}: more PE/SIMD "
                     f"cannot make it faster, so the budget freed by pruning is not turned into frames/s there.")
    if "cnv_vs_finn" in s:
        c = s["cnv_vs_finn"]
        err = f"{100 * c['simulated_error']:+.2f}%" if c["simulated_error"] is not None else "n/a"
        lines.append(f"- CNV-W1A1 at FINN's folding: predicted {c['predicted']:,} cycles/frame ({100 * c['predicted_error']:+.2f}%), "
                     f"simulated {_fmt(c['simulated'])} ({err}) vs FINN's {FINN_CNV_CYCLES:,} "
                     f"(bar within {100 * CNV_TOLERANCE:g}%: {'met' if c['met'] else 'NOT met'}).")
    lines += ["", "## Models", ""]
    seen = set()
    for r in report["rows"]:
        if r["model"] not in seen:
            seen.add(r["model"])
            lines.append(f"- {r['model']}: {r['source']}")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    lines += ["", "## Per-layer folding", ""]
    for r in report["rows"]:
        lines += [f"### {r['model']} ({r['folding']})", "", "| layer | PE | SIMD | cycles | LUT | BRAM36 |", "|---|---|---|---|---|---|"]
        for l in r["layers"]:
            lines.append(f"| {l['name']} | {l.get('pe', '')} | {l.get('simd', '')} | {l['cycles']:,} | {l['LUT']:,.0f} | {l['BRAM36']:g} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    labels = [f"{r['model']}\n({r['folding']})" for r in rows]
    x = np.arange(len(rows))
    predicted = [100e6 / r["cycles_per_frame_predicted"] for r in rows]
    simulated = [100e6 / r["cycles_per_frame_simulated"] if r["cycles_per_frame_simulated"] else 0 for r in rows]
    dev = report["device"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    ax1.bar(x - 0.2, predicted, 0.4, label="predicted")
    ax1.bar(x + 0.2, simulated, 0.4, label="simulated (RTL)")
    ax1.set_xticks(x, labels, fontsize=8)
    ax1.set_ylabel("frames/s at 100 MHz")
    ax1.set_title(f"Throughput in the {dev['name']} budget")
    ax1.legend()
    lut = [100 * r["LUT"] / dev["lut"] for r in rows]
    bram = [100 * r["BRAM36"] / dev["bram36"] for r in rows]
    dsp = [100 * r["DSP"] / dev["dsp"] for r in rows]
    ax2.bar(x - 0.27, lut, 0.27, label="LUT")
    ax2.bar(x, bram, 0.27, label="BRAM36")
    ax2.bar(x + 0.27, dsp, 0.27, label="DSP")
    ax2.axhline(100, color="k", lw=0.8, ls="--")
    ax2.set_xticks(x, labels, fontsize=8)
    ax2.set_ylabel(f"% of {dev['name']}")
    ax2.set_title("Resources (analytical model)")
    ax2.legend()
    fig.tight_layout()
    atomic.save_figure(fig, path)


def write_report(report: dict, out_dir: Path) -> None:
    atomic.write_json(out_dir / "report.json", report, indent=1)
    atomic.write_text(out_dir / "report.md", markdown(report))
    plot(report, out_dir / "report.png")


if __name__ == "__main__":  # child process of simulate()
    if len(sys.argv) == 5 and sys.argv[1] == "simulate":
        _simulate_child(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
    else:
        sys.exit("usage: python -m flipflow.sim.bench simulate BUILD_DIR FRAMES SYNTHESIZE(0|1)")
