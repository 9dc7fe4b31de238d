"""Helpers for the host-driver tests: a small realistic IR, a build folder,
and a stand-in for the ``pynq`` module.

THE STAND-IN IS NOT THE BOARD. It follows pynq's documented interface
(pynq 3.x/4.0: ``Overlay`` with ``ip_dict`` and attribute access to IP,
``allocate`` returning ndarray-subclass buffers with ``physical_address``,
``flush``, ``invalidate``, ``freebuffer``, slices that keep their own
physical address; the AXI DMA driver's ``sendchannel``/``recvchannel``
with ``transfer(array)``, ``wait()``, ``idle``, ``running``, ``error``,
``transferred``, ``start()``; ``register_map``; ``Clocks.fclk0_mhz``) so
that the driver's own logic - buffer layout, cache maintenance, DMA
sequencing, timeouts and error paths - is exercised off the board.

Cache coherence is modelled: a buffer's numpy contents are the CPU view,
and the "DRAM" the DMA reads and writes is a separate byte array that only
``flush`` (CPU -> DRAM) and ``invalidate`` (DRAM -> CPU) copy between.
A driver that forgets either gets stale data here as on the board.

The accelerator behind the DMA is the golden model speaking the stream
contract (host/stream.py): it consumes pixels from MM2S, and after a
whole image emits n_classes scores and the class id with TLAST on S2MM.
A simple-mode S2MM transfer completes at the first TLAST, like the real IP.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np

from flipflow import ir
from flipflow.host import stream
from flipflow.host import write_metadata
from flipflow import golden

# -- a small realistic network (BN calibrated on real images) -----------------

_NET_CACHE: dict[str, ir.Network] = {}


def small_fashion_net(train_images: np.ndarray) -> ir.Network:
    """conv-pool-conv-pool-dense-dense on 28x28x1: exported from a calibrated Brevitas model."""
    if "fashion" not in _NET_CACHE:
        from flipflow.training.blocks import Arch, LayerSpec as L
        from flipflow.training.datasets import FASHION_CLASSES
        from flipflow.training.export import export
        from flipflow.training.synthetic import calibrated_model

        arch = Arch("host_small", (28, 28, 1), list(FASHION_CLASSES), [
            L("input_conv", 8, 3, 1, 1),
            L("maxpool", 0, 2, 2, 0),
            L("binary_conv", 16, 3, 1, 1),
            L("maxpool", 0, 2, 2, 0),
            L("binary_dense", 32),
            L("output_dense", 10),
        ])
        model = calibrated_model(arch, train_images[:512], seed=7)
        _NET_CACHE["fashion"] = export(model, "host_small", "fashion_mnist")
    return _NET_CACHE["fashion"]


def make_build(net: ir.Network, folder: Path, hwh: bool = True, **meta_kw) -> Path:
    """A build folder as `flipflow hls` + Vivado leave it: metadata, IR, and a .bit/.hwh pair."""
    folder.mkdir(parents=True, exist_ok=True)
    write_metadata(net, folder, **meta_kw)
    net.save(folder / "model.ir.npz")
    (folder / "flipflow.bit").write_bytes(b"stand-in bitstream, not loadable by a real board")
    if hwh:
        (folder / "flipflow.hwh").write_text(hwh_text())
    return folder


def hwh_text(accelerator: str = "flipflow_top_0", dma: str = "axi_dma", mm2s_width: int = 8, s2mm_width: int = 32,
             length_width: int = 26, with_dma: bool = True, with_acc: bool = True) -> str:
    """A minimal hardware handoff in Vivado's .hwh schema (the elements and attributes pynq reads)."""
    modules = ['    <MODULE FULLNAME="/processing_system7_0" INSTANCE="processing_system7_0" MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5"/>']
    if with_acc:
        modules.append(f'    <MODULE FULLNAME="/{accelerator}" INSTANCE="{accelerator}" MODTYPE="flipflow_top" VLNV="flipflow.org:hls:flipflow_top:1.0"/>')
    if with_dma:
        modules.append(
            f'    <MODULE FULLNAME="/{dma}" INSTANCE="{dma}" MODTYPE="axi_dma" VLNV="xilinx.com:ip:axi_dma:7.1">\n'
            '      <PARAMETERS>\n'
            f'        <PARAMETER NAME="c_m_axis_mm2s_tdata_width" VALUE="{mm2s_width}"/>\n'
            f'        <PARAMETER NAME="c_s_axis_s2mm_tdata_width" VALUE="{s2mm_width}"/>\n'
            f'        <PARAMETER NAME="c_sg_length_width" VALUE="{length_width}"/>\n'
            '        <PARAMETER NAME="c_include_sg" VALUE="0"/>\n'
            '      </PARAMETERS>\n'
            '    </MODULE>'
        )
    return '<?xml version="1.0" encoding="UTF-8"?>\n<EDKSYSTEM>\n  <MODULES>\n' + "\n".join(modules) + "\n  </MODULES>\n</EDKSYSTEM>\n"


