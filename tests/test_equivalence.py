"""Rung 1 == rung 2: the Brevitas model in eval mode and the golden model on
its exported IR agree on every layer's binary activations and on the final
integer scores, on real images and on random architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from flipflow import ir, kinds
from flipflow import golden
from flipflow.training import checkpoint, models, reports
from flipflow.training.blocks import Arch, LayerSpec, images_to_input
from flipflow.training.export import export
from flipflow.training.synthetic import calibrated_model
from rtl_nets import architectures


def assert_layers_equal(model, net: ir.Network, images: np.ndarray) -> None:
    """Compare every layer; the message names the first mismatching layer, pixel and channel."""
    with torch.no_grad():
        ref = model.forward_layers(images_to_input(images))
    got = golden.run_layers(net, images)
    scale = model.output_scale()
    for layer, r in zip(net.layers, ref):
        r = r.permute(0, 2, 3, 1).numpy()
        expected = r / scale if layer.kind in ir.OUTPUT_KINDS + ir.REDUCE_KINDS else (r > 0).astype(np.uint8)
        g = got[layer.name]
        assert g.shape == expected.shape, f"{layer.name}: shape {g.shape} != {expected.shape}"
        bad = np.argwhere(g != expected)
        if len(bad):
            n, y, x, c = bad[0]
            pytest.fail(
                f"{layer.name} ({layer.kind}): {len(bad)} mismatches; first at image {n}, pixel ({y},{x}), "
                f"channel {c}: golden {g[n, y, x, c]} vs Brevitas {expected[n, y, x, c]}"
            )


def roundtrip(net: ir.Network, tmp_path) -> ir.Network:
    return ir.load(net.save(tmp_path / f"{net.name}.ir.npz"))


def test_nin_on_fashion_mnist(fashion, tmp_path):
    arch = models.nin(fashion.input_shape, fashion.classes, widths=(37, 29, 19, 33, 31, 27, 23, 21))
    model = calibrated_model(arch, fashion.train.images[:256], seed=1)
    net = roundtrip(export(model, "nin_small", "fashion_mnist"), tmp_path)
    assert_layers_equal(model, net, fashion.test.images[:300])


@pytest.mark.parametrize("planes", [(7, 6, 5, 4), (7, 5, 2, 0)])
def test_bit_plane_nin_on_fashion_mnist(fashion, tmp_path, planes):
    """CBNN input: the golden model's planes, -1 padding and XNOR layer equal Brevitas'."""
    arch = models.with_bit_planes(models.nin(fashion.input_shape, fashion.classes, widths=(37, 29, 19, 33, 31, 27, 23, 21)), planes)
    model = calibrated_model(arch, fashion.train.images[:256], seed=3)
    net = roundtrip(export(model, "nin_bitplane", "fashion_mnist"), tmp_path)
    assert net.layers[0].kind == "bitplane_conv" and net.layers[0].planes == planes
    assert net.layers[0].fan_in == 5 * 5 * 1 * len(planes)
    assert_layers_equal(model, net, fashion.test.images[:300])


def test_the_zoo_bit_plane_pruned_net_is_its_checkpoint(fashion):
    """zoo/nin_pruned_planes4 (issue 15's net: 4 planes, flip-pruned, first seed) is the export of
    its checkpoint, layer by layer on real test images, and the first of its comparison's seeds."""
    model, _ = checkpoint.load(ir.ZOO / "nin_pruned_planes4" / "checkpoint.pt")
    net = ir.load_model("nin_pruned_planes4")
    assert kinds.of(net.layers[0]).bit_planes and net.layers[0].planes == (7, 6, 5, 4)
    assert_layers_equal(model.eval(), net, fashion.test.images[:200])
    seeds = reports.model_source("nin_pruned_planes4").seeds
    assert len(seeds) == 3 and net.metrics["accuracy"] == seeds[0]  # the IR is the first of its comparison's seeds


def test_mlp_on_digits(digits, tmp_path):
    arch = Arch("mlp", digits.input_shape, digits.classes, [
        LayerSpec("input_dense", 45), LayerSpec("binary_dense", 33), LayerSpec("binary_dense", 17), LayerSpec("output_dense", 10),
    ])
    model = calibrated_model(arch, digits.train.images, seed=2)
    net = roundtrip(export(model, "mlp", "digits"), tmp_path)
    assert_layers_equal(model, net, digits.test.images)


def test_negative_bn_scale_rows_are_inverted(fashion):
    arch = Arch("one", (28, 28, 1), fashion.classes, [
        LayerSpec("input_conv", 8, 3, 1, 1), LayerSpec("binary_conv", 12, 3, 1, 1), LayerSpec("output_conv", 10), LayerSpec("global_sum"),
    ])
    model = calibrated_model(arch, fashion.train.images[:128], seed=3, negative_scale_share=0.5)
    net = export(model, "one", "fashion_mnist")
    neg = (model.blocks[1].bn.weight.detach() < 0).numpy()
    assert neg.any() and (~neg).any()
    latent_bits = (model.blocks[1].op.quant_weight().value.detach() > 0).numpy().transpose(0, 2, 3, 1)
    exported = net.layers[1].weights
    assert np.array_equal(exported[neg], 1 - latent_bits[neg])
    assert np.array_equal(exported[~neg], latent_bits[~neg])
    assert_layers_equal(model, net, fashion.test.images[:100])


def test_threshold_ties_follow_brevitas_sign_of_zero(fashion):
    """A channel whose BN output is exactly 0 at some accumulator must fire there (sign(0) = +1)."""
    arch = Arch("tie", (28, 28, 1), fashion.classes, [
        LayerSpec("input_conv", 4, 3, 1, 1), LayerSpec("binary_conv", 6, 3), LayerSpec("output_conv", 10), LayerSpec("global_sum"),
    ])
    model = calibrated_model(arch, fashion.train.images[:64], seed=4)
    bn = model.blocks[1].bn
    with torch.no_grad():  # BN(x) = x - 4 (up to float): zero exactly at acc = 2P - K = 4
        bn.running_mean.fill_(4.0)
        bn.running_var.fill_(1.0 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.fill_(0.0)
    net = export(model, "tie", "fashion_mnist")
    k = net.layers[1].fan_in
    assert (net.layers[1].thresholds == (4 + k) // 2).all()  # P = (acc + K) / 2 fires, one less does not
    assert_layers_equal(model, net, fashion.test.images[:100])


# -- random architectures ------------------------------------------------------


def crops(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Real images cut to (H, W) and stacked to C channels."""
    h, w, c = shape
    x = images[:, 2 : 2 + h, 3 : 3 + w, 0]
    return np.ascontiguousarray(np.stack([np.roll(x, i, axis=0) for i in range(c)], axis=-1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(architectures())
def test_random_architectures(fashion, case):
    arch, seed = case
    images = crops(fashion.test.images[:96], arch.input_shape)
    model = calibrated_model(arch, images[:64], seed=seed)
    net = export(model, "random", "fashion_mnist")
    assert_layers_equal(model, net, images)
