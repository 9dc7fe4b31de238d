"""Sparse binary layers (SBNN): the N:M quantiser, the sparse model made from a dense one,
its export (thresholds on popcount(x AND b)) bit-exact against Brevitas on real images, and
`flipflow sparse` (sim/sparse_sweep.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from flipflow import cli, golden, ir, kinds
from flipflow.errors import UsageError
from flipflow.generator import devices, folding
from flipflow.sim import sparse_sweep
from flipflow.training import checkpoint, models, reports
from flipflow.training import train as training
from flipflow.training.blocks import BNN, NMBinaryWeight, images_to_input
from flipflow.training.export import ExportError, export
from flipflow.training.synthetic import calibrated_model
from test_equivalence import assert_layers_equal, roundtrip

NIN_PRUNED = ir.ZOO / "nin_pruned" / "checkpoint.pt"


def test_quantiser_keeps_the_n_largest_per_block_in_window_order():
    q = NMBinaryWeight(2, 4, channels=3, positions=2)  # torch columns (c, position); IR elements (position, c)
    latent = torch.tensor([[0.9, 0.1, 0.5, 0.5, -1.0, 0.3]])  # c0: p0 0.9, p1 0.1; c1: 0.5, 0.5; c2: -1, 0.3
    # IR order: (p0: c0 0.9, c1 0.5, c2 -1.0, p1: c0 0.1 | c1 0.5, c2 0.3): block 0 keeps 0.9 and the first 0.5,
    # the partial block 1 (two elements) keeps both
    assert q.mask(latent).tolist() == [[1.0, 0.0, 1.0, 1.0, 0.0, 1.0]]
    ties = torch.zeros(1, 8)
    assert NMBinaryWeight(1, 4, 8, 1).mask(ties).tolist() == [[1, 0, 0, 0, 1, 0, 0, 0]]  # a tie: the lower position


def test_quantiser_passes_the_gradient_straight_through():
    q = NMBinaryWeight(1, 2, channels=4, positions=1)
    latent = torch.tensor([[0.3, -0.2, 0.1, 0.4]], requires_grad=True)
    (q(latent) * torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
    assert q(latent).tolist() == [[1, 0, 0, 1]] and latent.grad.tolist() == [[1, 2, 3, 4]]


def test_dense_fan_in_smaller_than_m_is_refused(digits):
    arch = models.tfc(digits.input_shape, digits.classes, widths=(16, 8, 8))  # binary fan-ins 16 and 8
    with pytest.raises(models.ArchError, match=r"layer 2 \(sparse_dense\): fan-in K=8 is smaller than the block M=16") as e:
        models.with_sparsity(arch, (1, 16))
    assert "choose M <= 8" in str(e.value)
    with pytest.raises(models.ArchError, match="power of two"):
        models.with_sparsity(arch, (1, 6))


@pytest.fixture(scope="module")
def nin_pruned() -> BNN:
    return checkpoint.load(NIN_PRUNED)[0]


def fine_tune_briefly(model: BNN, fashion) -> None:
    """Two Adam steps on 64 training images: the weights move off the dense net's."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = images_to_input(fashion.train.images[:64])
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(fashion.train.labels[:64]).long())
        opt.zero_grad()
        loss.backward()
        opt.step()
        training.clip_latent(model)
    model.eval()


@pytest.mark.parametrize("n, m", [(1, 4), (2, 8)])
def test_sparse_nin_pruned_is_bit_exact_on_real_images(nin_pruned, fashion, tmp_path, n, m):
    """Every layer of the sparse zoo net, after a few fine-tuning steps, equals the golden
    model on its export: binary activations and integer scores, on real test images."""
    torch.manual_seed(0)
    model = models.sparsified(nin_pruned, (n, m), fashion.train.images[:256])
    fine_tune_briefly(model, fashion)
    net = roundtrip(export(model, "nin_sparse", "fashion_mnist"), tmp_path)
    sparse = [l for l in net.layers if kinds.of(l).sparse]
    assert len(sparse) == 7 and all(l.nm == (n, m) for l in sparse)
    assert all(l.weights.reshape(l.out_ch, -1).sum(1).tolist() == [kinds.nm_kept(l.fan_in, n, m)] * l.out_ch for l in sparse)
    assert all(0 < l.invert.sum() < l.out_ch for l in sparse)  # both signs of BatchNorm scale, from sparsified
    outputs = golden.run_layers(net, fashion.test.images[:200])
    assert all(0.05 < outputs[l.name].mean() < 0.95 for l in sparse), "a sparse layer's output is (nearly) constant"
    assert_layers_equal(model, net, fashion.test.images[:200])


