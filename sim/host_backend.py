"""The ``sim`` backend: the generated RTL under Verilator (flipflow.sim.rtl),
fed the same input stream bytes the DMA would send and returning the output
words the DMA would receive. Time is simulated: cycles from the first
accepted pixel to the last result word, at the metadata's clock.

The compiled harness is cached per model hash and folding (in
$FLIPFLOW_CACHE, default ~/.cache/flipflow), so only the first run of a model
pays the Verilator build.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from flipflow.host.backends import BackendError, StreamRun
from flipflow.host.metadata import Metadata


def cache_dir(meta: Metadata) -> Path:
    root = Path(os.environ.get("FLIPFLOW_CACHE", Path.home() / ".cache" / "flipflow"))
    fold = hashlib.sha256(json.dumps(meta.folding, sort_keys=True).encode()).hexdigest()[:8]
    return root / "rtl" / f"{meta.model_hash[:16]}-{fold}"


class SimBackend:
    name = "sim"

    def __init__(self, meta: Metadata, net: Any, build_dir: str | os.PathLike | None = None, idle: float = 0.0, stall: float = 0.0):
        if net is None:
            raise BackendError("the sim backend generates RTL from the IR: put model.ir.npz next to accelerator.json or pass ir=...")
        try:
            from flipflow.generator.folding import LayerConfig
            from flipflow.sim.rtl import RtlSimulator
        except ImportError as e:
            raise BackendError(
                f"the sim backend needs the full flipflow package with Verilator (`make setup`); it is not part of the board driver ({e})"
            ) from e
        folding = {k: LayerConfig(**v) for k, v in meta.folding.items()} if meta.folding else None
        self.meta, self.idle, self.stall = meta, idle, stall
        self.fclk_mhz = meta.clock_mhz
        self.sim = RtlSimulator(net, folding, build_dir=Path(build_dir) if build_dir else cache_dir(meta))

    def run(self, pixels: np.ndarray, n_images: int) -> StreamRun:
        images = pixels.reshape((n_images, *self.meta.input_shape))
        run = self.sim.run(images, idle=self.idle, stall=self.stall)
        cycles = int(run.last_out[-1] - run.first_in[0] + 1)
        return StreamRun(run.words.astype(np.uint32), cycles / (self.fclk_mhz * 1e6), cycles)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass
