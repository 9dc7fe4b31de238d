"""cocotb test of flipflow_maxpool: windows of random bit maps (golden.windows,
padding 0 = -1) in, the golden max-pool of the same map out."""

from __future__ import annotations

import cocotb
from flipflow_stream import StreamTB, pack

from flipflow import ir
from flipflow import golden


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        p, c = self.params, self.case
        h, w, s, pad = c["h"], c["w"], c["s"], c["pad"]
        layer = ir.Layer(name="pool", kind="maxpool", in_shape=(h, w, p["CH"]), out_shape=(1, 1, p["CH"]),
                         kernel=p["K"], stride=s, pad=pad)
        x = self.np_rng.integers(0, 2, (n, h, w, p["CH"]))
        return pack(golden.windows(x, p["K"], s, pad, 0), 1), pack(golden.run_layer(layer, x), 1)


@cocotb.test()
async def pool(dut):
    await TB(dut).run()