# -- the pynq stand-in ----------------------------------------------------------

class _Memory:
    """Physically contiguous "DRAM" shared by every buffer of one stand-in."""

    def __init__(self) -> None:
        self.dram = bytearray()
        self.reads = 0  # bytes the DMA read from DRAM

    def reserve(self, nbytes: int) -> int:
        base = len(self.dram) + 0x1000_0000
        self.dram.extend(bytes(nbytes + (-nbytes % 64)))
        return base

    def view(self, address: int, nbytes: int) -> memoryview:
        off = address - 0x1000_0000
        return memoryview(self.dram)[off : off + nbytes]


class StandInBuffer(np.ndarray):
    """pynq.PynqBuffer stand-in: an ndarray whose DRAM copy changes only on flush/invalidate."""

    def __array_finalize__(self, obj):
        if isinstance(obj, StandInBuffer) and getattr(obj, "memory", None) is not None:
            self.memory = obj.memory
            self.device_address = obj.device_address + (self.__array_interface__["data"][0] - obj.__array_interface__["data"][0])
            self.freed = obj.freed
        else:
            self.memory = None

    @property
    def physical_address(self) -> int:
        return self.device_address

    def flush(self) -> None:
        self.memory.view(self.device_address, self.nbytes)[:] = np.ascontiguousarray(self).view(np.uint8).reshape(-1).tobytes()

    def invalidate(self) -> None:
        raw = np.frombuffer(bytes(self.memory.view(self.device_address, self.nbytes)), dtype=self.dtype)
        np.ndarray.__setitem__(self, Ellipsis, raw.reshape(self.shape))

    def freebuffer(self) -> None:
        self.freed[0] = True

    def close(self) -> None:
        pass


class StandInAccelerator:
    """The stream contract in front of the golden model, with fault injection.

    Control as the HLS top (hls_templates/hls): ap_ctrl_hs at 0x00 (bit 0
    ap_start, bit 2 ap_idle, bit 7 auto_restart) and the image count at 0x10.
    It takes pixels only while started, and goes idle after ``count`` images.
    """

    def __init__(self, net: ir.Network, register_model_id: int | None = None):
        self.net = net
        self.pixels = bytearray()
        self.results: list[np.ndarray] = []  # pending output words, one array per image (TLAST at its end)
        self.stalled = False  # fault: never produces results (e.g. a bitstream for another input size)
        self.corrupt_class_id = False  # fault: sends a class id that is not the argmax
        self.refuse_pixels = False  # fault: in_stream never ready (a hung pipeline)
        self.regs = {0x10: 0}
        self.remaining = 0  # images left in the current run
        self.free_running = False
        self.starts = 0
        regs = types.SimpleNamespace(CTRL=0)
        if register_model_id is not None:
            regs.model_id = register_model_id
        self.register_map = regs

    def write(self, offset: int, value: int) -> None:
        if offset == 0x00:
            if value & 0x01 and self.idle:
                self.starts += 1
                self.free_running = bool(value & 0x80)
                self.remaining = self.regs[0x10]
        else:
            self.regs[offset] = value

    def read(self, offset: int) -> int:
        if offset == 0x00:
            return 0x04 if self.idle else 0x01
        return self.regs.get(offset, 0)

    @property
    def idle(self) -> bool:
        """Done with the run: every counted image's result has left (not free-running)."""
        return not self.free_running and self.remaining == 0 and not self.results

    @property
    def accepting(self) -> bool:
        return not self.refuse_pixels and (self.free_running or self.remaining > 0)

    def accept(self, data: bytes) -> None:
        self.pixels.extend(data)
        per = stream.words_per_image_in(self.net.input_shape)
        while len(self.pixels) >= per and not self.stalled and self.accepting:
            img = np.frombuffer(bytes(self.pixels[:per]), np.uint8).reshape((1, *self.net.input_shape))
            del self.pixels[:per]
            words = stream.pack_output(golden.scores(self.net, img))
            if self.corrupt_class_id:
                words[-1] = (words[-1] + 1) % len(self.net.classes)
            self.results.append(words)
            if not self.free_running:
                self.remaining -= 1


