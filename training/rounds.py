"""Pruning rounds and the criterion comparison, end to end.

Folder layout of a comparison run (``out``):
  baseline/            the unpruned net trained on the base schedule (flip counts inside)
  unpruned/            the baseline fine-tuned on the same schedule as every pruned net
  flip/round1..N/      flip pruning rounds (iterated while max p_l decreases), the most flipping
                       channels go first
  flip_latent_rule/    the same with the smallest-|latent weight| channels going first; --rule
                       picks which of the two is ARCH_pruned and sets the baselines' budget
  latent/round1/       latent-magnitude pruning to the flip net's binary-op budget
  uniform/round1/      uniform width scaling to the same budget
  seed<S>/...          with --seeds N > 1: unpruned, flip, latent and uniform again,
                       fine-tuned from the same baseline with seed S (first seed + 1 ...)
  comparison.json, table.md, accuracy_vs_ops.png
Each trained folder holds checkpoint.pt, log.json, model.ir.npz, report.json
(and flip_histograms.png where flips were tracked). Every step resumes.
"""

from __future__ import annotations

import copy
import dataclasses
import filecmp
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flipflow import atomic, ir
from flipflow import golden
from flipflow.training import checkpoint, prune, reports
from flipflow.training.blocks import BNN, Arch
from flipflow.training.datasets import Dataset
from flipflow.training.export import export
from flipflow.training.flips import histograms, insensitive_portion
from flipflow.training.train import TrainConfig, TrainingError, integer_scores, load_flip_counts, train


@dataclass
class PruneConfig:
    criterion: str = "flip"
    rule: str = "latent"  # which channels go: "latent" (smallest |w| first) or "flip" (most flipping first)
    tau: int = 0
    multiple: int = 1  # round widths to this hardware multiple
    max_share: float = 0.9  # never remove more than this share of a layer in one round
    rounds: int = 1
    mode: str = "finetune"  # "finetune" from the survivors or "scratch"
    budget: int | None = None  # binary ops per image, for latent / uniform


CPU_CHECK_IMAGES = 500
BASELINE_FOLDER = "baseline"  # in a comparison run: the unpruned net every pruned one is cut from


def _golden_chunk(path: str, images: np.ndarray) -> np.ndarray:
    return golden.scores(ir.load(path), images)


def golden_scores(path: Path, images: np.ndarray, workers: int | None = None) -> np.ndarray:
    """The golden model's integer scores, the images split over worker processes."""
    workers = workers or min(16, os.cpu_count() or 1)
    if workers <= 1:
        return golden.scores(ir.load(path), images)
    chunks = np.array_split(images, workers * 4)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return np.concatenate(list(pool.map(_golden_chunk, [str(path)] * len(chunks), chunks)))


def evaluate(model: BNN, data: Dataset, folder: Path, name: str, provenance: dict[str, Any]) -> tuple[ir.Network, float]:
    """Export to IR and measure top-1 from the golden model's integer scores on
    the full test set (lowest index wins ties); check Brevitas agrees.
    A resumed run reuses the measurement when the IR is newer than the checkpoint."""
    measured = _measured(folder, name, len(data.test))
    if measured is not None:
        return measured, measured.metrics["accuracy"]
    net = export(model, name, data.name, provenance=provenance)
    path = net.save(Path(folder) / ir.FILENAME)
    scores = golden_scores(path, data.test.images)
    acc = float((golden.argmax(scores) == data.test.labels).mean())
    # cross-check against Brevitas: every image on a GPU, the first CPU_CHECK_IMAGES on a CPU (where it costs as much as the golden run)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    checked = len(scores) if device == "cuda" else min(CPU_CHECK_IMAGES, len(scores))
    brevitas_scores = integer_scores(model.to(device), data.test.images[:checked])
    model.cpu()
    if not np.array_equal(brevitas_scores, scores[:checked]):
        raise RuntimeError(f"{folder}: Brevitas and the golden model disagree on {int((brevitas_scores != scores[:checked]).any(1).sum())} test images")
    net.metrics.update({"accuracy": acc, "test_images": len(data.test), "binary_ops": sum(prune.binary_ops(model.arch).values()),
                        "golden_matches_brevitas_images": checked})
    net.save(folder / ir.FILENAME)
    return net, acc


