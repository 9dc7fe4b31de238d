"""Random IR networks for the RTL tests: random weights, thresholds set to the
per-channel median accumulator on real images (so output bits are balanced,
not constant), random odd widths and foldings."""

from __future__ import annotations

import numpy as np

from flipflow import ir
from flipflow.generator.folding import LayerConfig
from flipflow import golden


def _accumulators(layer: ir.Layer, x: np.ndarray) -> np.ndarray:
    if layer.kind.endswith("_dense"):
        patches = x.reshape(len(x), -1)
    else:
        patches = golden.windows(x, layer.kernel, layer.stride, layer.pad, 0).reshape(-1, layer.fan_in)
    w = layer.weights.reshape(layer.out_ch, -1)
    if layer.kind.startswith("input"):
        return patches.astype(np.int64) @ w.T.astype(np.int64)
    return golden.xnor_popcount(patches, w)


def build(name: str, images: np.ndarray, specs: list[dict], classes: int, seed: int) -> ir.Network:
    """specs: dicts with kind, out (channels), k, s, p; shapes are inferred."""
    rng = np.random.default_rng(seed)
    shape = images.shape[1:]
    layers: list[ir.Layer] = []
    x = images
    for i, spec in enumerate(specs):
        kind = spec["kind"]
        layer = ir.Layer(name=f"{kind}{i}", kind=kind, in_shape=tuple(shape), out_shape=(1, 1, 1),
                         kernel=spec.get("k", 1), stride=spec.get("s", 1), pad=spec.get("p", 0))
        out = spec.get("out", shape[2])
        if kind in ("output_conv", "output_dense"):
            out = classes
        layer.out_shape = (1, 1, out) if kind.endswith("_dense") else (0, 0, out)
        layer.out_shape = ir.expected_out_shape(layer) if kind != "global_sum" else (1, 1, shape[2])
        if layer.has_weights:
            wshape = (out, layer.fan_in) if kind.endswith("_dense") else (out, layer.kernel, layer.kernel, shape[2])
            if kind in ir.BINARY_KINDS:
                layer.weights = rng.integers(0, 2, wshape, dtype=np.uint8)
            else:
                layer.weight_bits = 8 if kind.startswith("input") else 4
                hi = 2 ** (layer.weight_bits - 1) - 1
                layer.weights = rng.integers(-hi, hi + 1, wshape).astype(np.int8)
            if layer.is_thresholded:
                acc = _accumulators(layer, x)
                layer.thresholds = np.median(acc, axis=0).astype(np.int64) + rng.integers(0, 2, out)
                if kind in ir.BINARY_KINDS:
                    layer.thresholds = np.clip(layer.thresholds, 0, layer.fan_in + 1)
        layers.append(layer)
        x = golden.run_layer(layer, x)
        shape = x.shape[1:]
    net = ir.Network(name=name, input_shape=tuple(images.shape[1:]), classes=[str(c) for c in range(classes)],
                     dataset="digits", layers=layers)
    net.validate()
    return net


def random_folding(net: ir.Network, seed: int) -> dict[str, LayerConfig]:
    rng = np.random.default_rng(seed + 1000)
    return {l.name: LayerConfig(int(rng.integers(1, min(l.out_ch, 8) + 1)), int(rng.integers(1, min(l.fan_in, 24) + 1)))
            for l in net.layers if l.has_weights}


def odd(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi)) | 1


def layer_case(kind: str, seed: int) -> list[dict]:
    """A small network around one layer kind under test, with random shapes."""
    rng = np.random.default_rng(seed)
    c1 = odd(rng, 3, 12)
    k = int(rng.choice([1, 2, 3]))
    s = int(rng.choice([1, 2]))
    p = int(rng.integers(0, k))
    first = {"kind": "input_conv", "out": c1, "k": 3, "s": 1, "p": 1}
    cases = {
        "input_conv": [{"kind": "input_conv", "out": c1, "k": int(rng.choice([3, 5])), "s": s, "p": 1}, {"kind": "output_dense"}],
        "input_dense": [{"kind": "input_dense", "out": odd(rng, 9, 40)}, {"kind": "output_dense"}],
        "binary_conv": [first, {"kind": "binary_conv", "out": odd(rng, 3, 20), "k": k, "s": s, "p": p}, {"kind": "output_dense"}],
        "binary_dense": [first, {"kind": "binary_dense", "out": odd(rng, 5, 40)}, {"kind": "output_dense"}],
        "maxpool": [first, {"kind": "maxpool", "k": int(rng.choice([2, 3])), "s": 2, "p": int(rng.integers(0, 2))}, {"kind": "output_dense"}],
        "output_conv": [first, {"kind": "output_conv", "k": k, "s": 1, "p": p}, {"kind": "global_sum"}],
        "output_dense": [{"kind": "input_dense", "out": odd(rng, 9, 30)}, {"kind": "output_dense"}],
        "global_sum": [first, {"kind": "output_conv", "k": 1}, {"kind": "global_sum"}],
    }
    return cases[kind]


def knife_edge_input_case(pe: int, rows: int = 7) -> tuple[ir.Network, dict[str, LayerConfig], np.ndarray]:
    """input_dense -> output_dense where every input-layer accumulator sits exactly
    on its threshold for image 0: rows j and j + rows share weights, with
    T = acc and T = acc + 1, so an accumulator off by one in either direction
    flips an output bit. Weights include the extremes -128 and 127 and pixels
    are 0 / 255 / random (image 0 all 255): the corners of the packed DSP
    products. The input layer runs at ``pe`` rows, SIMD 5 (which 64 does not divide)."""
    rng = np.random.default_rng(pe)
    images = rng.integers(0, 256, (4, 8, 8, 1)).astype(np.uint8)
    images[0] = 255
    corners = rng.random(images.shape) < 0.6
    images[1:][corners[1:]] = rng.choice(np.array([0, 255], np.uint8), int(corners[1:].sum()))
    net = build("knife_edge", images, [{"kind": "input_dense", "out": 2 * rows}, {"kind": "output_dense"}], 10, pe)
    first, last = net.layers
    w = rng.integers(-128, 128, (rows, first.fan_in))
    w[:, ::3] = rng.choice([-128, 127], w[:, ::3].shape)
    first.weights = np.concatenate([w, w]).astype(np.int8)
    first.thresholds = _accumulators(first, images[:1])[0] + (np.arange(2 * rows) >= rows)
    last.weights = (rng.integers(1, 8, last.weights.shape) * rng.choice([-1, 1], last.weights.shape)).astype(np.int8)
    net.validate()
    return net, {first.name: LayerConfig(pe, 5), last.name: LayerConfig(2, 3)}, images
