"""The most any early-exit unit could gain on a network: the bound an issue bar is held to.

The built unit (docs/DESIGN.md, "Early exit: hardware") decides per PE row group and
pays its pipeline depth per decision. This module prices the best unit imaginable
instead, so that a missed bar can be told apart from a weak unit:

- every thresholded layer (XNOR and the 8-bit pixel layer) decides per neuron after
  every single term (SIMD = 1, the finest fold order), with no cost for deciding, and a
  neuron decided before any term costs nothing;
- a layer feeding a max-pool also skips, whole, every output no pool window still needs
  once the window has seen a 1 (``earlyexit.pool_needed``, raster order);
- the work left per layer is the sum over its outputs of the terms each takes, over
  K x outputs, on real test images (``work_left``); N:M sparse layers are refused (their
  unit steps through kept slots, not the window);
- the folding search (``folding.optimize(work_left=...)``) then prices every layer's
  matrix-vector unit at that share of its cycles with no extra resources, still reading
  every input beat: the fastest such network in the same budget (``bound``).

A real unit reaches neither share nor rate; a bar above them cannot be met on this net by
any early-exit unit that adds a neuron's terms in a fixed order and sees pixels in raster
order, only by a net whose accumulators end further from their thresholds (training,
"Training for early exit").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flipflow import atomic, golden, kinds
from flipflow.errors import UsageError
from flipflow.generator import devices, earlyexit, folding
from flipflow.generator.folding import LayerConfig
from flipflow.ir import Network

FINEST = LayerConfig(1, 1)  # one term per fold, one neuron per group: every chance to decide


@dataclass(frozen=True)
class LayerWork:
    """One thresholded layer's work under the ideal unit, over the analysed images."""

    name: str
    datapath: str
    terms: int  # K x outputs x images: the work without early exit
    decided_share: float  # skipped by per-term, per-neuron decisions alone
    pool_share: float  # outputs no max-pool window needs (0 when no max-pool follows)
    skipped_share: float  # both together: 1 - terms taken / terms

    @property
    def left(self) -> float:
        return 1.0 - self.skipped_share


def work_left(net: Network, images: np.ndarray) -> dict[str, LayerWork]:
    """Each thresholded layer's work under the ideal unit on ``images`` (golden model's
    real per-layer inputs). UsageError for a net with N:M sparse layers."""
    x = golden.check_images(net, images)
    out: dict[str, LayerWork] = {}
    for layer in net.layers:
        if kinds.of(layer).sparse:  # an ideal unit for them would need its own rule: no bound without it
            raise UsageError(f"{layer.name}: the early-exit bound prices XNOR and 8-bit layers, not {layer.kind}",
                             fix="give a net without N:M sparse layers (e.g. nin_pruned)")
    for layer, after in zip(net.layers, [*net.layers[1:], None]):
        if not earlyexit.decides_early(layer):
            x = golden.run_layer(layer, x)
            continue
        kind = kinds.matrix(layer)
        patches = kind.patches(layer, x)
        n, ho, wo, k = patches.shape
        folds, bits = earlyexit.decide(earlyexit.fold_model(layer, FINEST), patches.reshape(-1, k))
        taken = folds.astype(np.int64)  # terms to the decision: 0 for an output no input can change
        y = bits.reshape(n, ho, wo, -1)  # the layer's output: every decided bit is the golden model's
        needed = (earlyexit.pool_needed(after, y).reshape(taken.shape) if after is not None and earlyexit.is_pool(after)
                  else np.ones(taken.shape, bool))
        terms = k * taken.size
        out[layer.name] = LayerWork(
            layer.name, kind.datapath, terms,
            decided_share=float(1 - taken.sum() / terms),
            pool_share=float(1 - needed.mean()),
            skipped_share=float(1 - (taken * needed).sum() / terms))
        x = y
    return out


def weighted_share(layers: dict[str, LayerWork], datapath: str, key: str = "skipped_share") -> float:
    """A share over every layer of a datapath, weighted by the layers' terms."""
    chosen = [w for w in layers.values() if w.datapath == datapath]
    total = sum(w.terms for w in chosen)
    return sum(getattr(w, key) * w.terms for w in chosen) / total if total else 0.0


