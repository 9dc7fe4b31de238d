"""report.json of `flipflow hls`: what was built, how fast it should run, and
whether the C simulation agreed with the golden model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flipflow import atomic, kinds
from flipflow.generator import cost, devices, hls_model
from flipflow.generator.folding import Folding, Plan, timing_note
from flipflow.ir import Network


def layer_table(net: Network, folding: Folding) -> list[dict[str, Any]]:
    rows = []
    for l in net:
        f = folding.get(l.name)
        cycles = kinds.of(l).cycles(l, f)
        rows.append(dict(name=l.name, kind=l.kind, in_ch=l.in_ch, out_ch=l.out_ch,
                         k=l.kernel, stride=l.stride, pad=l.pad,
                         pe=f.pe if f else None, simd=f.simd if f else None,
                         weights_in=cost.weight_memory(l, f).style if f else None, cycles=int(cycles)))
    return rows


def hls_report(net: Network, plan: Plan, budget: devices.Budget, folding_source: str, accuracy: float,
               test_images: int, csim: dict[str, Any], vitis_hls: str, project: Path,
               seconds: dict[str, float]) -> dict[str, Any]:
    layers = [{**row, "path_ns_estimate": round(plan.layer_path_ns[row["name"]], 2)}
              for row in layer_table(net, plan.folding)]
    slowest = max(layers, key=lambda r: r["cycles"])
    cycles = kinds.frame_cycles(net, plan.folding)
    mhz = budget.device.mhz
    limits = budget.limits()
    return {
        "model": net.name,
        "dataset": net.dataset,
        "accuracy": accuracy,
        "accuracy_images": test_images,
        "binary_ops": net.binary_ops,
        "layers": layers,
        "folding_source": folding_source,
        "bottleneck_layer": slowest["name"],
        "cycles_per_frame_estimate": cycles,  # kinds.frame_cycles: the RTL backend's (simulated) figure
        # the dataflow model of the generated HLS top at the same folding (generator/hls_model.py)
        "cycles_per_frame_hls_model": hls_model.frame_cycles(net, plan.folding),
        "hls_processes": [dict(layer=p.layer, kernel=p.kernel, cycles=p.cycles)
                          for p in hls_model.processes(net, plan.folding)],
        "fps_at_100mhz_estimate": mhz * 1e6 / cycles,
        "budget": budget.to_dict(),
        "resources": plan.totals,
        "fits": all(plan.totals[k] <= limits[k] for k in limits),
        "clock_ns": plan.clock_ns,
        "meets_clock": all(p <= plan.clock_ns for p in plan.layer_path_ns.values()),
        "timing_note": timing_note(),
        "utilisation_after_shell": budget.utilisation(plan.totals),
        "csim": csim,
        "vitis_hls": vitis_hls,
        "hls_project": str(project),
        "seconds": seconds,
    }
