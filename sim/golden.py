"""Golden model: executes a flipflow IR with integer and bit arithmetic.

This is the single arbiter of correctness: the Brevitas model, the HLS C
simulation and the RTL simulation must all agree with it bit for bit.

Activations are channel-last uint8 arrays (N, H, W, C): {0, 1} bits for
binary tensors, pixels for the input, int64 for scores. Each layer kind has
one function here, named after the kind (see ``LAYER_FUNCTIONS``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from flipflow.errors import FlipflowError
from flipflow.ir import Layer, Network

BATCH = 64  # images per chunk: bounds the memory of the im2col buffers


class ImageShapeError(FlipflowError, ValueError):
    """Images do not have the shape/dtype the network expects."""


def check_images(net: Network, images: np.ndarray) -> np.ndarray:
    """Return images as (N, H, W, C) uint8, or raise naming the expected layout."""
    images = np.asarray(images)
    h, w, c = net.input_shape
    if images.shape == (h, w, c)[: images.ndim] and images.ndim >= 2:  # one image, (H, W) or (H, W, C)
        images = images.reshape(1, h, w, c)
    elif images.ndim == 3 and c == 1 and images.shape[1:] == (h, w):  # (N, H, W) grey images
        images = images[..., None]
    if images.dtype != np.uint8:
        raise ImageShapeError(f"{net.name} takes uint8 pixels, got dtype {images.dtype}: convert with .astype(np.uint8) from 0..255 values")
    if images.ndim != 4 or images.shape[1:] != (h, w, c):
        raise ImageShapeError(
            f"{net.name} takes images of shape (N, {h}, {w}, {c}) (channel-last), got {images.shape}"
        )
    return images


# -- building blocks ------------------------------------------------------

def windows(x: np.ndarray, k: int, stride: int, pad: int, pad_value: int) -> np.ndarray:
    """Sliding windows of an (N, H, W, C) tensor -> (N, Ho, Wo, k*k*C).

    A window is flattened (ky, kx, c) with c fastest: the order in which the
    hardware line buffer emits it and the order of the weight rows.
    """
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # N,Ho,Wo,C,ky,kx
    n, ho, wo, c = v.shape[:4]
    return v.transpose(0, 1, 2, 4, 5, 3).reshape(n, ho, wo, k * k * c)


def xnor_popcount(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """P[m, o] = popcount(XNOR(x[m], w[o])) for {0,1} matrices x (M, K), w (O, K).

    Counted through the identity popcount(XNOR) = K - |x| - |w| + 2 x.w on
    bit vectors, whose x.w is an exact integer matrix product (float32 BLAS is
    exact for sums below 2**24), so it runs at matmul speed.
    ``xnor_popcount_packed`` computes the same on packed words, as hardware does.
    """
    k = x_bits.shape[-1]
    if k >= 2**24:
        raise ValueError(f"fan-in {k} too large for exact float32 accumulation")
    xf = x_bits.astype(np.float32)
    wf = w_bits.astype(np.float32)
    dot = (xf @ wf.T).astype(np.int64)
    return k - xf.sum(-1, dtype=np.int64)[:, None] - wf.sum(-1, dtype=np.int64)[None, :] + 2 * dot


def pack_bits(bits: np.ndarray, word_bits: int = 64) -> np.ndarray:
    """Pack the last axis of a {0,1} array LSB-first into uint64 words.

    The tail of the last word is zero; callers that XNOR must discount it.
    """
    assert word_bits == 64
    k = bits.shape[-1]
    words = -(-k // 64)
    padded = np.zeros(bits.shape[:-1] + (words * 64,), np.uint8)
    padded[..., :k] = bits
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8")


def xnor_popcount_packed(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """Same as ``xnor_popcount`` with packed words and np.bitwise_count."""
    k = x_bits.shape[-1]
    xp, wp = pack_bits(x_bits), pack_bits(w_bits)
    mismatches = np.bitwise_count(xp[:, None, :] ^ wp[None, :, :]).sum(-1, dtype=np.int64)
    return k - mismatches  # zero tails never mismatch


# -- one function per layer kind -------------------------------------------

def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


def input_conv(layer: Layer, x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> bits: acc = sum(w * pixel) over the window (pixel 0 padding), bit = acc >= T."""
    patches = windows(x, layer.kernel, layer.stride, layer.pad, 0)
    return _fixed_threshold(layer, patches)


