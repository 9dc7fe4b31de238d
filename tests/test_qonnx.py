"""QONNX import and export (docs/DESIGN.md, "Importing QONNX"): imported networks give
the qonnx executor's integer class scores exactly in the golden model, every refused
construct is named with its node, and flipflow's zoo goes out through export-qonnx and
back through import unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import qonnx_nets
from flipflow import cli, golden, ir
from flipflow.interop import qonnx_export, qonnx_graph, qonnx_import
from flipflow.interop.qonnx_import import ImportRefused
from flipflow.training import checkpoint, models
from flipflow.training.blocks import BNN
from qonnx_nets import Graph, head, tiny

CLASSES3 = ["a", "b", "c"]
CLASSES10 = [str(i) for i in range(10)]


def executor_matches_golden(path, net: ir.Network, images: np.ndarray) -> np.ndarray:
    """qonnx's executor and the golden model agree on integer scores (not only argmax)."""
    model = qonnx_graph.load(path, batch=len(images))
    y = qonnx_graph.execute(model, images, qonnx_graph.parse_input_scale(net.provenance["input_scale"]))
    scores = qonnx_import.source_scores(net, y)
    assert np.abs(scores - np.round(scores)).max() < 1e-3, "the executor's scores are not integers in the IR's units"
    np.testing.assert_array_equal(np.round(scores).astype(np.int64), golden.scores(net, images))
    return scores


# -- random FINN-style nets against the executor ----------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=qonnx_nets.finn_nets())
def test_random_finn_nets_bit_exact_against_the_executor(case, tmp_path):
    graph, shape = case
    path = graph.save(tmp_path / "net.onnx")
    net = qonnx_import.import_model(path, "random", CLASSES10, shape)
    images = np.random.default_rng(0).integers(0, 256, (24, *shape), dtype=np.uint8)
    images[0], images[1] = 0, 255
    executor_matches_golden(path, net, images)


def test_cnv_like_input_gets_the_quantisers_pixel_codes(tmp_path):
    """2x - 1 and an 8-bit Quant of scale 2^-7 on pixel / 255 is not linear in the pixel:
    the input layer carries the quantiser's codes (q + 128)."""
    path = head(tiny()).save(tmp_path / "t.onnx")
    net = qonnx_import.import_model(path, "t", CLASSES3, (8, 8, 1))
    codes = net.layers[0].pixel_codes.astype(np.int64)
    p = np.arange(256)
    np.testing.assert_array_equal(codes, p + (p >= 128) - (p == 255))
    executor_matches_golden(path, net, np.random.default_rng(1).integers(0, 256, (50, 8, 8, 1), dtype=np.uint8))


def test_input_scale_option(tmp_path):
    """With --input-scale 1/256 the same quantiser is linear in the pixel (q = p - 128): no table."""
    path = head(tiny()).save(tmp_path / "t.onnx")
    net = qonnx_import.import_model(path, "t", CLASSES3, (8, 8, 1), input_scale="1/256")
    assert net.layers[0].pixel_codes is None and net.provenance["input_scale"] == "1/256"
    executor_matches_golden(path, net, np.random.default_rng(4).integers(0, 256, (30, 8, 8, 1), dtype=np.uint8))
    with pytest.raises(qonnx_graph.QonnxError, match="--input-scale 'x' is not a number"):
        qonnx_import.import_model(path, "t", CLASSES3, (8, 8, 1), input_scale="x")


def test_thresholded_input_becomes_a_1x1_input_layer(tmp_path):
    """BNN-PYNQ's FC input (sign(2x - 1)) is a 1x1 input_conv: pixel >= 128."""
    g = Graph(1, 6, 6).start()
    g.op("Mul", g.const(np.float32(2.0))).op("Sub", g.const(np.float32(1.0))).bipolar()
    path = head(g).save(tmp_path / "fc.onnx")
    net = qonnx_import.import_model(path, "t", CLASSES3, (6, 6, 1))
    first = net.layers[0]
    assert (first.kind, first.kernel, first.thresholds.tolist(), first.weights.reshape(-1).tolist()) == ("input_conv", 1, [128], [1])
    executor_matches_golden(path, net, np.random.default_rng(2).integers(0, 256, (30, 6, 6, 1), dtype=np.uint8))


