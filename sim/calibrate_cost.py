"""Calibrate generator/cost.py against yosys counts of the RTL backend.

    python -m flipflow.sim.calibrate_cost [--designs 12] [--sparse-designs 6] [--centred-designs 4] [--zoo tfc,nin_pruned,nin]
                                          [--jobs 2] [--refit | --evaluate]
    python -m flipflow.sim.calibrate_cost --first-layer nin_pruned folding.json

The calibration set (``generator/cost_calibration/``): small random networks of
every kind (odd widths, foldings that do and do not divide them, both weight
memory styles, from 1 to 1,024 lanes per unit), the foldings the search picks
for them in a tight budget (wide PE x SIMD words, shallow memories), and the
zoo models named by ``--zoo`` at their default folding. Each design is
generated and synthesized with yosys ``synth_xilinx -family xc7``
(sim/resources.py); its per-unit counts and the design (IR + folding) are kept
there, so a model change is refitted with ``--refit`` without yosys.

The fit: one LUT and one FF multiplier per structural term of cost.py
(non-negative least squares over every unit of every design, each multiplier
pulled gently towards 1, the structural count). BRAM36 and DSP are not fitted:
the generator decides them and the model counts the same. Writes
generator/cost_calibration.json (atomically) with the residuals per layer kind:
``tests/test_cost_model.py`` holds them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import nnls
from tqdm import tqdm

from flipflow import atomic, ir, kinds
from flipflow.generator import cost, devices
from flipflow.generator import folding as fold
from flipflow.generator.folding import LayerConfig

if TYPE_CHECKING:
    from flipflow.training.blocks import Arch

KEYS = ("LUT", "FF", "BRAM36", "DSP")
SET_DIR = cost.CALIBRATION_FILE.with_name("cost_calibration")
SAMPLES = "samples.json"
PRIOR = 0.02  # weight of "multiplier = 1" against a term's own data (keeps rare terms structural)
ROLE_OF_MODULE = {"flipflow_gather": "stream", "flipflow_count": "count", "flipflow_swu": "window", "flipflow_mvu": "mvu",
                  "flipflow_maxpool": "pool", "flipflow_global_sum": "sum"}  # flipflow_result: not a layer's


def sample_networks(n: int, rng: random.Random) -> list[ir.Network]:
    """Small networks of every kind on real Fashion-MNIST calibration images."""
    from flipflow.training.blocks import LayerSpec as L

    classes = [str(i) for i in range(10)]
    nets = []
    for i in range(n):
        c1, c2, c3, d = rng.randint(3, 24), rng.randint(5, 48), rng.randint(7, 64), rng.randint(8, 64)
        size = rng.choice([6, 8, 10, 12])
        if i % 2 == 0:
            layers = [L("input_conv", c1, 3, 1, 1), L("binary_conv", c2, 3, 1, 1), L("maxpool", 0, 2, 2, 0),
                      L("binary_conv", c3, 1), L("binary_dense", d), L("output_dense", 10)]
        else:
            layers = [L("input_conv", c1, 5, 1, 2), L("binary_conv", c2, 1), L("maxpool", 0, 3, 2, 1),
                      L("binary_conv", c3, 3, 1, 1), L("output_conv", 10, 1), L("global_sum")]
        nets.append(_build(f"cal{i}", (size, size, rng.choice([1, 3])), classes, layers))
    return nets


def sparse_networks(n: int, rng: random.Random, centred: bool = False) -> list[ir.Network]:
    """Small networks whose binary layers are N:M sparse (SBNN), an N:M drawn per layer with
    M at most its fan-in: the sparse unit's multiplexers and index memories in the fit;
    ``centred``: every sparse layer centred (its count unit and window count too)."""
    from flipflow.training import models
    from flipflow.training.blocks import Arch, arch_layers
    from flipflow.training.blocks import LayerSpec as L

    classes = [str(i) for i in range(10)]
    nets = []
    for i in range(n):
        c1, c2, c3, d = rng.randint(3, 24), rng.randint(5, 48), rng.randint(7, 64), rng.randint(8, 64)
        size = rng.choice([6, 8, 10])
        layers = [L("input_conv", c1, 3, 1, 1), L("binary_conv", c2, 3, 1, 1), L("maxpool", 0, 2, 2, 0),
                  L("binary_conv", c3, 1), L("binary_dense", d), L("output_dense", 10)]
        arch = Arch(f"{'centred' if centred else 'sparse'}{i}", (size, size, rng.choice([1, 3])), classes, layers)
        fan_in = {j: layer.fan_in for j, layer in enumerate(arch_layers(arch)) if kinds.sparse_of(layer.kind)}
        nm = {}
        for j, k in fan_in.items():
            m = rng.choice([b for b in (2, 4, 8, 16, 32, 64) if b <= k])
            nm[j] = (rng.randint(1, max(1, m // 2)), m)
        nets.append(_export(models.with_sparsity(arch, nm, centred)))
    return nets


def _build(name: str, shape: tuple[int, int, int], classes: list[str], layers: list) -> ir.Network:
    from flipflow.training.blocks import Arch

    return _export(Arch(name, shape, classes, layers))


def _export(arch: Arch) -> ir.Network:
    """``arch`` with random weights and BatchNorm statistics from real images, exported."""
    from flipflow.sim.bench import _calibration_images
    from flipflow.training import export
    from flipflow.training import synthetic as synth

    model = synth.calibrated_model(arch, _calibration_images(arch.input_shape, 32))
    return export.export(model, arch.name, "fashion_mnist")


def random_folding(net: ir.Network, rng: random.Random, max_lanes: int) -> fold.Folding:
    """PE and SIMD drawn per layer (dividing and not dividing the widths), at most
    ``max_lanes`` PE x SIMD lanes, and a random weight memory style."""
    out = {}
    for layer in net.layers:
        if layer.has_weights:
            kind = kinds.matrix(layer)
            step, slots = kind.simd_step(layer), kind.synapse_slots(layer)  # a sparse lane group: N slots
            pe = rng.randint(1, min(layer.out_ch, 32))
            simd = step * rng.randint(1, max(1, min(slots, max_lanes // pe) // step))
            out[layer.name] = LayerConfig(pe, simd, rng.choice(["distributed", "block"]))
    return out


def picked_folding(net: ir.Network, share: float) -> fold.Folding:
    """What the folding search picks for ``net`` in ``share`` of the PYNQ-Z2 budget."""
    base = devices.budget()
    limits = {k: v * share for k, v in base.limits().items()}
    device = devices.custom(lut=int(limits["LUT"]), ff=int(limits["FF"]), bram36=limits["BRAM36"], dsp=int(limits["DSP"]))
    return fold.optimize(net, device).folding


def first_layer_design(model: str, folding: fold.Folding) -> tuple[ir.Network, fold.Folding]:
    """A model's first layer at its folding, closed by a 1x1 output conv and a global sum (a
    few hundred LUT): the layer's units as in the whole design (yosys counts each unit's
    module on its own), in minutes of yosys instead of the whole network's hour."""
    import numpy as np

    net = ir.load_model(model)
    first = net.layers[0]
    h, w, c = first.out_shape
    out = ir.Layer("01_output_conv", "output_conv", (h, w, c), (h, w, 10), weight_bits=2)
    out.weights = np.random.default_rng(0).integers(-1, 2, kinds.get("output_conv").weight_shape(out)).astype(np.int8)
    tail = ir.Layer("02_global_sum", "global_sum", (h, w, 10), (1, 1, 10))
    design = ir.Network(f"{ir.model_label(model)}_l00", net.input_shape, net.classes, net.dataset, [first, out, tail])
    design.validate()
    return design, {first.name: folding[first.name], out.name: LayerConfig(1, 16)}