def input_dense(layer: Layer, x: np.ndarray) -> np.ndarray:
    return _fixed_threshold(layer, _flat(x)[:, None, None, :])


def _fixed_threshold(layer: Layer, patches: np.ndarray) -> np.ndarray:
    n, ho, wo, k = patches.shape
    w = layer.weights.reshape(layer.out_ch, k).astype(np.float64)
    acc = (patches.reshape(-1, k).astype(np.float64) @ w.T).astype(np.int64)  # exact: |acc| < 2**53
    return (acc >= layer.thresholds).astype(np.uint8).reshape(n, ho, wo, layer.out_ch)


def binary_conv(layer: Layer, x: np.ndarray) -> np.ndarray:
    """bits -> bits: P = popcount(XNOR(w, window)) with -1 (bit 0) padding, bit = P >= T."""
    patches = windows(x, layer.kernel, layer.stride, layer.pad, 0)
    return _binary_threshold(layer, patches)


def binary_dense(layer: Layer, x: np.ndarray) -> np.ndarray:
    return _binary_threshold(layer, _flat(x)[:, None, None, :])


def _binary_threshold(layer: Layer, patches: np.ndarray) -> np.ndarray:
    n, ho, wo, k = patches.shape
    p = xnor_popcount(patches.reshape(-1, k), layer.weights.reshape(layer.out_ch, k))
    return (p >= layer.thresholds).astype(np.uint8).reshape(n, ho, wo, layer.out_ch)


def maxpool(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Max-pool on bits is OR over the window; padding is -1 (bit 0), neutral for max."""
    k, s, p = layer.kernel, layer.stride, layer.pad
    if p:
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=0)
    v = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
    return v.max(axis=(-1, -2))


def output_conv(layer: Layer, x: np.ndarray) -> np.ndarray:
    """bits -> integer scores: sum(w * (2b - 1)) over the window (-1 padding)."""
    patches = windows(x, layer.kernel, layer.stride, layer.pad, 0)
    return _bipolar_scores(layer, patches)


def output_dense(layer: Layer, x: np.ndarray) -> np.ndarray:
    return _bipolar_scores(layer, _flat(x)[:, None, None, :])


def _bipolar_scores(layer: Layer, patches: np.ndarray) -> np.ndarray:
    n, ho, wo, k = patches.shape
    w = layer.weights.reshape(layer.out_ch, k).astype(np.float64)
    bipolar = 2.0 * patches.reshape(-1, k) - 1.0
    return (bipolar @ w.T).astype(np.int64).reshape(n, ho, wo, layer.out_ch)


def global_sum(layer: Layer, x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64).sum(axis=(1, 2), keepdims=True)


LAYER_FUNCTIONS: dict[str, Callable[[Layer, np.ndarray], np.ndarray]] = {
    "input_conv": input_conv,
    "input_dense": input_dense,
    "binary_conv": binary_conv,
    "binary_dense": binary_dense,
    "maxpool": maxpool,
    "output_conv": output_conv,
    "output_dense": output_dense,
    "global_sum": global_sum,
}


# -- whole network ------------------------------------------------------------

def argmax(scores: np.ndarray) -> np.ndarray:
    """Class per image; the lowest index wins ties (np.argmax does exactly this)."""
    return np.argmax(scores, axis=-1)


def run_layers(net: Network, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for a batch: {layer name: (N, H, W, C) array}."""
    x = check_images(net, images)
    out: dict[str, np.ndarray] = {}
    for layer in net.layers:
        x = LAYER_FUNCTIONS[layer.kind](layer, x)
        out[layer.name] = x
    return out


def scores(net: Network, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Integer class scores (N, classes) for any number of images."""
    images = check_images(net, images)
    chunks = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        for layer in net.layers:
            x = LAYER_FUNCTIONS[layer.kind](layer, x)
        chunks.append(x.reshape(len(x), -1))
    return np.concatenate(chunks) if chunks else np.zeros((0, len(net.classes)), np.int64)


def predict(net: Network, images: np.ndarray) -> np.ndarray:
    return argmax(scores(net, images))


def accuracy(net: Network, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(net, images) == np.asarray(labels)).mean())