class StandInChannel:
    """pynq.lib.dma._SDMAChannel stand-in (simple mode)."""

    def __init__(self, dma: "StandInDMA", tx: bool):
        self.dma, self.tx = dma, tx
        self._running = False
        self._first_transfer = True
        self._active = None
        self._nbytes = 0
        self._busy = False
        self.transferred = 0
        self.log: list[tuple[str, int, int]] = []
        self.start()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def error(self) -> bool:
        return False

    def start(self) -> None:
        self._running = True
        self._first_transfer = True

    def stop(self) -> None:
        self._running = False

    def transfer(self, array: StandInBuffer, start: int = 0, nbytes: int = 0) -> None:
        if not self.running:
            raise RuntimeError("DMA channel not started")
        if not self.idle and not self._first_transfer:
            raise RuntimeError("DMA channel not idle")
        nbytes = nbytes or array.nbytes - start
        if nbytes > self.dma.buffer_max_size:
            raise ValueError(f"Transfer size is {nbytes} bytes, which exceeds the maximum DMA buffer size {self.dma.buffer_max_size}.")
        if (array.physical_address + start) % 4:
            raise RuntimeError("DMA does not support unaligned transfers; Starting address must be aligned to 4 bytes.")
        if self.tx and self.dma.cache_ops:
            array.flush()  # pynq's sendchannel flushes the array it sends
        self._active, self._nbytes, self._busy = array, nbytes, True
        self._address = array.physical_address + start
        self._first_transfer = False
        self.log.append(("transfer", self._address, nbytes))
        self.dma.step()

    @property
    def idle(self) -> bool:
        self.dma.step()
        return not self._busy

    def wait(self) -> None:
        if not self.running:
            raise RuntimeError("DMA channel not started")
        if self.dma.hang_forever and self._busy:
            raise AssertionError("stand-in: pynq's wait() would spin forever here; the driver must poll idle with a deadline")
        while not self.idle:
            pass
        if not self.tx and self.dma.cache_ops:
            self._active.invalidate()  # pynq's recvchannel invalidates after the transfer


class StandInDMA:
    """pynq.lib.dma.DMA stand-in: MM2S feeds the accelerator, S2MM drains it."""

    def __init__(self, acc: StandInAccelerator, memory: _Memory, buffer_max_size: int = (1 << 26) - 1):
        self.acc, self.memory, self.buffer_max_size = acc, memory, buffer_max_size
        self.cache_ops = True  # False: a DMA driver that leaves flush/invalidate to the caller
        self.hang_forever = True  # pynq's wait() spins while busy; the driver must never call it then
        self.sendchannel = StandInChannel(self, tx=True)
        self.recvchannel = StandInChannel(self, tx=False)

    def step(self) -> None:
        """Advance the hardware: MM2S hands its bytes over, S2MM takes one result up to TLAST."""
        send, recv = getattr(self, "sendchannel", None), getattr(self, "recvchannel", None)
        if send is None or recv is None:
            return
        if send._busy and self.acc.accepting:
            data = bytes(self.memory.view(send._address, send._nbytes))
            self.memory.reads += len(data)
            self.acc.accept(data)
            send.transferred, send._busy = send._nbytes, False
        if recv._busy and self.acc.results:
            words = self.acc.results.pop(0)
            raw = words.astype("<u4").tobytes()
            n = min(len(raw), recv._nbytes)  # S2MM stops at TLAST or when the buffer is full
            self.memory.view(recv._address, n)[:] = raw[:n]
            recv.transferred, recv._busy = n, False


class StandInOverlay:
    def __init__(self, module: "types.ModuleType", bitfile: str, download: bool = True):
        self.bitfile = bitfile
        self._module = module
        self.downloads = 0
        if module.fail_load:
            raise RuntimeError(module.fail_load)
        self.download()

    def download(self) -> None:
        m = self._module
        self.downloads += 1
        acc = StandInAccelerator(m.net, m.register_model_id)
        self.ip_dict = {m.acc_name: {"type": "flipflow.org:hls:flipflow_top:1.0"}, m.dma_name: {"type": "xilinx.com:ip:axi_dma:7.1"}}
        setattr(self, m.acc_name, acc)
        setattr(self, m.dma_name, StandInDMA(acc, m.memory, m.buffer_max_size))
        m.overlay = self


def standin_pynq(net: ir.Network, *, register_model_id: int | None = None, acc_name: str = "flipflow_top_0",
                 dma_name: str = "axi_dma", buffer_max_size: int = (1 << 26) - 1, fail_load: str = "") -> types.ModuleType:
    """A module object that stands in for ``pynq`` (see this file's docstring)."""
    m = types.ModuleType("pynq_standin")
    m.net, m.register_model_id, m.acc_name, m.dma_name = net, register_model_id, acc_name, dma_name
    m.buffer_max_size, m.fail_load = buffer_max_size, fail_load
    m.memory = _Memory()
    m.allocated: list[StandInBuffer] = []
    m.overlay = None

    def allocate(shape, dtype="u4", target=None, **kwargs):
        arr = np.zeros(shape, dtype)
        buf = arr.view(StandInBuffer)
        buf.memory, buf.freed = m.memory, [False]
        buf.device_address = m.memory.reserve(arr.nbytes)
        m.allocated.append(buf)
        return buf

    m.allocate = allocate
    m.Overlay = lambda bitfile, download=True, **kw: StandInOverlay(m, bitfile, download)
    m.Device = types.SimpleNamespace(devices=["stand-in device"])
    m.Clocks = types.SimpleNamespace(fclk0_mhz=100.0)
    return m