def _measured(folder: Path, name: str, test_images: int) -> ir.Network | None:
    path, ckpt = Path(folder) / ir.FILENAME, Path(folder) / "checkpoint.pt"
    if not (path.exists() and ckpt.exists() and path.stat().st_mtime >= ckpt.stat().st_mtime):
        return None
    net = ir.load(path)
    fresh = net.name == name and "accuracy" in net.metrics and net.metrics.get("test_images") == test_images
    return net if fresh else None


def _same_cut(saved: dict | None, wanted: dict | None) -> bool:
    """Whether a saved round was pruned as asked (the round count does not change a round)."""
    strip = lambda d: {k: v for k, v in (d or {}).items() if k != "rounds"}  # noqa: E731
    return strip(saved) == strip(wanted)


def _trained(folder: Path, model: BNN, cfg: TrainConfig, data: Dataset, train_subset: int | None, seed: int,
             desc: str, extra: dict[str, Any], teacher: BNN | None = None) -> tuple[BNN, dict[str, Any]]:
    """Train (or resume, or reuse a finished run in) ``folder``; ``teacher`` for distillation."""
    ckpt = Path(folder) / "checkpoint.pt"
    saved = checkpoint.load(ckpt)[1].get("prune") if ckpt.exists() else None
    if ckpt.exists() and not _same_cut(saved, extra.get("prune")):
        raise TrainingError(f"{ckpt} was pruned with other settings ({saved})", fix=f"use another --out, or delete {folder} to redo it")
    train(model, cfg, data.train.subset(train_subset, seed), data.test, folder, resume=True, extra=extra, desc=desc,
          teacher=teacher)
    return checkpoint.load(folder / "checkpoint.pt")


def _report(model: BNN, payload: dict[str, Any], folder: Path, criterion: str, rnd: int, acc: float | None, tau: int,
            portions: dict[int, float], t_s: float) -> dict[str, Any]:
    ops = prune.binary_ops(model.arch)
    layer = lambda i: f"{i:02d}_{model.arch.layers[i].kind}"  # noqa: E731  (the IR's layer names)
    report = {
        "criterion": criterion,
        "round": rnd,
        "accuracy": acc,
        "binary_ops": sum(ops.values()),
        "binary_ops_per_layer": {layer(i): v for i, v in ops.items()},
        "widths": {layer(i): w for i, w in prune.widths(model.arch).items()},
        "pruned_by": {layer(i): p for i, p in portions.items()},
        "tau": tau,
        "train_log": payload.get("log", []),
        "wall_s": t_s,
    }
    if payload.get("flips", {}).get("counts"):
        counts = load_flip_counts(payload)
        report["p_l"] = {layer(i): p for i, p in insensitive_portion(counts, tau).items()}
        report["flip_samples"] = payload["flips"]["samples"]
        hist = {layer(i): h for i, h in histograms(counts).items()}
        report["flip_histograms"] = hist
        reports.plot_flip_histograms(hist, folder / "flip_histograms.png", f"{criterion} round {rnd}: weight flips per layer")
    reports.write_report(report, folder)
    return report


def baseline(arch: Arch, data: Dataset, cfg: TrainConfig, out: Path, train_subset: int | None, command: str,
             measure: bool = True) -> tuple[BNN, dict, dict]:
    """Train the unpruned net; ``measure=False`` skips its full-test-set evaluation (accuracy None)."""
    t0 = time.perf_counter()
    folder = out / BASELINE_FOLDER
    model, payload = _trained(folder, BNN.initialised(arch, cfg.seed), cfg, data, train_subset, cfg.seed, "baseline", {"command": command})
    acc = evaluate(model, data, folder, arch.name, {"run": str(folder), "round": 0, "command": command})[1] if measure else None
    return model, payload, _report(model, payload, folder, "unpruned", 0, acc, 0, {}, time.perf_counter() - t0)


