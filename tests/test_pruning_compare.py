"""End to end: `flipflow prune --compare` on digits with a TFC, then `flipflow table` and the zoo export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from flipflow import cli, ir
from flipflow import golden
from flipflow.training import checkpoint, datasets, prune, rounds, train
from flipflow.training.blocks import BNN


@pytest.mark.slow
def test_compare_run_writes_reports_table_and_zoo(tmp_path, capsys):
    out, zoo = tmp_path / "run", tmp_path / "zoo"
    args = ["prune", "tfc", "--compare", "--dataset", "digits", "--epochs", "3", "--lr", "3e-3", "--flip-epochs", "2",
            "--ft-epochs", "1", "--tau", "0", "--rounds", "2", "--seeds", "2", "--out", str(out), "--zoo", str(zoo)]
    assert cli.main(args) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    rows = {r["criterion"]: r for r in comparison["rows"]}  # the last flip round of each rule
    assert set(rows) == {"unpruned", "flip (flip rule)", "flip (latent rule)", "latent", "uniform"}
    final = rows["flip (flip rule)"]["round"]
    assert rows["flip (latent rule)"]["round"] == final
    assert comparison["pruned_folder"] == f"flip_latent_rule/round{final}"  # the default rule's
    # both channel rules cut the flip criterion's round-1 widths, from different channels
    by_rule = [checkpoint.load(out / f / "round1" / "checkpoint.pt")[0] for f in ("flip", "flip_latent_rule")]
    assert prune.widths(by_rule[0].arch) == prune.widths(by_rule[1].arch)
    # two fine-tuning seeds from one baseline: the table's top-1 is the mean of the two runs' own reports
    assert comparison["seeds"] == [0, 1] and not (out / "seed1" / "baseline").exists()
    for crit, folder in (("unpruned", "unpruned"), ("flip (flip rule)", f"flip/round{final}"),
                         ("flip (latent rule)", f"flip_latent_rule/round{final}"), ("latent", "latent/round1"), ("uniform", "uniform/round1")):
        per_seed = [json.loads((run / folder / "report.json").read_text())["accuracy"] for run in (out, out / "seed1")]
        assert rows[crit]["accuracy_per_seed"] == per_seed and rows[crit]["accuracy"] == pytest.approx(np.mean(per_seed))
        seed1 = checkpoint.load(out / "seed1" / folder / "checkpoint.pt")[1]["train_config"]
        assert seed1["seed"] == 1 and seed1 == {**checkpoint.load(out / folder / "checkpoint.pt")[1]["train_config"], "seed": 1}
    for crit in ("latent", "uniform"):  # baselines meet the flip net's budget
        assert rows[crit]["binary_ops"] <= rows["flip (flip rule)"]["binary_ops"]
    flip_report = json.loads((out / "flip" / "round1" / "report.json").read_text())
    assert set(flip_report) >= {"accuracy", "binary_ops", "binary_ops_per_layer", "widths", "p_l", "flip_histograms"}
    assert (out / "flip" / "round1" / "flip_histograms.png").stat().st_size > 1000
    assert (out / "accuracy_vs_ops.png").stat().st_size > 1000
    table = (out / "table.md").read_text()
    assert table.count("\n") == 2 + len(comparison["rows"]) and "| tfc |" in table
    capsys.readouterr()
    assert cli.main(["table", str(out)]) == 0
    assert capsys.readouterr().out == table
    # the zoo model: IR accuracy re-measured by the golden model equals its metrics
    digits = datasets.digits()
    for name in ("tfc", "tfc_pruned"):
        net = ir.load(zoo / name / "model.ir.npz")
        metrics = json.loads((zoo / name / "metrics.json").read_text())
        assert golden.accuracy(net, digits.test.images, digits.test.labels) == pytest.approx(metrics["accuracy"])
        command = net.provenance["command"]
        assert command.startswith("flipflow prune tfc ") and "--compare" in command and "--dataset digits" in command
        model, payload = checkpoint.load(zoo / name / "checkpoint.pt")
        assert "optimizer" not in payload
    assert np.all(np.array(rows["flip (flip rule)"]["widths"]) <= np.array(rows["unpruned"]["widths"]))


def test_seeds_without_compare_is_refused(tmp_path, capsys):
    assert cli.main(["prune", "tfc", "--dataset", "digits", "--seeds", "2", "--out", str(tmp_path)]) == 2
    assert "--compare" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_a_round_pruned_otherwise_is_not_reused(tmp_path, capsys):
    args = ["prune", "tfc", "--dataset", "digits", "--epochs", "2", "--flip-epochs", "1", "--ft-epochs", "1", "--rounds", "1",
            "--eval-images", "50", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(args + ["--tau", "1"]) == 2
    assert "pruned with other settings" in capsys.readouterr().err


def test_table_without_a_run_says_how_to_make_one(tmp_path, capsys):
    assert cli.main(["table", str(tmp_path)]) == 2
    assert "--compare" in capsys.readouterr().err


def test_scratch_mode_retrains_the_narrower_net_on_the_base_schedule(tmp_path):
    """--mode scratch: the pruned widths, fresh weights, the baseline's schedule (not the fine-tuning one)."""
    out = tmp_path / "run"
    args = ["prune", "tfc", "--dataset", "digits", "--epochs", "3", "--lr", "3e-3", "--flip-epochs", "2", "--tau", "0",
            "--rounds", "1", "--mode", "scratch", "--ft-epochs", "1", "--eval-images", "50", "--out", str(out)]
    assert cli.main(args) == 0
    base, base_payload = checkpoint.load(out / "baseline" / "checkpoint.pt")
    pruned, payload = checkpoint.load(out / "flip_latent_rule" / "round1" / "checkpoint.pt")
    assert payload["train_config"] == base_payload["train_config"] and len(payload["log"]) == 3
    assert payload["prune"]["mode"] == "scratch"
    report = json.loads((out / "flip_latent_rule" / "round1" / "report.json").read_text())
    assert sum(report["widths"].values()) < sum(prune.widths(base.arch).values())
    assert report["accuracy"] > 0.5  # digits: the retrained net learns


