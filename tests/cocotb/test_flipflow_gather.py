"""cocotb test of flipflow_gather: random images as the host's byte stream
(flipflow.host.stream) in, one CH-byte pixel per beat out."""

from __future__ import annotations

import cocotb
from flipflow_stream import StreamTB, pack

from flipflow.host import stream


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        images = self.np_rng.integers(0, 256, (n, 2, 3, self.params["CH"])).astype("uint8")
        return [int(b) for b in stream.pack_images(images)], pack(images, 8)


@cocotb.test()
async def gather(dut):
    await TB(dut).run()