def adopt_baseline(source: Path, out: Path, arch: Arch) -> Path:
    """Start the comparison in ``out`` from another run's finished baseline (``source``: that
    run's folder or its baseline/ folder). The baseline does not depend on the pruning settings
    (tau, rule, rounds), so another tau costs only the fine-tuning; `baseline` then checks that
    its training schedule is this one."""
    folder = Path(source)
    folder = folder / BASELINE_FOLDER if (folder / BASELINE_FOLDER / "checkpoint.pt").is_file() else folder
    saved, _ = checkpoint.load(folder / "checkpoint.pt")
    if saved.arch.to_dict() != arch.to_dict():
        raise TrainingError(f"{folder}: its baseline is a {saved.arch.name} of another shape (widths or planes) than this run's",
                            fix="give the baseline of a run with the same architecture and --planes")
    dest = Path(out) / BASELINE_FOLDER
    if (dest / "checkpoint.pt").is_file():
        if not filecmp.cmp(dest / "checkpoint.pt", folder / "checkpoint.pt", shallow=False):
            raise TrainingError(f"{dest} already holds another baseline", fix=f"use another --out, or drop --baseline {source}")
        return dest
    atomic.make_dir(dest)
    for f in sorted(folder.iterdir()):
        if f.is_file():
            atomic.copy_file(f, dest / f.name)
    print(f"baseline: {folder} (copied to {dest})", file=sys.stderr)
    return dest


def one_round(model: BNN, payload: dict[str, Any], data: Dataset, pcfg: PruneConfig, ft_cfg: TrainConfig, scratch_cfg: TrainConfig,
              folder: Path, rnd: int, train_subset: int | None, command: str, name: str) -> tuple[BNN, dict, dict]:
    """Plan widths, cut, train (fine-tune or from scratch), export, report."""
    t0 = time.perf_counter()
    counts = load_flip_counts(payload) if pcfg.criterion == "flip" or pcfg.rule == "flip" else None
    new_widths, portions = prune.plan(model, pcfg.criterion, flip_counts=counts, tau=pcfg.tau, budget=pcfg.budget,
                                      multiple=pcfg.multiple, max_share=pcfg.max_share)
    keep = prune.keep_sets(model, new_widths, pcfg.rule, counts)
    cut = prune.surgery(model, keep)
    if pcfg.mode == "scratch":
        cut, cfg = BNN.initialised(cut.arch, scratch_cfg.seed), scratch_cfg
    elif pcfg.mode == "finetune":
        cfg = ft_cfg
    else:
        raise TrainingError(f"unknown mode {pcfg.mode!r}; choose finetune or scratch")
    extra = {"command": command, "prune": dataclasses.asdict(pcfg), "round": rnd}
    trained, tpayload = _trained(folder, cut, cfg, data, train_subset, cfg.seed, f"{pcfg.criterion} r{rnd}", extra)
    _, acc = evaluate(trained, data, folder, name, {"run": str(folder), "round": rnd, "criterion": pcfg.criterion, "command": command})
    rep = _report(trained, tpayload, folder, pcfg.criterion, rnd, acc, pcfg.tau, portions, time.perf_counter() - t0)
    print(f"{pcfg.criterion} round {rnd}: {rep['binary_ops'] / 1e6:.2f}M binary ops, top-1 {100 * acc:.2f}%", file=sys.stderr)
    return trained, tpayload, rep


def flip_rounds(model: BNN, payload: dict, data: Dataset, pcfg: PruneConfig, ft_cfg: TrainConfig, scratch_cfg: TrainConfig,
                out: Path, train_subset: int | None, command: str, name: str, exact: bool = False) -> list[dict]:
    """Iterate while max p_l decreases (at most ``pcfg.rounds`` rounds; all of them when ``exact``)."""
    out_reports = []
    last_max = max(insensitive_portion(load_flip_counts(payload), pcfg.tau).values())
    for rnd in range(1, pcfg.rounds + 1):
        model, payload, rep = one_round(model, payload, data, pcfg, ft_cfg, scratch_cfg, out / f"round{rnd}", rnd,
                                        train_subset, command, name)
        out_reports.append(rep)
        now_max = max(rep["p_l"].values()) if rep.get("p_l") else 0.0
        if now_max >= last_max and not exact:
            break
        last_max = now_max
    return out_reports


def scaled(cfg: TrainConfig, factor: int) -> TrainConfig:
    """The same schedule stretched ``factor`` times (for baselines matching an N-round flip run)."""
    return dataclasses.replace(cfg, epochs=cfg.epochs * factor, lr_steps=[s * factor for s in cfg.lr_steps])


