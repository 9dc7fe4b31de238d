"""`flipflow deploy`: gather everything the PYNQ-Z2 needs into one folder
and one .tar.gz, atomically (a crash leaves the previous deploy intact).

    <out>/                      e.g. build/nin_pruned/deploy
      README.md                 how to copy it to the board; what is missing
      accelerator.json          metadata (host/metadata.py)
      model.ir.npz              the IR the accelerator was generated from
      flipflow.bit, .hwh        when Vivado has built them
      tcl/                      the build's Tcl scripts when there is no bitstream yet
      flipflow_pynq.ipynb       the notebook
      test_set.npz              test images, labels, class names (for accuracy on the board)
      driver/flipflow/          the driver: numpy only, nothing to pip install
    <out.parent>/flipflow_<model>.tar.gz   the same, under one folder flipflow_<model>/
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import flipflow
from flipflow import atomic, ir
from flipflow.errors import FlipflowError
from flipflow.host.hwh import check_hwh
from flipflow.host.metadata import FILENAME, Metadata, from_network, load_metadata

NOTEBOOK = "flipflow_pynq.ipynb"
TEST_SET = "test_set.npz"

# The modules the board driver needs, relative to the package root: the base
# modules (IR, kinds, golden model) and the host package, which imports no other
# subpackage. Package __init__ files are written fresh (see _write_driver) so
# that a subpackage growing heavier imports never breaks the board copy.
DRIVER_MODULES = [
    "errors.py",
    "atomic.py",
    "errors.py",
    "kinds.py",
    "ir.py",
    "host/stream.py",
    "golden.py",
    "host/metadata.py",
    "host/hwh.py",
    "host/backends.py",
    "host/pynq_backend.py",
    "host/accelerator.py",
]


class DeployError(FlipflowError, FileNotFoundError):
    """Something the deploy folder needs is missing; the message says how to make it."""


@dataclass
class DeployResult:
    folder: Path
    archive: Path
    bitstream: bool
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "folder": str(self.folder),
            "archive": str(self.archive),
            "archive_bytes": self.archive.stat().st_size,
            "bitstream": "included" if self.bitstream else "absent (needs Vivado; see README.md)",
            "files": self.files,
            "notes": self.notes,
        }


def _newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime) if paths else None


def find_bitstream(build: Path) -> tuple[Path, Path] | None:
    """The newest .bit under ``build`` that has its .hwh beside it (as the Vivado Tcl
    leaves flipflow.bit/.hwh), else the newest .bit and the newest .hwh."""
    bits = [p for p in build.rglob("*.bit") if "deploy" not in p.parts]
    paired = [b for b in bits if b.with_suffix(".hwh").is_file()]
    if paired:
        bit = _newest(paired)
        return bit, bit.with_suffix(".hwh")
    bit = _newest(bits)
    if bit is None:
        return None
    hwh = _newest([p for p in build.rglob("*.hwh") if "deploy" not in p.parts])
    if hwh is None:
        raise DeployError(f"{bit}: found a bitstream but no .hwh under {build}; Vivado writes it with the block design (write_hw_platform / hw_handoff)")
    return bit, hwh


def _read_json(path: Path) -> dict | None:
    """A build's JSON file, None when it is absent."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeployError(f"{path}: not valid JSON ({e})", fix="rebuild it with `flipflow hls`, or pass another --build") from e


def _metadata(net: ir.Network, build: Path) -> tuple[Metadata, list[str]]:
    """The build's accelerator.json; else one made from the IR plus the build's folding.json and
    report.json (cycles per frame), after checking that the build was made from this IR."""
    path = build / FILENAME
    if path.is_file():
        meta = load_metadata(path)
        meta.check_network(net, where=str(path))
        return meta, []
    built_ir = build / ir.FILENAME
    if built_ir.is_file():
        from_network(ir.load(built_ir)).check_network(net, where=f"the build in {build}")
    folding = _read_json(build / "folding.json")
    report = _read_json(build / "report.json") or {}
    meta = from_network(net, folding=folding, cycles_per_frame=report.get("cycles_per_frame_estimate"))
    used = [n for n, x in (("folding.json", folding), ("report.json", report)) if x]
    source = f"the IR and {' + '.join(used)}" if used else "the IR alone (default clock, cell names and control)"
    return meta, [f"{path} not found: wrote the metadata from {source}"]


