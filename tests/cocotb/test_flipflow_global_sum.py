"""cocotb test of flipflow_global_sum: random signed IN_BITS-bit scores of PIXELS
pixels per frame; the expected sums are the golden global sum (wrapping at 32 bits)."""

from __future__ import annotations

import cocotb
from flipflow_stream import StreamTB, pack

from flipflow import ir
from flipflow import golden


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        p = self.params
        half = 1 << (p["IN_BITS"] - 1)
        layer = ir.Layer(name="sum", kind="global_sum", in_shape=(1, p["PIXELS"], p["CH"]), out_shape=(1, 1, p["CH"]))
        x = self.np_rng.integers(-half, half, (n, 1, p["PIXELS"], p["CH"]))
        return pack(x, p["IN_BITS"]), pack(golden.run_layer(layer, x), 32)


@cocotb.test()
async def sums(dut):
    await TB(dut).run()
