"""The IR file: round trip, and every validation error names its field."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from flipflow import ir


def small_net() -> ir.Network:
    """input_conv 3x3 -> binary_conv 3x3 s2 -> maxpool -> binary_dense -> output_dense."""
    rng = np.random.default_rng(0)
    layers = [
        ir.Layer("c0", "input_conv", (8, 8, 1), (8, 8, 5), kernel=3, pad=1, weight_bits=8, weight_scale=2**-6,
                 weights=rng.integers(-127, 128, (5, 3, 3, 1)).astype(np.int8), thresholds=rng.integers(-500, 500, 5),
                 pixel_codes=rng.integers(0, 256, 256).astype(np.uint8)),
        ir.Layer("c1", "binary_conv", (8, 8, 5), (4, 4, 7), kernel=3, stride=2, pad=1,
                 weights=rng.integers(0, 2, (7, 3, 3, 5), dtype=np.uint8), thresholds=rng.integers(0, 46, 7)),
        ir.Layer("p2", "maxpool", (4, 4, 7), (2, 2, 7), kernel=2, stride=2),
        ir.Layer("d3", "binary_dense", (2, 2, 7), (1, 1, 9),
                 weights=rng.integers(0, 2, (9, 28), dtype=np.uint8), thresholds=rng.integers(0, 29, 9)),
        ir.Layer("o4", "output_dense", (1, 1, 9), (1, 1, 3), weight_bits=8, weight_scale=2**-5,
                 weights=rng.integers(-127, 128, (3, 9)).astype(np.int8)),
    ]
    return ir.Network("small", (8, 8, 1), ["a", "b", "c"], "digits", layers, {"training_run": "test", "pruning_round": 0})


def test_round_trip_preserves_everything(tmp_path):
    net = small_net()
    back = ir.load(net.save(tmp_path / "m.ir.npz"))
    assert back.name == net.name and back.classes == net.classes and back.provenance == net.provenance
    for a, b in zip(net.layers, back.layers):
        assert a.header() == b.header()
        for attr in ("weights", "thresholds", "pixel_codes"):
            x, y = getattr(a, attr), getattr(b, attr)
            assert (x is None and y is None) or (np.array_equal(x, y) and x.dtype == y.dtype)


def test_binary_weights_are_packed_lsb_first_on_disk(tmp_path):
    net = small_net()
    path = net.save(tmp_path / "m.ir.npz")
    with np.load(path) as z:
        packed = z["c1.weights"]
    row = net.layers[1].weights[0].reshape(-1)
    assert packed.shape == (7, 6)  # 45 bits -> 6 bytes per row
    assert packed[0, 0] == sum(int(b) << i for i, b in enumerate(row[:8]))


def test_binary_ops_counts_binary_layers_only():
    net = small_net()
    assert net.binary_ops == 4 * 4 * 7 * 45 + 9 * 28


def test_save_is_atomic(tmp_path, monkeypatch):
    path = small_net().save(tmp_path / "m.ir.npz")
    before = path.read_bytes()
    broken = small_net()
    monkeypatch.setattr(np, "savez_compressed", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        broken.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.ir.npz"]


# -- file-level errors -----------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ir.IRError, match="no such IR file"):
        ir.load(tmp_path / "nope.ir.npz")


def test_truncated_file(tmp_path):
    path = small_net().save(tmp_path / "m.ir.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ir.IRError, match="truncated or corrupt"):
        ir.load(path)


def _rewrite_header(tmp_path, edit) -> ir.IRError:
    path = small_net().save(tmp_path / "m.ir.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays[ir.HEADER_KEY].tobytes())
    edit(header, arrays)
    arrays[ir.HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ir.IRError) as e:
        ir.load(path)
    return e.value


def test_newer_version_is_rejected(tmp_path):
    err = _rewrite_header(tmp_path, lambda h, a: h.update(version=ir.VERSION + 1))
    assert "version" in str(err) and "upgrade flipflow" in str(err)


def test_wrong_format_is_rejected(tmp_path):
    assert "format" in str(_rewrite_header(tmp_path, lambda h, a: h.update(format="onnx")))


def test_missing_field_is_named(tmp_path):
    assert "layers[1].kind: missing" in str(_rewrite_header(tmp_path, lambda h, a: h["layers"][1].pop("kind")))


def test_missing_header(tmp_path):
    path = tmp_path / "m.ir.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ir.IRError, match="not a flipflow IR"):
        ir.load(path)


def test_packed_weights_of_wrong_size(tmp_path):
    def edit(h, arrays):
        arrays["c1.weights"] = arrays["c1.weights"][:, :-1]

    assert "layers[1] (c1).weights" in str(_rewrite_header(tmp_path, edit))


def test_missing_thresholds_array(tmp_path):
    assert "(d3).thresholds: missing" in str(_rewrite_header(tmp_path, lambda h, a: a.pop("d3.thresholds")))


# -- consistency errors --------------------------------------------------------------

def _broken(mutate) -> str:
    net = copy.deepcopy(small_net())
    mutate(net)
    with pytest.raises(ir.IRError) as e:
        net.validate()
    return str(e.value)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda n: setattr(n, "layers", []), "layers"),
        (lambda n: setattr(n, "input_shape", (8, 8)), "input_shape"),
        (lambda n: setattr(n, "classes", []), "classes"),
        (lambda n: setattr(n, "classes", ["a", "b"]), "classes"),
        (lambda n: setattr(n.layers[1], "name", "c0"), "duplicate layer names"),
        (lambda n: setattr(n.layers[0], "kind", "binary_conv"), "layers[0] (c0).kind"),
        (lambda n: setattr(n.layers[2], "kind", "avgpool"), "layers[2] (p2).kind"),
        (lambda n: n.layers.insert(2, ir.Layer("again", "input_conv", (4, 4, 7), (4, 4, 7))), "layers[2] (again).kind"),
        (lambda n: setattr(n.layers[1], "in_shape", (8, 8, 6)), "layers[1] (c1).in_shape"),
        (lambda n: setattr(n.layers[1], "out_shape", (5, 5, 7)), "layers[1] (c1).out_shape"),
        (lambda n: setattr(n.layers[1], "stride", 0), "layers[1] (c1).stride"),
        (lambda n: setattr(n.layers[1], "pad", 3), "layers[1] (c1).pad"),
        (lambda n: setattr(n.layers[1], "planes", (7, 6)), "layers[1] (c1).planes"),
        (lambda n: setattr(n.layers[2], "kernel", 9), "layers[2] (p2).kernel"),
        (lambda n: setattr(n.layers[1], "weights", n.layers[1].weights[:, :2]), "layers[1] (c1).weights"),
        (lambda n: setattr(n.layers[1], "weights", n.layers[1].weights * 2), "layers[1] (c1).weights"),
        (lambda n: setattr(n.layers[1], "weight_bits", 2), "layers[1] (c1).weight_bits"),
        (lambda n: setattr(n.layers[0], "weight_bits", 1), "layers[0] (c0).weight_bits"),
        (lambda n: setattr(n.layers[0], "weights", n.layers[0].weights.astype(np.int16)), "layers[0] (c0).weights"),
        (lambda n: setattr(n.layers[4], "weight_bits", 4), "layers[4] (o4).weights"),
        (lambda n: setattr(n.layers[4], "weight_scale", 0.0), "layers[4] (o4).weight_scale"),
        (lambda n: setattr(n.layers[1], "thresholds", None), "layers[1] (c1).thresholds"),
        (lambda n: setattr(n.layers[1], "thresholds", n.layers[1].thresholds[:3]), "layers[1] (c1).thresholds"),
        (lambda n: setattr(n.layers[1], "thresholds", n.layers[1].thresholds + 100), "layers[1] (c1).thresholds"),
        (lambda n: setattr(n.layers[2], "thresholds", np.zeros(7, np.int64)), "layers[2] (p2).weights"),
        (lambda n: setattr(n.layers[4], "thresholds", np.zeros(3, np.int64)), "layers[4] (o4).thresholds"),
        (lambda n: setattr(n.layers[0], "pixel_codes", n.layers[0].pixel_codes[:255]), "layers[0] (c0).pixel_codes"),
        (lambda n: setattr(n.layers[1], "pixel_codes", n.layers[0].pixel_codes), "layers[1] (c1).pixel_codes"),
        (lambda n: n.layers.pop(), "layers[-1] (d3).kind"),
        (lambda n: n.layers.append(ir.Layer("x", "binary_dense", (1, 1, 3), (1, 1, 3))), "layers[5] (x).kind"),
    ],
)
def test_inconsistent_network_names_the_field(mutate, field):
    assert field in _broken(mutate)


def _bit_plane_net(planes: tuple[int, ...]) -> ir.Network:
    rng = np.random.default_rng(1)
    p = len(planes) or 1
    first = ir.Layer("b0", "bitplane_conv", (6, 6, 2), (6, 6, 4), kernel=3, pad=1, planes=planes,
                     weights=rng.integers(0, 2, (4, 3, 3, 2 * p), dtype=np.uint8), thresholds=rng.integers(0, 18 * p, 4))
    head = ir.Layer("o1", "output_dense", (6, 6, 4), (1, 1, 2), weight_bits=4,
                    weights=rng.integers(-7, 8, (2, 144)).astype(np.int8))
    return ir.Network("planes", (6, 6, 2), ["a", "b"], "synthetic", [first, head])


def test_bit_planes_round_trip_and_widen_the_fan_in(tmp_path):
    net = ir.load(_bit_plane_net((7, 5, 1)).save(tmp_path / "p.ir.npz"))
    assert net.layers[0].planes == (7, 5, 1)
    assert net.layers[0].fan_in == 3 * 3 * 2 * 3


@pytest.mark.parametrize("planes", [(), (8,), (5, 7), (6, 6)])
def test_bad_bit_planes_are_named(planes):
    with pytest.raises(ir.IRError, match=r"layers\[0\] \(b0\)\.planes"):
        _bit_plane_net(planes).validate()


def test_zoo_name_or_path_resolution(tmp_path):
    path = small_net().save(tmp_path / "m.ir.npz")
    assert ir.resolve(path) == path
    with pytest.raises(ir.IRError, match="zoo models"):
        ir.resolve("no_such_model")


def _sparse_net(nm: tuple[int, int] | None = (2, 4)) -> ir.Network:
    """input_conv -> sparse_conv 3x3 (K = 27: six full blocks of 4 and a partial one of 3) -> output_dense."""
    rng = np.random.default_rng(2)
    first = ir.Layer("c0", "input_conv", (5, 5, 1), (5, 5, 3), kernel=3, pad=1, weight_bits=8,
                     weights=rng.integers(-127, 128, (3, 3, 3, 1)).astype(np.int8), thresholds=rng.integers(-500, 500, 3))
    mask = np.zeros((4, 27), np.uint8)
    mask[:, [0, 3, 5, 6, 8, 11, 12, 13, 17, 18, 20, 23, 25]] = 1  # 2 per full block, 1 in the partial one
    sparse = ir.Layer("s1", "sparse_conv", (5, 5, 3), (5, 5, 4), kernel=3, pad=1, nm=nm,
                      weights=mask.reshape(4, 3, 3, 3), thresholds=rng.integers(0, 14, 4),
                      invert=np.array([0, 1, 1, 0], np.uint8))
    head = ir.Layer("o2", "output_dense", (5, 5, 4), (1, 1, 2), weight_bits=4, weights=rng.integers(-7, 8, (2, 100)).astype(np.int8))
    return ir.Network("sparse", (5, 5, 1), ["a", "b"], "synthetic", [first, sparse, head])


def test_sparse_layer_round_trip(tmp_path):
    net = ir.load(_sparse_net().save(tmp_path / "s.ir.npz"))
    layer = net.layers[1]
    assert layer.nm == (2, 4) and layer.header()["nm"] == [2, 4] and layer.invert.tolist() == [0, 1, 1, 0]
    assert np.array_equal(layer.weights, _sparse_net().layers[1].weights)
    assert net.binary_ops == 5 * 5 * 4 * (2 * 6 + 2)  # the N:M structure's terms only (N per block)


def test_centred_sparse_layer_round_trip_and_version(tmp_path):
    """A centred layer is written as version 2 (a version-1 reader would compute it as {0, 1}
    weights); a net without one stays version 1, its headers without the field."""
    plain = _sparse_net().save(tmp_path / "plain.ir.npz")
    assert json.loads(bytes(np.load(plain)["__ir__"]))["version"] == 1
    assert "centred" not in json.loads(bytes(np.load(plain)["__ir__"]))["layers"][1]
    net = _sparse_net()
    net.layers[1].centred = True  # K = 27, N:M = 2:4: acc = 4 P - 2 S in [-2 x 27, 2 x 27]
    net.layers[1].thresholds = np.array([-54, 0, 13, 55])
    loaded = ir.load(net.save(tmp_path / "centred.ir.npz"))
    assert loaded.layers[1].centred and not loaded.layers[0].centred
    assert json.loads(bytes(np.load(tmp_path / "centred.ir.npz")["__ir__"]))["version"] == 2
    net.layers[1].thresholds = np.array([-55, 0, 0, 0])
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(s1\)\.thresholds: sparse_conv thresholds must lie in \[-54, 55\]"):
        net.validate()
    net.layers[1].thresholds, net.layers[1].centred = np.zeros(4, np.int64), 1
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(s1\)\.centred: must be true or false, got 1"):
        net.validate()


@pytest.mark.parametrize("nm, message", [
    (None, "must be a pair"), ((2, 6), "2:6 needs M a power of two"), ((5, 4), "1 <= N <= M"), ((0, 4), "0:4"), ((1, 128), "2..64"),
    ((1, 4), r"not 1:4 sparse: row 0, block 0 \(elements 0..3\) has 2 ones"),
])
def test_bad_nm_is_named(nm, message):
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(s1\)\.(nm|weights)") as e:
        _sparse_net(nm).validate()
    assert e.match(message)


def test_sparse_partial_block_may_hold_fewer_but_not_more():
    net = _sparse_net()
    w = net.layers[1].weights.reshape(4, -1)
    w[2, 25] = 0  # the partial block (elements 24..26) may hold fewer than N
    net.validate()
    w[3, [24, 26]] = 1  # three ones where at most min(2, 3) may be
    with pytest.raises(ir.IRError, match=r"\(s1\)\.weights: not 2:4 sparse: row 3, block 6 \(elements 24..26\) has 3 ones"):
        net.validate()


def test_nm_and_invert_on_a_dense_kind_are_refused():
    net = small_net()
    net.layers[1].nm = (1, 2)
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(c1\)\.nm: binary_conv takes no nm \(only sparse_conv, sparse_dense\)"):
        net.validate()
    net.layers[1].nm, net.layers[1].invert = None, np.zeros(7, np.uint8)
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(c1\)\.invert: binary_conv takes no invert"):
        net.validate()
    net.layers[1].invert, net.layers[1].centred = None, True
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(c1\)\.centred: binary_conv takes no centred"):
        net.validate()


@pytest.mark.parametrize("invert", [np.zeros(3, np.uint8), np.array([0, 1, 2, 0], np.uint8), np.zeros(4, np.int64)])
def test_bad_invert_is_named(invert):
    net = _sparse_net()
    net.layers[1].invert = invert
    with pytest.raises(ir.IRError, match=r"layers\[1\] \(s1\)\.invert: must be uint8 bits of shape \(4,\)"):
        net.validate()
