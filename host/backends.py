"""Backends behind flipflow.host.Accelerator: each one takes the input
stream bytes of a batch and returns the output stream words, exactly as the
AXI DMA moves them on the board (host/stream.py). The driver's packing,
unpacking and checking code is therefore the same on every backend.

* ``pynq``   - the board (host/pynq_backend.py)
* ``sim``    - the generated RTL under Verilator (flipflow.sim)
* ``golden`` - the golden model (golden.py) producing the same words
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from flipflow.errors import FlipflowError
from flipflow.host import stream
from flipflow.host.metadata import Metadata


class BackendError(FlipflowError, RuntimeError):
    """A backend cannot run here; the message says what is missing and the fix."""


@dataclass
class StreamRun:
    """What one batch through a backend gives back."""

    words: np.ndarray  # uint32 output beats, n_images * words_per_image
    seconds: float  # time the accelerator (or its stand-in) took for the batch
    cycles: int | None = None  # clock cycles, where the backend counts them


class Backend(Protocol):
    name: str
    fclk_mhz: float | None  # None where there is no clock (golden)

    def run(self, pixels: np.ndarray, n_images: int) -> StreamRun:
        """``pixels``: the flat uint8 input stream of ``n_images`` images."""

    def reset(self) -> None: ...

    def close(self) -> None: ...


class GoldenBackend:
    """The golden model, fed and read through the stream layout."""

    name = "golden"
    fclk_mhz = None

    def __init__(self, meta: Metadata, net: Any):
        if net is None:
            raise BackendError("the golden backend executes the IR: put model.ir.npz next to accelerator.json or pass ir=...")
        self.meta, self.net = meta, net

    def run(self, pixels: np.ndarray, n_images: int) -> StreamRun:
        from flipflow import golden

        t0 = time.perf_counter()
        images = pixels.reshape((n_images, *self.meta.input_shape))
        words = stream.pack_output(golden.scores(self.net, images))
        return StreamRun(words, time.perf_counter() - t0)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass
