"""Calibrate generator/cost.py against yosys counts of the RTL backend.

    python -m flipflow.sim.calibrate_cost [--designs N] [--seed S]

Generates small but varied networks (every layer kind, odd widths, foldings
that do and do not divide them), synthesizes each with yosys
``synth_xilinx -family xc7`` (sim/resources.py), and fits one LUT and one FF
scale factor per layer kind (least squares through the origin) between the
structural model and yosys' per-layer counts. BRAM36 and DSP are not scaled:
their mapping is structural, and the residuals say how well it matches.
Writes generator/cost_calibration.json (atomically), which the cost model
loads by default, with the residuals before and after the fit.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from flipflow import atomic, ir
from flipflow.generator import cost
from flipflow.generator.folding import LayerConfig

KEYS = ("LUT", "FF", "BRAM36", "DSP")


def sample_networks(n: int, rng: random.Random) -> list[ir.Network]:
    """Small networks of every kind on real Fashion-MNIST calibration images."""
    from flipflow.training.blocks import LayerSpec as L

    classes = [str(i) for i in range(10)]
    nets = []
    for i in range(n):
        c1, c2, c3, d = rng.randint(3, 16), rng.randint(5, 24), rng.randint(7, 32), rng.randint(8, 32)
        size = rng.choice([6, 8, 10])
        if i % 2 == 0:
            layers = [L("input_conv", c1, 3, 1, 1), L("binary_conv", c2, 3, 1, 1), L("maxpool", 0, 2, 2, 0),
                      L("binary_conv", c3, 1), L("binary_dense", d), L("output_dense", 10)]
        else:
            layers = [L("input_conv", c1, 5, 1, 2), L("binary_conv", c2, 1), L("maxpool", 0, 3, 2, 1),
                      L("binary_conv", c3, 3, 1, 1), L("output_conv", 10, 1), L("global_sum")]
        nets.append(_build(f"cal{i}", (size, size, rng.choice([1, 3])), classes, layers))
    return nets


def _build(name: str, shape: tuple[int, int, int], classes: list[str], layers: list) -> ir.Network:
    from flipflow.sim.bench import _calibration_images
    from flipflow.training import export
    from flipflow.training import synthetic as synth
    from flipflow.training.blocks import Arch

    arch = Arch(name, shape, classes, layers)
    model = synth.calibrated_model(arch, _calibration_images(shape, 32))
    return export.export(model, name, "fashion_mnist")


def random_folding(net: ir.Network, rng: random.Random, max_lanes: int = 64) -> dict[str, LayerConfig]:
    """PE and SIMD drawn per layer (dividing and not dividing the widths), at most
    ``max_lanes`` PE x SIMD lanes so that yosys finishes in seconds."""
    out = {}
    for layer in net.layers:
        if layer.has_weights:
            pe = rng.randint(1, min(layer.out_ch, 16))
            simd = rng.randint(1, max(1, min(layer.fan_in, max_lanes // pe)))
            out[layer.name] = LayerConfig(pe, simd)
    return out


def measure(nets: list[ir.Network], rng: random.Random) -> list[tuple[ir.Layer, LayerConfig | None, dict]]:
    """(layer, folding, yosys counts) for every layer of every sampled design."""
    from flipflow.generator import rtl
    from flipflow.sim import resources

    samples = []
    for net in tqdm(nets, desc="yosys", file=sys.stderr):
        folding = random_folding(net, rng)
        with tempfile.TemporaryDirectory() as tmp:
            rtl.generate(net, folding, tmp)
            counts = resources.synthesize(tmp)
        for layer in net.layers:
            if layer.name in counts["layers"]:
                samples.append((layer, folding.get(layer.name), counts["layers"][layer.name]))
    return samples


BRAM_THRESHOLDS = (0, 1024, 2048, 4096, 8192, 16384, 32768)


def fit(samples, base: cost.Coefficients) -> tuple[cost.Coefficients, dict]:
    """The LUTRAM/BRAM size threshold that best matches yosys' BRAM counts (the
    smallest among equals), then per-kind LUT/FF scale factors; residuals after."""
    def bram_error(bits: int) -> float:
        c = cost.Coefficients(**{**base.__dict__, "bram_min_bits": bits})
        return sum(abs(cost.unscaled_cost(l, f, c).bram36 - y["BRAM36"]) for l, f, y in samples)

    errors = {bits: bram_error(bits) for bits in BRAM_THRESHOLDS}
    best_bits = min(BRAM_THRESHOLDS, key=lambda b: (errors[b], b))
    base = cost.Coefficients(**{**base.__dict__, "bram_min_bits": best_bits})
    by_kind: dict[str, list[tuple[cost.Cost, dict]]] = defaultdict(list)
    for layer, f, measured in samples:
        by_kind[layer.kind].append((cost.unscaled_cost(layer, f, base), measured))
    lut_scale, ff_scale, residuals = {}, {}, {"bram_threshold_errors": errors}
    for kind, pairs in by_kind.items():
        model = {k: np.array([getattr(m, k.lower()) for m, _ in pairs], float) for k in KEYS}
        real = {k: np.array([y[k] for _, y in pairs], float) for k in KEYS}
        scale = {}
        for k in ("LUT", "FF"):
            denom = float(model[k] @ model[k])
            scale[k] = float(model[k] @ real[k] / denom) if denom else 1.0
        lut_scale[kind], ff_scale[kind] = scale["LUT"], scale["FF"]
        residuals[kind] = {"samples": len(pairs)}
        for k in KEYS:
            fitted = model[k] * scale.get(k, 1.0)
            total_real = real[k].sum()
            residuals[kind][k] = {
                "yosys_total": float(total_real),
                "model_total_before": float(model[k].sum()),
                "model_total_after": float(fitted.sum()),
                "mean_abs_error_after": float(np.mean(np.abs(fitted - real[k]))),
                "relative_error_after": float(np.abs(fitted - real[k]).sum() / total_real) if total_real else None,
            }
    out = cost.Coefficients(**{**base.__dict__, "lut_scale": lut_scale, "ff_scale": ff_scale})
    return out, residuals


def save_samples(samples, path: Path) -> None:
    """Keep the yosys measurements so that a model change can be refitted without yosys."""
    rows = [{"layer": l.header(), "folding": f.__dict__ if f else None, "yosys": y} for l, f, y in samples]
    atomic.write_json(path, rows)


def load_samples(path: Path):
    out = []
    for row in json.loads(path.read_text()):
        h = row["layer"]
        layer = ir.Layer(h["name"], h["kind"], tuple(h["in_shape"]), tuple(h["out_shape"]), h["kernel"], h["stride"],
                         h["pad"], h["weight_bits"], h["weight_scale"])
        out.append((layer, LayerConfig(**row["folding"]) if row["folding"] else None, row["yosys"]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--designs", type=int, default=6, help="number of sampled networks (each synthesized once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=cost.CALIBRATION_FILE)
    p.add_argument("--samples", type=Path, default=Path("build/cost_calibration_samples.json"),
                   help="yosys measurements are kept here")
    p.add_argument("--refit", action="store_true", help="refit from --samples without running yosys")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    base = cost.Coefficients()  # fit from the structural defaults, not from an older calibration
    if args.refit:
        samples = load_samples(args.samples)
    else:
        samples = measure(sample_networks(args.designs, rng), rng)
        args.samples.parent.mkdir(parents=True, exist_ok=True)
        save_samples(samples, args.samples)
    fitted, residuals = fit(samples, base)
    fitted.calibration = {
        "tool": "yosys synth_xilinx -family xc7 (sim/resources.py)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "designs": args.designs,
        "seed": args.seed,
        "residuals_by_kind": residuals,
    }
    fitted.save(args.out)
    print(f"LUTRAM below {fitted.bram_min_bits} bits (BRAM36 error by threshold: {residuals['bram_threshold_errors']})")
    for kind, r in residuals.items():
        if kind == "bram_threshold_errors":
            continue
        print(f"{kind:<14} n={r['samples']:<3} LUT x{fitted.lut_scale[kind]:.2f} err {_pct(r['LUT'])}  "
              f"FF x{fitted.ff_scale[kind]:.2f} err {_pct(r['FF'])}  BRAM36 yosys {r['BRAM36']['yosys_total']:g} "
              f"model {r['BRAM36']['model_total_after']:g}  DSP yosys {r['DSP']['yosys_total']:g} model {r['DSP']['model_total_after']:g}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _pct(r: dict) -> str:
    e = r["relative_error_after"]
    return "n/a" if e is None else f"{100 * e:.0f}%"


if __name__ == "__main__":
    sys.exit(main())