def test_centred_sparse_nin_pruned_is_bit_exact_on_real_images(nin_pruned, fashion, tmp_path):
    """Centred sparse layers (weights b - N/M) after a short fine-tuning: the exported acc is
    M popcount(x AND b) - N popcount(x) and every layer equals Brevitas on 100 real test images."""
    torch.manual_seed(1)
    per_layer = {1: (1, 4), 4: (2, 32), 8: (2, 32)}
    model = models.sparsified(nin_pruned, per_layer, fashion.train.images[:256], centred=True)
    fine_tune_briefly(model, fashion)
    net = roundtrip(export(model, "nin_centred", "fashion_mnist"), tmp_path)
    sparse = [l for l in net.layers if kinds.of(l).sparse]
    assert [(int(l.name[:2]), l.nm) for l in sparse] == sorted(per_layer.items()) and all(l.centred for l in sparse)
    outputs = golden.run_layers(net, fashion.test.images[:100])
    for layer in sparse:
        previous = net.layers[net.layers.index(layer) - 1]
        vectors = kinds.matrix(layer).patches(layer, outputs[previous.name]).reshape(-1, layer.fan_in)
        n, m = layer.nm
        expected = m * kinds.and_popcount(vectors, layer.weights.reshape(layer.out_ch, -1)) - n * vectors.sum(1, keepdims=True)
        assert np.array_equal(kinds.matrix(layer).accumulate(layer, vectors), expected)
        assert 0 < layer.invert.sum() < layer.out_ch and (layer.thresholds < 0).any()
        assert 0.05 < outputs[layer.name].mean() < 0.95, "a sparse layer's output is (nearly) constant"
    assert_layers_equal(model, net, fashion.test.images[:100])


def test_bit_plane_input_and_sparse_layers_combine(fashion, tmp_path):
    """CBNN and SBNN together: a bit-plane nin made 2:8 sparse keeps its bit-plane first layer
    (no DSP48 in any folding) and equals the golden model layer by layer on real images."""
    arch = models.with_bit_planes(models.nin(fashion.input_shape, fashion.classes, widths=(37, 29, 19, 33, 31, 27, 23, 21)),
                                  (7, 6, 5, 4))
    dense = calibrated_model(arch, fashion.train.images[:256], seed=4)
    model = models.sparsified(dense, (2, 8), fashion.train.images[:256])
    net = roundtrip(export(model, "nin_planes_2of8", "fashion_mnist"), tmp_path)
    assert net.layers[0].kind == "bitplane_conv" and net.layers[0].planes == (7, 6, 5, 4)
    assert [l.kind for l in net.layers if l.nm] == ["sparse_conv"] * 7
    plan = folding.optimize(net, devices.budget().as_device())
    assert plan.layer_resources[net.layers[0].name]["DSP"] == 0
    assert_layers_equal(model, net, fashion.test.images[:200])


def test_every_other_channel_is_mirrored_and_exported_inverted(digits):
    dense = calibrated_model(models.tfc(digits.input_shape, digits.classes, widths=(16, 16, 16)), digits.train.images[:64],
                             negative_scale_share=0.3)
    model = models.sparsified(dense, (1, 2))
    net = export(model, "mirrored", "digits")
    for i in (1, 2):
        old, new = dense.blocks[i], model.blocks[i]
        sign = torch.ones(16)
        sign[1::2] = -1
        assert torch.equal(new.op.weight.detach(), sign[:, None] * old.op.weight.detach())
        z = torch.randn(5, 16)  # a mirrored channel sees -z and gives what the dense one gave on z
        torch.testing.assert_close(new.bn(z * sign), old.bn(z))
        negative = (new.bn.weight.detach() < 0).numpy()
        assert negative.any() and (~negative).any() and np.array_equal(net.layers[i].invert, negative.astype(np.uint8))
    assert_layers_equal(model, net, digits.test.images)


