"""Render a flipflow IR into a self-contained Vitis HLS project, and C-simulate it.

The project (``render``) holds readable C++ built from hls_templates/hls/:
one dataflow process per IR layer sized to the IR's exact channel counts,
the weights and thresholds of each layer in ``weights/<layer>.h`` (layout of
generator/pack.py), a testbench, ``build_hls.tcl`` (vitis_hls: csim, csynth,
export as IP for xc7z020clg400-1 at 100 MHz) and ``build_bitstream.tcl``
(Vivado: PYNQ-Z2 block design with Zynq PS + AXI DMA + the accelerator,
writes .bit and .hwh).

The dataflow processes are the units of docs/DESIGN.md; generator/hls_model.py
counts their loop iterations (cycles per frame) and sizes the FIFOs between them.

Without Vitis, ``compile_csim`` builds the same C++ with g++ against the
ap_int headers of the hls4ml wheel and flipflow's own hls::stream shim, and
``run_csim`` runs it on images and returns the output words and, optionally,
every layer's output for comparison with golden.py.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from flipflow import ROOT, atomic
from flipflow.errors import FlipflowError
from flipflow.generator import pack
from flipflow.host import stream
from flipflow import kinds
from flipflow.generator import cost, devices, hls_model
from flipflow.generator.folding import Folding, FoldingError, LayerConfig, check
from flipflow.generator.folding import Plan as FoldingPlan
from flipflow.ir import Layer, Network

TEMPLATES = ROOT / "hls_templates" / "hls"
STATIC_FILES = ("flipflow_kernels.h", "flipflow_io.h")
CSIM_INCLUDE = "csim_include"
SHELL_TCL = "pynq_z2_shell.tcl"  # the PYNQ-Z2 block design around the accelerator, shared with the RTL design
HLS_STORAGE = {"distributed": "lutram", "block": "bram"}  # BIND_STORAGE impl of a weight memory style (cost.py)
MAX_WORD_BITS = 4096  # AP_INT_MAX_W set in flipflow_kernels.h (Vitis HLS' limit)


class HLSError(FlipflowError, ValueError):
    """The network or folding cannot be built by the HLS templates; names the layer."""


def ap_types_dir() -> Path:
    """Xilinx's Apache-2.0 ap_int headers, shipped in the hls4ml wheel."""
    import importlib.util

    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise HLSError("hls4ml is not installed (its ap_int.h headers are needed for C simulation): run `make setup`")
    path = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise HLSError(f"{path}/ap_int.h missing: reinstall hls4ml (`make setup`)")
    return path


# -- planning: everything the templates need, checked before rendering ----------