def test_negative_final_scale_negates_the_scores(tmp_path):
    g = tiny(3)
    g.weight_forms = ("bipolar",)  # weights +-1: the score scale is the affine's alone
    g.flatten().gemm(3).affine(-2.0, 1.0)
    path = g.save(tmp_path / "neg.onnx")
    net = qonnx_import.import_model(path, "t", CLASSES3, (8, 8, 1))
    assert (net.provenance["score_scale"], net.provenance["score_offset"]) == (2.0, 1.0)
    images = np.random.default_rng(3).integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    model = qonnx_graph.load(path, batch=len(images))
    y = qonnx_graph.execute(model, images, qonnx_graph.parse_input_scale("1/255"))
    np.testing.assert_array_equal(golden.predict(net, images), np.argmax(y, axis=1))
    executor_matches_golden(path, net, images)


# -- refused constructs: each names its node, op type and why -----------------------------

def _refused(graph: Graph, tmp_path, shape=(8, 8, 1), classes=CLASSES3) -> str:
    path = graph.save(tmp_path / "refused.onnx")
    with pytest.raises(ImportRefused) as e:
        qonnx_import.import_model(path, "t", classes, shape)
    return str(e.value)


def test_refuses_multi_bit_activations(tmp_path):
    g = Graph(1, 8, 8).start().quant_input().conv(5, 3).bn(9, 0.5).quant(2, 0.5)
    assert "(Quant): a 2-bit activation (4 levels)" in _refused(head(g), tmp_path)


def test_refuses_a_residual_add(tmp_path):
    g = tiny()
    skip = g.cur
    g.pad(1).conv(5, 3).bn(45).bipolar()
    g.op("Add", skip)
    assert "(Add): combines 2 computed tensors (a residual connection)" in _refused(head(g), tmp_path)


def test_refuses_an_average_pool(tmp_path):
    g = tiny().op("AveragePool", kernel_shape=[2, 2], strides=[2, 2])
    g.shape = (5, 3, 3)
    assert "(AveragePool): an average pool" in _refused(head(g), tmp_path)


def test_refuses_per_channel_float_scales_on_binary_activations(tmp_path):
    g = Graph(1, 8, 8).start().quant_input().conv(5, 3).bn(9, 0.5)
    g.bipolar(np.linspace(0.5, 1.5, 5, dtype=np.float32).reshape(1, 5, 1, 1))
    assert "(BipolarQuant): per-channel float scales on a binary activation" in _refused(head(g), tmp_path)


def test_refuses_per_channel_scaling_after_the_activation(tmp_path):
    g = tiny()
    g.op("Mul", g.const(np.linspace(1, 2, 5, dtype=np.float32).reshape(1, 5, 1, 1)))
    assert "(Mul): applies per-channel float scales to binary activations" in _refused(head(g), tmp_path)


def test_refuses_zero_padding_of_bipolar_activations(tmp_path):
    g = tiny().conv(5, 3, p=1).bn(45).bipolar()
    assert "pads binary activations with 0, which is neither of their values" in _refused(head(g), tmp_path)


def test_refuses_a_ternary_sign(tmp_path):
    """Sign(0) = 0: an accumulator that reaches exactly 0 makes a third value."""
    g = tiny().flatten().gemm(4).op("Sign")
    g.shape = (4,)
    assert "(Sign): outputs 0 besides its two values" in _refused(g.gemm(3).affine(1.0, 0.0), tmp_path)


def test_refuses_a_per_class_score_affine(tmp_path):
    g = tiny().flatten().gemm(3)
    g.op("Add", g.const(np.array([0.0, 1.0, 2.0], np.float32)))
    assert "the scores get a per-class scale or offset" in _refused(g, tmp_path)


