"""cocotb test of flipflow_mvu: one layer of a random network (FLIPFLOW_CASE:
``ir`` file, ``layer`` name, ``lane_bits``) on random inputs; the expected
outputs are the golden model's layer function. The weight and threshold
files are the generator's (their paths are the DUT's parameters)."""

from __future__ import annotations

import cocotb
import numpy as np
from flipflow_stream import StreamTB, pack

from flipflow import ir
from flipflow import golden


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        layer = ir.load(self.case["ir"]).layer(self.case["layer"])
        lb = self.case["lane_bits"]
        x = self.np_rng.integers(0, 1 << lb, (n, *layer.in_shape))
        if lb == 8:
            x = x.astype(np.uint8)
        out = golden.run_layer(layer, x)
        res_bits = self.params["AW"] if self.params["DATAPATH"] == "scores" else 1
        return pack(x.reshape(-1, layer.in_shape[2]), lb), pack(out, res_bits)


@cocotb.test()
async def windows(dut):
    await TB(dut).run()
