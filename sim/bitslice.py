"""`flipflow bitslice`: 8-bit-input and bit-plane-input networks side by side in one
device budget (CBNN; docs/DESIGN.md, "Bit-plane input").

One row per network: what its first layer reads (``pixels`` or ``bitplanes`` and
the kept planes), top-1 of the golden model on the test set, binary ops, and the
folding search's best design in the budget (cycles per frame, frames/s at the
device clock, LUT, DSP, the first layer's DSP). The summary checks the bar of
the method: the best bit-plane network with at most ``MAX_PLANES`` planes loses
at most ``MAX_DROP_PT`` points against the 8-bit reference, its first layer uses
no DSP, and it runs at least as many frames/s in the same budget.

Training the bit-plane networks is `flipflow prune ARCH --planes ...` (make
prune MODEL=nin PLANES=7,6,5,4); this report compares what that wrote. A network
is a zoo name, an IR file, or such a prune run's folder (its pruned net, first
seed). Where the pruning comparison is at hand (the run's comparison.json, or the
zoo model's comparison/), top-1 is the mean over its fine-tuning seeds, as the bar
asks; otherwise the golden model of the one IR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flipflow import atomic, ir, kinds
from flipflow.errors import UsageError
from flipflow.generator import cost, devices
from flipflow.generator import folding as fold
from flipflow.sim.bench import golden_accuracy
from flipflow.training import reports

MAX_PLANES = 4
MAX_DROP_PT = 1.0


def default_out(model: str) -> Path:
    """build/<reference's label>-bitslice."""
    return Path("build") / f"{reports.model_source(model).label}-bitslice"