def bound(net: Network, images: np.ndarray, budget: devices.Budget | None = None) -> dict[str, Any]:
    """The bound report: per-layer ideal shares, the XNOR and pixel shares weighted by
    terms, and the frames/s of the fastest ideal-unit folding against the fastest real
    one in the same budget."""
    budget = budget or devices.budget()
    device = budget.as_device()
    layers = work_left(net, images)
    base = folding.optimize(net, device)
    ideal = folding.optimize(net, device, work_left={name: w.left for name, w in layers.items()})
    layer_cycles = {l.name: (folding.ideal_cycles(l, ideal.folding[l.name], layers[l.name].left)
                             if l.name in layers else ideal.layer_cycles[l.name]) for l in net.layers}
    frame = max(*layer_cycles.values(), ideal.result_cycles)
    return {
        "model": net.name,
        "images": len(images),
        "budget": budget.to_dict(),
        "layers": [asdict(w) for w in layers.values()],
        "xnor_skipped_share": weighted_share(layers, "xnor"),
        "xnor_decided_share": weighted_share(layers, "xnor", "decided_share"),
        "pixel_skipped_share": weighted_share(layers, "pixel"),
        "without": {"cycles_per_frame": base.cycles_per_frame, "bottleneck": base.bottleneck,
                    "folding": {n: [c.pe, c.simd] for n, c in base.folding.items()}},
        "ideal": {"cycles_per_frame": frame, "bottleneck": max(layer_cycles, key=layer_cycles.__getitem__),
                  "folding": {n: [c.pe, c.simd] for n, c in ideal.folding.items()}},
        "fps_ratio": base.cycles_per_frame / frame,
    }


def table(report: dict[str, Any]) -> str:
    """What `flipflow earlyexit --bound N` prints."""
    lines = [f"early-exit bound of {report['model']} ({report['images']} test images; a unit deciding per neuron "
             "after every term at no cost, and skipping outputs no max-pool window needs):",
             f"{'layer':<16}{'datapath':<9}{'decided %':>10}{'pool %':>8}{'skipped %':>10}"]
    for w in report["layers"]:
        lines.append(f"{w['name']:<16}{w['datapath']:<9}{100 * w['decided_share']:>10.1f}{100 * w['pool_share']:>8.1f}"
                     f"{100 * w['skipped_share']:>10.1f}")
    b, i = report["without"], report["ideal"]
    pixel = any(w["datapath"] == "pixel" for w in report["layers"])
    lines.append(f"XNOR layers, weighted by terms: {100 * report['xnor_skipped_share']:.1f}% skipped at most "
                 f"({100 * report['xnor_decided_share']:.1f}% by decisions alone)"
                 + (f"; 8-bit layer {100 * report['pixel_skipped_share']:.1f}%" if pixel else ""))
    lines.append(f"{report['budget']['device']['name']} budget: {b['cycles_per_frame']:,} cycles/frame without (bottleneck {b['bottleneck']}), "
                 f"{i['cycles_per_frame']:,} at best with the ideal unit (bottleneck {i['bottleneck']}): "
                 f"at most {report['fps_ratio']:.3f}x frames/s")
    return "\n".join(lines)


def plot(report: dict[str, Any], path) -> None:
    """bound.png: per layer, the share of its terms the ideal unit skips by deciding and,
    on top, by max-pool skipping; the XNOR share and frames/s ratio against the issue's bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    x = np.arange(len(layers))
    decided = np.array([100 * w["decided_share"] for w in layers])
    skipped = np.array([100 * w["skipped_share"] for w in layers])
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.bar(x, decided, 0.6, label="decided early (per neuron, per term)")
    ax.bar(x, skipped - decided, 0.6, bottom=decided, label="and not needed by a max-pool window")
    ax.axhline(100 * report["xnor_skipped_share"], color="C2", ls="--", lw=1,
               label=f"XNOR layers, weighted by terms: {100 * report['xnor_skipped_share']:.1f}%")
    ax.set_xticks(x, [w["name"] for w in layers], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("terms the ideal unit skips (%)")
    ax.set_title(f"{report['model']}: early-exit bound on {report['images']} test images, at most "
                 f"{report['fps_ratio']:.3f}x frames/s in the {report['budget']['device']['name']} budget", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, path)
