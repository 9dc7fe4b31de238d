"""RTL backend: a network as instances of the Verilog library in hls_templates/rtl/.

The hardware is the same streaming dataflow pipeline as the HLS backend
(docs/DESIGN.md), one unit chain per IR layer, the chain kinds.py lists:

* ``input_conv``  : [gather channels] -> window unit -> matrix-vector unit (8-bit pixels)
* ``bitplane_conv``: [gather channels] -> kept planes (wiring) -> window unit -> matrix-vector unit (XNOR)
* ``binary_conv`` : [window unit] -> matrix-vector unit (XNOR-popcount, thresholds)
* ``sparse_conv`` : [count unit] -> [window unit] -> matrix-vector unit (N:M slot indices, M:1 muxes,
  AND-popcount, thresholds; a centred layer's count unit appends each pixel's ones count)
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

import flipflow
from flipflow import atomic, kinds
from flipflow.errors import FlipflowError
from flipflow.generator import cost, devices, pack
from flipflow.generator.folding import Folding, LayerConfig, check, default
from flipflow.host import stream
from flipflow.host.metadata import write_metadata
from flipflow.ir import Layer, Network
from flipflow.kinds import window_columns, window_rows

TEMPLATES = flipflow.ROOT / "hls_templates" / "rtl"
TOP_NAME = stream.TOP_NAME
TOP_FILE = f"{TOP_NAME}.v"
DESIGN_FILE = "design.json"
BITSTREAM_TCL = "build_bitstream.tcl"
SHELL_TCL = "pynq_z2_shell.tcl"  # the block design around the accelerator, shared with the HLS project


class RtlError(FlipflowError, ValueError):
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
    in_bits: list[int] = field(default_factory=list)  # reads only these bits of its source (element 0 first); [] = all

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
        atomic.write_json(path, asdict(self), indent=1)


def ident(name: str) -> str:
    """A Verilog identifier from an IR layer name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else f"l_{s}"


def _hex_words(words: list[int], bits: int) -> str:
    digits = max(1, math.ceil(bits / 4))
    return "".join(f"{w & ((1 << bits) - 1):0{digits}x}\n" for w in words)


def _write_mem(out_dir: Path, name: str, words: list[int], bits: int) -> str:
    """Write a $readmemh file; its absolute path reaches the module as a parameter,
    so simulators and synthesis find it from any working folder."""
    path = out_dir.resolve() / name
    atomic.write_text(path, _hex_words(words, bits))
    return str(path)


def mvu_unit(layer: Layer, f: LayerConfig, src: str, out_dir: Path) -> Unit:
    """The flipflow_mvu of ``layer`` at ``f`` fed by unit ``src``: its Verilog parameters, and its
    weight and threshold memory files (generator/pack.py) written into ``out_dir``. Also what the
    timing and sparse-unit measurements synthesize on their own."""
    kind = kinds.matrix(layer)
    g = pack.geometry(layer, f)
    datapath = kinds.MVU_DATAPATH[kind.datapath]
    wb = kind.weight_bits(layer)
    aw = pack.accumulator_bits(layer)
    positions = kind.beats_per_vector(layer)  # a conv's window unit delivers the whole window in one beat
    ew = kind.beat_bits(layer)
    name = ident(layer.name)
    weight_file = _write_mem(out_dir, f"{name}_weights.mem", pack.words(layer, f), g.pe * g.simd * wb)
    thr_file = ""
    if layer.is_thresholded:
        # row p's field is its AW-bit threshold, with a sparse kind's invert bit above it
        fields = pack.thresholds(layer, f) & ((1 << aw) - 1)
        if kind.sparse:
            fields |= pack.inverts(layer, f) << aw
        tw = aw + kind.sparse
        thr_words = [sum(int(t) << (p * tw) for p, t in enumerate(row)) for row in fields]
        thr_file = _write_mem(out_dir, f"{name}_thresholds.mem", thr_words, g.pe * tw)
    res_bits = aw if datapath == "scores" else 1
    weights_in = cost.weight_memory(layer, f).style
    # a sparse unit folds its rows' kept-weight slots (g.cols), N per block of M window elements
    sparse = dict(SPARSE_N=layer.nm[0], SPARSE_M=layer.nm[1], CENTRED=int(layer.centred)) if kind.sparse else {}
    if kind.sparse and layer.centred:  # the window's records, each with its pixel's ones count
        sparse |= dict(COUNTS=kind.counts_per_vector(layer), COUNT_W=kind.count_bits(layer))
    structure = (f"{layer.nm[0]}:{layer.nm[1]} {'centred ' if layer.centred else ''}sparse ({g.cols} slots a row), "
                 if kind.sparse else "")
    return Unit(
        name=f"{name}_mvu", module="flipflow_mvu", layer=layer.name, src=src, out_width=g.rows * res_bits,
        summary=(f"{layer.kind} {layer.name}: {structure}PE={g.pe} SIMD={g.simd}, {g.nf}x{g.sf} folds per window, "
                 f"weights in {weights_in} RAM"),
        traces=name, cycles=kind.mvu_cycles(layer, f),
        params=dict(nf=g.nf, sf=g.sf, positions=positions, pixels=layer.out_shape[0] * layer.out_shape[1]),
        parameters=dict(DATAPATH=datapath, OUT_CH=g.rows, FAN_IN=layer.fan_in, PE=g.pe, SIMD=g.simd, WB=wb, AW=aw,
                        POSITIONS=positions, EW=ew, WEIGHT_FILE=weight_file, THRESH_FILE=thr_file,
                        WEIGHT_RAM=weights_in, EARLY_EXIT=int(f.early_exit), **sparse),
    )