def designs(n: int, rng: random.Random, zoo: list[str], sparse: int = 0,
            centred: int = 0) -> list[tuple[ir.Network, fold.Folding, str]]:
    """(network, folding, how it was chosen) of the calibration set: ``n`` random networks,
    ``sparse`` random sparse ones, ``centred`` random centred sparse ones, the ``zoo`` models."""
    out = []
    nets = [*sample_networks(n, rng), *sparse_networks(sparse, rng), *sparse_networks(centred, rng, centred=True)]
    for i, net in enumerate(nets):
        if i % 3 == 2:
            out.append((net, picked_folding(net, rng.choice([0.15, 0.25, 0.4])), "search pick"))
        else:
            out.append((net, random_folding(net, rng, rng.choice([16, 64, 256, 1024])), "random"))
    for name in zoo:
        net = ir.load_model(name)
        out.append((net, fold.default(net), "zoo default"))
    return out


def measure(net: ir.Network, folding: fold.Folding) -> dict[str, dict]:
    """yosys counts of every unit of the design: {unit: {role, layer, counts}}."""
    from flipflow.generator import rtl
    from flipflow.sim import resources

    with tempfile.TemporaryDirectory() as tmp:
        design = rtl.generate(net, folding, tmp)
        counts = resources.synthesize(tmp)
    return {u.name: {"role": ROLE_OF_MODULE.get(u.module), "layer": u.layer, "yosys": counts["units"][u.name]}
            for u in design.units}


def _timed_measure(net: ir.Network, folding: fold.Folding) -> tuple[fold.Folding, dict[str, dict], float]:
    start = time.monotonic()
    return folding, measure(net, folding), time.monotonic() - start


# -- the calibration set on disk -------------------------------------------------------

def save_design(net: ir.Network, folding: fold.Folding, how: str, units: dict, seconds: float, set_dir: Path) -> None:
    """Add one measured design to the set (its IR, folding and per-unit counts)."""
    set_dir.mkdir(parents=True, exist_ok=True)
    index = set_dir / SAMPLES
    rows = [r for r in _read(index) if r["name"] != net.name]
    net.save(set_dir / f"{net.name}.{ir.FILENAME}")
    rows.append({"name": net.name, "chosen_by": how, "yosys_seconds": round(seconds, 1),
                 "folding": {k: asdict(v) for k, v in folding.items()}, "units": units})
    atomic.write_json(index, rows, indent=1)


def _read(index: Path) -> list[dict]:
    return json.loads(index.read_text()) if index.is_file() else []


def load_set(set_dir: Path = SET_DIR) -> list[tuple[ir.Network, fold.Folding, dict]]:
    """The stored calibration set: (network, folding, per-unit yosys counts)."""
    out = []
    for row in _read(set_dir / SAMPLES):
        net = ir.load(set_dir / f"{row['name']}.{ir.FILENAME}")
        out.append((net, {k: LayerConfig(**v) for k, v in row["folding"].items()}, row["units"]))
    return out


# -- fit and residuals ---------------------------------------------------------------

def unit_samples(calibration_set, by_role: bool = False) -> list[tuple[str, cost.Terms, dict]]:
    """(layer kind, structural terms, yosys counts) of every layer unit in the set; ``by_role``:
    the kind with the unit's role ("sparse_conv count"), so residuals split a layer's units."""
    out = []
    for net, folding, units in calibration_set:
        for unit in units.values():
            if unit["role"] is None:
                continue
            layer = net.layer(unit["layer"])
            terms = cost.unit_terms(layer, folding.get(layer.name))[unit["role"]]
            out.append((f"{layer.kind} {unit['role']}" if by_role else layer.kind, terms, unit["yosys"]))
    return out


def _fit_multipliers(samples, key: str) -> dict[str, float]:
    """Non-negative multipliers per term for one resource ("lut" or "ff")."""
    names = sorted({n for _, terms, _ in samples for n, t in terms.items() if getattr(t, key)})
    x = np.array([[getattr(terms.get(n, cost.Cost()), key) for n in names] for _, terms, _ in samples])
    y = np.array([counts["LUT" if key == "lut" else "FF"] for _, _, counts in samples], float)
    prior = np.sqrt(PRIOR * (x**2).sum(0))  # per term: its own energy, so the pull is scale-free
    a = np.vstack([x, np.diag(prior)])
    b = np.concatenate([y, prior])
    m, _ = nnls(a, b, maxiter=50 * len(names))
    return dict(zip(names, (float(v) for v in m)))


