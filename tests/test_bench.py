"""`flipflow bench`: report.json schema, rows, ratios, and simulated vs predicted cycles."""

from __future__ import annotations

import json

import pytest

from flipflow import ir, kinds
from flipflow.generator import devices
from flipflow.generator import folding as fold
from flipflow.sim import bench
from flipflow import golden
from flipflow.training import export, synthetic
from flipflow.training.blocks import Arch, LayerSpec as L

ROW_KEYS = {"model", "folding", "accuracy", "binary_ops", "cycles_per_frame_predicted", "cycles_per_frame_simulated",
            "fps_at_100mhz", "LUT", "BRAM36", "FF", "DSP", "bottleneck", "fits_budget", "simulation", "layers",
            "lut_yosys", "ff_yosys", "utilisation_after_shell", "critical_path_ns", "early_exit"}


def _net(digits, name: str, widths: tuple[int, int]) -> ir.Network:
    arch = Arch(name, digits.input_shape, digits.classes, [
        L("input_conv", widths[0], 3, 1, 1), L("binary_conv", widths[1], 3, 1, 1), L("maxpool", 0, 2, 2, 0),
        L("binary_dense", 16), L("output_dense", 10)])
    return export.export(synthetic.calibrated_model(arch, digits.train.images[:64]), name, "digits")


@pytest.fixture(scope="module")
def pair(digits, tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("models")
    base = _net(digits, "small", (16, 24)).save(folder / "small.ir.npz")
    pruned = _net(digits, "small_pruned", (11, 13)).save(folder / "small_pruned.ir.npz")
    return str(base), str(pruned)


def _check_report(report: dict, out, digits, pair: tuple[str, str]) -> None:
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(report["rows"]))
    assert (out / "report.md").read_text().startswith("# flipflow benchmark")
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no temp files
    nets = {"small": ir.load(pair[0]), "small_pruned": ir.load(pair[1])}
    rows = report["rows"]
    assert [(r["model"], r["folding"]) for r in rows] == [
        ("small", "same"), ("small_pruned", "same"), ("small", "best"), ("small_pruned", "best")]
    for r in rows:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert r["fits_budget"]
        net = nets[r["model"]]
        assert r["binary_ops"] == net.binary_ops
        # accuracy is the golden model's on the full digits test set
        assert r["accuracy"] == pytest.approx(golden.accuracy(net, digits.test.images, digits.test.labels))
    # "same": the baseline's best folding, PE/SIMD clamped to the pruned widths
    pruned_layers = {l.name: l for l in nets["small_pruned"].layers}
    for a, b in zip(rows[0]["layers"], rows[1]["layers"]):
        if "pe" in a:
            layer = pruned_layers[b["name"]]
            assert (b["pe"], b["simd"]) == (min(a["pe"], layer.out_ch), min(a["simd"], layer.fan_in))
    assert rows[0]["layers"] == rows[2]["layers"]


def test_early_exit_row(pair, tmp_path, digits):
    """With early_exit the pruned model gets a row at its best folding with early exit
    allowed; every row says whether its folding has early exit."""
    report = bench.run(tmp_path, pair, devices.budget(), with_cnv=False, simulate_rtl=False, early_exit=True)
    rows = report["rows"]
    assert [(r["model"], r["folding"]) for r in rows][-1] == ("small_pruned", "best, early exit")
    assert all(isinstance(r["early_exit"], bool) for r in rows)
    assert not any(r["early_exit"] for r in rows[:-1])


def test_variant_rows_at_their_best_folding(pair, tmp_path, digits):
    """--variants adds other models (here a bit-plane-input net) at their best folding in the same budget."""
    from rtl_nets import build

    planes = build("planes", digits.train.images[:64], [{"kind": "bitplane_conv", "out": 12, "k": 3, "p": 1, "planes": (7, 5)},
                                                         {"kind": "output_dense"}], 10, seed=0)
    path = str(planes.save(tmp_path / "planes.ir.npz"))
    report = bench.run(tmp_path / "b", pair, devices.budget(), with_cnv=False, simulate_rtl=False, variants=(path,))
    row = report["rows"][-1]
    assert (row["model"], row["role"], row["folding"]) == ("planes", "variant", "best")
    best = fold.optimize(planes, devices.budget().as_device())
    assert row["cycles_per_frame_predicted"] == best.cycles_per_frame == kinds.frame_cycles(planes, best.folding)
    assert row["layers"][0]["DSP"] == 0 and row["fits_budget"]
    assert "- planes: " in (tmp_path / "b" / "report.md").read_text()


def test_report_schema_without_simulation(pair, tmp_path, digits):
    report = bench.run(tmp_path, pair, devices.budget(), with_cnv=False, simulate_rtl=False)
    _check_report(report, tmp_path, digits, pair)
    for r in report["rows"]:
        assert r["cycles_per_frame_simulated"] is None and "skipped" in r["simulation"]["note"]
        assert r["fps_at_100mhz"] == pytest.approx(1e8 / r["cycles_per_frame_predicted"])
    s = report["summary"]
    assert s["speedup_best_predicted"] >= 1.0  # fewer channels never need more cycles in the same budget
    assert s["bar_speedup_best"]["met"] is False  # no simulated figure, no claim


@pytest.mark.slow
def test_report_with_rtl_simulation(pair, tmp_path, digits):
    """Simulated steady-state cycles agree with the model (within 5%) and with the golden model."""
    report = bench.run(tmp_path, pair, devices.budget(), sim_frames=4, sim_timeout=900, with_cnv=False, synthesize=False)
    _check_report(report, tmp_path, digits, pair)
    for r in report["rows"]:
        sim = r["simulation"]
        assert r["cycles_per_frame_simulated"], sim
        assert sim["mismatches"] == 0
        assert r["cycles_per_frame_simulated"] == pytest.approx(r["cycles_per_frame_predicted"], rel=0.05)
        assert r["fps_source"] == "simulated"


def test_row_takes_lut_and_ff_from_yosys_for_the_utilisation_after_shell(pair):
    net = ir.load(pair[1])
    budget = devices.budget(shell_lut=1_000, shell_ff=2_000, shell_bram36=1)
    plan = bench.fold.make_plan(net, bench.fold.minimal(net), budget.as_device())
    sim = {"cycles_per_frame": 100.0, "yosys": {"LUT": 9_000.0, "FF": 3_000.0, "BRAM36": 0.0, "DSP": 0.0},
           "timing": {"critical_path_ns": 8.5, "slowest_unit": "x_mvu"}}
    row = bench._row(bench.BenchModel("m", net, "test"), "best", plan, budget, None, sim)
    assert (row["lut_yosys"], row["ff_yosys"], row["critical_path_ns"]) == (9_000.0, 3_000.0, 8.5)
    model_bram, model_dsp = plan.totals["BRAM36"], plan.totals["DSP"]
    assert row["utilisation_after_shell"] == pytest.approx(max(10_000 / 53_200, 5_000 / 106_400, (model_bram + 1) / 140,
                                                               model_dsp / 220))


def test_bench_and_fold_commands_registered():
    from flipflow.sim import bench_cli
    import argparse

    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fold", "nin", "--device", "ultra96", "--target-fps", "100", "--out", "f.json"])
    assert (args.device, args.target_fps) == ("ultra96", 100.0)
    args = parser.parse_args(["bench", "--out", "x", "--no-sim"])
    assert args.no_sim and not args.no_cnv
    assert devices.get(args.device).name == "pynq-z2"