def _row(name: str, rep: dict, label: str | None = None) -> dict:
    return {"name": name, "criterion": label or rep["criterion"], "round": rep["round"], "accuracy": rep["accuracy"],
            "binary_ops": rep["binary_ops"], "widths": list(rep["widths"].values())}


def _fixed_subset(data: Dataset, train_subset: int | None, seed: int) -> Dataset:
    """The comparison trains every net (and every fine-tuning seed) on one training subset."""
    return dataclasses.replace(data, train=data.train.subset(train_subset, seed))


def flip_folder(rule: str) -> str:
    """Where the flip criterion's rounds with channel ``rule`` live in a comparison run."""
    return "flip" if rule == "flip" else f"flip_{rule}_rule"


def _finetuned_set(arch: Arch, base: BNN, base_payload: dict, data: Dataset, base_cfg: TrainConfig, ft_cfg: TrainConfig,
                   pcfg: PruneConfig, out: Path, command: str, flip_rounds_exact: int | None = None) -> list[dict]:
    """From one baseline: the flip rounds (exactly ``flip_rounds_exact`` of them when given)
    with the chosen channel rule and then as many with the other one, the unpruned
    reference given the same extra training, and latent / uniform at the chosen
    flip net's budget; their rows (flip rule first)."""
    rounds, exact = flip_rounds_exact or pcfg.rounds, flip_rounds_exact is not None
    flips: dict[str, list[dict]] = {}
    for rule in [pcfg.rule] + [r for r in prune.RULES if r != pcfg.rule]:
        cfg = dataclasses.replace(pcfg, criterion="flip", rule=rule, budget=None, rounds=rounds)
        name = f"{arch.name}_pruned" + ("" if rule == "flip" else f"_{rule}_rule")
        flips[rule] = flip_rounds(base, base_payload, data, cfg, ft_cfg, base_cfg, out / flip_folder(rule), None, command, name,
                                  exact=exact)
        rounds, exact = len(flips[rule]), True  # the other rule runs exactly as many rounds
    ft_long = scaled(ft_cfg, len(flips[pcfg.rule]))
    ref_folder = out / "unpruned"
    ref, ref_payload = _trained(ref_folder, copy.deepcopy(base), ft_long, data, None, ft_cfg.seed, "unpruned", {"command": command})
    _, ref_acc = evaluate(ref, data, ref_folder, arch.name, {"run": str(ref_folder), "round": 0, "command": command})
    ref_rep = _report(ref, ref_payload, ref_folder, "unpruned", 0, ref_acc, pcfg.tau, {}, 0.0)
    print(f"unpruned reference: {ref_rep['binary_ops'] / 1e6:.2f}M binary ops, top-1 {100 * ref_acc:.2f}%", file=sys.stderr)
    rows = [_row(arch.name, ref_rep)]
    for rule in prune.RULES:
        suffix = "" if rule == pcfg.rule else f", {rule} rule"  # the chosen rule's net is ARCH_pruned
        rows += [_row(f"{arch.name}_pruned r{r['round']}{suffix}", r, reports.flip_criterion(rule)) for r in flips[rule]]
    for crit in ("latent", "uniform"):
        c = dataclasses.replace(pcfg, criterion=crit, rule="latent", budget=flips[pcfg.rule][-1]["binary_ops"], rounds=1)
        _, _, rep = one_round(base, base_payload, data, c, ft_long, base_cfg, out / crit / "round1", 1, None, command,
                              f"{arch.name}_{crit}")
        rows.append(_row(f"{arch.name}_{crit}", rep))
    return rows


def flip_rounds_in(rows: list[dict]) -> int:
    return max(r["round"] for r in rows if r["criterion"].startswith("flip"))


def mean_rows(rows_per_seed: list[list[dict]]) -> list[dict]:
    """One row per net: the first seed's widths, binary ops and top-1 averaged over
    the seeds (each seed's top-1 kept in ``accuracy_per_seed``)."""
    by_name = [{r["name"]: r for r in rows} for rows in rows_per_seed]
    out = []
    for row in rows_per_seed[0]:
        accs = [b[row["name"]]["accuracy"] for b in by_name]
        ops = [b[row["name"]]["binary_ops"] for b in by_name]
        out.append({**row, "accuracy": float(np.mean(accs)), "accuracy_per_seed": accs, "binary_ops": int(round(np.mean(ops)))})
    return out


