"""Folding: how many processing elements (PE, output channels in parallel)
and SIMD lanes (input terms in parallel) each layer gets, and what that
costs in cycles.

A layer's cycles per frame follow shared/DESIGN.md:
    ceil(out_ch / PE) * ceil(K / SIMD) * output_pixels
where K is the fan-in (k * k * in_ch). Widths that PE or SIMD do not divide
are padded in hardware (see the generator), so no power-of-two is assumed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from flipflow.ir import Layer, Network


class FoldingError(ValueError):
    """A folding the hardware cannot implement; the message names the layer."""


@dataclass(frozen=True)
class LayerFolding:
    pe: int = 1
    simd: int = 1


Folding = dict[str, LayerFolding]


def layer_cycles(layer: Layer, f: LayerFolding) -> int:
    """Cycles per frame of one layer's compute unit at II = 1."""
    pixels = layer.out_shape[0] * layer.out_shape[1]
    if layer.has_weights:
        return math.ceil(layer.out_ch / f.pe) * math.ceil(layer.fan_in / f.simd) * pixels
    if layer.kind == "maxpool":
        return layer.in_shape[0] * layer.in_shape[1]  # one input pixel per cycle
    return layer.in_shape[0] * layer.in_shape[1]  # global_sum reads every pixel once


def check(net: Network, folding: Folding) -> None:
    for layer in net.layers:
        if not layer.has_weights:
            continue
        f = folding.get(layer.name)
        if f is None:
            raise FoldingError(f"layer {layer.name}: no folding given")
        if not 1 <= f.pe <= layer.out_ch:
            raise FoldingError(f"layer {layer.name}: PE={f.pe} must be in [1, out_ch={layer.out_ch}]")
        if not 1 <= f.simd <= layer.fan_in:
            raise FoldingError(f"layer {layer.name}: SIMD={f.simd} must be in [1, K={layer.fan_in}]")


def minimal(net: Network) -> Folding:
    """PE = SIMD = 1 everywhere: smallest, slowest."""
    return {l.name: LayerFolding(1, 1) for l in net.layers if l.has_weights}


def save(folding: Folding, path: Path) -> None:
    path.write_text(json.dumps({k: asdict(v) for k, v in folding.items()}, indent=1))


def load(path: Path) -> Folding:
    return {k: LayerFolding(**v) for k, v in json.loads(Path(path).read_text()).items()}
