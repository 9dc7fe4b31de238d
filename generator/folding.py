"""Per-layer hardware options and the folding search.

``LayerConfig`` is the one per-layer config of the hardware: how many
processing elements (PE, output channels in parallel) and SIMD lanes (input
terms in parallel) a layer's matrix-vector unit gets. A ``Folding`` maps layer
names to configs and is saved as folding.json. To add an option, add a field
with a default here (docs/DESIGN.md, "Adding a per-layer option").

Cycles come from the one cycle model in kinds.py: a matrix-vector unit takes
    max(ceil(out_ch / PE) * ceil(K / SIMD), beats per vector) * output_pixels
where K is the fan-in (k * k * in_ch), or a sparse kind's N x ceil(K / M) kept-weight
slots (SIMD then a multiple of N); widths that PE or SIMD do not divide
are padded (generator/pack.py), so no power of two is assumed. The search
only considers foldings whose units' estimated longest path
(generator/timing_model.py) fits the device's clock period.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from flipflow import atomic, kinds
from flipflow.generator import devices
from flipflow.errors import FlipflowError
from flipflow.ir import Layer, Network, remembered


class FoldingError(FlipflowError, ValueError):
    """A folding the hardware cannot implement; the message names the layer."""


RAM_STYLES = ("auto", "distributed", "block")


@dataclass(frozen=True)
class LayerConfig:
    """Hardware options of one layer (only layers with weights have one)."""

    pe: int = 1
    simd: int = 1
    # where the weight memory lives: "distributed" (LUTs), "block" (BRAM) or "auto"
    # (generator.cost.weight_memory decides by depth); the RTL states it as rom_style
    ram_style: str = "auto"
    # the XNOR-popcount unit moves a PE row group on as soon as all its rows are decided
    # (O3BNN-R); thresholded binary-input layers only (docs/DESIGN.md, "Early exit: hardware")
    early_exit: bool = False


Folding = dict[str, LayerConfig]


def check(net: Network, folding: Folding) -> None:
    """Every layer with weights has a config within its widths, and no other layer has one."""
    from flipflow.generator import pack  # pack imports this module

    names = {l.name for l in net.layers if l.has_weights}
    unknown = sorted(set(folding) - names)
    if unknown:
        raise FoldingError(f"folding names layers the network does not have: {', '.join(unknown)} "
                           f"(layers with weights: {', '.join(sorted(names))})")
    for layer in net.layers:
        if not layer.has_weights:
            continue
        f = folding.get(layer.name)
        if f is None:
            raise FoldingError(f"layer {layer.name}: no folding given (add it to the folding JSON)")
        if not 1 <= f.pe <= layer.out_ch:
            raise FoldingError(f"layer {layer.name}: PE={f.pe} must be in [1, out_ch={layer.out_ch}]")
        simd_error = pack.simd_error(layer, f.simd)
        if simd_error:
            raise FoldingError(f"layer {layer.name}: {simd_error}")
        if f.ram_style not in RAM_STYLES:
            raise FoldingError(f"layer {layer.name}: ram_style={f.ram_style!r} must be one of {', '.join(RAM_STYLES)}")
        if f.early_exit and not can_exit_early(layer):
            raise FoldingError(f"layer {layer.name}: early_exit is only built for thresholded XNOR-popcount layers, "
                               f"not {layer.kind}", fix=f'set "early_exit": false for layer {layer.name}')


def can_exit_early(layer: Layer) -> bool:
    """Whether the hardware builds early exit for ``layer``: a thresholded XNOR-popcount
    matrix-vector unit (the 8-bit pixel layer's signed bound is analysed, not built)."""
    kind = kinds.of(layer)
    return isinstance(kind, kinds.MatrixKind) and kind.thresholded and kind.datapath == "xnor"


def early_exit_pays(layer: Layer, config: LayerConfig) -> bool:
    """Whether early exit can save a cycle at this folding: a group decided at its first
    fold still takes ACC + 2 = pipeline stages + 3 issue cycles (docs/DESIGN.md, "Early
    exit: hardware"), so SF must be larger."""
    from flipflow.generator import cost  # cost imports this module

    return can_exit_early(layer) and math.ceil(layer.fan_in / config.simd) > cost.mvu_pipeline_stages("xnor", config.simd) + 3


def ideal_cycles(layer: Layer, config: LayerConfig, work_left: float) -> int:
    """Cycles of ``layer`` if its matrix-vector unit skipped all but ``work_left`` of its
    folds at no cost, yet still read every input beat; its other units keep their cycles.
    No unit is built like this: it bounds what any early exit could reach."""
    kind = kinds.matrix(layer)
    pixels = layer.out_shape[0] * layer.out_shape[1]
    floor = kind.beats_per_vector(layer) * pixels
    units = kinds.of(layer).units(layer, config)
    return max(max(math.ceil(u.cycles * work_left), floor) if u.role == "mvu" else u.cycles for u in units)


def with_early_exit(net: Network, folding: Folding) -> Folding:
    """``folding`` with early exit on in every layer where it can pay (``early_exit_pays``)."""
    exits = {l.name for l in net.layers if l.has_weights and early_exit_pays(l, folding[l.name])}
    return {name: replace(f, early_exit=True) if name in exits else f for name, f in folding.items()}


def minimal(net: Network) -> Folding:
    """PE = 1 and the smallest legal SIMD (1, a sparse layer's N) everywhere: smallest, slowest."""
    return {l.name: LayerConfig(1, kinds.matrix(l).simd_step(l)) for l in net.layers if l.has_weights}


def save(folding: Folding, path: Path) -> None:
    atomic.write_json(path, {k: asdict(v) for k, v in folding.items()}, indent=1)


def load(path: Path) -> Folding:
    """Read a folding.json {layer: {option: value}}; FoldingError says what is wrong with it.
    Options left out take LayerConfig's defaults; unknown ones are refused."""
    path = Path(path)
    types = {f.name: type(f.default) for f in fields(LayerConfig)}
    known = sorted(types)
    fix = f'give a JSON file {{layer: {{"pe": P, "simd": S}}}} (options: {", ".join(known)}), e.g. written by `flipflow fold`'
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FoldingError(f"{path}: no such folding file", fix) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FoldingError(f"{path}: not a folding JSON ({e})", fix) from e
    if not isinstance(data, dict):
        raise FoldingError(f"{path}: not a folding JSON (an object of layers expected)", fix)
    folding = {}
    for name, options in data.items():
        if not (isinstance(options, dict) and set(options) <= set(known)
                and all(type(x) is types[k] for k, x in options.items())):
            kinds_of = ", ".join(f"{k} ({t.__name__})" for k, t in types.items())
            raise FoldingError(f"{path}: layer {name}: options must be {kinds_of}, got {options!r}", fix)
        folding[name] = LayerConfig(**options)
    return folding


def default(net: Network, budget: devices.Budget | None = None) -> Folding:
    """The folding both backends use when none is given: the fastest one inside the budget
    (default ``devices.budget()``: 85% of the PYNQ-Z2 less its DMA shell and the model reserve), then the cheapest."""
    return optimize(net, (budget or devices.budget()).as_device()).folding


def check_fits(net: Network, folding: Folding, budget: devices.Budget) -> Plan:
    """The plan of a given folding; BudgetError naming the resource, its excess and the
    layer that uses most of it when the folding does not fit the budget."""
    plan = make_plan(net, folding, budget.as_device(), objective="given folding")
    limits = budget.limits()
    over = {k: plan.totals[k] - limits[k] for k in RESOURCE_KEYS if plan.totals[k] > limits[k] + 1e-9}
    if over:
        worst = max(over, key=lambda k: over[k] / max(limits[k], 1.0))
        layer = max(plan.layer_resources, key=lambda n: plan.layer_resources[n][worst])
        raise BudgetError(
            f"{net.name} at this folding needs {plan.totals[worst]:,.1f} {worst}, {over[worst]:,.1f} over the "
            f"{limits[worst]:,.1f} of the budget ({plan.device['name']}); layer {layer} alone uses "
            f"{plan.layer_resources[layer][worst]:,.1f}",
            fix=f"lower layer {layer}'s PE or SIMD, or leave --folding out for the fastest folding in the budget",
        )
    return plan


# -- folding search ---------------------------------------------------------------
#
# For a device budget, pick (PE, SIMD) per layer so that the slowest layer is as
# fast as possible (or meets a target), then spend as little as possible on the
# others: a faster-than-needed layer only costs area in a pipeline.
#
# Per layer only Pareto-optimal candidates matter. For a cycle bound T the
# feasibility question is a multiple-choice knapsack in four resources; it is
# solved by merging the layers' Pareto fronts of summed resource vectors,
# cheapest (in budget shares) first. Exact while the fronts stay under
# FRONT_LIMIT / OPTION_LIMIT (small networks: tested against brute force);
# beyond that they are thinned to their cheapest points and the plan says
# ``optimal: false``. A thinned front can miss the combination that fits a
# tight budget, so a bound found infeasible on thinned fronts is tried again
# with WIDE_LIMITS before it counts as infeasible. Feasibility grows with T, so
# the smallest feasible T is found by bisection over the distinct cycle counts
# the candidates reach.

RESOURCE_KEYS = ("LUT", "FF", "BRAM36", "DSP")
FRONT_LIMIT = 1200  # partial sums kept per step; beyond it the front is thinned (no longer proven optimal)
OPTION_LIMIT = 96  # cheapest Pareto candidates per layer under a bound, same caveat
WIDE_LIMITS = (4000, 200)  # (front, option) limits of the second try of a bound the thinned fronts missed


class BudgetError(FoldingError):
    """The model cannot fit the device at any folding, or cannot reach the target rate."""


@dataclass(frozen=True)
class Candidate:
    folding: LayerConfig
    cycles: int
    resources: tuple[float, float, float, float]  # RESOURCE_KEYS order


@dataclass
class Plan:
    """A chosen folding with its predicted cycles, resources and bottleneck."""

    folding: Folding
    layer_cycles: dict[str, int]
    layer_resources: dict[str, dict[str, float]]
    device: dict
    objective: str
    optimal: bool  # False when a Pareto front had to be thinned
    result_cycles: int  # the result unit after the last layer (kinds.result_cycles)
    result_resources: dict[str, float]  # and its resources (cost.result_unit), counted in the totals
    weights_in: dict[str, str]  # per layer: where its weights go ("distributed" or "block", "auto" resolved)
    layer_path_ns: dict[str, float]  # longest estimated path of each layer's units (generator/timing_model.py)
    next_step: str | None = None  # the fastest search: what the next faster rate would need (why it stops)

    @property
    def cycles_per_frame(self) -> int:
        """The pipeline's slowest unit: kinds.frame_cycles of this folding."""
        return max(*self.layer_cycles.values(), self.result_cycles)

    @property
    def bottleneck(self) -> str:
        return max(self.layer_cycles, key=self.layer_cycles.__getitem__)

    @property
    def fps(self) -> float:
        return self.device["mhz"] * 1e6 / self.cycles_per_frame

    @property
    def clock_ns(self) -> float:
        return 1000.0 / self.device["mhz"]

    @property
    def totals(self) -> dict[str, float]:
        """Every layer and the result unit."""
        return {k: sum(r[k] for r in self.layer_resources.values()) + self.result_resources[k] for k in RESOURCE_KEYS}

    def _options(self, name: str) -> dict:
        return {**asdict(self.folding[name]), "weights_in": self.weights_in[name]}

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "objective": self.objective,
            "optimal": self.optimal,
            "cycles_per_frame": self.cycles_per_frame,
            "fps": self.fps,
            "bottleneck": self.bottleneck,
            "totals": self.totals,
            "result_unit": {"cycles": self.result_cycles, **self.result_resources},
            "clock_ns": self.clock_ns,
            "timing_note": timing_note(),
            "meets_clock": all(p <= self.clock_ns for p in self.layer_path_ns.values()),
            "next_step": self.next_step,
            "layers": [
                {
                    "name": name,
                    **(self._options(name) if name in self.folding else {}),
                    "cycles": self.layer_cycles[name],
                    **self.layer_resources[name],
                    "path_ns_estimate": round(self.layer_path_ns[name], 2),
                    "meets_clock": self.layer_path_ns[name] <= self.clock_ns,
                }
                for name in self.layer_cycles
            ],
        }


