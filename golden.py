"""Golden model: executes a flipflow IR with integer and bit arithmetic.

This is the single arbiter of correctness: the Brevitas model, the HLS C
simulation and the RTL simulation must all agree with it bit for bit.

Activations are channel-last uint8 arrays (N, H, W, C): {0, 1} bits for
binary tensors, pixels for the input, int64 for scores. Each layer kind's
semantics is its ``execute`` in kinds.py; this module runs whole networks.
"""

from __future__ import annotations

import numpy as np

from flipflow import kinds
from flipflow.errors import FlipflowError
from flipflow.ir import Layer, Network
from flipflow.kinds import windows, xnor_popcount  # noqa: F401  (the golden model's public building blocks)

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


# -- building blocks (the kinds' own are in kinds.py: windows, xnor_popcount) --

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


def run_layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    """One layer's output for a batch, by its kind's semantics (kinds.py)."""
    return kinds.of(layer).execute(layer, x)


# -- whole network ------------------------------------------------------------

def argmax(scores: np.ndarray) -> np.ndarray:
    """Class per image; the lowest index wins ties (np.argmax does exactly this)."""
    return np.argmax(scores, axis=-1)


def run_layers(net: Network, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for a batch: {layer name: (N, H, W, C) array}."""
    x = check_images(net, images)
    out: dict[str, np.ndarray] = {}
    for layer in net.layers:
        x = run_layer(layer, x)
        out[layer.name] = x
    return out


def scores(net: Network, images: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Integer class scores (N, classes) for any number of images."""
    images = check_images(net, images)
    chunks = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        for layer in net.layers:
            x = run_layer(layer, x)
        chunks.append(x.reshape(len(x), -1))
    return np.concatenate(chunks) if chunks else np.zeros((0, len(net.classes)), np.int64)


def predict(net: Network, images: np.ndarray) -> np.ndarray:
    return argmax(scores(net, images))


def accuracy(net: Network, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(net, images) == np.asarray(labels)).mean())
