"""cocotb test of flipflow_mvu: one layer of a random network (FLIPFLOW_CASE:
``ir`` file, ``layer`` name, ``lane_bits``) on random inputs; the expected
outputs are the golden model's layer function. The weight and threshold
files are the generator's (their paths are the DUT's parameters).

With ``cycles_file`` in the case the test also writes the cycles from reset to
the last output beat, the unit's fold slots (cycles it issues a fold or aborts a
group) and those slots by the cycle model (generator/earlyexit.py: a group
decided early costs min(SF, folds + latency)), for tests/test_rtl_modules.py to
compare early exit on and off."""

from __future__ import annotations

import json

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from flipflow_stream import StreamTB, pack

from flipflow import golden, ir, kinds
from flipflow.generator import earlyexit
from flipflow.generator import pack as layout
from flipflow.generator.folding import LayerConfig


class TB(StreamTB):
    def frames(self, n: int) -> tuple[list[int], list[int]]:
        layer = ir.load(self.case["ir"]).layer(self.case["layer"])
        lb = self.case["lane_bits"]
        x = self.np_rng.integers(0, 1 << lb, (n, *layer.in_shape))
        if lb == 8:
            x = x.astype(np.uint8)
        out = golden.run_layer(layer, x)
        res_bits = self.params["AW"] if self.params["DATAPATH"] == "scores" else 1
        self.expected_beats = int(np.prod(out.shape[:-1]))
        if "cycles_file" in self.case:
            self.model_slots = self.fold_slots(layer, x)
        pixels = x.reshape(-1, layer.in_shape[2])
        if self.params.get("CENTRED"):  # each pixel with its ones count, as flipflow_count sends it
            pixels = layout.with_counts(layer, pixels)
        return pack(pixels, lb), pack(out, res_bits)

    def fold_slots(self, layer: ir.Layer, x: np.ndarray) -> int:
        """The unit's fold slots for these frames by the cycle model."""
        p = self.params
        config = LayerConfig(p["PE"], p["SIMD"], early_exit=bool(p.get("EARLY_EXIT", 0)))
        kind = kinds.matrix(layer)
        model = earlyexit.fold_model(layer, config)
        g = model.geometry
        folds, _ = earlyexit.decide(model, kind.patches(layer, x).reshape(-1, g.cols))
        groups = earlyexit.group_folds(folds, g)
        slots = earlyexit.hardware_group_cycles(groups, g, config) if config.early_exit else np.full_like(groups, g.sf)
        return int(slots.sum())

    async def count(self) -> None:
        """Cycles from the end of reset to the last output beat, and the fold slots."""
        while str(self.dut.ap_rst_n.value) != "1":  # X before the testbench drives it
            await RisingEdge(self.dut.ap_clk)
        self.cycles = self.slots = 0
        while len(self.sink.beats) < self.expected_beats:
            await RisingEdge(self.dut.ap_clk)
            self.cycles += 1
            self.slots += int(self.dut.issue.value) | int(self.dut.abort.value)


@cocotb.test()
async def windows(dut):
    tb = TB(dut)
    if "cycles_file" in tb.case:
        tb.expected_beats = 1 << 62
        counter = cocotb.start_soon(tb.count())
        await tb.run()
        await counter
        with open(tb.case["cycles_file"], "w") as f:
            json.dump({"cycles": tb.cycles, "slots": tb.slots, "model_slots": tb.model_slots}, f)
    else:
        await tb.run()