def test_sweep_reports_each_setting_and_resumes(digits, tmp_path):
    model = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), 0)
    training.train(model, training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, tmp_path / "base")
    base = str(tmp_path / "base" / "checkpoint.pt")
    schedule = sparse_sweep.Schedule(train_subset=256, epochs=1, batch_size=64, seeds=2)
    report = sparse_sweep.run(base, sparse_sweep.parse_nm("1:2,1:8,02=1:8"), schedule, tmp_path / "sweep", devices.budget(),
                              "digits")
    dense, half, eighth, mixed = report["rows"]
    assert (dense["n"], dense["sparsity"], dense["setting"]) == (None, 0.0, "dense")
    assert dense["accuracy_source"].startswith("golden model")  # a checkpoint has no pruning comparison
    assert (half["sparsity"], eighth["sparsity"]) == (0.5, 0.875) and (eighth["n"], eighth["m"]) == (1, 8)
    # one of the two 32 x 32 binary layers at 1:8, the other dense: 7/16 zeros, no single N:M
    assert (mixed["setting"], mixed["n"], mixed["sparsity"]) == ("02=1:8", None, 0.875 / 2)
    assert mixed["nm_per_layer"] == {"02_sparse_dense": "1:8"} and mixed["binary_ops"] == 32 * 32 + 32 * 4
    assert len(half["accuracy_per_seed"]) == 2 and half["accuracy"] == pytest.approx(np.mean(half["accuracy_per_seed"]))
    control = report["control"]  # the dense model fine-tuned on the same schedule and seeds
    assert len(control["accuracy_per_seed"]) == 2 and (tmp_path / "sweep" / "dense" / "seed1" / "checkpoint.pt").exists()
    assert eighth["drop_vs_control_pt"] == pytest.approx(100 * (control["accuracy"] - eighth["accuracy"]))
    assert dense["binary_ops"] == 2 * 32 * 32 and eighth["binary_ops"] == 2 * 32 * 4  # the ones only
    # weights: 64 x 32 pixel weights (8 bits) + binary (1 bit, or 3-bit indices of K / 8 slots) + 32 x 10 (8 bits)
    assert eighth["weight_bits"] == 64 * 32 * 8 + 2 * 32 * 4 * 3 + 32 * 10 * 8
    assert eighth["cycles_per_frame"] <= dense["cycles_per_frame"] and eighth["speedup"] >= 1
    assert json.loads((tmp_path / "sweep" / "report.json").read_text())["rows"] == report["rows"]
    assert (tmp_path / "sweep" / "report.png").stat().st_size > 0
    assert ir.load(tmp_path / "sweep" / "nm1_8" / ir.FILENAME).layers[1].nm == (1, 8)
    trained = (tmp_path / "sweep" / "nm1_2" / "seed1" / "checkpoint.pt").stat().st_mtime
    assert ir.load(tmp_path / "sweep" / "nm02-1_8" / ir.FILENAME).name == "base_l02_1of8"
    assert cli.main(["sparse", base, "--nm", "1:2,1:8,02=1:8", "--train-subset", "256", "--epochs", "1", "--batch-size", "64",
                     "--seeds", "2", "--dataset", "digits", "--out", str(tmp_path / "sweep")]) == 0
    again = json.loads((tmp_path / "sweep" / "report.json").read_text())
    assert [r["accuracy_per_seed"] for r in again["rows"]] == [r["accuracy_per_seed"] for r in report["rows"]]
    assert (tmp_path / "sweep" / "nm1_2" / "seed1" / "checkpoint.pt").stat().st_mtime == trained  # not trained again
    assert again["control"] == report["control"]


