"""generator/earlyexit.py: the early-deciding popcount analysis (O3BNN-R) decides every
neuron at the first fold its bounds allow, to the golden model's output bit."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flipflow import cli, golden, ir, kinds
from flipflow.generator import earlyexit, pack
from flipflow.generator import folding as folding_mod
from flipflow.generator.folding import FoldingError, LayerConfig
from rtl_nets import random_layer
from test_ir import small_net


def odd_folding(net: ir.Network) -> dict[str, LayerConfig]:
    """PE and SIMD that divide neither width (pad rows and pad lanes), several folds each."""
    return {l.name: LayerConfig(min(3, l.out_ch), max(1, l.fan_in // 6 + 1)) for l in net.layers if l.has_weights}


def reference_folds(layer: ir.Layer, config: LayerConfig, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decision fold and the bit decided there, one neuron and one fold at a time, from the
    rule as stated: XNOR: 1 once P_k >= T, 0 once P_k + (real terms left) < T; pixels: the
    terms left lie in [sum min(0, w) * 255, sum max(0, w) * 255]. Thresholds unclamped."""
    w = layer.weights.reshape(layer.out_ch, -1).astype(int)
    binary = kinds.of(layer).binary_input
    sf = math.ceil(layer.fan_in / config.simd)
    folds = np.zeros((len(vectors), layer.out_ch), int)
    bits = np.zeros((len(vectors), layer.out_ch), int)
    for m, x in enumerate(vectors.astype(int)):
        for o in range(layer.out_ch):
            t = int(layer.thresholds[o])
            for k in range(sf + 1):
                done = min(k * config.simd, layer.fan_in)
                if binary:
                    acc = int((w[o, :done] == x[:done]).sum())
                    lo, hi = 0, layer.fan_in - done
                else:
                    acc = int((w[o, :done] * x[:done]).sum())
                    lo, hi = int(np.minimum(w[o, done:], 0).sum()) * 255, int(np.maximum(w[o, done:], 0).sum()) * 255
                if acc + lo >= t or acc + hi < t:
                    folds[m, o], bits[m, o] = k, int(acc + lo >= t)
                    break
    return folds, bits


def vectors_of(layer: ir.Layer, x: np.ndarray) -> np.ndarray:
    return kinds.matrix(layer).patches(layer, x).reshape(-1, layer.fan_in)


