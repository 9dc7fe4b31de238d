"""The board backend: pynq.Overlay + the AXI DMA's sendchannel/recvchannel.

Sequencing, per image (the accelerator ends every result with TLAST, and a
simple-mode S2MM transfer completes at the first TLAST, so each result needs
its own receive transfer; sending per image keeps TLAST on each image's last
pixel as the stream contract says):

    start: images register <- n, ap_start    (ap_ctrl_hs with a count register)
    send(0)
    for i in 0..n-1:
        recv.transfer(result i)          # armed before we block on anything
        if i + 1 < n: wait(send i); send(i + 1)   # the next image streams in
        wait(recv i)                               # while image i computes
    wait until ap_idle

Images sit in one pynq.allocate buffer at a 64-byte stride (so every slice
meets any DMA alignment), results in another. Slices of a PynqBuffer are
PynqBuffers with their own physical address, and pynq flushes a slice in
``sendchannel.transfer`` and invalidates it in ``recvchannel.wait``. The
whole input region is also flushed once before the first send and the output
region invalidated once at the end, so no pynq version leaves stale cache
lines. Every wait polls ``idle`` against a deadline (pynq's own ``wait``
spins forever when the accelerator never sends TLAST) and then calls
``wait()``, which returns at once.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from flipflow.errors import FlipflowError
from flipflow.host.backends import BackendError, StreamRun
from flipflow.host.hwh import BitstreamError, HardwareInfo
from flipflow.host.metadata import Metadata

ALIGN = 64  # bytes; a cache line, and a multiple of every AXI DMA memory-map width
CTRL = 0x00  # HLS ap_ctrl_hs control register and its bits
AP_START, AP_IDLE, AUTO_RESTART = 0x01, 0x04, 0x80


class DMATimeoutError(FlipflowError, TimeoutError):
    """A DMA channel did not finish in time; the message says which and how to recover."""


class DMAError(FlipflowError, RuntimeError):
    """A DMA channel reported an error or moved the wrong number of bytes."""


def _stride(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def board_present(pynq: ModuleType | None = None) -> bool:
    """True when pynq imports and sees a device (a PYNQ board)."""
    try:
        pynq = pynq or importlib.import_module("pynq")
        return len(pynq.Device.devices) > 0
    except Exception:  # ImportError off the board, RuntimeError("No Devices Found"), ...
        return False


class PynqBackend:
    name = "pynq"

    def __init__(
        self,
        meta: Metadata,
        bitfile: Path,
        hardware: HardwareInfo,
        *,
        timeout_s: float,
        pynq: ModuleType | None = None,
        download: bool = True,
    ):
        if pynq is None:
            try:
                pynq = importlib.import_module("pynq")
            except ImportError as e:
                raise BackendError(
                    "backend 'pynq' needs the pynq package, which the PYNQ board image provides; off the board use "
                    "backend='sim' or 'golden' (or `pip install flipflow[board]` on a PYNQ image)"
                ) from e
        self.pynq, self.meta, self.bitfile, self.timeout_s = pynq, meta, Path(bitfile), timeout_s
        self.in_bytes = meta.input.bytes_per_image
        self.out_words = meta.output.words_per_image
        self.in_stride, self.out_stride = _stride(self.in_bytes), _stride(self.out_words * 4) // 4
        self._capacity = 0
        self._ibuf = self._obuf = None
        self._load(hardware, download)

    # -- overlay ---------------------------------------------------------
    def _load(self, hardware: HardwareInfo, download: bool) -> None:
        try:
            self.overlay = self.pynq.Overlay(str(self.bitfile), download=download)
        except Exception as e:
            if "No Devices Found" in str(e):
                raise BackendError("pynq found no FPGA device: run on the PYNQ-Z2, or use backend='sim' or 'golden' here") from e
            raise BitstreamError(f"{self.bitfile}: pynq could not load this overlay ({e}); the .hwh must sit next to the .bit with the same name") from e
        self.names = names = {"dma": hardware.dma.instance, "accelerator": hardware.accelerator.instance}
        for role, name in names.items():
            if name not in self.overlay.ip_dict:
                raise BitstreamError(
                    f"{self.bitfile}: overlay has no IP {name!r} ({role}); it has {sorted(self.overlay.ip_dict)}. "
                    "Rebuild the bitstream with the Vivado Tcl from `make hls`."
                )
        self.dma = getattr(self.overlay, names["dma"])
        self.acc = getattr(self.overlay, names["accelerator"])
        self._check_model_id()
        self._start_free_running()
        width_limit = hardware.dma_max_transfer_bytes
        self.max_transfer = int(getattr(self.dma, "buffer_max_size", 0) or width_limit or (1 << 23) - 1)
        biggest = max(self.in_bytes, self.out_words * 4)
        if biggest > self.max_transfer:
            raise BitstreamError(
                f"{self.bitfile}: DMA {names['dma']} moves at most {self.max_transfer} bytes per transfer but one image "
                f"needs {biggest}: rebuild with a wider buffer length register (c_sg_length_width >= {biggest.bit_length()})"
            )
        self.fclk_mhz = float(self.pynq.Clocks.fclk0_mhz)

    def _check_model_id(self) -> None:
        """A bitstream that exposes a ``model_id`` register must carry this model's id."""
        regs = getattr(self.acc, "register_map", None)
        reg = getattr(regs, "model_id", None) if regs is not None else None
        if reg is None:
            return
        got = int(reg) & 0xFFFFFFFF
        if got != self.meta.model_id:
            raise BitstreamError(
                f"{self.bitfile}: the accelerator reports model id {got:#010x} but accelerator.json is for "
                f"{self.meta.model!r} (id {self.meta.model_id:#010x}): stale bitstream. Copy the .bit/.hwh built "
                "from this model (or the accelerator.json that came with this bitstream)."
            )

    def reset(self) -> None:
        """Reload the overlay: the way out of a hung DMA after a timeout."""
        self.overlay.download()
        self.dma = getattr(self.overlay, self.names["dma"])
        self.acc = getattr(self.overlay, self.names["accelerator"])
        for ch in (self.dma.sendchannel, self.dma.recvchannel):
            ch.start()  # sets the run bit again and lets the first transfer through
        self._start_free_running()

    # -- accelerator control ------------------------------------------------
    @property
    def _counted(self) -> bool:
        """ap_ctrl_hs with an image-count register: one start per batch."""
        return self.meta.hardware["control"] == "ap_ctrl_hs" and self.meta.hardware.get("count_register") is not None

    def _start_free_running(self) -> None:
        if self.meta.hardware["control"] == "ap_ctrl_hs" and not self._counted:
            self.acc.write(CTRL, AP_START | AUTO_RESTART)  # no count register: one start serves every image

    def _wait_accelerator_idle(self, when: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self.acc.read(CTRL) & AP_IDLE:
            if time.monotonic() > deadline:
                raise DMATimeoutError(
                    f"the accelerator is not idle {when} (control register {self.acc.read(CTRL):#x} after "
                    f"{self.timeout_s:g} s): it is still waiting for pixels or for result space, e.g. after an aborted "
                    "batch or with a bitstream built for another image size. Fix: call reset() to reload the overlay; "
                    "use the .bit/.hwh from the same build as accelerator.json."
                )

    def _start_batch(self, n_images: int) -> None:
        if self._counted:
            self._wait_accelerator_idle("before a new batch")
            self.acc.write(self.meta.hardware["count_register"], n_images)
            self.acc.write(CTRL, AP_START)

    # -- buffers -----------------------------------------------------------
    def _ensure_buffers(self, n: int) -> None:
        if n <= self._capacity:
            return
        self._free()
        self._ibuf = self.pynq.allocate(shape=(n * self.in_stride,), dtype=np.uint8)
        self._obuf = self.pynq.allocate(shape=(n * self.out_stride,), dtype=np.uint32)
        self._capacity = n

    def _free(self) -> None:
        for buf in (self._ibuf, self._obuf):
            if buf is not None:
                buf.freebuffer()
        self._ibuf = self._obuf = None
        self._capacity = 0

    def close(self) -> None:
        self._free()

    # -- DMA ---------------------------------------------------------------
    def _wait(self, channel: Any, what: str, image: int, n: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not channel.idle:
            if getattr(channel, "error", False):
                try:
                    channel.wait()  # pynq's wait raises a RuntimeError naming the error (slave/decode/internal)
                    detail = "error bit set"
                except RuntimeError as e:
                    detail = str(e)
                raise DMAError(
                    f"DMA {what} failed at image {image} of {n} ({detail}): call reset() and check that the "
                    "bitstream matches accelerator.json"
                )
            if time.monotonic() > deadline:
                hint = (
                    f"the accelerator did not send the {self.out_words} result words ending in TLAST"
                    if what.startswith("recv")
                    else f"the accelerator stopped accepting pixels ({self.in_bytes} bytes per image)"
                )
                raise DMATimeoutError(
                    f"DMA timeout: {what} did not finish image {image} of {n} within {self.timeout_s:g} s: {hint}. "
                    f"Likely a stale or mismatched bitstream (its input shape or class count differs from accelerator.json "
                    f"for {self.meta.model!r}) or an accelerator that is not started. Fix: use the .bit/.hwh from the same "
                    "build as accelerator.json, call reset() to reload the overlay, or raise timeout_s for a slow design."
                )
        channel.wait()  # returns at once now: pynq checks errors and invalidates a receive buffer

    def run(self, pixels: np.ndarray, n_images: int) -> StreamRun:
        self._ensure_buffers(n_images)
        ib, ob = self._ibuf, self._obuf
        ib2 = ib[: n_images * self.in_stride].reshape(n_images, self.in_stride)
        ib2[:, : self.in_bytes] = pixels.reshape(n_images, self.in_bytes)
        ib[: n_images * self.in_stride].flush()
        send, recv = self.dma.sendchannel, self.dma.recvchannel

        def image(i: int) -> Any:
            return ib[i * self.in_stride : i * self.in_stride + self.in_bytes]

        def result(i: int) -> Any:
            return ob[i * self.out_stride : i * self.out_stride + self.out_words]

        t0 = time.perf_counter()
        self._start_batch(n_images)
        send.transfer(image(0))
        for i in range(n_images):
            recv.transfer(result(i))
            if i + 1 < n_images:
                self._wait(send, "sendchannel (MM2S, images)", i, n_images)
                send.transfer(image(i + 1))
            self._wait(recv, "recvchannel (S2MM, results)", i, n_images)
            got = getattr(recv, "transferred", self.out_words * 4)
            if got != self.out_words * 4:
                raise DMAError(
                    f"the accelerator sent {got} bytes for image {i}, expected {self.out_words * 4} "
                    f"({self.meta.output.n_classes} scores + class id): the bitstream was built for another model than "
                    f"{self.meta.model!r}; use the .bit/.hwh from the same build as accelerator.json"
                )
        self._wait(send, "sendchannel (MM2S, images)", n_images - 1, n_images)
        if self._counted:
            self._wait_accelerator_idle("after its last result")
        seconds = time.perf_counter() - t0
        ob[: n_images * self.out_stride].invalidate()
        words = ob[: n_images * self.out_stride].reshape(n_images, self.out_stride)[:, : self.out_words]
        return StreamRun(np.array(words, dtype=np.uint32).reshape(-1), seconds)
