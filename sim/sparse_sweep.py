"""`flipflow sparse`: accuracy against N:M sparsity of the binary layers (SBNN; docs/DESIGN.md,
"Sparse binary layers"). From one dense checkpoint, each setting (``Setting``: one N:M for every
binary layer, or per layer) turns those layers into sparse ones (training.models.sparsified:
latent weights kept, BatchNorm statistics re-estimated), fine-tunes the net with every seed on one
schedule (the zoo's fine-tuning by default; ``distill`` mixes in the dense model's soft targets),
exports it and measures top-1 on the full test set (golden model), then prices it in a device
budget: the folding search's fastest folding, its cycles per frame and resources by the cost
model. The dense model, as it is, is the first row. The dense model fine-tuned on the same
schedule and seeds is the control (``control``): a sparse row's ``drop_vs_control_pt`` is its loss
with the schedule's own effect taken out, ``accuracy_drop_pt`` the loss against the dense model
(the issue's bar). Every step resumes: a finished seed is not trained again, a priced setting not
searched again (a changed schedule needs another ``out``).

Layout of ``out``: dense/ (model.ir.npz, origin.txt, hardware.json, seed<S>/: the control's
runs), reference/<name>/ (the same without seeds: with ``reference``), one folder
per setting (``Setting.folder``: nm2_8, nm04-1_16+08-1_16, cnm2_8 centred) with seed<S>/ (checkpoint.pt,
log.json, model.ir.npz), model.ir.npz and hardware.json; report.json, report.png.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from flipflow import atomic, golden, ir, kinds
from flipflow.errors import UsageError
from flipflow.generator import cost, devices, folding, timing_model
from flipflow.training import checkpoint, datasets, models, prune, reports, rounds
from flipflow.training.blocks import BNN
from flipflow.training.export import export
from flipflow.training.train import TrainConfig

HARDWARE = "hardware.json"
ORIGIN = "origin.txt"  # in dense/ and reference/<name>/: the file the model there was read from
CALIBRATION_IMAGES = 512  # training images that re-estimate the BatchNorm statistics of a fresh sparse net
BAR = {"sparsity": 0.75, "accuracy_drop_pt": 1.0, "speedup": 1.5}  # issue 17's bar for nin_pruned
MHZ = 100.0  # fps_at_100mhz


@dataclass
class Schedule:
    """The fine-tuning of every sparse net: the zoo's (Makefile PRUNE_SCHEDULE: --ft-epochs 2
    --ft-lr 1e-3 --ft-lr-steps 1, 16,384 training images, batch 32, 3 seeds) by default."""

    train_subset: int = 16384
    epochs: int = 2
    lr: float = 1e-3
    lr_steps: list[int] = field(default_factory=lambda: [1])
    lr_gamma: float = 0.1
    batch_size: int = 32
    seeds: int = 3
    seed: int = 0  # the first seed; the training subset is drawn with it
    distill: float = 0.0  # share of the distillation loss from the dense start model (0: cross-entropy only)
    temperature: float = 4.0  # its softmax temperature

    def config(self, seed: int) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           lr_steps=[s for s in self.lr_steps if s < self.epochs], lr_gamma=self.lr_gamma, flip_epochs=0,
                           eval_images=200, seed=seed, distill_weight=self.distill, distill_temperature=self.temperature)


@dataclass(frozen=True)
class Setting:
    """One sparsity of the sweep: ``every`` N:M for each binary layer not in ``layers``, and
    ``layers`` (layer index -> N:M) for the named ones; a layer in neither stays dense.
    ``widths`` (layer index, channels, rule) first narrows prunable layers, e.g. the 8-bit first
    layer, which no sparsity reaches and whose DSP48s can cap the folding; the rule
    (training.prune.CUT_RULES) chooses the channels: ``latent`` (the zoo's, largest mean |latent|
    kept) or ``activity`` (the most constant output bits on the calibration images go). Text
    form: ``2:8`` (every binary layer), ``04=1:16+08=1:16`` (two layers), ``1:4+04=1:16``,
    ``04=2:32+00=168ch`` (and layer 00 narrowed to 168 channels), ``00=168ch-activity``.
    ``centred``: the sparse layers compute with b - N/M (ir.Layer.centred, `--centred`)."""

    every: models.NM | None = None
    layers: tuple[tuple[int, models.NM], ...] = ()
    centred: bool = False
    widths: tuple[tuple[int, int, str], ...] = ()

    def per_layer(self, arch: models.Arch) -> dict[int, models.NM]:
        """Layer index -> N:M over ``arch`` (models.with_sparsity's argument)."""
        named = dict(self.layers)
        if self.every:
            named = {**{i: self.every for i, s in enumerate(arch.layers) if kinds.sparse_of(s.kind)}, **named}
        return named

    @property
    def sparse(self) -> bool:
        """Whether the setting makes any layer sparse (a width cut alone does not)."""
        return bool(self.every or self.layers)

    def check(self, arch: models.Arch) -> None:
        """UsageError naming what ``arch`` cannot take, before any training."""
        for i, channels, _ in self.widths:
            if i not in prune.widths(arch):
                raise UsageError(f"setting {self.label!r}: layer {i:02d} of {arch.name} has no channels to prune",
                                 fix=f"narrow one of layers {', '.join(f'{p:02d}' for p in prune.widths(arch))}")
            if not 1 <= channels <= arch.layers[i].out_ch:
                raise UsageError(f"setting {self.label!r}: layer {i:02d} has {arch.layers[i].out_ch} channels, "
                                 f"cannot keep {channels}", fix=f"give 1..{arch.layers[i].out_ch} channels")
        if self.sparse:
            models.with_sparsity(arch, self.per_layer(arch))

    def start(self, model: BNN, images: np.ndarray) -> BNN:
        """The net this setting fine-tunes: ``model`` narrowed (the activity rule looks at
        ``images``), then made sparse (BatchNorm statistics re-estimated on ``images``)."""
        for i, channels, rule in self.widths:
            model = prune.surgery(model, prune.keep_sets(model, {i: channels}, rule, None, images))
        return models.sparsified(model, self.per_layer(model.arch), images, self.centred) if self.sparse else model

    @property
    def uniform(self) -> models.NM | None:
        """(N, M) when every binary layer has it and no layer is narrowed."""
        return None if self.layers or self.widths else self.every

    def _parts(self, every: str, layer: str, width: str, sep: str) -> list[str]:
        parts = [every.format(*self.every)] if self.every else []
        return (parts + [layer.format(i, n, m) for i, (n, m) in self.layers]
                + [width.format(i, c) + ("" if rule == "latent" else sep + rule) for i, c, rule in self.widths])

    @property
    def label(self) -> str:
        return "+".join(self._parts("{}:{}", "{:02d}={}:{}", "{:02d}={}ch", "-")) + (" centred" if self.centred else "")

    @property
    def folder(self) -> str:
        return ("cnm" if self.centred else "nm") + "+".join(self._parts("{}_{}", "{:02d}-{}_{}", "{:02d}-{}ch", "-"))

    @property
    def suffix(self) -> str:
        """The sparse net's name suffix (an identifier: the name reaches HLS and Verilog)."""
        return "_".join(self._parts("{}of{}", "l{:02d}_{}of{}", "l{:02d}_{}ch", "_")) + ("_centred" if self.centred else "")


def parse_nm(text: str, centred: bool = False) -> list[Setting]:
    """"1:4,2:8,04=1:16+08=1:16" -> three Settings (``centred`` each that has sparse layers);
    UsageError naming the bad item and the rule."""
    settings: list[Setting] = []
    for item in (t.strip() for t in text.split(",")):
        setting = _setting(text, item)
        setting = dataclasses.replace(setting, centred=centred and setting.sparse)  # a width cut alone stays dense
        if setting in settings:
            raise UsageError(f"--nm {text!r}: {item!r} repeats setting {setting.label}", fix="give each setting once")
        settings.append(setting)
    return settings


def _setting(text: str, item: str) -> Setting:
    every, layers, widths = None, {}, {}
    for part in item.split("+"):
        where, named, value = part.rpartition("=")
        try:
            if named and not where.isdigit():
                raise ValueError(where)
            index = int(where) if named else None
            amount, dash, rule = value.partition("-")  # <channels>ch[-RULE]
            rule = rule if dash else "latent"
            channels = int(amount[:-2]) if named and amount.endswith("ch") else None
            if channels is None:
                n, m = (int(v) for v in value.split(":"))
        except ValueError:
            raise UsageError(f"--nm {text!r}: {part!r} is not N:M, LAYER=N:M or LAYER=<channels>ch[-RULE]",
                             fix="give comma-separated settings, e.g. --nm 1:4,2:8,04=1:16+08=1:16+00=168ch") from None
        if channels is not None:
            if index in widths:
                raise UsageError(f"--nm {text!r}: {item!r} narrows layer {index} twice", fix="give each layer one width per setting")
            if rule not in prune.CUT_RULES:
                raise UsageError(f"--nm {text!r}: {part!r} names no channel rule", fix=f"end it in one of -{', -'.join(prune.CUT_RULES)}")
            widths[index] = (channels, rule)
            continue
        problem = ir.nm_problem(n, m)
        if problem:
            raise UsageError(f"--nm {text!r}: {problem}", fix="e.g. --nm 1:4,2:8")
        if (index is None and every) or index in layers:
            raise UsageError(f"--nm {text!r}: {item!r} sets {'every layer' if index is None else f'layer {index}'} twice",
                             fix="give each layer one N:M per setting")
        if index is None:
            every = (n, m)
        else:
            layers[index] = (n, m)
    return Setting(every, tuple(sorted(layers.items())), widths=tuple((i, *w) for i, w in sorted(widths.items())))


def weight_bits(net: ir.Network) -> int:
    """Bits of every weight memory without padding: out_ch x slots x element bits per layer
    (a sparse layer stores ceil(log2 M)-bit indices of its N x ceil(K / M) slots)."""
    return sum(l.out_ch * kinds.matrix(l).synapse_slots(l) * kinds.matrix(l).weight_bits(l) for l in net.layers if l.has_weights)


def zero_share(net: ir.Network) -> float:
    """Share of zero weights over the binary (XNOR or sparse) layers: 0 for a dense net, whose
    +-1 weights are never zero."""
    binary = [l for l in net.layers if l.has_weights and kinds.of(l).counts_binary_ops]
    zeros = sum(int((l.weights == 0).sum()) for l in binary if kinds.of(l).sparse)
    return zeros / sum(l.weights.size for l in binary)


# the modules whose code prices a net (cycles, resources, timing, the search): a change to any
# of them re-prices a kept hardware.json, as a change of the fitted multipliers does
PRICING_MODULES = (kinds, cost, folding, timing_model)


def pricing_key() -> str:
    """The cost model's identity: its fitted multipliers and the source of PRICING_MODULES."""
    digest = hashlib.sha256(repr(cost.Coefficients.load().fingerprint()).encode())
    for module in PRICING_MODULES:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def hardware(net: ir.Network, folder: Path, budget: devices.Budget) -> dict[str, Any]:
    """The fastest folding in ``budget`` and its figures, kept in folder/hardware.json (reused
    while newer than the IR, for the same budget and the same ``pricing_key``)."""
    path, net_path = folder / HARDWARE, folder / ir.FILENAME
    saved = json.loads(path.read_text()) if path.exists() and path.stat().st_mtime >= net_path.stat().st_mtime else None
    key = pricing_key()
    if saved and saved.get("budget") == budget.to_dict() and saved.get("cost_model") == key:
        return saved
    plan = folding.optimize(net, budget.as_device())
    found = {"budget": budget.to_dict(), "cost_model": key, "cycles_per_frame": plan.cycles_per_frame,
             "fps_at_100mhz": MHZ * 1e6 / plan.cycles_per_frame, "bottleneck": plan.bottleneck,
             "LUT": plan.totals["LUT"], "BRAM36": plan.totals["BRAM36"], "FF": plan.totals["FF"], "DSP": plan.totals["DSP"],
             "folding": {name: dataclasses.asdict(c) for name, c in plan.folding.items()}}
    atomic.write_json(path, found, indent=1)
    return found


def row(net: ir.Network, setting: Setting | None, accuracies: list[float], hw: dict[str, Any]) -> dict[str, Any]:
    """A report row; ``sparsity`` is the measured share of zero weights in the binary layers
    (a little under 1 - N/M where a fan-in ends in a partial block)."""
    n, m = (setting.uniform if setting else None) or (None, None)
    return {"setting": setting.label if setting else "dense", "n": n, "m": m, "centred": bool(setting and setting.centred),
            "nm_per_layer": {l.name: f"{l.nm[0]}:{l.nm[1]}" for l in net.layers if l.nm}, "sparsity": zero_share(net),
            "accuracy": float(np.mean(accuracies)), "accuracy_per_seed": accuracies, "binary_ops": net.binary_ops,
            "weight_bits": weight_bits(net), **{k: v for k, v in hw.items() if k != "budget"}}


def network(source: reports.ModelSource, dataset: str, model: BNN | None = None) -> ir.Network:
    """A dense net: its kept IR, else its checkpoint's model (``model`` if loaded) exported."""
    if source.ir_path:
        return ir.load(source.ir_path)
    return export(model or checkpoint.load(source.checkpoint_file)[0], net_name(source), dataset)


def top1(source: reports.ModelSource, net: ir.Network, test: datasets.Split) -> tuple[list[float], str]:
    """Top-1 per seed and where it comes from: the fine-tuning seeds where known (issue 17's
    bar: the mean of the zoo's seeds), else the golden model of ``net`` on ``test``."""
    if source.seeds:
        return source.seeds, source.seeds_source
    accuracy = net.metrics.get("accuracy") if net.metrics.get("test_images") == len(test) else None
    if accuracy is None:
        accuracy = golden.accuracy(net, test.images, test.labels)
    return [accuracy], f"golden model of the IR on {len(test)} test images"


def net_name(source: reports.ModelSource) -> str:
    """The model's label as an identifier: sparse nets are named after it."""
    return re.sub(r"\W", "_", source.label)


def default_out(model: str) -> Path:
    """build/<start's name>-sparse: a zoo name, a checkpoint's or a prune run's folder name."""
    return Path("build") / f"{net_name(reports.model_source(model))}-sparse"


def _stored_origin(folder: Path) -> str | None:
    """The file the model kept in ``folder`` was read from (None: nothing kept there yet)."""
    path = folder / ORIGIN
    return path.read_text().strip() if path.is_file() else None


def _check_start(source: reports.ModelSource, out: Path) -> None:
    """A sweep resumes from ``out``'s seed folders: refuse an ``out`` made from another start."""
    stored = _stored_origin(out / "dense")
    if stored is not None and stored != str(source.origin):
        raise UsageError(f"{out} holds a sweep from {stored}, not {source.origin}", fix="give another --out, or the same start")


def _dense_row(source: reports.ModelSource, net: ir.Network, folder: Path, test: datasets.Split,
               budget: devices.Budget) -> dict[str, Any]:
    """The row of a dense model, its IR kept in ``folder`` (saved again when the model there
    came from another file: a reference folder is named after a label two files can share)."""
    folder = atomic.make_dir(folder)
    if not (folder / ir.FILENAME).exists() or _stored_origin(folder) != str(source.origin):
        net.save(folder / ir.FILENAME)
        atomic.write_text(folder / ORIGIN, f"{source.origin}\n")
    accuracies, where = top1(source, net, test)
    return {"name": net_name(source), **row(net, None, accuracies, hardware(net, folder, budget)), "accuracy_source": where}


def run(model: str, settings: list[Setting], schedule: Schedule, out: Path, budget: devices.Budget,
        dataset: str = "fashion_mnist", command: str = "", reference: str | None = None,
        zoo: Path | None = None) -> dict[str, Any]:
    """The dense row and one row per setting; report.json and report.png in ``out``. The bar's
    drop and speedup are taken against ``reference`` (e.g. the 8-bit-input nin_pruned for a
    sweep from a bit-plane net), by default the start model. With ``zoo``, each setting's net
    (its first seed) goes there too (``to_zoo``)."""
    t0 = time.perf_counter()
    begin = reports.model_source(model)
    other = reports.model_source(reference) if reference else None
    start, _ = checkpoint.load(begin.checkpoint_file)
    for setting in settings:  # a setting the architecture cannot take fails before any training
        setting.check(start.arch)
    schedule.config(schedule.seed).check()
    _check_start(begin, Path(out))
    out = atomic.make_dir(Path(out))
    data = datasets.load(dataset)
    data = dataclasses.replace(data, train=data.train.subset(schedule.train_subset, schedule.seed))
    rows = [_dense_row(begin, network(begin, dataset, start), out / "dense", data.test, budget)]
    compared = rows[0]
    if other:
        compared = {**_dense_row(other, network(other, dataset), out / "reference" / net_name(other), data.test, budget),
                    "setting": "reference"}
    seeds = [schedule.seed + i for i in range(schedule.seeds)]
    jobs = tqdm([(setting, s) for setting in [None, *settings] for s in seeds], desc="sparse settings x seeds",
                file=sys.stderr, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0)
    nets: dict[Setting, ir.Network] = {}
    accuracies: dict[Setting | None, list[float]] = {setting: [] for setting in [None, *settings]}
    for setting, seed in jobs:  # setting None: the control, the dense model on the same schedule and seed
        label = setting.label if setting else "control"
        jobs.set_postfix(nm=label, seed=seed, refresh=False)
        folder = atomic.make_dir(out / (setting.folder if setting else "dense") / f"seed{seed}")
        start_model = setting.start(start, data.train.images[:CALIBRATION_IMAGES]) if setting else copy.deepcopy(start)
        cfg = schedule.config(seed)
        trained, _ = rounds._trained(folder, start_model, cfg, data, None, seed, f"{label} seed {seed}", {"command": command},
                                     teacher=start if schedule.distill else None)
        net, acc = rounds.evaluate(trained, data, folder, f"{net_name(begin)}_{setting.suffix}" if setting else f"{net_name(begin)}_finetuned", {
            "run": str(folder), "command": command, "nm": label if setting else None, "train_config": dataclasses.asdict(cfg)})
        if setting:
            nets.setdefault(setting, net)
        accuracies[setting].append(acc)
    for setting, net in nets.items():
        folder = out / setting.folder
        if not (folder / ir.FILENAME).exists() or (folder / ir.FILENAME).stat().st_mtime < (folder / f"seed{seeds[0]}" / ir.FILENAME).stat().st_mtime:
            net.save(folder / ir.FILENAME)  # the first seed's net stands for the setting's hardware
        rows.append({"name": net.name, **row(net, setting, accuracies[setting], hardware(net, folder, budget))})
        if zoo:
            to_zoo(net, rows[-1], schedule, model, command, Path(zoo))
    control = {"accuracy": float(np.mean(accuracies[None])), "accuracy_per_seed": accuracies[None]}
    for r in [*rows, compared] if reference else rows:
        r["accuracy_drop_pt"] = 100 * (compared["accuracy"] - r["accuracy"])
        r["drop_vs_control_pt"] = 100 * (control["accuracy"] - r["accuracy"])
        r["speedup"] = r["fps_at_100mhz"] / compared["fps_at_100mhz"]
    report = {"model": model, "dataset": dataset, "schedule": dataclasses.asdict(schedule), "test_images": len(data.test),
              "budget": budget.to_dict(), "bar": BAR, "control": control, "reference": compared if reference else None,
              "rows": rows,
              "first_sparsity_losing_over_1pt": first_losing(rows, "accuracy_drop_pt"),
              "first_sparsity_losing_over_1pt_vs_control": first_losing(rows, "drop_vs_control_pt"),
              "bar_met_by": [r["name"] for r in rows[1:] if r["sparsity"] >= BAR["sparsity"]
                             and r["accuracy_drop_pt"] <= BAR["accuracy_drop_pt"] and r["speedup"] >= BAR["speedup"]],
              "command": command, "wall_s": round(time.perf_counter() - t0, 1)}
    atomic.write_json(out / "report.json", report, indent=1)
    plot(report, out / "report.png")
    return report


def to_zoo(net: ir.Network, r: dict[str, Any], schedule: Schedule, start: str, command: str, zoo: Path) -> Path:
    """zoo/<net name>/: the setting's first-seed IR and metrics.json (its top-1 and the seeds'
    mean, zeros, N:M and widths, the schedule and command that made it)."""
    dest = atomic.make_dir(zoo / net.name)
    net.save(dest / ir.FILENAME)
    atomic.write_json(dest / "metrics.json", {
        "accuracy": net.metrics.get("accuracy"), "test_images": net.metrics.get("test_images"), "binary_ops": net.binary_ops,
        "nm_per_layer": r["nm_per_layer"], "centred": r["centred"], "widths": {l.name: l.out_ch for l in net.layers if l.has_weights},
        "zero_weights": r["sparsity"], "accuracy_mean_of_seeds": r["accuracy"], "accuracy_per_seed": r["accuracy_per_seed"],
        "schedule": {**dataclasses.asdict(schedule), "start": start}, "command": command}, indent=2)
    return dest


def first_losing(rows: list[dict[str, Any]], drop: str) -> float | None:
    """The least sparsity whose ``drop`` (points) is over the bar's, or None (dense rows, a
    width cut alone, are not a sparsity)."""
    return min((r["sparsity"] for r in rows[1:] if r["sparsity"] > 0 and r[drop] > BAR["accuracy_drop_pt"]), default=None)


def table(report: dict) -> str:
    """One line per row: sparsity, top-1 (mean over seeds), its drop, and the hardware figures."""
    width = max(9, *(len(r["setting"]) for r in report["rows"]))
    head = (f"{'setting':>{width}}{'sparsity':>9}{'top-1 %':>9}{'drop pt':>8}{'vs ctl':>7}{'Mbin ops':>10}{'Kbit w':>8}{'cycles':>9}"
            f"{'frames/s':>10}{'speedup':>8}{'LUT':>8}{'BRAM36':>7}")
    lines = [head, "-" * len(head)]
    for r in ([report["reference"]] if report.get("reference") else []) + report["rows"]:
        lines.append(f"{r['setting']:>{width}}{100 * r['sparsity']:>8.1f}%{100 * r['accuracy']:>9.2f}{r['accuracy_drop_pt']:>8.2f}"
                     f"{r['drop_vs_control_pt']:>7.2f}"
                     f"{r['binary_ops'] / 1e6:>10.2f}{r['weight_bits'] / 1e3:>8.1f}{r['cycles_per_frame']:>9,}"
                     f"{r['fps_at_100mhz']:>10,.0f}{r['speedup']:>7.2f}x{r['LUT']:>8,.0f}{r['BRAM36']:>7.1f}")
    c = report["control"]
    lines.append(f"dense top-1: {report['rows'][0]['accuracy_source']}")
    if report.get("reference"):
        lines.append(f"drop pt and speedup against the reference, {report['reference']['name']}: "
                     f"{report['reference']['accuracy_source']}")
    lines.append(f"control (the dense model fine-tuned on the same schedule, {len(c['accuracy_per_seed'])} seed(s)): "
                 f"{100 * c['accuracy']:.2f}%; drop pt: against the dense model, vs ctl: against the control")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Top-1 (mean and every seed) and frames/s against the sparsity, the dense model at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    markers = "osD^v<>pPX*h"
    for i, r in enumerate(rows):  # one colour and marker per setting, named in the legend (settings share x often)
        x, style = 100 * r["sparsity"], {"color": f"C{i % 10}", "marker": markers[i % len(markers)], "ls": ""}
        ax1.plot([x] * len(r["accuracy_per_seed"]), [100 * a for a in r["accuracy_per_seed"]], ".", color="grey")
        ax1.plot(x, 100 * r["accuracy"], **style, label=f"{r['setting']}: {100 * r['accuracy']:.2f}%")
        ax2.plot(x, r["fps_at_100mhz"], **style)
    compared = report.get("reference") or rows[0]  # what the bar compares with
    ax1.axhline(100 * compared["accuracy"] - report["bar"]["accuracy_drop_pt"], color="grey", lw=0.8, ls="--",
                label=f"{compared['name']} - 1 pt")
    ax1.axhline(100 * report["control"]["accuracy"], color="k", lw=0.8, ls=":", label="dense fine-tuned on this schedule")
    ax1.set_ylabel(f"top-1 on {report['test_images']} test images (%): mean, seeds grey")
    ax1.set_title("accuracy (golden model on the exported IR)")
    ax1.legend(fontsize=7)
    ax2.axhline(report["bar"]["speedup"] * compared["fps_at_100mhz"], color="grey", lw=0.8, ls="--",
                label=f"{report['bar']['speedup']:g}x {compared['name']}")
    ax2.set_ylabel("frames/s at 100 MHz (cycle model)")
    ax2.set_title(f"best folding in the {report['budget']['device']['name']} budget")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xlabel("zero weights in the binary layers (%)")
    s = report["schedule"]
    fig.suptitle(f"{report['model']}: N:M sparse binary layers, fine-tuned {s['epochs']} epoch(s) on {s['train_subset']} "
                 f"images, batch {s['batch_size']}, Adam {s['lr']:g}, {s['seeds']} seed(s)"
                 + (f", distilled from the dense model ({s['distill']:g}, T {s['temperature']:g})" if s.get("distill") else ""),
                 fontsize=10)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
