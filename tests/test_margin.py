"""training/margin.py: the early-exit margin regulariser, its thresholds against the ones
export folds, its CLI options and the `flipflow margin-sweep` report (sim/margin_sweep.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from flipflow import cli, kinds
from flipflow.generator import folding as folding_mod
from flipflow.generator.folding import LayerConfig
from flipflow.sim import margin_sweep
from flipflow.training import checkpoint, margin, models
from flipflow.training import cli as training_cli
from flipflow.training import train as training
from flipflow.training.blocks import BNN, PIXEL_SCALE, ThresholdBlock
from flipflow.training.export import export
from flipflow.training.synthetic import calibrated_model


def threshold_blocks(model: BNN) -> list[tuple[int, ThresholdBlock]]:
    return [(i, b) for i, b in enumerate(model.blocks) if isinstance(b, ThresholdBlock)]


@pytest.fixture(scope="module")
def conv_model(digits) -> BNN:
    """Both threshold kinds of a conv net, about a third of the BN scales negative."""
    return calibrated_model(models.nin(digits.input_shape, digits.classes, widths=(12,) * 8), digits.train.images[:128], seed=3)


def binary_block(model: BNN) -> ThresholdBlock:
    return next(b for _, b in threshold_blocks(model) if b.kind == "binary_conv")


def pre_activations(block: ThresholdBlock, shares: torch.Tensor) -> torch.Tensor:
    """Pre-BN values (1, C, len(shares), 1) at signed distances ``shares`` (of the range) from each channel's threshold."""
    tau, width = margin.thresholds(block).detach(), margin.value_range(block)
    return (tau[:, None] + shares[None, :] * width[:, None])[None, :, :, None]


def test_loss_is_zero_beyond_the_margin_and_positive_inside(conv_model):
    block = binary_block(conv_model)
    outside = pre_activations(block, torch.tensor([-0.3, -0.21, 0.21, 0.5]))
    inside = pre_activations(block, torch.tensor([-0.1, 0.0, 0.05]))
    assert margin.hinge(margin.distance_share(block, outside), 0.2) == 0
    loss = margin.hinge(margin.distance_share(block, inside), 0.2)
    assert loss.item() == pytest.approx(np.mean([0.5, 1.0, 0.75]), rel=1e-4)  # 1 - share / margin


def test_gradient_pushes_pre_activations_away_from_the_threshold(conv_model):
    block = binary_block(conv_model)
    z = pre_activations(block, torch.tensor([-0.1, -0.02, 0.02, 0.1])).requires_grad_()
    margin.hinge(margin.distance_share(block, z), 0.2).backward()
    side = torch.sign(z.detach() - margin.thresholds(block).detach()[None, :, None, None])
    assert torch.all(-z.grad * side > 0)  # a descent step moves every z further from tau


def test_thresholds_are_the_ones_export_folds(conv_model, digits):
    """tau mirrored by the sign of gamma and rounded up onto the integer accumulator (clamped
    to its range) is the IR's threshold, for the pixel layer and every binary layer."""
    net = export(conv_model, "tiny", "digits")
    compared, mirrored = 0, False
    for i, block in threshold_blocks(conv_model):
        layer = net.layers[i]
        mirror = torch.where(block.bn.weight < 0, -1.0, 1.0).double()
        tau = margin.thresholds(block).detach().double()
        if layer.kind == "binary_conv":
            k = layer.fan_in
            want = np.clip(np.ceil((k + mirror * tau).numpy() / 2), 0, k + 1)  # z = m(2P' - K) >= m tau
        else:
            amax = 255 * np.abs(layer.weights.reshape(layer.out_ch, -1)).sum(1)
            want = np.clip(np.ceil((mirror * tau).numpy() / (layer.weight_scale * PIXEL_SCALE)), -amax, amax + 1)
        np.testing.assert_array_equal(layer.thresholds, want.astype(np.int64), err_msg=layer.name)
        compared += 1
        mirrored |= bool((block.bn.weight < 0).any())
    assert compared == 8 and mirrored


def test_a_constant_channel_adds_no_loss(conv_model):
    block = binary_block(conv_model)
    with torch.no_grad():
        gamma = block.bn.weight.clone()
        block.bn.weight.zero_()
        try:
            z = torch.zeros(2, len(gamma), 1, 1, requires_grad=True)
            loss = margin.hinge(margin.distance_share(block, z), 0.2)
        finally:
            block.bn.weight.copy_(gamma)
    assert loss == 0