def _window_unit(layer: Layer, src: str, cycles: int) -> Unit:
    h, w, _ = layer.in_shape
    ho, wo, _ = layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.pad
    kind = kinds.of(layer)
    c, bits = kind.window_channels(layer), kind.pixel_bits(layer)
    if h >= 1 << 14 or w >= 1 << 14:
        raise RtlError(f"layer {layer.name}: {h}x{w} maps are too large for the 16-bit window counters")
    counted = f" (+{kind.count_bits(layer)}-bit ones count)" if kind.count_bits(layer) else ""
    return Unit(
        name=f"{ident(layer.name)}_swu", module="flipflow_swu", layer=layer.name, src=src,
        out_width=k * k * bits,
        summary=(f"window {k}x{k}/{s} pad {p} over {h}x{w}x{c}{counted}, {window_rows(layer)}-row banked line buffer, "
                 "one window per beat"),
        cycles=cycles,
        params=dict(h=h, k=k, s=s, pad=p, ho=ho, wo=wo, ncols=window_columns(layer)),
        parameters=dict(H=h, W=w, EW=bits, K=k, S=s, PAD=p, LINE_RAM=cost.line_buffer_bank(layer).style),
    )


def _count_unit(layer: Layer, src: str, cycles: int) -> Unit:
    kind = kinds.of(layer)
    c = kind.window_channels(layer)
    return Unit(
        name=f"{ident(layer.name)}_count", module="flipflow_count", layer=layer.name, src=src,
        out_width=kind.pixel_bits(layer),
        summary=f"ones count of each {c}-bit pixel, appended above it (centred sparse {layer.name})", cycles=cycles,
        params=dict(levels=cost.count_levels(c)), parameters=dict(CH=c),
    )


def _gather_unit(layer: Layer, src: str, cycles: int) -> Unit:
    c = layer.in_ch
    return Unit(
        name=f"{ident(layer.name)}_gather", module="flipflow_gather", layer=layer.name, src=src, out_width=8 * c,
        summary=f"{c} byte beats -> one pixel", cycles=cycles, parameters=dict(CH=c),
    )


def _pool_unit(layer: Layer, src: str, cycles: int) -> Unit:
    c, k = layer.in_shape[2], layer.kernel
    return Unit(
        name=f"{ident(layer.name)}_pool", module="flipflow_maxpool", layer=layer.name, src=src, out_width=c,
        summary=f"maxpool {layer.name}: OR of the {k}x{k} window pixels", traces=ident(layer.name),
        cycles=cycles, parameters=dict(CH=c, K=k),
    )


