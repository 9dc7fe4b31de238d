"""The tests' one source of random networks:

- ``build`` / ``layer_case`` / ``knife_edge_input_case`` / ``valid_convs_case``: IR chains whose thresholds
  sit at the per-channel median accumulator on given images (balanced output
  bits), with ``random_folding``;
- ``random_layer``: one IR layer with random weights and thresholds;
- ``networks``: a Hypothesis strategy for random IR chains over every layer kind,
  with foldings;
- ``architectures``: a Hypothesis strategy for random trainable architectures.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from flipflow import ir, kinds
from flipflow.generator.folding import LayerConfig
from flipflow import golden


def _accumulators(layer: ir.Layer, x: np.ndarray) -> np.ndarray:
    kind = kinds.matrix(layer)
    return kind.accumulate(layer, kind.patches(layer, x).reshape(-1, layer.fan_in))


def build(name: str, images: np.ndarray, specs: list[dict], classes: int, seed: int) -> ir.Network:
    """specs: dicts with kind, out (channels), k, s, p (and planes, nm, centred for the kinds
    that take them); shapes are inferred."""
    rng = np.random.default_rng(seed)
    shape = images.shape[1:]
    layers: list[ir.Layer] = []
    x = images
    for i, spec in enumerate(specs):
        kind = spec["kind"]
        layer = ir.Layer(name=f"{kind}{i}", kind=kind, in_shape=tuple(shape), out_shape=(1, 1, 1),
                         kernel=spec.get("k", 1), stride=spec.get("s", 1), pad=spec.get("p", 0),
                         planes=tuple(spec.get("planes", ())), nm=tuple(spec["nm"]) if "nm" in spec else None,
                         centred=spec.get("centred", False))
        out = spec.get("out", shape[2])
        if kind in ("output_conv", "output_dense"):
            out = classes
        layer.out_shape = (1, 1, out) if kind.endswith("_dense") else (0, 0, out)
        layer.out_shape = ir.expected_out_shape(layer) if kind != "global_sum" else (1, 1, shape[2])
        if layer.has_weights:
            wshape = kinds.matrix(layer).weight_shape(layer)
            if kinds.of(layer).sparse:
                layer.weights = nm_mask(rng, out, layer.fan_in, *layer.nm).reshape(wshape)
                layer.invert = rng.integers(0, 2, out, dtype=np.uint8)  # channels of negative BatchNorm scale
            elif kinds.of(layer).binary_weights:
                layer.weights = rng.integers(0, 2, wshape, dtype=np.uint8)
            else:
                layer.weight_bits = 8 if kind.startswith("input") else 4
                hi = 2 ** (layer.weight_bits - 1) - 1
                layer.weights = rng.integers(-hi, hi + 1, wshape).astype(np.int8)
            if layer.is_thresholded:
                acc = _accumulators(layer, x)
                layer.thresholds = np.median(acc, axis=0).astype(np.int64) + rng.integers(0, 2, out)
                bounds = kinds.matrix(layer).threshold_bounds(layer)
                if bounds:
                    layer.thresholds = np.clip(layer.thresholds, *bounds)
        layers.append(layer)
        x = golden.run_layer(layer, x)
        shape = x.shape[1:]
    net = ir.Network(name=name, input_shape=tuple(images.shape[1:]), classes=[str(c) for c in range(classes)],
                     dataset="digits", layers=layers)
    net.validate()
    return net


def random_folding(net: ir.Network, seed: int) -> dict[str, LayerConfig]:
    """PE up to 8, SIMD up to 24 lanes (a multiple of a sparse layer's N, up to its slots)."""
    rng = np.random.default_rng(seed + 1000)

    def simd(l: ir.Layer) -> int:
        step, slots = kinds.matrix(l).simd_step(l), kinds.matrix(l).synapse_slots(l)
        return step * int(rng.integers(1, max(1, min(slots, 24) // step) + 1))

    return {l.name: LayerConfig(int(rng.integers(1, min(l.out_ch, 8) + 1)), simd(l)) for l in net.layers if l.has_weights}


def odd(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi)) | 1


def sparse_nm(rng: np.random.Generator) -> tuple[int, int]:
    """A random N:M structure, M a power of two from 2 to 16."""
    m = 1 << int(rng.integers(1, 5))
    return int(rng.integers(1, m + 1)), m


def layer_case(kind: str, seed: int, centred: bool = False) -> list[dict]:
    """A small network around one layer kind under test, with random shapes (a sparse kind
    ``centred`` or not)."""
    rng = np.random.default_rng(seed)
    c1 = odd(rng, 3, 12)
    k = int(rng.choice([1, 2, 3]))
    s = int(rng.choice([1, 2]))
    p = int(rng.integers(0, k))
    first = {"kind": "input_conv", "out": c1, "k": 3, "s": 1, "p": 1}
    cases = {
        "input_conv": [{"kind": "input_conv", "out": c1, "k": int(rng.choice([3, 5])), "s": s, "p": 1}, {"kind": "output_dense"}],
        "input_dense": [{"kind": "input_dense", "out": odd(rng, 9, 40)}, {"kind": "output_dense"}],
        "bitplane_conv": [{"kind": "bitplane_conv", "out": c1, "k": int(rng.choice([3, 5])), "s": s, "p": 1,
                           "planes": tuple(sorted(rng.choice(8, int(rng.integers(1, 6)), replace=False).tolist(), reverse=True))},
                          {"kind": "binary_conv", "out": odd(rng, 3, 12), "k": k, "s": 1, "p": p}, {"kind": "output_dense"}],
        "binary_conv": [first, {"kind": "binary_conv", "out": odd(rng, 3, 20), "k": k, "s": s, "p": p}, {"kind": "output_dense"}],
        "binary_dense": [first, {"kind": "binary_dense", "out": odd(rng, 5, 40)}, {"kind": "output_dense"}],
        "maxpool": [first, {"kind": "maxpool", "k": int(rng.choice([2, 3])), "s": 2, "p": int(rng.integers(0, 2))}, {"kind": "output_dense"}],
        "output_conv": [first, {"kind": "output_conv", "k": k, "s": 1, "p": p}, {"kind": "global_sum"}],
        "output_dense": [{"kind": "input_dense", "out": odd(rng, 9, 30)}, {"kind": "output_dense"}],
        "global_sum": [first, {"kind": "output_conv", "k": 1}, {"kind": "global_sum"}],
        # last, so that the draws above stay those of the other kinds' cases; odd K (c1 odd)
        # against an even M leaves a partial last block
        "sparse_conv": [first, {"kind": "sparse_conv", "out": odd(rng, 3, 20), "k": k, "s": s, "p": p,
                                "nm": sparse_nm(rng), "centred": centred}, {"kind": "output_dense"}],
        "sparse_dense": [first, {"kind": "sparse_dense", "out": odd(rng, 5, 40), "nm": sparse_nm(rng), "centred": centred},
                         {"kind": "output_dense"}],
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


def nm_mask(rng: np.random.Generator, rows: int, k: int, n: int, m: int) -> np.ndarray:
    """[rows, k] uint8 0/1 with N ones in every full block of M, and 0..min(N, length) in a
    last partial block (the IR allows fewer there)."""
    blocks = -(-k // m)
    mask = np.zeros((rows, blocks * m), np.uint8)
    for r in range(rows):
        for b in range(blocks):
            length = min(m, k - b * m)
            ones = n if length == m else int(rng.integers(0, min(n, length) + 1))
            mask[r, b * m + rng.choice(length, ones, replace=False)] = 1
    return mask[:, :k]


def random_layer(rng: np.random.Generator, name: str, kind: str, in_shape, out_ch: int = 0, k: int = 1, s: int = 1,
                 p: int = 0, *, wide_thresholds: bool = False) -> ir.Layer:
    """One layer with random weights ({0, 1} for binary kinds, int8 of a random 2..8-bit
    width otherwise). Thresholds lie near the middle of the accumulator range, so output
    bits vary; ``wide_thresholds`` spreads them over and beyond the reachable range
    (exercises clamping)."""
    dense = kind.endswith("_dense")
    layer = ir.Layer(name, kind, tuple(in_shape), (1, 1, out_ch), kernel=1 if dense else k,
                     stride=1 if dense else s, pad=0 if dense else p)
    if kinds.get(kind).bit_planes:  # a random set of kept pixel bits
        layer.planes = tuple(sorted(rng.choice(8, int(rng.integers(1, 9)), replace=False).tolist(), reverse=True))
    if kinds.get(kind).sparse:  # a random N:M structure, M up to 64, centred or not
        m = 1 << int(rng.integers(1, 7))
        layer.nm = (int(rng.integers(1, m + 1)), m)
        layer.centred = bool(rng.integers(0, 2))
    layer.out_shape = ir.expected_out_shape(layer)
    if not layer.has_weights:
        return layer
    kk = layer.fan_in
    wshape = kinds.matrix(layer).weight_shape(layer)
    if kinds.of(layer).binary_weights:
        if kinds.of(layer).sparse:  # the popcount counts the ones only: thresholds around half of them
            layer.weights = nm_mask(rng, out_ch, kk, *layer.nm).reshape(wshape)
            layer.invert = rng.integers(0, 2, out_ch, dtype=np.uint8)  # channels of negative BatchNorm scale
            terms = kinds.nm_kept(kk, *layer.nm)
        else:
            layer.weights = rng.integers(0, 2, wshape, dtype=np.uint8)
            terms = kk
        if layer.centred:  # acc = M P - N S, near 0 on random inputs
            lo, hi = kinds.matrix(layer).accumulator_range(layer)
            spread = (hi - lo + 2) // 2 if wide_thresholds else layer.nm[1] * max(1, int(np.sqrt(terms)))
            low, high = kinds.matrix(layer).threshold_bounds(layer)  # and no further than one past the reachable
            layer.thresholds = np.clip(rng.integers(-spread, spread + 1, out_ch), max(low, lo - 1), min(high, hi + 2)).astype(np.int64)
        elif wide_thresholds:
            layer.thresholds = rng.integers(0, terms + 2, out_ch).astype(np.int64)
        else:
            spread = max(1, int(np.sqrt(terms)))
            layer.thresholds = np.clip(rng.integers(terms // 2 - spread, terms // 2 + spread + 1, out_ch), 0, terms + 1).astype(np.int64)
        return layer
    layer.weight_bits = int(rng.integers(2, 9))
    lim = 2 ** (layer.weight_bits - 1) - 1
    layer.weights = rng.integers(-lim, lim + 1, wshape).astype(np.int8)
    if kind.startswith("input"):
        if wide_thresholds:
            layer.thresholds = rng.integers(-300 * kk, 300 * kk, out_ch).astype(np.int64)
        else:  # around the accumulator of mid-grey pixels
            rows = layer.weights.reshape(out_ch, -1).astype(np.int64)
            noise = rng.integers(-60, 61, out_ch) * np.abs(rows).sum(1)
            layer.thresholds = (127 * rows.sum(1) + noise).astype(np.int64)
    return layer


@st.composite
def networks(draw) -> tuple[ir.Network, dict[str, LayerConfig]]:
    """A random chain using every layer kind, odd widths, random foldings (PE/SIMD not dividing;
    a sparse layer's SIMD a multiple of its N)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    h = draw(st.integers(4, 9))
    c = draw(st.sampled_from([1, 3]))
    width = lambda: draw(st.integers(1, 37))  # noqa: E731
    layers: list[ir.Layer] = []

    def add(kind: str, out_ch: int = 0, k: int = 1, s: int = 1, p: int = 0) -> None:
        in_shape = layers[-1].out_shape if layers else (h, h, c)
        if kind in ("maxpool", "global_sum"):
            out_ch = in_shape[2]
        k = min(k, in_shape[0] + 2 * p)
        p = min(p, k - 1) if k > 1 else 0
        layers.append(random_layer(rng, f"{len(layers)}_{kind}", kind, in_shape, out_ch, k, s, p))

    if draw(st.booleans()):
        add("input_conv", width(), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 2)))
    else:
        add("input_dense", width())
    if layers[0].kind == "input_conv":
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["binary_conv", "maxpool", "sparse_conv"]))
            if kind == "maxpool":
                add("maxpool", 0, draw(st.integers(2, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1)))
            else:
                add(kind, width(), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1)))
    dense = draw(st.sampled_from([None, "binary_dense", "sparse_dense"]))
    if dense:
        add(dense, width())
    if layers[-1].out_shape[:2] != (1, 1) and draw(st.booleans()):
        add("output_conv", 10, draw(st.integers(1, 2)), 1, 0)
        add("global_sum")
    else:
        add("output_dense", 10)
    net = ir.Network("random", (h, h, c), [str(i) for i in range(10)], "random", layers)
    net.validate()

    def simd(l: ir.Layer) -> int:
        step, slots = kinds.matrix(l).simd_step(l), kinds.matrix(l).synapse_slots(l)
        return step * draw(st.integers(1, max(1, min(slots, 80) // step)))

    folding = {l.name: LayerConfig(draw(st.integers(1, l.out_ch)), simd(l)) for l in layers if l.has_weights}
    return net, folding


@st.composite
def architectures(draw) -> tuple[Arch, int]:
    """Random hardware-mappable architectures and a weight seed: odd widths, 1/3/5
    kernels, stride 2, padding, overlapping max-pool, optional dense layers after conv."""
    from flipflow.training.blocks import Arch, LayerSpec  # torch: kept out of the RTL tests' imports

    size = draw(st.integers(9, 16))
    in_ch = draw(st.sampled_from([1, 3]))
    h = size
    width = st.integers(1, 23)
    layers = []
    first_k = draw(st.sampled_from([1, 3, 5]))
    first_pad = draw(st.integers(0, first_k // 2))
    layers.append(LayerSpec("input_conv", draw(width), first_k, 1, first_pad))
    h = h + 2 * first_pad - first_k + 1
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()) and h >= 3:
            k = draw(st.integers(2, 3))
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, k // 2))
            layers.append(LayerSpec("maxpool", 0, k, s, p))
            h = (h + 2 * p - k) // s + 1
        k = draw(st.sampled_from([1, 3, 5]))
        p = draw(st.integers(0, k - 1))
        if h + 2 * p < k:
            k, p = 1, 0
        s = draw(st.integers(1, 2))
        layers.append(LayerSpec("binary_conv", draw(width), k, s, p))
        h = (h + 2 * p - k) // s + 1
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 2))):
            layers.append(LayerSpec("binary_dense", draw(width)))
        layers.append(LayerSpec("output_dense", 10))
    else:
        k = 3 if h >= 3 and draw(st.booleans()) else 1
        layers += [LayerSpec("output_conv", 10, k, 1, draw(st.integers(0, k - 1))), LayerSpec("global_sum")]
    seed = draw(st.integers(0, 2**16))
    return Arch("random", (size, size, in_ch), [str(i) for i in range(10)], layers), seed


def pixel_codes_case(seed: int) -> tuple[ir.Network, dict[str, LayerConfig], np.ndarray]:
    """input_conv (3 channels, padded) -> output_dense whose input layer maps every
    pixel through a random pixel_codes table (not monotone, 0 and 255 included), with
    random images and odd foldings: the table must sit before the gather and the padding."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (4, 6, 6, 3)).astype(np.uint8)
    codes = rng.permutation(256).astype(np.uint8)
    mapped = codes[images]
    net = build("pixel_codes", mapped, [{"kind": "input_conv", "out": 5, "k": 3, "s": 1, "p": 1}, {"kind": "output_dense"}], 10, seed)
    net.layers[0].pixel_codes = codes  # thresholds were set on the mapped pixels: balanced bits
    net.validate()
    return net, {net.layers[0].name: LayerConfig(3, 4), net.layers[1].name: LayerConfig(2, 7)}, images


def valid_convs_case(images: int = 4) -> tuple[ir.Network, dict[str, LayerConfig], np.ndarray]:
    """Two unpadded 3x3 convs on 10x10 images (BNN-PYNQ CNV's windows), the second
    the bottleneck (864 cycles per frame) and its producer close behind (768): its
    window unit needs 6 line-buffer rows (kinds.window_rows) across a frame boundary."""
    x = np.random.default_rng(0).integers(0, 256, (images, 10, 10, 1)).astype(np.uint8)
    net = build("valid", x, [dict(kind="input_conv", out=4, k=3), dict(kind="binary_conv", out=4, k=3),
                             dict(kind="output_dense")], classes=10, seed=0)
    folding = {"input_conv0": LayerConfig(1, 3), "binary_conv1": LayerConfig(1, 6), "output_dense2": LayerConfig(10, 36)}
    return net, folding, x