@pytest.mark.parametrize("kind", ["input_conv", "input_dense", "binary_conv", "binary_dense"])
@pytest.mark.parametrize("seed", range(3))
def test_vectorised_folds_equal_the_scalar_reference(kind, seed):
    rng = np.random.default_rng(seed)
    layer = random_layer(rng, "l", kind, (3, 3, 4), 7, 3, 1, 1, wide_thresholds=seed == 0)
    x = rng.integers(0, 256 if kind.startswith("input") else 2, (2, 3, 3, 4), dtype=np.uint8)
    vectors = vectors_of(layer, x)
    config = LayerConfig(pe=3, simd=int(rng.integers(1, layer.fan_in // 4)))  # many folds, a pad lane likely
    folds, bits = earlyexit.decide(earlyexit.fold_model(layer, config), vectors)
    want_folds, want_bits = reference_folds(layer, config, vectors)
    np.testing.assert_array_equal(folds, want_folds)
    np.testing.assert_array_equal(bits, want_bits)
    np.testing.assert_array_equal(bits, golden.run_layer(layer, x).reshape(bits.shape))
    assert 0 < folds.max() and (folds < math.ceil(layer.fan_in / config.simd)).any(), "the case decides nothing early"


def test_a_hand_made_layer_decides_at_the_known_fold():
    # K = 7, SIMD = 2: SF = 4 with one pad lane in the last fold, which must not count as a possible match.
    w = np.array([[1] * 7, [1] * 7, [1] * 7, [0] * 7, [1] * 7], np.uint8)
    t = np.array([3, 6, 8, 0, 7], np.int64)
    layer = ir.Layer("d", "binary_dense", (1, 1, 7), (1, 1, 5), weights=w, thresholds=t)
    x = np.array([[1, 1, 1, 1, 0, 0, 1]], np.uint8)
    folds, bits = earlyexit.decide(earlyexit.fold_model(layer, LayerConfig(pe=2, simd=2)), x)
    # P_k = 2, 4, 4, 5 for the all-ones rows; 0 matches for the zero row.
    # T=3: 1 at fold 2. T=6: 0 at fold 3 (4 + 1 real term left < 6; counting the pad lane would wait for fold 4).
    # T=8 > K: 0 before any fold. T=0: 1 before any fold. T=7: 0 at fold 3 (4 + 1 < 7), as 5 < 7 at the end.
    assert folds.tolist() == [[2, 3, 0, 0, 3]]
    assert bits.tolist() == [[1, 0, 0, 1, 0]]
    # PE row groups (rows 0-1, 2-3, 4 + a pad row): max(2, 3), max(1, 1), 3.
    assert earlyexit.group_folds(folds, pack.geometry(layer, LayerConfig(pe=2, simd=2))).tolist() == [[3, 1, 3]]


def rule_bounds(layer: ir.Layer, config: LayerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(SF + 1, O) bounds of the terms left after k folds, as the rule states them."""
    w = layer.weights.reshape(layer.out_ch, -1).astype(np.int64)
    done = [min(k * config.simd, layer.fan_in) for k in range(math.ceil(layer.fan_in / config.simd) + 1)]
    if kinds.of(layer).binary_input:
        left = np.array([[layer.fan_in - d] * layer.out_ch for d in done])
        return np.zeros_like(left), left
    return (np.array([np.minimum(w[:, d:], 0).sum(1) * 255 for d in done]),
            np.array([np.maximum(w[:, d:], 0).sum(1) * 255 for d in done]))


def hardware_sums(layer: ir.Layer, config: LayerConfig, vectors: np.ndarray) -> np.ndarray:
    """(M, SF + 1, O) accumulators after k folds, stepped through the packed tiles (pad lanes included)."""
    g = pack.geometry(layer, config)
    tiles = pack.tiles(layer, config).reshape(g.nf, g.sf, g.pe, g.simd).transpose(1, 0, 2, 3).reshape(g.sf, -1, g.simd)
    x = pack.pad_vectors(vectors.astype(np.int64), g)
    sums = np.zeros((len(vectors), g.sf + 1, g.rows), np.int64)
    for f in range(g.sf):
        sums[:, f + 1] = sums[:, f] + kinds.matrix(layer).lane_terms(tiles[f, : g.rows][None], x[:, f][:, None, :]).sum(-1)
    return sums


@pytest.mark.parametrize("model, images", [("tfc", 8), ("nin_pruned", 1)])
def test_decisions_on_real_images_equal_the_golden_model(model, images, fashion_test_images):
    """At PE and SIMD that divide nothing, every neuron's bit is certain at its decision fold,
    not one fold earlier, and equals the golden model's, the 8-bit pixel layer included."""
    net = ir.load_model(model)
    x = fashion_test_images[:images]
    outputs = golden.run_layers(net, x)
    folding = odd_folding(net)
    inputs = [x, *outputs.values()]
    for layer, layer_in in zip(net.layers, inputs):
        if not earlyexit.decides_early(layer):
            continue
        config = folding[layer.name]
        vectors = vectors_of(layer, layer_in)
        folds, bits = earlyexit.decide(earlyexit.fold_model(layer, config), vectors)
        np.testing.assert_array_equal(bits, outputs[layer.name].reshape(bits.shape), err_msg=layer.name)
        sums, (lo, hi), t = hardware_sums(layer, config, vectors), rule_bounds(layer, config), layer.thresholds

        def certain(k: np.ndarray) -> np.ndarray:  # the bit `bits` is certain after k folds
            at = np.take_along_axis(sums, k[:, None, :], 1)[:, 0]
            rows = np.arange(layer.out_ch)
            return np.where(bits == 1, at + lo[k, rows] >= t, at + hi[k, rows] < t)

        assert certain(folds).all(), layer.name
        assert not certain(np.maximum(folds - 1, 0))[folds > 0].any(), layer.name
        assert (folds < math.ceil(layer.fan_in / config.simd)).any(), f"{layer.name} decides nothing early"


def test_one_pe_loses_nothing_and_one_fold_changes_no_cycle(fashion_test_images):
    """At PE = 1 a group is one neuron; at SIMD = K nothing can be skipped, and the cycles
    are kinds.py's cycle model exactly."""
    net = ir.load_model("tfc")
    x = fashion_test_images[:16]
    one_pe = {n: LayerConfig(1, c.simd) for n, c in odd_folding(net).items()}
    a = earlyexit.analyse(net, one_pe, x)
    for tally in a.tallies.values():
        np.testing.assert_allclose(tally.group_skipped(), tally.neuron_skipped())
    assert max(t.group_skipped().mean() for t in a.tallies.values()) > 0.05
    whole = {l.name: LayerConfig(2, l.fan_in) for l in net.layers if l.has_weights}
    a = earlyexit.analyse(net, whole, x)
    assert all((t.group_skipped() == 0).all() for t in a.tallies.values())
    np.testing.assert_array_equal(a.frame_cycles(), kinds.frame_cycles(net, whole))


def test_max_pool_potential_counts_windows_and_inputs():
    pool = ir.Layer("p", "maxpool", (2, 4, 1), (1, 2, 1), kernel=2, stride=2)
    x = np.array([[0, 1, 0, 0], [1, 1, 0, 1]], np.uint8).reshape(1, 2, 4, 1)
    tally = earlyexit.PoolTally(pool)
    tally.add(x)
    # Window 1 (columns 0-1) has its first 1 at raster index 1: index 4 and 5 come later, so they
    # need not be computed; window 2 (columns 2-3) needs all its inputs up to its first 1 (index 7).
    assert (tally.windows, tally.settled, tally.inputs, tally.skippable) == (2, 2, 8, 2)


def test_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "ee"
    assert cli.main(["earlyexit", "tfc", "--images", "20", "--out", str(out)]) == 0
    report = json.loads((out / "earlyexit.json").read_text())
    assert report["model"] == "tfc" and report["images"] == 20
    assert {"neuron_skipped", "group_skipped"} <= set(report["xnor"])
    assert {"cycles_without", "mean", "p95", "max", "speedup_mean"} <= set(report["frame"])
    binary = [e for e in report["layers"] if e.get("datapath") == "xnor"]
    assert binary and all({"K", "pe", "simd", "sf", "nf", "neurons_decided_by_fold", "cycles"} <= set(e) for e in binary)
    assert [e["group_skipped"] for e in report["layers"] if e.get("datapath") == "score"] == [0.0]
    assert (out / "earlyexit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "frame:" in capsys.readouterr().out


def test_a_folding_of_another_net_is_one_line(tmp_path, capsys):
    other = tmp_path / "folding.json"
    other.write_text(json.dumps({l.name: {"pe": 1, "simd": 1} for l in small_net().layers if l.has_weights}))
    assert cli.main(["earlyexit", "tfc", "--folding", str(other), "--out", str(tmp_path / "ee")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "folding names layers the network does not have" in err and "(fix: " in err
    with pytest.raises(FoldingError, match="tfc"):
        earlyexit.check_folding(ir.load_model("tfc"), {})


# -- the built unit (docs/DESIGN.md, "Early exit: hardware") -------------------------------------

def test_early_exit_is_one_option_of_xnor_layers_only(tmp_path):
    """``early_exit`` is a LayerConfig field: saved and loaded with the folding JSON, refused on
    a layer without an XNOR-popcount threshold (one line naming the layer and the fix), and
    priced by the cost model as a named term."""
    from flipflow.generator import cost, folding

    net = ir.load_model("tfc")
    f = folding.with_early_exit(net, {l.name: LayerConfig(1, 4) for l in net.layers if l.has_weights})
    exits = sorted(n for n, c in f.items() if c.early_exit)
    assert exits == sorted(l.name for l in net.layers if l.has_weights and kinds.of(l).datapath == "xnor")
    folding.save(f, tmp_path / "f.json")
    assert folding.load(tmp_path / "f.json") == f
    first = net.layers[0]
    with pytest.raises(FoldingError, match=f"layer {first.name}: early_exit .* not input_dense") as e:
        folding.check(net, {**f, first.name: LayerConfig(1, 4, early_exit=True)})
    assert "early_exit" in e.value.fix
    layer = net.layer(exits[0])
    on = cost.mvu_unit(layer, kinds.of(layer), f[layer.name])
    off = cost.mvu_unit(layer, kinds.of(layer), LayerConfig(1, 4))
    assert set(on) - set(off) == {"mvu.xnor_dense.early_exit"} and on["mvu.xnor_dense.early_exit"].lut > 0
    # one fold per group (SIMD = K): nothing can be decided early, so nothing is turned on
    whole = {l.name: LayerConfig(1, l.fan_in) for l in net.layers if l.has_weights}
    assert not any(c.early_exit for c in folding.with_early_exit(net, whole).values())


def test_hardware_cycles_apply_the_squash_rule(fashion_test_images):
    """The built unit's fold slots: min(SF, decision folds + pipeline stages + 2) per group,
    only in layers whose config has early_exit; ExpectedCycles gives the same per-vector mean
    on the same vectors."""
    net = ir.load_model("tfc")
    x = fashion_test_images[:8]
    f = {l.name: LayerConfig(1, 4, early_exit=kinds.of(l).datapath == "xnor") for l in net.layers if l.has_weights}
    a = earlyexit.analyse(net, f, x)
    hw = a.hardware()
    assert hw["early_exit_layers"] == [n for n, c in f.items() if c.early_exit]
    for name in hw["early_exit_layers"]:
        tally, layer = a.tallies[name], net.layer(name)
        g = tally.model.geometry
        before = net.layers[net.layers.index(layer) - 1]  # XNOR layers are never first
        folds, _ = earlyexit.decide(tally.model, vectors_of(layer, golden.run_layers(net, x)[before.name]))
        groups = earlyexit.group_folds(folds, g)
        latency = 2 + 1  # XNOR, SIMD <= 16: one tree stage, then the registered decision and the abort cycle
        assert earlyexit.decision_latency(f[name]) == latency
        np.testing.assert_array_equal(earlyexit.hardware_group_cycles(groups, g, f[name]), np.minimum(g.sf, groups + latency))
        assert int(np.concatenate(tally.hw_slots).sum()) == int(np.minimum(g.sf, groups + latency).sum())
    assert 0 < hw["skipped_fraction"] < 1
    assert hw["per_image"]["mean"] <= kinds.frame_cycles(net, f)
    off = earlyexit.analyse(net, {n: LayerConfig(1, 4) for n in f}, x).hardware()
    assert off["skipped_fraction"] == 0 and off["per_image"]["max"] == kinds.frame_cycles(net, f)
    expected = earlyexit.ExpectedCycles(net, x, vectors=10_000)  # every vector: the same mean
    for name in hw["early_exit_layers"]:
        layer = net.layer(name)
        assert expected.mvu_cycles(layer, f[name]) == math.ceil(np.concatenate(a.tallies[name].hw_cycles).mean())


def test_sparse_layers_are_listed_not_analysed(fashion_test_images):
    """N:M sparse layers step through kept slots, which the fold model does not walk: the analysis
    runs them by the golden model, says so, and still analyses the 8-bit layer before them."""
    net = ir.load_model("nin_pruned_2to8")
    a = earlyexit.analyse(net, folding_mod.default(net), fashion_test_images[:2])
    assert set(a.tallies) == {"00_input_conv"}
    report = earlyexit.summary(a)
    assert "01_sparse_conv  sparse_conv" in earlyexit.table(report) and "(N:M sparse: not analysed)" in earlyexit.table(report)
    assert not next(e for e in report["layers"] if e["name"] == "01_sparse_conv")["early_exit"]
