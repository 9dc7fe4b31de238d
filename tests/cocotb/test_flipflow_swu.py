"""cocotb test of flipflow_swu: random maps of CH channels x LB bits per pixel,
frames back to back; the expected windows are golden.windows (padding 0)."""

from __future__ import annotations

import cocotb
import numpy as np
from flipflow_stream import StreamTB, pack

from flipflow import golden


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        p, lb = self.params, self.case["lane_bits"]
        ch = p["EW"] // lb
        x = self.np_rng.integers(0, 1 << lb, (n, p["H"], p["W"], ch))
        win = golden.windows(x, p["K"], p["S"], p["PAD"], 0)  # (n, HO, WO, K*K*CH)
        return pack(x, lb), pack(win, lb)


@cocotb.test()
async def windows(dut):
    await TB(dut).run()
