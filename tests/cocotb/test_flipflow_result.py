"""cocotb test of flipflow_result: random signed scores (ties included) in; the
host's output words (flipflow.host.stream.pack_output: scores, then the class
id) out, with out_last on every class id."""

from __future__ import annotations

import cocotb
import numpy as np
from flipflow_stream import StreamTB, pack

from flipflow.host import stream


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        p = self.params
        half = 1 << (p["IN_BITS"] - 1)
        scores = self.np_rng.integers(-half, half, (n, p["CH"]))
        scores[::2, -1] = scores[::2].max(axis=1)  # a tie: the lowest index must win
        return pack(scores, p["IN_BITS"]), [int(w) for w in stream.pack_output(scores)]


@cocotb.test()
async def words(dut):
    tb = TB(dut)
    await tb.run()
    per = tb.params["CH"] + 1
    assert tb.sink.lasts == [int(i % per == per - 1) for i in range(len(tb.sink.lasts))], "out_last off the class id"
