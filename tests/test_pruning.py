"""Channel surgery, pruning criteria and the op count, checked against the golden model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flipflow import golden
from flipflow.training import models, prune
from flipflow.training.blocks import images_to_input
from flipflow.training.export import export
from flipflow.training.synthetic import calibrated_model
from flipflow.training.train import integer_scores


def _inputs(images: np.ndarray) -> torch.Tensor:
    return images_to_input(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2))


def _random_keep(arch, seed: int, share: float = 0.6) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i: np.sort(rng.permutation(c)[: max(1, int(c * share))]) for i, c in prune.widths(arch).items()}


@pytest.mark.parametrize("name,widths", [
    ("tfc", None),
    ("cnv", (16, 16, 24, 24, 32, 32, 48, 48)),  # 28x28 input: padded CNV, a dense layer after flatten
    ("nin", (24, 20, 16, 24, 24, 24, 24, 24)),
])
def test_pruned_net_exports_and_golden_agrees_bit_exactly(fashion_test_images, name, widths):
    images = fashion_test_images[:48]
    arch = models.build_arch(name, images.shape[1:], [str(i) for i in range(10)], **({"widths": widths} if widths else {}))
    model = calibrated_model(arch, images, seed=1)
    keep = _random_keep(arch, seed=2)
    cut = prune.surgery(model, keep)
    assert prune.widths(cut.arch) == {i: len(k) for i, k in keep.items()}
    net = export(cut, f"{name}_cut", "fashion_mnist")
    np.testing.assert_array_equal(golden.scores(net, images[:24]), integer_scores(cut, images[:24]))
    # every layer's kept channels: golden (on the cut net's IR) equals Brevitas layer by layer
    ours = cut.forward_layers(_inputs(images[:8]))
    for layer, out in zip(net.layers, golden.run_layers(net, images[:8]).values()):
        b = ours[net.layers.index(layer)].detach().permute(0, 2, 3, 1).numpy()
        if layer.kind.startswith(("input", "binary", "maxpool")):
            np.testing.assert_array_equal(out, (b > 0).astype(out.dtype), err_msg=layer.name)


@pytest.mark.parametrize("name", ["cnv", "nin"])
def test_surgery_keeps_the_function_of_kept_channels(fashion_test_images, name):
    images = fashion_test_images[:32]
    widths = {"cnv": (16, 16, 24, 24, 32, 32, 48, 48), "nin": (24, 20, 16, 24, 24, 24, 24, 24)}[name]
    arch = models.build_arch(name, images.shape[1:], [str(i) for i in range(10)], widths=widths)
    model = calibrated_model(arch, images, seed=3)
    x = _inputs(images[:8])
    with torch.no_grad():
        full = model.forward_layers(x)
        layers = prune.prunable(arch)
        for layer in (layers[0], layers[2], layers[-1]):  # first (fixed point), one feeding a max-pool, last before the head
            keep = _random_keep(arch, seed=layer)[layer]
            cut = prune.surgery(model, {layer: keep})
            outs = cut.forward_layers(x)
            for i in range(layer):  # everything before the cut is untouched
                assert torch.equal(outs[i], full[i])
            assert torch.equal(outs[layer], full[layer][:, torch.as_tensor(keep)])


def test_dense_after_flatten_takes_chw_columns(fashion_test_images):
    """Cut only the last conv of CNV; the dense layer's columns must follow (C, H, W) flattening."""
    images = fashion_test_images[:32]
    arch = models.cnv(images.shape[1:], [str(i) for i in range(10)], widths=(8, 8, 8, 8, 8, 6, 16, 16))
    model = calibrated_model(arch, images, seed=4)
    last_conv = max(i for i, s in enumerate(arch.layers) if s.kind == "binary_conv")
    keep = np.array([0, 2, 5])
    cut = prune.surgery(model, {last_conv: keep})
    dense = last_conv + 1
    h = w = 7
    w_full = model.blocks[dense].op.weight.detach().reshape(16, 6, h, w)
    assert torch.equal(cut.blocks[dense].op.weight.detach().reshape(16, 3, h, w), w_full[:, torch.as_tensor(keep)])


def test_binary_ops_of_nin_on_cifar_matches_the_reference():
    arch = models.nin((32, 32, 3), [str(i) for i in range(10)])
    ops = prune.binary_ops(arch)
    assert sum(ops.values()) == 31_457_280 + 15_728_640 + 117_964_800 + 9_437_184 * 2 + 21_233_664 + 2_359_296  # 207.6M
    assert sum(arch.layers[i].out_ch * arch.layers[i].kernel ** 2 * prune.layer_shapes(arch)[i][0][2] for i in ops) == 949_248


def test_round_width_to_hardware_multiple():
    assert prune.round_width(37.4, 64) == 37
    assert prune.round_width(37.4, 64, multiple=8) == 40
    assert prune.round_width(2, 64, multiple=8) == 8
    assert prune.round_width(70, 64) == 64


def test_plans_meet_the_budget_and_rules_pick_channels(fashion_test_images):
    images = fashion_test_images[:32]
    arch = models.nin(images.shape[1:], [str(i) for i in range(10)], widths=(24, 20, 16, 24, 24, 24, 24, 24))
    model = calibrated_model(arch, images, seed=5)
    rng = np.random.default_rng(0)
    counts = {i: rng.poisson(0.3, model.blocks[i].op.weight.shape).astype(np.int32) for i in prune.prunable(arch)}
    counts[4][:5] += 3  # channels 0..4 of layer 4 flip a lot
    flip_widths, p = prune.plan(model, "flip", flip_counts=counts, tau=0)
    for i, c in prune.widths(arch).items():
        assert flip_widths[i] == c - round(p[i] * c) and p[i] == pytest.approx(float((counts[i] > 0).mean()))
    keep = prune.keep_sets(model, flip_widths, "flip", counts)
    assert not set(range(5)) & set(keep[4].tolist())  # the most-flipping channels go first
    budget = sum(prune.binary_ops(prune.with_widths(arch, flip_widths)).values())
    for crit in ("latent", "uniform"):
        w, _ = prune.plan(model, crit, budget=budget)
        ops = sum(prune.binary_ops(prune.with_widths(arch, w)).values())
        assert ops <= budget and ops > 0.8 * budget, crit
    w8, _ = prune.plan(model, "uniform", budget=budget, multiple=8)
    assert all(v % 8 == 0 for v in w8.values())
    keep_latent = prune.keep_sets(model, {0: 4}, "latent", None)[0]
    mags = model.blocks[0].op.weight.detach().abs().reshape(24, -1).mean(1).numpy()
    assert set(keep_latent.tolist()) == set(np.argsort(mags)[-4:].tolist())
    with pytest.raises(ValueError, match="budget"):
        prune.plan(model, "latent")
    with pytest.raises(ValueError, match="flip counts"):
        prune.plan(model, "flip")


def test_activity_rule_removes_the_most_constant_channels_first(digits):
    """A channel whose output bit never changes (a huge BatchNorm bias) goes first by the
    activity rule, whatever its weights' magnitude; the rule needs images."""
    images = digits.train.images[:256]
    model = calibrated_model(models.tfc(digits.input_shape, digits.classes, widths=(16, 16, 16)), images)
    with torch.no_grad():
        model.blocks[1].bn.bias[5], model.blocks[1].bn.bias[9] = 100.0, -100.0  # always +1, always -1
        model.blocks[1].op.weight[[5, 9]] *= 10  # the largest latents: the latent rule keeps them
    assert set(prune.channel_order(model, 1, "activity", None, images)[:2].tolist()) == {5, 9}
    assert not {5, 9} & set(prune.keep_sets(model, {1: 14}, "activity", None, images)[1].tolist())
    assert {5, 9} <= set(prune.keep_sets(model, {1: 14}, "latent", None)[1].tolist())
    with pytest.raises(prune.PruneError, match="rule 'activity' needs images"):
        prune.channel_order(model, 1, "activity", None)