def tiny(digits, seed: int = 0) -> BNN:
    return BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), seed)


def test_cli_options_reach_the_loss(digits, tmp_path):
    args = cli.build_parser().parse_args(["train", "tfc", "--margin-weight", "0.5", "--margin", "0.1", "--margin-first",
                                          "--epochs", "1", "--batch-size", "128"])
    cfg = training_cli._config(args)
    assert (cfg.margin_weight, cfg.margin, cfg.margin_first) == (0.5, 0.1, True)
    model = tiny(digits)
    log = training.train(model, cfg, digits.train, digits.test, tmp_path / "on")["log"]
    plain = training.train(tiny(digits), training_cli._config(cli.build_parser().parse_args(
        ["train", "tfc", "--epochs", "1", "--batch-size", "128"])), digits.train, digits.test, tmp_path / "off")["log"]
    assert 0 < log[0]["margin_loss"] <= 1 and "margin_loss" not in plain[0]
    assert log[0]["train_loss"] != plain[0]["train_loss"]
    assert all(not b.bn._forward_pre_hooks for _, b in threshold_blocks(model))  # hooks gone after training
    first = margin.MarginLoss(model, 0.1, first_layer=True)
    assert [b.kind for b in first.blocks] == ["input_dense", "binary_dense", "binary_dense"]
    first.remove()


def test_checkpoints_from_before_the_margin_loss_resume(digits, tmp_path):
    cfg = training.TrainConfig(epochs=2, batch_size=128)
    training.train(tiny(digits), training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, tmp_path)
    model, payload = checkpoint.load(tmp_path / "checkpoint.pt")
    old = {k: v for k, v in payload["train_config"].items() if not k.startswith("margin")}
    assert cfg.same_as({**old, "epochs": 2})
    assert not training.TrainConfig(epochs=2, batch_size=128, margin_weight=0.5).same_as({**old, "epochs": 2})
    with pytest.raises(ValueError, match="margin"):
        training.TrainConfig(margin=0).check()


def test_margin_sweep_reports_each_weight(digits, tmp_path):
    model = tiny(digits)
    training.train(model, training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, tmp_path / "base")
    folding = {f"{i:02d}_{s.kind}": LayerConfig(4, 16) for i, s in enumerate(model.arch.layers) if kinds.get(s.kind).has_weights}
    schedule = margin_sweep.Schedule(train_subset=128, batch_size=64)
    folds = margin_sweep.foldings(export(model, "tiny", "digits"), folding)
    report = margin_sweep.run(str(tmp_path / "base" / "checkpoint.pt"), [0.0, 1.0], schedule, tmp_path / "sweep", 40, folds,
                              "digits")
    on_disk = json.loads((tmp_path / "sweep" / "report.json").read_text())
    assert on_disk["rows"] == report["rows"] and (tmp_path / "sweep" / "report.png").stat().st_size > 0
    control, regularised = report["rows"]
    assert control["margin_loss"] is None and regularised["margin_loss"] > 0
    assert [c["simd"] for c in report["foldings"]["fine"].values()] == [4, 2, 2, 2]  # K = 64, 32, 32, 32 in 16 folds
    for r in report["rows"]:
        for key in ("pe1", "fine"):
            assert r[key]["xnor"]["neuron_skipped"] == r[key]["xnor"]["group_skipped"]  # one row per group
        assert r["default"]["xnor"]["group_skipped"] <= r["default"]["xnor"]["neuron_skipped"]
        assert 0 < r["accuracy"] <= 1
    folding_mod.save(folding, tmp_path / "folding.json")
    assert cli.main(["margin-sweep", str(tmp_path / "base" / "checkpoint.pt"), "--weights", "0,1", "--dataset", "digits",
                     "--train-subset", "128", "--batch-size", "64", "--images", "40", "--folding", str(tmp_path / "folding.json"),
                     "--out", str(tmp_path / "sweep")]) == 0
    again = json.loads((tmp_path / "sweep" / "report.json").read_text())
    assert again["rows"] == report["rows"]  # the same schedule: every weight reused, nothing trained twice