def row(source: reports.ModelSource, net: ir.Network, budget: devices.Budget, cache: Path,
        images: int | None) -> dict[str, Any]:
    """One network at its best folding in the budget, with its top-1: the mean over its
    fine-tuning seeds (full test set, from its pruning run) where known, else the golden model's."""
    seeds = source.seeds
    first = net.layers[0]
    planes = kinds.of(first).bit_planes
    plan = fold.optimize(net, budget.as_device(), coefficients=cost.Coefficients.load())
    first_layer = next(l for l in plan.to_dict()["layers"] if l["name"] == first.name)
    return {
        "model": source.label,
        "input": "bitplanes" if planes else "pixels",
        "kept_planes": list(first.planes) if planes else list(range(kinds.PIXEL_BITS - 1, -1, -1)),
        "accuracy": sum(seeds) / len(seeds) if seeds else golden_accuracy(net, cache, images),
        "accuracy_per_seed": seeds,
        "accuracy_source": source.seeds_source if seeds else
                           f"golden model of the IR on {images or 'all'} test images",
        "binary_ops": net.binary_ops,
        "cycles_per_frame": plan.cycles_per_frame,
        "fps_at_100mhz": 100e6 / plan.cycles_per_frame,
        "bottleneck": plan.bottleneck,
        "LUT": round(plan.totals["LUT"]),
        "BRAM36": plan.totals["BRAM36"],
        "DSP": round(plan.totals["DSP"]),
        "first_layer_DSP": round(first_layer["DSP"]),
        "folding": {n: {"pe": c.pe, "simd": c.simd} for n, c in plan.folding.items()},
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The bar against the first (8-bit) row: the best qualifying bit-plane row by accuracy."""
    ref = rows[0]
    candidates = [r for r in rows[1:] if r["input"] == "bitplanes" and len(r["kept_planes"]) <= MAX_PLANES]
    if not candidates:
        return {"bar": f"no bit-plane network with at most {MAX_PLANES} planes given", "met": False}
    best = max(candidates, key=lambda r: (r["accuracy"] or 0.0, r["fps_at_100mhz"]))
    drop = None if best["accuracy"] is None or ref["accuracy"] is None else 100 * (ref["accuracy"] - best["accuracy"])
    speed = best["fps_at_100mhz"] / ref["fps_at_100mhz"]
    return {
        "reference": ref["model"], "bitplanes": best["model"], "kept_planes": best["kept_planes"],
        "accuracy_drop_pt": drop, "fps_ratio": speed, "first_layer_DSP": best["first_layer_DSP"],
        "bar": f"at most {MAX_PLANES} planes, drop <= {MAX_DROP_PT} pt, no first-layer DSP, fps ratio >= 1",
        "met": drop is not None and drop <= MAX_DROP_PT and best["first_layer_DSP"] == 0 and speed >= 1.0,
    }


def run(reference: str, variants: list[str], out_dir: Path, budget: devices.Budget | None = None,
        images: int | None = None) -> dict[str, Any]:
    """Rows for the reference model and each bit-plane variant; report.json and report.png."""
    if not variants:
        raise UsageError("no bit-plane networks to compare", fix="pass --planes-models, e.g. nin_planes4")
    sources = [reports.model_source(name) for name in [reference, *variants]]
    nets = [ir.load(source.ir_file) for source in sources]
    if kinds.of(nets[0].layers[0]).bit_planes:
        raise UsageError(f"{reference} already reads bit planes", fix="give the 8-bit-input network first, e.g. nin_pruned")
    for name, net in zip(variants, nets[1:]):
        if not kinds.of(net.layers[0]).bit_planes:
            raise UsageError(f"{name} reads 8-bit pixels, not bit planes",
                             fix="train one: make prune MODEL=nin PLANES=7,6,5,4 (or flipflow train nin --planes ...)")
    budget = budget or devices.budget()
    out_dir = atomic.make_dir(out_dir)
    rows = [row(source, net, budget, out_dir / "accuracy_cache.json", images) for source, net in zip(sources, nets)]
    report = {"budget": budget.to_dict(), "images": images or "full test set", "rows": rows, "summary": summarize(rows),
              "notes": ["accuracy: each row's accuracy_source (the mean over fine-tuning seeds where the pruning "
                        "comparison is at hand; the zoo and a run's IR keep the first seed)",
                        "cycles and resources: the folding search's best design in the budget (generator/cost.py)"]}
    atomic.write_json(out_dir / "report.json", report, indent=1)
    plot(report, out_dir / "report.png")
    return report


def plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in rows:
        colour = "tab:blue" if r["input"] == "pixels" else "tab:orange"
        label = f"{r['model']} ({len(r['kept_planes'])} planes)"
        a.scatter(r["fps_at_100mhz"], 100 * (r["accuracy"] or 0), color=colour, s=40)
        a.annotate(label, (r["fps_at_100mhz"], 100 * (r["accuracy"] or 0)), fontsize=8, xytext=(4, 4),
                   textcoords="offset points")
    a.set_xlabel("frames/s at 100 MHz (best folding in the budget)")
    a.set_ylabel("top-1 (%)")
    a.grid(alpha=0.3)
    names = [r["model"] for r in rows]
    a_lut = [r["LUT"] for r in rows]
    b.bar(names, a_lut, color=["tab:blue" if r["input"] == "pixels" else "tab:orange" for r in rows])
    for i, r in enumerate(rows):
        b.annotate(f"{r['DSP']} DSP\n(first layer {r['first_layer_DSP']})", (i, a_lut[i]), ha="center", fontsize=8,
                   xytext=(0, 3), textcoords="offset points")
    b.set_ylabel("LUT (model)")
    b.grid(alpha=0.3, axis="y")
    fig.suptitle("8-bit pixels vs bit-plane input, one PYNQ-Z2 budget")
    fig.tight_layout()
    return atomic.save_figure(fig, path)


def table(report: dict[str, Any]) -> str:
    """The rows as a fixed-width table for the terminal."""
    width = max(16, *(len(r["model"]) + 2 for r in report["rows"]))
    head = f"{'model':<{width}}{'input':<10}{'planes':>7}{'top-1':>8}{'cycles':>9}{'fps':>8}{'LUT':>8}{'DSP':>5}{'1st DSP':>8}"
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
        lines.append(f"{r['model']:<{width}}{r['input']:<10}{len(r['kept_planes']):>7}{acc:>8}{r['cycles_per_frame']:>9,}"
                     f"{r['fps_at_100mhz']:>8,.0f}{r['LUT']:>8,}{r['DSP']:>5}{r['first_layer_DSP']:>8}")
    s = report["summary"]
    if "accuracy_drop_pt" in s:
        drop = "n/a" if s["accuracy_drop_pt"] is None else f"{s['accuracy_drop_pt']:+.2f} pt"
        lines.append(f"bar ({s['bar']}): {s['bitplanes']} drop {drop}, {s['fps_ratio']:.2f}x frames/s, "
                     f"first layer {s['first_layer_DSP']} DSP: {'met' if s['met'] else 'NOT met'}")
    else:
        lines.append(s["bar"])
    return "\n".join(lines)
