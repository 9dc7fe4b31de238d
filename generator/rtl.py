"""RTL backend: a network as instances of the Verilog library in hls_templates/rtl/.

The hardware is the same streaming dataflow pipeline as the HLS backend
(shared/DESIGN.md), one unit chain per IR layer:

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
no padding). Each unit is an instance of a hand-written parameterised module
(flipflow_swu.v, flipflow_mvu.v, ...; each file's header states its datapath
and stream layout); only the top (top.v.j2: wires and instances with named
parameters) is rendered. Weights and thresholds come from
flipflow.generator.pack (the layout shared with the HLS backend) and are
written as ``$readmemh`` files named after the IR layers, next to the
Verilog; their absolute paths reach the modules as parameters.

``generate(net, folding, out_dir)`` copies the library modules and writes the
top and ``*.mem`` into ``<out_dir>`` and returns an ``RtlDesign`` describing
the units (used by the simulator for cycle models and by the resource report).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2
import numpy as np

import flipflow
from flipflow.generator import pack
from flipflow.host import stream
from flipflow.generator.folding import Folding, LayerFolding, check, layer_cycles
from flipflow.ir import Layer, Network

TEMPLATES = flipflow.ROOT / "hls_templates" / "rtl"
TOP_NAME = stream.TOP_NAME
TOP_FILE = f"{TOP_NAME}.v"
DESIGN_FILE = "design.json"


class RtlError(ValueError):
    """The network or folding cannot be rendered; the message names the layer."""


@dataclass
class Unit:
    """One hardware unit of the pipeline: an instance of a library module."""

    name: str  # instance name (derived from the IR layer name)
    module: str  # library module, hls_templates/rtl/<module>.v
    layer: str  # IR layer it implements
    src: str  # unit feeding it ("in" = the input stream)
    out_width: int  # bits per output beat
    summary: str  # one line for the top's header comment
    traces: str = ""  # IR layer whose output this unit produces ("" = internal)
    cycles: int = 0  # cycles per frame at II = 1 (analytical)
    params: dict[str, int] = field(default_factory=dict)  # geometry for the analytical models (sim.rtl)
    parameters: dict[str, int | str] = field(default_factory=dict)  # Verilog parameters of the instance

    @property
    def instance(self) -> str:
        """Its instance name in the top."""
        return f"u_{self.name}"


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


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def window_columns(layer: Layer) -> int:
    """Column reads of a window unit per output row: (wo - 1) * stride + k."""
    return (layer.out_shape[1] - 1) * layer.stride + layer.kernel


def window_cycles(layer: Layer) -> int:
    """Cycles per frame of the window unit in front of a layer (one window column
    read per cycle, one input pixel written per cycle); 0 where there is none."""
    if layer.kind.endswith("_dense") or layer.kind == "global_sum":
        return 0
    if layer.kind != "maxpool" and (layer.kernel, layer.stride, layer.pad) == (1, 1, 0):
        return 0
    return max(layer.in_shape[0] * layer.in_shape[1], layer.out_shape[0] * window_columns(layer))


def default_folding(net: Network, max_lanes: int = 1024) -> Folding:
    """A simple folding for simulation when none is given: every layer about as
    fast as the slowest fixed-rate part of the pipeline (input stream at one byte
    per cycle, window units) or the heaviest layer on ``max_lanes`` PE x SIMD
    lanes allows; each layer then gets the fewest lanes reaching that rate,
    preferring divisors (no padding)."""
    in_beats = int(np.prod(net.input_shape))
    heaviest = max(l.macs for l in net.layers if l.has_weights)
    target = max([in_beats, math.ceil(heaviest / max_lanes)] + [window_cycles(l) for l in net.layers])
    folding: Folding = {}
    for layer in net.layers:
        if not layer.has_weights:
            continue
        best: tuple | None = None
        for simd in range(1, min(layer.fan_in, 64) + 1):
            for pe in range(1, min(layer.out_ch, 64) + 1):
                f = LayerFolding(pe, simd)
                cycles = layer_cycles(layer, f)
                padded = (layer.fan_in % simd != 0) + (layer.out_ch % pe != 0)
                key = (cycles > target, pe * simd if cycles <= target else cycles, padded, pe)
                if best is None or key < best[0]:
                    best = (key, f)
        folding[layer.name] = best[1]
    return folding


def _hex_words(words: list[int], bits: int) -> str:
    digits = max(1, math.ceil(bits / 4))
    return "".join(f"{w & ((1 << bits) - 1):0{digits}x}\n" for w in words)


def _write_mem(out_dir: Path, name: str, words: list[int], bits: int) -> str:
    """Write a $readmemh file; its absolute path reaches the module as a parameter,
    so simulators and synthesis find it from any working folder."""
    path = out_dir.resolve() / name
    path.write_text(_hex_words(words, bits))
    return str(path)


def _mvu_unit(layer: Layer, f: LayerFolding, src: str, positions: int, ew: int, out_dir: Path) -> Unit:
    g = pack.geometry(layer, f)
    datapath = "binary" if pack.is_binary(layer) else ("pixels" if layer.kind in pack.FIXED_INPUT_KINDS else "scores")
    wb = pack.elem_bits(layer)
    lo, hi = pack.accumulator_range(layer)
    if datapath == "binary":
        aw = max(2, pack.unsigned_bits(hi + 1))
    elif datapath == "pixels":
        aw = max(wb + 10, pack.signed_bits(lo, hi + 1))  # >= one 9 x WB-bit product + sign
    else:
        aw = max(wb + 1, pack.signed_bits(lo, hi))
    name = ident(layer.name)
    weight_file = _write_mem(out_dir, f"{name}_weights.mem", pack.words(layer, f), g.pe * g.simd * wb)
    thr_file = ""
    if layer.is_thresholded:
        thr = pack.thresholds(layer, f)
        thr_words = [sum((int(t) & ((1 << aw) - 1)) << (p * aw) for p, t in enumerate(row)) for row in thr]
        thr_file = _write_mem(out_dir, f"{name}_thresholds.mem", thr_words, g.pe * aw)
    res_bits = aw if datapath == "scores" else 1
    pixels = layer.out_shape[0] * layer.out_shape[1]
    return Unit(
        name=f"{name}_mvu", module="flipflow_mvu", layer=layer.name, src=src, out_width=g.rows * res_bits,
        summary=f"{layer.kind} {layer.name}: PE={g.pe} SIMD={g.simd}, {g.nf}x{g.sf} folds per window",
        traces=name, cycles=max(g.nf * g.sf, positions) * pixels,
        params=dict(nf=g.nf, sf=g.sf, positions=positions),
        parameters=dict(DATAPATH=datapath, OUT_CH=g.rows, FAN_IN=g.cols, PE=g.pe, SIMD=g.simd, WB=wb, AW=aw,
                        POSITIONS=positions, EW=ew, WEIGHT_FILE=weight_file, THRESH_FILE=thr_file),
    )


def _window_unit(layer: Layer, src: str, lane_bits: int) -> Unit:
    h, w, c = layer.in_shape
    ho, wo, _ = layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.pad
    if h >= 1 << 14 or w >= 1 << 14:
        raise RtlError(f"layer {layer.name}: {h}x{w} maps are too large for the 16-bit window counters")
    return Unit(
        name=f"{ident(layer.name)}_swu", module="flipflow_swu", layer=layer.name, src=src,
        out_width=k * k * c * lane_bits,
        summary=f"window {k}x{k}/{s} pad {p} over {h}x{w}x{c}, {_pow2(k + s)}-row banked line buffer, one window per beat",
        cycles=window_cycles(layer),
        params=dict(h=h, k=k, s=s, pad=p, ho=ho, wo=wo, ncols=window_columns(layer)),
        parameters=dict(H=h, W=w, EW=c * lane_bits, K=k, S=s, PAD=p),
    )


def _gather_unit(layer: Layer, src: str) -> Unit:
    h, w, c = layer.in_shape
    return Unit(
        name=f"{ident(layer.name)}_gather", module="flipflow_gather", layer=layer.name, src=src, out_width=8 * c,
        summary=f"{c} byte beats -> one pixel", cycles=h * w * c, parameters=dict(CH=c),
    )


def _pool_unit(layer: Layer, src: str) -> Unit:
    c, k = layer.in_shape[2], layer.kernel
    return Unit(
        name=f"{ident(layer.name)}_pool", module="flipflow_maxpool", layer=layer.name, src=src, out_width=c,
        summary=f"maxpool {layer.name}: OR of the {k}x{k} window pixels", traces=ident(layer.name),
        cycles=layer.out_shape[0] * layer.out_shape[1], parameters=dict(CH=c, K=k),
    )


def _sum_unit(layer: Layer, src: Unit) -> Unit:
    h, w, c = layer.in_shape
    return Unit(
        name=f"{ident(layer.name)}_sum", module="flipflow_global_sum", layer=layer.name, src=src.name,
        out_width=32 * c, summary=f"global_sum {layer.name}: {h}x{w} pixels -> 32-bit sums", traces=ident(layer.name),
        cycles=h * w, parameters=dict(CH=c, IN_BITS=src.out_width // c, PIXELS=h * w),
    )


def _result_unit(net: Network, src: Unit) -> Unit:
    n = len(net.classes)
    return Unit(
        name="result", module="flipflow_result", layer="", src=src.name, out_width=32,
        summary=f"{n} scores + class id -> 32-bit out_stream", cycles=n + 1,
        params=dict(ch=n), parameters=dict(CH=n, IN_BITS=src.out_width // n),
    )


def _units(net: Network, folding: Folding, out_dir: Path) -> list[Unit]:
    units: list[Unit] = []
    src = "in"

    def add(u: Unit) -> None:
        nonlocal src
        units.append(u)
        src = u.name

    for layer in net.layers:
        h, w, c = layer.in_shape
        if layer.kind in pack.FIXED_INPUT_KINDS and c > 1:
            add(_gather_unit(layer, src))
        lane_bits = 8 if layer.kind in pack.FIXED_INPUT_KINDS else 1
        if layer.kind in pack.MVU_KINDS:
            f = folding[layer.name]
            if layer.kind.endswith("_dense"):
                add(_mvu_unit(layer, f, src, h * w, c * lane_bits, out_dir))
            else:  # the window unit delivers the whole window in one beat
                if (layer.kernel, layer.stride, layer.pad) != (1, 1, 0):
                    add(_window_unit(layer, src, lane_bits))
                add(_mvu_unit(layer, f, src, 1, layer.kernel**2 * c * lane_bits, out_dir))
        elif layer.kind == "maxpool":
            add(_window_unit(layer, src, 1))
            add(_pool_unit(layer, src))
        elif layer.kind == "global_sum":
            add(_sum_unit(layer, units[-1]))
        else:
            raise RtlError(f"layer {layer.name}: the RTL backend has no unit for kind {layer.kind!r}")
    add(_result_unit(net, units[-1]))
    return units


def verilog_value(value: int | str) -> str:
    """A parameter value as Verilog source: strings (file paths, DATAPATH) quoted."""
    return f'"{value}"' if isinstance(value, str) else str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["verilog"] = verilog_value
    return env


def generate(net: Network, folding: Folding | None, out_dir: str | Path) -> RtlDesign:
    """Write the Verilog, memory files and design.json of ``net`` into ``out_dir``."""
    folding = folding or default_folding(net)
    check(net, folding)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units = _units(net, folding, out_dir)
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise RtlError(f"layer names collide after conversion to Verilog identifiers: {names}")
    files = sorted({f"{u.module}.v" for u in units})
    for name in files:
        shutil.copyfile(TEMPLATES / name, out_dir / name)
    (out_dir / TOP_FILE).write_text(_environment().get_template("top.v.j2").render(net=net, units=units))
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
        raise FileNotFoundError(f"{path}: missing; regenerate the RTL with flipflow.generator.rtl.generate")
    d = json.loads(path.read_text())
    return RtlDesign(d["network"], d["folding"], [Unit(**u) for u in d["units"]], d["files"])
