"""RTL backend: render synthesizable Verilog of a network from hls_templates/rtl/.

The hardware is the same streaming dataflow pipeline as the HLS backend
(docs/DESIGN.md), one unit chain per IR layer:

* ``input_conv``  : [gather channels] -> window unit -> matrix-vector unit (8-bit pixels)
* ``binary_conv`` : [window unit] -> matrix-vector unit (XNOR-popcount, thresholds)
* ``maxpool``     : window unit -> OR unit
* ``output_conv`` : [window unit] -> matrix-vector unit (integer scores)

A window unit emits a whole k x k window per beat (one column read per cycle
from a row-banked line buffer), so a conv's matrix-vector unit loads one beat
per output pixel and its floor is one cycle per output pixel.
* ``*_dense``     : matrix-vector unit reading the flattened (H, W, C) input, one pixel per beat
* ``global_sum``  : score accumulator
* then a result unit that serialises scores + class id onto the 32-bit stream.

A window unit is left out where the window is the pixel itself (1x1, stride 1,
no padding). Weights and thresholds come from flipflow.generator.pack (the
layout shared with the HLS backend) and are written as ``$readmemh`` files
named after the IR layers, next to the Verilog.

``generate(net, folding, out_dir)`` writes ``<out_dir>/*.v`` and ``*.mem``
and returns an ``RtlDesign`` describing the units (used by the simulator for
cycle models and by the resource report).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

import flipflow
from flipflow.errors import FlipflowError
from flipflow.generator import pack
from flipflow.host import stream
from flipflow import kinds
from flipflow.generator.folding import Folding, LayerConfig, check, default
from flipflow.kinds import pow2, unsigned_bits, window_columns, window_cycles
from flipflow.ir import Layer, Network

TEMPLATES = flipflow.ROOT / "hls_templates" / "rtl"
TOP_NAME = stream.TOP_NAME
TOP_FILE = f"{TOP_NAME}.v"
DESIGN_FILE = "design.json"


class RtlError(FlipflowError, ValueError):
    """The network or folding cannot be rendered; the message names the layer."""


@dataclass
class Unit:
    """One hardware unit of the pipeline (one Verilog module)."""

    name: str  # module name (derived from the IR layer name)
    template: str
    layer: str  # IR layer it implements
    src: str  # unit feeding it ("in" = the input stream)
    out_width: int  # bits per output beat
    summary: str  # one line for the top's header comment
    traces: str = ""  # IR layer whose output this unit produces ("" = internal)
    cycles: int = 0  # cycles per frame at II = 1 (analytical)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RtlDesign:
    network: str
    folding: dict[str, dict[str, int]]
    units: list[Unit]
    files: list[str]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))


def ident(name: str) -> str:
    """A Verilog identifier from an IR layer name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else f"l_{s}"


def _hex_words(words: list[int], bits: int) -> str:
    digits = max(1, math.ceil(bits / 4))
    return "".join(f"{w & ((1 << bits) - 1):0{digits}x}\n" for w in words)


def _mvu_unit(layer: Layer, f: LayerConfig, src: str, positions: int, ew: int, out_dir: Path) -> Unit:
    g = pack.geometry(layer, f)
    kind = RTL_DATAPATHS[kinds.matrix(layer).datapath]
    lane_bits = kinds.of(layer).lane_bits
    wb = pack.elem_bits(layer)
    lo, hi = pack.accumulator_range(layer)
    if kind == "binary":
        aw = max(2, pack.unsigned_bits(hi + 1))
    elif kind == "input":
        aw = max(wb + 10, pack.signed_bits(lo, hi + 1))  # >= one 9 x WB-bit product + sign
    else:
        aw = max(wb + 1, pack.signed_bits(lo, hi))
    name = ident(layer.name)
    weight_file = f"{name}_weights.mem"
    (out_dir / weight_file).write_text(_hex_words(pack.words(layer, f), g.pe * g.simd * wb))
    thr_file = ""
    if layer.is_thresholded:
        thr_file = f"{name}_thresholds.mem"
        thr = pack.thresholds(layer, f)
        thr_words = [sum((int(t) & ((1 << aw) - 1)) << (p * aw) for p, t in enumerate(row)) for row in thr]
        (out_dir / thr_file).write_text(_hex_words(thr_words, g.pe * aw))
    res_bits = aw if kind == "output" else 1
    params = dict(
        name=f"{name}_mvu", layer=layer.name, kind=kind, k=g.cols, out_ch=g.rows, pe=g.pe, simd=g.simd,
        nf=g.nf, sf=g.sf, lane_bits=lane_bits, wb=wb, aw=aw, res_bits=res_bits, positions=positions,
        ew=ew, pos_bits=unsigned_bits(positions - 1), nf_bits=unsigned_bits(g.nf - 1), sf_bits=unsigned_bits(g.sf - 1),
        addr_bits=unsigned_bits(g.tiles - 1), weight_file=weight_file, thr_file=thr_file,
    )
    return Unit(
        name=f"{name}_mvu", template="mvu.v.j2", layer=layer.name, src=src, out_width=g.rows * res_bits,
        summary=f"{layer.kind} {layer.name}: PE={g.pe} SIMD={g.simd}, {g.nf}x{g.sf} folds per window",
        traces=name, cycles=kinds.matrix(layer).mvu_cycles(layer, f), params=params,
    )