def _metadata_of_bitstream(bit: Path, build: Path, net: ir.Network) -> Metadata | None:
    """The accelerator.json of the design a bitstream was built from: the RTL design's
    (rtl/, free-running top) or the HLS project's (its parent, ap_ctrl_hs), so that the
    driver controls the accelerator the way that bitstream needs."""
    for folder in (bit.parent, bit.parent.parent):
        path = folder / FILENAME
        if path.is_file() and build.resolve() in (path.resolve().parents):
            meta = load_metadata(path)
            meta.check_network(net, where=str(path))
            return meta
    return None


def _test_set(net: ir.Network, n: int | None, data_dir: Path | None) -> dict[str, np.ndarray]:
    from flipflow.training import datasets

    test = datasets.load(net.dataset, data_dir).test.head(n)
    if tuple(test.images.shape[1:]) != tuple(net.input_shape):
        raise DeployError(f"dataset {net.dataset} has images {test.images.shape[1:]} but {net.name} takes {tuple(net.input_shape)}")
    return {"images": test.images, "labels": test.labels, "classes": np.array(net.classes)}


def _write_driver(dest: Path) -> list[str]:
    root = flipflow.ROOT
    pkg = dest / "flipflow"
    inits = {
        "__init__.py": f'"""flipflow board driver (a subset of flipflow {flipflow.__version__})."""\n\n__version__ = "{flipflow.__version__}"\n',
        "host/__init__.py": (root / "host/__init__.py").read_text(),
    }
    written = []
    for rel, text in inits.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
        written.append(rel)
    for rel in DRIVER_MODULES:
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, pkg / rel)
        written.append(rel)
    return [f"driver/flipflow/{r}" for r in sorted(written)]


