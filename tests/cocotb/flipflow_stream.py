"""Valid/ready stream drivers and the testbench base of the library module tests
(test_flipflow_<module>.py, run by tests/test_rtl_modules.py).

Every library module has the same stream ports: ``in_data/in_valid/in_ready``
and ``out_data/out_valid/out_ready`` (a beat moves at a rising edge where valid
and ready are both 1). The source inserts random idle cycles, the sink random
backpressure; a TB subclass per module turns random frames into input beats and
the expected output beats with a Python model of the module.

Configured by environment variables set by tests/test_rtl_modules.py:
  FLIPFLOW_PARAMS  JSON of the DUT's Verilog parameters
  FLIPFLOW_CASE    JSON of test settings: seed, idle, stall, frames and per-module extras
"""

from __future__ import annotations

import json
import os
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge


def pack(values: np.ndarray, bits: int) -> list[int]:
    """Rows of (..., E) integers as beats of E fields of ``bits`` bits, field 0 in the
    LSBs; negative values as two's complement."""
    rows = np.asarray(values).reshape(-1, np.asarray(values).shape[-1])
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (i * bits) for i, v in enumerate(row)) for row in rows]


class StreamSource:
    """Drives ``beats`` onto a valid/ready input, idle with probability ``idle`` per beat."""

    def __init__(self, clk, data, valid, ready, idle: float, rng: random.Random):
        self.clk, self.data, self.valid, self.ready = clk, data, valid, ready
        self.idle, self.rng = idle, rng
        self.beats: deque[int] = deque()
        valid.value = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        holding = False  # a beat is offered and must stay until it is taken
        while True:
            await RisingEdge(self.clk)
            if holding and int(self.ready.value):
                self.beats.popleft()
                holding = False
            if not holding and self.beats and self.rng.random() >= self.idle:
                self.data.value = self.beats[0]
                holding = True
            self.valid.value = int(holding)


class StreamSink:
    """Collects beats (and ``last`` flags, when the DUT has them) from a valid/ready
    output, applying backpressure with probability ``stall`` per cycle."""

    def __init__(self, clk, data, valid, ready, stall: float, rng: random.Random, last=None):
        self.clk, self.data, self.valid, self.ready, self.last = clk, data, valid, ready, last
        self.stall, self.rng = stall, rng
        self.beats: list[int] = []
        self.lasts: list[int] = []
        ready.value = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        accepting = False
        while True:
            await RisingEdge(self.clk)
            if accepting and int(self.valid.value):
                self.beats.append(int(self.data.value))
                if self.last is not None:
                    self.lasts.append(int(self.last.value))
            accepting = self.rng.random() >= self.stall
            self.ready.value = int(accepting)


class StreamTB:
    """Clock, reset, source and sink around a library module; subclasses set
    ``frames(n)`` -> (input beats, expected output beats) from their model."""

    def __init__(self, dut):
        self.dut = dut
        self.params: dict = json.loads(os.environ["FLIPFLOW_PARAMS"])
        self.case: dict = json.loads(os.environ["FLIPFLOW_CASE"])
        self.rng = random.Random(self.case["seed"])
        self.np_rng = np.random.default_rng(self.case["seed"])
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        self.source = StreamSource(dut.ap_clk, dut.in_data, dut.in_valid, dut.in_ready, self.case["idle"], self.rng)
        self.sink = StreamSink(dut.ap_clk, dut.out_data, dut.out_valid, dut.out_ready, self.case["stall"], self.rng,
                               getattr(dut, "out_last", None))

    def frames(self, n: int) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    async def run(self) -> None:
        """Stream the case's frames back to back and compare every output beat."""
        beats, expected = self.frames(self.case["frames"])
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        self.source.beats.extend(beats)
        for _ in range(self.case.get("max_cycles", 200_000)):
            await RisingEdge(self.dut.ap_clk)
            if len(self.sink.beats) >= len(expected) and not self.source.beats:
                break
        await ClockCycles(self.dut.ap_clk, 20)  # no extra beats may follow
        got = self.sink.beats
        assert len(got) == len(expected), f"{len(got)} output beats, expected {len(expected)}"
        bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
        assert not bad, f"{len(bad)} beats differ, first {bad[0]}: got {got[bad[0]]:#x}, expected {expected[bad[0]]:#x}"