def test_centred_sweep_builds_centred_nets(digits, tmp_path):
    """`flipflow sparse --centred`: the setting's nets are centred, named so, in their own
    folder, and the row says so; a width in the setting (01=24ch) narrows that layer first,
    keeping its channels of largest mean |latent| (the zoo's channel rule)."""
    model = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), 0)
    checkpoint.save(tmp_path / "checkpoint.pt", model)
    setting, = sparse_sweep.parse_nm("02=1:8+01=24ch", centred=True)
    started = setting.start(model, digits.train.images[:64])
    kept = np.sort(np.argsort(model.blocks[1].op.weight.detach().abs().mean(1).numpy(), kind="stable")[-24:])
    assert torch.equal(started.blocks[1].op.weight, model.blocks[1].op.weight[torch.as_tensor(kept)])
    assert started.blocks[2].op.weight.shape == (32, 24) and started.arch.layers[2].nm == (1, 8)
    assert cli.main(["sparse", str(tmp_path / "checkpoint.pt"), "--nm", "02=1:8+01=24ch", "--centred", "--train-subset", "256",
                     "--epochs", "1", "--batch-size", "64", "--seeds", "1", "--dataset", "digits",
                     "--out", str(tmp_path / "sweep"), "--zoo", str(tmp_path / "zoo")]) == 0
    _, row = json.loads((tmp_path / "sweep" / "report.json").read_text())["rows"]
    assert (row["setting"], row["centred"], row["nm_per_layer"]) == ("02=1:8+01=24ch centred", True, {"02_sparse_dense": "1:8"})
    net = ir.load(tmp_path / "sweep" / "cnm02-1_8+01-24ch" / ir.FILENAME)
    assert net.name.endswith("_l02_1of8_l01_24ch_centred") and [l.centred for l in net.layers if l.nm] == [True]
    assert (net.layers[1].out_ch, net.layers[2].in_ch) == (24, 24)
    zoo = tmp_path / "zoo" / net.name  # --zoo: the setting's net and what made it
    assert np.array_equal(ir.load(zoo / ir.FILENAME).layers[2].weights, net.layers[2].weights)
    metrics = json.loads((zoo / "metrics.json").read_text())
    assert (metrics["accuracy_per_seed"], metrics["zero_weights"]) == (row["accuracy_per_seed"], row["sparsity"])
    assert metrics["widths"]["01_binary_dense"] == 24 and metrics["schedule"]["start"].endswith("checkpoint.pt")


def test_kept_hardware_is_priced_again_when_the_pricing_code_changes(tmp_path, monkeypatch):
    """hardware.json is reused for the same net, budget and pricing_key; a change to the code
    that prices (here a stand-in module's source) searches again."""
    from test_ir import _sparse_net

    net = _sparse_net()
    net.save(tmp_path / ir.FILENAME)
    searches = []
    optimize = folding.optimize
    monkeypatch.setattr(folding, "optimize", lambda *a, **k: searches.append(1) or optimize(*a, **k))
    first = sparse_sweep.hardware(net, tmp_path, devices.budget())
    assert sparse_sweep.hardware(net, tmp_path, devices.budget()) == first and len(searches) == 1
    pricing = tmp_path / "pricing.py"
    pricing.write_text("MULTIPLIER = 1\n")
    monkeypatch.setattr(sparse_sweep, "PRICING_MODULES", (*sparse_sweep.PRICING_MODULES, SimpleNamespace(__file__=str(pricing))))
    sparse_sweep.hardware(net, tmp_path, devices.budget())
    sparse_sweep.hardware(net, tmp_path, devices.budget())
    pricing.write_text("MULTIPLIER = 2\n")
    sparse_sweep.hardware(net, tmp_path, devices.budget())
    assert len(searches) == 3


