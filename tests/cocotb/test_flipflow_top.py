"""cocotb testbench for flipflow_top (generated RTL or Vitis-HLS-exported RTL).

Drives ``in_stream`` with cocotbext-axi's AxiStreamSource and reads
``out_stream`` with AxiStreamSink, both with random pause generators (idle
input cycles, output backpressure). If the top has an ``s_axi_control``
AXI-Lite port (a Vitis HLS top with ``s_axilite port=return``), the test
writes the image count and sets ap_start first; the RTL backend's top is
free-running and has none. See tests/cocotb/README.md.

Configured by environment variables set by tests/test_rtl.py:
  FLIPFLOW_CASE   .npz with ``images`` (N, H, W, C) uint8 and ``expected`` uint32 words
  FLIPFLOW_IDLE   probability of an idle input cycle (default 0)
  FLIPFLOW_STALL  probability of output backpressure per cycle (default 0)
  FLIPFLOW_SEED   random seed
  FLIPFLOW_OUT    where to save the received words (.npy)
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

VITIS_CTRL = 0x00  # ap_ctrl: bit 0 ap_start
VITIS_IMAGES = 0x10  # first scalar argument of an s_axilite top


def pauses(probability: float, rng: random.Random):
    while True:
        yield rng.random() < probability


@cocotb.test()
async def stream_images(dut):
    case = np.load(os.environ["FLIPFLOW_CASE"])
    images, expected = case["images"], case["expected"].astype(np.uint32)
    rng = random.Random(int(os.environ.get("FLIPFLOW_SEED", "0")))
    idle = float(os.environ.get("FLIPFLOW_IDLE", "0"))
    stall = float(os.environ.get("FLIPFLOW_STALL", "0"))

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "in_stream"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "out_stream"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
    if idle:
        source.set_pause_generator(pauses(idle, rng))
    if stall:
        sink.set_pause_generator(pauses(stall, rng))

    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 5)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)
    if hasattr(dut, "s_axi_control_AWVALID"):
        ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False)
        await ctrl.write_dword(VITIS_IMAGES, len(images))
        await ctrl.write_dword(VITIS_CTRL, 1)

    for image in images:
        await source.send(AxiStreamFrame(image.reshape(-1).tobytes()))
    received = []
    start = cocotb.utils.get_sim_time("ns")
    for i in range(len(images)):
        frame = await with_timeout(sink.recv(), 50_000_000, "ns")
        words = np.frombuffer(bytes(frame.tdata), dtype="<u4")
        received.append(words)
        dut._log.info("image %d: %d words, class %d", i, len(words), int(words[-1]))
    got = np.concatenate(received)
    await RisingEdge(dut.ap_clk)
    dut._log.info("%d images in %.0f cycles", len(images), (cocotb.utils.get_sim_time("ns") - start) / 10)
    if "FLIPFLOW_OUT" in os.environ:
        np.save(os.environ["FLIPFLOW_OUT"], got)
    assert got.size == expected.size, f"received {got.size} words, expected {expected.size}"
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, f"{bad.size} output words differ from the golden model, first at word {bad[0]}"
