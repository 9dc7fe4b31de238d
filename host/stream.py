"""The accelerator's AXI-Stream contract: one place for the byte layout.

Shared by the HLS top, the RTL top, the cocotb testbenches and the host
driver, so a DMA buffer built here drives any backend.

* Input stream ``in_stream``: TDATA 8 bits, one pixel channel per beat, in
  (h, w, c) order (channel fastest); TLAST on the last byte of each image.
* Output stream ``out_stream``: TDATA 32 bits; per image, the integer score
  of every class (int32, two's complement) followed by the class id
  (argmax, lowest index wins ties) with TLAST.
"""

from __future__ import annotations

import numpy as np

from flipflow.errors import FlipflowError

TOP_NAME = "flipflow_top"
IN_PORT, OUT_PORT = "in_stream", "out_stream"
IN_BITS, OUT_BITS = 8, 32


class StreamError(FlipflowError, ValueError):
    """Images or output words that do not follow the stream layout."""


def words_per_image_in(input_shape: tuple[int, int, int]) -> int:
    h, w, c = input_shape
    return h * w * c


def words_per_image_out(n_classes: int) -> int:
    return n_classes + 1


def pack_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> flat uint8 beats, N * H * W * C long."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise StreamError(f"expected (N, H, W, C) uint8 images, got {images.dtype}{images.shape}")
    return np.ascontiguousarray(images).reshape(-1)


def unpack_output(words: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat 32-bit output beats -> (scores (N, classes) int64, class ids (N,) int64)."""
    words = np.asarray(words).astype(np.uint32).view(np.int32)
    per = words_per_image_out(n_classes)
    if words.size % per:
        raise StreamError(f"{words.size} output words is not a whole number of {per}-word results")
    rows = words.reshape(-1, per).astype(np.int64)
    return rows[:, :n_classes], rows[:, n_classes]


def pack_output(scores: np.ndarray) -> np.ndarray:
    """The output words a correct accelerator sends for these scores (uint32)."""
    scores = np.asarray(scores, np.int64)
    ids = np.argmax(scores, axis=1)[:, None]
    return np.concatenate([scores, ids], axis=1).astype(np.int32).view(np.uint32).reshape(-1)
