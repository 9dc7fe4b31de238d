"""`flipflow bitslice`: 8-bit and bit-plane input networks side by side in one budget."""

from __future__ import annotations

import json

import pytest

from flipflow import golden, ir, kinds
from flipflow.errors import UsageError
from flipflow.generator import devices
from flipflow.generator.folding import LayerConfig
from flipflow.sim import bitslice
from flipflow.training import datasets, reports
from rtl_nets import build

BODY = [{"kind": "binary_conv", "out": 12, "k": 3, "p": 1}, {"kind": "maxpool", "k": 2, "s": 2},
        {"kind": "output_conv", "k": 1}, {"kind": "global_sum"}]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """An 8-bit-input and a 4-plane-input net of the same body, saved as IR files."""
    images = datasets.load("digits").train.images[:64]
    folder = tmp_path_factory.mktemp("bitslice")
    pixels = build("pixels", images, [{"kind": "input_conv", "out": 10, "k": 3, "p": 1}, *BODY], 10, seed=1)
    planes = build("planes", images, [{"kind": "bitplane_conv", "out": 10, "k": 3, "p": 1, "planes": (7, 6, 5, 4)}, *BODY],
                   10, seed=2)
    return pixels.save(folder / "pixels.ir.npz"), planes.save(folder / "planes.ir.npz")


def test_rows_state_the_input_the_accuracy_and_the_best_design_of_each_net(pair, tmp_path):
    report = bitslice.run(str(pair[0]), [str(pair[1])], tmp_path, images=200)
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(json.dumps(report))
    assert (tmp_path / "report.png").stat().st_size > 0
    test = datasets.load("digits").test.head(200)
    ref, bits = report["rows"]
    assert (ref["model"], ref["input"], len(ref["kept_planes"])) == ("pixels", "pixels", 8)
    assert (bits["model"], bits["input"], bits["kept_planes"]) == ("planes", "bitplanes", [7, 6, 5, 4])
    for r, path in zip(report["rows"], pair):
        net = ir.load(path)
        assert r["accuracy"] == golden.accuracy(net, test.images, test.labels)
        folding = {n: LayerConfig(**c) for n, c in r["folding"].items()}
        assert r["cycles_per_frame"] == kinds.frame_cycles(net, folding)
        assert r["LUT"] <= devices.budget().limits()["LUT"]
    assert ref["first_layer_DSP"] > 0 and bits["first_layer_DSP"] == 0  # the bit-plane layer is XNOR-popcount
    s = report["summary"]
    assert s["accuracy_drop_pt"] == pytest.approx(100 * (ref["accuracy"] - bits["accuracy"]))
    assert s["fps_ratio"] == pytest.approx(bits["fps_at_100mhz"] / ref["fps_at_100mhz"])
    assert s["met"] == (s["accuracy_drop_pt"] <= bitslice.MAX_DROP_PT and s["fps_ratio"] >= 1.0)
    assert "bar (" in bitslice.table(report)


def test_the_reference_must_read_pixels_and_the_variants_planes(pair, tmp_path):
    with pytest.raises(UsageError, match="already reads bit planes"):
        bitslice.run(str(pair[1]), [str(pair[1])], tmp_path)
    with pytest.raises(UsageError, match="reads 8-bit pixels, not bit planes"):
        bitslice.run(str(pair[0]), [str(pair[0])], tmp_path)


def test_sensitivity_ranks_the_planes_a_net_reads_and_writes_its_plot(pair, tmp_path):
    from flipflow.training import bitslice as sensitivity

    net = ir.load(pair[1])
    test = datasets.load("digits").test.head(200)
    report = sensitivity.sensitivity(net, test.images, test.labels)
    assert report["accuracy"] == golden.accuracy(net, test.images, test.labels)
    assert [r["plane"] for r in report["single"]] == [7, 6, 5, 4]
    assert [len(g["randomised"]) for g in report["growing"]] == [1, 2, 3]
    kept = sensitivity.choose(report, 2)
    worst_two = sorted(report["single"], key=lambda r: (-r["drop_pt"], -r["plane"]))[:2]
    assert kept == tuple(sorted((r["plane"] for r in worst_two), reverse=True))
    sensitivity.write(report, tmp_path)
    assert json.loads((tmp_path / "sensitivity.json").read_text())["planes"] == [7, 6, 5, 4]
    assert (tmp_path / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"


def test_a_prune_run_folder_gives_its_pruned_net_and_the_mean_of_its_seeds(pair, tmp_path):
    """The bar compares means over fine-tuning seeds: a prune run folder (comparison.json) gives
    its chosen pruned net's IR and seeds; the zoo's nin_pruned its comparison/ seeds."""
    run = tmp_path / "nin-planes7654"
    (run / "flip_latent_rule" / "round1").mkdir(parents=True)
    ir.load(pair[1]).save(run / "flip_latent_rule" / "round1" / ir.FILENAME)
    rows = [{"name": "x r1, flip rule", "criterion": "flip (flip rule)", "round": 1, "accuracy": 0.5, "accuracy_per_seed": [0.5]},
            {"name": "x r1", "criterion": "flip (latent rule)", "round": 1, "accuracy": 0.8, "accuracy_per_seed": [0.7, 0.8, 0.9]}]
    (run / "comparison.json").write_text(json.dumps({"rows": rows, "pruned_folder": "flip_latent_rule/round1",
                                                      "prune": {"rule": "latent"}}))
    source = reports.model_source(str(run))
    assert (source.label, ir.load(source.ir_file).layers[0].kind, source.seeds) == ("nin-planes7654", "bitplane_conv", [0.7, 0.8, 0.9])
    assert source.checkpoint == run / "flip_latent_rule" / "round1" / "checkpoint.pt"
    report = bitslice.run(str(pair[0]), [str(run)], tmp_path / "out", images=50)
    bits = report["rows"][1]
    assert bits["accuracy"] == pytest.approx(0.8) and bits["accuracy_source"].startswith("mean of 3 fine-tuning seeds")
    zoo = json.loads((ir.ZOO / "nin_pruned" / "comparison" / "comparison.json").read_text())
    assert reports.model_source("nin_pruned").seeds == next(r["accuracy_per_seed"] for r in zoo["rows"] if r["criterion"] == "flip (latent rule)")
    (run / "comparison.json").write_text(json.dumps({"rows": rows[:1], "pruned_folder": "flip_latent_rule/round1",
                                                      "prune": {"rule": "latent"}}))
    with pytest.raises(UsageError, match="0 rows for its pruned net"):
        reports.model_source(str(run))
    with pytest.raises(UsageError, match="a checkpoint, not an exported network"):
        bitslice.run(str(pair[0]), [str(tmp_path / "x" / "checkpoint.pt")], tmp_path / "out", images=50)
