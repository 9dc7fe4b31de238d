"""cocotb test of flipflow_count: random pixels of CH bits in (``density``: the share of
1 bits, so that all-zero and all-one pixels occur), each with its ones count appended
above it out (flipflow.generator.pack.with_counts, the centred sparse layer's stream)."""

from __future__ import annotations

import cocotb
import numpy as np
from flipflow_stream import StreamTB, pack

from flipflow import ir
from flipflow.generator import pack as layout


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        ch = self.params["CH"]
        layer = ir.Layer(name="s", kind="sparse_conv", in_shape=(3, 4, ch), out_shape=(3, 4, 1), nm=(1, 2), centred=True)
        density = self.np_rng.choice([0.0, 0.5, 1.0], (n, 3, 4, 1), p=[0.1, 0.8, 0.1])
        x = (self.np_rng.random((n, 3, 4, ch)) < density).astype(np.uint8)
        return pack(x, 1), pack(layout.with_counts(layer, x), 1)


@cocotb.test()
async def count(dut):
    await TB(dut).run()