def compare(arch: Arch, data: Dataset, base_cfg: TrainConfig, ft_cfg: TrainConfig, pcfg: PruneConfig, out: Path,
            train_subset: int | None, command: str, seeds: int = 1) -> dict[str, Any]:
    """Baseline, then for each of ``seeds`` fine-tuning seeds: flip rounds, the
    unpruned reference, latent and uniform at the flip net's budget; the table
    (top-1 averaged over the seeds)."""
    if seeds < 1:
        raise TrainingError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out)
    t0 = time.perf_counter()
    data = _fixed_subset(data, train_subset, base_cfg.seed)
    # the baseline is only the starting point: the table's reference is `unpruned`, trained as long as the pruned nets
    base, base_payload, base_rep = baseline(arch, data, base_cfg, out, None, command, measure=False)
    ft_seeds = [ft_cfg.seed + k for k in range(seeds)]
    rows_per_seed: list[list[dict]] = []
    for k, seed in enumerate(ft_seeds):
        folder = out if k == 0 else out / f"seed{seed}"  # the first seed's nets at the top level
        # later seeds run as many flip rounds as the first, so every seed has the same rows
        first_rounds = flip_rounds_in(rows_per_seed[0]) if rows_per_seed else None
        rows_per_seed.append(_finetuned_set(arch, base, base_payload, data, base_cfg, dataclasses.replace(ft_cfg, seed=seed), pcfg,
                                            folder, command, first_rounds))
        if seeds > 1:
            print(f"fine-tuning seed {seed} done ({k + 1}/{seeds})", file=sys.stderr)
    rows = mean_rows(rows_per_seed)
    flip_rounds_done = flip_rounds_in(rows)
    result = {"rows": rows, "seeds": ft_seeds, "baseline": _row("baseline", base_rep),
              "pruned_folder": f"{flip_folder(pcfg.rule)}/round{flip_rounds_done}",
              "wall_s": time.perf_counter() - t0, "command": command, "base_schedule": dataclasses.asdict(base_cfg),
              "finetune_schedule": dataclasses.asdict(scaled(ft_cfg, flip_rounds_done)), "prune": dataclasses.asdict(pcfg),
              "train_subset": train_subset}
    atomic.write_json(out / "comparison.json", result)
    reports.write_text(out / "table.md", reports.comparison_table(rows))
    reports.plot_accuracy_vs_ops(rows, out / "accuracy_vs_ops.png", f"{arch.name} on {data.name}: accuracy vs binary ops")
    return result


def to_zoo(folder: Path, zoo_dir: Path, name: str) -> Path:
    """Copy a trained folder's model (weights only, no optimizer state) into the zoo."""
    model, payload = checkpoint.load(folder / "checkpoint.pt")
    dest = Path(zoo_dir) / name
    dest.mkdir(parents=True, exist_ok=True)
    keep = {k: payload[k] for k in ("log", "train_config", "command", "prune", "round", "epoch") if k in payload}
    checkpoint.save(dest / "checkpoint.pt", model, **keep)
    net = ir.load(folder / ir.FILENAME)
    net.name = name
    net.save(dest / ir.FILENAME)
    rep = reports_json(folder)
    metrics = {k: rep[k] for k in ("accuracy", "binary_ops", "binary_ops_per_layer", "widths", "criterion", "round") if k in rep}
    metrics.update({"test_images": net.metrics.get("test_images"), "source": str(folder), "command": payload.get("command")})
    atomic.write_json(dest / "metrics.json", metrics)
    if (folder / "flip_histograms.png").exists():
        atomic.copy_file(folder / "flip_histograms.png", dest / "flip_histograms.png")
    for f in dest.iterdir():
        f.chmod(0o644)
    return dest


def copy_comparison(run: Path, dest: Path) -> Path:
    """The table, its JSON and plot, so `flipflow table DEST` works on a fresh clone."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("comparison.json", "table.md", "accuracy_vs_ops.png"):
        atomic.copy_file(Path(run) / name, dest / name)
        (dest / name).chmod(0o644)
    return dest


def reports_json(folder: Path) -> dict:
    return json.loads((Path(folder) / "report.json").read_text())