def _window_unit(layer: Layer, src: str, lane_bits: int) -> Unit:
    h, w, c = layer.in_shape
    ho, wo, _ = layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.pad
    rows = pow2(k + s)
    ncols = window_columns(layer)
    name = f"{ident(layer.name)}_swu"
    params = dict(
        name=name, layer=layer.name, h=h, w=w, ch=c, lane_bits=lane_bits, ew=c * lane_bits, k=k, s=s, pad=p,
        ho=ho, wo=wo, rows=rows, row_bits=unsigned_bits(rows - 1), col_bits=unsigned_bits(w - 1), ncols=ncols,
        cx_bits=unsigned_bits(ncols - 1), phase_bits=unsigned_bits(max(k, s) - 1), oy_bits=unsigned_bits(ho - 1),
    )
    if h >= 1 << 14 or w >= 1 << 14:
        raise RtlError(f"layer {layer.name}: {h}x{w} maps are too large for the 16-bit window counters")
    return Unit(
        name=name, template="swu.v.j2", layer=layer.name, src=src, out_width=k * k * c * lane_bits,
        summary=f"window {k}x{k}/{s} pad {p} over {h}x{w}x{c}, {rows}-row banked line buffer, one window per beat",
        cycles=window_cycles(layer), params=params,
    )


RTL_DATAPATHS = {"xnor": "binary", "pixel": "input", "score": "output"}  # mvu.v.j2's datapath branches


def _units(net: Network, folding: Folding, out_dir: Path) -> list[Unit]:
    units: list[Unit] = []
    src = "in"

    def add(u: Unit) -> None:
        nonlocal src
        units.append(u)
        src = u.name

    for layer in net.layers:
        h, w, c = layer.in_shape
        lname = ident(layer.name)
        kind = kinds.of(layer)
        for unit in kind.units(layer, folding.get(layer.name)):
            if unit.role == "stream":
                if c > 1:
                    add(Unit(
                        name=f"{lname}_gather", template="gather.v.j2", layer=layer.name, src=src, out_width=8 * c,
                        summary=f"{c} byte beats -> one pixel", cycles=unit.cycles,
                        params=dict(name=f"{lname}_gather", ch=c, ch_bits=unsigned_bits(c - 1)),
                    ))
            elif unit.role == "window":
                add(_window_unit(layer, src, kind.lane_bits))
            elif unit.role == "mvu":
                if kind.spatial:  # the window unit delivers the whole window in one beat
                    add(_mvu_unit(layer, folding[layer.name], src, 1, layer.kernel**2 * c * kind.lane_bits, out_dir))
                else:
                    add(_mvu_unit(layer, folding[layer.name], src, h * w, c * kind.lane_bits, out_dir))
            elif unit.role == "pool":
                k = layer.kernel
                add(Unit(
                    name=f"{lname}_pool", template="maxpool.v.j2", layer=layer.name, src=src, out_width=c,
                    summary=f"maxpool {layer.name}: OR of the {k}x{k} window pixels", traces=lname,
                    cycles=unit.cycles, params=dict(name=f"{lname}_pool", layer=layer.name, ch=c, k=k),
                ))
            elif unit.role == "sum":
                in_bits = units[-1].out_width // c
                add(Unit(
                    name=f"{lname}_sum", template="global_sum.v.j2", layer=layer.name, src=src, out_width=32 * c,
                    summary=f"global_sum {layer.name}: {h}x{w} pixels -> 32-bit sums", traces=lname,
                    cycles=unit.cycles, params=dict(name=f"{lname}_sum", layer=layer.name, ch=c, in_bits=in_bits,
                                                    pixels=h * w, pix_bits=unsigned_bits(h * w - 1)),
                ))
            else:
                raise RtlError(f"layer {layer.name}: the RTL backend has no {unit.role!r} unit")
    n = len(net.classes)
    add(Unit(
        name="result", template="result.v.j2", layer="", src=src, out_width=32,
        summary=f"{n} scores + class id -> 32-bit out_stream", cycles=kinds.result_cycles(n),
        params=dict(name="result", ch=n, in_bits=units[-1].out_width // n, word_bits=unsigned_bits(n)),
    ))
    return units


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


def generate(net: Network, folding: Folding | None, out_dir: str | Path) -> RtlDesign:
    """Write the Verilog, memory files and design.json of ``net`` into ``out_dir``."""
    folding = folding or default(net)
    check(net, folding)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units = _units(net, folding, out_dir)
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise RtlError(f"layer names collide after conversion to Verilog identifiers: {names}")
    env = _environment()
    files = []
    for u in units:
        path = out_dir / f"{u.name}.v"
        path.write_text(env.get_template(u.template).render(u=u.params))
        files.append(path.name)
    (out_dir / TOP_FILE).write_text(env.get_template("top.v.j2").render(net=net, units=units))
    files.append(TOP_FILE)
    design = RtlDesign(
        network=net.name,
        folding={k: asdict(v) for k, v in folding.items()},
        units=units,
        files=files,
    )
    design.save(out_dir / DESIGN_FILE)
    return design


def load_design(out_dir: str | Path) -> RtlDesign:
    """Read the design.json that ``generate`` wrote."""
    path = Path(out_dir) / DESIGN_FILE
    if not path.is_file():
        raise RtlError(f"{path}: missing", fix="regenerate the RTL with flipflow.generator.rtl.generate")
    d = json.loads(path.read_text())
    return RtlDesign(d["network"], d["folding"], [Unit(**u) for u in d["units"]], d["files"])