def test_refuses_unknown_ops_and_pools_before_the_activation(tmp_path):
    assert "(Relu): no flipflow layer implements this op" in _refused(head(tiny().op("Relu")), tmp_path)
    g = Graph(1, 8, 8).start().quant_input().conv(5, 3).maxpool(2, 2).bn(9, 0.5).bipolar()
    assert "(MaxPool): max-pools before the activation" in _refused(head(g), tmp_path)


def test_refuses_brevitas_w2a2(tmp_path):
    """A real W2A2 network (BNN-PYNQ's TFC-W2A2, Brevitas export) is refused at its first 2-bit activation."""
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    model, _ = model_with_cfg("tfc_2w2a", pretrained=False)
    export_qonnx(model.eval(), torch.zeros(1, 1, 28, 28), export_path=str(tmp_path / "w2a2.onnx"))
    with pytest.raises(ImportRefused, match=r"\(Quant\): a 2-bit activation \(4 levels\)"):
        qonnx_import.import_model(tmp_path / "w2a2.onnx", "fashion_mnist", CLASSES10, (28, 28, 1))


def test_cli_refusal_is_one_line_and_writes_nothing(tmp_path, capsys):
    path = head(tiny().op("AveragePool", kernel_shape=[2, 2])).save(tmp_path / "avg.onnx")
    out = tmp_path / "m.ir.npz"
    assert cli.main(["import", str(path), "--dataset", "digits", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "(AveragePool): an average pool" in err
    assert not out.exists()


# -- flipflow's zoo: export-qonnx, then import ----------------------------------------------

def _round_trip(model: str, tmp_path, fashion) -> None:
    zoo = ir.load_model(model)
    path = tmp_path / f"{model}.onnx"
    assert cli.main(["export-qonnx", model, "--out", str(path)]) == 0
    assert cli.main(["import", str(path), "--dataset", zoo.dataset, "--out", str(tmp_path / "m.ir.npz")]) == 0
    back = ir.load(tmp_path / "m.ir.npz")
    assert back.provenance["input_scale"] == "1/256"  # the exported graph states its input scale
    assert [l.kind for l in back.layers] == [l.kind for l in zoo.layers]
    for a, b in zip(zoo.layers, back.layers):
        assert (a.in_shape, a.out_shape, a.kernel, a.stride, a.pad) == (b.in_shape, b.out_shape, b.kernel, b.stride, b.pad)
        for attr in ("weights", "thresholds"):
            x, y = getattr(a, attr), getattr(b, attr)
            assert (x is None and y is None) or np.array_equal(x, y), f"{a.name}.{attr}"
    executor_matches_golden(path, back, fashion.test.images[:100])


def test_zoo_tfc_round_trip_is_the_same_ir(tmp_path, fashion):
    _round_trip("tfc", tmp_path, fashion)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["nin", "nin_pruned"])
def test_zoo_nin_round_trip_is_the_same_ir(model, tmp_path, fashion):
    _round_trip(model, tmp_path, fashion)


def test_a_sparse_checkpoint_is_refused_in_one_line(digits, tmp_path, capsys):
    dense = BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(16, 16, 16)), 0)
    checkpoint.save(tmp_path / "checkpoint.pt", models.sparsified(dense, {1: (1, 4)}, centred=True))
    assert cli.main(["export-qonnx", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "layer 1 (sparse_dense 1:4) N:M sparse, which has no QONNX form" in err and len(err.strip().splitlines()) == 1


def test_export_needs_a_checkpoint(tmp_path, capsys):
    assert cli.main(["export-qonnx", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert qonnx_export.CHECKPOINT == "checkpoint.pt"


@pytest.mark.slow
def test_bnn_pynq_tfc_proof(tmp_path):
    """`make qonnx-proof` on BNN-PYNQ's TFC-W1A1 at reduced counts: golden, C and RTL
    simulation equal qonnx's executor in integer scores."""
    from flipflow.sim import qonnx_proof

    row = qonnx_proof.prove("tfc_1w1a", tmp_path, golden_images=100, csim_images=20, rtl_images=4, train_images=512)
    assert [row[k]["mismatches"] for k in ("golden", "csim", "rtl")] == [0, 0, 0]
