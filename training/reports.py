"""Per-round JSON reports, plots (matplotlib, Agg) and the comparison table,
all written atomically under the run's folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from flipflow import atomic, ir
from flipflow.errors import UsageError


def _save_figure(fig: "plt.Figure", path: Path) -> Path:
    return atomic.save_figure(fig, path, bbox_inches="tight")


def write_report(report: dict[str, Any], folder: Path) -> Path:
    path = Path(folder) / "report.json"
    atomic.write_json(path, report)
    return path


def plot_flip_histograms(histograms: dict[str, list[int]], path: Path, title: str) -> Path:
    """One panel per tracked layer: how many weights flipped 0, 1, 2, ... times."""
    names = list(histograms)
    cols = min(4, max(1, len(names)))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        h = histograms[name]
        ax.bar(range(len(h)), h, width=1.0, color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("flips", fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save_figure(fig, Path(path))


def flip_criterion(rule: str) -> str:
    """The criterion label of flip pruning with channel ``rule`` in a comparison's rows."""
    return f"flip ({rule} rule)"


def plot_accuracy_vs_ops(points: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Accuracy (%) against binary ops, one series per criterion; with several
    fine-tuning seeds the marker is the mean and the bar spans the seeds."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    markers = {"unpruned": "*", "flip (flip rule)": "o", "flip (latent rule)": "D", "latent": "s", "uniform": "^"}
    for crit in dict.fromkeys(p["criterion"] for p in points):
        pts = sorted((p for p in points if p["criterion"] == crit), key=lambda p: p["binary_ops"])
        acc = [100 * p["accuracy"] for p in pts]
        per_seed = [p.get("accuracy_per_seed", [p["accuracy"]]) for p in pts]
        spread = [[100 * (p["accuracy"] - min(a)) for p, a in zip(pts, per_seed)],
                  [100 * (max(a) - p["accuracy"]) for p, a in zip(pts, per_seed)]]
        ax.errorbar([p["binary_ops"] / 1e6 for p in pts], acc, yerr=spread, capsize=3, marker=markers.get(crit, "o"),
                    label=crit, linestyle="-" if len(pts) > 1 else "none", markersize=8)
    ax.set_xlabel("binary ops per image (M)")
    seeds = max(len(p.get("accuracy_per_seed", [0])) for p in points)
    ax.set_ylabel("top-1 accuracy (%), full test set" + (f"\nmean and range of {seeds} fine-tuning seeds" if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    return _save_figure(fig, Path(path))


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table; the first row is the unpruned reference. With several
    fine-tuning seeds, top-1 is their mean and each seed's value is listed."""
    ref = rows[0]
    seeds = len(ref.get("accuracy_per_seed", [None]))
    top1 = "top-1 (full test set)" if seeds == 1 else f"top-1, mean of {seeds} seeds"
    per_seed = "" if seeds == 1 else " per seed |"
    lines = [
        f"| model | criterion | widths | binary ops/image | ops vs unpruned | {top1} | vs unpruned |{per_seed}",
        "|---|---|---|---:|---:|---:|---:|" + ("---|" if seeds > 1 else ""),
    ]
    for r in rows:
        ops_change = 100.0 * (r["binary_ops"] / ref["binary_ops"] - 1.0)
        acc_change = 100.0 * (r["accuracy"] - ref["accuracy"])
        cells = "" if seeds == 1 else " " + " / ".join(f"{100 * a:.2f}" for a in r["accuracy_per_seed"]) + " |"
        lines.append(
            f"| {r['name']} | {r['criterion']} | {'-'.join(str(w) for w in r['widths'])} | {r['binary_ops'] / 1e6:.2f}M "
            f"| {ops_change:+.1f}% | {100 * r['accuracy']:.2f}% | {acc_change:+.2f} pt |{cells}"
        )
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> Path:
    return atomic.write_text(path, text)


def pruned_run(model: str) -> tuple[Path, dict[str, Any]] | None:
    """The comparison (comparison.json) behind a prune run folder or a zoo model, and the
    folder of its pruned net, or None."""
    folder = Path(model)
    if not (folder / "comparison.json").is_file():
        folder = ir.ZOO / str(model) / "comparison"
        if not (folder / "comparison.json").is_file():
            return None
    return folder, json.loads((folder / "comparison.json").read_text())


@dataclass(frozen=True)
class ModelSource:
    """Where a model a report names comes from: its label (a zoo name, or the name of the
    folder holding it), its IR file and checkpoint where kept, and its top-1 per fine-tuning
    seed where its pruning comparison is at hand (the bars' "mean of the zoo's fine-tuning
    seeds"; reading that comparison is also what fails on a corrupt one)."""

    label: str
    ir_path: Path | None
    checkpoint: Path | None
    seeds: list[float] | None = None
    seeds_source: str = ""

    @property
    def ir_file(self) -> Path:
        """The IR file, or a one-line error for a bare checkpoint."""
        if self.ir_path is None:
            raise UsageError(f"{self.checkpoint}: a checkpoint, not an exported network",
                             fix="export it first (flipflow export), or give a zoo name, an IR file or a prune run folder")
        return self.ir_path

    @property
    def checkpoint_file(self) -> Path:
        """The checkpoint to train from, or a one-line error for an IR file without one."""
        if self.checkpoint is None:
            raise UsageError(f"{self.ir_path}: an exported network with no checkpoint.pt beside it to train from",
                             fix="give a zoo name, a checkpoint.pt or a prune run folder")
        return self.checkpoint

    @property
    def origin(self) -> Path:
        """The file the model is read from (its IR, else its checkpoint), absolute."""
        return Path(self.ir_path or self.checkpoint).resolve()


def model_source(model: str) -> ModelSource:
    """A zoo name, an IR file, a checkpoint.pt or a prune run folder (its chosen pruned net:
    its IR, checkpoint and seeds; the IR keeps the first seed's weights)."""
    if model.endswith(".pt"):
        return ModelSource(Path(model).resolve().parent.name, None, Path(model))
    run = pruned_run(model)
    seeds = seed_accuracies(run[1]) if run else None
    source = ""
    if run:
        where = run[0].relative_to(ir.ZOO.parent) if run[0].is_relative_to(ir.ZOO.parent) else run[0]
        source = f"mean of {len(seeds)} fine-tuning seeds ({where}/comparison.json)"
    if run and Path(model).is_dir():
        net_dir = run[0] / run[1]["pruned_folder"]
        return ModelSource(run[0].name, net_dir / ir.FILENAME, net_dir / "checkpoint.pt", seeds, source)
    ir_path = ir.resolve(model)
    beside = ir_path.parent / "checkpoint.pt"  # a zoo model's, or a run folder's next to its model.ir.npz
    checkpoint = beside if ir_path.name == ir.FILENAME and beside.is_file() else None
    return ModelSource(ir.model_label(model), ir_path, checkpoint, seeds, source)


def seed_accuracies(comparison: dict[str, Any]) -> list[float]:
    """Top-1 per fine-tuning seed of the pruned net a comparison chose (its ``pruned_folder``:
    flip pruning by the ``rule`` of its prune settings, at that round)."""
    rule, rnd = comparison["prune"]["rule"], int(comparison["pruned_folder"].rsplit("round", 1)[1])
    chosen = [r for r in comparison["rows"] if r["criterion"] == flip_criterion(rule) and r["round"] == rnd]
    if len(chosen) != 1:
        raise UsageError(f"comparison.json has {len(chosen)} rows for its pruned net (flip, {rule} rule, round {rnd})",
                         fix="re-run the prune comparison, or give the pruned net's model.ir.npz")
    return chosen[0].get("accuracy_per_seed") or [chosen[0]["accuracy"]]