def residuals(samples, c: cost.Coefficients) -> dict[str, dict]:
    """Per layer kind and resource: yosys and model totals, relative error
    (sum |model - yosys| / sum yosys over the kind's units) and the worst unit's."""
    by_kind: dict[str, list[tuple[cost.Cost, dict]]] = defaultdict(list)
    for kind, terms, counts in samples:
        by_kind[kind].append((c.apply(terms), counts))
    out = {}
    for kind, pairs in sorted(by_kind.items()):
        out[kind] = {"units": len(pairs)}
        for k in KEYS:
            model = np.array([p.resources()[k] for p, _ in pairs])
            real = np.array([y[k] for _, y in pairs], float)
            total = real.sum()
            out[kind][k] = {
                "yosys_total": float(total),
                "model_total": float(model.sum()),
                "relative_error": float(np.abs(model - real).sum() / total) if total else None,
                "worst_unit_error": float(np.max(np.abs(model - real) / np.maximum(real, 1.0))),
            }
    return out


def fit(samples) -> cost.Coefficients:
    c = cost.Coefficients(lut=_fit_multipliers(samples, "lut"), ff=_fit_multipliers(samples, "ff"))
    c.calibration = {"residuals_by_kind": residuals(samples, c)}
    return c


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--designs", type=int, default=None,
                   help="random networks to add (each synthesized once; default 12, with --evaluate 0)")
    p.add_argument("--zoo", default=None, help="comma-separated zoo models to add at their default folding (default "
                                               "tfc,nin_pruned,nin, with --evaluate none)")
    p.add_argument("--sparse-designs", type=int, default=0,
                   help="random networks with N:M sparse binary layers to add (named sparse<i>)")
    p.add_argument("--centred-designs", type=int, default=0,
                   help="random networks with centred N:M sparse binary layers to add (named centred<i>)")
    p.add_argument("--evaluate", action="store_true",
                   help="print the committed model's error per layer kind and unit role on the set (after measuring "
                        "what is asked) instead of refitting")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set-dir", type=Path, default=SET_DIR, help="where the calibration set is kept")
    p.add_argument("--out", type=Path, default=cost.CALIBRATION_FILE)
    p.add_argument("--refit", action="store_true", help="refit from the stored set without running yosys")
    p.add_argument("--jobs", type=int, default=1, help="designs synthesized at once (one yosys process each)")
    p.add_argument("--first-layer", nargs=2, metavar=("MODEL", "FOLDING"), default=None,
                   help="add only MODEL's first layer at the folding JSON (e.g. the search's pick the model "
                        "underestimated), then refit")
    args = p.parse_args(argv)
    if args.designs is None:  # --evaluate measures only what is asked for
        args.designs = 0 if args.evaluate else 12
    if args.zoo is None:
        args.zoo = "" if args.evaluate else "tfc,nin_pruned,nin"
    if args.first_layer:
        model, folding_file = args.first_layer
        todo = [(*first_layer_design(model, fold.load(folding_file)), "zoo default layer")]
    elif not args.refit:
        todo = designs(args.designs, random.Random(args.seed), [z for z in args.zoo.split(",") if z], args.sparse_designs,
                       args.centred_designs)
    if args.first_layer or not args.refit:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = {pool.submit(_timed_measure, net, folding): (net, how) for net, folding, how in todo}
            for done in tqdm(as_completed(runs), total=len(runs), desc="yosys", file=sys.stderr):
                net, how = runs[done]
                folding, units, seconds = done.result()
                save_design(net, folding, how, units, seconds, args.set_dir)
    calibration_set = load_set(args.set_dir)
    if args.evaluate:
        _print_residuals(residuals(unit_samples(calibration_set, by_role=True), cost.Coefficients.load()))
        return 0
    fitted = fit(unit_samples(calibration_set))
    fitted.calibration.update({
        "tool": "yosys synth_xilinx -family xc7 (sim/resources.py)",
        "command": "python -m flipflow.sim.calibrate_cost --refit",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "designs": [net.name for net, _, _ in calibration_set],
    })
    fitted.save(args.out)
    _print_residuals(fitted.calibration["residuals_by_kind"])
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _print_residuals(by_kind: dict[str, dict]) -> None:
    for kind, r in by_kind.items():
        print(f"{kind:<14} units={r['units']:<3} " + "  ".join(
            f"{k} yosys {r[k]['yosys_total']:,.0f} model {r[k]['model_total']:,.0f} err {_pct(r[k])}" for k in KEYS))


def _pct(r: dict) -> str:
    e = r["relative_error"]
    return "n/a" if e is None else f"{100 * e:.1f}%"


if __name__ == "__main__":
    sys.exit(main())
