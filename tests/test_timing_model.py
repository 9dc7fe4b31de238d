"""generator/timing_model.py: conservative against yosys sta, and obeyed by the folding search.

The model is fitted so that no calibration point lies above it; on configurations
it was not fitted on it may undershoot yosys by at most TOLERANCE_NS (slow: yosys)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flipflow import ir, kinds
from flipflow.generator import cost, devices, pack, rtl, timing_model
from flipflow.generator import folding as fold
from flipflow.generator.folding import LayerConfig

TOLERANCE_NS = 0.3  # a fresh configuration may measure this much above the model
CALIBRATION = json.loads((Path(timing_model.__file__).with_name(timing_model.CALIBRATION_FILE)).read_text())


def test_calibration_covers_every_module_and_datapath_and_the_fit_is_conservative():
    modules = {p.stem for p in rtl.TEMPLATES.glob("flipflow_*.v")}
    assert set(CALIBRATION["modules"]) | {"flipflow_mvu"} == modules
    assert set(CALIBRATION["mvu"]) == set(kinds.MVU_DATAPATH.values())  # every datapath measured, sparse too
    for m in CALIBRATION["measurements"]:
        if m["module"] == "flipflow_mvu":
            estimate = timing_model.mvu_path_ns(**timing_model.mvu_shape(m["parameters"]))
        else:
            estimate = timing_model.module_path_ns(m["module"])
        assert estimate >= m["path_ns"] - 1e-6, (m["parameters"], estimate, m["path_ns"])


def test_every_unit_role_has_a_cost_model_and_a_timed_module():
    """A role kinds.py may list (kinds.UNIT_ROLES) is priced (cost.UNIT_COST) and, but for the
    matrix-vector unit's own model, timed by its module's calibration."""
    assert set(cost.UNIT_COST) == set(kinds.UNIT_ROLES)
    assert set(timing_model.MODULE_OF_ROLE) == set(kinds.UNIT_ROLES) - {"mvu"}
    assert set(timing_model.MODULE_OF_ROLE.values()) <= set(CALIBRATION["modules"])


# not in sim/calibrate_timing.py's set: other widths, depths and datapath mixes
FRESH = [("binary", 32, 288, 8, 16), ("pixels", 16, 75, 4, 25), ("scores", 10, 128, 5, 16)]


@pytest.mark.slow
@pytest.mark.parametrize("nm, pe, simd", [((1, 8), 4, 24), ((4, 16), 4, 32)])
def test_model_is_conservative_on_fresh_sparse_units(nm, pe, simd, tmp_path):
    """N:M units not in calibrate_timing.SPARSE_CONFIGS, generated as a layer's unit is."""
    from flipflow.sim import calibrate_timing

    unit = rtl.mvu_unit(calibrate_timing.sparse_conv_layer(nm, seed=1), LayerConfig(pe, simd), "in", tmp_path)
    measured = calibrate_timing.measure("flipflow_mvu", unit.parameters)["path_ns"]
    assert timing_model.mvu_path_ns(**timing_model.mvu_shape(unit.parameters)) >= measured


@pytest.mark.slow
@pytest.mark.parametrize("config", FRESH, ids=lambda c: "-".join(map(str, c)))
def test_model_is_conservative_on_fresh_configurations(config):
    from flipflow.sim import calibrate_timing

    parameters = calibrate_timing.mvu_parameters(*config)
    measured = calibrate_timing.measure("flipflow_mvu", parameters)["path_ns"]
    estimate = timing_model.mvu_path_ns(**timing_model.mvu_shape(parameters))
    assert estimate >= measured - TOLERANCE_NS, f"{config}: model {estimate:.2f} ns, yosys {measured:.2f} ns"


def test_search_keeps_every_layer_within_the_clock():
    net = ir.load_model("tfc")
    plan = fold.optimize(net, devices.get("pynq-z2"))
    assert plan.layer_path_ns.keys() == {l.name for l in net.layers}
    assert all(p <= plan.clock_ns for p in plan.layer_path_ns.values())
    report = plan.to_dict()
    assert report["meets_clock"] and all("path_ns_estimate" in l for l in report["layers"])


def test_candidates_drop_foldings_over_the_clock_and_say_when_none_is_left():
    layer = next(l for l in ir.load_model("tfc").layers if l.kind == "binary_dense")
    every = fold.candidates(layer)
    paths = sorted({timing_model.layer_path_ns(layer, c.folding) for c in every})
    assert fold.candidates(layer, clock_ns=paths[-1]) == every  # all fit: nothing dropped
    # a tighter clock drops foldings and lets in ones the Pareto front had left out (their paths
    # shorter still): step the clock below the fastest kept one until none is left
    clock = paths[0]
    for _ in range(100):
        kept = fold.candidates(layer, clock_ns=clock)
        assert kept and all(timing_model.layer_path_ns(layer, c.folding) <= clock for c in kept)
        clock = min(timing_model.layer_path_ns(layer, c.folding) for c in kept) - 0.01
        try:
            fold.candidates(layer, clock_ns=clock)
        except fold.BudgetError as e:
            assert f"layer {layer.name}: no folding meets the {clock:g} ns clock" in str(e)
            return
    raise AssertionError("the clock never ran out of foldings")


def test_layer_estimate_is_its_slowest_unit():
    net = ir.load_model("tfc")
    layer = next(l for l in net.layers if l.kind == "binary_dense")
    f = LayerConfig(4, 16)
    aw = pack.accumulator_bits(layer)
    nf, sf = -(-layer.out_ch // 4), -(-layer.fan_in // 16)
    assert timing_model.layer_path_ns(layer, f) == timing_model.mvu_path_ns("binary", 4, 16, nf, sf, aw)