def _sum_unit(layer: Layer, src: Unit, cycles: int) -> Unit:
    h, w, c = layer.in_shape
    return Unit(
        name=f"{ident(layer.name)}_sum", module="flipflow_global_sum", layer=layer.name, src=src.name,
        out_width=32 * c, summary=f"global_sum {layer.name}: {h}x{w} pixels -> 32-bit sums", traces=ident(layer.name),
        cycles=cycles, parameters=dict(CH=c, IN_BITS=src.out_width // c, PIXELS=h * w),
    )


def _result_unit(net: Network, src: Unit) -> Unit:
    n = len(net.classes)
    return Unit(
        name="result", module="flipflow_result", layer="", src=src.name, out_width=32,
        summary=f"{n} scores + class id -> 32-bit out_stream", cycles=kinds.result_cycles(n),
        params=dict(ch=n), parameters=dict(CH=n, IN_BITS=src.out_width // n),
    )


def plane_bits(layer: Layer) -> list[int]:
    """The bits of a gathered pixel (channel c's byte at 8c) that a bit-plane layer keeps,
    element 0 first: channel c's plane planes[j] is element c x P + j (kinds.bit_planes)."""
    return [8 * c + b for c in range(layer.in_ch) for b in layer.planes]


def _units(net: Network, folding: Folding, out_dir: Path) -> list[Unit]:
    units: list[Unit] = []
    src = "in"
    select: list[int] = []  # bits the next unit keeps of its source (a bit-plane layer's planes)

    def add(u: Unit) -> None:
        nonlocal src, select
        u.in_bits, select = select, []
        units.append(u)
        src = u.name

    for layer in net.layers:
        for unit in kinds.of(layer).units(layer, folding.get(layer.name)):
            if unit.role == "stream":
                if layer.in_ch > 1:  # one byte per beat; a gather register builds the pixel
                    add(_gather_unit(layer, src, unit.cycles))
                if kinds.of(layer).bit_planes:
                    select = plane_bits(layer)
            elif unit.role == "count":
                add(_count_unit(layer, src, unit.cycles))
            elif unit.role == "window":
                add(_window_unit(layer, src, unit.cycles))
            elif unit.role == "mvu":
                add(mvu_unit(layer, folding[layer.name], src, out_dir))
            elif unit.role == "pool":
                add(_pool_unit(layer, src, unit.cycles))
            elif unit.role == "sum":
                add(_sum_unit(layer, units[-1], unit.cycles))
            else:
                raise RtlError(f"layer {layer.name}: the RTL backend has no {unit.role!r} unit")
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


def generate(net: Network, folding: Folding | None, out_dir: str | Path, device: devices.Device | None = None) -> RtlDesign:
    """Write the Verilog, memory files, design.json, accelerator.json and the Vivado script
    (build_bitstream.tcl: a PYNQ-Z2 bitstream from this Verilog) of ``net`` into ``out_dir``."""
    folding = folding or default(net)
    check(net, folding)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units = _units(net, folding, out_dir)
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise RtlError(f"layer names collide after conversion to Verilog identifiers: {names}")
    files = sorted({f"{u.module}.v" for u in units})
    for name in files:
        atomic.copy_file(TEMPLATES / name, out_dir / name)
    env = _environment()
    atomic.write_text(out_dir / TOP_FILE, env.get_template("top.v.j2").render(
        net=net, units=units, pixel_codes=None if net.layers[0].pixel_codes is None else net.layers[0].pixel_codes.tolist()))
    device = device or devices.get()
    atomic.write_text(out_dir / BITSTREAM_TCL, env.get_template(f"{BITSTREAM_TCL}.j2").render(
        net=net, part=device.part, clock_mhz=f"{device.mhz:g}", top=TOP_NAME, top_file=TOP_FILE, modules=files))
    atomic.copy_file(flipflow.ROOT / "hls_templates" / SHELL_TCL, out_dir / SHELL_TCL)
    files.append(TOP_FILE)
    # The host driver's view of this design: a free-running top (no AXI-Lite control), cycles from the model.
    write_metadata(net, out_dir, folding=folding, cycles_per_frame=kinds.frame_cycles(net, folding),
                   clock_mhz=device.mhz, hardware={"control": "ap_ctrl_none", "count_register": None})
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
