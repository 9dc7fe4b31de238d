"""Early-deciding popcount (O3BNN-R, Geng et al., TPDS 2021): how much work it could skip.

A thresholded neuron outputs acc >= T. Its matrix-vector unit adds the K terms SIMD
at a time over SF = ceil(K / SIMD) synapse folds (generator/pack.py), so after k
folds the partial sum C_k is known and the terms still to come lie in [LO_k, HI_k]:

    output 1 is decided once C_k + LO_k >= T,    output 0 once C_k + HI_k < T.

For XNOR-popcount lanes a term is 0 or 1 (LO_k = 0, HI_k = real lanes left); for the
8-bit pixel layer a term w * x with x in 0..255 lies in [min(0, w), max(0, w)] * 255.
Pad lanes (input 0 against the pad weight) add exactly 0, so they widen no bound.
C_k + LO_k never falls and C_k + HI_k never rises as k grows, so the decision fold
of a neuron is the smaller of two counts of failed checks (``decide``).

PE rows share a neuron fold: the group of rows nf * PE .. nf * PE + PE - 1 moves on
once all of its rows are decided (at least one fold; pad rows never hold it). A
layer's matrix-vector unit then needs, per input vector, the sum over its neuron
folds of the group's folds, but no fewer cycles than the beats it loads (the cycle
model of kinds.py); every other unit keeps its cycles, and a frame takes as long as
its slowest layer. ``analyse`` measures all of this on the golden model's real
per-layer inputs; it is an analysis of a unit that does not exist yet
(docs/DESIGN.md, "Early exit (O3BNN-R): analysis").
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from tqdm import tqdm

from flipflow import atomic, golden, kinds
from flipflow.generator import cost, pack
from flipflow.generator.folding import Folding, FoldingError, LayerConfig, can_exit_early, check
from flipflow.ir import Layer, Network

BATCH = 32  # images per step through the network (measured fastest: the arrays stay small)
CHUNK_ELEMENTS = 1 << 23  # fold sums (SF x vectors x neurons) held at once: bounds memory (3 arrays of 32 MiB)
PERCENTILE = 95  # the stated high percentile of the per-image cycles


def decides_early(layer: Layer) -> bool:
    """Thresholded dense-weight matrix-vector layers (XNOR, 8-bit pixels): an output decided
    early. N:M sparse layers are not analysed (their unit steps through kept slots, not
    the window this fold model walks)."""
    kind = kinds.of(layer)
    return isinstance(kind, kinds.MatrixKind) and kind.thresholded and not kind.sparse


@dataclass(frozen=True)
class FoldModel:
    """One layer's folded arithmetic in affine form. Fold f of neuron o adds
    ``const[f, o] + x_f @ coef[f, :, o]``. With S_k = sum of the input parts of folds
    0..k-1, neuron o is still open after k folds while ``zero_from[k, o] <= S_k <
    one_below[k, o]`` (1 not yet certain: C_k < T - LO_k; 0 not yet certain: C_k >=
    T - HI_k, the folds' constant parts moved to the right), k = 0..SF. All arrays are
    in ``coef``'s float type, which holds every sum exactly."""

    geometry: pack.Geometry
    coef: np.ndarray  # (SF, SIMD, O)
    one_below: np.ndarray  # (SF + 1, O)
    zero_from: np.ndarray  # (SF + 1, O)

    @property
    def thresholds(self) -> np.ndarray:
        """Output bit = S_SF >= this (no terms are left after the last fold)."""
        return self.one_below[-1]


def input_range(kind: kinds.MatrixKind) -> tuple[int, int]:
    """The smallest and largest input element of a lane: a bit, or an 8-bit pixel."""
    return (0, 1) if kind.binary_input else (0, (1 << kind.lane_bits) - 1)


def fold_model(layer: Layer, config: LayerConfig) -> FoldModel:
    """The affine fold arithmetic of a thresholded layer at a folding.

    Each datapath's lane term is affine in its input element (XNOR of a bit, w * pixel),
    so ``lane_terms`` at input 0 and 1 gives it exactly, and its extremes over the input
    range lie at the ends of that range."""
    kind = kinds.matrix(layer)
    g = pack.geometry(layer, config)
    w = pack.padded_matrix(layer, g)[: g.rows]  # (O, SF * SIMD); pad rows are dropped here
    at0, at1 = kind.lane_terms(w, np.int64(0)), kind.lane_terms(w, np.int64(1))
    x_lo, x_hi = input_range(kind)
    t_lo, t_hi = kind.lane_terms(w, np.int64(x_lo)), kind.lane_terms(w, np.int64(x_hi))
    pad = np.arange(g.cols_padded) >= g.cols  # pad lanes: input always INPUT_PAD, term exact
    pad_term = kind.lane_terms(w, np.int64(pack.INPUT_PAD))
    lane_lo = np.where(pad, pad_term, np.minimum(t_lo, t_hi))
    lane_hi = np.where(pad, pad_term, np.maximum(t_lo, t_hi))

    def per_fold(lanes: np.ndarray) -> np.ndarray:  # (O, cols) -> (SF, O)
        return lanes.reshape(g.rows, g.sf, g.simd).sum(-1).T

    def after(lanes: np.ndarray) -> np.ndarray:  # (O, cols) -> (SF + 1, O): sum over folds k..SF-1
        rest = np.cumsum(per_fold(lanes)[::-1], 0)[::-1]
        return np.concatenate([rest, np.zeros((1, g.rows), np.int64)])

    done = np.concatenate([np.zeros((1, g.rows), np.int64), np.cumsum(per_fold(at0), 0)])  # constant parts so far
    t = pack.thresholds(layer, config).reshape(-1)[: g.rows] - done
    lo, hi = pack.accumulator_range(layer)
    exact32 = 4 * max(abs(lo), abs(hi)) + 2 < 2**24  # float32 BLAS and compares are exact below 2**24
    dtype = np.float32 if exact32 else np.float64
    coef = (at1 - at0).reshape(g.rows, g.sf, g.simd).transpose(1, 2, 0)
    return FoldModel(g, np.ascontiguousarray(coef, dtype), (t - after(lane_lo)).astype(dtype),
                     (t - after(lane_hi)).astype(dtype))


def decide(model: FoldModel, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decision folds (M, O) in 0..SF and output bits (M, O) of input vectors (M, K).

    Fold k = 0 is before any term (a neuron whose threshold no input can cross)."""
    g = model.geometry
    folds = np.empty((len(vectors), g.rows), np.int32)
    bits = np.empty((len(vectors), g.rows), np.uint8)
    step = max(1, CHUNK_ELEMENTS // (g.sf * g.rows))
    for i in range(0, len(vectors), step):
        folds[i : i + step], bits[i : i + step] = _decide_chunk(model, vectors[i : i + step])
    return folds, bits


def _decide_chunk(model: FoldModel, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = model.geometry
    x = np.zeros((len(vectors), g.cols_padded), model.coef.dtype)
    x[:, : g.cols] = vectors
    x = np.ascontiguousarray(x.reshape(len(vectors), g.sf, g.simd).transpose(1, 0, 2))  # (SF, M, SIMD)
    partial = np.cumsum(np.matmul(x, model.coef), axis=0)  # S_k, k = 1..SF (exact in coef's dtype, fold_model)
    # The open checks are a prefix of k = 0..SF (the bounds are monotone), so their count is the
    # decision fold; after the last fold nothing is open, so k = SF is not checked.
    before = np.concatenate([np.zeros_like(partial[:1]), partial[:-1]])  # S_k, k = 0..SF-1
    open_ = (model.zero_from[: g.sf, None, :] <= before) & (before < model.one_below[: g.sf, None, :])
    return open_.sum(0, dtype=np.int32), (partial[-1] >= model.thresholds).view(np.uint8)


def group_folds(folds: np.ndarray, g: pack.Geometry) -> np.ndarray:
    """Folds each neuron fold's PE row group takes per vector (M, NF): its slowest real row,
    at least one (pad rows, decided at once, never hold a group)."""
    if g.rows_padded != g.rows:
        folds = np.concatenate([folds, np.zeros((len(folds), g.rows_padded - g.rows), folds.dtype)], axis=1)
    return np.maximum(folds.reshape(len(folds), g.nf, g.pe).max(-1), 1)


def decision_latency(config: LayerConfig) -> int:
    """Issue cycles flipflow_mvu spends on a group after the fold that decides it: the fold
    reaches its accumulator ACC = 1 + pipeline stages cycles after issue, the decision is
    registered (1), and the abort cycle issues nothing (1); folds issued meanwhile are
    squashed (docs/DESIGN.md, "Early exit: hardware")."""
    return cost.mvu_pipeline_stages("xnor", config.simd) + 2


def hardware_group_cycles(groups: np.ndarray, g: pack.Geometry, config: LayerConfig) -> np.ndarray:
    """Issue cycles of each PE row group in the built unit: a group decided after ``groups``
    folds (at fold d = groups - 1) takes min(SF, groups + latency) = min(SF, d + ACC + 2)."""
    return np.minimum(g.sf, groups + decision_latency(config))


class ExpectedCycles:
    """Expected (mean) matrix-vector cycles of an early-exit layer at any (PE, SIMD), for
    the folding search: its neurons' decision folds on a sample of its real input vectors
    (golden model on ``images``), then the hardware rule (``hardware_group_cycles``) per PE.
    Decision folds depend on SIMD only (the fold boundaries), so they are found once per
    SIMD and grouped per PE. The figure is the mean over vectors: what FIFOs between the
    layers would average to, not a per-image percentile."""

    def __init__(self, net: Network, images: np.ndarray, vectors: int = 512, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.key = (net.name, len(images), vectors, seed)  # the search caches candidates by it
        self.samples: dict[str, np.ndarray] = {}
        x = golden.check_images(net, images)
        for layer in net.layers:
            if layer.has_weights and can_exit_early(layer):
                patches = kinds.matrix(layer).patches(layer, x).reshape(-1, layer.fan_in)
                pick = rng.choice(len(patches), min(vectors, len(patches)), replace=False)
                self.samples[layer.name] = patches[np.sort(pick)]
            x = golden.run_layer(layer, x)
        self._folds: dict[tuple[str, int], np.ndarray] = {}

    def mvu_cycles(self, layer: Layer, config: LayerConfig) -> int:
        """The unit's expected cycles per frame with early exit (rounded up)."""
        folds = self._folds.get((layer.name, config.simd))
        if folds is None:
            model = fold_model(layer, LayerConfig(1, config.simd))
            folds = self._folds[(layer.name, config.simd)] = decide(model, self.samples[layer.name])[0]
        g = pack.geometry(layer, config)
        slots = hardware_group_cycles(group_folds(folds, g), g, config).sum(1)
        per_vector = np.maximum(slots, kinds.matrix(layer).beats_per_vector(layer)).mean()
        return int(np.ceil(per_vector * layer.out_shape[0] * layer.out_shape[1]))


# -- tallies over images -------------------------------------------------------------------

@dataclass
class LayerTally:
    """Per-image work of one early-deciding layer, accumulated over image batches."""

    layer: Layer
    config: LayerConfig
    model: FoldModel
    neuron_hist: np.ndarray  # (SF + 1,) neurons needing f folds (f >= 1)
    group_hist: np.ndarray  # (SF + 1,) PE row groups needing f folds
    neuron_folds: list[np.ndarray] = field(default_factory=list)  # per image: sum of neuron folds
    group_folds: list[np.ndarray] = field(default_factory=list)  # per image: sum of group folds
    mvu_cycles: list[np.ndarray] = field(default_factory=list)  # per image: the unit's cycles with early exit
    # the built unit (XNOR layers, flipflow_mvu with EARLY_EXIT = 1), per image: its cycles and fold slots
    hw_cycles: list[np.ndarray] = field(default_factory=list)
    hw_slots: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def start(cls, layer: Layer, config: LayerConfig) -> "LayerTally":
        model = fold_model(layer, config)
        empty = np.zeros(model.geometry.sf + 1, np.int64)
        return cls(layer, config, model, empty, empty.copy())

    def add(self, x: np.ndarray) -> np.ndarray:
        """Tally a batch of layer inputs (N, H, W, C); returns the layer's output bits."""
        kind = kinds.matrix(self.layer)
        g = self.model.geometry
        patches = kind.patches(self.layer, x)
        n, ho, wo, k = patches.shape
        folds, bits = decide(self.model, patches.reshape(-1, k))
        needed = np.maximum(folds, 1)
        groups = group_folds(folds, g)
        self.neuron_hist += np.bincount(needed.ravel(), minlength=g.sf + 1)
        self.group_hist += np.bincount(groups.ravel(), minlength=g.sf + 1)
        self.neuron_folds.append(needed.reshape(n, -1).sum(1))
        self.group_folds.append(groups.reshape(n, -1).sum(1))
        per_vector = np.maximum(groups.sum(1), kind.beats_per_vector(self.layer))
        self.mvu_cycles.append(per_vector.reshape(n, -1).sum(1))
        if can_exit_early(self.layer):
            slots = hardware_group_cycles(groups, g, self.config).sum(1)
            self.hw_slots.append(slots.reshape(n, -1).sum(1))
            self.hw_cycles.append(np.maximum(slots, kind.beats_per_vector(self.layer)).reshape(n, -1).sum(1))
        return bits.reshape(n, ho, wo, g.rows)

    @property
    def pixels(self) -> int:
        return self.layer.out_shape[0] * self.layer.out_shape[1]

    def cycles(self) -> np.ndarray:
        """Per image: the matrix-vector unit's cycles with early exit."""
        return np.concatenate(self.mvu_cycles)

    def neuron_skipped(self) -> np.ndarray:
        """Per image: the share of neuron folds (O x SF per output pixel) a decision skips."""
        g = self.model.geometry
        return 1 - np.concatenate(self.neuron_folds) / (g.rows * g.sf * self.pixels)

    def group_skipped(self) -> np.ndarray:
        """Per image: the share of the unit's NF x SF fold cycles the group rule skips."""
        g = self.model.geometry
        return 1 - np.concatenate(self.group_folds) / (g.tiles * self.pixels)


@dataclass
class PoolTally:
    """A max-pool after a thresholded layer: OR of bits, settled by its first 1."""

    layer: Layer
    windows: int = 0
    settled: int = 0  # windows holding a 1: decided before all their inputs exist
    inputs: int = 0
    skippable: int = 0  # inputs every window of which already had an earlier 1

    def add(self, x: np.ndarray) -> np.ndarray:
        """Tally a batch of pool inputs (N, H, W, C); returns the pool's output."""
        out = golden.run_layer(self.layer, x)
        self.windows += out.size
        self.settled += int(out.sum())
        self.inputs += x.size
        self.skippable += int(x.size - pool_needed(self.layer, x).sum())
        return out


def pool_needed(layer: Layer, x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) bool: the pool inputs some window still needs when a window stops at its
    first 1 in the order the layer before produces them (raster order)."""
    k, s, p = layer.kernel, layer.stride, layer.pad
    n, h, w, c = x.shape
    ho, wo = layer.out_shape[:2]
    order = np.pad(np.arange(h * w).reshape(h, w), p, constant_values=h * w)
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    first = np.where(xp == 1, order[None, :, :, None], h * w)
    first = sliding_window_view(first, (k, k), axis=(1, 2))[:, ::s, ::s].min(axis=(-1, -2))  # (N, Ho, Wo, C)
    needed = np.zeros(xp.shape, bool)
    for dy in range(k):
        for dx in range(k):
            rows, cols = slice(dy, dy + s * (ho - 1) + 1, s), slice(dx, dx + s * (wo - 1) + 1, s)
            needed[:, rows, cols] |= order[rows, cols][None, :, :, None] <= first
    return needed[:, p : p + h, p : p + w]



# -- the whole network -----------------------------------------------------------------------

def is_pool(layer: Layer) -> bool:
    """A layer whose chain has a pool unit (an OR of bits over a window)."""
    return not layer.has_weights and any(u.role == "pool" for u in kinds.of(layer).units(layer, None))


@dataclass
class Analysis:
    """Early-exit figures of one network at one folding over a set of images."""

    net: Network
    folding: Folding
    images: int
    tallies: dict[str, LayerTally]  # the early-deciding layers
    pools: dict[str, PoolTally]  # max-pools right after one

    def layer_cycles(self) -> dict[str, np.ndarray]:
        """Per image and layer: its slowest unit, the matrix-vector unit's with early exit."""
        out = {}
        for l in self.net.layers:
            tally = self.tallies.get(l.name)
            units = kinds.of(l).units(l, self.folding.get(l.name))
            out[l.name] = np.max([tally.cycles() if tally and u.role == "mvu" else np.full(self.images, u.cycles)
                                  for u in units], axis=0)
        return out

    def frame_cycles(self) -> np.ndarray:
        """Per image: the pipeline's slowest unit with early exit, the result unit included."""
        result = np.full(self.images, kinds.result_cycles(len(self.net.classes)))
        return np.max([result, *self.layer_cycles().values()], axis=0)

    def hardware_layer_cycles(self) -> dict[str, np.ndarray]:
        """Per image and layer: its slowest unit in the built hardware at this folding, the
        matrix-vector units of layers with ``early_exit`` by the squash rule
        (``hardware_group_cycles``), every other unit by kinds.py."""
        out = {}
        for l in self.net.layers:
            config = self.folding.get(l.name)
            tally = self.tallies.get(l.name) if config is not None and config.early_exit else None
            units = kinds.of(l).units(l, config)
            out[l.name] = np.max([np.concatenate(tally.hw_cycles) if tally and u.role == "mvu"
                                  else np.full(self.images, u.cycles) for u in units], axis=0)
        return out

    def hardware(self) -> dict:
        """The built hardware's cycle model at this folding: per image the slowest unit
        (``per_image``: mean, p95, max; a frame waits for its slowest layer), the slowest
        layer mean (``fifo_bound``: what deep enough FIFOs between layers reach), and the
        skipped share of the early-exit units' fold slots."""
        layers = self.hardware_layer_cycles()
        result = kinds.result_cycles(len(self.net.classes))
        frames = np.max([np.full(self.images, result), *layers.values()], axis=0)
        on = [t for name, t in self.tallies.items() if self.folding[name].early_exit]
        full = sum(t.model.geometry.tiles * t.pixels * self.images for t in on)
        slots = sum(int(np.concatenate(t.hw_slots).sum()) for t in on)
        return {
            "early_exit_layers": [t.layer.name for t in on],
            "skipped_fraction": _share(1 - slots / full) if full else 0.0,
            "per_image": {"mean": _share(frames.mean()), f"p{PERCENTILE}": _share(np.percentile(frames, PERCENTILE)),
                          "max": int(frames.max())},
            "fifo_bound": _share(max(result, *(c.mean() for c in layers.values()))),
        }


def check_folding(net: Network, folding: Folding) -> None:
    """FoldingError, with a fix, when ``folding`` is not one of ``net`` (say another net's)."""
    try:
        check(net, folding)
    except FoldingError as e:
        raise FoldingError(f"{net.name}: {e.problem}",
                           fix=e.fix or f"give a folding of {net.name} (`flipflow fold {net.name}`) or leave --folding out") from None


def analyse(net: Network, folding: Folding, images: np.ndarray, batch: int = BATCH, progress: bool = False) -> Analysis:
    """Decision folds of every thresholded layer on the golden model's per-layer inputs.

    Each early-deciding layer's output is the bit its decision takes, which equals the
    golden model's (tests/test_earlyexit.py), and feeds the next layer."""
    check_folding(net, folding)
    images = golden.check_images(net, images)
    if not len(images):
        raise FoldingError("no images to analyse", fix="give at least one image (--images N)")
    tallies = {l.name: LayerTally.start(l, folding[l.name]) for l in net.layers if decides_early(l)}
    pools = {l.name: PoolTally(l) for prev, l in zip(net.layers, net.layers[1:]) if decides_early(prev) and is_pool(l)}
    with tqdm(total=len(images), desc=f"early exit {net.name}", unit="image", file=sys.stderr, disable=not progress) as bar:
        for i in range(0, len(images), batch):
            x = images[i : i + batch]
            for layer in net.layers:
                step = tallies.get(layer.name) or pools.get(layer.name)
                x = step.add(x) if step else golden.run_layer(layer, x)
            bar.update(min(batch, len(images) - i))
    return Analysis(net, folding, len(images), tallies, pools)


def expected_frame_cycles(net: Network, folding: Folding, images: np.ndarray,
                          percentile: float = PERCENTILE) -> tuple[float, float]:
    """Mean and ``percentile`` of the cycles per frame with early exit over ``images``:
    the figure a folding search would minimise in place of kinds.frame_cycles."""
    frames = analyse(net, folding, images).frame_cycles()
    return float(frames.mean()), float(np.percentile(frames, percentile))


# -- report -------------------------------------------------------------------------------------

def _share(x: float) -> float:
    return round(float(x), 5)


def _decided_by_fold(hist: np.ndarray) -> list[float]:
    """The share decided after 1, 2, .. SF folds."""
    return [_share(v) for v in np.cumsum(hist[1:]) / hist.sum()]


def _layer_entry(a: Analysis, layer: Layer, cycles: np.ndarray, base: int) -> dict:
    entry: dict = {"name": layer.name, "kind": layer.kind, "early_exit": layer.name in a.tallies}
    config = a.folding.get(layer.name)
    if config is not None:
        g = pack.geometry(layer, config)
        entry.update(datapath=kinds.matrix(layer).datapath, K=g.cols, pe=g.pe, simd=g.simd, sf=g.sf, nf=g.nf,
                     neuron_skipped=0.0, group_skipped=0.0)
    tally = a.tallies.get(layer.name)
    if tally is not None:
        group = tally.group_skipped()
        entry.update(
            neuron_skipped=_share(tally.neuron_skipped().mean()),
            group_skipped=_share(group.mean()),
            group_skipped_per_image={f"p{q}": _share(np.percentile(group, q)) for q in (5, 50, 95)},
            neurons_decided_by_fold=_decided_by_fold(tally.neuron_hist),
            groups_decided_by_fold=_decided_by_fold(tally.group_hist),
            fold_cycles=tally.model.geometry.tiles * tally.pixels,
        )
    pool = a.pools.get(layer.name)
    if pool is not None:
        entry["potential_not_in_hardware"] = {
            "windows_settled_by_a_1": _share(pool.settled / pool.windows),
            "inputs_no_window_needs": _share(pool.skippable / pool.inputs),
        }
    entry["cycles"] = {"without": base, "mean": _share(cycles.mean()), f"p{PERCENTILE}": _share(np.percentile(cycles, PERCENTILE)),
                       "max": int(cycles.max())}
    return entry


def _weighted(entries: list[dict], datapath: str) -> dict:
    """Skipped shares over all layers of a datapath, weighted by their fold cycles."""
    chosen = [e for e in entries if e.get("datapath") == datapath and e["early_exit"]]
    total = sum(e["fold_cycles"] for e in chosen)
    return {key: _share(sum(e[key] * e["fold_cycles"] for e in chosen) / total) if total else 0.0
            for key in ("neuron_skipped", "group_skipped")}


def summary(a: Analysis) -> dict:
    """The JSON report of an analysis (earlyexit.json)."""
    base_layers = kinds.layer_cycles(a.net, a.folding)
    layer_cycles = a.layer_cycles()
    entries = [_layer_entry(a, l, layer_cycles[l.name], base_layers[l.name]) for l in a.net.layers]
    frames = a.frame_cycles()
    base = kinds.frame_cycles(a.net, a.folding)
    high = float(np.percentile(frames, PERCENTILE))
    return {
        "model": a.net.name,
        "images": a.images,
        "folding": {name: {"pe": c.pe, "simd": c.simd} for name, c in a.folding.items()},
        "layers": entries,
        "xnor": _weighted(entries, "xnor"),
        "pixel": _weighted(entries, "pixel"),
        "frame": {
            "cycles_without": base,
            "mean": _share(frames.mean()),
            f"p{PERCENTILE}": _share(high),
            "max": int(frames.max()),
            "speedup_mean": _share(base / frames.mean()),
            f"speedup_p{PERCENTILE}": _share(base / high),
            "bottleneck_with_early_exit": max(layer_cycles, key=lambda n: layer_cycles[n].mean()),
        },
    }


def table(report: dict) -> str:
    """The per-layer table `flipflow earlyexit` prints."""
    q = f"p{PERCENTILE}"
    head = (f"{'layer':<16}{'kind':<13}{'K':>6}{'PE':>4}{'SIMD':>5}{'SF':>4}{'NF':>4}{'neuron':>8}{'group':>7}"
            f"{'cycles':>9}{'mean':>9}{q:>8}")
    lines = [head, f"{'':<61}{'skipped %':>15}{'without':>9}{'with early exit':>17}", "-" * len(head)]
    for e in report["layers"]:
        if "K" not in e:
            continue
        c = e["cycles"]
        lines.append(f"{e['name']:<16}{e['kind']:<13}{e['K']:>6}{e['pe']:>4}{e['simd']:>5}{e['sf']:>4}{e['nf']:>4}"
                     f"{100 * e['neuron_skipped']:>8.1f}{100 * e['group_skipped']:>7.1f}{c['without']:>9,}{c['mean']:>9,.0f}{c[q]:>8,.0f}"
                     + ("" if e["early_exit"] else "  (N:M sparse: not analysed)" if kinds.get(e["kind"]).sparse
                        else "  (scores: no threshold)"))
    lines.append("-" * len(head))
    for datapath in ("xnor", "pixel"):
        d = report[datapath]
        lines.append(f"{datapath} layers, weighted by fold cycles: {100 * d['neuron_skipped']:.1f}% (neuron) / "
                     f"{100 * d['group_skipped']:.1f}% (PE row group) skipped")
    for e in report["layers"]:
        if "potential_not_in_hardware" in e:
            p = e["potential_not_in_hardware"]
            lines.append(f"{e['name']} (potential, not in the hardware): {100 * p['windows_settled_by_a_1']:.1f}% of windows "
                         f"settled by a 1, {100 * p['inputs_no_window_needs']:.1f}% of its inputs no window needs")
    f = report["frame"]
    lines.append(f"frame: {f['cycles_without']:,} cycles without, {f['mean']:,.0f} mean / {f[q]:,.0f} {q} / {f['max']:,} max "
                 f"with early exit over {report['images']} images: {f['speedup_mean']:.3f}x frames/s (mean), "
                 f"bottleneck {f['bottleneck_with_early_exit']}")
    return "\n".join(lines)


def plot(a: Analysis, report: dict, path) -> None:
    """earlyexit.png: skipped share per layer (neuron vs PE row group, and the max-pool potential
    the hardware does not use) and its distribution over the images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in report["layers"] if "K" in e or "potential_not_in_hardware" in e]
    x = np.arange(len(entries))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.8))
    ax1.bar(x - 0.2, [100 * e.get("neuron_skipped", 0) for e in entries], 0.4, label="per neuron")
    ax1.bar(x + 0.2, [100 * e.get("group_skipped", 0) for e in entries], 0.4, label="per PE row group (hardware rule)")
    pools = [i for i, e in enumerate(entries) if "potential_not_in_hardware" in e]
    if pools:
        ax1.bar(x[pools], [100 * entries[i]["potential_not_in_hardware"]["inputs_no_window_needs"] for i in pools], 0.4,
                color="lightgrey", hatch="//", edgecolor="grey", label="max-pool inputs no window needs (potential, NOT in hardware)")
    ax1.set_xticks(x, [e["name"] for e in entries], rotation=45, ha="right", fontsize=8)
    ax1.set_ylabel("fold cycles skipped (%)")
    ax1.set_title(f"{report['model']}: early-deciding popcount, {report['images']} images")
    ax1.legend(fontsize=8, loc="upper left", framealpha=0.9)
    names = list(a.tallies)
    pos = np.arange(len(names))
    for offset, per_image, colour in ((-0.2, LayerTally.neuron_skipped, "C0"), (0.2, LayerTally.group_skipped, "C1")):
        ax2.boxplot([100 * per_image(a.tallies[n]) for n in names], positions=pos + offset, widths=0.35,
                    showfliers=False, patch_artist=True, boxprops={"facecolor": colour, "alpha": 0.6},
                    medianprops={"color": "black"})
    ax2.set_xticks(pos, names, rotation=45, ha="right", fontsize=8)
    ax2.set_ylabel("skipped per image (%)")
    f = report["frame"]
    ax2.set_title(f"per image: per neuron (blue), per PE row group (orange); frame {f['speedup_mean']:.3f}x")
    fig.tight_layout()
    atomic.save_figure(fig, path)