def test_another_tau_starts_from_the_first_runs_baseline(tmp_path, capsys):
    """--baseline copies a finished baseline (it does not depend on tau) and trains none; a
    baseline of another shape, a clash with the one already there, or another schedule is refused."""
    first = tmp_path / "tau0"
    schedule = ["--dataset", "digits", "--epochs", "2", "--flip-epochs", "1", "--eval-images", "50"]
    assert cli.main(["train", "tfc", *schedule, "--out", str(first / "baseline")]) == 0
    model, payload = checkpoint.load(first / "baseline" / "checkpoint.pt")
    arch, cfg = model.arch, train.TrainConfig(**payload["train_config"])  # the CLI's schedule
    second = tmp_path / "tau1"
    dest = rounds.adopt_baseline(first, second, arch)
    assert dest == second / "baseline"
    assert (dest / "checkpoint.pt").read_bytes() == (first / "baseline" / "checkpoint.pt").read_bytes()
    assert rounds.adopt_baseline(first / "baseline", second, arch) == dest  # the same one again: nothing to do
    data = datasets.digits()
    before = dest.joinpath("checkpoint.pt").stat().st_mtime_ns
    rounds.baseline(arch, data, cfg, second, None, "test", measure=False)
    assert dest.joinpath("checkpoint.pt").stat().st_mtime_ns == before  # finished: not trained again
    assert "resuming" in capsys.readouterr().err
    with pytest.raises(train.TrainingError, match="different training configuration"):
        rounds.baseline(arch, data, dataclasses.replace(cfg, epochs=3), second, None, "test", measure=False)
    narrow = prune.with_widths(arch, {i: w // 2 for i, w in prune.widths(arch).items()})
    with pytest.raises(train.TrainingError, match="another shape"):
        rounds.adopt_baseline(first, tmp_path / "narrow", narrow)
    other = tmp_path / "other"
    checkpoint.save(other / "baseline" / "checkpoint.pt", BNN.initialised(arch, 1), **{k: v for k, v in payload.items() if k not in ("arch", "model")})
    with pytest.raises(train.TrainingError, match="already holds another baseline"):
        rounds.adopt_baseline(other, second, arch)


def test_baseline_without_compare_is_refused(tmp_path, capsys):
    assert cli.main(["prune", "tfc", "--dataset", "digits", "--baseline", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "--compare" in capsys.readouterr().err
