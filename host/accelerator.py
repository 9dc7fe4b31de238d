"""flipflow.host.Accelerator: one driver API over the board, the RTL
simulation and the golden model.

    acc = Accelerator("build/nin_pruned/deploy")          # backend from FLIPFLOW_BACKEND, else auto
    out = acc.execute(images)                              # (N, H, W, C) uint8 -> scores + class ids
    acc.classify(images)                                   # class ids
    acc.throughput_test()                                  # FINN's keys

The driver packs images into the input stream layout, hands the bytes to
the backend, unpacks the output words and checks them (the class id the
accelerator sends must be the argmax of the scores it sends), so every line
of that path runs the same on every backend.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from flipflow import ir
from flipflow.errors import FlipflowError
from flipflow.host import stream
from flipflow.host.backends import Backend, BackendError, GoldenBackend
from flipflow.host.hwh import BitstreamError, check_hwh
from flipflow.host.metadata import FILENAME, Metadata, MetadataError, load_metadata

BACKENDS = ("pynq", "sim", "golden")
SIM_BACKEND_MODULE = "flipflow.sim.host_backend"
ENV_BACKEND = "FLIPFLOW_BACKEND"


class ImageError(FlipflowError, ValueError):
    """Images of the wrong shape or dtype for this accelerator."""


class OutputError(FlipflowError, RuntimeError):
    """The output words are not what a correct accelerator sends."""


@dataclass
class Output:
    scores: np.ndarray  # (N, n_classes) int64
    class_ids: np.ndarray  # (N,) int64


def _resolve_backend(name: str | None, pynq: ModuleType | None) -> str:
    from flipflow.host.pynq_backend import board_present

    name = (name or os.environ.get(ENV_BACKEND) or "auto").lower()
    if name == "auto":
        return "pynq" if board_present(pynq) else "golden"
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)} or 'auto'")
    return name


class Accelerator:
    """A built flipflow accelerator behind one of the backends ``pynq``, ``sim``, ``golden``.

    ``path``: a build or deploy folder holding accelerator.json (plus the
    .bit/.hwh for ``pynq`` and model.ir.npz for ``sim``/``golden``), or the
    accelerator.json itself. ``backend``: one of BACKENDS or "auto" (the
    board when pynq sees one, else golden); None reads $FLIPFLOW_BACKEND.
    ``ir``: the IR (path, zoo name or ir.Network) when it is not next to the
    metadata; whenever an IR is at hand its hash must match the metadata's.
    """

    def __init__(
        self,
        path: str | os.PathLike = ".",
        backend: str | None = None,
        *,
        ir: Any = None,
        batch_size: int = 64,
        timeout_s: float | None = None,
        bitfile: str | os.PathLike | None = None,
        pynq: ModuleType | None = None,
        sim_options: dict[str, Any] | None = None,
    ):
        path = Path(path)
        self.folder = path if path.is_dir() else path.parent
        self.meta: Metadata = load_metadata(path)
        self.net = self._load_ir(ir)
        self.batch_size = batch_size
        self.backend_name = _resolve_backend(backend, pynq)
        self.backend: Backend = self._make_backend(bitfile, timeout_s, pynq, sim_options or {})

    # -- loading -----------------------------------------------------------
    def _load_ir(self, ir_arg: Any) -> Any:
        if ir_arg is None:
            candidate = self.folder / ir.FILENAME
            if not candidate.is_file():
                return None
            net = ir.load(candidate)
        elif isinstance(ir_arg, ir.Network):
            net = ir_arg
        else:
            net = ir.load_model(ir_arg)
        self.meta.check_network(net, where=str(self.folder / FILENAME))
        return net

    def _bitfile(self, bitfile: str | os.PathLike | None) -> Path:
        bit = Path(bitfile) if bitfile else self.folder / self.meta.bitstream
        if not bit.is_file():
            raise BitstreamError(
                f"{bit}: no bitstream. Vivado builds it from the Tcl that `make hls MODEL={self.meta.model}` writes "
                "(see the deploy README); copy the .bit and .hwh here, or use backend='sim' or 'golden'."
            )
        return bit

    def _make_backend(self, bitfile: Any, timeout_s: float | None, pynq: ModuleType | None, sim_options: dict[str, Any]) -> Backend:
        if self.backend_name == "golden":
            return GoldenBackend(self.meta, self.net)
        if self.backend_name == "sim":
            # The RTL simulation backend lives with the simulator (flipflow.sim) and is
            # loaded by name: host imports no other subpackage, so it ships to the board alone.
            sim_backend = importlib.import_module(SIM_BACKEND_MODULE)
            return sim_backend.SimBackend(self.meta, self.net, **sim_options)
        from flipflow.host.pynq_backend import PynqBackend

        bit = self._bitfile(bitfile)
        hwh = bit.with_suffix(".hwh")
        if not hwh.is_file():
            raise BitstreamError(f"{hwh}: the hardware handoff is missing; pynq needs the .hwh from the same Vivado run next to {bit.name}")
        hardware = check_hwh(hwh, self.meta)
        return PynqBackend(self.meta, bit, hardware, timeout_s=timeout_s or self.default_timeout_s(), pynq=pynq)

    def default_timeout_s(self) -> float:
        """Per-transfer DMA timeout: 10x the expected time of one image, at least 1 s."""
        cycles = self.meta.cycles_per_frame
        expected = cycles / (self.meta.clock_mhz * 1e6) if cycles else 0.0
        return max(1.0, 10 * expected)

    # -- properties ----------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.meta.input_shape

    def __repr__(self) -> str:
        h, w, c = self.input_shape
        return (
            f"Accelerator({self.meta.model!r}, backend={self.backend_name!r}, input={h}x{w}x{c} uint8, "
            f"{len(self.classes)} classes, batch_size={self.batch_size})"
        )

    # -- images in, results out ------------------------------------------------
    def check_images(self, images: Any) -> np.ndarray:
        """Images as (N, H, W, C) uint8, or an ImageError naming what is expected."""
        h, w, c = self.input_shape
        arr = np.asarray(images)
        if arr.dtype != np.uint8:
            raise ImageError(
                f"{self.meta.model} takes uint8 pixels (0..255), got dtype {arr.dtype}: "
                "convert with np.clip(x, 0, 255).astype(np.uint8) (no normalisation: the first layer's thresholds expect raw pixels)"
            )
        if arr.ndim == 3 and c == 1 and arr.shape[1:] == (h, w):
            arr = arr[..., None]  # (N, H, W) greyscale
        elif arr.shape == (h, w, c):
            arr = arr[None]  # one image
        if arr.ndim != 4 or arr.shape[1:] != (h, w, c):
            hint = " (channel-first? use x.transpose(0, 2, 3, 1))" if arr.ndim == 4 and arr.shape[1] == c else ""
            raise ImageError(f"{self.meta.model} takes images of shape (N, {h}, {w}, {c}) channel-last, got {arr.shape}{hint}")
        return arr

    def _run_words(self, images: np.ndarray) -> tuple[np.ndarray, float, int | None]:
        """Stream ``images`` through the backend in batches of batch_size."""
        words, seconds, cycles = [], 0.0, 0
        counted = True
        for i in range(0, len(images), self.batch_size):
            chunk = images[i : i + self.batch_size]
            run = self.backend.run(stream.pack_images(chunk), len(chunk))
            expect = len(chunk) * self.meta.output.words_per_image
            if run.words.size != expect:
                raise OutputError(
                    f"{self.backend_name}: got {run.words.size} output words for {len(chunk)} images, expected {expect}: "
                    f"the accelerator was built for another model than {self.meta.model!r}"
                )
            words.append(run.words)
            seconds += run.seconds
            counted = counted and run.cycles is not None
            cycles += run.cycles or 0
        return np.concatenate(words) if words else np.zeros(0, np.uint32), seconds, (cycles if counted else None)

    def _unpack(self, words: np.ndarray) -> Output:
        scores, ids = stream.unpack_output(words, self.meta.output.n_classes)
        expected = np.argmax(scores, axis=1) if len(scores) else ids
        bad = np.flatnonzero(ids != expected)
        if bad.size:
            i = int(bad[0])
            raise OutputError(
                f"{self.backend_name}: image {i}: class id {ids[i]} is not the argmax of its scores {scores[i].tolist()} "
                f"({bad.size} images affected): the output stream is misaligned or the bitstream is stale; "
                "rebuild/redeploy it with its accelerator.json"
            )
        return Output(scores, ids)

    def execute(self, images: Any) -> Output:
        """Run images through the accelerator: integer scores and class ids."""
        arr = self.check_images(images)
        words, _, _ = self._run_words(arr)
        return self._unpack(words)

    def classify(self, images: Any) -> np.ndarray:
        """Class ids (argmax of the integer scores, lowest index wins ties)."""
        return self.execute(images).class_ids

    def class_names(self, class_ids: Any) -> list[str]:
        return [self.classes[int(i)] for i in np.asarray(class_ids).reshape(-1)]

    def accuracy(self, images: Any, labels: Any) -> float:
        ids = self.classify(images)
        return float(np.mean(ids == np.asarray(labels).reshape(-1)))

    def throughput_test(self, batch_size: int | None = None, images: Any = None) -> dict[str, Any]:
        """Time one batch, FINN's way. Returns runtime[ms], throughput[images/s],
        DRAM_in_bandwidth[MB/s], DRAM_out_bandwidth[MB/s], fclk[mhz], batch_size,
        plus backend (and cycles where the backend counts them).

        runtime is the DMA time on the board, cycles / fclk in the RTL
        simulation (simulated hardware time), and numpy compute time for golden.
        """
        n = batch_size or self.batch_size
        if images is None:
            h, w, c = self.input_shape
            images = np.random.default_rng(0).integers(0, 256, (n, h, w, c), dtype=np.uint8)
        arr = self.check_images(images)[:n]
        n = len(arr)
        saved, self.batch_size = self.batch_size, n
        try:
            words, seconds, cycles = self._run_words(arr)
        finally:
            self.batch_size = saved
        self._unpack(words)
        seconds = max(seconds, 1e-12)
        result = {
            "runtime[ms]": seconds * 1e3,
            "throughput[images/s]": n / seconds,
            "DRAM_in_bandwidth[MB/s]": n * self.meta.input.bytes_per_image / seconds / 1e6,
            "DRAM_out_bandwidth[MB/s]": n * self.meta.output.bytes_per_image / seconds / 1e6,
            "fclk[mhz]": self.backend.fclk_mhz,
            "batch_size": n,
            "backend": self.backend_name,
        }
        if cycles is not None:
            result["cycles"] = cycles
        return result

    # -- lifecycle -------------------------------------------------------------
    def reset(self) -> None:
        """Recover after a DMA timeout (reloads the overlay on the board)."""
        self.backend.reset()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Accelerator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["Accelerator", "Output", "ImageError", "OutputError", "BackendError", "BitstreamError", "MetadataError", "BACKENDS"]
