"""`flipflow margin-sweep`: what the early-exit margin regulariser (training/margin.py)
buys and costs. From one checkpoint, fine-tune once per regulariser weight on the same
short schedule (weight 0 is the control), export each to the IR and measure top-1 on
the full test set (golden model) and the early-exit skipped share and frames/s
(generator/earlyexit.py) at three foldings: the default one, the same SIMD with PE = 1
(the PE row group rule loses nothing) and PE = 1 with 16 folds per neuron (what fold
granularity leaves at most). Every step resumes: a finished weight is measured once.

Layout of ``out``: weight<W>/ (checkpoint.pt, log.json, model.ir.npz, earlyexit.json),
report.json, report.png.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flipflow import atomic, ir
from flipflow.generator import earlyexit
from flipflow.generator.folding import Folding, LayerConfig
from flipflow.training import checkpoint, datasets, reports, rounds
from flipflow.training.train import TrainConfig

EARLYEXIT = "earlyexit.json"
FINE_FOLDS = 16  # synapse folds per neuron of the finest folding measured
BAR = {"xnor_skipped": 0.25, "speedup": 1.2}  # issue 14's target for nin_pruned


@dataclass
class Schedule:
    """The fine-tuning every weight gets (the control too)."""

    train_subset: int = 2048
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    margin: float = 0.2
    margin_first: bool = False
    seed: int = 0

    def config(self, weight: float) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_steps=[], flip_epochs=0,
                           eval_images=200, seed=self.seed, margin_weight=weight, margin=self.margin,
                           margin_first=self.margin_first)


def default_out(model: str) -> Path:
    """build/<start's label>-margin."""
    return Path("build") / f"{reports.model_source(model).label}-margin"


def foldings(net: ir.Network, default: Folding) -> dict[str, Folding]:
    """The measured foldings: ``default``; its SIMD with one PE row (every neuron its own
    group); one PE row and FINE_FOLDS folds per neuron (SIMD = ceil(K / FINE_FOLDS))."""
    return {"default": default,
            "pe1": {name: LayerConfig(pe=1, simd=c.simd) for name, c in default.items()},
            "fine": {l.name: LayerConfig(pe=1, simd=math.ceil(l.fan_in / FINE_FOLDS)) for l in net.layers if l.has_weights}}


def early_exit(net: ir.Network, folds: dict[str, Folding], images: np.ndarray, folder: Path) -> dict[str, dict]:
    """earlyexit summaries per folding, kept in ``folder``; one still valid (IR older, same
    images and folding) is reused."""
    path, net_path = folder / EARLYEXIT, folder / ir.FILENAME
    fresh = path.exists() and path.stat().st_mtime >= net_path.stat().st_mtime
    saved = json.loads(path.read_text()) if fresh else {}
    result = {}
    for key, f in folds.items():
        old = saved.get(key, {})
        same = old.get("images") == len(images) and old.get("folding") == {n: dataclasses.asdict(c) for n, c in f.items()}
        result[key] = old if same else earlyexit.summary(earlyexit.analyse(net, f, images))
        atomic.write_json(path, {**saved, **result}, indent=1)
    return result


def row(weight: float, acc: float, log: list[dict], summaries: dict[str, dict]) -> dict[str, Any]:
    """A weight's line of report.json: top-1, its last epoch's margin loss, and per folding
    the skipped shares (XNOR and pixel layers) and the frame cycles with and without early exit."""
    out: dict[str, Any] = {"weight": weight, "accuracy": acc, "margin_loss": log[-1].get("margin_loss"),
                           "train_s": sum(r["train_s"] for r in log)}
    for key, s in summaries.items():
        out[key] = {"xnor": s["xnor"], "pixel": s["pixel"], "speedup_mean": s["frame"]["speedup_mean"],
                    "cycles_without": s["frame"]["cycles_without"], "cycles_mean": s["frame"]["mean"]}
    return out


def run(model: str, weights: list[float], schedule: Schedule, out: Path, images: int, folds: dict[str, Folding],
        dataset: str = "fashion_mnist", command: str = "") -> dict[str, Any]:
    """Fine-tune, export and measure at every weight (early exit at each of ``folds``, keyed
    as ``foldings`` makes them); report.json and report.png in ``out``."""
    t0 = time.perf_counter()
    source = reports.model_source(model)
    data = datasets.load(dataset)
    test_images = data.test.head(images).images
    rows = []
    for w in weights:
        folder = atomic.make_dir(Path(out) / f"weight{w:g}")
        start, _ = checkpoint.load(source.checkpoint_file)
        cfg = schedule.config(w)
        trained, payload = rounds._trained(folder, start, cfg, data, schedule.train_subset, schedule.seed,
                                           f"margin weight {w:g}", {"command": command})
        name = f"{source.label}_margin{w:g}"
        net, acc = rounds.evaluate(trained, data, folder, name, {"run": str(folder), "command": command,
                                                                  "train_config": dataclasses.asdict(cfg)})
        rows.append(row(w, acc, payload["log"], early_exit(net, folds, test_images, folder)))
        print(line(rows[-1]), file=sys.stderr)
    report = {"model": model, "dataset": dataset, "schedule": dataclasses.asdict(schedule), "test_images": len(data.test),
              "early_exit_images": len(test_images),
              "foldings": {k: {n: dataclasses.asdict(c) for n, c in f.items()} for k, f in folds.items()},
              "bar": BAR, "rows": rows, "command": command, "wall_s": round(time.perf_counter() - t0, 1)}
    atomic.write_json(Path(out) / "report.json", report, indent=1)
    plot(report, Path(out) / "report.png")
    return report


def line(r: dict) -> str:
    d = r["default"]
    return (f"{r['weight']:>7g}{100 * r['accuracy']:>9.2f}{100 * d['xnor']['neuron_skipped']:>9.1f}"
            f"{100 * d['xnor']['group_skipped']:>8.1f}{d['speedup_mean']:>9.3f}"
            + "".join(f"{100 * r[k]['xnor']['group_skipped']:>9.1f}{r[k]['speedup_mean']:>9.3f}" for k in ("pe1", "fine")))


def table(report: dict) -> str:
    """One line per weight: top-1, XNOR fold cycles skipped and the frames/s ratio per folding."""
    head = f"{'weight':>7}{'top-1 %':>9}{'neuron':>9}{'group':>8}{'frames/s':>9}" + f"{'skipped':>9}{'frames/s':>9}" * 2
    sub = f"{'':>16}{'default folding (XNOR %)':>26}{'PE=1':>18}{f'PE=1, {FINE_FOLDS} folds':>18}"
    return "\n".join([sub, head, "-" * len(head), *(line(r) for r in report["rows"])])


def plot(report: dict, path: Path) -> None:
    """Top-1 and XNOR skipped share against the regulariser weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    x = np.arange(len(rows))
    labels = [f"{r['weight']:g}" for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(x, [100 * r["accuracy"] for r in rows], "o-")
    ax1.set_ylabel(f"top-1 on {report['test_images']} test images (%)")
    ax1.set_title("accuracy (golden model on the exported IR)")
    for key, style, what in (("default", "o-", "default folding, PE row groups"), ("pe1", "s--", "PE = 1"),
                             ("fine", "d-.", f"PE = 1, {FINE_FOLDS} folds")):
        speedups = ", ".join(f"{r[key]['speedup_mean']:.2f}x" for r in rows)
        ax2.plot(x, [100 * r[key]["xnor"]["group_skipped"] for r in rows], style, label=f"{what} (frames/s {speedups})")
    ax2.plot(x, [100 * r["default"]["xnor"]["neuron_skipped"] for r in rows], "^:", label="per neuron, default folding")
    ax2.axhline(100 * report["bar"]["xnor_skipped"], color="grey", lw=0.8, ls="--", label="issue bar")
    ax2.set_ylabel("XNOR fold cycles skipped (%)")
    ax2.set_title(f"early exit on {report['early_exit_images']} test images")
    top = max(100 * r[k]["xnor"]["neuron_skipped"] for r in rows for k in ("default", "pe1", "fine"))
    ax2.set_ylim(0, 1.6 * max(top, 100 * report["bar"]["xnor_skipped"]))  # room for the legend above the lines
    ax2.legend(fontsize=8, loc="upper left")
    s = report["schedule"]
    for ax in (ax1, ax2):
        ax.set_xticks(x, labels)
        ax.set_xlabel(f"margin weight (margin {s['margin']:g} K)")
    fig.suptitle(f"{report['model']}: fine-tuned {s['epochs']} epoch(s) on {s['train_subset']} images, "
                 f"batch {s['batch_size']}, Adam {s['lr']:g}", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path)