def _readme(net: ir.Network, meta: Metadata, folder_name: str, bitstream: bool, tcl: list[str], notes: list[str]) -> str:
    h, w, c = meta.input_shape
    lines = [
        f"# flipflow accelerator: {meta.model}",
        "",
        f"Model `{meta.model}` ({meta.dataset}, input {h}x{w}x{c} uint8, {len(meta.classes)} classes, "
        f"{net.binary_ops:,} binary MACs/image), model hash `{meta.model_hash[:16]}`, for the {meta.board} "
        f"({meta.part}) at {meta.clock_mhz:g} MHz. Made by flipflow {flipflow.__version__} on {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "## On the board",
        "",
        "Copy the archive to the board and unpack it in the Jupyter notebooks folder:",
        "",
        "```sh",
        f"scp {folder_name}.tar.gz xilinx@<board-ip>:/home/xilinx/jupyter_notebooks/",
        f"ssh xilinx@<board-ip> 'cd /home/xilinx/jupyter_notebooks && tar xzf {folder_name}.tar.gz'",
        "```",
        "",
        "(or upload the archive through Jupyter, or drop the folder on the board's `\\\\<board-ip>\\xilinx` share).",
        f"Then open `{folder_name}/{NOTEBOOK}` in Jupyter (http://<board-ip>:9090) and run all cells.",
        "",
        "Nothing to `pip install`: the driver is in `driver/flipflow/` and needs only numpy and pynq",
        "(plus matplotlib for the notebook's image grid), all part of the PYNQ image. From Python:",
        "",
        "```python",
        "import sys; sys.path.insert(0, 'driver')",
        "from flipflow.host import Accelerator",
        "acc = Accelerator('.')            # the board when pynq sees one",
        "acc.classify(images)              # (N, H, W, C) uint8",
        "acc.throughput_test()             # FINN's keys: runtime[ms], throughput[images/s], ...",
        "```",
        "",
        "The driver refuses a bitstream that does not match `accelerator.json` (missing accelerator or DMA",
        "in the .hwh, wrong stream widths, a model-id register from another model) and an IR whose hash",
        "differs (a stale build), and names the fix.",
        "",
        "## Bitstream",
        "",
    ]
    if bitstream:
        lines += [f"`{meta.bitstream}` and `{Path(meta.bitstream).with_suffix('.hwh').name}` come from the Vivado build of this model."]
    else:
        lines += [
            "**No bitstream yet.** Vivado (not available where this folder was made) builds it.",
            f"`make hls MODEL={meta.model}` writes the self-contained Vitis HLS project `build/{meta.model}/hls/`; copy it to a",
            "machine with Vitis HLS and Vivado (and the PYNQ-Z2 board files) and run, in that folder:",
            "",
            "```sh",
            "vitis_hls -f build_hls.tcl                        # C simulation, synthesis, IP export",
            "vivado -mode batch -source build_bitstream.tcl    # Zynq PS + AXI DMA + accelerator -> flipflow.bit, flipflow.hwh",
            "```",
            "",
            "Bring `flipflow.bit` and `flipflow.hwh` back into that folder and rerun `make deploy` (it checks and ships them),",
            f"or copy both here next to `{FILENAME}` (same name, side by side).",
        ]
        if tcl:
            lines += ["", "The build's Tcl scripts are in `tcl/`: " + ", ".join(f"`{t}`" for t in tcl) + "."]
        lines += ["", "Until then the notebook runs off the board with `FLIPFLOW_BACKEND=golden` (or `sim` with Verilator)."]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _normal_permissions(folder: Path) -> None:
    """rwxr-xr-x folders, rw-r--r-- files (temp files are created private)."""
    folder.chmod(0o755)
    for p in folder.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` with renames only."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _archive(folder: Path, archive: Path, root_name: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=archive.name, suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(folder, arcname=root_name)
        Path(tmp).chmod(0o644)
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def deploy(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    build: str | os.PathLike | None = None,
    bitstream: str | os.PathLike | None = None,
    test_images: int | None = None,
    data_dir: str | os.PathLike | None = None,
) -> DeployResult:
    """Gather the board files for ``model`` (zoo name or IR path) into ``out``."""
    net = ir.load_model(model)
    out = Path(out)
    build_dir = Path(build) if build else out.parent
    meta, notes = _metadata(net, build_dir)

    if bitstream:
        bit = Path(bitstream)
        if not bit.is_file():
            raise DeployError(f"{bit}: no such bitstream")
        hwh = bit.with_suffix(".hwh")
        if not hwh.is_file():
            raise DeployError(f"{hwh}: the .hwh must sit next to the .bit with the same name (Vivado writes it with the block design)")
        pair = (bit, hwh)
    else:
        pair = find_bitstream(build_dir) if build_dir.is_dir() else None
    if pair:
        meta = _metadata_of_bitstream(pair[0], build_dir, net) or meta
        check_hwh(pair[1], meta)  # refuse to ship a bitstream that the driver would refuse on the board
    tcl = sorted(p for p in build_dir.rglob("*.tcl") if "deploy" not in p.parts) if build_dir.is_dir() and not pair else []

    atomic.make_dir(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp"))
    try:
        files = []
        meta.save(tmp / FILENAME)
        net.save(tmp / ir.FILENAME)
        files += [FILENAME, ir.FILENAME]
        if pair:
            shutil.copy2(pair[0], tmp / meta.bitstream)
            shutil.copy2(pair[1], tmp / Path(meta.bitstream).with_suffix(".hwh"))
            files += [meta.bitstream, str(Path(meta.bitstream).with_suffix(".hwh"))]
        for t in tcl:
            rel = t.relative_to(build_dir)
            (tmp / "tcl" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(t, tmp / "tcl" / rel)
            files.append(f"tcl/{rel}")
        shutil.copy2(flipflow.ROOT / "notebooks" / NOTEBOOK, tmp / NOTEBOOK)
        files.append(NOTEBOOK)
        buf = io.BytesIO()
        np.savez_compressed(buf, **_test_set(net, test_images, Path(data_dir) if data_dir else None))
        (tmp / TEST_SET).write_bytes(buf.getvalue())
        files.append(TEST_SET)
        files += _write_driver(tmp / "driver")
        root_name = f"flipflow_{meta.model}"
        (tmp / "README.md").write_text(_readme(net, meta, root_name, bool(pair), [str(t.relative_to(build_dir)) for t in tcl], notes))
        files.append("README.md")
        _normal_permissions(tmp)
        archive = out.parent / f"{root_name}.tar.gz"
        _archive(tmp, archive, root_name)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DeployResult(out, archive, bool(pair), sorted(files), notes)