def c_name(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if re.match(r"[A-Za-z_]", ident) else f"l_{ident}"


@dataclass
class Plan:
    net: Network
    folding: Folding
    layers: list[dict[str, Any]]
    score_bits: int


def _word(bits: int, where: str, what: str) -> int:
    if bits > MAX_WORD_BITS:
        raise HLSError(f"layer {where}: {what} would be {bits} bits wide, over the {MAX_WORD_BITS}-bit ap_uint "
                       "limit of Vitis HLS; reduce the channels or SIMD")
    return bits


def plan(net: Network, folding: Folding) -> Plan:
    """Check that every layer maps onto a template and compute its parameters.

    Raises HLSError/FoldingError naming the layer for anything the templates
    cannot implement, before a single file is written.
    """
    net.validate()
    check(net, folding)
    names = [c_name(l.name) for l in net]
    if len(set(names)) != len(names):
        raise HLSError(f"layer names {[l.name for l in net]} collide as C identifiers {names}; rename the layers")
    h0, w0, c0 = net.input_shape
    elem_bits = 8  # bits per channel of the stream entering the next layer
    score_bits = 0
    layers = []
    for l, name in zip(net, names):
        kind = kinds.of(l)
        config = folding.get(l.name)
        ih, iw, ch = l.in_shape
        oh, ow, oc = l.out_shape
        d: dict[str, Any] = dict(name=name, ir_name=l.name, kind=l.kind, ih=ih, iw=iw, oh=oh, ow=ow, ch=ch,
                                 k=l.kernel, s=l.stride, p=l.pad, in_elem_bits=elem_bits, thresholded=False,
                                 weights_header=None, details=[], units=[u.role for u in kind.units(l, config)],
                                 cycles=kind.cycles(l, config), planes=list(l.planes))
        d["in_t"] = d["map_t"] = f"ap_uint<{_word(ch * elem_bits, l.name, 'the input pixel word')}>"
        if kind.bit_planes:  # keep_planes turns each pixel into C x P binary elements first
            d.update(pixel_ch=ch, ch=kind.window_channels(l), in_elem_bits=1)
            d["map_t"] = f"ap_uint<{d['ch']}>"
            elem_bits = 1
        if "window" in d["units"]:
            d["window_rows"] = kinds.window_rows(l)  # as the RTL window unit's line buffer
            d["window_t"] = f"Window<{l.kernel * l.kernel}, {d['map_t']}>"
            d["window_depth"] = hls_model.window_depth(l)
            d["window_iterations"] = hls_model.window_iterations(l)
        geometry = f"{ih}x{iw}x{ch} -> {oh}x{ow}x{oc}"
        if kind.binary_input and elem_bits != 1:
            raise HLSError(f"layer {l.name}: {l.kind} takes binary maps, but its input has {elem_bits}-bit elements")
        if "pool" in d["units"]:
            d["summary"] = f"max-pool (OR) {l.kernel}x{l.kernel} stride {l.stride} pad {l.pad} (-1), {geometry}"
            d["out_t"] = d["in_t"]
            d["out_elem_bits"] = 1
        elif "sum" in d["units"]:
            if elem_bits == 1 or kinds.of(net.layers[len(layers) - 1]).binary_output:
                raise HLSError(f"layer {l.name}: {l.kind} sums the output layer's scores only; "
                               "put it directly after the output layer")
            lo, hi = layers[-1]["acc_range"]
            out_bits = kinds.signed_bits(lo * ih * iw, hi * ih * iw)
            d.update(summary=f"global sum of the class scores over {ih}x{iw} pixels", out_elem_bits=out_bits)
            d["out_t"] = f"ap_uint<{_word(ch * out_bits, l.name, 'the output word')}>"
            elem_bits = score_bits = out_bits
        else:
            elem_bits = _plan_mvu(l, kinds.matrix(l), config, d, elem_bits, geometry)
            if not kind.binary_output:
                score_bits = elem_bits
        layers.append(d)
    if score_bits > 32:
        raise HLSError(f"layer {net.layers[-1].name}: class scores need {score_bits} bits, "
                       "more than the 32-bit output beats (host/stream.py)")
    return Plan(net, folding, layers, score_bits)


@dataclass(frozen=True)
class Datapath:
    """How the HLS kernels implement one matrix-vector datapath (kinds.MatrixKind.datapath)."""

    dot: str  # the Dot policy of flipflow_kernels.h, formatted with simd, wb and (sparse) n, m
    signed: bool  # accumulator and thresholds are signed
    acc: str  # what the accumulator sums
    what: str  # summary line, formatted with wb, shape and (sparse) n, m
    pad_note: str  # why padded lanes add nothing (generator/pack.py)
    thresholds: str = "Thresholds"  # the activation struct of a thresholded layer (flipflow_kernels.h)


DATAPATHS = {
    "xnor": Datapath("XnorDot<{simd}>", False, "popcount(XNOR)", "binary XNOR-popcount {shape} (-1 padding)",
                     "weight bit 1 against input bit 0 never matches (adds 0)"),
    "pixel": Datapath("PixelDot<{simd}, {wb}>", True, "sum(w * pixel)", "8-bit pixels x {wb}-bit weights {shape} (pixel-0 padding)",
                      "weight 0 (product 0)"),
    "score": Datapath("BipolarDot<{simd}, {wb}>", True, "sum(w * (2b - 1))",
                      "binary (+-1) x {wb}-bit weights {shape} -> integer scores (-1 padding)", "weight 0 (product 0)"),
    "sparse": Datapath("SparseDot<{simd}, {n}, {m}>", False, "popcount(x AND b)",
                       "sparse binary {n}:{m} (a {wb}-bit index per kept weight) {shape} (-1 padding)",
                       "a spare slot selects a padding input, bit 0 (adds 0)", "InvertedThresholds"),
    "sparse_centred": Datapath("CentredSparseDot<{simd}, {n}, {m}>", True, "{m} x popcount(x AND b) - {n} x popcount(x)",
                               "centred sparse binary {n}:{m}, weights b - {n}/{m} (a {wb}-bit index per kept weight) "
                               "{shape} (-1 padding)",
                               "a spare slot selects a padding input, bit 0, and padding adds 0 to popcount(x)",
                               "InvertedThresholds"),
}


def datapath(l: Layer) -> Datapath:
    """The HLS datapath of a matrix layer: its kind's, or the centred sparse one (Layer.centred)."""
    return DATAPATHS[kinds.matrix(l).datapath + ("_centred" if l.centred else "")]


def _plan_mvu(l: Layer, kind: kinds.MatrixKind, f: LayerConfig, d: dict[str, Any], elem_bits: int, geometry: str) -> int:
    g = pack.geometry(l, f)
    if elem_bits != kind.lane_bits:
        raise HLSError(f"layer {l.name}: {l.kind} needs {kind.lane_bits}-bit input elements, got {elem_bits}")
    path = datapath(l)
    lo, hi = kind.accumulator_range(l)
    wb = kind.weight_bits(l)
    d.update(pe=g.pe, simd=g.simd, nf=g.nf, sf=g.sf, rows=g.rows, cols=g.cols, tiles=g.tiles, weight_elem_bits=wb,
             acc_range=(lo, hi), early_exit=f.early_exit)
    d["words_per_vector"] = 1 if kind.spatial else l.in_shape[0] * l.in_shape[1]  # without a window unit
    d["vectors"] = l.out_shape[0] * l.out_shape[1] if kind.spatial else 1
    d["simd_depth"] = hls_model.simd_depth(g.sf)
    d["fold_elements"] = kind.fold_elements(l, g.simd)  # input elements per fold word (sparse: SIMD / N blocks)
    d["simd_word_bits"] = _word(d["fold_elements"] * elem_bits, l.name, "the SIMD input word")
    d["simd_weight_bits"] = _word(g.simd * wb, l.name, "the SIMD weight word")
    if not kind.has_window(l):
        _word((kind.window_channels(l) + d["fold_elements"]) * elem_bits, l.name, "the width converter buffer")
    d["acc_t"] = f"{d['name']}_acc_t"
    d["weights_header"] = f"{d['name']}.h"
    d["weight_impl"] = HLS_STORAGE[cost.weight_memory(l, f).style]
    shape = f"{l.kernel}x{l.kernel} stride {l.stride} pad {l.pad}" if kind.spatial else "dense"
    d["nm"] = l.nm if kind.sparse else None
    n, m = l.nm or (1, 1)
    d["dot"] = path.dot.format(simd=g.simd, wb=wb, n=n, m=m)
    d["acc_t_def"] = f"ap_int<{kinds.signed_bits(lo, hi)}>" if path.signed else f"ap_uint<{kinds.unsigned_bits(hi)}>"
    d["acc_note"] = f"{path.acc.format(n=n, m=m)} in [{lo}, {hi}]"
    d["pad_note"] = path.pad_note
    if kind.thresholded:
        t = pack.thresholds(l, f)
        d["thresholded"] = True
        d["thr_t"] = f"{d['name']}_threshold_t"
        tlo, thi = int(t.min()), int(t.max())
        d["thr_t_def"] = (f"ap_int<{kinds.signed_bits(min(tlo, lo), max(thi, hi + 1))}>" if path.signed
                          else f"ap_uint<{kinds.unsigned_bits(thi)}>")
        d["act"] = f"{d['name']}_thresholds"
        d["thresholds_struct"] = path.thresholds
        out_bits = 1
    else:
        out_bits = kinds.signed_bits(lo, hi)
        d["act"] = f"{d['name']}_scores"
        d["act_t"] = f"flipflow::PassThrough<{out_bits}>"
    d["out_t"] = f"ap_uint<{_word(l.out_ch * out_bits, l.name, 'the output pixel word')}>"
    d["out_elem_bits"] = out_bits
    d["summary"] = f"{l.kind}, {path.what.format(wb=wb, shape=shape, n=n, m=m)}, {geometry}"
    terms = f"{g.cols} kept-weight slots of K = {l.fan_in}" if kind.sparse else f"K = {g.cols}"
    d["details"] = [f"{terms}, PE = {g.pe}, SIMD = {g.simd}: NF = {g.nf} x SF = {g.sf} steps per vector, "
                    f"{d['cycles']} cycles per image"]
    if g.rows_padded != g.rows or g.cols_padded != g.cols:
        d["details"].append(f"padded to {g.rows_padded} rows x {g.cols_padded} columns; "
                            "the padding provably changes no result (generator/pack.py)")
    return out_bits


# -- rendering -------------------------------------------------------------------

def _literal(value: int, bits: int) -> str:
    digits = max(1, math.ceil(bits / 4))
    if bits <= 64:
        return f"0x{value:0{digits}x}ULL" if bits > 32 else f"0x{value:0{digits}x}"
    return f'ap_uint<{bits}>("0x{value:0{digits}x}", 16)'


def _rows(values: list[list[int]], fmt, per_line: int) -> list[str]:
    rows = []
    for row in values:
        chunks = [", ".join(fmt(v) for v in row[i : i + per_line]) for i in range(0, len(row), per_line)]
        rows.append(",\n     ".join(chunks))
    return rows


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def render(net: Network, folding: Folding, out_dir: Path, csim_images: int = 0,
           device: devices.Device | None = None) -> Plan:
    """Write the HLS project for ``net`` into ``out_dir`` (checked by ``plan`` first)."""
    p = plan(net, folding)
    device = device or devices.get()
    out_dir = Path(out_dir)
    env = _environment()
    codes = net.layers[0].pixel_codes
    ctx = dict(net=net, layers=p.layers, classes=len(net.classes), score_bits=p.score_bits,
               pixel_t=f"ap_uint<{net.input_shape[2] * 8}>",
               pixel_codes="" if codes is None else ",\n            ".join(_rows([[int(v) for v in codes]], str, 16)),
               pixel_codes_arg="" if codes is None else ", pixel_codes",
               in_bytes=stream.words_per_image_in(net.input_shape), part=device.part, clock_mhz=device.mhz,
               default_depth=hls_model.DEFAULT_DEPTH,
               period_ns=1000 / device.mhz, top=stream.TOP_NAME, csim_images=csim_images)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        atomic.copy_file(TEMPLATES / name, out_dir / name)
    atomic.copy_file(ROOT / "hls_templates" / SHELL_TCL, out_dir / SHELL_TCL)
    shutil.copytree(TEMPLATES / CSIM_INCLUDE, out_dir / CSIM_INCLUDE, dirs_exist_ok=True)
    for template, target in [("flipflow_top.h.j2", "flipflow_top.h"), ("flipflow_top.cpp.j2", "flipflow_top.cpp"),
                             ("tb_flipflow.cpp.j2", "tb_flipflow.cpp"), ("build_hls.tcl.j2", "build_hls.tcl"),
                             ("build_bitstream.tcl.j2", "build_bitstream.tcl"), ("Makefile.csim.j2", "Makefile"),
                             ("README.md.j2", "README.md")]:
        atomic.write_text(out_dir / target, env.get_template(template).render(**ctx))
    weights_template = env.get_template("weights/layer_weights.h.j2")
    for d, l in zip(p.layers, net.layers):
        if not d["weights_header"]:
            continue
        f = folding[l.name]
        wbits = d["simd_weight_bits"]
        weight_rows = _rows(pack.simd_words(l, f), lambda v: _literal(v, wbits), 4 if wbits > 64 else 8)
        threshold_rows = _rows(pack.thresholds(l, f).T.tolist(), str, 16) if d["thresholded"] else []
        invert_rows = _rows(pack.inverts(l, f).T.tolist(), str, 16) if kinds.matrix(l).sparse else []
        text = weights_template.render(l=d, weight_rows=weight_rows, threshold_rows=threshold_rows,
                                       invert_rows=invert_rows)
        atomic.write_text(out_dir / "weights" / d["weights_header"], text)
    return p


# -- C simulation with g++ -------------------------------------------------------------

CXXFLAGS = ["-O2", "-std=c++14", "-Wall", "-Werror", "-Wno-unknown-pragmas"]


def _compile_command(project: Path, exe: Path, fast_popcount: bool) -> list[str]:
    return ["g++", *CXXFLAGS, *(["-DFLIPFLOW_FAST_CSIM"] if fast_popcount else []),
            "-I", str(project), "-I", str(project / CSIM_INCLUDE), "-isystem", str(ap_types_dir()),
            str(project / "tb_flipflow.cpp"), str(project / "flipflow_top.cpp"), "-o", str(exe)]


class Compilation:
    """A g++ build of the project's testbench + top running in the background."""

    def __init__(self, project: Path, fast_popcount: bool = True, binary: str = "tb_flipflow"):
        self.project = Path(project)
        self.exe = self.project / binary
        self.process = subprocess.Popen(_compile_command(self.project, self.exe, fast_popcount),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> Path:
        _, stderr = self.process.communicate()
        if self.process.returncode:
            raise HLSError(f"g++ failed to compile the C simulation in {self.project}:\n{stderr[-6000:]}")
        return self.exe


def compile_csim(project: Path, fast_popcount: bool = True, binary: str = "tb_flipflow") -> Path:
    """Compile the project's testbench + top with g++; returns the executable.

    ap_int headers are included as system headers; flipflow_kernels.h silences
    only GCC's (maybe-)uninitialized false positives inside ap_private. The
    generated code itself compiles with -Wall -Werror.
    """
    return Compilation(project, fast_popcount, binary).wait()


@dataclass
class CsimResult:
    words: np.ndarray  # uint32 out_stream words
    scores: np.ndarray  # (N, classes) int64
    class_ids: np.ndarray  # (N,)
    layers: dict[str, np.ndarray]  # IR layer name -> (N, H, W, C) output, when dumped
    seconds: float


def _words_to_tensor(raw: bytes, shape: tuple[int, int, int], elem_bits: int, n: int) -> np.ndarray:
    h, w, c = shape
    word_bytes = math.ceil(c * elem_bits / 8)
    data = np.frombuffer(raw, np.uint8)
    if data.size != n * h * w * word_bytes:
        raise HLSError(f"layer dump holds {data.size} bytes, expected {n * h * w * word_bytes}")
    bits = np.unpackbits(data.reshape(-1, word_bytes), axis=1, bitorder="little")[:, : c * elem_bits]
    if elem_bits == 1:
        return bits.reshape(n, h, w, c)
    weights = (1 << np.arange(elem_bits, dtype=np.int64))
    values = (bits.reshape(-1, c, elem_bits).astype(np.int64) * weights).sum(-1)
    values = np.where(values >= 1 << (elem_bits - 1), values - (1 << elem_bits), values)  # two's complement
    return values.reshape(n, h, w, c)


def run_csim(exe: Path, p: Plan, images: np.ndarray, expected_words: np.ndarray | None = None,
             dump: bool = False) -> CsimResult:
    """Run the compiled testbench on (N, H, W, C) uint8 images."""
    import time

    net = p.net
    n = len(images)
    with tempfile.TemporaryDirectory(prefix="flipflow_csim_") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "input.bin").write_bytes(stream.pack_images(images).tobytes())
        cmd = [str(exe), str(tmp_path / "input.bin"), str(tmp_path / "output.bin"), str(n)]
        if expected_words is not None:
            (tmp_path / "expected.bin").write_bytes(np.asarray(expected_words, "<u4").tobytes())
            cmd += ["--expected", str(tmp_path / "expected.bin")]
        if dump:
            (tmp_path / "dump").mkdir()
            cmd += ["--dump", str(tmp_path / "dump")]
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        out_file = tmp_path / "output.bin"
        if result.returncode not in (0, 1) or not out_file.is_file():
            raise HLSError(f"C simulation failed (exit {result.returncode}): {result.stderr.strip()[-3000:]}")
        words = np.frombuffer(out_file.read_bytes(), "<u4").copy()
        scores, ids = stream.unpack_output(words, len(net.classes))
        layers = {}
        if dump:
            for d, l in zip(p.layers, net.layers):
                raw = (tmp_path / "dump" / f"{d['name']}.bin").read_bytes()
                layers[l.name] = _words_to_tensor(raw, l.out_shape, d["out_elem_bits"], n)
    return CsimResult(words, scores, ids, layers, seconds)


def progress(msg: str) -> None:
    print(f"flipflow hls: {msg}", file=sys.stderr, flush=True)


# -- `flipflow hls`: the whole flow ---------------------------------------------------------

def choose_folding(net: Network, folding_path: Path | None, budget: devices.Budget) -> tuple[FoldingPlan, str]:
    """The folding to build and its plan: a JSON file when given (e.g. from `flipflow fold`),
    refused when it does not fit the budget; else the default both backends use, the fastest
    folding inside the budget (generator/folding.py)."""
    from flipflow.generator import folding as folding_mod

    if folding_path is not None:
        return folding_mod.check_fits(net, folding_mod.load(folding_path), budget), f"file {folding_path}"
    return folding_mod.check_fits(net, folding_mod.default(net, budget), budget), "default: fastest in the budget"


def vitis_hls_command() -> list[str] | None:
    """How to run build_hls.tcl with the Vitis on PATH: `vitis-run` where Vitis 2024.2+
    replaced `vitis_hls`, else `vitis_hls`; None without Vitis."""
    if shutil.which("vitis-run"):
        return ["vitis-run", "--mode", "hls", "--tcl", "build_hls.tcl"]
    if shutil.which("vitis_hls"):
        return ["vitis_hls", "-f", "build_hls.tcl"]
    return None


def build(model: str | Path, out: Path, folding_path: Path | None = None, csim_images: int = 100,
          run_vitis: bool = False, budget: devices.Budget | None = None) -> dict[str, Any]:
    """`flipflow hls`: project + IR + folding + C simulation + report.json in ``out``; with
    ``run_vitis`` also Vitis HLS (only when asked: a vendor tool on PATH never starts by itself)."""
    import time

    from flipflow import ir
    from flipflow.generator import folding as folding_mod
    from flipflow.generator import report
    from flipflow.host.metadata import write_metadata
    from flipflow import golden
    from flipflow.training import datasets

    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(out)
    ir_path = ir.resolve(model)
    net = ir.load(ir_path)
    budget = budget or devices.budget()
    fold_plan, source = choose_folding(net, folding_path, budget)
    folding = fold_plan.folding
    project = out / "hls"
    progress(f"{net.name}: planning {len(net.layers)} layers ({source})")
    p = plan(net, folding)  # every check before anything is written
    if run_vitis and vitis_hls_command() is None:
        raise HLSError("--vitis: neither vitis-run nor vitis_hls is on PATH", fix="source Vitis' settings64.sh first, or drop --vitis")

    atomic.make_dir(out)
    net.save(out / ir.FILENAME)
    folding_mod.save(folding, out / "folding.json")
    test = datasets.load(net.dataset).test
    if csim_images < 1:
        raise HLSError(f"--images must be >= 1, got {csim_images}")
    csim_images = min(csim_images, len(test))
    images = test.images[:csim_images]
    expected = stream.pack_output(golden.scores(net, images))
    render(net, folding, project, csim_images, budget.device)
    (project / "csim_data").mkdir(exist_ok=True)
    atomic.write_bytes(project / "csim_data" / "input.bin", stream.pack_images(images).tobytes())
    atomic.write_bytes(project / "csim_data" / "expected.bin", np.asarray(expected, "<u4").tobytes())
    seconds["render"] = time.perf_counter() - t0

    # g++ compiles in the background while the golden model scores the full test set.
    progress(f"compiling the C simulation with g++ in the background ({project})")
    t = time.perf_counter()
    compilation = Compilation(project)
    progress(f"golden model accuracy on the full {net.dataset} test set ({len(test)} images)")
    accuracy = golden.accuracy(net, test.images, test.labels)
    seconds["golden_accuracy"] = time.perf_counter() - t
    exe = compilation.wait()
    seconds["csim_compile_and_golden"] = time.perf_counter() - t
    progress(f"C simulation of {csim_images} test images")
    result = run_csim(exe, p, images, expected)
    seconds["csim_run"] = result.seconds
    mismatches = int((result.words.reshape(csim_images, -1) != expected.reshape(csim_images, -1)).any(1).sum())
    csim = dict(images=csim_images, mismatches=mismatches, compiler="g++",
                accuracy=float((result.class_ids == test.labels[:csim_images]).mean()))

    if run_vitis:
        command = vitis_hls_command()
        progress(f"running {' '.join(command)}: csim, csynth and export")
        t = time.perf_counter()
        run = subprocess.run(command, cwd=project)
        seconds["vitis_hls"] = time.perf_counter() - t
        if run.returncode:
            raise HLSError(f"{command[0]} failed (exit {run.returncode}); see the log in {project}")
        vitis = "ran"
    else:
        vitis = "not run"
        print("flipflow hls: C simulation ran with g++; synthesis (csynth, IP export) needs Vitis HLS: add --vitis, "
              f"or run `vitis_hls -f build_hls.tcl` (Vitis 2024.2+: `vitis-run --mode hls --tcl build_hls.tcl`) in {project} "
              "on a machine that has it, then "
              "`vivado -mode batch -source build_bitstream.tcl` for the PYNQ-Z2 bitstream.")
    seconds["total"] = time.perf_counter() - t0
    data = report.hls_report(net, fold_plan, budget, source, accuracy, len(test), csim, vitis, project, seconds)
    atomic.write_json(out / "report.json", data)
    # The host driver's view of this build: shapes, stream widths, classes, model hash.
    write_metadata(net, out, folding=folding, cycles_per_frame=data["cycles_per_frame_estimate"])
    return data