@pytest.mark.parametrize("nm, message", [
    ("1-4", "'1-4' is not N:M, LAYER=N:M or LAYER=<channels>ch[-RULE] (fix: give comma-separated settings"),
    ("1:6", "1:6 needs M a power of two in 2..64 and 1 <= N <= M"),
    ("1:128", "1:128 needs M a power of two in 2..64"),
    ("1:2,1:64", "fan-in K=32 is smaller than the block M=64 (fix: choose M <= 32 for it)"),
    ("1:2,03=1:8", "layer 3 is not a binary (XNOR) layer that can be made sparse (fix: name one of layers 01, 02)"),
    ("1:2+01=40ch", "layer 01 has 32 channels, cannot keep 40 (fix: give 1..32 channels)"),
    ("1:2+03=8ch", "layer 03 of tfc has no channels to prune (fix: narrow one of layers 00, 01, 02)"),
])
def test_bad_settings_are_one_line(digits, tmp_path, capsys, nm, message):
    model = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), 0)
    checkpoint.save(tmp_path / "checkpoint.pt", model)
    assert cli.main(["sparse", str(tmp_path / "checkpoint.pt"), "--nm", nm, "--dataset", "digits",
                     "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("flipflow sparse: error:")
    assert not (tmp_path / "s").exists()  # refused before any training or folder


def test_an_out_folder_from_another_start_and_a_bad_reference_are_one_line(digits, tmp_path, capsys):
    model = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), 0)
    checkpoint.save(tmp_path / "checkpoint.pt", model)
    (tmp_path / "s" / "dense").mkdir(parents=True)
    (tmp_path / "s" / "dense" / sparse_sweep.ORIGIN).write_text("/elsewhere/checkpoint.pt\n")
    common = ["sparse", str(tmp_path / "checkpoint.pt"), "--nm", "1:2", "--dataset", "digits"]
    assert cli.main([*common, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"holds a sweep from /elsewhere/checkpoint.pt, not {tmp_path / 'checkpoint.pt'}" in err
    assert not (tmp_path / "s" / "nm1_2").exists()
    assert cli.main([*common, "--reference", "no_such_model", "--out", str(tmp_path / "t")]) == 2
    assert "no_such_model: neither an IR file nor a zoo model" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_settings_parse_every_layer_and_named_layers():
    every, named, both = sparse_sweep.parse_nm("2:8, 08=1:16+04=1:16,1:4+04=1:16")
    assert (every.uniform, every.label, every.folder, every.suffix) == ((2, 8), "2:8", "nm2_8", "2of8")
    assert (named.uniform, named.label, named.folder) == (None, "04=1:16+08=1:16", "nm04-1_16+08-1_16")
    arch = models.nin((28, 28, 1), list("abcdefghij"))
    assert named.per_layer(arch) == {4: (1, 16), 8: (1, 16)} and both.label == "1:4+04=1:16"
    assert both.per_layer(arch) == {1: (1, 4), 2: (1, 4), 4: (1, 16), 5: (1, 4), 6: (1, 4), 8: (1, 4), 9: (1, 4)}
    assert every.per_layer(arch) == dict.fromkeys((1, 2, 4, 5, 6, 8, 9), (2, 8))
    sparse = models.with_sparsity(arch, both.per_layer(arch))
    assert [(i, s.nm) for i, s in enumerate(sparse.layers) if s.nm] == list(both.per_layer(arch).items())
    assert {s.kind for s in sparse.layers if s.nm} == {"sparse_conv"}
    centred, = sparse_sweep.parse_nm("04=2:32+08=2:32", centred=True)
    assert (centred.label, centred.folder, centred.suffix) == ("04=2:32+08=2:32 centred", "cnm04-2_32+08-2_32",
                                                               "l04_2of32_l08_2of32_centred")
    assert all(s.centred for s in models.with_sparsity(arch, centred.per_layer(arch), centred=True).layers if s.nm)
    narrowed, = sparse_sweep.parse_nm("04=2:32+00=168ch")
    assert (narrowed.label, narrowed.folder, narrowed.suffix, narrowed.uniform) == (
        "04=2:32+00=168ch", "nm04-2_32+00-168ch", "l04_2of32_l00_168ch", None)
    assert narrowed.per_layer(arch) == {4: (2, 32)} and narrowed.widths == ((0, 168, "latent"),)
    by_activity, = sparse_sweep.parse_nm("04=2:32+00=168ch-activity")
    assert (by_activity.label, by_activity.folder, by_activity.suffix, by_activity.widths) == (
        "04=2:32+00=168ch-activity", "nm04-2_32+00-168ch-activity", "l04_2of32_l00_168ch_activity", ((0, 168, "activity"),))
    cut, = sparse_sweep.parse_nm("00=168ch", centred=True)  # a width cut alone: a dense net, not centred
    assert (cut.label, cut.folder, cut.centred, cut.per_layer(arch)) == ("00=168ch", "nm00-168ch", False, {})
    cut.check(arch)


def test_the_first_sparsity_losing_over_a_point_skips_dense_rows():
    rows = [{"sparsity": s, "drop": d} for s, d in [(0.0, 0.0), (0.0, 2.0), (0.9, 3.0), (0.8, 1.5), (0.7, 0.5)]]
    assert sparse_sweep.first_losing(rows, "drop") == 0.8  # not the width cut alone (0.0, 2.0)


@pytest.mark.parametrize("text, message", [
    ("2:8,x", "'x' is not N:M, LAYER=N:M or LAYER=<channels>ch"),
    ("04=3:6", "3:6 needs M a power of two"),
    ("04=1:8+04=1:4", "sets layer 4 twice"),
    ("1:8+2:8", "sets every layer twice"),
    ("=1:8", "'=1:8' is not N:M, LAYER=N:M"),
    ("04_binary_conv=1:8", "is not N:M, LAYER=N:M"),
    ("04=1:8+00=16xch", "'00=16xch' is not N:M, LAYER=N:M or LAYER=<channels>ch"),
    ("04=1:8+00=16ch+00=8ch", "narrows layer 0 twice"),
    ("04=1:8+00=16ch-flip", "'00=16ch-flip' names no channel rule (fix: end it in one of -latent, -activity)"),
    ("04=1:8+00=16ch-", "'00=16ch-' names no channel rule"),
    ("04=1:8+08=1:8,08=1:8+04=1:8", "'08=1:8+04=1:8' repeats setting 04=1:8+08=1:8"),
])
def test_setting_parse_errors_name_the_item(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        sparse_sweep.parse_nm(text)


def test_a_layer_that_cannot_be_sparse_is_named():
    arch = models.nin((28, 28, 1), list("abcdefghij"))
    with pytest.raises(models.ArchError, match="layer 3 is not a binary") as e:
        models.with_sparsity(arch, {3: (1, 8)})  # the first max-pool
    assert "01, 02, 04, 05, 06, 08, 09" in str(e.value)


def test_sweep_distils_from_the_dense_model(digits, tmp_path):
    """--distill: every fine-tuning (the control's too) mixes in the dense start model's
    soft targets, and says so in its checkpoint and the report."""
    model = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), 0)
    training.train(model, training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, tmp_path / "base")
    schedule = sparse_sweep.Schedule(train_subset=256, epochs=1, batch_size=64, seeds=1, distill=0.5, temperature=3.0)
    report = sparse_sweep.run(str(tmp_path / "base" / "checkpoint.pt"), sparse_sweep.parse_nm("1:4"), schedule,
                              tmp_path / "sweep", devices.budget(), "digits")
    assert report["schedule"]["distill"] == 0.5 and len(report["rows"]) == 2
    for folder in ("dense", "nm1_4"):
        cfg = checkpoint.load(tmp_path / "sweep" / folder / "seed0" / "checkpoint.pt")[1]["train_config"]
        assert (cfg["distill_weight"], cfg["distill_temperature"]) == (0.5, 3.0)


def test_the_zoo_dense_reference_is_the_mean_of_its_fine_tuning_seeds(fashion):
    """Issue 17's bar compares with the mean of the zoo's fine-tuning seeds, as bitslice does."""
    comparison = json.loads((ir.ZOO / "nin_pruned" / "comparison" / "comparison.json").read_text())
    zoo_net = next(r for r in comparison["rows"] if r["name"] == "nin_pruned r1")  # flip pruned, latent rule: the zoo's
    seeds, source = sparse_sweep.top1(reports.model_source("nin_pruned"), ir.load_model("nin_pruned"), fashion.test)
    assert seeds == zoo_net["accuracy_per_seed"] and "mean of 3 fine-tuning seeds" in source
    assert ir.load_model("nin_pruned").metrics["accuracy"] == seeds[0]  # the zoo IR is the first seed's net


def test_sweep_from_a_prune_run_against_a_reference(digits, tmp_path):
    """A prune run folder starts the sweep from its pruned net with its seed mean as the dense
    top-1; --reference takes the bar's drop and speedup against another model (for a bit-plane
    start: the 8-bit-input net)."""
    run = tmp_path / "prune-run"
    net_dir = run / "flip_latent_rule" / "round1"
    model = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), 0)
    training.train(model, training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, net_dir)
    export(model, "pruned", "digits").save(net_dir / ir.FILENAME)
    (run / "comparison.json").write_text(json.dumps({
        "prune": {"rule": "latent"}, "pruned_folder": "flip_latent_rule/round1",
        "rows": [{"name": "tfc r1", "criterion": reports.flip_criterion("latent"), "round": 1, "accuracy": 0.5,
                  "accuracy_per_seed": [0.4, 0.6]}]}))
    other = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(64, 64, 64)), 1)
    training.train(other, training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, tmp_path / "ref")
    schedule = sparse_sweep.Schedule(train_subset=256, epochs=1, batch_size=64, seeds=1)
    report = sparse_sweep.run(str(run), sparse_sweep.parse_nm("1:4"), schedule, tmp_path / "sweep", devices.budget(), "digits",
                              reference=str(tmp_path / "ref" / "checkpoint.pt"))
    dense, sparse = report["rows"]
    ref = report["reference"]
    assert sparse_sweep.default_out(str(run)) == Path("build/prune_run-sparse")
    assert sparse_sweep.default_out(str(tmp_path / "ref" / "checkpoint.pt")) == Path("build/ref-sparse")
    assert sparse_sweep.default_out("nin_pruned") == Path("build/nin_pruned-sparse")
    assert dense["name"] == "prune_run" and dense["accuracy"] == 0.5 and "mean of 2 fine-tuning seeds" in dense["accuracy_source"]
    assert ref["name"] == "ref" and ref["setting"] == "reference" and ref["accuracy_source"].startswith("golden model")
    assert sparse["accuracy_drop_pt"] == pytest.approx(100 * (ref["accuracy"] - sparse["accuracy"]))
    assert sparse["speedup"] == pytest.approx(sparse["fps_at_100mhz"] / ref["fps_at_100mhz"]) and ref["speedup"] == 1.0
    assert dense["speedup"] == pytest.approx(dense["fps_at_100mhz"] / ref["fps_at_100mhz"])  # the start too
    assert dense["accuracy_drop_pt"] == pytest.approx(100 * (ref["accuracy"] - 0.5))
    assert "drop pt and speedup against the reference, ref" in sparse_sweep.table(report)
    # another reference of the same label ("ref") in the same out is priced from its own net
    wider = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(128, 128, 128)), 2)
    training.train(wider, training.TrainConfig(epochs=1, batch_size=128), digits.train, digits.test, tmp_path / "w" / "ref")
    again = sparse_sweep.run(str(run), sparse_sweep.parse_nm("1:4"), schedule, tmp_path / "sweep", devices.budget(), "digits",
                             reference=str(tmp_path / "w" / "ref" / "checkpoint.pt"))
    stored = ir.load(tmp_path / "sweep" / "reference" / "ref" / ir.FILENAME)
    assert [l.out_ch for l in stored.layers][:3] == [128, 128, 128]
    assert again["reference"]["binary_ops"] > ref["binary_ops"]
    assert again["rows"][1]["accuracy_per_seed"] == sparse["accuracy_per_seed"]  # the sweep itself resumed
