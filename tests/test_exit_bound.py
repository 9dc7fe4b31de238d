"""generator/exit_bound.py: the most any early-exit unit could skip and gain. Its shares are
checked against the rule worked out term by term, its folding against the real search."""

from __future__ import annotations

import json

import numpy as np

import pytest

from flipflow import cli, golden, ir, kinds
from flipflow.errors import UsageError
from flipflow.generator import earlyexit, exit_bound, folding
from flipflow.generator.folding import LayerConfig
from test_earlyexit import reference_folds, vectors_of
from test_ir import small_net


def images_of(net, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *net.input_shape), dtype=np.uint8)


def brute_needed(pool, bits: np.ndarray) -> np.ndarray:
    """(N, H, W, C): an input is needed unless every window holding it saw a 1 earlier in raster order."""
    n, h, w, c = bits.shape
    k, s = pool.kernel, pool.stride
    needed = np.zeros(bits.shape, bool)
    for i in range(n):
        for ch in range(c):
            for y in range(h):
                for x in range(w):
                    windows = [(oy, ox) for oy in range(pool.out_shape[0]) for ox in range(pool.out_shape[1])
                               if oy * s <= y < oy * s + k and ox * s <= x < ox * s + k]
                    earlier_one = [any(bits[i, yy, xx, ch] for yy in range(oy * s, oy * s + k)
                                       for xx in range(ox * s, ox * s + k) if yy * w + xx < y * w + x)
                                   for oy, ox in windows]
                    needed[i, y, x, ch] = not all(earlier_one)
    return needed


def test_work_left_counts_each_neurons_terms_to_its_decision():
    """Per neuron the terms until its bit is certain (one term per fold, the stated rule), and
    none for outputs the next max-pool no longer needs."""
    net = small_net()
    x = images_of(net, 3)
    work = exit_bound.work_left(net, x)
    assert set(work) == {"c0", "c1", "d3"}  # thresholded layers: pixel, XNOR conv before the pool, XNOR dense
    outputs = golden.run_layers(net, x)
    inputs = dict(zip([l.name for l in net.layers], [x, *outputs.values()]))
    for i, layer in enumerate(net.layers):
        if layer.name not in work:
            continue
        taken, bits = reference_folds(layer, LayerConfig(1, 1), vectors_of(layer, inputs[layer.name]))
        after = net.layers[i + 1] if i + 1 < len(net.layers) else None
        needed = (brute_needed(after, bits.reshape(outputs[layer.name].shape)).reshape(taken.shape)
                  if after is not None and after.kind == "maxpool" else np.ones(taken.shape, bool))
        w = work[layer.name]
        assert w.terms == layer.fan_in * taken.size
        assert np.isclose(w.decided_share, 1 - taken.sum() / w.terms), layer.name
        assert np.isclose(w.skipped_share, 1 - (taken * needed).sum() / w.terms), layer.name
        assert np.isclose(w.pool_share, 1 - needed.mean()), layer.name
    assert work["c1"].pool_share > 0  # the case is exercised: some pool inputs settled early


def test_ideal_cycles_scale_the_matrix_unit_but_still_read_every_beat():
    net = small_net()
    dense, conv = net.layers[3], net.layers[1]
    f = LayerConfig(1, 2)
    assert folding.ideal_cycles(conv, f, 1.0) == kinds.layer_cycles(net, {l.name: f for l in net.layers if l.has_weights})[conv.name]
    units = {u.role: u.cycles for u in kinds.of(conv).units(conv, f)}
    pixels = conv.out_shape[0] * conv.out_shape[1]  # a conv's unit loads one window beat per output pixel
    assert folding.ideal_cycles(conv, f, 0.5) == max(np.ceil(units["mvu"] * 0.5), pixels, units["window"])
    assert folding.ideal_cycles(conv, f, 0.0) == max(pixels, units["window"])  # nothing left: the reads remain
    beats = kinds.matrix(dense).beats_per_vector(dense)  # a dense layer loads every input pixel
    assert folding.ideal_cycles(dense, f, 0.0) == beats


def test_the_bound_is_never_slower_than_the_real_search():
    """The ideal unit's options dominate the real ones, so its best folding is at least as
    fast in the same budget."""
    net = small_net()
    report = exit_bound.bound(net, images_of(net, 4))
    assert report["fps_ratio"] >= 1.0
    assert report["without"]["cycles_per_frame"] == folding.optimize(net).cycles_per_frame


def test_shares_are_weighted_by_terms_and_sparse_nets_are_refused():
    layers = {"a": exit_bound.LayerWork("a", "xnor", 300, 0.1, 0.0, 0.1),
              "b": exit_bound.LayerWork("b", "xnor", 100, 0.2, 0.5, 0.6),
              "p": exit_bound.LayerWork("p", "pixel", 50, 0.3, 0.0, 0.3)}
    assert exit_bound.weighted_share(layers, "xnor") == pytest.approx((300 * 0.1 + 100 * 0.6) / 400)
    assert exit_bound.weighted_share(layers, "xnor", "decided_share") == pytest.approx((300 * 0.1 + 100 * 0.2) / 400)
    assert exit_bound.weighted_share(layers, "sparse") == 0.0
    sparse = ir.load_model("nin_pruned_2to8")
    with pytest.raises(UsageError, match="01_sparse_conv: the early-exit bound prices XNOR and 8-bit layers"):
        exit_bound.work_left(sparse, np.zeros((1, 28, 28, 1), np.uint8))


def test_cli_writes_the_bound(tmp_path, capsys):
    net = small_net()
    path = net.save(tmp_path / "small.ir.npz")
    out = tmp_path / "ee"
    assert cli.main(["earlyexit", str(path), "--images", "3", "--bound", "2", "--out", str(out)]) == 0
    report = json.loads((out / "bound.json").read_text())
    assert report["images"] == 2 and {w["name"] for w in report["layers"]} == {"c0", "c1", "d3"}
    assert (out / "bound.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "at most" in out and "8-bit layer" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["earlyexit", str(path), "--bound", "-1"])
    assert e.value.code == 2 and "expected a whole number >= 0, got '-1'" in capsys.readouterr().err
