"""Timing model: each unit's longest path, estimated from its kind and LayerConfig.

Its own module rather than a part of cost.py: cost.py prices resources and is
fitted to yosys cell counts (sim/calibrate_cost.py), this estimates delay and is
fitted to yosys ``sta`` (sim/calibrate_timing.py), with its own calibration
file; the folding search asks both. The figure is the one sim/timing.py
measures: xc7 -1 cell delays plus its routing allowance per net hop.

A matrix-vector unit's path is linear in a few structural features of its
datapath (``FEATURES``): the adder of one tree node (log2 of the values it
sums, and their width), the accumulate + threshold compare (AW-bit carry
chains), the weight memory read (log2 of its depth, NF x SF words) and
whether that read comes out of a block RAM (a RAMB36's clock-to-output is
about 2 ns longer than a flip-flop's).
The coefficients are fitted per datapath and shifted up by the largest
shortfall, so the model is at or above every calibration point
(generator/timing_calibration.json; tests/test_timing_model.py checks it on
configurations it was not fitted on). The other units' paths do not depend
on the folding: each is the largest calibration measurement of its module.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from flipflow import kinds
from flipflow.errors import FlipflowError

if TYPE_CHECKING:
    from flipflow.generator.folding import LayerConfig
    from flipflow.ir import Layer

CALIBRATION_FILE = "timing_calibration.json"
FEATURES = ("one", "tree_levels", "tree_width", "acc_chains", "memory_levels", "block_read")
KIND_DATAPATH = {rtl: kind for kind, rtl in kinds.MVU_DATAPATH.items()}  # flipflow_mvu's DATAPATH -> kinds' datapath
MODULE_OF_ROLE = {"stream": "flipflow_gather", "count": "flipflow_count", "window": "flipflow_swu",
                  "pool": "flipflow_maxpool", "sum": "flipflow_global_sum"}


class TimingModelError(FlipflowError, RuntimeError):
    """The calibration file is missing or does not cover a unit."""


def features(datapath: str, pe: int, simd: int, nf: int, sf: int, aw: int, weight_ram: str = "distributed") -> list[float]:
    """FEATURES of a flipflow_mvu: constant, log2 of the values one tree node sums, the
    carry chains (CARRY4 blocks) of a tree value, of the accumulator, log2 of the weight
    memory's depth, 1 if the weights are read from block RAM (its WEIGHT_RAM)."""
    group = min(simd, kinds.MVU_TREE_GROUP[KIND_DATAPATH[datapath]])
    tree_bits = min(aw, kinds.unsigned_bits(simd)) if KIND_DATAPATH[datapath] in kinds.POPCOUNT_DATAPATHS else aw
    return [1.0, math.log2(group) if group > 1 else 0.0, math.ceil(tree_bits / 4), math.ceil(aw / 4),
            math.log2(nf * sf) if nf * sf > 1 else 0.0, 1.0 if weight_ram == "block" else 0.0]


def mvu_shape(parameters: dict) -> dict:
    """features()'s arguments from flipflow_mvu's Verilog parameters (a sparse unit folds its
    rows' kept-weight slots, N per block of M window elements)."""
    pe, simd, k = parameters["PE"], parameters["SIMD"], parameters["FAN_IN"]
    if parameters["DATAPATH"] == "sparse":  # N slots per block of M, a last partial block too (kinds' synapse_slots)
        k = parameters["SPARSE_N"] * -(-k // parameters["SPARSE_M"])
    return dict(datapath=parameters["DATAPATH"], pe=pe, simd=simd, nf=-(-parameters["OUT_CH"] // pe),
                sf=-(-k // simd), aw=parameters["AW"],
                weight_ram=parameters.get("WEIGHT_RAM", "distributed"))


@lru_cache(maxsize=1)
def _calibration(path: Path | None = None) -> dict:
    path = path or Path(__file__).with_name(CALIBRATION_FILE)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TimingModelError(f"{path}: no timing calibration", fix="run python -m flipflow.sim.calibrate_timing") from None


def note() -> str:
    """How the estimates are made; reports state it next to them."""
    hop = _calibration()["routing_ns_per_hop"]
    return (f"estimated longest path per layer (generator/timing_model.py, fitted to yosys sta of the RTL library: "
            f"xc7 -1 cell delays plus {hop} ns routing per net hop, no setup or skew); the folding search keeps "
            f"every layer within the clock period")


def mvu_path_ns(datapath: str, pe: int, simd: int, nf: int, sf: int, aw: int, weight_ram: str = "distributed") -> float:
    """Estimated longest path of a flipflow_mvu (DATAPATH ``datapath``), routing allowance included."""
    weights = _calibration()["mvu"][datapath]["weights"]
    return float(sum(w * x for w, x in zip(weights, features(datapath, pe, simd, nf, sf, aw, weight_ram))))


def module_path_ns(module: str) -> float:
    """Estimated longest path of a library module whose timing does not depend on the folding."""
    try:
        return float(_calibration()["modules"][module])
    except KeyError:
        raise TimingModelError(f"no timing calibration for {module}", fix="run python -m flipflow.sim.calibrate_timing") from None


def layer_path_ns(layer: Layer, config: LayerConfig | None) -> float:
    """The longest estimated path over the units of ``layer`` at ``config`` (kinds.py's unit chain)."""
    kind = kinds.of(layer)
    paths = []
    for unit in kind.units(layer, config):
        if unit.role == "mvu":
            assert isinstance(kind, kinds.MatrixKind) and config is not None
            from flipflow.generator import cost, pack  # they import folding, which imports this module

            datapath = kinds.MVU_DATAPATH[kind.datapath]
            nf, sf = -(-layer.out_ch // config.pe), kind.synapse_folds(layer, config.simd)
            aw = pack.accumulator_bits(layer)
            weight_ram = cost.weight_memory(layer, config).style
            paths.append(mvu_path_ns(datapath, config.pe, config.simd, nf, sf, aw, weight_ram))
        elif unit.role != "stream" or layer.in_ch > 1:  # a one-channel stream needs no gather unit
            paths.append(module_path_ns(MODULE_OF_ROLE[unit.role]))
    return max(paths, default=0.0)