def _fold_widths(n: int) -> list[int]:
    """The smallest parallelism reaching each distinct fold count ceil(n / p)."""
    return sorted({math.ceil(n / folds) for folds in range(1, n + 1)})


def simd_widths(layer: Layer) -> list[int]:
    """The legal SIMD reaching each distinct SF: multiples of the kind's step (N whole blocks
    for a sparse kind, kinds.MatrixKind.simd_step) over its slots."""
    kind = kinds.matrix(layer)
    step = kind.simd_step(layer)
    return [step * w for w in _fold_widths(kind.synapse_slots(layer) // step)]


def timing_note() -> str:
    """How the per-layer path estimates are made (reports state it next to them)."""
    from flipflow.generator import timing_model

    return timing_model.note()


def candidates(layer: Layer, coefficients=None, max_pe: int | None = None, max_simd: int | None = None,
               clock_ns: float | None = None, expected=None, work_left: float = 1.0) -> list[Candidate]:
    """Pareto-optimal (cycles, LUT, FF, BRAM36, DSP) foldings of one layer; with ``clock_ns``,
    only those whose estimated longest path fits it (BudgetError when none does).

    Only the smallest PE (SIMD) of each distinct fold count is tried: any wider
    one needs the same cycles and more hardware. Each is tried with its weights in
    LUTs and in BRAM (a trade the budget decides). Among equal candidates a divisor
    of the width (no padding) is kept. With ``expected`` (generator.earlyexit.ExpectedCycles)
    a layer that can exit early is also tried with ``early_exit``, at its expected (mean)
    cycles and the decision logic's resources, where SF leaves a decision room to pay.
    ``work_left`` < 1 prices a hypothetical unit that skips the rest of its matrix-vector
    work for free (``ideal_cycles``): what the early-exit bound folds with."""
    from flipflow.generator import cost  # cost imports this module

    c = coefficients or cost.Coefficients.load()
    key = ("candidates", c.fingerprint(), max_pe, max_simd, clock_ns, expected and expected.key, work_left)
    return remembered(layer, key, lambda: _candidates(layer, c, max_pe, max_simd, clock_ns, expected, work_left))


def _candidates(layer: Layer, c, max_pe: int | None, max_simd: int | None, clock_ns: float | None,
                expected=None, work_left: float = 1.0) -> list[Candidate]:
    from flipflow.generator import cost, pack, timing_model  # they import this module


    pes = [p for p in _fold_widths(layer.out_ch) if max_pe is None or p <= max_pe]
    simds = [s for s in simd_widths(layer) if max_simd is None or s <= max_simd]
    found = []
    fastest: tuple[float, LayerConfig] | None = None  # the shortest estimated path, for the error
    for pe in pes:
        for simd in simds:
            padded = (layer.out_ch % pe != 0) + (kinds.matrix(layer).synapse_slots(layer) % simd != 0)
            words = pack.geometry(layer, LayerConfig(pe, simd)).tiles
            for style in ("distributed", "block") if words > 2 else ("distributed",):  # 1-2 words: wiring
                f = LayerConfig(pe, simd, style)
                if clock_ns is not None:  # a block RAM read is slower than a LUT one: per placement
                    path = timing_model.layer_path_ns(layer, f)
                    fastest = min(fastest or (path, f), (path, f), key=lambda x: x[0])
                    if path > clock_ns:
                        continue
                lc = cost.layer_cost(layer, f, c)
                cycles = lc.cycles if work_left == 1.0 else ideal_cycles(layer, f, work_left)
                found.append((cycles, (lc.lut, lc.ff, lc.bram36, lc.dsp), padded, f))
                if expected is not None and early_exit_pays(layer, f):
                    fe = replace(f, early_exit=True)
                    le = cost.layer_cost(layer, fe, c)
                    others = [u.cycles for u in kinds.of(layer).units(layer, fe) if u.role != "mvu"]
                    cycles = max([expected.mvu_cycles(layer, fe), *others])
                    found.append((cycles, (le.lut, le.ff, le.bram36, le.dsp), padded, fe))
    if not found and fastest is not None:
        raise BudgetError(
            f"layer {layer.name}: no folding meets the {clock_ns:g} ns clock by the timing model; the shortest "
            f"estimated path is {fastest[0]:.2f} ns (PE={fastest[1].pe}, SIMD={fastest[1].simd})",
            fix="choose a device with a slower clock, or add register stages to the unit that limits it "
                "and recalibrate (python -m flipflow.sim.calibrate_timing)")
    found.sort(key=lambda x: (x[0], sum(x[1]), x[2]))
    keep = _pareto([res for _, res, _, _ in found])  # sorted by cycles: a later one must be cheaper somewhere
    return [Candidate(found[i][3], found[i][0], found[i][1]) for i in keep]


def _pareto(points, limit: int | None = None) -> list[int]:
    """Indices of the points not weakly dominated by an earlier point of the list
    (the first ``limit`` of them)."""
    kept: list[int] = []
    if len(points) == 0:
        return kept
    arr = np.asarray(points, dtype=float).reshape(len(points), -1)
    for i, p in enumerate(arr):
        if kept and np.all(arr[kept] <= p, axis=1).any():
            continue
        kept.append(i)
        if limit is not None and len(kept) >= limit:
            break
    return kept


def _merge(front: tuple[np.ndarray, list[tuple]], options: list[Candidate], budget: np.ndarray, weights: np.ndarray,
           limit: int = FRONT_LIMIT):
    """Pareto front of (summed resources, choices) after adding one more layer's options,
    cheapest (weighted) first; thinned to ``limit``. Returns (front, exact)."""
    totals, choices = front
    opt_res = np.array([o.resources for o in options], dtype=float).reshape(len(options), 4)
    merged = (totals[:, None, :] + opt_res[None, :, :]).reshape(-1, 4)
    ok = np.flatnonzero(np.all(merged <= budget + 1e-9, axis=1))
    order = ok[np.argsort(merged[ok] @ weights, kind="stable")]
    kept = _pareto(merged[order], limit + 1)
    exact = len(kept) <= limit
    picked = order[kept[:limit]]
    n_opt = len(options)
    return (merged[picked], [choices[i // n_opt] + (options[i % n_opt],) for i in picked]), exact


def _weights(budget: tuple) -> tuple:
    return tuple(1.0 / b if b > 0 else 1e9 for b in budget)


def optimize(
    net: Network,
    device=None,
    target_fps: float | None = None,
    coefficients=None,
    max_pe: int | None = None,
    max_simd: int | None = None,
    expected=None,
    work_left: dict[str, float] | None = None,
) -> Plan:
    """Fastest folding inside ``device``'s budget, or (``target_fps``) the cheapest
    one reaching that rate. Cheapest = least sum of budget shares used. With ``expected``
    (generator.earlyexit.ExpectedCycles) XNOR layers may take early exit, ranked by their
    expected (mean) cycles (``candidates``). With ``work_left`` (layer: share of its
    matrix-vector work left) the layers are priced as ideal skipping units
    (``ideal_cycles``); the plan's cycles stay kinds.py's.

    Raises BudgetError naming the layer when nothing fits or the rate is out of reach."""
    from flipflow.generator import cost

    device = device or devices.get()
    c = coefficients or cost.Coefficients.load()
    budget_d = device.budget()
    fixed = {l.name: cost.layer_cost(l, None, c) for l in net.layers if not l.has_weights}
    fixed["result unit"] = cost.result_unit(net)
    fixed_res = tuple(sum(fc.resources()[k] for fc in fixed.values()) for k in RESOURCE_KEYS)
    budget = tuple(budget_d[k] - u for k, u in zip(RESOURCE_KEYS, fixed_res))
    weights = _weights(tuple(budget_d[k] for k in RESOURCE_KEYS))
    left = work_left or {}
    options = {l.name: candidates(l, c, max_pe, max_simd, 1000.0 / device.mhz, expected, left.get(l.name, 1.0))
               for l in net.layers if l.has_weights}
    floor = max([fc.cycles for fc in fixed.values()] + [min(o.cycles for o in opts) for opts in options.values()])

    budget_arr, weights_arr = np.array(budget, dtype=float), np.array(weights)

    def solve_with(bound: int, front_limit: int, option_limit: int) -> tuple[dict[str, Candidate] | None, bool]:
        front: tuple[np.ndarray, list[tuple]] = (np.zeros((1, 4)), [()])
        exact = True
        for opts in options.values():
            usable = [o for o in opts if o.cycles <= bound]
            by_cost = sorted(usable, key=lambda o: float(np.dot(o.resources, weights_arr)))
            usable = [by_cost[i] for i in _pareto([o.resources for o in by_cost], option_limit + 1)]
            exact = exact and len(usable) <= option_limit
            front, ok = _merge(front, usable[:option_limit], budget_arr, weights_arr, front_limit)
            exact = exact and ok
            if not len(front[1]):
                return None, exact
        return dict(zip(options, front[1][0])), exact  # the front is sorted by weighted cost

    def solve(bound: int) -> tuple[dict[str, Candidate], bool] | None:
        chosen, exact = solve_with(bound, FRONT_LIMIT, OPTION_LIMIT)
        if chosen is None and not exact:  # the thinned fronts may have dropped the one that fits
            chosen, exact = solve_with(bound, *WIDE_LIMITS)
        return None if chosen is None else (chosen, exact)

    if target_fps is not None:
        if target_fps <= 0:
            raise BudgetError(f"--target-fps must be positive, got {target_fps}")
        bound = int(device.mhz * 1e6 // target_fps)
        if bound < floor:
            slow = _slowest_at_best(fixed, options)
            raise BudgetError(
                f"{target_fps:g} frames/s needs <= {bound} cycles per frame at {device.mhz:g} MHz, but layer {slow[0]} "
                f"needs at least {slow[1]} cycles even fully parallel (max {device.mhz * 1e6 / slow[1]:.1f} frames/s)"
            )
        solved = solve(bound)
        if solved is None:
            raise _over_budget(net, device, budget_d, fixed, options, c, bound)
        objective = f"fewest resources at >= {target_fps:g} frames/s"
    else:
        bounds = sorted({o.cycles for opts in options.values() for o in opts if o.cycles >= floor} | {floor})
        if solve(bounds[-1]) is None:
            raise _over_budget(net, device, budget_d, fixed, options, c, bounds[-1])
        lo, hi = 0, len(bounds) - 1  # bounds[hi] is feasible
        while lo < hi:
            mid = (lo + hi) // 2
            if solve(bounds[mid]) is None:
                lo = mid + 1
            else:
                hi = mid
        solved = solve(bounds[hi])
        objective = "max frames/s in budget, then fewest resources"
    chosen, exact = solved
    folding = {name: cand.folding for name, cand in chosen.items()}
    next_step = None
    if target_fps is None:
        next_step = (_next_step(device, budget_d, fixed, options, bounds[hi - 1], exact) if hi > 0 else
                     "none: {} takes {:,} cycles at its fastest allowed folding".format(*_slowest_at_best(fixed, options)))
    return make_plan(net, folding, device, c, objective, exact, next_step)


def make_plan(net: Network, folding: Folding, device=None, coefficients=None, objective: str = "given", optimal: bool = False,
              next_step: str | None = None) -> Plan:
    """Predicted cycles, resources and longest paths of a given folding."""
    from flipflow.generator import cost, timing_model

    device = device or devices.get()
    check(net, folding)
    nc = cost.network_cost(net, folding, coefficients)
    return Plan(
        folding={l.name: folding[l.name] for l in net.layers if l.has_weights},
        layer_cycles={name: lc.cycles for name, lc in nc.layers.items()},
        layer_resources={name: lc.resources() for name, lc in nc.layers.items()},
        device=device.to_dict(),
        objective=objective,
        optimal=optimal,
        result_cycles=kinds.result_cycles(len(net.classes)),
        result_resources=cost.result_unit(net).resources(),
        weights_in={l.name: cost.weight_memory(l, folding[l.name]).style for l in net.layers if l.has_weights},
        layer_path_ns={l.name: timing_model.layer_path_ns(l, folding.get(l.name)) for l in net.layers},
        next_step=next_step,
    )


def _slowest_at_best(fixed: dict, options: dict[str, list[Candidate]]) -> tuple[str, int]:
    best = {name: fc.cycles for name, fc in fixed.items()}
    best.update({name: min(o.cycles for o in opts) for name, opts in options.items()})
    name = max(best, key=best.__getitem__)
    return name, best[name]


def _next_step(device: devices.Device, budget_d: dict[str, float], fixed: dict, options: dict[str, list[Candidate]],
               bound: int, exact: bool) -> str:
    """Why the search stops short of ``bound`` cycles (the next faster rate any layer offers):
    a resource whose least possible total at that rate, every layer at its minimum of it,
    is over budget; else that each fits alone but the search found no folding fitting all
    four at once (with thinned fronts, one may exist)."""
    rate = f"the next step, {bound:,} cycles/frame ({device.mhz * 1e6 / bound:,.0f} frames/s)"
    least: dict[str, dict[str, float]] = {name: fc.resources() for name, fc in fixed.items()}
    for name, opts in options.items():
        usable = [o for o in opts if o.cycles <= bound]
        least[name] = {k: min(o.resources[i] for o in usable) for i, k in enumerate(RESOURCE_KEYS)}
    totals = {k: sum(u[k] for u in least.values()) for k in RESOURCE_KEYS}
    over = [k for k in RESOURCE_KEYS if totals[k] > budget_d[k] + 1e-9]
    if not over:
        return (f"{rate}: every resource fits on its own at that rate, but "
                + ("no folding fits all four at once" if exact else "the thinned search found no folding fitting all four"))
    worst = max(over, key=lambda k: totals[k] / budget_d[k] if budget_d[k] else math.inf)
    layer = max(least, key=lambda n: least[n][worst])
    return (f"{rate} needs at least {totals[worst]:,.1f} {worst} of {budget_d[worst]:,.1f} whatever the folding; "
            f"{layer} alone at least {least[layer][worst]:,.1f}")


def _over_budget(net, device, budget_d, fixed, options, c, bound) -> BudgetError:
    """Explain why nothing fits: the cheapest choice of every layer, the resource most
    over budget and the layer that uses most of it."""
    weights = _weights(tuple(budget_d[k] for k in RESOURCE_KEYS))
    use: dict[str, dict[str, float]] = {name: fc.resources() for name, fc in fixed.items()}
    for name, opts in options.items():
        usable = [o for o in opts if o.cycles <= bound] or opts
        best = min(usable, key=lambda o: sum(w * r for w, r in zip(weights, o.resources)))
        use[name] = dict(zip(RESOURCE_KEYS, best.resources))
    totals = {k: sum(u[k] for u in use.values()) for k in RESOURCE_KEYS}
    ratios = {k: totals[k] / budget_d[k] if budget_d[k] else math.inf for k in RESOURCE_KEYS}
    worst = max(ratios, key=ratios.__getitem__)
    layer = max(use, key=lambda n: use[n][worst])
    over = totals[worst] - budget_d[worst]
    return BudgetError(
        f"{net.name} does not fit {device.name} ({device.part}) at any folding: {worst} {totals[worst]:,.1f} of "
        f"{budget_d[worst]:,.1f} ({100 * ratios[worst]:.0f}%, {over:,.1f} over) with every layer at its cheapest; "
        f"layer {layer} alone needs {use[layer][worst]:,.1f} {worst}. "
        f"Prune that layer, or pick a bigger device (--device zcu104) or a larger budget (--{worst.lower().rstrip('36')} N)"
    )
